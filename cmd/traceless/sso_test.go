package main

import (
	"context"
	"strings"
	"testing"

	"github.com/traceless-vpn/traceless/controlplane"
	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// TestSSOCommands: 'account identities' lists the linked providers,
// 'account unlink' unlinks them (the last with the password), and 'login
// --sso' prints the URL that starts a sign-in in a browser.
func TestSSOCommands(t *testing.T) {
	var st *store.Store
	url, _ := newServer(t, func(o *controlplane.Options) { st = o.Store })
	s := "--server=" + url
	ok(t, password, s, "signup", "--email", "ann@example.com", "--password-stdin")
	me := decode[api.Owner](t, ok(t, "", s, "me", "-o", "json"))
	ctx := context.Background()
	var ids []string
	for _, sub := range []string{"one", "two"} {
		id, err := st.LinkIdentity(ctx, me.ID, "https://id.example.com/", sub)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id.ID)
	}
	r := ok(t, "", s, "account", "identities")
	if !strings.Contains(r.stdout, ids[0]) || !strings.Contains(r.stdout, "https://id.example.com/") {
		t.Fatalf("account identities:\n%s", r.stdout)
	}
	list := decode[api.IdentityList](t, ok(t, "", s, "account", "identities", "-o", "json"))
	if len(list.Identities) != 2 {
		t.Fatalf("identities json: %+v", list)
	}
	// One of two goes without a password.
	if r := ok(t, "", s, "account", "unlink", ids[0]); !strings.Contains(r.stdout, "Unlinked "+ids[0]) {
		t.Fatalf("unlink: %+v", r)
	}
	// The last needs it: a wrong one is refused, the right one works.
	if r := cliRun(t, "not the password", s, "account", "unlink", ids[1], "--password-stdin"); r.code != 1 || !strings.Contains(r.stderr, "password") {
		t.Fatalf("unlink with a wrong password: %+v", r)
	}
	ok(t, password, s, "account", "unlink", ids[1], "--password-stdin")
	if list := decode[api.IdentityList](t, ok(t, "", s, "account", "identities", "-o", "json")); len(list.Identities) != 0 {
		t.Fatalf("left: %+v", list)
	}
	if r := cliRun(t, "", s, "account", "unlink", ids[1]); r.code != 1 || !strings.Contains(r.stderr, "not_found") {
		t.Fatalf("unlink again: %+v", r)
	}

	res := decode[ssoStartResult](t, ok(t, "", s, "login", "--sso", "corp", "-o", "json"))
	if res.URL != url+"/api/v1/auth/oidc/corp/start" {
		t.Fatalf("login --sso: %+v", res)
	}
	if r := ok(t, "", s, "login", "--sso", "corp"); !strings.Contains(r.stdout, url+"/api/v1/auth/oidc/corp/start") || !strings.Contains(r.stderr, "browser") {
		t.Fatalf("login --sso: %+v", r)
	}
}
