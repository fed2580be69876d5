package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

const placeholderConf = "# Traceless device d1 on n1 (eu)\n[Interface]\nPrivateKey = <device private key: generated and kept on the device>\nAddress = 10.0.0.2/32, fd00::2/128\n\n[Peer]\nPublicKey = cGVlcg==\nEndpoint = 192.0.2.1:51820\nAllowedIPs = 0.0.0.0/0, ::/0\n"

func TestInsertPrivateKey(t *testing.T) {
	k, _ := wgtypes.GeneratePrivateKey()
	got, err := insertPrivateKey(placeholderConf, k)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(placeholderConf, "<device private key: generated and kept on the device>", k.String(), 1)
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}

	crlf := strings.ReplaceAll(placeholderConf, "\n", "\r\n")
	got, err = insertPrivateKey(crlf, k)
	if err != nil || !strings.Contains(got, "PrivateKey = "+k.String()+"\r\n") {
		t.Fatalf("CRLF: %q, %v", got, err)
	}

	// Only [Interface] counts: a peer's key is not replaced.
	if _, err := insertPrivateKey("[Peer]\nPrivateKey = x\n", k); err == nil {
		t.Fatal("replaced a key outside [Interface]")
	}
}

// fakeProvisioning serves one server, one device and its config, and
// records everything sent to it.
func fakeProvisioning(t *testing.T, devicePub string) (*httptest.Server, *recorder) {
	rec := &recorder{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/servers", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"servers":[{"id":"n1","name":"n1","region":"eu","endpoint":"192.0.2.1:51820","public_key":"cGVlcg==","online":true}]}`)
	})
	mux.HandleFunc("GET /api/v1/devices/d1", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"id":"d1","public_key":"`+devicePub+`","ipv4":"10.0.0.2","ipv6":"fd00::2","external_ref":null}`)
	})
	mux.HandleFunc("GET /api/v1/devices/d1/config", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("server") != "n1" {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"error":{"code":"invalid_request","message":"is not a server this app may use","field":"server"}}`)
			return
		}
		if r.URL.Query().Get("format") == "qr" {
			w.Header().Set("Content-Type", "image/png")
			io.WriteString(w, "\x89PNG\r\n\x1a\nfrom-server")
			return
		}
		io.WriteString(w, placeholderConf)
	})
	hs := httptest.NewServer(rec.wrap(mux))
	t.Cleanup(hs.Close)
	return hs, rec
}

func TestConfigWithPrivateKey(t *testing.T) {
	isolate(t)
	priv, _ := wgtypes.GeneratePrivateKey()
	hs, rec := fakeProvisioning(t, priv.PublicKey().String())
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "device.key")
	os.WriteFile(keyFile, []byte(priv.String()+"\n"), 0o600)
	s, k := "--server="+hs.URL, "--api-key=tlk_fake"

	// Placeholder config to stdout; the only server is chosen by itself.
	r := ok(t, "", s, k, "devices", "config", "d1")
	if r.stdout != placeholderConf {
		t.Fatalf("config: %q", r.stdout)
	}
	r = cliRun(t, "", s, k, "devices", "config", "d1", "--node", "n2")
	if r.code != 1 || r.stderr != "traceless: invalid_request: is not a server this app may use (server)\n" {
		t.Fatalf("unknown node: %+v", r)
	}

	// The private key filled in locally.
	r = ok(t, "", s, k, "devices", "config", "d1", "--node", "n1", "--private-key-file", keyFile)
	if !strings.Contains(r.stdout, "PrivateKey = "+priv.String()+"\n") || !strings.Contains(r.stdout, "Address = 10.0.0.2/32") {
		t.Fatalf("config with key: %s", r.stdout)
	}
	out := filepath.Join(dir, "wg0.conf")
	ok(t, "", s, k, "devices", "config", "d1", "--private-key-file", keyFile, "--out", out)
	checkMode(t, out, 0o600)
	if b, _ := os.ReadFile(out); !strings.Contains(string(b), priv.String()) {
		t.Fatalf("--out: %s", b)
	}

	// QR codes: rendered here when they hold the key, fetched otherwise.
	qrLocal := filepath.Join(dir, "local.png")
	ok(t, "", s, k, "devices", "config", "d1", "--private-key-file", keyFile, "--qr", qrLocal)
	checkMode(t, qrLocal, 0o600)
	if b, _ := os.ReadFile(qrLocal); !strings.HasPrefix(string(b), "\x89PNG") || strings.Contains(string(b), "from-server") {
		t.Fatal("local QR is not a locally rendered PNG")
	}
	qrServer := filepath.Join(dir, "server.png")
	ok(t, "", s, k, "devices", "config", "d1", "--qr", qrServer)
	if b, _ := os.ReadFile(qrServer); string(b) != "\x89PNG\r\n\x1a\nfrom-server" {
		t.Fatalf("server QR: %q", b)
	}

	// A key of another device is refused.
	other, _ := wgtypes.GeneratePrivateKey()
	otherFile := filepath.Join(dir, "other.key")
	os.WriteFile(otherFile, []byte(other.String()), 0o600)
	r = cliRun(t, "", s, k, "devices", "config", "d1", "--private-key-file", otherFile)
	if r.code != 1 || !strings.Contains(r.stderr, "does not belong") || strings.Contains(r.stderr, other.String()) {
		t.Fatalf("other key: %+v", r)
	}

	for _, secret := range []string{priv.String(), other.String()} {
		if rec.contains(secret) {
			t.Fatal("a private key was sent to the server")
		}
	}
}
