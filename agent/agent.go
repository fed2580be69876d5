package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/traceless-vpn/traceless/agent/wg"
	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/internal/logpolicy"
)

// Options configure an Agent. Zero durations take the defaults in
// brackets.
type Options struct {
	// Servers are the control-plane base URLs, tried in order with
	// failover.
	Servers []string
	// EnrollToken enrolls the node on its first start, when the
	// credential file does not exist yet.
	EnrollToken string
	// CredentialFile is the agent's only state: node credential and
	// WireGuard private key, JSON, mode 0600.
	CredentialFile string
	// Name and NodeEndpoint (the host:port clients dial) are sent at
	// enrollment.
	Name         string
	NodeEndpoint string
	// ListenPort is the WireGuard UDP port; 0 leaves it to the device.
	ListenPort int
	// MTU applies when the control plane's tunnel sets none [1420].
	MTU int
	// NATEgress, when set, masquerades tunnel traffic leaving through
	// this interface.
	NATEgress string
	// Harden turns conntrack accounting and timestamps off.
	Harden bool
	// RequirePosture makes Start fail when a posture check fails.
	RequirePosture bool
	// ScrubAfter is the idle time after which a peer is scrubbed [180s];
	// ScrubTick how often the scrubber looks [5s].
	ScrubAfter time.Duration
	ScrubTick  time.Duration
	// Version is reported in status.
	Version string

	// Open opens the WireGuard interface: wg.Open with the backend of
	// choice in production, wg.NewFakeInterface in tests.
	Open func() (*wg.Interface, error)
	// Host is the machine; zero fields take the real one.
	Host Host
	// Logger receives aggregates only [discard]. New wraps it so that
	// attributes under keys the agent does not declare are dropped.
	Logger *slog.Logger
	// HTTPClient talks to the control plane [a client whose response
	// header timeout is PollTimeout].
	HTTPClient *http.Client
	// Now is the clock [time.Now].
	Now func() time.Time

	// StatusInterval is the longest time between status reports [30s].
	StatusInterval time.Duration
	// PostureInterval is how often posture is re-checked [5m].
	PostureInterval time.Duration
	// AntiEntropyInterval is how often the device is re-read and
	// repaired [5m].
	AntiEntropyInterval time.Duration
	// MinBackoff and MaxBackoff bound the wait after errors [1s, 60s].
	MinBackoff, MaxBackoff time.Duration
	// RevokedRetry is the wait between attempts while the credential is
	// refused [5m].
	RevokedRetry time.Duration
	// PollTimeout bounds the wait for an answer's headers, long polls
	// included [75s]; RequestTimeout bounds a whole request [10m].
	PollTimeout    time.Duration
	RequestTimeout time.Duration
}

func (o *Options) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.ScrubAfter, 180*time.Second)
	def(&o.ScrubTick, 5*time.Second)
	def(&o.StatusInterval, 30*time.Second)
	def(&o.PostureInterval, 5*time.Minute)
	def(&o.AntiEntropyInterval, 5*time.Minute)
	def(&o.MinBackoff, time.Second)
	def(&o.MaxBackoff, time.Minute)
	def(&o.RevokedRetry, 5*time.Minute)
	def(&o.PollTimeout, 75*time.Second)
	def(&o.RequestTimeout, 10*time.Minute)
	if o.MTU <= 0 {
		o.MTU = 1420
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HTTPClient == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.ResponseHeaderTimeout = o.PollTimeout
		o.HTTPClient = &http.Client{Transport: t}
	}
	if o.Version == "" {
		o.Version = "dev"
	}
}

// Agent is the node daemon. Start prepares it, Run syncs until its
// context ends, Close releases the interface.
type Agent struct {
	opts    Options
	log     *slog.Logger
	host    Host
	cp      *controlPlane
	metrics *metrics

	cred  *credential
	key   wgtypes.Key
	iface *wg.Interface
	dev   *device

	// Owned by the sync loop.
	tok        api.NodeToken
	refreshAt  time.Time
	tunnel     *api.Tunnel
	setupDone  bool
	needFull   bool
	revoked    bool
	lastStatus time.Time
	// resyncStreak counts resyncs asked for right after a full snapshot;
	// unaskedStreak counts snapshots in a row the agent did not ask for.
	resyncStreak  int
	unaskedStreak int
	// overCapacity is set while desired peers wait for want of room on
	// the device; logged when it changes.
	overCapacity bool

	mu           sync.Mutex
	posture      api.Posture
	postureKnown bool
	started      bool
}

// New checks opts and returns an Agent; nothing happens until Start.
func New(opts Options) (*Agent, error) {
	opts.defaults()
	opts.Logger = logpolicy.Wrap(opts.Logger, logKeys...)
	if opts.CredentialFile == "" {
		return nil, errors.New("agent: no credential file")
	}
	if opts.Open == nil {
		return nil, errors.New("agent: no interface opener")
	}
	cp, err := newControlPlane(opts.Servers, opts.HTTPClient, "traceless-agent/"+opts.Version)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	return &Agent{
		opts: opts, log: opts.Logger, host: opts.Host.withDefaults(), cp: cp, metrics: newMetrics(),
		needFull: true,
	}, nil
}

// Start hardens the process, checks posture (failing under
// RequirePosture), loads the credential or enrolls, opens the interface
// with the node's key and, when the tunnel is known from an earlier run,
// sets the interface up. It retries enrollment while the control plane is
// unreachable, until ctx ends.
func (a *Agent) Start(ctx context.Context) error {
	a.hardenProcess()
	if a.opts.Harden {
		a.hardenSysctls()
	}
	if failed := a.updatePosture(ctx); len(failed) > 0 && a.opts.RequirePosture {
		return fmt.Errorf("privacy posture: failed checks %s (--require-posture)", strings.Join(failed, ", "))
	}
	if err := a.loadOrEnroll(ctx); err != nil {
		return err
	}
	iface, err := a.opts.Open()
	if err != nil {
		return fmt.Errorf("open interface: %w", err)
	}
	a.iface = iface
	a.dev = newDevice(iface.Client, iface.Name)
	a.dev.limit = iface.PeerLimit
	a.dev.now = a.opts.Now
	a.metrics.peerLimit.Set(float64(iface.PeerLimit))
	if err := a.dev.ensureIdentity(a.key, a.opts.ListenPort); err != nil {
		iface.Close()
		return fmt.Errorf("configure interface %s: %w", iface.Name, err)
	}
	a.log.Info("interface open", slog.String(keyInterface, iface.Name), slog.String(keyBackend, iface.Backend),
		slog.Bool(keyExisted, iface.Existed), slog.String(keyNodeID, a.cred.NodeID), slog.String(keyVersion, a.opts.Version))
	if a.cred.Tunnel != nil {
		t := *a.cred.Tunnel
		a.tunnel = &t
		if err := a.setupInterface(t); err != nil {
			iface.Close()
			return err
		}
		a.setupDone = true
	}
	a.mu.Lock()
	a.started = true
	a.mu.Unlock()
	return nil
}

// loadOrEnroll reads the credential file, or enrolls with the enrollment
// token and writes it.
func (a *Agent) loadOrEnroll(ctx context.Context) error {
	c, err := loadCredential(a.opts.CredentialFile)
	switch {
	case err == nil:
		a.cred = c
		a.key, _ = c.key()
		return nil
	case !errors.Is(err, os.ErrNotExist):
		return err
	case a.opts.EnrollToken == "":
		return fmt.Errorf("credential file %s does not exist; pass an enrollment token for the first start", a.opts.CredentialFile)
	}
	key, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		return err
	}
	req := api.EnrollRequest{Token: a.opts.EnrollToken, Name: a.opts.Name, PublicKey: key.PublicKey().String(), Endpoint: a.opts.NodeEndpoint}
	var res api.EnrollResponse
	for attempt := 0; ; attempt++ {
		res, err = a.cp.enroll(ctx, req)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if s := statusOf(err); s != 0 && s < 500 && s != http.StatusTooManyRequests {
			return fmt.Errorf("enroll: %w", err)
		}
		delay := a.backoff(attempt + 1)
		if serverTrouble(err) {
			a.cp.failover()
			if attempt+1 < a.cp.count() {
				delay = 0
			}
		}
		a.log.Warn("enrollment failed; retrying", slog.Any(keyErr, err), slog.Int(keyAttempt, attempt+1), slog.Duration(keyRetryIn, delay))
		if !sleep(ctx, delay) {
			return ctx.Err()
		}
	}
	if !strings.HasPrefix(res.Credential, credentialPrefix) {
		return fmt.Errorf("enroll: the control plane sent no %s… credential", credentialPrefix)
	}
	t := res.Tunnel
	c = &credential{NodeID: res.NodeID, Credential: res.Credential, PrivateKey: key.String(), Tunnel: &t}
	if err := saveCredential(a.opts.CredentialFile, c); err != nil {
		return err
	}
	a.cred, a.key = c, key
	a.log.Info("node enrolled", slog.String(keyNodeID, res.NodeID))
	return nil
}

// Run starts the agent unless Start was called, then syncs, scrubs,
// repairs and re-checks posture until ctx ends, keeping the current peers
// through every error. It returns nil when ctx ends, or Start's error.
func (a *Agent) Run(ctx context.Context) error {
	a.mu.Lock()
	started := a.started
	a.mu.Unlock()
	if !started {
		if err := a.Start(ctx); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	for _, loop := range []func(context.Context){a.scrubLoop, a.postureLoop, a.antiEntropyLoop} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			loop(ctx)
		}()
	}
	a.syncLoop(ctx)
	wg.Wait()
	return nil
}

// Close releases the interface: a kernel interface stays up with its
// peers, a userspace device goes away with the process.
func (a *Agent) Close() error {
	if a.iface == nil {
		return nil
	}
	err := a.iface.Close()
	a.iface = nil
	return err
}

// antiEntropyLoop repairs drift between the device and the desired set
// every AntiEntropyInterval, unless a scrub read did it within that time
// (on an idle node the scrubber's reads serve both).
func (a *Agent) antiEntropyLoop(ctx context.Context) {
	t := time.NewTicker(a.opts.AntiEntropyInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if a.dev.checkedSince(a.opts.Now().Add(-a.opts.AntiEntropyInterval)) {
			continue
		}
		r, err := a.dev.antiEntropy()
		if err != nil {
			a.log.Warn("anti-entropy failed", slog.Any(keyErr, err))
			continue
		}
		a.logRepair(r)
	}
}

// logRepair says when anti-entropy found the device drifted.
func (a *Agent) logRepair(r applyResult) {
	if r.set+r.removed > 0 {
		a.log.Warn("device drifted from the desired peers; repaired",
			slog.Int(keySet, r.set), slog.Int(keyRemoved, r.removed), slog.Int(keyPeers, r.peers))
	}
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
