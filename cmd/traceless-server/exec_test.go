package main

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestExecBadTLS: a certificate or key that does not load stops the
// server at start, with exit status 1 and an error naming the settings,
// before it says it is listening.
func TestExecBadTLS(t *testing.T) {
	in := newInstance(t)
	goodCert, goodKey, _ := MustSelfSignedCert(t, t.TempDir())
	otherCert, _, _ := MustSelfSignedCert(t, t.TempDir())
	garbage := filepath.Join(in.dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, cert, key string }{
		{"garbage certificate", garbage, goodKey},
		{"garbage key", goodCert, garbage},
		{"key of another certificate", otherCert, goodKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stderr := &syncBuffer{}
			m := NewMain(&syncBuffer{}, stderr)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			code := m.Exec(ctx, in.args("--tls-cert", tc.cert, "--tls-key", tc.key), envMap(nil))
			if code != 1 {
				t.Errorf("exit status %d, want 1", code)
			}
			if !strings.Contains(stderr.String(), "traceless-server: tls_cert/tls_key: ") {
				t.Errorf("stderr does not name tls_cert/tls_key:\n%s", stderr)
			}
			if strings.Contains(stderr.String(), `"listening"`) {
				t.Errorf("the server said it was listening:\n%s", stderr)
			}
		})
	}
}

// TestExecListenerFails: a listener that stops serving after start ends
// the program with exit status 1 and says why, instead of leaving it
// running without a listener.
func TestExecListenerFails(t *testing.T) {
	in := newInstance(t)
	stderr := &syncBuffer{}
	m := NewMain(&syncBuffer{}, stderr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exit := make(chan int, 1)
	go func() { exit <- m.Exec(ctx, in.args(), envMap(nil)) }()
	select {
	case <-m.started:
	case code := <-exit:
		t.Fatalf("Exec returned %d before serving:\n%s", code, stderr)
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not start")
	}
	m.ln.Close() // what a failing listener looks like to Serve
	select {
	case code := <-exit:
		if code != 1 {
			t.Errorf("exit status %d, want 1", code)
		}
		if !strings.Contains(stderr.String(), "traceless-server: serve ") {
			t.Errorf("stderr does not say which listener failed:\n%s", stderr)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the server kept running after its listener failed")
	}
}

// TestExecSignal: the end of ctx (SIGINT or SIGTERM in main) is a clean
// exit.
func TestExecSignal(t *testing.T) {
	in := newInstance(t)
	m := NewMain(&syncBuffer{}, &syncBuffer{})
	ctx, cancel := context.WithCancel(context.Background())
	exit := make(chan int, 1)
	go func() { exit <- m.Exec(ctx, in.args(), envMap(nil)) }()
	select {
	case <-m.started:
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not start")
	}
	cancel()
	if code := <-exit; code != 0 {
		t.Errorf("exit status %d after the signal, want 0", code)
	}
}

// TestMainMaxConnections: with --max-connections N, N idle connections
// hold every slot and a request on a new connection waits (before the cap,
// 1,000 idle connections were all accepted); once they close, requests are
// served again.
func TestMainMaxConnections(t *testing.T) {
	const max = 20
	in := newInstance(t)
	m := MustRunMain(t, in.args("--max-connections", fmt.Sprint(max)), nil)
	res, body := m.do(t, http.MethodGet, "/healthz", "", nil)
	mustStatus(t, res, body, http.StatusOK)
	m.client.CloseIdleConnections()

	var idle []net.Conn
	for range max {
		c, err := net.Dial("tcp", m.Addr())
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	time.Sleep(300 * time.Millisecond) // the server accepts them
	quick := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	if res, err := quick.Get(m.base + "/healthz"); err == nil {
		res.Body.Close()
		t.Fatalf("a request beyond %d connections was served (%d)", max, res.StatusCode)
	}
	for _, c := range idle {
		c.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := quick.Get(m.base + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no request served after the idle connections closed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	m.MustClose(t)
}

// TestExecRefusesForbiddenColumn: a database with a column the schema
// guard forbids (here a handshake time on devices, added by hand) is not
// served: the server exits 1 naming the column.
func TestExecRefusesForbiddenColumn(t *testing.T) {
	in := newInstance(t)
	m := MustRunMain(t, in.args(), nil)
	m.MustClose(t)
	db, err := sql.Open("sqlite3", "file:"+in.dbPath+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`ALTER TABLE devices ADD COLUMN last_handshake INTEGER`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	stderr := &syncBuffer{}
	m2 := NewMain(&syncBuffer{}, stderr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if code := m2.Exec(ctx, in.args(), envMap(nil)); code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), "schema guard") || !strings.Contains(stderr.String(), "devices.last_handshake") {
		t.Errorf("stderr does not name the column:\n%s", stderr)
	}
	if strings.Contains(stderr.String(), `"listening"`) {
		t.Errorf("the server said it was listening:\n%s", stderr)
	}
}

// TestExecRefusesPaymentColumn: a column holding payment data beside the
// billing references (what stays with the payment provider) stops the
// server at start, named, as an activity column does.
func TestExecRefusesPaymentColumn(t *testing.T) {
	in := newInstance(t)
	m := MustRunMain(t, in.args(), nil)
	m.MustClose(t)
	db, err := sql.Open("sqlite3", in.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`ALTER TABLE owner_billing ADD COLUMN card_last4 VARCHAR(4)`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	stderr := &syncBuffer{}
	m2 := NewMain(&syncBuffer{}, stderr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if code := m2.Exec(ctx, in.args(), envMap(nil)); code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), "owner_billing.card_last4") || !strings.Contains(stderr.String(), "payment data") {
		t.Errorf("stderr does not name the column and why:\n%s", stderr)
	}
}
