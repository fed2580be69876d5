// Package alerts watches node health and tells owners about it ("OneConnect
// Alert"): it judges, in memory, the health of every node from the status
// reports agents send anyway (watch.go), and delivers the resulting events
// to the owners whose devices a node or pool carries, through a signed
// webhook or email (deliver.go). What is stored: the owner's settings, the
// events waiting to be delivered (the outbox, until delivered or given
// up), and — if the owner opts in — a history of status changes that a
// job deletes after the owner's retention period. Events name nodes and pools and
// carry their aggregate status; nothing about an end user exists to put in
// them.
//
// The package sees the rest of the control plane through Deps only: the
// store methods it needs, the sync revision, a lookup of each node's last
// status report, a clock and a logger. The HTTP handlers for the owner's
// settings and history live in package controlplane.
package alerts

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/internal/mail"
	"github.com/traceless-vpn/traceless/store"
)

// Options configure health alerts. Zero values take the defaults.
type Options struct {
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
	// PumpEvery is how often the leading replica looks in the outbox for
	// events queued by another replica (default 1s); its own wake it at
	// once.
	PumpEvery time.Duration
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

// SMTPConfig is the mail server alert emails (and sign-in mails) go
// through; Timeout is taken from Options.Timeout.
type SMTPConfig = mail.Config

func (o *Options) setDefaults() {
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
	def(&o.PumpEvery, time.Second)
	if o.QueueSize <= 0 {
		o.QueueSize = 1000
	}
}

// Store is what alerts read and write in the store: the nodes with their
// pools, the owners to tell, their settings and opt-in history, and the
// leadership that lets one replica watch.
type Store interface {
	ListNodes(ctx context.Context, ownerID string) ([]store.NodeWithPool, error)
	AlertSubscribers(ctx context.Context, pools []string) ([]store.AlertSubscriber, error)
	GetAlertSettings(ctx context.Context, ownerID string) (store.AlertSettings, error)
	AddAlertHistory(ctx context.Context, ownerID string, entries []store.AlertHistory) (int, error)
	PurgeAlertHistory(ctx context.Context, now time.Time) (int64, error)
	QueueAlerts(ctx context.Context, ds []store.AlertDelivery, keep int) (int, error)
	AlertQueues(ctx context.Context, ownerID string) ([]store.AlertQueue, error)
	ClaimAlertDelivery(ctx context.Context, ownerID, channel, claimer string) (store.AlertDelivery, error)
	FinishAlertDelivery(ctx context.Context, id int64, claimer string) (bool, error)
	DeferAlertDelivery(ctx context.Context, id int64, claimer string, attempts int, retryAt time.Time) (bool, error)
	Lead(ctx context.Context, role string) *store.Leadership
}

// Report is a node's last aggregate status report and when it arrived.
type Report struct {
	api.NodeStatus
	At time.Time
}

// Deps is what the alerts need of the control plane.
type Deps struct {
	Store Store
	// Revision is the current sync revision.
	Revision func() int64
	// Status returns a node's last status report, if it reported.
	Status func(nodeID string) (Report, bool)
	// OnlineWindow is how long a report keeps a node online, as the
	// control plane's API says it.
	OnlineWindow time.Duration
	// Now is the clock of events, history and signatures; retries wait in
	// real time.
	Now func() time.Time
	// Log receives delivery and check problems, with the keys LogKeys.
	Log *slog.Logger
	// Version goes into the webhook requests' User-Agent.
	Version string
}

// Log attribute keys. Neither the owner, the URL nor the address is
// logged.
const (
	LogChannel = "channel"
	LogKind    = "kind"
	LogDropped = "dropped"
	LogError   = "error"
)

// LogKeys are every attribute key the package logs.
var LogKeys = []string{LogChannel, LogKind, LogDropped, LogError}

// Alerter watches node health and delivers alerts.
type Alerter struct {
	deps   Deps
	opts   Options
	ctx    context.Context // ends when the server closes
	client *http.Client

	watchMu sync.Mutex
	watch   watcher

	claimer string        // this process, as it claims outbox rows
	poke    chan struct{} // wakes the pump

	mu      sync.Mutex
	closed  bool
	lead    *store.Leadership
	workers map[queueKey]bool               // queues with a delivery worker
	states  map[queueKey]*api.AlertDelivery // each channel's last outcome
	wg      sync.WaitGroup                  // delivery workers
}

// New returns an Alerter; Run starts its work. Delivery stops when ctx
// ends.
func New(ctx context.Context, deps Deps, opts Options) *Alerter {
	opts.setDefaults()
	return &Alerter{
		deps:    deps,
		opts:    opts,
		ctx:     ctx,
		client:  newWebhookClient(opts),
		watch:   newWatcher(opts.SyncLag, opts.Every, deps.OnlineWindow),
		claimer: uuid.NewString(),
		poke:    make(chan struct{}, 1),
		workers: map[queueKey]bool{},
		states:  map[queueKey]*api.AlertDelivery{},
	}
}

// Options returns the options in effect, defaults filled in.
func (a *Alerter) Options() Options { return a.opts }

// Run evaluates node health and delivers the outbox while this replica
// leads, and purges expired history, until ctx ends; then it waits for
// the delivery workers.
func (a *Alerter) Run(ctx context.Context) {
	check := time.NewTicker(a.opts.Every)
	purge := time.NewTicker(a.opts.PurgeEvery)
	pump := time.NewTicker(a.opts.PumpEvery)
	defer func() {
		check.Stop()
		purge.Stop()
		pump.Stop()
		a.mu.Lock()
		a.closed = true
		a.mu.Unlock()
		a.wg.Wait()
		a.client.CloseIdleConnections()
	}()
	lead := a.deps.Store.Lead(ctx, "alerts")
	a.mu.Lock()
	a.lead = lead
	a.mu.Unlock()
	a.Purge(ctx)
	a.pump(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-pump.C:
			a.pump(ctx)
		case <-a.poke:
			a.pump(ctx)
		case <-check.C:
			if !lead.Leading() {
				continue // another replica watches; its events are not repeated here
			}
			if err := a.Check(ctx); err != nil && ctx.Err() == nil {
				a.deps.Log.LogAttrs(ctx, slog.LevelWarn, "alert check", slog.String(LogError, err.Error()))
			}
		case <-purge.C:
			a.Purge(ctx)
		}
	}
}

// Purge deletes the monitoring history whose retention ended.
func (a *Alerter) Purge(ctx context.Context) {
	if _, err := a.deps.Store.PurgeAlertHistory(ctx, a.deps.Now()); err != nil && ctx.Err() == nil {
		a.deps.Log.LogAttrs(ctx, slog.LevelWarn, "purge alert history", slog.String(LogError, err.Error()))
	}
}

// EmailEnabled reports whether the server sends email.
func (a *Alerter) EmailEnabled() bool { return a.opts.SMTP.Addr != "" }
