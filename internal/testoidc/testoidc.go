// Package testoidc starts a real OpenID provider process for the single
// sign-on tests: the program built from tools/oidcbin (zitadel's OpenID
// Connect library with its example storage and login page, on loopback),
// named by TRACELESS_OIDC_PROVIDER. Without the variable a test skips
// with the reason — or fails when CI=true, because CI must run them.
//
// Only tests import it.
package testoidc

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// EnvProvider names the variable holding the provider program's path.
const EnvProvider = "TRACELESS_OIDC_PROVIDER"

// User is a person the provider knows. ID is the subject it names them by.
type User struct {
	ID, Username, Password string
	Email                  string
	EmailVerified          bool
}

// Provider is a running provider with one confidential web client.
type Provider struct {
	Issuer       string
	ClientID     string
	ClientSecret string
}

// Start runs the provider until the test ends, with users and a client
// whose redirect URIs are redirects.
func Start(tb testing.TB, users []User, redirects ...string) *Provider {
	tb.Helper()
	bin := os.Getenv(EnvProvider)
	if bin == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("%s not set, but CI=true: CI must run the single sign-on tests against the OpenID provider (.ci/run builds it from tools/oidcbin)", EnvProvider)
		}
		tb.Skipf("%s not set: build the OpenID provider with `cd tools/oidcbin && go build -trimpath -o /opt/traceless-ci/bin/traceless-oidc-provider .` and point the variable at it", EnvProvider)
	}
	dir := tb.TempDir()
	m := map[string]map[string]any{}
	for _, u := range users {
		m[u.ID] = map[string]any{"ID": u.ID, "Username": u.Username, "Password": u.Password, "FirstName": "Test",
			"LastName": u.ID, "Email": u.Email, "EmailVerified": u.EmailVerified, "PreferredLanguage": "en"}
	}
	b, err := json.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	usersFile := filepath.Join(dir, "users.json")
	if err := os.WriteFile(usersFile, b, 0o600); err != nil {
		tb.Fatal(err)
	}
	p := &Provider{ClientID: "traceless", ClientSecret: "test-client-secret"}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-users", usersFile, "-client-id", p.ClientID, "-client-secret", p.ClientSecret,
		"-redirect", strings.Join(redirects, ","))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		cancel()
		tb.Fatalf("start %s: %v", bin, err)
	}
	tb.Cleanup(func() {
		cancel()
		cmd.Wait()
		if tb.Failed() {
			tb.Logf("OpenID provider's output:\n%s", stderr.String())
		}
	})
	line := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		l, _ := r.ReadString('\n')
		line <- l
		io.Copy(io.Discard, r)
	}()
	select {
	case l := <-line:
		issuer, ok := strings.CutPrefix(strings.TrimSpace(l), "issuer=")
		if !ok {
			tb.Fatalf("the OpenID provider said %q, not issuer=…; stderr:\n%s", l, stderr.String())
		}
		p.Issuer = issuer
	case <-time.After(30 * time.Second):
		tb.Fatalf("the OpenID provider did not start in 30 s; stderr:\n%s", stderr.String())
	}
	return p
}

// Login signs in at the provider as a person would, with an HTTP client
// that keeps cookies: it follows authURL (the provider's authorization
// URL), fills in the provider's login form, and returns the URL the
// provider sends the browser back to (the redirect URI with code and
// state), without following it.
func (p *Provider) Login(client *http.Client, authURL, username, password string) (*url.URL, error) {
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	next, err := url.Parse(authURL)
	if err != nil {
		return nil, err
	}
	issuer, _ := url.Parse(p.Issuer)
	var form url.Values
	for range 10 {
		if next.Host != issuer.Host {
			return next, nil
		}
		var res *http.Response
		if form != nil {
			res, err = c.PostForm(next.String(), form)
			form = nil
		} else {
			res, err = c.Get(next.String())
		}
		if err != nil {
			return nil, err
		}
		body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		res.Body.Close()
		switch {
		case res.StatusCode >= 300 && res.StatusCode < 400:
			loc, err := next.Parse(res.Header.Get("Location"))
			if err != nil {
				return nil, err
			}
			if id := loc.Query().Get("authRequestID"); id != "" && loc.Path == "/login/username" {
				// The login page: post its form.
				form = url.Values{"id": {id}, "username": {username}, "password": {password}}
			}
			next = loc
		case res.StatusCode == http.StatusOK && form == nil && strings.Contains(string(body), `name="username"`):
			return nil, fmt.Errorf("the provider refused the login: %s", body)
		default:
			return nil, fmt.Errorf("the provider answered %s for %s: %.300s", res.Status, next, body)
		}
	}
	return nil, fmt.Errorf("too many redirects at the provider")
}
