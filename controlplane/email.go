package controlplane

// Email verification, password reset and password change.
//
// Verification is required whenever the server can send mail (SMTP is
// configured) unless the operator turns it off: an unverified owner can
// sign in and look around, but creating API keys and registering devices
// answer 403 email_unverified until the mailed link is used.
//
// Mailed links carry a single-use token of 256 random bits; only its
// SHA-256 is stored, with an expiry, and the row is deleted when used,
// replaced or expired. A reset request answers the same 202 at once for
// every address: the lookup, the token and the mail happen later on the
// mail queue, so neither the answer nor its timing says whether an account
// exists. A reset or a password change increments the owner's token epoch,
// which ends every session (the changer's own gets a fresh token).

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/internal/mail"
	"github.com/traceless-vpn/traceless/store"
)

// Lifetimes of mailed links.
const (
	resetTTL  = 30 * time.Minute
	verifyTTL = 48 * time.Hour
)

// Pages mailed links open (dashboard routes).
const (
	verifyEmailPath   = "/verify-email"
	resetPasswordPath = "/reset-password"
)

// verificationRequired reports whether new owners must verify their email
// before creating keys: whenever mail can be sent, unless the operator
// turned verification off.
func (s *Server) verificationRequired() bool {
	return s.mail.enabled() && !s.opts.SkipEmailVerification
}

// unverified reports whether o is held back until it verifies its email.
func (s *Server) unverified(o store.Owner) bool {
	return !o.EmailVerified && s.verificationRequired()
}

// errEmailUnverified refuses what an unverified owner may not do yet.
var errEmailUnverified = apiError(http.StatusForbidden, api.CodeEmailUnverified,
	"verify your email address first: open the link mailed to you (or ask for a new one)")

// requireVerifiedOwner refuses an owner who must verify their email first;
// it runs after requireOwner or the dashboard's requireSession.
func (s *Server) requireVerifiedOwner(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.unverified(currentOwner(c)) {
			return errEmailUnverified
		}
		return next(c)
	}
}

// requireVerifiedKeyOwner refuses device registration by an app whose
// owner must verify their email first; it runs after requireApp. It
// reads the owner only while verification is required.
func (s *Server) requireVerifiedKeyOwner(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.verificationRequired() {
			o, err := s.store.GetOwner(c.Request().Context(), currentApp(c).ownerID)
			if err != nil {
				return err
			}
			if s.unverified(o) {
				return errEmailUnverified
			}
		}
		return next(c)
	}
}

// mailKind is what a queued sign-in mail is about.
type mailKind int

const (
	mailVerify mailKind = iota + 1 // an email verification link for ownerID
	mailReset                      // a password reset link for whoever has email
)

// mailJob is one queued sign-in mail. A reset job holds the address as
// typed (normalised), not an account: the queue looks the account up.
type mailJob struct {
	kind    mailKind
	ownerID string
	email   string
}

// signinMailer sends sign-in mail from a bounded in-memory queue, in the
// background. Nothing about a job outlives its delivery.
type signinMailer struct {
	s    *Server
	cfg  mail.Config
	jobs chan mailJob

	baseMu sync.RWMutex
	base   string // links point here: Options.PublicURL, or what Bootstrap was told

	// picked, when set, is called as each job is taken from the queue
	// (tests hold the queue with it).
	picked atomic.Pointer[func()]
}

func newSigninMailer(s *Server, cfg mail.Config, base string) *signinMailer {
	return &signinMailer{s: s, cfg: cfg, jobs: make(chan mailJob, 256), base: base}
}

func (m *signinMailer) enabled() bool { return m.cfg.Enabled() }

func (m *signinMailer) setBase(base string) {
	m.baseMu.Lock()
	defer m.baseMu.Unlock()
	if m.base == "" {
		m.base = base
	}
}

func (m *signinMailer) link(path, token string) string {
	m.baseMu.RLock()
	defer m.baseMu.RUnlock()
	return m.base + path + "?" + url.Values{"token": {token}}.Encode()
}

// enqueue queues a job; false when the queue is full.
func (m *signinMailer) enqueue(j mailJob) bool {
	select {
	case m.jobs <- j:
		return true
	default:
		return false
	}
}

// run sends queued mail until ctx ends, and purges expired links hourly.
//
// Jobs wait for the next round, every 0.5-1.5 s (at random), rather than
// running as they arrive: the account lookup, the token write and the
// delivery of a reset for an existing account then never overlap the
// answer to the request that queued it, so even the load they cause does
// not tell an address that has an account from one that has none.
func (m *signinMailer) run(ctx context.Context) {
	purge := time.NewTicker(time.Hour)
	defer purge.Stop()
	round := time.NewTimer(mailRoundDelay())
	defer round.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-purge.C:
			if _, err := m.s.store.PurgeExpiredOwnerTokens(ctx, m.s.now()); err != nil && ctx.Err() == nil {
				m.s.log.LogAttrs(ctx, slog.LevelWarn, "purge expired sign-in links", slog.String(logError, err.Error()))
			}
		case <-round.C:
			m.drain(ctx)
			round.Reset(mailRoundDelay())
		}
	}
}

// mailRoundDelay is the time to the next round of the queue: 0.5-1.5 s.
func mailRoundDelay() time.Duration {
	var b [2]byte
	rand.Read(b[:])
	return 500*time.Millisecond + time.Duration(binary.BigEndian.Uint16(b[:]))*time.Second/65536
}

// drain handles the jobs queued so far.
func (m *signinMailer) drain(ctx context.Context) {
	for {
		select {
		case j := <-m.jobs:
			if f := m.picked.Load(); f != nil {
				(*f)()
			}
			if err := m.handle(ctx, j); err != nil && ctx.Err() == nil {
				// The error names a stage and an SMTP code, never an
				// address or a token.
				m.s.log.LogAttrs(ctx, slog.LevelWarn, "sign-in mail not sent", slog.String(logError, err.Error()))
			}
		default:
			return
		}
	}
}

// handle makes the token and the mail of j and sends it, retrying a
// temporary failure twice.
func (m *signinMailer) handle(ctx context.Context, j mailJob) error {
	var o store.Owner
	var err error
	switch j.kind {
	case mailReset:
		o, err = m.s.store.GetOwnerByEmail(ctx, j.email)
		if errors.Is(err, store.ErrNotFound) {
			return nil // no account: nothing is sent, and the caller was told the same
		}
	case mailVerify:
		o, err = m.s.store.GetOwner(ctx, j.ownerID)
		if errors.Is(err, store.ErrNotFound) {
			return nil // deleted meanwhile
		}
		if err == nil && o.EmailVerified {
			return nil
		}
	}
	if err != nil {
		return err
	}
	msg, err := m.compose(ctx, j.kind, o)
	if err != nil {
		return err
	}
	for try := 0; ; try++ {
		err = mail.Send(ctx, m.cfg, msg)
		var me *mail.Error
		if err == nil || try == 2 || !errors.As(err, &me) || !me.Temporary {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(try+1) * 2 * time.Second):
		}
	}
}

// compose stores a new single-use token for o and writes the mail with
// its link.
func (m *signinMailer) compose(ctx context.Context, kind mailKind, o store.Owner) (mail.Message, error) {
	token := randomSecret("")
	now := m.s.now()
	msg := mail.Message{To: o.Email, Date: now}
	switch kind {
	case mailVerify:
		if err := m.s.store.CreateOwnerToken(ctx, o.ID, store.TokenVerifyEmail, hashAPIKey(token), now.Add(verifyTTL), now); err != nil {
			return mail.Message{}, err
		}
		msg.Subject = "Confirm your email address for Traceless"
		msg.Text = "Someone, hopefully you, created a Traceless account with this address.\n\n" +
			"To confirm that the address is yours, open this link within 48 hours:\n\n" +
			m.link(verifyEmailPath, token) + "\n\n" +
			"Until then the account cannot create API keys. If you did not sign up, ignore this mail.\n"
	case mailReset:
		if err := m.s.store.CreateOwnerToken(ctx, o.ID, store.TokenResetPassword, hashAPIKey(token), now.Add(resetTTL), now); err != nil {
			return mail.Message{}, err
		}
		msg.Subject = "Reset your Traceless password"
		msg.Text = "Someone asked to reset the password of the Traceless account with this address.\n\n" +
			"To choose a new password, open this link within 30 minutes. It works once:\n\n" +
			m.link(resetPasswordPath, token) + "\n\n" +
			"Resetting the password signs every session of the account out. " +
			"If you did not ask for this, ignore this mail; your password stays as it is.\n"
	}
	return msg, nil
}

// errMailUnavailable answers mail-dependent requests on a server that
// sends no mail.
var errMailUnavailable = apiError(http.StatusConflict, api.CodeMailUnavailable,
	"this server sends no mail; ask the operator")

// errMailBusy answers when the mail queue is full; it says nothing about
// any account.
var errMailBusy = apiError(http.StatusTooManyRequests, api.CodeRateLimited, "too many mails are waiting; try again in a minute")

// queueVerification mails o a new verification link, in the background.
func (s *Server) queueVerification(o store.Owner) error {
	if !s.unverified(o) {
		return nil
	}
	if !s.mail.enqueue(mailJob{kind: mailVerify, ownerID: o.ID}) {
		return errMailBusy
	}
	return nil
}

// handleResendVerification mails the signed-in owner a new verification
// link; the previous one stops working.
func (s *Server) handleResendVerification(c echo.Context) error {
	o := currentOwner(c)
	if !s.mail.enabled() {
		return errMailUnavailable
	}
	if o.EmailVerified {
		return apiError(http.StatusConflict, api.CodeConflict, "the email address is already verified")
	}
	if err := checkRate(c, s.mailOwner, "owner:"+o.ID); err != nil {
		return err
	}
	if !s.mail.enqueue(mailJob{kind: mailVerify, ownerID: o.ID}) {
		return errMailBusy
	}
	return c.JSON(http.StatusAccepted, api.MailQueued{Message: "A new link is on its way to " + o.Email + "."})
}

// errBadLink answers a mailed token that is unknown, used or expired.
var errBadLink = badRequest("token", "this link is invalid, was used already or has expired; ask for a new one")

// verifyEmail spends a verification token.
func (s *Server) verifyEmail(c echo.Context, token string) (store.Owner, error) {
	if err := checkRate(c, s.tokenIP, clientKey(c)); err != nil {
		return store.Owner{}, err
	}
	if token == "" || len(token) > 128 {
		return store.Owner{}, errBadLink
	}
	o, err := s.store.VerifyEmail(c.Request().Context(), hashAPIKey(token), s.now())
	if errors.Is(err, store.ErrNotFound) {
		return store.Owner{}, errBadLink
	}
	return o, err
}

func (s *Server) handleVerifyEmail(c echo.Context) error {
	var in api.EmailVerification
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if _, err := s.verifyEmail(c, in.Token); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// resetAccepted is the one answer to every reset request.
var resetAccepted = api.MailQueued{Message: "If an account uses this address, a link to reset its password is on its way. " +
	"It works once, within 30 minutes."}

// requestReset queues a reset mail for the address. Known and unknown
// addresses take the same path until the queue.
func (s *Server) requestReset(c echo.Context, rawEmail string) error {
	email, err := normalizeEmail(rawEmail)
	if err != nil {
		return err
	}
	if !s.mail.enabled() {
		return errMailUnavailable
	}
	if err := checkRate(c, s.mailIP, clientKey(c)); err != nil {
		return err
	}
	if err := checkRate(c, s.mailEmail, "email:"+email); err != nil {
		return err
	}
	if !s.mail.enqueue(mailJob{kind: mailReset, email: email}) {
		return errMailBusy
	}
	return nil
}

func (s *Server) handlePasswordReset(c echo.Context) error {
	var in api.PasswordResetRequest
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if err := s.requestReset(c, in.Email); err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, resetAccepted)
}

// confirmReset spends a reset token and sets the new password; every
// session of the owner ends.
func (s *Server) confirmReset(c echo.Context, token, password string) (store.Owner, error) {
	if err := checkRate(c, s.tokenIP, clientKey(c)); err != nil {
		return store.Owner{}, err
	}
	if token == "" || len(token) > 128 {
		return store.Owner{}, errBadLink
	}
	ctx := c.Request().Context()
	// The password is checked against the account's email before the
	// token is spent, so a weak password leaves the link usable.
	o, err := s.store.OwnerByToken(ctx, store.TokenResetPassword, hashAPIKey(token), s.now())
	if errors.Is(err, store.ErrNotFound) {
		// An expired link may be the one tried: it goes now, not at the
		// next hourly purge.
		if _, err := s.store.PurgeExpiredOwnerTokens(ctx, s.now()); err != nil {
			return store.Owner{}, err
		}
		return store.Owner{}, errBadLink
	}
	if err != nil {
		return store.Owner{}, err
	}
	if err := checkPassword(password, o.Email); err != nil {
		err.(*api.Error).Field = "new_password"
		return store.Owner{}, err
	}
	hash, err := s.hasher.hash(ctx, password)
	if err != nil {
		return store.Owner{}, err
	}
	o, err = s.store.ResetPassword(ctx, hashAPIKey(token), hash, s.now())
	if errors.Is(err, store.ErrNotFound) {
		return store.Owner{}, errBadLink
	}
	return o, err
}

func (s *Server) handlePasswordResetConfirm(c echo.Context) error {
	var in api.PasswordResetConfirm
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if _, err := s.confirmReset(c, in.Token, in.NewPassword); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// errWrongPassword refuses a password change with a wrong current password.
var errWrongPassword = &api.Error{Status: http.StatusForbidden, Code: api.CodeForbidden, Message: "the current password is wrong", Field: "current_password"}

// changePassword checks the current password (under the login limits of
// the owner's email) and sets the new one; every session of the owner
// ends, and the updated owner is returned so the caller can sign in again.
func (s *Server) changePassword(c echo.Context, o store.Owner, current, next string) (store.Owner, error) {
	if err := checkRate(c, s.loginIP, clientKey(c)); err != nil {
		return store.Owner{}, err
	}
	if err := checkRate(c, s.loginEmail, "email:"+o.Email); err != nil {
		return store.Owner{}, err
	}
	ctx := c.Request().Context()
	if len(current) > maxPasswordBytes {
		return store.Owner{}, errWrongPassword
	}
	ok, err := s.hasher.verify(ctx, current, o.PasswordHash)
	if err != nil {
		return store.Owner{}, err
	}
	if !ok {
		return store.Owner{}, errWrongPassword
	}
	if err := checkPassword(next, o.Email); err != nil {
		err.(*api.Error).Field = "new_password"
		return store.Owner{}, err
	}
	if current == next {
		return store.Owner{}, badRequest("new_password", "must differ from the current password")
	}
	hash, err := s.hasher.hash(ctx, next)
	if err != nil {
		return store.Owner{}, err
	}
	return s.store.SetPassword(ctx, o.ID, hash)
}

// handleChangePassword answers with a new sign-in token for the caller;
// every other session has ended.
func (s *Server) handleChangePassword(c echo.Context) error {
	var in api.PasswordChange
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	o, err := s.changePassword(c, currentOwner(c), in.CurrentPassword, in.NewPassword)
	if err != nil {
		return err
	}
	return s.signIn(c, o, http.StatusOK)
}
