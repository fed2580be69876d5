package api

// Single sign-on with OpenID Connect: GET /api/v1/auth/oidc/{provider}/start
// sends the browser to the provider, which sends it back to
// /api/v1/auth/oidc/{provider}/callback. A sign-in linked to an account
// signs in; one that is not waits (in a sealed cookie, for 10 minutes) for
// POST /api/v1/auth/oidc/signup or /link.

// Error codes of single sign-on.
const (
	// CodeSSORequired (403): this server lets operators sign in only
	// through single sign-on, not with a password.
	CodeSSORequired = "sso_required"
	// CodeProviderUnavailable (502): the OpenID provider could not be
	// reached or answered wrongly; trying again later may work.
	CodeProviderUnavailable = "provider_unavailable"
)

// SSOStart answers GET /api/v1/auth/oidc/{provider}/start for a client
// that asks for JSON: where to send the browser, which must then bring the
// flow cookie this answer set back to the callback.
type SSOStart struct {
	AuthorizationURL string `json:"authorization_url"`
}

// SSOPending answers a callback whose sign-in is linked to no account
// (202): the browser holds it, sealed, until a signup or a link.
type SSOPending struct {
	// Provider is the configured provider's name.
	Provider string `json:"provider"`
	// Email is the address the provider gave, if any; it is offered for a
	// new account and is not stored unless the owner signs up with it.
	Email string `json:"email"`
	// AccountExists reports an account with that email: it can be linked
	// only with its password.
	AccountExists bool `json:"account_exists"`
}

// SSOSignup creates an account for the waiting sign-in. Email defaults to
// the provider's.
type SSOSignup struct {
	Email string `json:"email,omitempty"`
}

// Identity is a provider sign-in linked to the account: which provider,
// and nothing of what it knows about the person but the subject's
// existence.
type Identity struct {
	ID string `json:"id"`
	// Provider is the configured provider's name, "" when the operator
	// has removed that provider since.
	Provider string `json:"provider"`
	Label    string `json:"label"`
	Issuer   string `json:"issuer"`
}

// IdentityList answers GET /api/v1/me/identities.
type IdentityList struct {
	Identities []Identity `json:"identities"`
	// Providers are the providers this server offers (name and label).
	Providers []SSOProvider `json:"providers"`
}

// SSOProvider is a configured OpenID provider as owners see it.
type SSOProvider struct {
	Name  string `json:"name"`
	Label string `json:"label"`
}

// IdentityUnlink is the optional body of DELETE
// /api/v1/me/identities/{identity_id}: the account's password, required
// to unlink its last identity (so that the account keeps a way in).
type IdentityUnlink struct {
	Password string `json:"password"`
}
