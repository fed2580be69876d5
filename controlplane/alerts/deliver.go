package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/internal/mail"
	"github.com/traceless-vpn/traceless/store"
)

// Delivery. Each owner has one queue per channel (webhook, email), kept in
// the database's alert outbox (store.AlertDelivery) so that a replica that
// dies loses nothing. The replica that leads alerts runs one worker per
// queue: it claims the queue's oldest row, delivers it, and deletes it
// once it is delivered or given up, so events go out one at a time, in
// order. An event that fails with a network error, a 5xx, 408 or 429 (or
// a transient SMTP error) is retried with exponential backoff and jitter,
// holding back the events behind it, until it is delivered or RetryFor has
// passed since it was queued; the attempts and the time of the next one
// are stored with it, so a replica that takes over the lead goes on where
// the dead one stopped. The queue is bounded (the oldest events go first).
//
// Delivery is at least once: a replica that dies after the receiver took
// an event but before the row is deleted leaves it to be sent again. Each
// event carries its ID as an idempotency key (the body's "id" and the
// Idempotency-Key header), so a receiver can skip the repeat; what it
// keeps is still in order.
//
// Each attempt reads the owner's settings afresh, so a changed URL,
// secret or address applies to queued events, and a removed channel or
// account drops them.

// Delivery channels.
const (
	ChannelWebhook = "webhook"
	ChannelEmail   = "email"
)

type queueKey struct{ owner, channel string }

type queuedEvent struct {
	ev   api.AlertEvent
	body []byte // the JSON of ev, as queued
}

// channels lists the channels set names that this server can serve.
func (a *Alerter) channels(set store.AlertSettings) []string {
	chans := []string{}
	if set.WebhookURL != "" {
		chans = append(chans, ChannelWebhook)
	}
	if set.Email != "" && a.EmailEnabled() {
		chans = append(chans, ChannelEmail)
	}
	return chans
}

// Enqueue stores evs in the outbox for every channel set names, wakes the
// delivery, and reports the channels.
func (a *Alerter) Enqueue(ctx context.Context, set store.AlertSettings, evs []api.AlertEvent) ([]string, error) {
	chans := a.channels(set)
	var rows []store.AlertDelivery
	for _, ev := range evs {
		body, err := json.Marshal(ev)
		if err != nil {
			return nil, err
		}
		for _, ch := range chans {
			rows = append(rows, store.AlertDelivery{OwnerID: set.OwnerID, Channel: ch, EventID: ev.ID, Kind: ev.Kind, Body: string(body)})
		}
	}
	if len(rows) == 0 {
		return chans, nil
	}
	dropped, err := a.deps.Store.QueueAlerts(ctx, rows, a.opts.QueueSize)
	if err != nil {
		return nil, err
	}
	if dropped > 0 {
		a.deps.Log.LogAttrs(a.ctx, slog.LevelWarn, "alert queue full; oldest events dropped", slog.Int(LogDropped, dropped))
	}
	a.wake()
	return chans, nil
}

// wake asks the pump to look for queues without a worker now.
func (a *Alerter) wake() {
	select {
	case a.poke <- struct{}{}:
	default:
	}
}

// pump starts a worker for every queue in the outbox that has none, while
// this replica leads.
func (a *Alerter) pump(ctx context.Context) {
	if !a.leading() {
		return
	}
	qs, err := a.deps.Store.AlertQueues(ctx, "")
	if err != nil {
		if ctx.Err() == nil {
			a.deps.Log.LogAttrs(ctx, slog.LevelWarn, "read alert outbox", slog.String(LogError, err.Error()))
		}
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	for _, q := range qs {
		k := queueKey{owner: q.OwnerID, channel: q.Channel}
		if a.workers[k] {
			continue
		}
		a.workers[k] = true
		a.wg.Add(1)
		go a.deliverQueue(k)
	}
}

// Leading reports whether this replica leads alerts: it watches node
// health and delivers the outbox.
func (a *Alerter) Leading() bool { return a.leading() }

// leading reports whether this replica leads alerts (before Run, no).
func (a *Alerter) leading() bool {
	a.mu.Lock()
	l := a.lead
	a.mu.Unlock()
	return l != nil && l.Leading()
}

// outboxRetry is how long a worker waits when the outbox cannot be read or
// written (the database restarting) before it tries again.
const outboxRetry = 250 * time.Millisecond

// deliverQueue is a queue's worker; it ends when the queue is empty, the
// replica no longer leads, another replica took the queue's head, or the
// server closes.
func (a *Alerter) deliverQueue(k queueKey) {
	defer a.wg.Done()
	defer func() {
		a.mu.Lock()
		delete(a.workers, k)
		a.mu.Unlock()
	}()
	ctx := a.ctx
	for ctx.Err() == nil && a.leading() {
		d, err := a.deps.Store.ClaimAlertDelivery(ctx, k.owner, k.channel, a.claimer)
		if errors.Is(err, store.ErrNotFound) {
			return
		}
		if err != nil {
			if !sleep(ctx, outboxRetry) {
				return
			}
			continue
		}
		if wait := time.Until(d.RetryAt); wait > 0 {
			if !sleep(ctx, min(wait, a.opts.Every)) {
				return
			}
			continue // the lead may have moved meanwhile
		}
		var it queuedEvent
		it.body = []byte(d.Body)
		if err := json.Unmarshal(it.body, &it.ev); err != nil {
			it.ev = api.AlertEvent{ID: d.EventID, Kind: d.Kind}
		}
		retry, err := a.deliver(ctx, k, it)
		if ctx.Err() != nil {
			return
		}
		attempt := d.Attempts + 1
		wait := a.backoff(attempt - 1)
		// The outcome is recorded in the outbox first and shown to the
		// owner (noteDelivery) after: a channel reported delivered or
		// given up has no row of that event left in its pending count.
		state, msg := api.DeliveryDelivered, ""
		switch {
		case errors.Is(err, errNoChannel):
			state = ""
		case err != nil && !retry:
			state, msg = api.DeliveryGaveUp, "alert not delivered"
		case err != nil && time.Since(d.QueuedAt)+wait > a.opts.RetryFor:
			state, msg = api.DeliveryGaveUp, "alert dropped after retrying"
		case err != nil:
			state = api.DeliveryRetrying
		}
		if msg != "" {
			a.logUndelivered(k.channel, it.ev.Kind, msg, err)
		}
		var kept bool
		if state == api.DeliveryRetrying {
			kept = a.settle(ctx, func() (bool, error) {
				return a.deps.Store.DeferAlertDelivery(ctx, d.ID, a.claimer, attempt, time.Now().Add(wait))
			})
		} else {
			kept = a.settle(ctx, func() (bool, error) { return a.deps.Store.FinishAlertDelivery(ctx, d.ID, a.claimer) })
		}
		if state == "" {
			a.ResetDelivery(k.owner, k.channel)
		} else {
			a.noteDelivery(k, it.ev.Kind, state, err, attempt)
		}
		if !kept {
			return
		}
	}
}

// settle records an attempt's outcome in the outbox, trying again while
// the database does not answer (so that a delivered event is not sent
// again needlessly); false when the claim was lost, the lead moved or the
// server closes.
func (a *Alerter) settle(ctx context.Context, record func() (bool, error)) bool {
	for {
		ok, err := record()
		if err == nil {
			return ok
		}
		if !sleep(ctx, outboxRetry) || !a.leading() {
			return false
		}
	}
}

// sleep waits d unless ctx ends first, and reports whether it waited.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// noteDelivery records the outcome of an attempt on a channel: what the
// owner sees of the channel's delivery (DeliveryView). It is held in
// memory only and names no URL or address (err is a deliverError).
func (a *Alerter) noteDelivery(k queueKey, kind, state string, err error, attempts int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.states[k]
	if st == nil {
		st = &api.AlertDelivery{Channel: k.channel}
		a.states[k] = st
	}
	st.State, st.Kind, st.Attempts, st.Error = state, kind, attempts, ""
	if err != nil {
		st.Error = err.Error()
	}
	switch state {
	case api.DeliveryDelivered:
		st.Delivered++
		st.Attempts = 0
	case api.DeliveryGaveUp:
		st.GaveUp++
	}
}

// ResetDelivery forgets a channel's outcome: the channel was changed or
// removed.
func (a *Alerter) ResetDelivery(owner, channel string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.states, queueKey{owner: owner, channel: channel})
}

// Forget drops everything held in memory about an owner's deliveries: the
// account is gone. Queued events are dropped by their workers, which find
// no settings.
func (a *Alerter) Forget(owner string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, ch := range []string{ChannelWebhook, ChannelEmail} {
		delete(a.states, queueKey{owner: owner, channel: ch})
	}
}

// DeliveryView is the delivery outcome of each channel set configures, as
// this server saw it since it started, with the events waiting in the
// outbox.
func (a *Alerter) DeliveryView(ctx context.Context, set store.AlertSettings) []api.AlertDelivery {
	pending := map[string]int{}
	if qs, err := a.deps.Store.AlertQueues(ctx, set.OwnerID); err == nil {
		for _, q := range qs {
			pending[q.Channel] = q.Pending
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	out := []api.AlertDelivery{}
	for _, ch := range a.channels(set) {
		k := queueKey{owner: set.OwnerID, channel: ch}
		d := api.AlertDelivery{Channel: ch, State: api.DeliveryIdle}
		if st := a.states[k]; st != nil {
			d = *st
		}
		d.Pending = pending[ch]
		out = append(out, d)
	}
	return out
}

func (a *Alerter) logUndelivered(channel, kind, msg string, err error) {
	a.deps.Log.LogAttrs(a.ctx, slog.LevelWarn, msg,
		slog.String(LogChannel, channel), slog.String(LogKind, kind), slog.String(LogError, err.Error()))
}

// backoff is the wait before retry n (from 0): RetryBase·2ⁿ capped at
// RetryMax, of which a random half is jitter.
func (a *Alerter) backoff(n int) time.Duration {
	d := a.opts.RetryBase
	for i := 0; i < n && d < a.opts.RetryMax; i++ {
		d *= 2
	}
	d = min(d, a.opts.RetryMax)
	return d/2 + rand.N(d/2+1)
}

// errNoChannel: the owner removed the channel (or the account); the event
// is dropped quietly.
var errNoChannel = errors.New("channel no longer configured")

// deliverError is a delivery failure described without the URL or
// address, which a wrapped net/http or net/smtp error would quote.
type deliverError string

func (e deliverError) Error() string { return string(e) }

// deliver makes one attempt and reports whether a failure is worth
// retrying.
func (a *Alerter) deliver(ctx context.Context, k queueKey, it queuedEvent) (bool, error) {
	set, err := a.deps.Store.GetAlertSettings(ctx, k.owner)
	if errors.Is(err, store.ErrNotFound) {
		return false, errNoChannel
	}
	if err != nil {
		return true, deliverError("read alert settings")
	}
	switch {
	case k.channel == ChannelWebhook && set.WebhookURL != "":
		return a.postWebhook(ctx, set, it)
	case k.channel == ChannelEmail && set.Email != "" && a.EmailEnabled():
		return a.sendEmail(ctx, set.Email, it)
	}
	return false, errNoChannel
}

// postWebhook POSTs the event, signed with the owner's secret.
func (a *Alerter) postWebhook(ctx context.Context, set store.AlertSettings, it queuedEvent) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, a.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, set.WebhookURL, bytes.NewReader(it.body))
	if err != nil {
		return false, deliverError("invalid webhook URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Traceless-Alerts/"+a.deps.Version)
	req.Header.Set(api.AlertEventHeader, it.ev.Kind)
	req.Header.Set(api.AlertIdempotencyHeader, it.ev.ID)
	req.Header.Set(api.AlertSignatureHeader, api.SignAlert(set.WebhookSecret, a.deps.Now(), it.body))
	resp, err := a.client.Do(req)
	switch {
	case errors.Is(err, errBlockedAddress):
		return false, deliverError("the webhook host resolves to a private, loopback or link-local address")
	case errors.Is(err, context.DeadlineExceeded):
		return true, deliverError("webhook timed out")
	case err != nil:
		return true, deliverError("webhook unreachable")
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return false, nil
	case c >= 500, c == http.StatusTooManyRequests, c == http.StatusRequestTimeout:
		return true, deliverError(fmt.Sprintf("webhook answered %d", c))
	default:
		return false, deliverError(fmt.Sprintf("webhook answered %d", c))
	}
}

// errBlockedAddress refuses a webhook connection to a non-public address.
var errBlockedAddress = errors.New("webhook address is not public")

// sharedAddressSpace is 100.64.0.0/10 (carrier-grade NAT), not public.
var sharedAddressSpace = netip.MustParsePrefix("100.64.0.0/10")

// blockedAddr reports whether ip is not a public unicast address.
func blockedAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	return !ip.IsGlobalUnicast() || ip.IsPrivate() || sharedAddressSpace.Contains(ip)
}

// privateAddr reports whether ip is a loopback or private unicast
// address: this machine or a network of its own, which a webhook may
// reach only with AllowPrivateTargets. Link-local addresses are not among
// them: clouds serve instance metadata (and credentials) there.
func privateAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsLoopback() || ip.IsPrivate() || sharedAddressSpace.Contains(ip)
}

// webhookTargetAllowed reports whether a webhook may connect to ip.
func webhookTargetAllowed(ip netip.Addr, allowPrivate bool) bool {
	return !blockedAddr(ip) || (allowPrivate && privateAddr(ip))
}

// webhookDialControl refuses, after DNS resolution, every connection to
// an address that webhookTargetAllowed does not allow.
func webhookDialControl(allowPrivate bool) func(network, address string, _ syscall.RawConn) error {
	return func(_, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return errBlockedAddress
		}
		ip, err := netip.ParseAddr(host)
		if err != nil || !webhookTargetAllowed(ip, allowPrivate) {
			return errBlockedAddress
		}
		return nil
	}
}

// newWebhookClient returns the client webhooks are sent with: no proxy,
// no redirects, and a dialer that refuses non-public addresses after DNS
// resolution (loopback and private ones only with AllowPrivateTargets).
func newWebhookClient(opts Options) *http.Client {
	d := &net.Dialer{Timeout: opts.Timeout, Control: webhookDialControl(opts.AllowPrivateTargets)}
	tr := &http.Transport{
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   opts.Timeout,
		ResponseHeaderTimeout: opts.Timeout,
	}
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// sendEmail sends the event as a plain-text message through the
// configured SMTP server (internal/mail: STARTTLS when the server offers
// it); a permanent (5xx) answer is not retried.
func (a *Alerter) sendEmail(ctx context.Context, to string, it queuedEvent) (bool, error) {
	cfg := a.opts.SMTP
	cfg.Timeout = a.opts.Timeout
	err := mail.Send(ctx, cfg, alertMessage(to, it.ev, it.body, a.deps.Now()))
	if err == nil {
		return false, nil
	}
	var me *mail.Error
	if errors.As(err, &me) {
		return me.Temporary, deliverError(me.Error())
	}
	return true, deliverError("SMTP delivery failed")
}

// alertMessage is the mail of an alert: a short text and the event's
// JSON. Its Message-ID is the event's, so a retried delivery is
// recognisably the same message.
func alertMessage(to string, ev api.AlertEvent, body []byte, now time.Time) mail.Message {
	subject := "Traceless alert: " + ev.Kind
	if ev.Node != nil {
		subject += " — " + ev.Node.Name
	}
	if ev.Pool.Name != "" {
		subject += " (" + ev.Pool.Name + ")"
	}
	var text strings.Builder
	fmt.Fprintf(&text, "Traceless alert: %s\n\n", ev.Kind)
	if ev.Pool.ID != "" {
		fmt.Fprintf(&text, "Pool:  %s (%s), %d of %d nodes online\n", ev.Pool.Name, ev.Pool.Region, ev.Pool.NodesOnline, ev.Pool.Nodes)
	}
	if ev.Node != nil {
		fmt.Fprintf(&text, "Node:  %s\n", ev.Node.Name)
	}
	fmt.Fprintf(&text, "What:  %s\nWhen:  %s\nEvent: %s\n\n", ev.Detail, ev.OccurredAt.UTC().Format(time.RFC3339), ev.ID)
	var pretty bytes.Buffer
	if json.Indent(&pretty, body, "", "  ") == nil {
		text.WriteString(pretty.String())
		text.WriteString("\n")
	}
	return mail.Message{To: to, Subject: subject, Text: text.String(), Date: now,
		MessageID: ev.ID + "@traceless.alerts", AutoSubmitted: true}
}

// Held reports how much the alerter holds in memory about an owner: the
// delivery workers and the channel outcomes. After the owner's account is
// deleted and its queues drained, both are 0.
func (a *Alerter) Held(owner string) (queues, outcomes int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k := range a.workers {
		if k.owner == owner {
			queues++
		}
	}
	for k := range a.states {
		if k.owner == owner {
			outcomes++
		}
	}
	return queues, outcomes
}
