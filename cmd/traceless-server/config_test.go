package main

import (
	"bytes"
	"encoding/base64"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDefaultConfigValidates(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
	if c.Listen != "127.0.0.1:8080" || c.DB != "sqlite://./data/traceless.db" {
		t.Errorf("defaults differ from the documented ones: %+v", c)
	}
}

// fullConfig is what the config files below describe.
func fullConfig(tb testing.TB) (Config, string, string) {
	tb.Helper()
	dir := tb.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for _, p := range []string{cert, key} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	return Config{
		Listen:              "0.0.0.0:9443",
		MetricsListen:       "127.0.0.1:9585",
		MaxConnections:      500,
		NodeLongPolls:       2,
		DB:                  "postgres://traceless@db.internal/traceless",
		TLSCert:             cert,
		TLSKey:              key,
		PublicURL:           "https://vpn.example.com",
		SessionKeyFile:      "/var/lib/traceless/session.key",
		SecretKeyFile:       "/var/lib/traceless/secret.key",
		RequireOperator2FA:  true,
		SessionTTL:          Duration(90 * time.Minute),
		SecureCookies:       true,
		TrustedProxies:      []string{"10.0.0.0/8", "fd00::/8"},
		LogLevel:            "warn",
		AdminEmail:          "ops@example.com",
		AdminPassword:       "blue giraffe tangerine 42",
		TunnelIPv4:          "10.64.0.0/10",
		TunnelIPv6:          "fd74:6c73:7670:1::/64",
		TunnelMTU:           1380,
		ClientDNS:           []string{"10.64.0.1"},
		KeyRate:             20,
		PolicyNotice:        Duration(14 * 24 * time.Hour),
		SMTPAddr:            "mail.example.com:587",
		SMTPFrom:            "alerts@example.com",
		AlertSyncLag:        Duration(2 * time.Minute),
		Billing:             "stripe",
		PlanSelfService:     true,
		StripeSecretKey:     "sk_test_file",
		StripeWebhookSecret: "whsec_file",
		StripePrices:        []string{"pro=price_pro", "business=price_biz"},
		BillingGrace:        Duration(72 * time.Hour),
		BillingFreePlan:     "free",
	}, cert, key
}

func TestParseConfigFiles(t *testing.T) {
	want, cert, key := fullConfig(t)
	yamlDoc := `
listen: 0.0.0.0:9443
metrics_listen: 127.0.0.1:9585
max_connections: 500
node_long_polls: 2
db: postgres://traceless@db.internal/traceless
tls_cert: ` + cert + `
tls_key: ` + key + `
public_url: https://vpn.example.com
session_key_file: /var/lib/traceless/session.key
secret_key_file: /var/lib/traceless/secret.key
require_operator_2fa: true
session_ttl: 1h30m
secure_cookies: true
trusted_proxies: [10.0.0.0/8, "fd00::/8"]
log_level: warn
admin_email: ops@example.com
admin_password: blue giraffe tangerine 42
tunnel_mtu: 1380
client_dns: [10.64.0.1]
key_rate: 20
policy_notice: 336h
smtp_addr: mail.example.com:587
smtp_from: alerts@example.com
email_verification: false
alert_sync_lag: 2m
billing: stripe
stripe_secret_key: sk_test_file
stripe_webhook_secret: whsec_file
stripe_prices: [pro=price_pro, business=price_biz]
billing_grace: 72h
`
	tomlDoc := `
listen = "0.0.0.0:9443"
metrics_listen = "127.0.0.1:9585"
max_connections = 500
node_long_polls = 2
db = "postgres://traceless@db.internal/traceless"
tls_cert = "` + cert + `"
tls_key = "` + key + `"
public_url = "https://vpn.example.com"
session_key_file = "/var/lib/traceless/session.key"
secret_key_file = "/var/lib/traceless/secret.key"
require_operator_2fa = true
session_ttl = "1h30m"
secure_cookies = true
trusted_proxies = ["10.0.0.0/8", "fd00::/8"]
log_level = "warn"
admin_email = "ops@example.com"
admin_password = "blue giraffe tangerine 42"
tunnel_mtu = 1380
client_dns = ["10.64.0.1"]
key_rate = 20
policy_notice = "336h"
smtp_addr = "mail.example.com:587"
smtp_from = "alerts@example.com"
email_verification = false
alert_sync_lag = "2m"
billing = "stripe"
stripe_secret_key = "sk_test_file"
stripe_webhook_secret = "whsec_file"
stripe_prices = ["pro=price_pro", "business=price_biz"]
billing_grace = "72h"
`
	for _, tc := range []struct{ format, doc string }{{"yaml", yamlDoc}, {"toml", tomlDoc}} {
		t.Run(tc.format, func(t *testing.T) {
			c := DefaultConfig()
			if err := ParseConfig(strings.NewReader(tc.doc), tc.format, &c); err != nil {
				t.Fatalf("ParseConfig: %v", err)
			}
			if diff := cmp.Diff(want, c); diff != "" {
				t.Errorf("config mismatch (-want +got):\n%s", diff)
			}
			if err := c.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestParseConfigPartialKeepsDefaults(t *testing.T) {
	for _, tc := range []struct{ format, doc string }{{"yaml", "listen: 127.0.0.1:9000\n"}, {"toml", `listen = "127.0.0.1:9000"`}, {"yaml", ""}, {"yaml", "# only a comment\n"}} {
		c := DefaultConfig()
		if err := ParseConfig(strings.NewReader(tc.doc), tc.format, &c); err != nil {
			t.Fatalf("%s %q: %v", tc.format, tc.doc, err)
		}
		want := DefaultConfig()
		if tc.doc != "" && !strings.HasPrefix(tc.doc, "#") {
			want.Listen = "127.0.0.1:9000"
		}
		if diff := cmp.Diff(want, c); diff != "" {
			t.Errorf("%s %q: (-want +got):\n%s", tc.format, tc.doc, diff)
		}
	}
}

func TestParseConfigRejects(t *testing.T) {
	for _, tc := range []struct {
		name, format, doc, want string
	}{
		{"yaml unknown key", "yaml", "listen: 127.0.0.1:1\nlisten_addr: x\n", "listen_addr"},
		{"yaml typo", "yaml", "sesion_ttl: 1h\n", "sesion_ttl"},
		{"toml unknown key", "toml", "listen = \"127.0.0.1:1\"\nlisten_addr = \"x\"\n", "listen_addr"},
		{"toml unknown table", "toml", "[server]\nport = 1\n", "server"},
		{"yaml bad duration", "yaml", "session_ttl: soon\n", "soon"},
		{"toml bad duration", "toml", "session_ttl = \"soon\"\n", "soon"},
		{"yaml wrong type", "yaml", "listen: 127.0.0.1:1\nsecure_cookies: maybe\n", "line 2"},
		{"toml wrong type", "toml", "secure_cookies = \"maybe\"\n", "secure_cookies"},
		{"yaml syntax", "yaml", "listen: [\n", "yaml"},
		{"toml syntax", "toml", "listen = \n", "toml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			err := ParseConfig(strings.NewReader(tc.doc), tc.format, &c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseConfig = %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

func TestValidateNamesField(t *testing.T) {
	_, cert, _ := fullConfig(t)
	for _, tc := range []struct {
		name  string
		edit  func(c *Config)
		field string
	}{
		{"listen without port", func(c *Config) { c.Listen = "127.0.0.1" }, "listen"},
		{"listen empty", func(c *Config) { c.Listen = "" }, "listen"},
		{"metrics listen", func(c *Config) { c.MetricsListen = "9585" }, "metrics_listen"},
		{"max connections", func(c *Config) { c.MaxConnections = 0 }, "max_connections"},
		{"node long polls", func(c *Config) { c.NodeLongPolls = 0 }, "node_long_polls"},
		{"db scheme", func(c *Config) { c.DB = "mysql://x" }, "db"},
		{"db bare path", func(c *Config) { c.DB = "./data/traceless.db" }, "db"},
		{"tls cert without key", func(c *Config) { c.TLSCert = cert }, "tls_cert/tls_key"},
		{"tls key without cert", func(c *Config) { c.TLSKey = cert }, "tls_cert/tls_key"},
		{"tls cert missing", func(c *Config) { c.TLSCert, c.TLSKey = "/nonexistent/cert.pem", cert }, "tls_cert"},
		{"tls key missing", func(c *Config) { c.TLSCert, c.TLSKey = cert, "/nonexistent/key.pem" }, "tls_key"},
		{"public url scheme", func(c *Config) { c.PublicURL = "ftp://x" }, "public_url"},
		{"public url host", func(c *Config) { c.PublicURL = "https://" }, "public_url"},
		{"session key file", func(c *Config) { c.SessionKeyFile = "" }, "session_key_file"},
		{"session ttl short", func(c *Config) { c.SessionTTL = Duration(time.Second) }, "session_ttl"},
		{"session ttl long", func(c *Config) { c.SessionTTL = Duration(1000 * time.Hour) }, "session_ttl"},
		{"session ttl zero", func(c *Config) { c.SessionTTL = 0 }, "session_ttl"},
		{"trusted proxies address", func(c *Config) { c.TrustedProxies = []string{"10.0.0.1"} }, "trusted_proxies"},
		{"trusted proxies garbage", func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/8", "proxy"} }, "trusted_proxies"},
		{"log level", func(c *Config) { c.LogLevel = "verbose" }, "log_level"},
		{"log level upper", func(c *Config) { c.LogLevel = "INFO" }, "log_level"},
		{"tunnel ipv4 is v6", func(c *Config) { c.TunnelIPv4 = "fd00::/64" }, "tunnel_ipv4"},
		{"tunnel ipv4 too small", func(c *Config) { c.TunnelIPv4 = "10.0.0.0/31" }, "tunnel_ipv4"},
		{"tunnel ipv6 is v4", func(c *Config) { c.TunnelIPv6 = "10.64.0.0/10" }, "tunnel_ipv6"},
		{"tunnel mtu", func(c *Config) { c.TunnelMTU = 576 }, "tunnel_mtu"},
		{"client dns", func(c *Config) { c.ClientDNS = []string{"dns.example"} }, "client_dns"},
		{"policy file missing", func(c *Config) { c.PolicyFile = "/nonexistent/policy.yaml" }, "policy_file"},
		{"policy notice", func(c *Config) { c.PolicyNotice = Duration(-time.Hour) }, "policy_notice"},
		{"smtp addr", func(c *Config) { c.SMTPAddr = "mail.example.com"; c.SMTPFrom = "a@b.cd" }, "smtp_addr"},
		{"smtp from", func(c *Config) { c.SMTPAddr = "mail.example.com:25" }, "smtp_from"},
		{"smtp pair", func(c *Config) { c.SMTPUsername = "u" }, "smtp_username/smtp_password"},
		{"alert sync lag", func(c *Config) { c.AlertSyncLag = Duration(time.Second) }, "alert_sync_lag"},
		{"admin email alone", func(c *Config) { c.AdminEmail = "ops@example.com" }, "admin_email/admin_password"},
		{"admin password alone", func(c *Config) { c.AdminPassword = "secret secret" }, "admin_email/admin_password"},
		{"billing provider", func(c *Config) { c.Billing = "paypal" }, "billing"},
		{"stripe settings without stripe", func(c *Config) { c.StripePrices = []string{"pro=price_1"} }, "billing"},
		{"billing grace", func(c *Config) { c.BillingGrace = Duration(time.Minute) }, "billing_grace"},
		{"billing free plan", func(c *Config) { c.BillingFreePlan = "" }, "billing_free_plan"},
		{"stripe without key", func(c *Config) { stripeConfig(c); c.StripeSecretKey = "" }, "stripe_secret_key"},
		{"stripe publishable key", func(c *Config) { stripeConfig(c); c.StripeSecretKey = "pk_test_1" }, "stripe_secret_key"},
		{"stripe without webhook secret", func(c *Config) { stripeConfig(c); c.StripeWebhookSecret = "" }, "stripe_webhook_secret"},
		{"stripe without prices", func(c *Config) { stripeConfig(c); c.StripePrices = nil }, "stripe_prices"},
		{"stripe price syntax", func(c *Config) { stripeConfig(c); c.StripePrices = []string{"pro:price_1"} }, "stripe_prices"},
		{"stripe price twice", func(c *Config) { stripeConfig(c); c.StripePrices = []string{"pro=price_1", "pro=price_2"} }, "stripe_prices"},
		{"stripe api url", func(c *Config) { stripeConfig(c); c.StripeAPIURL = "ftp://x" }, "stripe_api_url"},
		{"stripe without public url", func(c *Config) { stripeConfig(c); c.PublicURL = "" }, "public_url"},
		{"stripe without self-service", func(c *Config) { stripeConfig(c); c.PlanSelfService = false }, "plan_self_service"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.edit(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate accepted")
			}
			if !strings.HasPrefix(err.Error(), tc.field+":") {
				t.Errorf("Validate = %q, want it to start with %q", err, tc.field+":")
			}
			if c.AdminPassword != "" && strings.Contains(err.Error(), c.AdminPassword) {
				t.Errorf("error %q echoes the admin password", err)
			}
		})
	}
}

// envMap is a getenv over a fixed map, so the tests ignore the real
// environment.
func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseFlagsPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "traceless.yaml")
	if err := os.WriteFile(file, []byte("listen: 127.0.0.1:1001\nlog_level: warn\nsession_ttl: 2h\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tomlFile := filepath.Join(dir, "traceless.toml")
	if err := os.WriteFile(tomlFile, []byte("listen = \"127.0.0.1:1004\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		args   []string
		env    map[string]string
		listen string
		level  string
		ttl    time.Duration
	}{
		{"defaults", nil, nil, "127.0.0.1:8080", "info", 12 * time.Hour},
		{"file", []string{"--config", file}, nil, "127.0.0.1:1001", "warn", 2 * time.Hour},
		{"file from env", nil, map[string]string{"TRACELESS_CONFIG": file}, "127.0.0.1:1001", "warn", 2 * time.Hour},
		{"toml file", []string{"-config=" + tomlFile}, nil, "127.0.0.1:1004", "info", 12 * time.Hour},
		{"env over file", []string{"--config", file}, map[string]string{"TRACELESS_LISTEN": "127.0.0.1:1002"}, "127.0.0.1:1002", "warn", 2 * time.Hour},
		{"flag over env", []string{"--config", file, "--listen", "127.0.0.1:1003"}, map[string]string{"TRACELESS_LISTEN": "127.0.0.1:1002", "TRACELESS_LOG_LEVEL": "debug"},
			"127.0.0.1:1003", "debug", 2 * time.Hour},
		{"flag before --config", []string{"--listen=127.0.0.1:1003", "--config", file}, nil, "127.0.0.1:1003", "warn", 2 * time.Hour},
		{"env ttl", nil, map[string]string{"TRACELESS_SESSION_TTL": "30m"}, "127.0.0.1:8080", "info", 30 * time.Minute},
		{"flag ttl", []string{"--session-ttl", "45m"}, map[string]string{"TRACELESS_SESSION_TTL": "30m"}, "127.0.0.1:8080", "info", 45 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMain(&syncBuffer{}, &syncBuffer{})
			if err := m.ParseFlags(tc.args, envMap(tc.env)); err != nil {
				t.Fatalf("ParseFlags: %v", err)
			}
			got := [3]any{m.Config.Listen, m.Config.LogLevel, time.Duration(m.Config.SessionTTL)}
			if diff := cmp.Diff([3]any{tc.listen, tc.level, tc.ttl}, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseFlagsSettings(t *testing.T) {
	m := NewMain(&syncBuffer{}, &syncBuffer{})
	err := m.ParseFlags([]string{"--secure-cookies", "--trusted-proxies", "10.0.0.0/8, 192.168.0.0/16 ,", "--public-url", "https://vpn.example.com/"},
		envMap(map[string]string{"TRACELESS_ADMIN_EMAIL": "ops@example.com", "TRACELESS_ADMIN_PASSWORD": "blue giraffe tangerine 42", "TRACELESS_DB": "sqlite:///tmp/x.db"}))
	if err != nil {
		t.Fatal(err)
	}
	c := m.Config
	if !c.SecureCookies || c.AdminEmail != "ops@example.com" || c.AdminPassword == "" || c.DB != "sqlite:///tmp/x.db" {
		t.Errorf("config = %+v", c)
	}
	if diff := cmp.Diff([]string{"10.0.0.0/8", "192.168.0.0/16"}, c.TrustedProxies); diff != "" {
		t.Errorf("trusted proxies (-want +got):\n%s", diff)
	}
	if got := m.opts.baseURL("127.0.0.1:1"); got != "https://vpn.example.com" {
		t.Errorf("baseURL = %q", got)
	}
	m = NewMain(&syncBuffer{}, &syncBuffer{})
	if err := m.ParseFlags([]string{"--secure-cookies=false"}, envMap(map[string]string{"TRACELESS_SECURE_COOKIES": "true"})); err != nil || m.Config.SecureCookies {
		t.Errorf("--secure-cookies=false over env: %v, %v", m.Config.SecureCookies, err)
	}
}

func TestParseFlagsRejects(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("listen: 127.0.0.1:1\nlisten_port: 2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"unknown flag", []string{"--lisen", "x"}, nil, "lisen"},
		{"extra argument", []string{"serve"}, nil, "serve"},
		{"missing config file", []string{"--config", filepath.Join(dir, "nope.yaml")}, nil, "nope.yaml"},
		{"unknown key in file", []string{"--config", bad}, nil, "listen_port"},
		{"bad env value", nil, map[string]string{"TRACELESS_SESSION_TTL": "forever"}, "TRACELESS_SESSION_TTL"},
		{"bad env bool", nil, map[string]string{"TRACELESS_SECURE_COOKIES": "yes please"}, "TRACELESS_SECURE_COOKIES"},
		{"invalid after flags", []string{"--listen", "nowhere"}, nil, "listen"},
		{"invalid from env", nil, map[string]string{"TRACELESS_LOG_LEVEL": "loud"}, "log_level"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMain(&syncBuffer{}, &syncBuffer{})
			err := m.ParseFlags(tc.args, envMap(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseFlags = %v, want an error naming %q", err, tc.want)
			}
		})
	}
	m := NewMain(&syncBuffer{}, &syncBuffer{})
	if err := m.ParseFlags([]string{"-h"}, envMap(nil)); err != flag.ErrHelp {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
}

// TestLoadSecretKeys: a missing file is created (0600) with one key; a
// file with several keys (the rotation) gives them in order; a bad line is
// named.
func TestLoadSecretKeys(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "secret.key")
	keys, err := loadSecretKeys(path)
	if err != nil || len(keys) != 1 || len(keys[0]) != 32 {
		t.Fatalf("created: %d keys, %v", len(keys), err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v, %v; want 0600", st.Mode(), err)
	}
	again, err := loadSecretKeys(path)
	if err != nil || string(again[0]) != string(keys[0]) {
		t.Fatalf("read back: %v", err)
	}
	newKey := bytes.Repeat([]byte{7}, 32)
	rotated := "# new first\n" + base64.StdEncoding.EncodeToString(newKey) + "\n\n" + base64.StdEncoding.EncodeToString(keys[0]) + "\n"
	if err := os.WriteFile(path, []byte(rotated), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := loadSecretKeys(path)
	if err != nil || len(got) != 2 || string(got[0]) != string(newKey) || string(got[1]) != string(keys[0]) {
		t.Fatalf("rotated file: %d keys, %v", len(got), err)
	}
	for name, text := range map[string]string{"short key": "c2hvcnQ=\n", "not base64": "***\n", "only comments": "# none\n"} {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := loadSecretKeys(path); err == nil || !strings.Contains(err.Error(), "secret_key_file") {
			t.Errorf("%s: %v, want an error naming secret_key_file", name, err)
		}
	}
	o, err := func() (*Options, error) {
		c := DefaultConfig()
		c.SessionKeyFile = "/srv/tl/session.key"
		return c.Options()
	}()
	if err != nil || o.SecretKeyFile != "/srv/tl/secret.key" {
		t.Errorf("default secret_key_file = %q, %v; want beside the session key", o.SecretKeyFile, err)
	}
}

// stripeConfig turns on a valid Stripe billing configuration.
func stripeConfig(c *Config) {
	c.Billing, c.StripeSecretKey, c.StripeWebhookSecret = "stripe", "sk_test_1", "whsec_1"
	c.StripePrices, c.PublicURL = []string{"pro=price_1"}, "https://vpn.example.com"
}
