package controlplane

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/mail"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/traceless-vpn/traceless/controlplane/alerts"
	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// TestAlertWebhookRetries: the receiver is down (503) for the first
// attempts while several events queue up; they all arrive, once, in order,
// signed, after retries spaced by a growing backoff.
func TestAlertWebhookRetries(t *testing.T) {
	w := newAlertWorld(t)
	r := newHookReceiver(t)
	secret := w.hook(t, w.owner.Token, r)
	const failures = 5
	r.fail(failures, http.StatusServiceUnavailable)

	var res api.AlertTestResult
	w.h.Do(request{Method: "POST", Path: "/api/v1/alerts/test", Token: w.owner.Token}).MustStatus(t, http.StatusAccepted).MustDecode(t, &res)
	if diff := cmp.Diff([]string{alerts.ChannelWebhook}, res.Queued); diff != "" {
		t.Errorf("queued (-want +got):\n%s", diff)
	}
	w.report(t, w.nodeToken, w.healthy())
	w.check(t)
	w.h.clock.Advance(onlineWindow + time.Second)
	w.check(t) // node_offline, pool_down
	w.report(t, w.nodeToken, w.healthy())
	w.check(t) // node_online, pool_up
	bad := w.healthy()
	bad.Posture.NotDumpable = false
	w.report(t, w.nodeToken, bad)
	w.check(t) // posture_regressed

	want := []string{api.AlertTest, api.AlertNodeOffline, api.AlertPoolDown, api.AlertNodeOnline, api.AlertPoolUp, api.AlertPostureRegressed}
	got := r.waitN(len(want))
	if diff := cmp.Diff(want, kindsOf(got)); diff != "" {
		t.Errorf("delivered (-want +got):\n%s", diff)
	}
	ids := map[string]bool{}
	for _, d := range got {
		if err := api.VerifyAlert(secret, d.Sig, d.Body, w.h.clock.Now(), 5*time.Minute); err != nil {
			t.Errorf("%s: %v (header %q)", d.Event.Kind, err, d.Sig)
		}
		if ids[d.Event.ID] {
			t.Errorf("event %s delivered twice", d.Event.ID)
		}
		ids[d.Event.ID] = true
	}
	at := r.attemptTimes()
	if len(at) != failures+len(want) {
		t.Errorf("%d attempts, want %d failures and %d deliveries", len(at), failures, len(want))
	}
	opts := w.h.srv.alerts.Options()
	for i := 0; i < failures; i++ {
		wait := min(opts.RetryBase<<i, opts.RetryMax) // i is small: no overflow
		if gap := at[i+1].Sub(at[i]); gap < wait/2 {
			t.Errorf("retry %d came %v after the previous attempt; the backoff is at least %v", i+1, gap, wait/2)
		}
	}
}

// TestAlertWebhookGivesUp: 4xx answers are not retried; an event that
// keeps failing is dropped after RetryFor, and the queue moves on. The log
// says so without the URL, the secret or the owner.
func TestAlertWebhookGivesUp(t *testing.T) {
	w := newAlertWorld(t, func(o *Options) { o.Alerts.RetryFor = 150 * time.Millisecond })
	r := newHookReceiver(t)
	secret := w.hook(t, w.owner.Token, r)
	test := func() {
		t.Helper()
		w.h.Do(request{Method: "POST", Path: "/api/v1/alerts/test", Token: w.owner.Token}).MustStatus(t, http.StatusAccepted)
	}

	r.fail(1, http.StatusBadRequest)
	test()
	waitFor(t, "the 400 attempt", func() bool { return len(r.attemptTimes()) == 1 })
	waitFor(t, "the log of the dropped event", func() bool { return strings.Contains(w.h.logs.String(), "alert not delivered") })
	time.Sleep(50 * time.Millisecond)
	if n := len(r.attemptTimes()); n != 1 {
		t.Errorf("a 400 was retried: %d attempts", n)
	}

	r.fail(1000, http.StatusTooManyRequests)
	test()
	waitFor(t, "the event to be given up", func() bool { return strings.Contains(w.h.logs.String(), "alert dropped after retrying") })
	if n := len(r.attemptTimes()); n < 3 {
		t.Errorf("429 retried %d times before giving up", n-1)
	}
	r.fail(0, 0)
	test()
	if got := r.waitN(1); got[0].Event.Kind != api.AlertTest {
		t.Errorf("after giving up, delivered %v", kindsOf(got))
	}

	logs := w.h.logs.String()
	for _, secretish := range []string{r.srv.URL, "/hooks/traceless", secret, w.owner.Owner.ID, w.owner.Owner.Email} {
		if strings.Contains(logs, secretish) {
			t.Errorf("the log contains %q:\n%s", secretish, logs)
		}
	}
	for _, l := range MustParseLogLines(t, logs) {
		if l[logMsgKey] == "alert dropped after retrying" {
			if diff := cmp.Diff(map[string]any{alerts.LogChannel: alerts.ChannelWebhook, alerts.LogKind: api.AlertTest, alerts.LogError: "webhook answered 429"},
				map[string]any{alerts.LogChannel: l[alerts.LogChannel], alerts.LogKind: l[alerts.LogKind], alerts.LogError: l[alerts.LogError]}); diff != "" {
				t.Errorf("log line (-want +got):\n%s", diff)
			}
		}
	}
}

// TestAlertQueueBound: a queue holds at most QueueSize events; the oldest
// go first.
func TestAlertQueueBound(t *testing.T) {
	w := newAlertWorld(t, func(o *Options) { o.Alerts.QueueSize = 3 })
	r := newHookReceiver(t)
	w.hook(t, w.owner.Token, r)
	set, err := w.h.store.GetAlertSettings(context.Background(), w.owner.Owner.ID)
	if err != nil {
		t.Fatal(err)
	}
	var evs []api.AlertEvent
	for _, id := range []string{"e1", "e2", "e3", "e4", "e5"} {
		evs = append(evs, api.AlertEvent{ID: id, Kind: api.AlertTest})
	}
	if _, err := w.h.srv.alerts.Enqueue(context.Background(), set, evs); err != nil {
		t.Fatal(err)
	}
	got := r.waitN(3)
	var ids []string
	for _, d := range got {
		ids = append(ids, d.Event.ID)
	}
	if diff := cmp.Diff([]string{"e3", "e4", "e5"}, ids); diff != "" {
		t.Errorf("delivered (-want +got):\n%s", diff)
	}
	if !strings.Contains(w.h.logs.String(), `"dropped":2`) {
		t.Errorf("no log of the dropped events:\n%s", w.h.logs.String())
	}
}

// TestAlertRemovedChannelDropsQueue: events queued for a webhook the owner
// then removes are not sent anywhere.
func TestAlertRemovedChannelDropsQueue(t *testing.T) {
	w := newAlertWorld(t)
	r := newHookReceiver(t)
	w.hook(t, w.owner.Token, r)
	r.fail(1000, http.StatusServiceUnavailable)
	w.h.Do(request{Method: "POST", Path: "/api/v1/alerts/test", Token: w.owner.Token}).MustStatus(t, http.StatusAccepted)
	waitFor(t, "a failed attempt", func() bool { return len(r.attemptTimes()) > 0 })
	w.putAlerts(t, w.owner.Token, api.AlertSettingsInput{WebhookURL: new("")})
	waitFor(t, "the queue to go", func() bool {
		queues, _ := w.h.srv.alerts.Held(w.owner.Owner.ID)
		return queues == 0
	})
	if got := r.deliveries(); len(got) != 0 {
		t.Errorf("delivered after the webhook was removed: %v", kindsOf(got))
	}
}

// fakeSMTP is a minimal SMTP server on 127.0.0.1: it offers AUTH PLAIN (no
// STARTTLS), records what it receives, and can refuse RCPT with 451.
type fakeSMTP struct {
	ln net.Listener
	wg sync.WaitGroup

	mu       sync.Mutex
	failRcpt int
	auths    []string
	msgs     []smtpMsg
}

type smtpMsg struct {
	From string
	To   []string
	Data string
}

func newFakeSMTP(t *testing.T) *fakeSMTP {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeSMTP{ln: ln}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.wg.Add(1)
			go func() { defer f.wg.Done(); f.serve(c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); f.wg.Wait() })
	return f
}

func (f *fakeSMTP) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	tp := textproto.NewConn(c)
	var m smtpMsg
	tp.PrintfLine("220 fake.test ESMTP")
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO", "HELO":
			tp.PrintfLine("250-fake.test")
			tp.PrintfLine("250-AUTH PLAIN")
			tp.PrintfLine("250 8BITMIME")
		case "AUTH":
			_, b64, _ := strings.Cut(arg, " ")
			cred, _ := base64.StdEncoding.DecodeString(b64)
			f.mu.Lock()
			f.auths = append(f.auths, string(cred))
			f.mu.Unlock()
			tp.PrintfLine("235 2.7.0 ok")
		case "MAIL":
			m = smtpMsg{From: smtpPath(arg, "FROM:")}
			tp.PrintfLine("250 ok")
		case "RCPT":
			f.mu.Lock()
			refuse := f.failRcpt > 0
			if refuse {
				f.failRcpt--
			}
			f.mu.Unlock()
			if refuse {
				tp.PrintfLine("451 4.3.0 try again later")
				continue
			}
			m.To = append(m.To, smtpPath(arg, "TO:"))
			tp.PrintfLine("250 ok")
		case "DATA":
			tp.PrintfLine("354 go ahead")
			data, err := tp.ReadDotBytes()
			if err != nil {
				return
			}
			m.Data = string(data)
			f.mu.Lock()
			f.msgs = append(f.msgs, m)
			f.mu.Unlock()
			tp.PrintfLine("250 queued")
		case "RSET", "NOOP":
			tp.PrintfLine("250 ok")
		case "QUIT":
			tp.PrintfLine("221 bye")
			return
		default:
			tp.PrintfLine("502 not implemented")
		}
	}
}

// smtpPath returns the address of "FROM:<a> BODY=8BITMIME".
func smtpPath(arg, prefix string) string {
	arg, _, _ = strings.Cut(strings.TrimPrefix(arg, prefix), " ")
	return strings.Trim(arg, "<>")
}

func (f *fakeSMTP) messages() []smtpMsg {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]smtpMsg(nil), f.msgs...)
}

// parseAlertMail reads a message the fake received and returns its
// subject and the event in its body.
func parseAlertMail(t *testing.T, data string) (string, api.AlertEvent) {
	t.Helper()
	msg, err := mail.ReadMessage(strings.NewReader(data))
	if err != nil {
		t.Fatalf("not a mail message: %v\n%s", err, data)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatal(err)
	}
	text := string(body)
	i := strings.Index(text, "{")
	var ev api.AlertEvent
	if i < 0 || json.NewDecoder(bufio.NewReader(strings.NewReader(text[i:]))).Decode(&ev) != nil {
		t.Fatalf("no event JSON in the body:\n%s", text)
	}
	return subject, ev
}

// TestAlertEmail delivers alerts through an in-process SMTP server, with
// PLAIN authentication, and retries a transient (451) refusal.
func TestAlertEmail(t *testing.T) {
	f := newFakeSMTP(t)
	w := newAlertWorld(t, func(o *Options) {
		o.Alerts.SMTP = SMTPConfig{Addr: f.ln.Addr().String(), From: "alerts@traceless.test", Username: "mailer", Password: "mail secret"}
		o.SkipEmailVerification = true // only alert mail reaches the fake server
	})
	tok := w.owner.Token
	set := w.putAlerts(t, tok, api.AlertSettingsInput{Email: new("Ops@Example.COM")})
	if set.Email != "ops@example.com" || !set.EmailAvailable {
		t.Fatalf("settings = %+v", set)
	}
	r := newHookReceiver(t)
	w.hook(t, tok, r)

	var res api.AlertTestResult
	w.h.Do(request{Method: "POST", Path: "/api/v1/alerts/test", Token: tok}).MustStatus(t, http.StatusAccepted).MustDecode(t, &res)
	if diff := cmp.Diff([]string{alerts.ChannelWebhook, alerts.ChannelEmail}, res.Queued); diff != "" {
		t.Errorf("queued (-want +got):\n%s", diff)
	}
	waitFor(t, "the test mail", func() bool { return len(f.messages()) == 1 })
	m := f.messages()[0]
	if m.From != "alerts@traceless.test" || !cmp.Equal(m.To, []string{"ops@example.com"}) {
		t.Errorf("envelope: from %q to %v", m.From, m.To)
	}
	subject, ev := parseAlertMail(t, m.Data)
	if subject != "Traceless alert: test" || ev.Kind != api.AlertTest {
		t.Errorf("subject %q, event %+v", subject, ev)
	}
	f.mu.Lock()
	auths := append([]string(nil), f.auths...)
	f.mu.Unlock()
	if diff := cmp.Diff([]string{"\x00mailer\x00mail secret"}, auths); diff != "" {
		t.Errorf("AUTH PLAIN (-want +got):\n%s", diff)
	}

	// A node goes offline while the mail server refuses for a moment.
	f.mu.Lock()
	f.failRcpt = 2
	f.mu.Unlock()
	w.report(t, w.nodeToken, w.healthy())
	w.check(t)
	w.h.clock.Advance(onlineWindow + time.Second)
	w.check(t)
	waitFor(t, "the alert mails", func() bool { return len(f.messages()) == 3 })
	var kinds []string
	for _, m := range f.messages()[1:] {
		subject, ev := parseAlertMail(t, m.Data)
		kinds = append(kinds, ev.Kind)
		if ev.Kind == api.AlertNodeOffline && subject != "Traceless alert: node_offline — node-1 (Frankfurt)" {
			t.Errorf("subject = %q", subject)
		}
	}
	if diff := cmp.Diff([]string{api.AlertNodeOffline, api.AlertPoolDown}, kinds); diff != "" {
		t.Errorf("mails (-want +got):\n%s", diff)
	}
	r.waitN(3) // the webhook got the same, independently
	if logs := w.h.logs.String(); strings.Contains(logs, "ops@example.com") || strings.Contains(logs, "mail secret") {
		t.Errorf("the log names the address or the SMTP password:\n%s", logs)
	}
}

// TestAlertEmailSettingsStore: an email-only owner stores no webhook or
// secret; a bad address is refused; clearing it keeps nothing.
func TestAlertEmailSettingsStore(t *testing.T) {
	f := newFakeSMTP(t)
	w := newAlertWorld(t, func(o *Options) {
		o.Alerts.SMTP = SMTPConfig{Addr: f.ln.Addr().String(), From: "a@traceless.test"}
		o.SkipEmailVerification = true
	})
	w.putAlerts(t, w.owner.Token, api.AlertSettingsInput{Email: new("ops@example.com")})
	st, err := w.h.store.GetAlertSettings(context.Background(), w.owner.Owner.ID)
	if err != nil || st.Email != "ops@example.com" || st.WebhookURL != "" || st.WebhookSecret != "" {
		t.Fatalf("stored %+v, %v", st, err)
	}
	w.h.Do(request{Method: "PUT", Path: "/api/v1/alerts/settings", Token: w.owner.Token, Body: map[string]any{"email": "not an address"}}).
		MustHaveError(t, wantErr{Status: 400, Code: api.CodeInvalidRequest, Field: "email"})
	w.putAlerts(t, w.owner.Token, api.AlertSettingsInput{Email: new("")})
	if _, err := w.h.store.GetAlertSettings(context.Background(), w.owner.Owner.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("settings that ask for nothing are still stored: %v", err)
	}
}

// deliveryOf returns the owner's delivery outcome of channel as GET
// /api/v1/alerts/settings shows it.
func (w *alertWorld) deliveryOf(t *testing.T, token, channel string) (api.AlertDelivery, bool) {
	t.Helper()
	var set api.AlertSettings
	w.h.Do(request{Method: "GET", Path: "/api/v1/alerts/settings", Token: token}).MustStatus(t, http.StatusOK).MustDecode(t, &set)
	for _, d := range set.Delivery {
		if d.Channel == channel {
			return d, true
		}
	}
	return api.AlertDelivery{}, false
}

// waitDelivery waits until the channel's outcome satisfies cond.
func (w *alertWorld) waitDelivery(t *testing.T, token, channel, what string, cond func(api.AlertDelivery) bool) api.AlertDelivery {
	t.Helper()
	var d api.AlertDelivery
	waitFor(t, what, func() bool {
		d, _ = w.deliveryOf(t, token, channel)
		return cond(d)
	})
	return d
}

// TestAlertDeliveryState: the owner sees each channel's outcome (idle,
// retrying, gave up, delivered) with the last failure described without
// the URL, per owner, from memory; a changed channel starts afresh and a
// deleted account leaves nothing behind.
func TestAlertDeliveryState(t *testing.T) {
	w := newAlertWorld(t, func(o *Options) { o.Alerts.RetryFor = 300 * time.Millisecond })
	tok := w.owner.Token
	r := newHookReceiver(t)
	w.hook(t, tok, r)
	if d, ok := w.deliveryOf(t, tok, alerts.ChannelWebhook); !ok || d != (api.AlertDelivery{Channel: alerts.ChannelWebhook, State: api.DeliveryIdle}) {
		t.Fatalf("before any event: %+v, %v", d, ok)
	}
	test := func() {
		t.Helper()
		w.h.Do(request{Method: "POST", Path: "/api/v1/alerts/test", Token: tok}).MustStatus(t, http.StatusAccepted)
	}

	// Down: retrying, then given up at the end of the retry period.
	r.fail(1000, http.StatusServiceUnavailable)
	test()
	d := w.waitDelivery(t, tok, alerts.ChannelWebhook, "retrying", func(d api.AlertDelivery) bool { return d.State == api.DeliveryRetrying })
	if d.Kind != api.AlertTest || d.Error != "webhook answered 503" || d.Attempts < 1 || d.Pending != 1 || d.Delivered != 0 {
		t.Errorf("retrying: %+v", d)
	}
	d = w.waitDelivery(t, tok, alerts.ChannelWebhook, "gave up", func(d api.AlertDelivery) bool { return d.State == api.DeliveryGaveUp })
	if d.Error != "webhook answered 503" || d.GaveUp != 1 || d.Attempts < 2 || d.Pending != 0 {
		t.Errorf("gave up: %+v", d)
	}

	// Back: delivered, the failure cleared.
	r.fail(0, 0)
	test()
	d = w.waitDelivery(t, tok, alerts.ChannelWebhook, "delivered", func(d api.AlertDelivery) bool { return d.State == api.DeliveryDelivered })
	if d != (api.AlertDelivery{Channel: alerts.ChannelWebhook, State: api.DeliveryDelivered, Kind: api.AlertTest, Delivered: 1, GaveUp: 1}) {
		t.Errorf("delivered: %+v", d)
	}

	// A refusal (4xx) is given up at once.
	r.fail(1, http.StatusNotFound)
	test()
	d = w.waitDelivery(t, tok, alerts.ChannelWebhook, "refused", func(d api.AlertDelivery) bool { return d.GaveUp == 2 })
	if d.State != api.DeliveryGaveUp || d.Error != "webhook answered 404" || d.Attempts != 1 {
		t.Errorf("refused: %+v", d)
	}
	b, _ := json.Marshal(d)
	host := strings.TrimPrefix(r.srv.URL, "http://")
	for _, s := range []string{host, "/hooks/traceless", "127.0.0.1"} {
		if strings.Contains(string(b), s) {
			t.Errorf("the delivery outcome names %q: %s", s, b)
		}
	}

	// Another owner sees nothing of it.
	other := w.h.MustOwner()
	var set api.AlertSettings
	w.h.Do(request{Method: "GET", Path: "/api/v1/alerts/settings", Token: other.Token}).MustStatus(t, 200).MustDecode(t, &set)
	if len(set.Delivery) != 0 {
		t.Errorf("another owner sees deliveries: %+v", set.Delivery)
	}

	// A new URL starts afresh.
	r2 := newHookReceiver(t)
	w.putAlerts(t, tok, api.AlertSettingsInput{WebhookURL: new(r2.URL("/other"))})
	if d, _ := w.deliveryOf(t, tok, alerts.ChannelWebhook); d != (api.AlertDelivery{Channel: alerts.ChannelWebhook, State: api.DeliveryIdle}) {
		t.Errorf("after a new URL: %+v", d)
	}

	// The account's deletion leaves nothing in memory.
	test()
	w.waitDelivery(t, tok, alerts.ChannelWebhook, "delivered to the new URL", func(d api.AlertDelivery) bool { return d.Delivered == 1 })
	w.h.Do(request{Method: "DELETE", Path: "/api/v1/me", Token: tok}).MustStatus(t, http.StatusNoContent)
	waitFor(t, "the deleted account's queues to go", func() bool {
		queues, _ := w.h.srv.alerts.Held(w.owner.Owner.ID)
		return queues == 0
	})
	if _, outcomes := w.h.srv.alerts.Held(w.owner.Owner.ID); outcomes != 0 {
		t.Errorf("%d delivery outcomes of a deleted account kept", outcomes)
	}
}

// TestAlertDeliveryDocumented: the settings' delivery outcome is in the
// served OpenAPI document, with its states.
func TestAlertDeliveryDocumented(t *testing.T) {
	h := newHarness(t)
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Enum []string `json:"enum"`
					Ref  string   `json:"$ref"`
					Item *struct {
						Ref string `json:"$ref"`
					} `json:"items"`
				} `json:"properties"`
				Required []string `json:"required"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(h.Do(request{Method: "GET", Path: "/api/v1/openapi.json"}).MustStatus(t, 200).Body, &doc); err != nil {
		t.Fatal(err)
	}
	settings := doc.Components.Schemas["AlertSettings"]
	if p, ok := settings.Properties["delivery"]; !ok || p.Item == nil || p.Item.Ref != "#/components/schemas/AlertDelivery" {
		t.Fatalf("AlertSettings.delivery = %+v", p)
	}
	if !slices.Contains(settings.Required, "delivery") {
		t.Error("AlertSettings.delivery is not required")
	}
	del := doc.Components.Schemas["AlertDelivery"]
	if diff := cmp.Diff(api.AlertDeliveryStates, del.Properties["state"].Enum); diff != "" {
		t.Errorf("AlertDelivery.state enum (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{alerts.ChannelWebhook, alerts.ChannelEmail}, del.Properties["channel"].Enum); diff != "" {
		t.Errorf("AlertDelivery.channel enum (-want +got):\n%s", diff)
	}
}

// TestAlertOutboxSurvivesRestart: events queued while the receiver is down
// are in the database, not in the server's memory: after the server stops
// and another starts on the same database, every one arrives, in order,
// each with its ID as the Idempotency-Key header; then the outbox is
// empty.
func TestAlertOutboxSurvivesRestart(t *testing.T) {
	w := newAlertWorld(t)
	r := newHookReceiver(t)
	w.hook(t, w.owner.Token, r)
	r.fail(1000, http.StatusServiceUnavailable)
	ctx := context.Background()
	set, err := w.h.store.GetAlertSettings(ctx, w.owner.Owner.ID)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	var evs []api.AlertEvent
	for i := range 5 {
		id := fmt.Sprintf("00000000-0000-4000-8000-00000000000%d", i)
		want = append(want, id)
		evs = append(evs, api.AlertEvent{ID: id, Kind: api.AlertTest})
	}
	if _, err := w.h.srv.alerts.Enqueue(ctx, set, evs); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "failed attempts", func() bool { return len(r.attemptTimes()) >= 2 })
	w.h.srv.Close()
	r.fail(0, 0)

	srv := MustNew(t, w.h.opts) // a new process on the same database
	got := r.waitN(len(want))
	var ids []string
	for _, d := range got {
		ids = append(ids, d.Event.ID)
		if d.Key != d.Event.ID {
			t.Errorf("Idempotency-Key %q for event %s", d.Key, d.Event.ID)
		}
	}
	if diff := cmp.Diff(want, ids); diff != "" {
		t.Errorf("delivered after the restart (-want +got):\n%s", diff)
	}
	waitFor(t, "the outbox to empty", func() bool {
		qs, err := srv.store.AlertQueues(ctx, "")
		return err == nil && len(qs) == 0
	})
}
