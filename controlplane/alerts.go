package controlplane

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// Alerts ("OneConnect Alert"): the control plane watches, in memory, the
// health of every node from the status reports agents send anyway
// (alerts_watch.go), and tells the owners whose devices a node or pool
// carries through a signed webhook or email (alerts_deliver.go). Only the
// owner's settings are stored, and — if the owner opts in — a history of
// status changes that a job deletes after the owner's retention period.
// Events name nodes and pools and carry their aggregate status; nothing
// about an end user exists to put in them.

// AlertOptions configure health alerts. Zero values take the defaults.
type AlertOptions struct {
	// SMTP sends alert emails; without an Addr owners cannot choose email.
	SMTP SMTPConfig
	// Every is how often node health is evaluated (default 5s).
	Every time.Duration
	// SyncLag is how long a node may trail a revision before it counts as
	// lagging (default 60s).
	SyncLag time.Duration
	// RetryBase and RetryMax shape the delivery backoff: the n-th retry
	// waits about RetryBase·2ⁿ, at most RetryMax, with jitter (5s, 30m).
	RetryBase, RetryMax time.Duration
	// RetryFor is how long an undelivered event is retried before it is
	// dropped (default 24h).
	RetryFor time.Duration
	// Timeout bounds one delivery attempt (default 10s).
	Timeout time.Duration
	// QueueSize bounds the events waiting per owner and channel (default
	// 1000); beyond it the oldest are dropped.
	QueueSize int
	// PurgeEvery is how often expired monitoring history is deleted
	// (default 1h).
	PurgeEvery time.Duration
	// AllowPrivateTargets lets webhooks go to loopback (127.0.0.1, ::1,
	// localhost) and private addresses (10/8, 172.16/12, 192.168/16,
	// 100.64/10, fc00::/7), over http:// too, so that alerts can be tried
	// with a receiver on a laptop or a LAN. Link-local addresses (where
	// clouds serve instance metadata), unspecified and multicast addresses
	// stay refused. Off (the default), a webhook needs https:// and a
	// public address, so that owners cannot make the control plane call
	// into its own network.
	AllowPrivateTargets bool
}

// SMTPConfig is the mail server alert emails go through.
type SMTPConfig struct {
	// Addr is the server's host:port; empty disables email.
	Addr string
	// From is the sender address; required with Addr.
	From string
	// Username and Password, when set, authenticate with PLAIN, which
	// net/smtp performs only over TLS (STARTTLS is used whenever the
	// server offers it) or to localhost.
	Username, Password string
	// HelloName is the name sent in EHLO (default "localhost").
	HelloName string
}

func (o *AlertOptions) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Every, 5*time.Second)
	def(&o.SyncLag, time.Minute)
	def(&o.RetryBase, 5*time.Second)
	def(&o.RetryMax, 30*time.Minute)
	def(&o.RetryFor, 24*time.Hour)
	def(&o.Timeout, 10*time.Second)
	def(&o.PurgeEvery, time.Hour)
	if o.QueueSize <= 0 {
		o.QueueSize = 1000
	}
	if o.SMTP.HelloName == "" {
		o.SMTP.HelloName = "localhost"
	}
}

// alerter watches node health and delivers alerts.
type alerter struct {
	s         *Server
	opts      AlertOptions
	lead      *store.Leadership // only the leading replica watches health
	ctx       context.Context   // ends when the server closes
	client    *http.Client
	testLimit *limiter

	watchMu sync.Mutex
	watch   watchState

	mu     sync.Mutex
	closed bool
	queues map[queueKey]*deliveryQueue
	states map[queueKey]*api.AlertDelivery // each channel's last outcome
	wg     sync.WaitGroup                  // delivery workers
}

func newAlerter(ctx context.Context, s *Server, opts AlertOptions) *alerter {
	opts.setDefaults()
	return &alerter{
		s:         s,
		opts:      opts,
		ctx:       ctx,
		client:    newWebhookClient(opts),
		testLimit: newLimiter(10*time.Second, 5, time.Hour, s.now),
		watch:     newWatchState(),
		queues:    map[queueKey]*deliveryQueue{},
		states:    map[queueKey]*api.AlertDelivery{},
	}
}

// run evaluates node health and purges expired history until ctx ends,
// then waits for the delivery workers.
func (a *alerter) run(ctx context.Context) {
	check := time.NewTicker(a.opts.Every)
	purge := time.NewTicker(a.opts.PurgeEvery)
	defer func() {
		check.Stop()
		purge.Stop()
		a.mu.Lock()
		a.closed = true
		a.mu.Unlock()
		a.wg.Wait()
		a.client.CloseIdleConnections()
	}()
	a.lead = a.s.store.Lead(ctx, "alerts")
	a.purge(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-check.C:
			if !a.lead.Leading() {
				continue // another replica watches; its events are not repeated here
			}
			if err := a.check(ctx); err != nil && ctx.Err() == nil {
				a.s.log.LogAttrs(ctx, slog.LevelWarn, "alert check", slog.String(logError, err.Error()))
			}
		case <-purge.C:
			a.purge(ctx)
		}
	}
}

// purge deletes the monitoring history whose retention ended.
func (a *alerter) purge(ctx context.Context) {
	if _, err := a.s.store.PurgeAlertHistory(ctx, a.s.now()); err != nil && ctx.Err() == nil {
		a.s.log.LogAttrs(ctx, slog.LevelWarn, "purge alert history", slog.String(logError, err.Error()))
	}
}

// emailEnabled reports whether the server sends email.
func (a *alerter) emailEnabled() bool { return a.opts.SMTP.Addr != "" }

// defaultAlertSettings are an owner's settings before any change: no
// channel, every kind, no history.
func defaultAlertSettings(ownerID string) store.AlertSettings {
	return store.AlertSettings{OwnerID: ownerID, Events: strings.Join(api.AlertKinds, ","), RetentionDays: store.DefaultRetentionDays}
}

// alertSettings returns the owner's stored settings or the defaults.
func (s *Server) alertSettings(ctx context.Context, ownerID string) (store.AlertSettings, bool, error) {
	a, err := s.store.GetAlertSettings(ctx, ownerID)
	if errors.Is(err, store.ErrNotFound) {
		return defaultAlertSettings(ownerID), false, nil
	}
	return a, err == nil, err
}

// wantsKind reports whether the settings subscribe to kind; a test event
// goes to every channel.
func wantsKind(a store.AlertSettings, kind string) bool {
	return kind == api.AlertTest || a.Wants(kind)
}

func (s *Server) alertSettingsView(a store.AlertSettings, newSecret string) api.AlertSettings {
	events := []string{}
	if a.Events != "" {
		events = strings.Split(a.Events, ",")
	}
	return api.AlertSettings{WebhookURL: a.WebhookURL, WebhookSecret: newSecret, Email: a.Email,
		EmailAvailable: s.alerts.emailEnabled(), Events: events, History: a.KeepHistory, RetentionDays: a.RetentionDays,
		Delivery: s.alerts.deliveryView(a)}
}

func (s *Server) handleGetAlertSettings(c echo.Context) error {
	a, _, err := s.alertSettings(c.Request().Context(), currentOwner(c).ID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.alertSettingsView(a, ""))
}

// webhookSecretPrefix starts every webhook secret.
const webhookSecretPrefix = "tlw_"

// handlePutAlertSettings changes the fields present in the body. Setting
// a webhook for the first time (or rotate_secret) creates the signing
// secret, returned in this response only. Turning the history off deletes
// it at once.
func (s *Server) handlePutAlertSettings(c echo.Context) error {
	var in api.AlertSettingsInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	a, newSecret, err := s.updateAlertSettings(c.Request().Context(), currentOwner(c).ID, in)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.alertSettingsView(a, newSecret))
}

// updateAlertSettings applies in to the owner's settings (the API's and
// the dashboard's one path) and returns them with the new webhook secret,
// if one was made.
func (s *Server) updateAlertSettings(ctx context.Context, ownerID string, in api.AlertSettingsInput) (store.AlertSettings, string, error) {
	a, _, err := s.alertSettings(ctx, ownerID)
	if err != nil {
		return a, "", err
	}
	old := a
	newSecret := ""
	if in.WebhookURL != nil {
		u, err := s.alerts.checkWebhookURL(*in.WebhookURL)
		if err != nil {
			return a, "", err
		}
		a.WebhookURL = u
		switch {
		case u == "":
			a.WebhookSecret = ""
		case a.WebhookSecret == "":
			newSecret = randomSecret(webhookSecretPrefix)
		}
	}
	if in.RotateSecret {
		if a.WebhookURL == "" {
			return a, "", badRequest("rotate_secret", "there is no webhook to sign for")
		}
		newSecret = randomSecret(webhookSecretPrefix)
	}
	if newSecret != "" {
		a.WebhookSecret = newSecret
	}
	if in.Email != nil {
		a.Email = ""
		if *in.Email != "" {
			if !s.alerts.emailEnabled() {
				return a, "", badRequest("email", "this server does not send email")
			}
			if a.Email, err = normalizeEmail(*in.Email); err != nil {
				return a, "", err
			}
		}
	}
	if in.Events != nil {
		if a.Events, err = alertKinds(*in.Events); err != nil {
			return a, "", err
		}
	}
	if in.History != nil {
		a.KeepHistory = *in.History
	}
	if in.RetentionDays != nil {
		if d := *in.RetentionDays; d < store.MinRetentionDays || d > store.MaxRetentionDays {
			return a, "", badRequest("retention_days", "must be %d-%d", store.MinRetentionDays, store.MaxRetentionDays)
		}
		a.RetentionDays = *in.RetentionDays
	}
	if err := s.store.PutAlertSettings(ctx, a); err != nil {
		return a, "", err
	}
	// A new receiver starts with a clean slate: the outcome of the old
	// one says nothing about it.
	if a.WebhookURL != old.WebhookURL {
		s.alerts.resetDelivery(a.OwnerID, channelWebhook)
	}
	if a.Email != old.Email {
		s.alerts.resetDelivery(a.OwnerID, channelEmail)
	}
	return a, newSecret, nil
}

// alertKinds checks a list of kinds and returns it in canonical order.
func alertKinds(kinds []string) (string, error) {
	if len(kinds) > len(api.AlertKinds) {
		return "", badRequest("events", "lists a kind more than once")
	}
	var out []string
	for _, k := range api.AlertKinds {
		if slices.Contains(kinds, k) {
			out = append(out, k)
		}
	}
	if len(out) != len(kinds) {
		return "", badRequest("events", "must list each kind at most once, from: %s", strings.Join(api.AlertKinds, ", "))
	}
	return strings.Join(out, ","), nil
}

// checkWebhookURL validates a webhook URL: https:// with a host that is
// not a private, loopback or link-local address (loopback and private
// addresses, over http:// too, only with AllowPrivateTargets), no
// credentials, at most 2 KiB. The dialer checks the resolved addresses
// again at every delivery.
func (a *alerter) checkWebhookURL(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	bad := func(format string, args ...any) error { return badRequest("webhook_url", format, args...) }
	if len(raw) > store.MaxWebhookURL {
		return "", bad("must be at most %d bytes", store.MaxWebhookURL)
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] <= 0x20 || raw[i] >= 0x7f {
			return "", bad("must be printable ASCII (percent-encode anything else)")
		}
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return "", bad("must be an absolute https:// URL")
	}
	if u.User != nil {
		return "", bad("must not contain credentials; deliveries are signed with the webhook secret")
	}
	if u.Fragment != "" {
		return "", bad("must not have a fragment")
	}
	host := strings.ToLower(u.Hostname())
	// private: the host is this machine or a private network, which
	// only AllowPrivateTargets admits (and then over http:// too).
	private := host == "localhost" || strings.HasSuffix(host, ".localhost")
	if ip, err := netip.ParseAddr(host); err == nil {
		private = blockedAddr(ip)
		if private && !webhookTargetAllowed(ip, a.opts.AllowPrivateTargets) {
			return "", bad("must not point at a private, loopback or link-local address")
		}
	}
	switch {
	case private && !a.opts.AllowPrivateTargets:
		return "", bad("must not point at a private, loopback or link-local address")
	case u.Scheme == "https":
	case u.Scheme == "http" && private:
	default:
		return "", bad("must use https://")
	}
	return raw, nil
}

func (s *Server) handleAlertTest(c echo.Context) error {
	queued, err := s.sendAlertTest(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, api.AlertTestResult{Queued: queued})
}

// sendAlertTest queues a test event for each of the signed-in owner's
// channels (rate limited per owner) and lists them.
func (s *Server) sendAlertTest(c echo.Context) ([]string, error) {
	o := currentOwner(c)
	if err := checkRate(c, s.alerts.testLimit, o.ID); err != nil {
		return nil, err
	}
	a, stored, err := s.alertSettings(c.Request().Context(), o.ID)
	if err != nil {
		return nil, err
	}
	queued := []string{}
	if stored {
		ev := api.AlertEvent{ID: uuid.NewString(), Kind: api.AlertTest, OccurredAt: s.now().UTC(),
			Detail: "A test event: the alert settings work."}
		queued = s.alerts.enqueue(a, []api.AlertEvent{ev})
	}
	return queued, nil
}

// History cursors are the time and ID of a page's last entry.
func encodeHistoryCursor(h store.AlertHistory) string {
	id, err := uuid.Parse(h.ID)
	if err != nil {
		return ""
	}
	b := binary.BigEndian.AppendUint64(nil, uint64(h.OccurredAt.UnixMicro()))
	return base64.RawURLEncoding.EncodeToString(append(b, id[:]...))
}

func decodeHistoryCursor(cur string) (store.HistoryCursor, error) {
	if cur == "" {
		return store.HistoryCursor{}, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(cur)
	if err != nil || len(b) != 8+16 {
		return store.HistoryCursor{}, badRequest("cursor", "is not a cursor this server returned")
	}
	id, _ := uuid.FromBytes(b[8:])
	return store.HistoryCursor{At: time.UnixMicro(int64(binary.BigEndian.Uint64(b))).UTC(), ID: id.String()}, nil
}

func (s *Server) handleListAlertHistory(c echo.Context) error {
	out, err := s.alertHistoryPage(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

// alertHistoryPage reads the page of the signed-in owner's history that
// ?limit= and ?cursor= ask for.
func (s *Server) alertHistoryPage(c echo.Context) (api.AlertHistory, error) {
	limit, err := pageLimit(c)
	if err != nil {
		return api.AlertHistory{}, err
	}
	after, err := decodeHistoryCursor(c.QueryParam("cursor"))
	if err != nil {
		return api.AlertHistory{}, err
	}
	ctx := c.Request().Context()
	o := currentOwner(c)
	a, _, err := s.alertSettings(ctx, o.ID)
	if err != nil {
		return api.AlertHistory{}, err
	}
	out := api.AlertHistory{History: a.KeepHistory, Entries: []api.AlertHistoryEntry{}}
	if !a.KeepHistory {
		return out, nil
	}
	rows, err := s.store.ListAlertHistory(ctx, o.ID, after, limit+1)
	if err != nil {
		return api.AlertHistory{}, err
	}
	if len(rows) > limit {
		rows = rows[:limit]
		out.NextCursor = encodeHistoryCursor(rows[limit-1])
	}
	for _, r := range rows {
		out.Entries = append(out.Entries, api.AlertHistoryEntry{ID: r.ID, Kind: r.Kind, PoolID: r.PoolID, PoolName: r.PoolName,
			NodeID: r.NodeID, NodeName: r.NodeName, Detail: r.Detail, OccurredAt: r.OccurredAt.UTC(), ExpiresAt: r.ExpiresAt.UTC()})
	}
	return out, nil
}

func (s *Server) handleDeleteAlertHistory(c echo.Context) error {
	if _, err := s.store.DeleteAlertHistory(c.Request().Context(), currentOwner(c).ID); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
