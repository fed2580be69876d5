package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/traceless-vpn/traceless/controlplane"
	"github.com/traceless-vpn/traceless/controlplane/api"
)

func TestAlertsCommands(t *testing.T) {
	var deliveries atomic.Int32
	var refuse atomic.Bool
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if refuse.Load() {
			w.WriteHeader(http.StatusGone)
			return
		}
		if r.Header.Get(api.AlertSignatureHeader) != "" {
			deliveries.Add(1)
		}
	}))
	defer recv.Close()
	url, _ := newServer(t, func(o *controlplane.Options) { o.Alerts.AllowPrivateTargets = true })
	s := "--server=" + url
	ok(t, password, s, "signup", "--email", "fay@example.com", "--password-stdin")

	set := decode[api.AlertSettings](t, ok(t, "", s, "alerts", "show", "-o", "json"))
	if set.WebhookURL != "" || set.Events == nil {
		t.Fatalf("alerts show: %+v", set)
	}
	if r := ok(t, "", s, "alerts", "test"); !strings.Contains(r.stdout, "nothing was sent") {
		t.Fatalf("alerts test without settings: %s", r.stdout)
	}
	if r := cliRun(t, "", s, "alerts", "set"); r.code != 2 {
		t.Fatalf("alerts set without flags: %+v", r)
	}

	r := ok(t, "", s, "alerts", "set", "--webhook-url", recv.URL+"/hook", "--events", "node_offline,pool_down")
	if !strings.Contains(r.stdout, "WEBHOOK SECRET") || !strings.Contains(r.stdout, "tlw_") || !strings.Contains(r.stderr, "only this once") {
		t.Fatalf("alerts set: %+v", r)
	}
	if r := ok(t, "", s, "alerts", "show"); strings.Contains(r.stdout, "tlw_") || !strings.Contains(r.stdout, "node_offline, pool_down") {
		t.Fatalf("alerts show: %s", r.stdout)
	}
	if r := cliRun(t, "", s, "alerts", "set", "--events", "bogus"); r.code != 1 || !strings.HasPrefix(r.stderr, "traceless: invalid_request: ") {
		t.Fatalf("bad kind: %+v", r)
	}
	if r := ok(t, "", s, "alerts", "test"); !strings.Contains(r.stdout, "webhook") {
		t.Fatalf("alerts test: %s", r.stdout)
	}
	for deadline := time.Now().Add(10 * time.Second); deliveries.Load() == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no webhook delivery")
		}
	}
	// The channel's outcome: delivered, then given up after a refusal.
	waitDelivery := func(state string) []api.AlertDelivery {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			d := decode[[]api.AlertDelivery](t, ok(t, "", s, "alerts", "delivery", "-o", "json"))
			if len(d) == 1 && d[0].State == state {
				return d
			}
			if time.Now().After(deadline) {
				t.Fatalf("alerts delivery: %+v, want %s", d, state)
			}
		}
	}
	if d := waitDelivery(api.DeliveryDelivered); d[0].Channel != "webhook" || d[0].Kind != api.AlertTest || d[0].Delivered != 1 {
		t.Fatalf("alerts delivery: %+v", d)
	}
	if r := ok(t, "", s, "alerts", "show"); !strings.Contains(r.stdout, "DELIVERY (WEBHOOK)") || !strings.Contains(r.stdout, "delivered (test)") {
		t.Fatalf("alerts show: %s", r.stdout)
	}
	refuse.Store(true)
	ok(t, "", s, "alerts", "test")
	waitDelivery(api.DeliveryGaveUp)
	r = ok(t, "", s, "alerts", "delivery")
	host := strings.TrimPrefix(recv.URL, "http://")
	if !strings.Contains(r.stdout, "gave up") || !strings.Contains(r.stdout, "webhook answered 410") || strings.Contains(r.stdout, host) {
		t.Fatalf("alerts delivery: %s", r.stdout)
	}
	if r := ok(t, "", s, "alerts", "show"); !strings.Contains(r.stdout, "gave up (test, 1 attempts): webhook answered 410") {
		t.Fatalf("alerts show: %s", r.stdout)
	}
	refuse.Store(false)

	set = decode[api.AlertSettings](t, ok(t, "", s, "alerts", "set", "--history", "--retention-days", "30", "-o", "json"))
	if !set.History || set.RetentionDays != 30 || set.WebhookSecret != "" {
		t.Fatalf("history on: %+v", set)
	}
	if got := decode[[]api.AlertHistoryEntry](t, ok(t, "", s, "alerts", "history", "-o", "json")); got == nil {
		t.Fatal("history printed null")
	}
	if r := ok(t, "", s, "alerts", "history"); !strings.Contains(r.stdout, "KIND") {
		t.Fatalf("history: %s", r.stdout)
	}
	ok(t, "", s, "alerts", "clear-history")
	set = decode[api.AlertSettings](t, ok(t, "", s, "alerts", "set", "--webhook-url", "", "--events", "", "--history=false", "-o", "json"))
	if set.WebhookURL != "" || len(set.Events) != 0 || set.History {
		t.Fatalf("all off: %+v", set)
	}
}
