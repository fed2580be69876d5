package controlplane

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/singleflight"

	"github.com/traceless-vpn/traceless/controlplane/alerts"
	"github.com/traceless-vpn/traceless/internal/logpolicy"
	"github.com/traceless-vpn/traceless/store"
)

// Options are the server's dependencies and settings.
type Options struct {
	Store  *store.Store
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// WebFS holds the dashboard's templates and static assets.
	WebFS fs.FS
	// SessionKey is the 32-byte Ed25519 seed that signs sign-in tokens. All
	// replicas behind one load balancer share it.
	SessionKey []byte
	// SessionTTL is how long a sign-in token lasts (default 12h).
	SessionTTL time.Duration
	// SecureCookies marks the session cookie Secure. Set it when clients
	// reach the server over HTTPS, directly or through a proxy.
	SecureCookies bool
	// TrustedProxies are the networks whose X-Forwarded-For is believed when
	// keying rate limits. Empty: the direct peer is used.
	TrustedProxies []*net.IPNet
	// Argon2 are the password hashing costs (DefaultArgon2 when zero).
	Argon2 Argon2Params
	// Version is reported by /healthz and the agents' API.
	Version string
	// ClientDNS are the resolvers written into client configs.
	ClientDNS []string
	// KeyRate is each API key's sustained provisioning rate in requests per
	// second (default 50, burst 4x); negative disables the limit.
	KeyRate float64
	// LongPoll is how long GET /agent/v1/peers waits for a change (25s).
	LongPoll time.Duration
	// NodeTokenTTL is the lifetime of a node token (10m).
	NodeTokenTTL time.Duration
	// EnrollmentTTL is how long an unused enrollment token works (24h).
	EnrollmentTTL time.Duration
	// TunnelMTU is the MTU nodes set on their WireGuard interface (1420).
	TunnelMTU int
	// RemovalRing bounds the removed device keys held in memory for node
	// deltas (default 100,000); older removals cost nodes a full snapshot.
	RemovalRing int
	// EnrollBurst is how many node enrollments one client address may make
	// at once before being held to one every 6 s (default 10; raise it to
	// enroll a fleet from behind one address; negative turns it off).
	EnrollBurst int
	// Policies are the privacy policy's versions (DefaultPolicies when
	// empty); PolicyNotice is how long before taking effect a new version
	// is announced to owners (30 days).
	Policies     []PolicyVersion
	PolicyNotice time.Duration
	// Alerts configures node health alerts: SMTP for email, check and
	// retry intervals (see AlertOptions).
	Alerts AlertOptions
	// Collectors are added to the metrics /metrics serves, such as the
	// binary's traceless_build_info.
	Collectors []prometheus.Collector
	// MetricsElsewhere leaves /metrics out of Handler; the caller serves
	// MetricsHandler on a listener of its own.
	MetricsElsewhere bool
	// NodeLongPolls caps the long polls one node may hold open at once
	// (default 4; negative: no cap). Beyond it, 429 rate_limited.
	NodeLongPolls int
	// PublicURL is how people reach the server (no trailing slash), for
	// the links in sign-in mail. Empty: the base URL Bootstrap is given.
	PublicURL string
	// SkipEmailVerification turns email verification off. It is on
	// whenever mail can be sent (Alerts.SMTP has an address): owners who
	// sign up then verify their address before creating API keys.
	SkipEmailVerification bool
	// OIDCProviders are the OpenID providers owners and operators may sign
	// in with (oidc.go); PublicURL is then required: it makes the
	// redirect URIs.
	OIDCProviders []OIDCProvider
	// OperatorSSOOnly refuses operators' password sign-ins: they sign in
	// through a provider.
	OperatorSSOOnly bool
	// SecretKeys are 32-byte AES-256-GCM keys that seal the secrets the
	// store keeps readable (TOTP secrets). The first seals, every one
	// opens; Bootstrap re-seals what an older key sealed. All replicas
	// share them. Empty: one random key (secrets do not survive a restart).
	SecretKeys [][]byte
	// RequireOperator2FA makes a second factor mandatory for operators:
	// until they enable one, they may only enrol (and sign out).
	RequireOperator2FA bool
	// Billing configures paid plans: no provider (operators assign plans)
	// or Stripe (billing.go).
	Billing BillingOptions
}

// DefaultClientDNS is Quad9's filtering-free, no-logging resolver, written
// into client configs unless the operator names their own (for example a
// resolver on the nodes' tunnel gateway).
var DefaultClientDNS = []string{"9.9.9.9", "2620:fe::fe"}

// Server is the control plane's HTTP API.
type Server struct {
	opts     Options
	store    *store.Store
	log      *slog.Logger
	now      func() time.Time
	echo     *echo.Echo
	hasher   *hasher
	sessions *sessions
	metrics  *metrics
	setup    *setupToken
	oidc     *oidcProviders
	dash     *dashboard

	loginIP, loginEmail, signupIP, keyLimit, enrollLimit *limiter
	// Sign-in mail and mailed links: reset requests per address and per
	// email, mails per owner, link attempts per address.
	mailIP, mailEmail, mailOwner, tokenIP *limiter
	mail                                  *signinMailer
	secrets                               *secretBox
	alertTests                            *limiter // test alerts per owner
	polls                                 *nodePolls
	listenWatch                           listenWatch

	hub     *hub
	unhook  func()             // removes committed from the store's commit hooks
	deltas  singleflight.Group // identical node delta queries in flight
	status  nodeStatuses
	alerts  *alerts.Alerter
	hashes  poolHashes
	regCap  *regCap // publishable-key registrations per app and hour
	billing *billingState
	stop    context.CancelFunc
	done    chan struct{}
}

// New builds a Server; it does not listen.
func New(opts Options) (*Server, error) {
	if opts.Store == nil {
		return nil, errors.New("controlplane: Options.Store is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	opts.Logger = logpolicy.Wrap(opts.Logger, logAllowlist...)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = 12 * time.Hour
	}
	if opts.Argon2 == (Argon2Params{}) {
		opts.Argon2 = DefaultArgon2
	}
	if len(opts.SessionKey) == 0 {
		opts.SessionKey = make([]byte, 32)
		rand.Read(opts.SessionKey)
	}
	if err := ValidateOIDCProviders(opts.OIDCProviders); err != nil {
		return nil, fmt.Errorf("controlplane: %w", err)
	}
	if len(opts.OIDCProviders) > 0 && opts.PublicURL == "" {
		return nil, errors.New("controlplane: Options.PublicURL is required with OIDC providers")
	}
	opts.PublicURL = strings.TrimSuffix(opts.PublicURL, "/")
	sess, err := newSessions(opts.SessionKey, opts.SessionTTL, opts.Now)
	if err != nil {
		return nil, err
	}
	if len(opts.SecretKeys) == 0 {
		k := make([]byte, 32)
		rand.Read(k)
		opts.SecretKeys = [][]byte{k}
	}
	secrets, err := newSecretBox(opts.SecretKeys)
	if err != nil {
		return nil, err
	}
	bill, err := newBillingState(opts.Billing)
	if err != nil {
		return nil, err
	}
	s := &Server{
		opts:       opts,
		store:      opts.Store,
		log:        opts.Logger,
		now:        opts.Now,
		hasher:     newHasher(opts.Argon2, runtime.GOMAXPROCS(0)),
		sessions:   sess,
		secrets:    secrets,
		loginIP:    newLimiter(6*time.Second, 10, time.Hour, opts.Now),
		loginEmail: newLimiter(12*time.Second, 5, time.Hour, opts.Now),
		signupIP:   newLimiter(30*time.Second, 5, time.Hour, opts.Now),
		mailIP:     newLimiter(30*time.Second, 5, time.Hour, opts.Now),
		mailEmail:  newLimiter(time.Minute, 3, time.Hour, opts.Now),
		mailOwner:  newLimiter(time.Minute, 3, time.Hour, opts.Now),
		tokenIP:    newLimiter(6*time.Second, 10, time.Hour, opts.Now),
		oidc:       newOIDCProviders(opts.OIDCProviders, opts.Now),
		billing:    bill,
	}
	if opts.LongPoll <= 0 {
		opts.LongPoll = 25 * time.Second
	}
	if opts.NodeTokenTTL <= 0 {
		opts.NodeTokenTTL = 10 * time.Minute
	}
	if opts.EnrollmentTTL <= 0 {
		opts.EnrollmentTTL = 24 * time.Hour
	}
	if opts.TunnelMTU <= 0 {
		opts.TunnelMTU = 1420
	}
	if opts.RemovalRing <= 0 {
		opts.RemovalRing = 100_000
	}
	if len(opts.Policies) == 0 {
		opts.Policies = DefaultPolicies
	}
	if err := validatePolicies(opts.Policies); err != nil {
		return nil, err
	}
	if opts.PolicyNotice <= 0 {
		opts.PolicyNotice = 30 * 24 * time.Hour
	}
	if opts.ClientDNS == nil {
		opts.ClientDNS = DefaultClientDNS
	}
	if opts.KeyRate == 0 {
		opts.KeyRate = 50
	}
	if opts.KeyRate > 0 {
		s.keyLimit = newLimiter(time.Duration(float64(time.Second)/opts.KeyRate), int(4*opts.KeyRate)+1, time.Hour, opts.Now)
	}
	s.opts = opts
	s.setup = &setupToken{}
	if opts.EnrollBurst == 0 {
		opts.EnrollBurst = 10
	}
	if opts.EnrollBurst > 0 {
		s.enrollLimit = newLimiter(6*time.Second, opts.EnrollBurst, time.Hour, opts.Now)
	}
	if opts.NodeLongPolls == 0 {
		opts.NodeLongPolls = 4
	}
	s.opts = opts
	s.polls = newNodePolls(opts.NodeLongPolls)
	s.listenWatch.log = opts.Logger
	rev, err := opts.Store.Revision(context.Background())
	if err != nil {
		return nil, fmt.Errorf("read sync revision: %w", err)
	}
	s.hub = newHub(rev, opts.RemovalRing, opts.Now, opts.Store.Revision)
	ctx, cancel := context.WithCancel(context.Background())
	s.stop, s.done = cancel, make(chan struct{})
	var bg sync.WaitGroup
	s.alerts = alerts.New(ctx, alerts.Deps{Store: opts.Store, Revision: s.hub.current, Status: s.nodeReport,
		OnlineWindow: onlineWindow, Now: s.now, Log: s.log, Version: opts.Version}, opts.Alerts)
	s.alertTests = newLimiter(10*time.Second, 5, time.Hour, s.now)
	s.regCap = newRegCap()
	s.mail = newSigninMailer(s, opts.Alerts.SMTP, strings.TrimSuffix(opts.PublicURL, "/"))
	bg.Add(5)
	go func() { defer bg.Done(); s.mail.run(ctx) }()
	go func() { defer bg.Done(); s.hub.run(ctx, 500*time.Millisecond) }()
	go func() { defer bg.Done(); s.listen(ctx) }()
	go func() { defer bg.Done(); s.alerts.Run(ctx) }()
	go func() { defer bg.Done(); s.sweepCredentials(ctx, credentialSweepEvery) }()
	if s.billing.stripe != nil {
		bg.Add(1)
		go func() { defer bg.Done(); s.sweepGrace(ctx, graceSweepEvery) }()
	}
	go func() { bg.Wait(); close(s.done) }()
	s.metrics = newMetrics(opts.Store)
	s.metrics.reg.MustRegister(&resourceCollector{s: s})
	for _, c := range opts.Collectors {
		if err := s.metrics.reg.Register(c); err != nil {
			cancel()
			<-s.done
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	s.echo = s.newEcho()
	s.unhook = opts.Store.OnCommit(s.committed)
	return s, nil
}

func (s *Server) newEcho() *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.Logger.SetOutput(io.Discard) // echo's logger is never used for requests
	e.HTTPErrorHandler = s.errorHandler
	e.IPExtractor = ipExtractor(s.opts.TrustedProxies)
	e.Use(s.requestLogger, s.recoverer, securityHeaders)
	s.routes(e)
	return e
}

// routes registers every route. TestRoutesDocumented and the authorization
// matrix read the registered routes back, so a new route without a test
// row fails.
func (s *Server) routes(e *echo.Echo) {
	s.dashboardRoutes(e)
	e.GET("/healthz", s.handleHealth)
	e.HEAD("/healthz", s.handleHealth)
	e.GET("/readyz", s.handleReady)
	e.HEAD("/readyz", s.handleReady)
	if !s.opts.MetricsElsewhere {
		e.GET("/metrics", s.handleMetrics)
	}
	e.GET("/setup", s.handleSetupPage)
	e.GET("/static/*", s.handleStatic)
	e.POST("/setup", s.handleSetupForm)

	v1 := e.Group("/api/v1")
	v1.GET("/privacy", s.handlePrivacy)
	v1.GET("/openapi.json", s.handleOpenAPI)
	v1.GET("/plans", s.handleListPlans)
	v1.GET("/policy", s.handlePolicy)
	v1.POST("/setup", s.handleSetup)

	v1.POST("/auth/signup", s.handleSignup)
	v1.POST("/auth/login", s.handleLogin)
	v1.POST("/auth/logout", s.handleLogout, s.requireOwner)
	v1.POST("/auth/password-reset", s.handlePasswordReset)
	v1.POST("/auth/password-reset/confirm", s.handlePasswordResetConfirm)
	v1.POST("/auth/verify-email", s.handleVerifyEmail)
	s.oidcRoutes(v1)

	me := v1.Group("/me", s.requireOwner)
	me.GET("", s.handleMe)
	me.DELETE("", s.handleDeleteMe)
	me.GET("/export", s.handleExportMe)
	me.PUT("/plan", s.handleChangePlan)
	me.PUT("/policy", s.handleAcceptPolicy)
	me.PUT("/password", s.handleChangePassword)
	me.POST("/verify-email", s.handleResendVerification)
	me.POST("/2fa", s.handleStartTOTP)
	me.POST("/2fa/confirm", s.handleConfirmTOTP)
	me.DELETE("/2fa", s.handleDisableTOTP)

	apps := v1.Group("/apps", s.requireOwner)
	apps.POST("", s.handleCreateApp)
	apps.GET("", s.handleListApps)
	apps.GET("/:app_id", s.handleGetApp)
	apps.PUT("/:app_id", s.handleUpdateApp)
	apps.DELETE("/:app_id", s.handleDeleteApp)
	apps.POST("/:app_id/keys", s.handleCreateKey, s.requireVerifiedOwner)
	apps.GET("/:app_id/keys", s.handleListKeys)
	apps.DELETE("/:app_id/keys/:key_id", s.handleDeleteKey)
	apps.POST("/:app_id/keys/:key_id/replace", s.handleReplaceKey, s.requireVerifiedOwner)

	pools := v1.Group("/pools", s.requireOwner)
	pools.GET("", s.handleListOwnPools)
	pools.POST("", s.handleCreateOwnPool)
	pools.DELETE("/:pool_id", s.handleDeleteOwnPool)
	pools.POST("/:pool_id/enrollment-tokens", s.handleOwnEnrollmentToken)
	nodes := v1.Group("/nodes", s.requireOwner)
	nodes.GET("", s.handleListOwnNodes)
	nodes.DELETE("/:node_id", s.handleDeleteOwnNode)

	// Provisioning: each route names the credentials it admits
	// (credentials.go).
	v1.GET("/servers", s.handleListServers, s.requireApp(permServers))
	v1.GET("/app", s.handleAppPolicy, s.requireApp(permAppRead))
	v1.POST("/registration-tickets", s.handleCreateTicket, s.requireApp(permSecret))
	v1.POST("/devices", s.handleRegisterDevice, s.requireApp(permRegister), s.requireVerifiedKeyOwner)
	v1.GET("/devices", s.handleListDevices, s.requireApp(permSecret))
	v1.GET("/devices/:device_id", s.handleGetDevice, s.requireApp(permOwnDevice))
	v1.DELETE("/devices/:device_id", s.handleDeleteDevice, s.requireApp(permOwnDevice))
	v1.POST("/devices/:device_id/rotate", s.handleRotateDevice, s.requireApp(permOwnDevice))
	v1.GET("/devices/:device_id/config", s.handleDeviceConfig, s.requireApp(permOwnDevice))
	v1.POST("/devices/:device_id/token", s.handleResetDeviceToken, s.requireApp(permSecret))

	agent := e.Group("/agent/v1")
	agent.POST("/enroll", s.handleEnroll)
	agent.POST("/token", s.handleNodeToken)
	agent.GET("/peers", s.handlePeers, s.requireNode, s.limitNodePolls)
	agent.POST("/status", s.handleNodeStatus, s.requireNode)

	alerts := v1.Group("/alerts", s.requireOwner)
	alerts.GET("/settings", s.handleGetAlertSettings)
	alerts.PUT("/settings", s.handlePutAlertSettings)
	alerts.POST("/test", s.handleAlertTest)
	alerts.GET("/history", s.handleListAlertHistory)
	alerts.DELETE("/history", s.handleDeleteAlertHistory)

	admin := v1.Group("/admin", s.requireOwner, s.requireAdmin)
	admin.GET("/plans", s.handleAdminListPlans)
	admin.POST("/plans", s.handleAdminCreatePlan)
	admin.PUT("/plans/:plan_id", s.handleAdminUpdatePlan)
	admin.DELETE("/plans/:plan_id", s.handleAdminDeletePlan)
	admin.GET("/pools", s.handleAdminListPools)
	admin.POST("/pools", s.handleAdminCreatePool)
	admin.DELETE("/pools/:pool_id", s.handleAdminDeletePool)
	admin.POST("/pools/:pool_id/enrollment-tokens", s.handleAdminEnrollmentToken)
	admin.GET("/nodes", s.handleAdminListNodes)
	admin.PUT("/nodes/:node_id", s.handleAdminUpdateNode)
	admin.DELETE("/nodes/:node_id", s.handleAdminDeleteNode)
	admin.GET("/owners", s.handleAdminListOwners)
	admin.PUT("/owners/:owner_id", s.handleAdminUpdateOwner)
	admin.DELETE("/owners/:owner_id", s.handleAdminDeleteOwner)
	s.billingRoutes(v1, me, admin)
}

// Close stops the server's background work. It does not close the store.
func (s *Server) Close() error {
	s.unhook()
	s.stop()
	<-s.done
	return nil
}

// Handler is the server's http.Handler.
func (s *Server) Handler() http.Handler { return s.echo }

// MetricsHandler serves the Prometheus metrics that /metrics serves, for a
// listener of their own (Options.MetricsElsewhere).
func (s *Server) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	return mux
}

// Routes lists "METHOD path" for every registered route.
func (s *Server) Routes() []string {
	var out []string
	for _, r := range s.echo.Routes() {
		out = append(out, r.Method+" "+r.Path)
	}
	return out
}

// Bootstrap prepares an empty database on first start: it seeds the plan
// catalogue and, when no operator exists, creates one from adminEmail and
// adminPassword or arms a one-time setup token. It returns what to tell
// the person starting the server, or "" when nothing needs telling.
func (s *Server) Bootstrap(ctx context.Context, adminEmail, adminPassword, baseURL string) (string, error) {
	s.mail.setBase(strings.TrimSuffix(baseURL, "/"))
	if _, err := s.RewrapSecrets(ctx); err != nil {
		return "", fmt.Errorf("re-seal secrets under the current secret key: %w", err)
	}
	if _, err := s.store.SeedPlans(ctx, store.DefaultPlans()); err != nil {
		return "", fmt.Errorf("seed plans: %w", err)
	}
	if err := s.checkBilling(ctx); err != nil {
		return "", err
	}
	n, err := s.store.CountAdmins(ctx)
	if err != nil {
		return "", err
	}
	if n > 0 {
		return "", nil
	}
	if adminEmail != "" || adminPassword != "" {
		o, err := s.createAccount(ctx, adminEmail, adminPassword, store.RoleAdmin)
		if errors.Is(err, errOperatorExists) {
			return "", nil // another replica, starting at the same time, created it
		}
		if err != nil {
			return "", fmt.Errorf("create operator account: %w", err)
		}
		return fmt.Sprintf("Created the operator account %s. Sign in at %s/api/v1/auth/login (or `traceless login --server %s`).", o.Email, baseURL, baseURL), nil
	}
	tok := s.armSetup()
	return fmt.Sprintf("No operator account exists yet. Open this one-time link to create it:\n\n    %s/setup?token=%s\n\nThe link works once and is held only in memory; it is not printed again once an operator exists.", baseURL, tok), nil
}
