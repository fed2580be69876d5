package api

// Sign-in beyond email and password: email verification, password change
// and reset, and the TOTP second factor.

// Error codes of sign-in.
const (
	// CodeEmailUnverified (403): the owner must verify their email address
	// (the mailed link) before creating API keys or registering devices.
	CodeEmailUnverified = "email_unverified"
	// CodeMailUnavailable (409): the server sends no mail, so there is no
	// link to mail.
	CodeMailUnavailable = "mail_unavailable"
	// CodeSecondFactorRequired (401): the email and password are right and
	// the account has a second factor: send the same login with `code`.
	CodeSecondFactorRequired = "second_factor_required"
	// CodeSecondFactorInvalid (401): the code is wrong, was used already
	// (a code is accepted once) or is outside its window.
	CodeSecondFactorInvalid = "second_factor_invalid"
	// CodeSecondFactorEnrolment (403): the server requires operators to
	// use a second factor and this one has none yet: only the enrolment
	// routes (POST /api/v1/me/2fa, POST /api/v1/me/2fa/confirm) and
	// sign-out answer until it is confirmed.
	CodeSecondFactorEnrolment = "second_factor_enrolment_required"
)

// Login is the body of POST /api/v1/auth/login. Code is a TOTP code or a
// recovery code, for an account with a second factor.
type Login struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Code     string `json:"code,omitempty"`
}

// PasswordChange is the body of PUT /api/v1/me/password.
type PasswordChange struct {
	CurrentPassword string `json:"current_password"`
	NewPassword     string `json:"new_password"`
}

// PasswordResetRequest is the body of POST /api/v1/auth/password-reset.
type PasswordResetRequest struct {
	Email string `json:"email"`
}

// PasswordResetConfirm is the body of POST
// /api/v1/auth/password-reset/confirm: the token of the mailed link and
// the new password.
type PasswordResetConfirm struct {
	Token       string `json:"token"`
	NewPassword string `json:"new_password"`
}

// EmailVerification is the body of POST /api/v1/auth/verify-email: the
// token of the mailed link.
type EmailVerification struct {
	Token string `json:"token"`
}

// MailQueued answers a request that sends mail (202): the mail is sent in
// the background.
type MailQueued struct {
	Message string `json:"message"`
}

// TOTPEnrolment answers POST /api/v1/me/2fa: the new secret (base32) and
// the otpauth:// URL authenticator apps read, usually from a QR code.
type TOTPEnrolment struct {
	Secret     string `json:"secret"`
	OtpauthURL string `json:"otpauth_url"`
}

// TOTPCode is the body of POST /api/v1/me/2fa/confirm.
type TOTPCode struct {
	Code string `json:"code"`
}

// RecoveryCodes answers the confirmation of a second factor: ten
// single-use codes, shown only here.
type RecoveryCodes struct {
	RecoveryCodes []string `json:"recovery_codes"`
}

// TOTPDisable is the body of DELETE /api/v1/me/2fa: the password and a
// TOTP or recovery code.
type TOTPDisable struct {
	Password string `json:"password"`
	Code     string `json:"code"`
}
