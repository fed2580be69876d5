package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// TestCredentialCommands: key kinds and expiry, a key replaced with a
// grace period, a ticket minted with the secret key and spent by
// 'devices register --ticket', and the device token it yields managing
// its own device (rotate-if-due included) and nothing else.
func TestCredentialCommands(t *testing.T) {
	url, rec := newServer(t)
	s := "--server=" + url
	ok(t, password, s, "signup", "--email", "kim@example.com", "--password-stdin")
	ok(t, "", s, "apps", "create", "phones")

	secret := decode[api.APIKeyCreated](t, ok(t, "", s, "keys", "create", "phones", "backend", "-o", "json"))
	pub := decode[api.APIKeyCreated](t, ok(t, "", s, "keys", "create", "phones", "shipped", "--kind", "publishable", "--expires", "90d", "-o", "json"))
	if secret.Kind != api.KeySecret || !strings.HasPrefix(secret.Key, "tlk_") || pub.Kind != api.KeyPublishable ||
		!strings.HasPrefix(pub.Key, "tlp_") || pub.ExpiresAt == nil || pub.ExpiresAt.Sub(time.Now()) < 89*24*time.Hour {
		t.Fatalf("keys: %+v, %+v", secret, pub)
	}
	for _, bad := range [][]string{
		{s, "keys", "create", "phones", "x", "--kind", "admin"},
		{s, "keys", "create", "phones", "x", "--expires", "soon"},
		{s, "keys", "replace", "phones", pub.ID, "shipped 2"},
		{s, "tickets", "create", "--api-key=" + secret.Key, "--ttl", "11m"},
	} {
		if r := cliRun(t, "", bad...); r.code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage)\n%s", bad[1:], r.code, r.stderr)
		}
	}
	if r := cliRun(t, "", s, "keys", "create", "phones", "shipped"); r.code != 1 || !strings.Contains(r.stderr, "(name)") {
		t.Errorf("a taken name: %+v", r)
	}
	rep := decode[api.KeyReplaced](t, ok(t, "", s, "keys", "replace", "phones", pub.ID, "shipped 2", "--grace", "30d", "-o", "json"))
	if rep.Kind != api.KeyPublishable || rep.Replaced.ExpiresAt == nil || rep.Replaced.ReplacedBy == nil {
		t.Fatalf("keys replace: %+v", rep)
	}
	if r := ok(t, "", s, "keys", "list", "phones"); !strings.Contains(r.stdout, "grace (replaced)") || !strings.Contains(r.stdout, "publishable") {
		t.Errorf("keys list:\n%s", r.stdout)
	}

	// The backend mints a ticket bound to a reference; the app registers.
	tk := decode[api.RegistrationTicket](t, ok(t, "", s, "--api-key="+secret.Key, "tickets", "create", "--external-ref", "user-1", "--ttl", "2m", "-o", "json"))
	if !strings.HasPrefix(tk.Ticket, "tlt_") || tk.ExternalRef == nil || *tk.ExternalRef != "user-1" {
		t.Fatalf("tickets create: %+v", tk)
	}
	if r := cliRun(t, "", s, "--api-key="+pub.Key, "tickets", "create"); r.code != 1 || !strings.Contains(r.stderr, "forbidden") {
		t.Errorf("tickets create with a publishable key: %+v", r)
	}
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "device-token")
	dev := decode[generatedDevice](t, ok(t, "", s, "devices", "register", "--ticket", tk.Ticket, "--generate",
		"--device-token-file", tokenFile, "-o", "json"))
	if dev.ExternalRef == nil || *dev.ExternalRef != "user-1" || dev.DeviceToken != "" || dev.PrivateKey == "" {
		t.Fatalf("register --ticket: %+v", dev)
	}
	checkMode(t, tokenFile, 0o600)
	tok := readToken(t, tokenFile)
	if !strings.HasPrefix(tok, "tld_") || rec.contains(tok) {
		t.Fatalf("device token %q (sent to the server: %v)", tok, rec.contains(tok))
	}
	if r := cliRun(t, "", s, "devices", "register", "--ticket", tk.Ticket, "--generate"); r.code != 1 {
		t.Errorf("a spent ticket: %+v", r)
	}

	// The device token: its own device only.
	d := "--api-key=" + tok
	ok(t, "", s, d, "devices", "get", dev.ID)
	if r := cliRun(t, "", s, d, "devices", "list"); r.code != 1 || !strings.Contains(r.stderr, "forbidden") {
		t.Errorf("devices list with a device token: %+v", r)
	}
	ok(t, "", s, "apps", "update", "phones", "--rotation-days", "1", "--registration-cap", "5")
	if r := ok(t, "", s, "apps", "get", "phones"); !strings.Contains(r.stdout, "5/h (0 refused)") {
		t.Errorf("apps get:\n%s", r.stdout)
	}
	state := filepath.Join(dir, "rotation.json")
	writeState(t, state, rotationState{DeviceID: dev.ID, LastRotated: time.Now().AddDate(0, 0, -2)})
	res := decode[rotateResult](t, ok(t, "", s, d, "devices", "rotate-if-due", dev.ID, "--state-file", state, "--generate",
		"--device-token-file", tokenFile, "-o", "json"))
	if !res.Rotated || res.RotationDays != 1 {
		t.Fatalf("rotate-if-due with the device token: %+v", res)
	}
	newTok := readToken(t, tokenFile)
	if newTok == tok || !strings.HasPrefix(newTok, "tld_") {
		t.Fatalf("token after rotation %q", newTok)
	}
	if r := cliRun(t, "", s, d, "devices", "get", dev.ID); r.code != 1 {
		t.Errorf("the old token after rotation: %+v", r)
	}

	// The owner's backend resets a lost token.
	reset := decode[api.DeviceToken](t, ok(t, "", s, "--api-key="+secret.Key, "devices", "token", dev.ID, "-o", "json"))
	if !strings.HasPrefix(reset.DeviceToken, "tld_") || reset.DeviceToken == newTok {
		t.Fatalf("devices token: %+v", reset)
	}
	ok(t, "", s, "--api-key="+reset.DeviceToken, "devices", "delete", dev.ID)
}

func readToken(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
