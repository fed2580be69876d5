package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// errRevoked means the control plane refuses the node credential: the node
// was removed or its credential revoked. The agent stops syncing, keeps
// its peers and asks again every RevokedRetry.
var errRevoked = errors.New("node credential refused")

// syncLoop polls the control plane and applies what it answers until ctx
// ends. On any error the device keeps its current peers; the agent backs
// off with jitter, fails over to the next control-plane URL when the
// current one is down, and fetches a full snapshot next.
func (a *Agent) syncLoop(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		err := a.syncOnce(ctx)
		if err == nil {
			failures = 0
			continue
		}
		if ctx.Err() != nil {
			return
		}
		a.metrics.syncErrors.Inc()
		failures++
		delay := a.backoff(failures)
		switch {
		case errors.Is(err, errRevoked):
			if !a.revoked {
				a.log.Error("the control plane refuses the node credential; keeping the current peers and retrying slowly",
					slog.Any(keyErr, err), slog.Duration(keyRetryIn, a.opts.RevokedRetry))
			}
			a.revoked = true
			delay = jitter(a.opts.RevokedRetry)
		case statusOf(err) == http.StatusUnauthorized:
			// The node token expired early or the node was disabled: get
			// a new token at once, the first time.
			a.tok = api.NodeToken{}
			if failures == 1 {
				delay = 0
			}
			a.log.Info("node token refused; refreshing", slog.Any(keyErr, err))
		case errors.As(err, new(*applyError)):
			a.log.Warn("applying to the device failed; keeping the current peers, next a full snapshot",
				slog.Any(keyErr, err), slog.Int(keyAttempt, failures), slog.Duration(keyRetryIn, delay))
		case serverTrouble(err):
			srv := a.cp.failover()
			if failures < a.cp.count() {
				delay = 0 // an untried URL: go at once
			}
			a.log.Warn("control plane unavailable; trying the next URL", slog.Any(keyErr, err), slog.String(keyServer, srv),
				slog.Int(keyAttempt, failures), slog.Duration(keyRetryIn, delay))
		default:
			a.log.Warn("sync failed", slog.Any(keyErr, err), slog.Int(keyAttempt, failures), slog.Duration(keyRetryIn, delay))
		}
		if !sleep(ctx, delay) {
			return
		}
	}
}

// syncOnce refreshes the token if needed, sets the interface up if it is
// not, polls once, applies the answer and reports status when due.
func (a *Agent) syncOnce(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, a.opts.RequestTimeout)
	defer cancel()
	tok, err := a.nodeToken(ctx)
	if err != nil {
		return err
	}
	if !a.setupDone && a.tunnel != nil {
		if err := a.setupInterface(*a.tunnel); err != nil {
			return err
		}
		a.setupDone = true
	}
	since, full := a.dev.revision(), a.needFull
	if full {
		since = 0
	}
	ans, err := a.cp.peers(ctx, tok, since, full)
	if err != nil {
		return err
	}
	changed, err := a.apply(ans, since, time.Now())
	if err != nil {
		a.needFull = true
		return &applyError{err}
	}
	a.needFull = false
	defer a.paceSnapshots(ctx, ans.full && !full)
	// A long poll lasts about the status interval; a tenth of slack keeps
	// reports from slipping to every other poll.
	if !changed && a.opts.Now().Sub(a.lastStatus) < a.opts.StatusInterval*9/10 {
		return nil
	}
	resync, err := a.report(ctx, tok)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	if !resync {
		a.resyncStreak = 0
		return nil
	}
	a.needFull = true
	// Something disagrees: the next snapshot reads the device too, so a
	// device changed behind the agent's back is repaired with it.
	a.dev.distrust()
	if !ans.full {
		a.resyncStreak = 0
		a.log.Info("control plane asked for a full resync", slog.Int64(keyRevision, ans.revision))
		return nil
	}
	// The hash differs right after a full snapshot: the two sides disagree
	// on the set itself (a peer this agent cannot apply, say). Back off
	// rather than fetch snapshots in a loop.
	a.resyncStreak++
	delay := a.backoff(a.resyncStreak)
	a.log.Warn("peer set hash still differs from the control plane's after a full snapshot",
		slog.Int64(keyRevision, ans.revision), slog.Int(keyAttempt, a.resyncStreak), slog.Duration(keyRetryIn, delay))
	sleep(ctx, delay)
	return nil
}

// paceSnapshots slows the loop down when the control plane answers polls
// with full snapshots the agent did not ask for, again and again without
// a delta between them: a control plane that cannot answer its revision
// with a wait (one from before since=0 waited at revision 0) must not
// make the node poll in a loop. The first such snapshot goes at once
// (after a restart of the control plane, say), later ones back off.
func (a *Agent) paceSnapshots(ctx context.Context, unasked bool) {
	if !unasked {
		a.unaskedStreak = 0
		return
	}
	a.unaskedStreak++
	if a.unaskedStreak < 2 {
		return
	}
	delay := a.backoff(a.unaskedStreak - 1)
	a.log.Debug("control plane keeps answering with snapshots; pacing polls",
		slog.Int(keyAttempt, a.unaskedStreak), slog.Duration(keyRetryIn, delay))
	sleep(ctx, delay)
}

// applyError is a failure to apply an answer to the device: not the
// control plane's fault, so no failover; the next poll fetches a full
// snapshot.
type applyError struct{ err error }

func (e *applyError) Error() string { return e.err.Error() }
func (e *applyError) Unwrap() error { return e.err }

// apply applies a poll's answer and reports whether anything changed.
func (a *Agent) apply(ans *peersAnswer, since int64, start time.Time) (bool, error) {
	switch {
	case ans.full:
		r, err := a.dev.applyFull(ans.set, ans.revision)
		a.record(r, err, ans.revision, true)
		if err != nil {
			return false, fmt.Errorf("apply snapshot: %w", err)
		}
		format := "json"
		if ans.binary {
			format = "binary"
		}
		a.log.Info("applied snapshot", slog.Int64(keyRevision, ans.revision), slog.Int(keyPeers, r.peers),
			slog.Int(keySet, r.set), slog.Int(keyRemoved, r.removed), slog.Int(keyInvalid, r.invalid),
			slog.Int(keyCalls, r.calls), slog.Int(keyNotApplied, r.pending), slog.Bool(keyRead, r.read),
			slog.String(keyFormat, format), slog.Duration(keyDuration, time.Since(start)))
		return true, nil
	case ans.revision < since:
		return false, fmt.Errorf("control plane answered revision %d for a poll since %d", ans.revision, since)
	case len(ans.upserts) == 0 && len(ans.removes) == 0:
		if ans.revision == since {
			return false, nil // the poll window passed without a change
		}
		a.dev.advance(ans.revision)
		a.metrics.revision.Set(float64(ans.revision))
		return true, nil
	}
	r, err := a.dev.applyDelta(ans.upserts, ans.removes, ans.revision)
	a.record(r, err, ans.revision, false)
	if err != nil {
		return false, fmt.Errorf("apply delta: %w", err)
	}
	a.log.Debug("applied delta", slog.Int64(keySince, since), slog.Int64(keyRevision, ans.revision),
		slog.Int(keyPeers, r.peers), slog.Int(keySet, r.set), slog.Int(keyRemoved, r.removed),
		slog.Int(keyInvalid, r.invalid), slog.Int(keyCalls, r.calls), slog.Duration(keyDuration, time.Since(start)))
	return true, nil
}

// record updates the metrics after an apply, and says when the device
// starts or stops being too small for the peer set.
func (a *Agent) record(r applyResult, err error, revision int64, full bool) {
	if r.invalid > 0 {
		a.log.Warn("skipped malformed peers from the control plane", slog.Int(keyInvalid, r.invalid), slog.Bool(keyFull, full))
	}
	if err != nil {
		return
	}
	a.metrics.peers.Set(float64(r.peers))
	a.metrics.revision.Set(float64(revision))
	a.metrics.pending.Set(float64(r.pending))
	switch over := r.pending > 0; {
	case over && !a.overCapacity:
		a.log.Warn("the pool has more peers than this node's WireGuard backend holds: applied what fits, the rest wait for a place "+
			"(a kernel node holds more; or split the pool); still syncing changes",
			slog.Int(keyPeers, r.peers), slog.Int(keyApplied, r.peers-r.pending), slog.Int(keyNotApplied, r.pending),
			slog.Int(keyPeerLimit, a.dev.limit), slog.String(keyBackend, a.iface.Backend))
		a.overCapacity = true
	case !over && a.overCapacity:
		a.log.Info("every peer of the pool fits on the device again", slog.Int(keyPeers, r.peers), slog.Int(keyPeerLimit, a.dev.limit))
		a.overCapacity = false
	}
}

// nodeToken returns a node token, fetching a new one when the current one
// is within a fifth of its lifetime of expiring. A changed tunnel is set
// up again and written to the credential file.
func (a *Agent) nodeToken(ctx context.Context) (string, error) {
	now := a.opts.Now()
	if a.tok.Token != "" && now.Before(a.refreshAt) {
		return a.tok.Token, nil
	}
	t, err := a.cp.token(ctx, a.cred.Credential)
	if err != nil {
		if s := statusOf(err); s == http.StatusUnauthorized || s == http.StatusForbidden {
			return "", fmt.Errorf("%w: %w", errRevoked, err)
		}
		return "", err
	}
	if a.revoked {
		a.log.Info("the control plane accepts the node credential again")
		a.revoked = false
	}
	a.tok = t
	a.refreshAt = now.Add(t.ExpiresAt.Sub(now) * 4 / 5)
	if a.tunnel == nil || *a.tunnel != t.Tunnel {
		tun := t.Tunnel
		a.tunnel, a.setupDone = &tun, false
		c := *a.cred
		c.Tunnel = &tun
		if err := saveCredential(a.opts.CredentialFile, &c); err != nil {
			a.log.Warn("cannot record the tunnel in the credential file", slog.Any(keyErr, err))
		} else {
			a.cred = &c
		}
	}
	return t.Token, nil
}

// report sends the node's aggregates and returns whether the control
// plane asks for a full resync.
func (a *Agent) report(ctx context.Context, token string) (bool, error) {
	s := a.dev.summary()
	up, _ := a.iface.Links.IsUp(a.iface.Name)
	a.mu.Lock()
	p := a.posture
	a.mu.Unlock()
	st := api.NodeStatus{
		AppliedRevision: s.revision, PeerSetHash: s.hash, PeerCount: s.desired, InterfaceUp: up, Version: a.opts.Version, Posture: p,
		PeerLimit: s.limit,
	}
	if s.pending > 0 {
		st.OverCapacity = &api.OverCapacity{Desired: s.desired, Applied: s.desired - s.pending, NotApplied: s.pending}
	}
	res, err := a.cp.status(ctx, token, st)
	if err != nil {
		return false, err
	}
	a.lastStatus = a.opts.Now()
	return res.Resync, nil
}

// backoff is the wait after the n-th consecutive failure: exponential
// from MinBackoff, capped at MaxBackoff, with jitter.
func (a *Agent) backoff(n int) time.Duration {
	d := a.opts.MinBackoff
	for i := 1; i < n && d < a.opts.MaxBackoff; i++ {
		d *= 2
	}
	return jitter(min(d, a.opts.MaxBackoff))
}

// jitter returns a duration drawn uniformly from [d/2, d).
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}
