package client

import (
	"context"
	"net/http"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// ChangePassword replaces the signed-in owner's password. Every other
// session of the owner ends; the client keeps the new token the answer
// carries. It fails with api.CodeForbidden when current is wrong and
// api.CodeInvalidRequest when next fails the password policy.
func (c *Client) ChangePassword(ctx context.Context, current, next string) (api.AuthResponse, error) {
	var out api.AuthResponse
	err := c.doJSON(ctx, &request{method: http.MethodPut, path: "/api/v1/me/password", auth: authOwner, noRetry: true,
		body: api.PasswordChange{CurrentPassword: current, NewPassword: next}}, &out)
	if err != nil {
		return api.AuthResponse{}, err
	}
	c.SetToken(out.Token)
	return out, nil
}

// RequestPasswordReset asks the server to mail a reset link to email. The
// answer is the same whether or not an account uses the address. It fails
// with api.CodeMailUnavailable on a server that sends no mail.
func (c *Client) RequestPasswordReset(ctx context.Context, email string) (api.MailQueued, error) {
	var out api.MailQueued
	err := c.doJSON(ctx, &request{method: http.MethodPost, path: "/api/v1/auth/password-reset",
		body: api.PasswordResetRequest{Email: email}}, &out)
	return out, err
}

// ConfirmPasswordReset sets a new password with the token of a mailed
// reset link. Every session of the account ends; sign in again. It fails
// with api.CodeInvalidRequest (field "token") for an unknown, used or
// expired link.
func (c *Client) ConfirmPasswordReset(ctx context.Context, token, newPassword string) error {
	return c.doJSON(ctx, &request{method: http.MethodPost, path: "/api/v1/auth/password-reset/confirm",
		body: api.PasswordResetConfirm{Token: token, NewPassword: newPassword}}, nil)
}

// VerifyEmail confirms an owner's email address with the token of the
// mailed link.
func (c *Client) VerifyEmail(ctx context.Context, token string) error {
	return c.doJSON(ctx, &request{method: http.MethodPost, path: "/api/v1/auth/verify-email",
		body: api.EmailVerification{Token: token}}, nil)
}

// ResendVerification mails the signed-in owner a new verification link.
// It fails with api.CodeConflict when the address is verified.
func (c *Client) ResendVerification(ctx context.Context) (api.MailQueued, error) {
	var out api.MailQueued
	err := c.doJSON(ctx, &request{method: http.MethodPost, path: "/api/v1/me/verify-email", auth: authOwner}, &out)
	return out, err
}

// LoginWithCode signs in an owner whose account has two-factor
// authentication: code is a TOTP code or a recovery code. Login without a
// code fails with api.CodeSecondFactorRequired for such an account; a
// wrong, expired or replayed code fails with api.CodeSecondFactorInvalid.
func (c *Client) LoginWithCode(ctx context.Context, email, password, code string) (api.AuthResponse, error) {
	var out api.AuthResponse
	err := c.doJSON(ctx, &request{method: http.MethodPost, path: "/api/v1/auth/login",
		body: api.Login{Email: email, Password: password, Code: code}}, &out)
	if err != nil {
		return api.AuthResponse{}, err
	}
	c.SetToken(out.Token)
	return out, nil
}

// StartTwoFactor begins TOTP enrolment: it returns a new secret and its
// otpauth:// URL for an authenticator app. Nothing changes at sign-in
// until ConfirmTwoFactor.
func (c *Client) StartTwoFactor(ctx context.Context) (api.TOTPEnrolment, error) {
	var out api.TOTPEnrolment
	err := c.doJSON(ctx, &request{method: http.MethodPost, path: "/api/v1/me/2fa", auth: authOwner}, &out)
	return out, err
}

// ConfirmTwoFactor turns two-factor on with a code of the new secret and
// returns the ten single-use recovery codes, which are not shown again.
func (c *Client) ConfirmTwoFactor(ctx context.Context, code string) ([]string, error) {
	var out api.RecoveryCodes
	err := c.doJSON(ctx, &request{method: http.MethodPost, path: "/api/v1/me/2fa/confirm", auth: authOwner,
		body: api.TOTPCode{Code: code}}, &out)
	return out.RecoveryCodes, err
}

// DisableTwoFactor turns two-factor off with the password and a TOTP or
// recovery code.
func (c *Client) DisableTwoFactor(ctx context.Context, password, code string) error {
	return c.doJSON(ctx, &request{method: http.MethodDelete, path: "/api/v1/me/2fa", auth: authOwner, noRetry: true,
		body: api.TOTPDisable{Password: password, Code: code}}, nil)
}
