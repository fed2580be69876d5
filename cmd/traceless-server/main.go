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
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/traceless-vpn/traceless/controlplane"
	"github.com/traceless-vpn/traceless/internal/config"
	"github.com/traceless-vpn/traceless/internal/version"
	"github.com/traceless-vpn/traceless/store"
)

var randReader io.Reader = rand.Reader

// program is the command's name in messages, help and metrics.
const program = "traceless-server"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := NewMain(os.Stdout, os.Stderr)
	if err := m.ParseFlags(os.Args[1:], os.Getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) || errors.Is(err, config.ErrVersion) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, program+":", err)
		os.Exit(2)
	}
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, program+":", err)
		m.Close()
		os.Exit(1)
	}
	<-ctx.Done()
	if err := m.Close(); err != nil {
		fmt.Fprintln(os.Stderr, program+":", err)
		os.Exit(1)
	}
}

// Main is the program: parsed config, the store and the HTTP server.
type Main struct {
	Config Config
	stdout io.Writer
	stderr io.Writer

	opts  *Options // Config parsed by ParseFlags
	store *store.Store
	srv   *controlplane.Server
	http  *http.Server
	ln    net.Listener
	done  chan error
}

// NewMain returns a Main with default settings.
func NewMain(stdout, stderr io.Writer) *Main {
	return &Main{Config: DefaultConfig(), stdout: stdout, stderr: stderr}
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
	logger := slog.New(slog.NewJSONHandler(m.stderr, &slog.HandlerOptions{Level: o.LogLevel}))

	st, err := store.Open(ctx, o.Store)
	if err != nil {
		return err
	}
	m.store = st
	key, err := loadSessionKey(o.SessionKeyFile)
	if err != nil {
		return err
	}
	srv, err := controlplane.New(controlplane.Options{
		Store: st, Logger: logger, SessionKey: key, SessionTTL: o.SessionTTL,
		SecureCookies: o.SecureCookies, TrustedProxies: o.TrustedProxies, Version: version.String(),
		ClientDNS: o.ClientDNS, KeyRate: o.KeyRate, TunnelMTU: o.TunnelMTU,
		Policies: o.Policies, PolicyNotice: o.PolicyNotice,
		Alerts:     controlplane.AlertOptions{SMTP: o.SMTP, SyncLag: o.AlertSyncLag},
		Collectors: []prometheus.Collector{version.Collector(program)},
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
	m.http = &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		// net/http's own error log names client addresses ("TLS handshake
		// error from 203.0.113.9:…"); it is discarded.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	m.done = make(chan error, 1)
	scheme := "http"
	if o.TLSCert != "" {
		scheme = "https"
		m.http.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		go func() { m.done <- m.http.ServeTLS(ln, o.TLSCert, o.TLSKey) }()
	} else {
		go func() { m.done <- m.http.Serve(ln) }()
	}
	logger.Info("listening", slog.String("addr", ln.Addr().String()), slog.String("scheme", scheme),
		slog.String("db", st.Driver()), slog.String("version", version.String()))
	return nil
}

// Addr is the address the server listens on.
func (m *Main) Addr() string { return m.ln.Addr().String() }

// Close stops accepting requests, lets running ones finish (up to 15 s),
// checkpoints and closes the store.
func (m *Main) Close() error {
	var errs []error
	if m.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		errs = append(errs, m.http.Shutdown(ctx))
		if err := <-m.done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	if m.srv != nil {
		errs = append(errs, m.srv.Close())
	}
	if m.store != nil {
		errs = append(errs, m.store.Checkpoint(context.Background()), m.store.Close())
	}
	return errors.Join(errs...)
}
