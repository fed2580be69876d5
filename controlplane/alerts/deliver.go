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

// Delivery. Each owner has one queue per channel (webhook, email), in
// memory only. A worker delivers a queue's events one at a time, in order;
// an event that fails with a network error, a 5xx, 408 or 429 (or a
// transient SMTP error) is retried with exponential backoff and jitter,
// holding back the events behind it, until it is delivered or RetryFor has
// passed. So a receiver that is down for a while gets every event, in
// order, when it comes back. The queue is bounded (the oldest events go
// first) and is lost when the control plane stops; nothing about
// deliveries is written anywhere.
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

type deliveryQueue struct {
	key   queueKey
	items []queuedEvent
	seq   uint64
}

type queuedEvent struct {
	seq    uint64
	ev     api.AlertEvent
	body   []byte    // the JSON of ev
	queued time.Time // for RetryFor (the real clock: retries wait in real time)
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

// Enqueue queues evs for every channel set names and reports the channels.
func (a *Alerter) Enqueue(set store.AlertSettings, evs []api.AlertEvent) []string {
	chans := a.channels(set)
	bodies := make([][]byte, len(evs))
	for i, ev := range evs {
		bodies[i], _ = json.Marshal(ev)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed || a.ctx.Err() != nil {
		return []string{}
	}
	dropped := 0
	for _, ch := range chans {
		k := queueKey{owner: set.OwnerID, channel: ch}
		q := a.queues[k]
		if q == nil {
			q = &deliveryQueue{key: k}
			a.queues[k] = q
			a.wg.Add(1)
			go a.deliverQueue(q)
		}
		for i, ev := range evs {
			q.seq++
			q.items = append(q.items, queuedEvent{seq: q.seq, ev: ev, body: bodies[i], queued: time.Now()})
		}
		if over := len(q.items) - a.opts.QueueSize; over > 0 {
			q.items = q.items[over:]
			dropped += over
		}
	}
	if dropped > 0 {
		a.deps.Log.LogAttrs(a.ctx, slog.LevelWarn, "alert queue full; oldest events dropped", slog.Int(LogDropped, dropped))
	}
	return chans
}

// deliverQueue is a queue's worker; it ends when the queue is empty or
// the server closes.
func (a *Alerter) deliverQueue(q *deliveryQueue) {
	defer a.wg.Done()
	ctx := a.ctx
	var head uint64
	attempt := 0
	for {
		a.mu.Lock()
		if len(q.items) == 0 {
			delete(a.queues, q.key)
			a.mu.Unlock()
			return
		}
		it := q.items[0]
		a.mu.Unlock()
		if it.seq != head {
			head, attempt = it.seq, 0
		}
		retry, err := a.deliver(ctx, q.key, it)
		if ctx.Err() != nil {
			return
		}
		attempt++
		if err == nil || !retry {
			switch {
			case errors.Is(err, errNoChannel):
				a.ResetDelivery(q.key.owner, q.key.channel)
			case err != nil:
				a.logUndelivered(q.key.channel, it.ev.Kind, "alert not delivered", err)
				a.noteDelivery(q.key, it.ev.Kind, api.DeliveryGaveUp, err, attempt)
			default:
				a.noteDelivery(q.key, it.ev.Kind, api.DeliveryDelivered, nil, attempt)
			}
			a.pop(q, it.seq)
			continue
		}
		wait := a.backoff(attempt - 1)
		if time.Since(it.queued)+wait > a.opts.RetryFor {
			a.logUndelivered(q.key.channel, it.ev.Kind, "alert dropped after retrying", err)
			a.noteDelivery(q.key, it.ev.Kind, api.DeliveryGaveUp, err, attempt)
			a.pop(q, it.seq)
			continue
		}
		a.noteDelivery(q.key, it.ev.Kind, api.DeliveryRetrying, err, attempt)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
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
// this server saw it since it started.
func (a *Alerter) DeliveryView(set store.AlertSettings) []api.AlertDelivery {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := []api.AlertDelivery{}
	for _, ch := range a.channels(set) {
		k := queueKey{owner: set.OwnerID, channel: ch}
		d := api.AlertDelivery{Channel: ch, State: api.DeliveryIdle}
		if st := a.states[k]; st != nil {
			d = *st
		}
		if q := a.queues[k]; q != nil {
			d.Pending = len(q.items)
		}
		out = append(out, d)
	}
	return out
}

func (a *Alerter) logUndelivered(channel, kind, msg string, err error) {
	a.deps.Log.LogAttrs(a.ctx, slog.LevelWarn, msg,
		slog.String(LogChannel, channel), slog.String(LogKind, kind), slog.String(LogError, err.Error()))
}

// pop removes the event seq from the head of q, unless the queue already
// dropped it for space.
func (a *Alerter) pop(q *deliveryQueue, seq uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(q.items) > 0 && q.items[0].seq == seq {
		q.items = q.items[1:]
	}
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
// delivery queues and the channel outcomes. After the owner's account is
// deleted and its queues drained, both are 0.
func (a *Alerter) Held(owner string) (queues, outcomes int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k := range a.queues {
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
