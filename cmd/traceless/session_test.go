package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/traceless-vpn/traceless/internal/version"
)

// TestRememberedServer checks that commands without --server go to the
// server of the last login, and that --server and TRACELESS_SERVER still
// win over it.
func TestRememberedServer(t *testing.T) {
	url, _ := newServer(t)
	other, _ := newServer(t) // isolates the config directory again: nothing is remembered yet

	// Nothing remembered: the default server.
	if r := cliRun(t, "", "me"); r.code != 1 || !strings.Contains(r.stderr, "not logged in to "+defaultServer) {
		t.Fatalf("me before any login: %+v", r)
	}

	ok(t, password, "--server", url, "signup", "--email", "erin@example.com", "--password-stdin")
	checkMode(t, filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "traceless", "config.json"), 0o600)

	// Plain commands now go to that server, and 'me' says which it is.
	r := ok(t, "", "me")
	if !strings.Contains(r.stdout, "SERVER") || !strings.Contains(r.stdout, url) || !strings.Contains(r.stdout, "erin@example.com") {
		t.Fatalf("me: %s", r.stdout)
	}
	me := decode[meResult](t, ok(t, "", "me", "-o", "json"))
	if me.Server != url || me.Email != "erin@example.com" {
		t.Fatalf("me json: %+v", me)
	}

	// --server wins over the remembered server.
	if r := cliRun(t, "", "--server", other, "me"); r.code != 1 || !strings.Contains(r.stderr, "not logged in to "+other) {
		t.Fatalf("me --server other: %+v", r)
	}
	// So does TRACELESS_SERVER, and --server wins over it.
	t.Setenv(envServer, other)
	if r := cliRun(t, "", "me"); r.code != 1 || !strings.Contains(r.stderr, "not logged in to "+other) {
		t.Fatalf("me with %s: %+v", envServer, r)
	}
	if me := decode[meResult](t, ok(t, "", "--server", url, "me", "-o", "json")); me.Server != url {
		t.Fatalf("me --server over %s: %+v", envServer, me)
	}
	t.Setenv(envServer, "")

	// Logging out forgets the session, not the server: the next login goes
	// there too, and a login elsewhere moves the default.
	ok(t, "", "logout")
	if r := cliRun(t, "", "me"); r.code != 1 || !strings.Contains(r.stderr, "not logged in to "+url) {
		t.Fatalf("me after logout: %+v", r)
	}
	if r := ok(t, password, "login", "--email", "erin@example.com", "--password-stdin"); !strings.Contains(r.stdout, "Signed in to "+url) {
		t.Fatalf("login without --server: %s", r.stdout)
	}
	ok(t, opPassword, "--server", other, "login", "--email", opEmail, "--password-stdin")
	if me := decode[meResult](t, ok(t, "", "me", "-o", "json")); me.Server != other || me.Email != opEmail {
		t.Fatalf("me after a login elsewhere: %+v", me)
	}

	// A damaged settings file is reported, not silently ignored.
	p := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "traceless", "config.json")
	if err := os.WriteFile(p, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := cliRun(t, "", "me"); r.code != 1 || !strings.Contains(r.stderr, "damaged") {
		t.Fatalf("damaged settings: %+v", r)
	}
	ok(t, "", "--server", other, "me")
}

func TestVersion(t *testing.T) {
	isolate(t)
	r := cliRun(t, "", "--version")
	if want := version.Line("traceless") + "\n"; r.code != 0 || r.stdout != want || r.stderr != "" {
		t.Fatalf("--version: %+v, want stdout %q", r, want)
	}
	if !strings.HasPrefix(r.stdout, "traceless "+version.String()+" (go") {
		t.Fatalf("--version: %q", r.stdout)
	}
}

// TestNoTerminalSuggestsPasswordStdin checks that signup and login, with
// no terminal to prompt on and no input left, say how to give the
// credentials in a script.
func TestNoTerminalSuggestsPasswordStdin(t *testing.T) {
	url, _ := newServer(t)
	for _, tt := range []struct {
		stdin string
		args  []string
	}{
		{"", []string{"signup", "--email", "fay@example.com"}},
		{"", []string{"signup"}},
		{"fay@example.com\n", []string{"signup"}},
		{"", []string{"login", "--email", opEmail}},
		{"", []string{"login"}},
	} {
		r := cliRun(t, tt.stdin, append([]string{"--server", url}, tt.args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, "--password-stdin") || !strings.Contains(r.stderr, "no terminal") ||
			r.stdout != "" {
			t.Errorf("%s with stdin %q: %+v", strings.Join(tt.args, " "), tt.stdin, r)
		}
	}
	// Scripts that pipe the password still work.
	ok(t, "fay@example.com\n"+password+"\n", "--server", url, "signup")
	ok(t, password, "--server", url, "login", "--email", "fay@example.com", "--password-stdin")
}
