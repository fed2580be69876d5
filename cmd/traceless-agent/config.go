package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/traceless-vpn/traceless/internal/config"
)

// Config is every setting of traceless-agent as written: in a config
// file, the environment or flags. Its table (Config.table) names each
// setting's key, flag, environment variable, default and help once;
// Options turns it into the typed options the program runs with.
type Config struct {
	// Servers are the control-plane URLs, tried in order with failover.
	Servers     []string
	EnrollToken string
	// CredentialFile is the agent's only state: node credential and
	// WireGuard private key (JSON, mode 0600). Keep it in a directory of
	// its own; the posture check fails if anything else is there.
	CredentialFile string
	// Name is the node's name at enrollment (the host name when empty).
	Name       string
	Interface  string
	ListenPort int
	// Endpoint is the host:port clients dial, sent at enrollment.
	Endpoint string
	Backend  string
	// MTU applies when the control plane's tunnel sets none.
	MTU        int
	ScrubAfter Duration
	// AllowShortScrub permits scrub_after below 130 s, which cuts active
	// sessions (they re-handshake every 120 s); for tests, or for nodes
	// whose operators accept that.
	AllowShortScrub bool
	// UserspaceHolder keeps a userspace device in a detached process of its
	// own, so tunnels survive agent restarts as with the kernel module.
	UserspaceHolder bool
	ScrubInterval   Duration
	NATEgress       string
	// MetricsListen is the local Prometheus listener; "" turns it off.
	MetricsListen  string
	Harden         bool
	RequirePosture bool
	LogLevel       string
}

// Duration is a time.Duration written as "12h" in config files.
type Duration = config.Duration

// table is the one description of every setting: its file key (the flag
// and the TRACELESS_AGENT_* variable derive from it), the field it fills,
// its default and its help. README's agent settings table is checked
// against it (TestREADMESettingsTable).
func (c *Config) table() *config.Table {
	return &config.Table{Program: "traceless-agent", EnvPrefix: "TRACELESS_AGENT_", Settings: []config.Setting{
		// The file key is plural, the flag and variable singular, as both
		// take a comma-separated list.
		{Key: "servers", Flag: "server", Value: config.List(&c.Servers), Arg: "URL,…",
			Usage: "control-plane URLs, tried in order with failover (required)"},
		{Key: "enroll_token", Value: config.String(&c.EnrollToken), Arg: "TOKEN",
			Usage: "one-use enrollment token for the first start (prefer the environment)"},
		{Key: "credential_file", Value: config.String(&c.CredentialFile), Default: "/var/lib/traceless-agent/credential.json", Arg: "FILE",
			Usage: "the agent's only state: node credential and WireGuard key (mode 0600)"},
		{Key: "name", Value: config.String(&c.Name), Unset: "the host name", Arg: "NAME",
			Usage: "node name sent at enrollment"},
		{Key: "interface", Value: config.String(&c.Interface), Default: "tl0", Arg: "NAME",
			Usage: "WireGuard interface name"},
		{Key: "listen_port", Value: config.Int(&c.ListenPort), Default: "51820", Arg: "PORT",
			Usage: "WireGuard UDP port"},
		{Key: "endpoint", Value: config.String(&c.Endpoint), Arg: "HOST:PORT",
			Usage: "what clients dial, sent at enrollment (required with an enrollment token)"},
		{Key: "backend", Value: config.String(&c.Backend), Default: "auto", Arg: "NAME",
			Usage: "WireGuard backend: auto, kernel or userspace"},
		{Key: "mtu", Value: config.Int(&c.MTU), Default: "1420", Arg: "N",
			Usage: "interface MTU when the control plane sets none"},
		{Key: "scrub_after", Value: config.Dur(&c.ScrubAfter), Default: "3m", Arg: "DURATION",
			Usage: "idle time after which a peer's endpoint, handshake time and counters are forgotten (130s–24h)"},
		{Key: "allow_short_scrub", Value: config.Bool(&c.AllowShortScrub), Default: "false",
			Usage: "permit --scrub-after below 130s (cuts active sessions; for tests)"},
		{Key: "userspace_holder", Value: config.Bool(&c.UserspaceHolder), Default: "true",
			Usage: "run a userspace device in a detached process so tunnels survive agent restarts"},
		{Key: "scrub_interval", Value: config.Dur(&c.ScrubInterval), Default: "5s", Arg: "DURATION",
			Usage: "how often the scrubber looks for idle peers (1s–5m)"},
		{Key: "nat_egress", Value: config.String(&c.NATEgress), Unset: "no NAT", Arg: "IFACE",
			Usage: "masquerade tunnel traffic leaving through this interface"},
		{Key: "metrics_listen", Value: config.String(&c.MetricsListen), Default: "127.0.0.1:9586", Arg: "HOST:PORT",
			Usage: `local address for Prometheus metrics ("" turns them off)`},
		{Key: "harden", Value: config.Bool(&c.Harden), Default: "true",
			Usage: "turn conntrack accounting and timestamps off"},
		{Key: "require_posture", Value: config.Bool(&c.RequirePosture), Default: "false",
			Usage: "refuse to start when a privacy posture check fails"},
		{Key: "log_level", Value: config.String(&c.LogLevel), Default: "info", Arg: "LEVEL",
			Usage: "debug, info, warn or error"},
	}}
}

// DefaultConfig returns the settings used when nothing is configured: the
// table's defaults.
func DefaultConfig() Config {
	var c Config
	if err := c.table().SetDefaults(); err != nil {
		panic(err) // a default in the table does not parse; TestDefaultConfig fails
	}
	return c
}

// ParseConfig reads a YAML or TOML config file into c. Unknown keys are
// errors, so a typo does not silently fall back to a default.
func ParseConfig(r io.Reader, format string, c *Config) error { return c.table().ParseFile(r, format) }

// Options are the settings parsed and checked, in the types the program
// uses. Config.Options makes them; nothing parses a setting twice.
type Options struct {
	Servers                   []string
	EnrollToken               string
	CredentialFile            string
	Name                      string // the host name when not set
	Interface                 string
	ListenPort                int
	Endpoint                  string
	Backend                   string
	MTU                       int
	ScrubAfter, ScrubInterval time.Duration
	UserspaceHolder           bool
	NATEgress                 string
	MetricsListen             string // "": no metrics listener
	Harden, RequirePosture    bool
	LogLevel                  slog.Level
}

// Validate checks every setting and names the first bad one.
func (c *Config) Validate() error {
	_, err := c.Options()
	return err
}

// Options checks every setting, naming the first bad one, and returns
// them parsed.
func (c *Config) Options() (*Options, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	o := &Options{
		Servers: c.Servers, EnrollToken: c.EnrollToken, CredentialFile: c.CredentialFile, Name: c.Name,
		Interface: c.Interface, ListenPort: c.ListenPort, Endpoint: c.Endpoint, Backend: c.Backend, MTU: c.MTU,
		ScrubAfter: time.Duration(c.ScrubAfter), ScrubInterval: time.Duration(c.ScrubInterval),
		UserspaceHolder: c.UserspaceHolder, NATEgress: c.NATEgress, MetricsListen: c.MetricsListen,
		Harden: c.Harden, RequirePosture: c.RequirePosture,
	}
	if o.Name == "" {
		o.Name, _ = os.Hostname()
	}
	if err := o.LogLevel.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return nil, fmt.Errorf("log_level: %w", err)
	}
	return o, nil
}

// check validates each setting on its own terms.
func (c *Config) check() error {
	if len(c.Servers) == 0 {
		return errors.New("servers: at least one control-plane URL is required (--server)")
	}
	for _, s := range c.Servers {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
			u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("servers: %q is not an http(s) URL without credentials or query", s)
		}
	}
	if c.CredentialFile == "" {
		return errors.New("credential_file: is required")
	}
	if err := validIfname(c.Interface); err != nil {
		return fmt.Errorf("interface: %w", err)
	}
	if c.ListenPort < 1 || c.ListenPort > 65535 {
		return fmt.Errorf("listen_port: %d is outside 1..65535", c.ListenPort)
	}
	if c.EnrollToken != "" && c.Endpoint == "" {
		// Without it the control plane refuses the enrollment, after the
		// token has travelled; say so before any request.
		return errors.New("endpoint: --endpoint HOST:PORT (TRACELESS_AGENT_ENDPOINT), the address clients dial, is required to enroll")
	}
	if c.Endpoint != "" {
		host, port, err := net.SplitHostPort(c.Endpoint)
		if p, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || p < 1 || p > 65535 {
			return fmt.Errorf("endpoint: %q is not HOST:PORT", c.Endpoint)
		}
	}
	switch c.Backend {
	case "auto", "kernel", "userspace":
	default:
		return fmt.Errorf("backend: %q is not auto, kernel or userspace", c.Backend)
	}
	if c.MTU < 1280 || c.MTU > 9000 {
		return fmt.Errorf("mtu: %d is outside 1280..9000", c.MTU)
	}
	// An active client handshakes every two minutes; a shorter threshold
	// would cut sessions in use.
	minScrub := 130 * time.Second
	if c.AllowShortScrub {
		minScrub = time.Second
	}
	if d := time.Duration(c.ScrubAfter); d < minScrub || d > 24*time.Hour {
		return fmt.Errorf("scrub_after: %s is outside %s..24h (allow_short_scrub permits down to 1s)", d, minScrub)
	}
	if d := time.Duration(c.ScrubInterval); d < time.Second || d > 5*time.Minute {
		return fmt.Errorf("scrub_interval: %s is outside 1s..5m", d)
	}
	if c.NATEgress != "" {
		if err := validIfname(c.NATEgress); err != nil {
			return fmt.Errorf("nat_egress: %w", err)
		}
	}
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			return fmt.Errorf("metrics_listen: %q is not host:port", c.MetricsListen)
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log_level: %q is not debug, info, warn or error", c.LogLevel)
	}
	return nil
}

// validIfname checks a Linux interface name.
func validIfname(s string) error {
	if s == "" || len(s) > 15 || s == "." || s == ".." || strings.ContainsAny(s, "/: \t\n") {
		return fmt.Errorf("%q is not an interface name (1-15 characters, no '/', ':' or spaces)", s)
	}
	return nil
}
