// Package mailpit starts a real SMTP server for tests — Mailpit, the binary
// named by TRACELESS_MAILPIT (.ci/run builds it from tools/testbin) — on
// loopback ports the test chooses, and reads what it received through
// Mailpit's HTTP API. Without the variable a test skips with the reason, or
// fails when CI=true, because CI must exercise real mail.
//
// Only tests import it.
package mailpit

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// EnvBinary names the variable holding the path of the mailpit binary.
const EnvBinary = "TRACELESS_MAILPIT"

// Server is one running Mailpit.
type Server struct {
	// SMTPAddr is the host:port its SMTP server listens on.
	SMTPAddr string
	api      string // base URL of the HTTP API
	client   *http.Client
}

// Message is one received mail.
type Message struct {
	ID      string
	To      []string
	From    string
	Subject string
	Text    string
	// Raw is the message as it arrived: headers and body.
	Raw string
}

// Start runs Mailpit until the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin := os.Getenv(EnvBinary)
	if bin == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("%s not set, but CI=true: CI must run the mail tests (.ci/run builds Mailpit from tools/testbin)", EnvBinary)
		}
		tb.Skipf("%s not set: the path of a mailpit binary (cd tools/testbin && go build -o DIR github.com/axllent/mailpit)", EnvBinary)
	}
	if _, err := os.Stat(bin); err != nil {
		tb.Fatalf("%s: %v", EnvBinary, err)
	}
	var lastErr error
	for try := 0; try < 3; try++ {
		s, err := start(tb, bin)
		if err == nil {
			return s
		}
		lastErr = err // a chosen port was taken meanwhile: choose again
	}
	tb.Fatalf("start mailpit: %v", lastErr)
	return nil
}

func start(tb testing.TB, bin string) (*Server, error) {
	smtpAddr, httpAddr := freePort(tb), freePort(tb)
	dir := tb.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin,
		"--smtp", smtpAddr, "--listen", httpAddr,
		"--database", filepath.Join(dir, "mailpit.db"),
		"--disable-version-check", "--smtp-disable-rdns", "--quiet")
	log, err := os.Create(filepath.Join(dir, "mailpit.log"))
	if err != nil {
		cancel()
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		cancel()
		log.Close()
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		cancel()
		<-exited
		log.Close()
	}
	s := &Server{SMTPAddr: smtpAddr, api: "http://" + httpAddr, client: &http.Client{Timeout: 5 * time.Second}}
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			stop()
			out, _ := os.ReadFile(filepath.Join(dir, "mailpit.log"))
			return nil, fmt.Errorf("mailpit exited: %v\n%s", err, out)
		default:
		}
		if s.ready() {
			break
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("mailpit not ready on %s within 15s", httpAddr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Cleanup(stop)
	return s, nil
}

// freePort returns a loopback address with a port that was free a moment
// ago.
func freePort(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (s *Server) ready() bool {
	resp, err := s.client.Get(s.api + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	c, err := net.DialTimeout("tcp", s.SMTPAddr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

type summary struct {
	ID      string
	Subject string
	To      []struct{ Address string }
}

func (s *Server) get(tb testing.TB, path string, dst any) {
	tb.Helper()
	resp, err := s.client.Get(s.api + path)
	if err != nil {
		tb.Fatalf("mailpit GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		tb.Fatalf("mailpit GET %s: %d %v %.200s", path, resp.StatusCode, err, body)
	}
	if s, ok := dst.(*string); ok {
		*s = string(body)
		return
	}
	if err := json.Unmarshal(body, dst); err != nil {
		tb.Fatalf("mailpit GET %s: %v", path, err)
	}
}

// Messages returns every message received so far, newest first.
func (s *Server) Messages(tb testing.TB) []Message {
	tb.Helper()
	var list struct{ Messages []summary }
	s.get(tb, "/api/v1/messages?limit=1000", &list)
	out := make([]Message, 0, len(list.Messages))
	for _, m := range list.Messages {
		out = append(out, s.message(tb, m.ID))
	}
	return out
}

func (s *Server) message(tb testing.TB, id string) Message {
	tb.Helper()
	var full struct {
		ID      string
		Subject string
		Text    string
		From    struct{ Address string }
		To      []struct{ Address string }
	}
	s.get(tb, "/api/v1/message/"+url.PathEscape(id), &full)
	m := Message{ID: full.ID, Subject: full.Subject, Text: full.Text, From: full.From.Address}
	for _, t := range full.To {
		m.To = append(m.To, t.Address)
	}
	s.get(tb, "/api/v1/message/"+url.PathEscape(id)+"/raw", &m.Raw)
	return m
}

// WaitFor returns the newest message to the address to whose subject
// contains subject, waiting up to timeout for it to arrive.
func (s *Server) WaitFor(tb testing.TB, to, subject string, timeout time.Duration) Message {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var list struct{ Messages []summary }
		s.get(tb, "/api/v1/messages?limit=1000", &list)
		for _, m := range list.Messages {
			if !strings.Contains(m.Subject, subject) {
				continue
			}
			for _, t := range m.To {
				if strings.EqualFold(t.Address, to) {
					return s.message(tb, m.ID)
				}
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("no mail to %s with %q in its subject within %s (%d messages received)", to, subject, timeout, len(list.Messages))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Count returns how many messages arrived.
func (s *Server) Count(tb testing.TB) int {
	tb.Helper()
	var list struct{ Total int }
	s.get(tb, "/api/v1/messages?limit=1", &list)
	return list.Total
}

var linkRE = regexp.MustCompile(`https?://[^\s<>"]+`)

// Link returns the first URL in the message's text whose path is path
// ("/reset-password"), with any quoted-printable soft breaks undone.
func (m Message) Link(tb testing.TB, path string) *url.URL {
	tb.Helper()
	for _, raw := range linkRE.FindAllString(m.Text, -1) {
		u, err := url.Parse(strings.TrimRight(raw, ".,)"))
		if err == nil && u.Path == path {
			return u
		}
	}
	tb.Fatalf("mail %q has no link to %s:\n%s", m.Subject, path, m.Text)
	return nil
}
