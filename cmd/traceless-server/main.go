// Command traceless-server runs the Traceless control plane.
package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/netutil"

	"github.com/traceless-vpn/traceless/controlplane"
	"github.com/traceless-vpn/traceless/internal/config"
	"github.com/traceless-vpn/traceless/internal/logpolicy"
	"github.com/traceless-vpn/traceless/internal/version"
	"github.com/traceless-vpn/traceless/store"
)

var randReader io.Reader = rand.Reader

// program is the command's name in messages, help and metrics.
const program = "traceless-server"

// Log attribute keys of the lines this file writes: the server's own
// addresses and build, never a client's. The logger is wrapped with
// logAllowlist (internal/logpolicy); TestLogKeysDeclared checks that it
// lists every log* constant and that no log call uses another key.
const (
	logAddr    = "addr"
	logScheme  = "scheme"
	logDB      = "db"
	logVersion = "version"
)

var logAllowlist = []string{logAddr, logScheme, logDB, logVersion}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(NewMain(os.Stdout, os.Stderr).Exec(ctx, os.Args[1:], os.Getenv))
}

// Exec runs the program to its end and returns its exit status: 0 after
// ctx ends (a signal) or for --help and --version, 2 for a bad setting, 1
// when the server cannot start, when a listener fails while serving, or
// when shutting down fails.
func (m *Main) Exec(ctx context.Context, args []string, getenv func(string) string) int {
	if err := m.ParseFlags(args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) || errors.Is(err, config.ErrVersion) {
			return 0
		}
		fmt.Fprintln(m.stderr, program+":", err)
		return 2
	}
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(m.stderr, program+":", err)
		m.Close()
		return 1
	}
	code := 0
	if err := m.Wait(ctx); err != nil {
		fmt.Fprintln(m.stderr, program+":", err)
		code = 1
	}
	if err := m.Close(); err != nil {
		fmt.Fprintln(m.stderr, program+":", err)
		code = 1
	}
	return code
}

// Main is the program: parsed config, the store and the HTTP server.
type Main struct {
	Config Config
	stdout io.Writer
	stderr io.Writer

	opts    *Options // Config parsed by ParseFlags
	store   *store.Store
	srv     *controlplane.Server
	ln      net.Listener // the main listener
	mln     net.Listener // the metrics listener, or nil
	servers []*served
	failed  chan error // the first listener to fail after start
	started chan struct{}
}

// served is one HTTP server on its listener.
type served struct {
	http *http.Server
	done chan struct{} // closed when Serve has returned
}

// NewMain returns a Main with default settings.
func NewMain(stdout, stderr io.Writer) *Main {
	return &Main{Config: DefaultConfig(), stdout: stdout, stderr: stderr, failed: make(chan error, 1), started: make(chan struct{})}
}

// ParseFlags loads the defaults, the config file, the environment and the
// flags, in that order, and parses the result into the options Run uses.
// --version prints the version to stdout and returns config.ErrVersion;
// -h prints the help and returns flag.ErrHelp.
func (m *Main) ParseFlags(args []string, getenv func(string) string) error {
	m.Config = Config{}
	err := m.Config.table().Load(args, getenv, m.stderr)
	if errors.Is(err, config.ErrVersion) {
		fmt.Fprintln(m.stdout, version.Line(program))
	}
	if err != nil {
		return err
	}
	m.opts, err = m.Config.Options()
	return err
}

// Run opens the store, prepares a new database, and starts serving. It
// returns once the listener is up; Close shuts down.
func (m *Main) Run(ctx context.Context) error {
	if m.opts == nil {
		o, err := m.Config.Options()
		if err != nil {
			return err
		}
		m.opts = o
	}
	o := m.opts
	// The control plane wraps base with its own allowlist; the lines
	// written here go through this program's (logAllowlist).
	base := slog.New(slog.NewJSONHandler(m.stderr, &slog.HandlerOptions{Level: o.LogLevel}))
	logger := logpolicy.Wrap(base, logAllowlist...)
	var tlsConfig *tls.Config
	if o.TLSCert != "" {
		// Load the pair now: a bad certificate or key is a reason not to
		// start, not an error found by the first connection.
		cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
		if err != nil {
			return fmt.Errorf("tls_cert/tls_key: %w", err)
		}
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	}

	st, err := store.Open(ctx, o.Store)
	if err != nil {
		return err
	}
	m.store = st
	// The schema guard, which the tests run after every migration, also
	// runs on the database this server is about to serve: a column added
	// by hand or by another tool that could hold end users' activity is a
	// reason not to start.
	vs, err := st.CheckSchema(ctx)
	if err != nil {
		return fmt.Errorf("schema guard: %w", err)
	}
	if len(vs) > 0 {
		found := make([]string, len(vs))
		for i, v := range vs {
			found[i] = v.String()
		}
		return fmt.Errorf("schema guard: the database has what Traceless must not keep; not serving it: %s", strings.Join(found, "; "))
	}
	key, err := loadSessionKey(o.SessionKeyFile)
	if err != nil {
		return err
	}
	secretKeys, err := loadSecretKeys(o.SecretKeyFile)
	if err != nil {
		return err
	}
	srv, err := controlplane.New(controlplane.Options{
		Store: st, Logger: base, SessionKey: key, SessionTTL: o.SessionTTL,
		SecureCookies: o.SecureCookies, TrustedProxies: o.TrustedProxies, Version: version.String(),
		ClientDNS: o.ClientDNS, KeyRate: o.KeyRate, TunnelMTU: o.TunnelMTU,
		Policies: o.Policies, PolicyNotice: o.PolicyNotice,
		Alerts: controlplane.AlertOptions{SMTP: o.SMTP, SyncLag: o.AlertSyncLag,
			AllowPrivateTargets: o.AlertPrivateTargets}, // off by default: owners cannot point the server at its own network
		Collectors:            []prometheus.Collector{version.Collector(program)},
		MetricsElsewhere:      o.MetricsListen != "",
		NodeLongPolls:         o.NodeLongPolls,
		PublicURL:             o.PublicURL, // "" : the listener's URL, as Bootstrap is told
		SkipEmailVerification: !o.EmailVerification,
		OIDCProviders:         o.OIDCProviders,
		OperatorSSOOnly:       o.OperatorSSOOnly,
		SecretKeys:            secretKeys,
		RequireOperator2FA:    o.RequireOperator2FA,
		Billing:               o.Billing,
	})
	if err != nil {
		return err
	}
	m.srv = srv

	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	m.ln = ln
	msg, err := srv.Bootstrap(ctx, o.AdminEmail, o.AdminPassword, o.baseURL(ln.Addr().String()))
	if err != nil {
		ln.Close()
		return err
	}
	if msg != "" {
		fmt.Fprintln(m.stdout, msg)
	}
	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
	}
	if o.MetricsListen != "" {
		mln, err := net.Listen("tcp", o.MetricsListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("metrics_listen: %w", err)
		}
		m.mln = mln
		m.serve(mln, srv.MetricsHandler(), nil)
		logger.Info("metrics listening", slog.String(logAddr, mln.Addr().String()))
	}
	// Beyond the cap, connections wait in the kernel's accept queue instead
	// of each costing a goroutine and buffers.
	m.serve(netutil.LimitListener(ln, o.MaxConnections), srv.Handler(), tlsConfig)
	logger.Info("listening", slog.String(logAddr, ln.Addr().String()), slog.String(logScheme, scheme),
		slog.String(logDB, st.Driver()), slog.String(logVersion, version.String()))
	close(m.started)
	return nil
}

// serve serves h on ln, over TLS when tc is set, until Close. A Serve that
// returns for any other reason is reported by Wait.
func (m *Main) serve(ln net.Listener, h http.Handler, tc *tls.Config) {
	s := &served{http: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		// net/http's own error log names client addresses ("TLS handshake
		// error from 203.0.113.9:…"); it is discarded.
		ErrorLog:  log.New(io.Discard, "", 0),
		TLSConfig: tc,
	}, done: make(chan struct{})}
	m.servers = append(m.servers, s)
	go func() {
		defer close(s.done)
		var err error
		if tc != nil {
			err = s.http.ServeTLS(ln, "", "") // the certificate is in tc
		} else {
			err = s.http.Serve(ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			select {
			case m.failed <- fmt.Errorf("serve %s: %w", ln.Addr(), err):
			default: // another listener failed first
			}
		}
	}()
}

// Wait blocks until ctx ends, returning nil, or until a listener stops
// serving on its own, returning why. Either way the caller then calls
// Close.
func (m *Main) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-m.failed:
		return err
	}
}

// Addr is the address the server listens on.
func (m *Main) Addr() string { return m.ln.Addr().String() }

// MetricsAddr is the metrics listener's address, or "" when /metrics is on
// the main listener.
func (m *Main) MetricsAddr() string {
	if m.mln == nil {
		return ""
	}
	return m.mln.Addr().String()
}

// Close stops accepting requests, lets running ones finish (up to 15 s),
// checkpoints and closes the store.
func (m *Main) Close() error {
	var errs []error
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for _, s := range m.servers {
		errs = append(errs, s.http.Shutdown(ctx))
		<-s.done
	}
	m.servers = nil
	if m.srv != nil {
		errs = append(errs, m.srv.Close())
	}
	if m.store != nil {
		errs = append(errs, m.store.Checkpoint(context.Background()), m.store.Close())
	}
	return errors.Join(errs...)
}
