package main

import (
	"bytes"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"gopkg.in/yaml.v3"
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
}

// Duration is a time.Duration written as "12h" in config files.
type Duration time.Duration

// UnmarshalText parses a Go duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes a Go duration.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// DefaultConfig returns the settings used when nothing is configured.
func DefaultConfig() Config {
	return Config{
		Listen:         "127.0.0.1:8080",
		DB:             "sqlite://./data/traceless.db",
		SessionKeyFile: "./data/session.key",
		SessionTTL:     Duration(12 * time.Hour),
		LogLevel:       "info",
	}
}

// ParseConfig reads a YAML or TOML config file into c. Unknown keys are
// errors, so a typo does not silently fall back to a default.
func ParseConfig(r io.Reader, format string, c *Config) error {
	b, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return err
	}
	switch format {
	case "toml":
		md, err := toml.Decode(string(b), c)
		if err != nil {
			return err // "toml: line …"
		}
		if und := md.Undecoded(); len(und) > 0 {
			return fmt.Errorf("unknown setting %q", und[0].String())
		}
	default:
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
			return err // "yaml: line …"
		}
	}
	return nil
}

// setting ties one Config field to its flag and environment variable.
type setting struct {
	name, env, usage string
	set              func(string) error
	get              func() string
	isBool           bool // a flag that may be given without a value
}

func (c *Config) settings() []setting {
	str := func(p *string) (func(string) error, func() string) {
		return func(v string) error { *p = v; return nil }, func() string { return *p }
	}
	var out []setting
	add := func(name, usage string, set func(string) error, get func() string) {
		env := "TRACELESS_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
		out = append(out, setting{name: name, env: env, usage: usage, set: set, get: get})
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
	out[len(out)-1].isBool = true
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
	return out
}

// ApplyEnv overrides c from TRACELESS_* variables.
func (c *Config) ApplyEnv(getenv func(string) string) error {
	for _, st := range c.settings() {
		if v := getenv(st.env); v != "" {
			if err := st.set(v); err != nil {
				return fmt.Errorf("%s: %w", st.env, err)
			}
		}
	}
	return nil
}

// RegisterFlags adds a flag per setting; flags set on the command line are
// applied after the file and the environment by the flag package itself.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	for _, st := range c.settings() {
		if st.isBool {
			fs.BoolFunc(st.name, st.usage+" (env "+st.env+")", st.set)
			continue
		}
		fs.Func(st.name, st.usage+" (env "+st.env+")", st.set)
	}
}

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
