package client_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/traceless-vpn/traceless/controlplane"
	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/controlplane/client"
)

func TestAlerts(t *testing.T) {
	ctx := context.Background()
	type delivery struct {
		sig  string
		body []byte
	}
	var mu sync.Mutex
	var got []delivery
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, delivery{r.Header.Get(api.AlertSignatureHeader), b})
		mu.Unlock()
	}))
	defer recv.Close()
	url := newServer(t, func(o *controlplane.Options) { o.Alerts.AllowPrivateTargets = true })
	c := owner(t, url, "vic@example.com")

	s, err := c.AlertSettings(ctx)
	if err != nil || s.WebhookURL != "" || s.WebhookSecret != "" {
		t.Fatalf("settings: %+v, %v", s, err)
	}
	// Nothing stored, nothing sent.
	res, err := c.TestAlert(ctx)
	if err != nil || len(res.Queued) != 0 {
		t.Fatalf("test without settings: %+v, %v", res, err)
	}

	hook := recv.URL + "/hook"
	events := []string{api.AlertNodeOffline, api.AlertPoolDown}
	s, err = c.UpdateAlertSettings(ctx, api.AlertSettingsInput{WebhookURL: &hook, Events: &events})
	if err != nil || s.WebhookURL != hook || !strings.HasPrefix(s.WebhookSecret, "tlw_") || !slices.Equal(s.Events, events) {
		t.Fatalf("set webhook: %+v, %v", s, err)
	}
	secret := s.WebhookSecret
	if again, err := c.AlertSettings(ctx); err != nil || again.WebhookSecret != "" || again.WebhookURL != hook {
		t.Fatalf("the secret is shown again: %+v, %v", again, err)
	}
	badKinds := []string{"nope"}
	_, err = c.UpdateAlertSettings(ctx, api.AlertSettingsInput{Events: &badKinds})
	wantCode(t, err, http.StatusBadRequest, api.CodeInvalidRequest)
	private := "https://169.254.169.254/hook" // link-local: refused even with private targets allowed
	_, err = c.UpdateAlertSettings(ctx, api.AlertSettingsInput{WebhookURL: &private})
	wantCode(t, err, http.StatusBadRequest, api.CodeInvalidRequest)

	res, err = c.TestAlert(ctx)
	if err != nil || !slices.Equal(res.Queued, []string{"webhook"}) {
		t.Fatalf("test: %+v, %v", res, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no webhook delivery")
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	d := got[0]
	mu.Unlock()
	if err := api.VerifyAlert(secret, d.sig, d.body, time.Now(), 5*time.Minute); err != nil {
		t.Fatalf("delivery signature: %v (%s)", err, d.body)
	}

	rot, err := c.UpdateAlertSettings(ctx, api.AlertSettingsInput{RotateSecret: true})
	if err != nil || rot.WebhookSecret == "" || rot.WebhookSecret == secret {
		t.Fatalf("rotate secret: %+v, %v", rot, err)
	}

	h, err := c.AlertHistory(ctx, client.ListOptions{})
	if err != nil || h.History || len(h.Entries) != 0 {
		t.Fatalf("history off: %+v, %v", h, err)
	}
	on, days := true, 7
	s, err = c.UpdateAlertSettings(ctx, api.AlertSettingsInput{History: &on, RetentionDays: &days})
	if err != nil || !s.History || s.RetentionDays != 7 {
		t.Fatalf("history on: %+v, %v", s, err)
	}
	h, err = c.AlertHistory(ctx, client.ListOptions{})
	if err != nil || !h.History {
		t.Fatalf("history: %+v, %v", h, err)
	}
	for e, err := range c.AllAlertHistory(ctx, 10) {
		if err != nil {
			t.Fatalf("all history: %v", err)
		}
		if e.ID == "" {
			t.Fatalf("entry: %+v", e)
		}
	}
	if err := c.DeleteAlertHistory(ctx); err != nil {
		t.Fatalf("delete history: %v", err)
	}
	empty := ""
	s, err = c.UpdateAlertSettings(ctx, api.AlertSettingsInput{WebhookURL: &empty})
	if err != nil || s.WebhookURL != "" {
		t.Fatalf("remove webhook: %+v, %v", s, err)
	}
}
