package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

func readState(t *testing.T, p string) rotationState {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var st rotationState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("state file: %v\n%s", err, b)
	}
	return st
}

func writeState(t *testing.T, p string, st rotationState) {
	t.Helper()
	b, _ := json.Marshal(st)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestRotateIfDue(t *testing.T) {
	url, rec := newServer(t)
	s := "--server=" + url
	ok(t, password, s, "signup", "--email", "eve@example.com", "--password-stdin")
	app := decode[api.App](t, ok(t, "", s, "apps", "create", "phones", "-o", "json"))
	key := decode[api.APIKeyCreated](t, ok(t, "", s, "keys", "create", "phones", "device", "-o", "json"))
	k := "--api-key=" + key.Key
	dev := decode[generatedDevice](t, ok(t, "", s, k, "devices", "register", "--generate", "-o", "json"))

	dir := t.TempDir()
	state := filepath.Join(dir, "state", "rotation.json")
	rotate := func(extra ...string) result {
		return ok(t, "", append([]string{s, k, "devices", "rotate-if-due", dev.ID, "--state-file", state}, extra...)...)
	}

	// Usage: the state file and one key source are required.
	for _, args := range [][]string{
		{s, k, "devices", "rotate-if-due", dev.ID, "--generate"},
		{s, k, "devices", "rotate-if-due", dev.ID, "--state-file", state},
		{s, k, "devices", "rotate-if-due", dev.ID, "--state-file", state, "--generate", "--public-key", randomPublic(t)},
	} {
		if r := cliRun(t, "", args...); r.code != 2 {
			t.Fatalf("%v: %+v", args, r)
		}
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Fatalf("a usage error created the state file: %v", err)
	}
	// An unknown device gets no state file.
	if r := cliRun(t, "", s, k, "devices", "rotate-if-due", "00000000-0000-0000-0000-000000000000", "--state-file", state, "--generate"); r.code != 1 {
		t.Fatalf("unknown device: %+v", r)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Fatalf("state file for an unknown device: %v", err)
	}

	// First use: the file is created with the current time; no rotation.
	before := time.Now().Add(-time.Second)
	res := decode[rotateResult](t, rotate("--generate", "-o", "json"))
	if !res.Started || res.Rotated || res.Device != nil || res.RotationDays != 0 || res.NextDue != nil {
		t.Fatalf("first use: %+v", res)
	}
	checkMode(t, state, 0o600)
	st := readState(t, state)
	if st.DeviceID != dev.ID || st.LastRotated.Before(before) || st.LastRotated.After(time.Now()) {
		t.Fatalf("state: %+v", st)
	}

	// No policy: never rotated, however old the state.
	writeState(t, state, rotationState{DeviceID: dev.ID, LastRotated: time.Now().AddDate(-2, 0, 0)})
	if r := rotate("--generate"); !strings.Contains(r.stdout, "no rotation policy") {
		t.Fatalf("no policy: %s", r.stdout)
	}

	// A policy of 7 days, set with 'apps update'.
	a := decode[api.App](t, ok(t, "", s, "apps", "update", "phones", "--rotation-days", "7", "-o", "json"))
	if a.ID != app.ID || a.RotationDays != 7 || a.Name != "phones" {
		t.Fatalf("apps update: %+v", a)
	}
	if r := ok(t, "", s, "apps", "list"); !strings.Contains(r.stdout, "every 7 days") {
		t.Fatalf("apps list: %s", r.stdout)
	}
	if r := cliRun(t, "", s, "apps", "update", "phones"); r.code != 2 {
		t.Fatalf("apps update without flags: %+v", r)
	}
	if r := cliRun(t, "", s, "apps", "update", "phones", "--rotation-days", "-1"); r.code != 1 || !strings.Contains(r.stderr, "(rotation_days)") {
		t.Fatalf("bad rotation days: %+v", r)
	}

	// Rotated three days ago: not due.
	recent := time.Now().Add(-3 * 24 * time.Hour).UTC().Truncate(time.Second)
	writeState(t, state, rotationState{DeviceID: dev.ID, LastRotated: recent})
	res = decode[rotateResult](t, rotate("--generate", "-o", "json"))
	if res.Rotated || res.Started || res.RotationDays != 7 || res.NextDue == nil || !res.NextDue.Equal(recent.Add(7*24*time.Hour)) {
		t.Fatalf("not due: %+v", res)
	}
	if r := rotate("--generate"); !strings.Contains(r.stdout, "not due yet") || !strings.Contains(r.stdout, "NEXT DUE") {
		t.Fatalf("not due text: %s", r.stdout)
	}
	if st := readState(t, state); !st.LastRotated.Equal(recent) {
		t.Fatalf("state changed without a rotation: %+v", st)
	}

	// Rotated ten days ago: due; a key pair is made here, the private key
	// replaces --private-key-file, and the state file gets the new time.
	old := time.Now().Add(-10 * 24 * time.Hour)
	writeState(t, state, rotationState{DeviceID: dev.ID, LastRotated: old})
	keyFile := filepath.Join(dir, "device.key")
	os.WriteFile(keyFile, []byte(dev.PrivateKey+"\n"), 0o600)
	before = time.Now().Add(-time.Second)
	res = decode[rotateResult](t, rotate("--generate", "--private-key-file", keyFile, "-o", "json"))
	if !res.Rotated || res.Device == nil || res.Device.ID != dev.ID || res.Device.PublicKey == dev.PublicKey ||
		res.Device.PrivateKey != "" || res.LastRotated.Before(before) {
		t.Fatalf("due: %+v", res)
	}
	checkMode(t, keyFile, 0o600)
	b, _ := os.ReadFile(keyFile)
	priv, err := wgtypes.ParseKey(strings.TrimSpace(string(b)))
	if err != nil || priv.PublicKey().String() != res.Device.PublicKey {
		t.Fatalf("private key file does not hold the new key: %v", err)
	}
	if rec.contains(priv.String()) {
		t.Fatal("the new private key was sent to the server")
	}
	if st := readState(t, state); st.LastRotated.Before(before) {
		t.Fatalf("state not updated: %+v", st)
	}
	checkMode(t, state, 0o600)
	got := decode[api.Device](t, ok(t, "", s, k, "devices", "get", dev.ID, "-o", "json"))
	if got.PublicKey != res.Device.PublicKey {
		t.Fatalf("server key %s, want %s", got.PublicKey, res.Device.PublicKey)
	}

	// Right after: not due again.
	if res := decode[rotateResult](t, rotate("--generate", "-o", "json")); res.Rotated {
		t.Fatalf("rotated twice: %+v", res)
	}

	// Due again, with a public key given; text output.
	writeState(t, state, rotationState{DeviceID: dev.ID, LastRotated: old})
	pub := randomPublic(t)
	r := rotate("--public-key", pub)
	if !strings.Contains(r.stdout, pub) || !strings.Contains(r.stdout, "LAST ROTATED") {
		t.Fatalf("rotate with --public-key: %s", r.stdout)
	}
	if got := decode[api.Device](t, ok(t, "", s, k, "devices", "get", dev.ID, "-o", "json")); got.PublicKey != pub {
		t.Fatalf("server key %s, want %s", got.PublicKey, pub)
	}

	// In the future by this machine's clock: not due.
	writeState(t, state, rotationState{DeviceID: dev.ID, LastRotated: time.Now().Add(30 * 24 * time.Hour)})
	if res := decode[rotateResult](t, rotate("--generate", "-o", "json")); res.Rotated {
		t.Fatalf("rotated with a future time: %+v", res)
	}

	// Another device's state file, or a damaged one, is refused.
	writeState(t, state, rotationState{DeviceID: "other", LastRotated: old})
	if r := cliRun(t, "", s, k, "devices", "rotate-if-due", dev.ID, "--state-file", state, "--generate"); r.code != 1 || !strings.Contains(r.stderr, "belongs to device other") {
		t.Fatalf("other device's state: %+v", r)
	}
	os.WriteFile(state, []byte("{"), 0o600)
	if r := cliRun(t, "", s, k, "devices", "rotate-if-due", dev.ID, "--state-file", state, "--generate"); r.code != 1 || !strings.Contains(r.stderr, "damaged") {
		t.Fatalf("damaged state: %+v", r)
	}
}
