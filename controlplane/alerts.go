package controlplane

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/alerts"
	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// The owner's alert settings and monitoring history over HTTP. Watching
// node health and delivering alerts is package alerts' work (s.alerts).

// AlertOptions configure health alerts (alerts.Options).
type AlertOptions = alerts.Options

// SMTPConfig is the mail server alert emails go through (alerts.SMTPConfig).
type SMTPConfig = alerts.SMTPConfig

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

func (s *Server) alertSettingsView(ctx context.Context, a store.AlertSettings, newSecret string) api.AlertSettings {
	events := []string{}
	if a.Events != "" {
		events = strings.Split(a.Events, ",")
	}
	return api.AlertSettings{WebhookURL: a.WebhookURL, WebhookSecret: newSecret, Email: a.Email,
		EmailAvailable: s.alerts.EmailEnabled(), Events: events, History: a.KeepHistory, RetentionDays: a.RetentionDays,
		Delivery: s.alerts.DeliveryView(ctx, a)}
}

func (s *Server) handleGetAlertSettings(c echo.Context) error {
	a, _, err := s.alertSettings(c.Request().Context(), currentOwner(c).ID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.alertSettingsView(c.Request().Context(), a, ""))
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
	return c.JSON(http.StatusOK, s.alertSettingsView(c.Request().Context(), a, newSecret))
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
		u, err := s.alerts.CheckWebhookURL(*in.WebhookURL)
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
			if !s.alerts.EmailEnabled() {
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
		s.alerts.ResetDelivery(a.OwnerID, alerts.ChannelWebhook)
	}
	if a.Email != old.Email {
		s.alerts.ResetDelivery(a.OwnerID, alerts.ChannelEmail)
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
	if err := checkRate(c, s.alertTests, o.ID); err != nil {
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
		if queued, err = s.alerts.Enqueue(c.Request().Context(), a, []api.AlertEvent{ev}); err != nil {
			return nil, err
		}
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
