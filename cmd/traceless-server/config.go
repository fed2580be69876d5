package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/traceless-vpn/traceless/controlplane"
	"github.com/traceless-vpn/traceless/controlplane/billing"
	"github.com/traceless-vpn/traceless/internal/config"
	"github.com/traceless-vpn/traceless/store"
)

// Config is every setting of traceless-server as written: in a config
// file, the environment or flags. Its table (Config.table) names each
// setting's key, flag, environment variable, default and help once;
// Options turns it into the typed options the program runs with.
type Config struct {
	Listen string
	// MetricsListen serves /metrics on an address of its own; empty keeps
	// it on Listen.
	MetricsListen string
	// MaxConnections caps the connections served at once on Listen;
	// NodeLongPolls the long polls one node holds open.
	MaxConnections int
	NodeLongPolls  int
	DB             string
	TLSCert        string
	TLSKey         string
	PublicURL      string
	SessionKeyFile string
	SessionTTL     Duration
	// SecretKeyFile holds the keys that seal stored secrets (TOTP).
	SecretKeyFile string
	// RequireOperator2FA makes operators enable two-factor sign-in before
	// doing anything else.
	RequireOperator2FA bool
	SecureCookies      bool
	TrustedProxies     []string
	LogLevel           string
	// AdminEmail and AdminPassword create the operator account on the first
	// start of an empty database. Prefer the environment for the password.
	AdminEmail    string
	AdminPassword string
	// TunnelIPv4 and TunnelIPv6 are the networks device addresses come
	// from; changing them after devices exist strands those devices.
	TunnelIPv4 string
	TunnelIPv6 string
	TunnelMTU  int
	// ClientDNS are the resolvers written into client configs.
	ClientDNS []string
	// KeyRate is each API key's provisioning rate per second (negative:
	// unlimited).
	KeyRate float64
	// PolicyFile holds the privacy policy's versions (YAML); PolicyNotice is
	// how long before taking effect a new version is announced.
	PolicyFile   string
	PolicyNotice Duration
	// SMTP* configure mail: alert emails and sign-in mail (email
	// verification, password reset); without smtp_addr owners can choose
	// alert webhooks only and nobody's email is verified.
	SMTPAddr     string
	SMTPFrom     string
	SMTPUsername string
	SMTPPassword string
	// EmailVerification makes owners who sign up verify their email
	// before creating API keys, whenever smtp_addr is set.
	EmailVerification bool
	// OIDCProviders are the OpenID providers of single sign-on (a list,
	// so in a config file only); OperatorSSOOnly refuses operators'
	// password sign-ins.
	OIDCProviders   []OIDCProviderConfig
	OperatorSSOOnly bool
	// AlertSyncLag is how long a node may trail the current revision
	// before owners are told it lags.
	AlertSyncLag Duration
	// AlertAllowPrivateTargets lets alert webhooks go to loopback and
	// private addresses, over http:// too: for trying alerts on a laptop.
	AlertAllowPrivateTargets bool
	// Billing is the payment provider: none (operators assign plans) or
	// stripe. PlanSelfService lets owners change their own plan without
	// a provider. The Stripe* settings configure Stripe; BillingGrace and
	// BillingFreePlan the rules for unpaid subscriptions.
	Billing             string
	PlanSelfService     bool
	StripeSecretKey     string
	StripeWebhookSecret string
	StripePrices        []string
	StripeAPIURL        string
	BillingGrace        Duration
	BillingFreePlan     string
}

// OIDCProviderConfig is one entry of oidc_providers, as written in the
// config file. The client secret is given inline or, better, in a file
// (client_secret_file) that only the server's user can read.
type OIDCProviderConfig struct {
	Name             string   `json:"name"`
	Label            string   `json:"label"`
	Issuer           string   `json:"issuer"`
	ClientID         string   `json:"client_id"`
	ClientSecret     string   `json:"client_secret,omitempty"`
	ClientSecretFile string   `json:"client_secret_file,omitempty"`
	Scopes           []string `json:"scopes,omitempty"`
}

// Duration is a time.Duration written as "12h" in config files.
type Duration = config.Duration

// table is the one description of every setting: its file key (the flag
// and the TRACELESS_* variable derive from it), the field it fills, its
// default and its help. README's configuration table is checked against
// it (TestREADMESettingsTable).
func (c *Config) table() *config.Table {
	return &config.Table{Program: "traceless-server", EnvPrefix: "TRACELESS_", Settings: []config.Setting{
		{Key: "listen", Value: config.String(&c.Listen), Default: "127.0.0.1:8080", Arg: "HOST:PORT",
			Usage: "address to listen on"},
		{Key: "metrics_listen", Value: config.String(&c.MetricsListen), Unset: "the main listener", Arg: "HOST:PORT",
			Usage: "serve /metrics on a listener of its own, plain HTTP, instead of on --listen"},
		{Key: "max_connections", Value: config.Int(&c.MaxConnections), Default: "10000", Arg: "N",
			Usage: "connections served at once on --listen; more wait to be accepted"},
		{Key: "node_long_polls", Value: config.Int(&c.NodeLongPolls), Default: "4", Arg: "N",
			Usage: "long polls one node may hold open at once; more get 429 rate_limited"},
		{Key: "db", Value: config.String(&c.DB), Default: "sqlite://./data/traceless.db", Arg: "URL",
			Usage: "database: sqlite://PATH or postgres://…"},
		{Key: "tls_cert", Value: config.String(&c.TLSCert), Arg: "FILE",
			Usage: "TLS certificate file (PEM); serves HTTPS with --tls-key"},
		{Key: "tls_key", Value: config.String(&c.TLSKey), Arg: "FILE",
			Usage: "TLS private key file (PEM)"},
		{Key: "public_url", Value: config.String(&c.PublicURL), Unset: "from listen", Arg: "URL",
			Usage: "URL people use to reach this server, for printed links"},
		{Key: "session_key_file", Value: config.String(&c.SessionKeyFile), Default: "./data/session.key", Arg: "FILE",
			Usage: "file holding the key that signs sign-in tokens (created if missing)"},
		{Key: "session_ttl", Value: config.Dur(&c.SessionTTL), Default: "12h", Arg: "DURATION",
			Usage: "lifetime of a sign-in token (1m–720h)"},
		{Key: "secret_key_file", Value: config.String(&c.SecretKeyFile), Unset: "secret.key beside session_key_file", Arg: "FILE",
			Usage: "file holding the keys that encrypt stored two-factor secrets, one base64 key a line, the first in use (created if missing)"},
		{Key: "require_operator_2fa", Value: config.Bool(&c.RequireOperator2FA), Default: "false",
			Usage: "operators must turn on two-factor sign-in before anything else (they are sent to enrolment until they do)"},
		{Key: "secure_cookies", Value: config.Bool(&c.SecureCookies), Default: "false",
			Usage: "mark the session cookie Secure (behind an HTTPS proxy; implied by --tls-cert)"},
		{Key: "trusted_proxies", Value: config.List(&c.TrustedProxies), Unset: "none", Arg: "CIDR,…",
			Usage: "networks whose X-Forwarded-For keys rate limits"},
		{Key: "log_level", Value: config.String(&c.LogLevel), Default: "info", Arg: "LEVEL",
			Usage: "debug, info, warn or error"},
		{Key: "admin_email", Value: config.String(&c.AdminEmail), Arg: "EMAIL",
			Usage: "operator created on the first start of an empty database"},
		{Key: "admin_password", Value: config.String(&c.AdminPassword), Arg: "PASSWORD",
			Usage: "that operator's password (prefer the environment: flags show in the process list)"},
		{Key: "tunnel_ipv4", Value: config.String(&c.TunnelIPv4), Default: "10.64.0.0/10", Arg: "CIDR",
			Usage: "IPv4 network device tunnel addresses come from (do not change once devices exist)"},
		{Key: "tunnel_ipv6", Value: config.String(&c.TunnelIPv6), Default: "fd74:6c73:7670:1::/64", Arg: "CIDR",
			Usage: "IPv6 (ULA) network device tunnel addresses come from"},
		{Key: "tunnel_mtu", Value: config.Int(&c.TunnelMTU), Default: "1420", Arg: "N",
			Usage: "MTU nodes set on their WireGuard interface (1280–9000)"},
		{Key: "client_dns", Value: config.List(&c.ClientDNS), Default: "9.9.9.9,2620:fe::fe", Arg: "IP,…",
			Usage: "resolvers written into client configs"},
		{Key: "key_rate", Value: config.Float(&c.KeyRate), Default: "50", Arg: "N",
			Usage: "provisioning requests per second per API key, burst 4×; negative: unlimited"},
		{Key: "policy_file", Value: config.String(&c.PolicyFile), Unset: "built-in policy", Arg: "FILE",
			Usage: "YAML list of privacy policy versions (configs/privacy-policy.example.yaml)"},
		{Key: "policy_notice", Value: config.Dur(&c.PolicyNotice), Default: "720h", Arg: "DURATION",
			Usage: "how long before it takes effect a new policy version is announced"},
		{Key: "smtp_addr", Value: config.String(&c.SMTPAddr), Arg: "HOST:PORT",
			Usage: "mail server for alert emails and sign-in mail (verification, password reset); empty: alerts go to webhooks only and no mail is sent"},
		{Key: "smtp_from", Value: config.String(&c.SMTPFrom), Arg: "EMAIL",
			Usage: "sender address of the server's mail (required with --smtp-addr)"},
		{Key: "smtp_username", Value: config.String(&c.SMTPUsername), Arg: "USER",
			Usage: "SMTP user, when the mail server wants authentication"},
		{Key: "smtp_password", Value: config.String(&c.SMTPPassword), Arg: "PASSWORD",
			Usage: "SMTP password (prefer the environment)"},
		{Key: "email_verification", Value: config.Bool(&c.EmailVerification), Default: "true",
			Usage: "with smtp_addr set, owners who sign up verify their email (a mailed link) before creating API keys; false turns it off"},
		{Key: "oidc_providers", Value: config.Structure(&c.OIDCProviders), Unset: "none",
			Usage: "OpenID providers for single sign-on: a list of {name, label, issuer, client_id, client_secret or client_secret_file, scopes}; needs public_url"},
		{Key: "operator_sso_only", Value: config.Bool(&c.OperatorSSOOnly), Default: "false",
			Usage: "operators sign in only through an OpenID provider of oidc_providers, never with a password alone"},
		{Key: "alert_sync_lag", Value: config.Dur(&c.AlertSyncLag), Default: "1m", Arg: "DURATION",
			Usage: "how long a node may trail the current sync revision before owners are told (5s–24h)"},
		{Key: "alert_allow_private_targets", Value: config.Bool(&c.AlertAllowPrivateTargets), Default: "false",
			Usage: "let alert webhooks go to loopback and private addresses, over http:// too, to try alerts on a laptop; off, a webhook needs https:// and a public address (link-local is refused either way)"},
		{Key: "billing", Value: config.String(&c.Billing), Default: "none", Arg: "PROVIDER",
			Usage: "payment provider for paid plans: none (operators assign plans) or stripe (owners buy paid plans through Stripe Checkout)"},
		{Key: "plan_self_service", Value: config.Bool(&c.PlanSelfService), Default: "true",
			Usage: "with billing none, owners may change their own plan; false: only operators assign plans"},
		{Key: "stripe_secret_key", Value: config.String(&c.StripeSecretKey), Arg: "KEY",
			Usage: "Stripe secret API key, sk_… (required with billing stripe; prefer the environment)"},
		{Key: "stripe_webhook_secret", Value: config.String(&c.StripeWebhookSecret), Arg: "SECRET",
			Usage: "signing secret of the Stripe webhook endpoint <public_url>/api/v1/billing/stripe/webhook, whsec_… (required with billing stripe)"},
		{Key: "stripe_prices", Value: config.List(&c.StripePrices), Unset: "none", Arg: "PLAN=PRICE,…",
			Usage: "Stripe price of each paid plan owners may buy, as plan slug = Stripe price ID (price_…)"},
		{Key: "stripe_api_url", Value: config.String(&c.StripeAPIURL), Unset: "Stripe's API", Arg: "URL",
			Usage: "Stripe API base URL (for tests against stripe-mock)"},
		{Key: "billing_grace", Value: config.Dur(&c.BillingGrace), Default: "168h", Arg: "DURATION",
			Usage: "how long after a failed payment the paid plan's limits still hold, before new registrations are held to the free plan's (1h–2160h)"},
		{Key: "billing_free_plan", Value: config.String(&c.BillingFreePlan), Default: "free", Arg: "PLAN",
			Usage: "slug of the plan cancelled and unpaid subscriptions return owners to"},
	}}
}

// DefaultConfig returns the settings used when nothing is configured: the
// table's defaults.
func DefaultConfig() Config {
	var c Config
	if err := c.table().SetDefaults(); err != nil {
		panic(err) // a default in the table does not parse; TestDefaultConfigValidates fails
	}
	return c
}

// ParseConfig reads a YAML or TOML config file into c. Unknown keys are
// errors, so a typo does not silently fall back to a default.
func ParseConfig(r io.Reader, format string, c *Config) error { return c.table().ParseFile(r, format) }

// Options are the settings parsed and checked, in the types the program
// uses. Config.Options makes them; nothing parses a setting twice.
type Options struct {
	Listen          string
	MetricsListen   string // "": /metrics on Listen
	MaxConnections  int
	NodeLongPolls   int
	Store           store.Config // the database, with the tunnel networks
	TLSCert, TLSKey string       // both or neither
	PublicURL       string       // without a trailing slash; "" derives it from the listener
	SessionKeyFile  string
	SecretKeyFile   string
	// RequireOperator2FA sends operators without two-factor to enrolment.
	RequireOperator2FA bool
	SessionTTL         time.Duration
	SecureCookies      bool // set, or implied by TLS
	TrustedProxies     []*net.IPNet
	LogLevel           slog.Level
	AdminEmail         string
	AdminPassword      string
	TunnelMTU          int
	ClientDNS          []string
	KeyRate            float64
	Policies           []controlplane.PolicyVersion // nil: the built-in policy
	PolicyNotice       time.Duration
	SMTP               controlplane.SMTPConfig
	// EmailVerification is on unless turned off (it needs SMTP to matter).
	EmailVerification bool
	// OIDCProviders are the single sign-on providers, secrets read.
	OIDCProviders   []controlplane.OIDCProvider
	OperatorSSOOnly bool
	AlertSyncLag    time.Duration
	// AlertPrivateTargets admits loopback and private webhook targets.
	AlertPrivateTargets bool
	// Billing configures paid plans.
	Billing controlplane.BillingOptions
}

// Validate checks every setting and names the first bad one.
func (c *Config) Validate() error {
	_, err := c.Options()
	return err
}

// Options checks every setting, naming the first bad one, and returns
// them parsed.
func (c *Config) Options() (*Options, error) {
	o := &Options{
		Listen: c.Listen, SessionKeyFile: c.SessionKeyFile, SessionTTL: time.Duration(c.SessionTTL),
		SecureCookies: c.SecureCookies || c.TLSCert != "", AdminEmail: c.AdminEmail, AdminPassword: c.AdminPassword,
		TunnelMTU: c.TunnelMTU, ClientDNS: c.ClientDNS, KeyRate: c.KeyRate, PolicyNotice: time.Duration(c.PolicyNotice),
		SMTP:         controlplane.SMTPConfig{Addr: c.SMTPAddr, From: c.SMTPFrom, Username: c.SMTPUsername, Password: c.SMTPPassword},
		AlertSyncLag: time.Duration(c.AlertSyncLag), AlertPrivateTargets: c.AlertAllowPrivateTargets,
		EmailVerification: c.EmailVerification, OperatorSSOOnly: c.OperatorSSOOnly,
		SecretKeyFile: c.SecretKeyFile, RequireOperator2FA: c.RequireOperator2FA,
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return nil, fmt.Errorf("listen: %q is not host:port", c.Listen)
	}
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			return nil, fmt.Errorf("metrics_listen: %q is not host:port", c.MetricsListen)
		}
		o.MetricsListen = c.MetricsListen
	}
	if c.MaxConnections < 1 {
		return nil, fmt.Errorf("max_connections: %d is not a positive number", c.MaxConnections)
	}
	if c.NodeLongPolls < 1 || c.NodeLongPolls > 1000 {
		return nil, fmt.Errorf("node_long_polls: %d is outside 1..1000", c.NodeLongPolls)
	}
	o.MaxConnections, o.NodeLongPolls = c.MaxConnections, c.NodeLongPolls
	if !strings.HasPrefix(c.DB, "sqlite://") && !strings.HasPrefix(c.DB, "postgres://") && !strings.HasPrefix(c.DB, "postgresql://") {
		return nil, fmt.Errorf("db: must start with sqlite:// or postgres://")
	}
	var err error
	if o.Store, err = store.ParseDSN(c.DB); err != nil {
		return nil, fmt.Errorf("db: %w", err)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return nil, errors.New("tls_cert/tls_key: set both or neither")
	}
	for _, f := range []struct{ name, path string }{{"tls_cert", c.TLSCert}, {"tls_key", c.TLSKey}} {
		if f.path != "" {
			if _, err := os.Stat(f.path); err != nil {
				return nil, fmt.Errorf("%s: %w", f.name, err)
			}
		}
	}
	o.TLSCert, o.TLSKey = c.TLSCert, c.TLSKey
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("public_url: %q is not an http(s) URL", c.PublicURL)
		}
		o.PublicURL = strings.TrimSuffix(c.PublicURL, "/")
	}
	if c.SessionKeyFile == "" {
		return nil, errors.New("session_key_file: is required")
	}
	if o.SecretKeyFile == "" {
		o.SecretKeyFile = filepath.Join(filepath.Dir(c.SessionKeyFile), "secret.key")
	}
	if d := o.SessionTTL; d < time.Minute || d > 30*24*time.Hour {
		return nil, fmt.Errorf("session_ttl: %s is outside 1m..720h", d)
	}
	for _, p := range c.TrustedProxies {
		_, n, err := net.ParseCIDR(p)
		if err != nil {
			return nil, fmt.Errorf("trusted_proxies: %q is not a CIDR", p)
		}
		o.TrustedProxies = append(o.TrustedProxies, n)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
		if err := o.LogLevel.UnmarshalText([]byte(c.LogLevel)); err != nil {
			return nil, fmt.Errorf("log_level: %w", err)
		}
	default:
		return nil, fmt.Errorf("log_level: %q is not debug, info, warn or error", c.LogLevel)
	}
	if (c.AdminEmail == "") != (c.AdminPassword == "") {
		return nil, errors.New("admin_email/admin_password: set both or neither")
	}
	p4, err := netip.ParsePrefix(c.TunnelIPv4)
	if err != nil || !p4.Addr().Is4() || p4.Bits() > 30 {
		return nil, fmt.Errorf("tunnel_ipv4: %q is not an IPv4 network of /30 or wider", c.TunnelIPv4)
	}
	p6, err := netip.ParsePrefix(c.TunnelIPv6)
	if err != nil || !p6.Addr().Is6() || p6.Addr().Is4In6() || p6.Bits() > 120 {
		return nil, fmt.Errorf("tunnel_ipv6: %q is not an IPv6 network of /120 or wider", c.TunnelIPv6)
	}
	o.Store.TunnelIPv4, o.Store.TunnelIPv6 = p4, p6
	if c.TunnelMTU < 1280 || c.TunnelMTU > 9000 {
		return nil, fmt.Errorf("tunnel_mtu: %d is outside 1280..9000", c.TunnelMTU)
	}
	for _, d := range c.ClientDNS {
		if _, err := netip.ParseAddr(d); err != nil {
			return nil, fmt.Errorf("client_dns: %q is not an IP address", d)
		}
	}
	if c.PolicyFile != "" {
		f, err := os.Open(c.PolicyFile)
		if err != nil {
			return nil, fmt.Errorf("policy_file: %w", err)
		}
		o.Policies, err = controlplane.LoadPolicies(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("policy_file: %w", err)
		}
	}
	if d := o.PolicyNotice; d < 0 || d > 365*24*time.Hour {
		return nil, fmt.Errorf("policy_notice: %s is outside 0..8760h", d)
	}
	if c.SMTPAddr != "" {
		if _, _, err := net.SplitHostPort(c.SMTPAddr); err != nil {
			return nil, fmt.Errorf("smtp_addr: %q is not host:port", c.SMTPAddr)
		}
		if _, err := mail.ParseAddress(c.SMTPFrom); err != nil {
			return nil, fmt.Errorf("smtp_from: %q is not an email address (required with smtp_addr)", c.SMTPFrom)
		}
	}
	if (c.SMTPUsername == "") != (c.SMTPPassword == "") {
		return nil, errors.New("smtp_username/smtp_password: set both or neither")
	}
	if err := o.oidcProviders(c); err != nil {
		return nil, err
	}
	if d := o.AlertSyncLag; d < 5*time.Second || d > 24*time.Hour {
		return nil, fmt.Errorf("alert_sync_lag: %s is outside 5s..24h", d)
	}
	if err := o.billing(c); err != nil {
		return nil, err
	}
	return o, nil
}

// billing checks the billing settings.
func (o *Options) billing(c *Config) error {
	o.Billing = controlplane.BillingOptions{OperatorPlansOnly: !c.PlanSelfService,
		Grace: time.Duration(c.BillingGrace), FreePlan: c.BillingFreePlan}
	if d := o.Billing.Grace; d < time.Hour || d > 90*24*time.Hour {
		return fmt.Errorf("billing_grace: %s is outside 1h..2160h", d)
	}
	if c.BillingFreePlan == "" {
		return errors.New("billing_free_plan: is required")
	}
	switch c.Billing {
	case "none":
		if c.StripeSecretKey != "" || c.StripeWebhookSecret != "" || len(c.StripePrices) > 0 {
			return errors.New("billing: stripe_* settings are given but billing is none; set billing: stripe")
		}
		return nil
	case "stripe":
	default:
		return fmt.Errorf("billing: %q is not none or stripe", c.Billing)
	}
	if !c.PlanSelfService {
		return errors.New("plan_self_service: false is for billing none; with stripe owners buy plans through checkout")
	}
	switch {
	case !strings.HasPrefix(c.StripeSecretKey, "sk_") && !strings.HasPrefix(c.StripeSecretKey, "rk_"):
		return errors.New("stripe_secret_key: a Stripe secret key (sk_… or rk_…) is required with billing stripe")
	case !strings.HasPrefix(c.StripeWebhookSecret, "whsec_"):
		return errors.New("stripe_webhook_secret: the webhook signing secret (whsec_…) is required with billing stripe")
	case len(c.StripePrices) == 0:
		return errors.New("stripe_prices: name the Stripe price of at least one plan (pro=price_…)")
	}
	prices := map[string]string{}
	for _, p := range c.StripePrices {
		slug, price, ok := strings.Cut(p, "=")
		slug, price = strings.TrimSpace(slug), strings.TrimSpace(price)
		if !ok || slug == "" || !strings.HasPrefix(price, "price_") {
			return fmt.Errorf("stripe_prices: %q is not plan=price_…", p)
		}
		if _, dup := prices[slug]; dup {
			return fmt.Errorf("stripe_prices: plan %q is given twice", slug)
		}
		prices[slug] = price
	}
	if c.StripeAPIURL != "" {
		u, err := url.Parse(c.StripeAPIURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("stripe_api_url: %q is not an http(s) URL", c.StripeAPIURL)
		}
	}
	if o.PublicURL == "" {
		return errors.New("public_url: is required with billing stripe: Checkout returns the owner there and the webhook is registered under it")
	}
	o.Billing.Stripe = &billing.Config{SecretKey: c.StripeSecretKey, WebhookSecret: c.StripeWebhookSecret,
		Prices: prices, APIURL: c.StripeAPIURL}
	return nil
}

// baseURL is how the server is reached, for printed links.
func (o *Options) baseURL(addr string) string {
	if o.PublicURL != "" {
		return o.PublicURL
	}
	scheme := "http"
	if o.TLSCert != "" {
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

// oidcProviders checks oidc_providers and operator_sso_only and reads the
// client secrets.
func (o *Options) oidcProviders(c *Config) error {
	for i, p := range c.OIDCProviders {
		secret := p.ClientSecret
		switch {
		case p.ClientSecret != "" && p.ClientSecretFile != "":
			return fmt.Errorf("oidc_providers: provider %d (%s): set client_secret or client_secret_file, not both", i+1, p.Name)
		case p.ClientSecretFile != "":
			b, err := os.ReadFile(p.ClientSecretFile)
			if err != nil {
				return fmt.Errorf("oidc_providers: provider %d (%s): client_secret_file: %w", i+1, p.Name, err)
			}
			secret = strings.TrimSpace(string(b))
		}
		o.OIDCProviders = append(o.OIDCProviders, controlplane.OIDCProvider{Name: p.Name, Label: p.Label, Issuer: p.Issuer,
			ClientID: p.ClientID, ClientSecret: secret, Scopes: p.Scopes})
	}
	if err := controlplane.ValidateOIDCProviders(o.OIDCProviders); err != nil {
		return fmt.Errorf("oidc_providers: %w", err)
	}
	if len(o.OIDCProviders) > 0 && o.PublicURL == "" {
		return errors.New("oidc_providers: public_url is required: the providers' redirect URIs are made from it")
	}
	if c.OperatorSSOOnly && len(o.OIDCProviders) == 0 {
		return errors.New("operator_sso_only: no provider in oidc_providers, so operators could not sign in")
	}
	return nil
}

// loadSecretKeys reads the keys that seal stored secrets: one base64
// 32-byte key a line (blank lines and lines starting with # are skipped),
// the first sealing, all opening. A missing file is created (mode 0600)
// with one new key.
//
// To rotate, put a new key on the first line and keep the old ones below
// it; at its next start the server re-seals every secret under the new
// key, and the old lines can then go (after every replica restarted).
func loadSecretKeys(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key := make([]byte, 32)
		if _, err := io.ReadFull(randReader, key); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("secret_key_file: %w", err)
		}
		text := "# Keys that encrypt stored two-factor secrets; the first is in use. See README (secret_key_file).\n" +
			base64.StdEncoding.EncodeToString(key) + "\n"
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			return nil, fmt.Errorf("secret_key_file: %w", err)
		}
		return [][]byte{key}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("secret_key_file: %w", err)
	}
	var keys [][]byte
	for n, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, err := base64.StdEncoding.DecodeString(line)
		if err != nil || len(key) != 32 {
			return nil, fmt.Errorf("secret_key_file: line %d of %s is not 32 bytes in base64", n+1, path)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("secret_key_file: %s holds no key", path)
	}
	return keys, nil
}
