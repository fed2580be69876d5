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
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/traceless-vpn/traceless/controlplane"
	"github.com/traceless-vpn/traceless/store"

	"github.com/traceless-vpn/traceless/internal/config"
)

var randReader io.Reader = rand.Reader

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := NewMain(os.Stdout, os.Stderr)
	if err := m.ParseFlags(os.Args[1:], os.Getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "traceless-server:", err)
		os.Exit(2)
	}
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "traceless-server:", err)
		os.Exit(1)
	}
	<-ctx.Done()
	if err := m.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "traceless-server:", err)
		os.Exit(1)
	}
}

// Main is the program: parsed config, the store and the HTTP server.
type Main struct {
	Config Config
	stdout io.Writer
	stderr io.Writer

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

// ParseFlags loads the config file, then the environment, then flags.
func (m *Main) ParseFlags(args []string, getenv func(string) string) error {
	scratch := DefaultConfig()
	if err := config.Load("traceless-server", args, getenv, m.stderr, "TRACELESS_CONFIG", m.Config.settings(), scratch.settings(),
		func(r io.Reader, format string) error { return ParseConfig(r, format, &m.Config) }); err != nil {
		return err
	}
	return m.Config.Validate()
}

// Run opens the store, prepares a new database, and starts serving. It
// returns once the listener is up; Close shuts down.
func (m *Main) Run(ctx context.Context) error {
	c := m.Config
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.LogLevel))
	logger := slog.New(slog.NewJSONHandler(m.stderr, &slog.HandlerOptions{Level: level}))

	dbCfg, err := store.ParseDSN(c.DB)
	if err != nil {
		return fmt.Errorf("db: %w", err)
	}
	dbCfg.TunnelIPv4, dbCfg.TunnelIPv6 = netip.MustParsePrefix(c.TunnelIPv4), netip.MustParsePrefix(c.TunnelIPv6)
	var policies []controlplane.PolicyVersion
	if c.PolicyFile != "" {
		f, err := os.Open(c.PolicyFile)
		if err != nil {
			return fmt.Errorf("policy_file: %w", err)
		}
		policies, err = controlplane.LoadPolicies(f)
		f.Close()
		if err != nil {
			return err
		}
	}
	st, err := store.Open(ctx, dbCfg)
	if err != nil {
		return err
	}
	m.store = st
	key, err := loadSessionKey(c.SessionKeyFile)
	if err != nil {
		return err
	}
	nets, _ := c.trustedNets()
	srv, err := controlplane.New(controlplane.Options{
		Store: st, Logger: logger, SessionKey: key, SessionTTL: time.Duration(c.SessionTTL),
		SecureCookies: c.SecureCookies || c.TLSCert != "", TrustedProxies: nets, Version: version,
		ClientDNS: c.ClientDNS, KeyRate: c.KeyRate, TunnelMTU: c.TunnelMTU,
		Policies: policies, PolicyNotice: time.Duration(c.PolicyNotice),
		Alerts: controlplane.AlertOptions{
			SMTP:    controlplane.SMTPConfig{Addr: c.SMTPAddr, From: c.SMTPFrom, Username: c.SMTPUsername, Password: c.SMTPPassword},
			SyncLag: time.Duration(c.AlertSyncLag),
		},
	})
	if err != nil {
		return err
	}
	m.srv = srv

	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	m.ln = ln
	msg, err := srv.Bootstrap(ctx, c.AdminEmail, c.AdminPassword, c.baseURL(ln.Addr().String()))
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
	if c.TLSCert != "" {
		scheme = "https"
		m.http.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		go func() { m.done <- m.http.ServeTLS(ln, c.TLSCert, c.TLSKey) }()
	} else {
		go func() { m.done <- m.http.Serve(ln) }()
	}
	logger.Info("listening", slog.String("addr", ln.Addr().String()), slog.String("scheme", scheme),
		slog.String("db", st.Driver()), slog.String("version", version))
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
