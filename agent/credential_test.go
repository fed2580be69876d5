package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

func TestCredentialFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	path := filepath.Join(dir, "credential.json")
	if _, err := loadCredential(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("load missing = %v, want os.ErrNotExist", err)
	}
	key, _ := wgtypes.GeneratePrivateKey()
	want := &credential{NodeID: "n1", Credential: "tln_secret", PrivateKey: key.String(),
		Tunnel: &api.Tunnel{IPv4: "10.64.0.1/10", IPv6: "fd74::1/64", MTU: 1420}}
	if err := saveCredential(path, want); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, path} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if wantMode := map[bool]os.FileMode{true: 0o700, false: 0o600}[fi.IsDir()]; fi.Mode().Perm() != wantMode {
			t.Errorf("%s mode %o, want %o", p, fi.Mode().Perm(), wantMode)
		}
	}
	got, err := loadCredential(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if k, _ := got.key(); k != key {
		t.Error("key changed")
	}
	// Rewriting leaves nothing else in the directory.
	if err := saveCredential(path, want); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the credential file", len(entries))
	}
	// A file readable by others is tightened on load.
	os.Chmod(path, 0o644)
	if _, err := loadCredential(path); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode after load %o, want 0600", fi.Mode().Perm())
	}
}

func TestCredentialFileErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, content, want string }{
		{"not json", "tln_leaked {", "not valid JSON"},
		{"no prefix", `{"credential":"abc","private_key":"` + wgtypes.Key{}.String() + `"}`, `must start with "tln_"`},
		{"bad key", `{"credential":"tln_x","private_key":"tln_nokey"}`, "private_key is not"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name)
			os.WriteFile(path, []byte(tc.content), 0o600)
			_, err := loadCredential(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "tln_leaked") || strings.Contains(err.Error(), "tln_nokey") {
				t.Errorf("error echoes the file: %v", err)
			}
		})
	}
}
