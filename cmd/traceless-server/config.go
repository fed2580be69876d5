package main

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/traceless-vpn/traceless/internal/config"
)

// Config is every setting of traceless-server. Each has a config-file key,
// a flag and a TRACELESS_* environment variable; flags win over the
// environment, which wins over the file, which wins over the defaults.
type Config struct {
	Listen         string   `yaml:"listen" toml:"listen"`
	DB             string   `yaml:"db" toml:"db"`
	TLSCert        string   `yaml:"tls_cert" toml:"tls_cert"`
	TLSKey         string   `yaml:"tls_key" toml:"tls_key"`
	PublicURL      string   `yaml:"public_url" toml:"public_url"`
	SessionKeyFile string   `yaml:"session_key_file" toml:"session_key_file"`
	SessionTTL     Duration `yaml:"session_ttl" toml:"session_ttl"`
	SecureCookies  bool     `yaml:"secure_cookies" toml:"secure_cookies"`
	TrustedProxies []string `yaml:"trusted_proxies" toml:"trusted_proxies"`
	LogLevel       string   `yaml:"log_level" toml:"log_level"`
	// AdminEmail and AdminPassword create the operator account on the first
	// start of an empty database. Prefer the environment for the password.
	AdminEmail    string `yaml:"admin_email" toml:"admin_email"`
	AdminPassword string `yaml:"admin_password" toml:"admin_password"`
	// TunnelIPv4 and TunnelIPv6 are the networks device addresses come
	// from; changing them after devices exist strands those devices.
	TunnelIPv4 string `yaml:"tunnel_ipv4" toml:"tunnel_ipv4"`
	TunnelIPv6 string `yaml:"tunnel_ipv6" toml:"tunnel_ipv6"`
	TunnelMTU  int    `yaml:"tunnel_mtu" toml:"tunnel_mtu"`
	// ClientDNS are the resolvers written into client configs.
	ClientDNS []string `yaml:"client_dns" toml:"client_dns"`
	// KeyRate is each API key's provisioning rate per second (0: default,
	// negative: unlimited).
	KeyRate float64 `yaml:"key_rate" toml:"key_rate"`
	// PolicyFile holds the privacy policy's versions (YAML); PolicyNotice is
	// how long before taking effect a new version is announced.
	PolicyFile   string   `yaml:"policy_file" toml:"policy_file"`
	PolicyNotice Duration `yaml:"policy_notice" toml:"policy_notice"`
	// SMTP* configure alert emails; without smtp_addr owners can choose
	// webhooks only.
	SMTPAddr     string `yaml:"smtp_addr" toml:"smtp_addr"`
	SMTPFrom     string `yaml:"smtp_from" toml:"smtp_from"`
	SMTPUsername string `yaml:"smtp_username" toml:"smtp_username"`
	SMTPPassword string `yaml:"smtp_password" toml:"smtp_password"`
	// AlertSyncLag is how long a node may trail the current revision
	// before owners are told it lags.
	AlertSyncLag Duration `yaml:"alert_sync_lag" toml:"alert_sync_lag"`
}

// Duration is a time.Duration written as "12h" in config files.
type Duration = config.Duration

// DefaultConfig returns the settings used when nothing is configured.
func DefaultConfig() Config {
	return Config{
		Listen:         "127.0.0.1:8080",
		DB:             "sqlite://./data/traceless.db",
		SessionKeyFile: "./data/session.key",
		SessionTTL:     Duration(12 * time.Hour),
		LogLevel:       "info",
		TunnelIPv4:     "10.64.0.0/10",
		TunnelIPv6:     "fd74:6c73:7670:1::/64",
		TunnelMTU:      1420,
		ClientDNS:      []string{"9.9.9.9", "2620:fe::fe"},
		PolicyNotice:   Duration(30 * 24 * time.Hour),
		AlertSyncLag:   Duration(time.Minute),
	}
}

// ParseConfig reads a YAML or TOML config file into c. Unknown keys are
// errors, so a typo does not silently fall back to a default.
func ParseConfig(r io.Reader, format string, c *Config) error { return config.Parse(r, format, c) }

// setting ties one Config field to its flag and environment variable.
type setting = config.Setting

func (c *Config) settings() []setting {
	str := func(p *string) (func(string) error, func() string) {
		return func(v string) error { *p = v; return nil }, func() string { return *p }
	}
	var out []setting
	add := func(name, usage string, set func(string) error, get func() string) {
		env := "TRACELESS_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
		out = append(out, setting{Name: name, Env: env, Usage: usage, Set: set, Get: get})
	}
	s, g := str(&c.Listen)
	add("listen", "address to listen on", s, g)
	s, g = str(&c.DB)
	add("db", "database: sqlite://PATH or postgres://…", s, g)
	s, g = str(&c.TLSCert)
	add("tls-cert", "TLS certificate file (PEM); serves HTTPS with --tls-key", s, g)
	s, g = str(&c.TLSKey)
	add("tls-key", "TLS private key file (PEM)", s, g)
	s, g = str(&c.PublicURL)
	add("public-url", "URL clients use to reach this server (default from --listen)", s, g)
	s, g = str(&c.SessionKeyFile)
	add("session-key-file", "file holding the key that signs sign-in tokens (created if missing)", s, g)
	add("session-ttl", "lifetime of a sign-in token", func(v string) error { return c.SessionTTL.UnmarshalText([]byte(v)) },
		func() string { return time.Duration(c.SessionTTL).String() })
	add("secure-cookies", "mark the session cookie Secure (set behind an HTTPS proxy)", func(v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		c.SecureCookies = b
		return nil
	}, func() string { return strconv.FormatBool(c.SecureCookies) })
	out[len(out)-1].IsBool = true
	add("trusted-proxies", "comma-separated CIDRs whose X-Forwarded-For keys rate limits", func(v string) error {
		c.TrustedProxies = nil
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				c.TrustedProxies = append(c.TrustedProxies, p)
			}
		}
		return nil
	}, func() string { return strings.Join(c.TrustedProxies, ",") })
	s, g = str(&c.LogLevel)
	add("log-level", "debug, info, warn or error", s, g)
	s, g = str(&c.AdminEmail)
	add("admin-email", "operator email created on first start of an empty database", s, g)
	s, g = str(&c.AdminPassword)
	add("admin-password", "operator password for --admin-email (prefer the environment)", s, g)
	s, g = str(&c.TunnelIPv4)
	add("tunnel-ipv4", "IPv4 network device tunnel addresses come from", s, g)
	s, g = str(&c.TunnelIPv6)
	add("tunnel-ipv6", "IPv6 network (a ULA /64) device tunnel addresses come from", s, g)
	add("tunnel-mtu", "MTU nodes set on their WireGuard interface", func(v string) error {
		n, err := strconv.Atoi(v)
		c.TunnelMTU = n
		return err
	}, func() string { return strconv.Itoa(c.TunnelMTU) })
	add("client-dns", "comma-separated resolvers written into client configs", func(v string) error {
		c.ClientDNS = nil
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				c.ClientDNS = append(c.ClientDNS, p)
			}
		}
		return nil
	}, func() string { return strings.Join(c.ClientDNS, ",") })
	add("key-rate", "provisioning requests per second per API key (negative: unlimited)", func(v string) error {
		f, err := strconv.ParseFloat(v, 64)
		c.KeyRate = f
		return err
	}, func() string { return strconv.FormatFloat(c.KeyRate, 'g', -1, 64) })
	s, g = str(&c.PolicyFile)
	add("policy-file", "YAML file of privacy policy versions (default: the built-in policy)", s, g)
	add("policy-notice", "how long before taking effect a new policy version is announced", func(v string) error { return c.PolicyNotice.UnmarshalText([]byte(v)) },
		func() string { return time.Duration(c.PolicyNotice).String() })
	s, g = str(&c.SMTPAddr)
	add("smtp-addr", "mail server host:port for alert emails (empty: no email)", s, g)
	s, g = str(&c.SMTPFrom)
	add("smtp-from", "sender address of alert emails", s, g)
	s, g = str(&c.SMTPUsername)
	add("smtp-username", "SMTP user, when the server wants authentication", s, g)
	s, g = str(&c.SMTPPassword)
	add("smtp-password", "SMTP password (prefer the environment)", s, g)
	add("alert-sync-lag", "how long a node may trail the current revision before owners are told", func(v string) error { return c.AlertSyncLag.UnmarshalText([]byte(v)) },
		func() string { return time.Duration(c.AlertSyncLag).String() })
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
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen: %q is not host:port", c.Listen)
	}
	if !strings.HasPrefix(c.DB, "sqlite://") && !strings.HasPrefix(c.DB, "postgres://") && !strings.HasPrefix(c.DB, "postgresql://") {
		return fmt.Errorf("db: must start with sqlite:// or postgres://")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("tls_cert/tls_key: set both or neither")
	}
	for _, f := range []struct{ name, path string }{{"tls_cert", c.TLSCert}, {"tls_key", c.TLSKey}} {
		if f.path != "" {
			if _, err := os.Stat(f.path); err != nil {
				return fmt.Errorf("%s: %w", f.name, err)
			}
		}
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("public_url: %q is not an http(s) URL", c.PublicURL)
		}
	}
	if c.SessionKeyFile == "" {
		return errors.New("session_key_file: is required")
	}
	if d := time.Duration(c.SessionTTL); d < time.Minute || d > 30*24*time.Hour {
		return fmt.Errorf("session_ttl: %s is outside 1m..720h", d)
	}
	if _, err := c.trustedNets(); err != nil {
		return err
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log_level: %q is not debug, info, warn or error", c.LogLevel)
	}
	if (c.AdminEmail == "") != (c.AdminPassword == "") {
		return errors.New("admin_email/admin_password: set both or neither")
	}
	if p, err := netip.ParsePrefix(c.TunnelIPv4); err != nil || !p.Addr().Is4() || p.Bits() > 30 {
		return fmt.Errorf("tunnel_ipv4: %q is not an IPv4 network of /30 or wider", c.TunnelIPv4)
	}
	if p, err := netip.ParsePrefix(c.TunnelIPv6); err != nil || !p.Addr().Is6() || p.Addr().Is4In6() || p.Bits() > 120 {
		return fmt.Errorf("tunnel_ipv6: %q is not an IPv6 network of /120 or wider", c.TunnelIPv6)
	}
	if c.TunnelMTU < 1280 || c.TunnelMTU > 9000 {
		return fmt.Errorf("tunnel_mtu: %d is outside 1280..9000", c.TunnelMTU)
	}
	for _, d := range c.ClientDNS {
		if _, err := netip.ParseAddr(d); err != nil {
			return fmt.Errorf("client_dns: %q is not an IP address", d)
		}
	}
	if c.PolicyFile != "" {
		if _, err := os.Stat(c.PolicyFile); err != nil {
			return fmt.Errorf("policy_file: %w", err)
		}
	}
	if d := time.Duration(c.PolicyNotice); d < 0 || d > 365*24*time.Hour {
		return fmt.Errorf("policy_notice: %s is outside 0..8760h", d)
	}
	if c.SMTPAddr != "" {
		if _, _, err := net.SplitHostPort(c.SMTPAddr); err != nil {
			return fmt.Errorf("smtp_addr: %q is not host:port", c.SMTPAddr)
		}
		if _, err := mail.ParseAddress(c.SMTPFrom); err != nil {
			return fmt.Errorf("smtp_from: %q is not an email address (required with smtp_addr)", c.SMTPFrom)
		}
	}
	if (c.SMTPUsername == "") != (c.SMTPPassword == "") {
		return errors.New("smtp_username/smtp_password: set both or neither")
	}
	if d := time.Duration(c.AlertSyncLag); d < 5*time.Second || d > 24*time.Hour {
		return fmt.Errorf("alert_sync_lag: %s is outside 5s..24h", d)
	}
	return nil
}

func (c *Config) trustedNets() ([]*net.IPNet, error) {
	var out []*net.IPNet
	for _, p := range c.TrustedProxies {
		_, n, err := net.ParseCIDR(p)
		if err != nil {
			return nil, fmt.Errorf("trusted_proxies: %q is not a CIDR", p)
		}
		out = append(out, n)
	}
	return out, nil
}

// baseURL is how the server is reached, for printed links.
func (c *Config) baseURL(addr string) string {
	if c.PublicURL != "" {
		return strings.TrimSuffix(c.PublicURL, "/")
	}
	scheme := "http"
	if c.TLSCert != "" {
		scheme = "https"
	}
	return scheme + "://" + addr
}

// loadSessionKey reads the 32-byte signing seed, creating it (mode 0600)
// on first start.
func loadSessionKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key := make([]byte, 32)
		if _, err := io.ReadFull(randReader, key); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("session_key_file: %w", err)
		}
		enc := base64.StdEncoding.EncodeToString(key) + "\n"
		if err := os.WriteFile(path, []byte(enc), 0o600); err != nil {
			return nil, fmt.Errorf("session_key_file: %w", err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("session_key_file: %w", err)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != 32 {
		return nil, fmt.Errorf("session_key_file: %s must hold 32 bytes in base64", path)
	}
	return key, nil
}
