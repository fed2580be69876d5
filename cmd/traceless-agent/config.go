package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/traceless-vpn/traceless/internal/config"
)

// Config is every setting of traceless-agent. Each has a config-file key,
// a flag and a TRACELESS_AGENT_* environment variable; flags win over the
// environment, which wins over the file, which wins over the defaults.
type Config struct {
	// Servers are the control-plane URLs, tried in order with failover.
	Servers     []string `yaml:"servers" toml:"servers"`
	EnrollToken string   `yaml:"enroll_token" toml:"enroll_token"`
	// CredentialFile is the agent's only state: node credential and
	// WireGuard private key (JSON, mode 0600). Keep it in a directory of
	// its own; the posture check fails if anything else is there.
	CredentialFile string `yaml:"credential_file" toml:"credential_file"`
	// Name is the node's name at enrollment (the host name when empty).
	Name       string `yaml:"name" toml:"name"`
	Interface  string `yaml:"interface" toml:"interface"`
	ListenPort int    `yaml:"listen_port" toml:"listen_port"`
	// Endpoint is the host:port clients dial, sent at enrollment.
	Endpoint string `yaml:"endpoint" toml:"endpoint"`
	Backend  string `yaml:"backend" toml:"backend"`
	// MTU applies when the control plane's tunnel sets none.
	MTU        int      `yaml:"mtu" toml:"mtu"`
	ScrubAfter Duration `yaml:"scrub_after" toml:"scrub_after"`
	// AllowShortScrub permits scrub_after below 130 s, which cuts active
	// sessions (they re-handshake every 120 s); for tests, or for nodes
	// whose operators accept that.
	AllowShortScrub bool `yaml:"allow_short_scrub" toml:"allow_short_scrub"`
	// UserspaceHolder keeps a userspace device in a detached process of its
	// own, so tunnels survive agent restarts as with the kernel module.
	UserspaceHolder bool     `yaml:"userspace_holder" toml:"userspace_holder"`
	ScrubInterval   Duration `yaml:"scrub_interval" toml:"scrub_interval"`
	NATEgress       string   `yaml:"nat_egress" toml:"nat_egress"`
	// MetricsListen is the local Prometheus listener; "" turns it off.
	MetricsListen  string `yaml:"metrics_listen" toml:"metrics_listen"`
	Harden         bool   `yaml:"harden" toml:"harden"`
	RequirePosture bool   `yaml:"require_posture" toml:"require_posture"`
	LogLevel       string `yaml:"log_level" toml:"log_level"`
}

// Duration is a time.Duration written as "12h" in config files.
type Duration = config.Duration

// DefaultConfig returns the settings used when nothing is configured.
func DefaultConfig() Config {
	return Config{
		CredentialFile:  "/var/lib/traceless-agent/credential.json",
		Interface:       "tl0",
		ListenPort:      51820,
		Backend:         "auto",
		MTU:             1420,
		ScrubAfter:      Duration(180 * time.Second),
		ScrubInterval:   Duration(5 * time.Second),
		MetricsListen:   "127.0.0.1:9586",
		Harden:          true,
		UserspaceHolder: true,
		LogLevel:        "info",
	}
}

// ParseConfig reads a YAML or TOML config file into c. Unknown keys are
// errors, so a typo does not silently fall back to a default.
func ParseConfig(r io.Reader, format string, c *Config) error { return config.Parse(r, format, c) }

// setting ties one Config field to its flag and environment variable.
type setting = config.Setting

func (c *Config) settings() []setting {
	var out []setting
	add := func(name, usage string, set func(string) error) {
		env := "TRACELESS_AGENT_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
		out = append(out, setting{Name: name, Env: env, Usage: usage, Set: set})
	}
	str := func(p *string) func(string) error { return func(v string) error { *p = v; return nil } }
	num := func(p *int) func(string) error {
		return func(v string) error {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("%q is not a number", v)
			}
			*p = n
			return nil
		}
	}
	dur := func(p *Duration) func(string) error {
		return func(v string) error { return p.UnmarshalText([]byte(v)) }
	}
	boolean := func(p *bool) func(string) error {
		return func(v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("%q is not true or false", v)
			}
			*p = b
			return nil
		}
	}
	add("server", "control-plane URL[,URL…], tried in order with failover", func(v string) error {
		c.Servers = nil
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				c.Servers = append(c.Servers, s)
			}
		}
		return nil
	})
	add("enroll-token", "one-use enrollment token for the first start (prefer the environment)", str(&c.EnrollToken))
	add("credential-file", "the agent's only state: node credential and WireGuard key (mode 0600)", str(&c.CredentialFile))
	add("name", "node name sent at enrollment (default: the host name)", str(&c.Name))
	add("interface", "WireGuard interface name", str(&c.Interface))
	add("listen-port", "WireGuard UDP port", num(&c.ListenPort))
	add("endpoint", "HOST:PORT clients dial, sent at enrollment", str(&c.Endpoint))
	add("backend", "WireGuard backend: auto, kernel or userspace", str(&c.Backend))
	add("mtu", "interface MTU when the control plane sets none", num(&c.MTU))
	add("scrub-after", "idle time after which a peer's endpoint, handshake time and counters are forgotten", dur(&c.ScrubAfter))
	add("allow-short-scrub", "permit --scrub-after below 130s (cuts active sessions; for tests)", boolean(&c.AllowShortScrub))
	out[len(out)-1].IsBool = true
	add("userspace-holder", "run a userspace device in a detached process so tunnels survive agent restarts", boolean(&c.UserspaceHolder))
	out[len(out)-1].IsBool = true
	add("scrub-interval", "how often the scrubber looks for idle peers", dur(&c.ScrubInterval))
	add("nat-egress", "masquerade tunnel traffic leaving through this interface", str(&c.NATEgress))
	add("metrics-listen", `local address for Prometheus metrics ("" turns them off)`, str(&c.MetricsListen))
	add("harden", "turn conntrack accounting and timestamps off", boolean(&c.Harden))
	out[len(out)-1].IsBool = true
	add("require-posture", "refuse to start when a privacy posture check fails", boolean(&c.RequirePosture))
	out[len(out)-1].IsBool = true
	add("log-level", "debug, info, warn or error", str(&c.LogLevel))
	return out
}

// ApplyEnv overrides c from the environment.
func (c *Config) ApplyEnv(getenv func(string) string) error {
	return config.ApplyEnv(c.settings(), getenv)
}

// RegisterFlags adds a flag per setting.
func (c *Config) RegisterFlags(fs *flag.FlagSet) { config.RegisterFlags(fs, c.settings()) }

// Validate checks every setting and names the first bad one.
func (c *Config) Validate() error {
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
