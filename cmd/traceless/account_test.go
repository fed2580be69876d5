package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/controlplane/client"
)

// operator returns an SDK client signed in as the operator, for the steps
// of a test that are not under test.
func operator(t *testing.T, url string) *client.Client {
	t.Helper()
	c, err := client.New(url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Login(context.Background(), opEmail, opPassword); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPolicyCommands(t *testing.T) {
	url, _ := newServer(t)
	s := "--server=" + url

	// Signed out: the versions and the text.
	r := ok(t, "", s, "policy", "show")
	if !strings.Contains(r.stdout, "VERSION") || !strings.Contains(r.stdout, "current") || strings.Contains(r.stdout, "You accepted") {
		t.Fatalf("policy show: %s", r.stdout)
	}
	st := decode[policyResult](t, ok(t, "", s, "policy", "show", "-o", "json"))
	if st.Current.Version == "" || st.Current.Text == "" || st.AcceptedVersion != nil {
		t.Fatalf("policy show json: %+v", st)
	}
	if !strings.Contains(r.stdout, strings.SplitN(strings.TrimSpace(st.Current.Text), "\n", 2)[0]) {
		t.Fatalf("policy show lacks the text: %s", r.stdout)
	}
	if r := ok(t, "", s, "policy", "show", "--brief"); strings.Contains(r.stdout, strings.TrimSpace(st.Current.Text)[:20]) {
		t.Fatalf("--brief printed the text: %s", r.stdout)
	}

	ok(t, password, s, "signup", "--email", "ann@example.com", "--password-stdin")
	if r := ok(t, "", s, "policy", "show", "--brief"); !strings.Contains(r.stdout, "You accepted: none yet") {
		t.Fatalf("policy show signed in: %s", r.stdout)
	}
	r = ok(t, "", s, "policy", "accept")
	if !strings.Contains(r.stdout, "You accepted version "+st.Current.Version) {
		t.Fatalf("policy accept: %s", r.stdout)
	}
	o := decode[api.Owner](t, ok(t, "", s, "policy", "accept", st.Current.Version, "-o", "json"))
	if o.AcceptedPolicyVersion != st.Current.Version {
		t.Fatalf("policy accept VERSION: %+v", o)
	}
	if got := decode[policyResult](t, ok(t, "", s, "policy", "show", "-o", "json")); got.AcceptedVersion == nil || *got.AcceptedVersion != st.Current.Version {
		t.Fatalf("accepted version: %+v", got.AcceptedVersion)
	}
	if r := cliRun(t, "", s, "policy", "accept", "no-such-version"); r.code != 1 || !strings.HasPrefix(r.stderr, "traceless: invalid_request: ") {
		t.Fatalf("unknown version: %+v", r)
	}
	if r := cliRun(t, "", s, "policy", "accept", "1", "2"); r.code != 2 {
		t.Fatalf("two versions: %+v", r)
	}
}

func TestAccountExportAndDelete(t *testing.T) {
	url, _ := newServer(t)
	s := "--server=" + url
	ok(t, password, s, "signup", "--email", "ben@example.com", "--password-stdin")
	ok(t, "", s, "apps", "create", "ben-app")

	// To stdout: the export's JSON, whatever --output says.
	for _, args := range [][]string{{"account", "export"}, {"account", "export", "-o", "json"}} {
		ex := decode[api.Export](t, ok(t, "", append([]string{s}, args...)...))
		if ex.GeneratedAt.IsZero() || len(ex.Tables["owners"]) != 1 || ex.Tables["owners"][0]["email"] != "ben@example.com" {
			t.Fatalf("export: %+v", ex)
		}
	}
	out := filepath.Join(t.TempDir(), "export.json")
	r := ok(t, "", s, "account", "export", "--out", out)
	if !strings.Contains(r.stdout, "Wrote "+out) {
		t.Fatalf("export --out: %+v", r)
	}
	checkMode(t, out, 0o600)
	b, _ := os.ReadFile(out)
	var ex api.Export
	if err := json.Unmarshal(b, &ex); err != nil || len(ex.Tables["apps"]) != 1 || ex.Tables["apps"][0]["name"] != "ben-app" {
		t.Fatalf("export file: %v\n%s", err, b)
	}
	if res := decode[exportResult](t, ok(t, "", s, "account", "export", "--out", out, "-o", "json")); res.File != out || res.Tables == 0 {
		t.Fatalf("export --out json: %+v", res)
	}

	// Without a terminal, deletion needs --yes.
	if r := cliRun(t, "", s, "account", "delete"); r.code != 2 || !strings.Contains(r.stderr, "--yes") {
		t.Fatalf("delete without --yes: %+v", r)
	}

	// A legal hold refuses, and the reason is printed.
	op := operator(t, url)
	ctx := context.Background()
	me := decode[api.Owner](t, ok(t, "", s, "me", "-o", "json"))
	if _, err := op.UpdateOwner(ctx, me.ID, api.OwnerUpdate{LegalHold: client.SetLegalHold("subpoena 99")}); err != nil {
		t.Fatal(err)
	}
	r = cliRun(t, "", s, "account", "delete", "--yes")
	if r.code != 1 || !strings.Contains(r.stderr, "traceless: legal_hold: ") || !strings.Contains(r.stderr, "subpoena 99") {
		t.Fatalf("delete under hold: %+v", r)
	}
	ok(t, "", s, "me") // still there

	if _, err := op.UpdateOwner(ctx, me.ID, api.OwnerUpdate{LegalHold: client.ReleaseLegalHold()}); err != nil {
		t.Fatal(err)
	}
	r = ok(t, "", s, "account", "delete", "--yes")
	if !strings.Contains(r.stdout, "Deleted the account ben@example.com") {
		t.Fatalf("delete: %+v", r)
	}
	if _, found, _ := loadSession(); found {
		t.Fatal("the session of the deleted account is still saved")
	}
	if r := cliRun(t, "", s, "me"); r.code != 1 || !strings.Contains(r.stderr, "not logged in") {
		t.Fatalf("me after delete: %+v", r)
	}
	if r := cliRun(t, password+"\n", s, "login", "--email", "ben@example.com", "--password-stdin"); r.code != 1 ||
		!strings.HasPrefix(r.stderr, "traceless: unauthorized: ") {
		t.Fatalf("login after delete: %+v", r)
	}
	owners, err := op.AdminOwners(ctx, client.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range owners.Owners {
		if o.Email == "ben@example.com" {
			t.Fatal("the owner is still listed")
		}
	}
}
