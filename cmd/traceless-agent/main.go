// Command traceless-agent runs the Traceless node agent: it keeps the
// WireGuard peers of a VPN server in step with the control plane and holds
// nothing about what clients do.
package main

import (
	"context"
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

	"github.com/traceless-vpn/traceless/agent"
	"github.com/traceless-vpn/traceless/agent/wg"
	"github.com/traceless-vpn/traceless/internal/config"
	"github.com/traceless-vpn/traceless/internal/logpolicy"
	"github.com/traceless-vpn/traceless/internal/version"
)

// program is the command's name in messages, help and metrics.
const program = "traceless-agent"

// Log attribute keys of the lines this file writes (the agent's own are in
// agent/log.go). The logger is wrapped with logAllowlist
// (internal/logpolicy); TestLogKeysDeclared checks that it lists every
// log* constant and that no log call uses another key.
const logAddr = "addr" // the metrics listener's own address

var logAllowlist = []string{logAddr}

func main() {
	if len(os.Args) > 1 && os.Args[1] == wg.HolderCommand {
		// The detached process that holds a userspace WireGuard device
		// across agent restarts (wg.RunHolder). It never prints anything.
		if err := wg.RunHolder(os.Args[2:]); err != nil {
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := NewMain(os.Stdout, os.Stderr)
	if fakeBackend != nil {
		fakeBackend(m)
	}
	if err := m.ParseFlags(os.Args[1:], os.Getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) || errors.Is(err, config.ErrVersion) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, program+":", err)
		os.Exit(2)
	}
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, program+":", err)
		os.Exit(1)
	}
	<-ctx.Done()
	if err := m.Close(); err != nil {
		fmt.Fprintln(os.Stderr, program+":", err)
		os.Exit(1)
	}
}

// fakeBackend, set only in builds with the traceless_fakewg tag
// (fakewg.go), swaps in a fake WireGuard device for tests.
var fakeBackend func(*Main)

// Main is the program: parsed config, the agent and the metrics listener.
type Main struct {
	Config Config
	stdout io.Writer
	stderr io.Writer
	opts   *Options // Config parsed by ParseFlags

	// openInterface opens the WireGuard interface; tests swap in the fake
	// backend.
	openInterface func(wg.Config) (*wg.Interface, error)
	// host is the machine the agent inspects and changes; zero is the
	// real one.
	host agent.Host

	agent   *agent.Agent
	cancel  context.CancelFunc
	done    chan error
	metrics *http.Server
	ln      net.Listener
	mdone   chan error
}

// NewMain returns a Main with default settings.
func NewMain(stdout, stderr io.Writer) *Main {
	return &Main{Config: DefaultConfig(), stdout: stdout, stderr: stderr, openInterface: wg.Open}
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

// Run starts the agent: hardening and posture, enrollment or the
// credential, the interface. It returns once the agent syncs in the
// background (and the metrics listener is up), or with the reason it
// cannot start. Close stops it.
func (m *Main) Run(ctx context.Context) error {
	if m.opts == nil {
		o, err := m.Config.Options()
		if err != nil {
			return err
		}
		m.opts = o
	}
	o := m.opts
	// The agent wraps base with its own allowlist; the lines written here
	// go through this program's (logAllowlist).
	base := slog.New(slog.NewJSONHandler(m.stderr, &slog.HandlerOptions{Level: o.LogLevel}))
	logger := logpolicy.Wrap(base, logAllowlist...)
	a, err := agent.New(agent.Options{
		Servers: o.Servers, EnrollToken: o.EnrollToken, CredentialFile: o.CredentialFile, Name: o.Name,
		NodeEndpoint: o.Endpoint, ListenPort: o.ListenPort, MTU: o.MTU, NATEgress: o.NATEgress,
		Harden: o.Harden, RequirePosture: o.RequirePosture,
		ScrubAfter: o.ScrubAfter, ScrubTick: o.ScrubInterval, Version: version.String(),
		Open: func() (*wg.Interface, error) {
			return m.openInterface(wg.Config{Name: o.Interface, Backend: o.Backend, MTU: o.MTU, Holder: o.UserspaceHolder})
		},
		Host: m.host, Logger: base,
	})
	if err != nil {
		return err
	}
	if err := a.RegisterMetrics(version.Collector(program)); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	if err := a.Start(ctx); err != nil {
		cancel()
		return err
	}
	if o.MetricsListen != "" {
		ln, err := net.Listen("tcp", o.MetricsListen)
		if err != nil {
			cancel()
			a.Close()
			return fmt.Errorf("metrics_listen: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", a.MetricsHandler())
		m.ln, m.mdone = ln, make(chan error, 1)
		m.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
		go func() { m.mdone <- m.metrics.Serve(ln) }()
		logger.Info("metrics listening", slog.String(logAddr, ln.Addr().String()))
	}
	m.agent, m.cancel, m.done = a, cancel, make(chan error, 1)
	go func() { m.done <- a.Run(ctx) }()
	return nil
}

// MetricsAddr is the metrics listener's address, or "".
func (m *Main) MetricsAddr() string {
	if m.ln == nil {
		return ""
	}
	return m.ln.Addr().String()
}

// Close stops syncing and releases the interface: a kernel interface
// stays up with its peers, so clients keep their tunnels while the agent
// restarts; a userspace device goes away with the process.
func (m *Main) Close() error {
	var errs []error
	if m.cancel != nil {
		m.cancel()
		errs = append(errs, <-m.done)
		m.cancel = nil
	}
	if m.metrics != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		errs = append(errs, m.metrics.Shutdown(ctx))
		if err := <-m.mdone; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
		m.metrics = nil
	}
	if m.agent != nil {
		errs = append(errs, m.agent.Close())
		m.agent = nil
	}
	return errors.Join(errs...)
}
