package controlplane

import (
	"net/http"
	"reflect"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// ssoDoc explains single sign-on once, for its operations.
const ssoDoc = "Single sign-on with OpenID Connect (authorization code flow with PKCE S256, state and nonce) through the " +
	"providers the operator configured (`oidc_providers`). Nothing about a sign-in is kept on the server: the state, nonce " +
	"and PKCE verifier travel in the sealed, HttpOnly cookie `" + oidcFlowCookie + "` (10 minutes, this browser only), and a " +
	"sign-in linked to no account waits in the sealed cookie `" + oidcPendingCookie + "` (10 minutes). Of the provider's " +
	"answer only its issuer and the subject are stored, when an account is linked. An email the provider gives, verified or " +
	"not, never links or signs in to an existing account: that takes the account's password (`POST /api/v1/auth/oidc/link`)."

func init() {
	requestRequired[reflect.TypeFor[api.SSOSignup]()] = nil
	requestRequired[reflect.TypeFor[api.IdentityUnlink]()] = nil
	errorResponseTable[http.StatusBadGateway] = errorResponse{"ProviderUnavailable",
		"provider_unavailable: the OpenID provider cannot be reached or answered wrongly; try again later.",
		api.Error{Code: api.CodeProviderUnavailable, Message: "the sign-in provider cannot be reached; try again later"}}
	pathParamDesc["provider"] = "A configured sign-in provider's name (lower-case letters, digits and dashes)."
	pathParamDesc["identity_id"] = "The linked identity's ID."
	fieldRules[reflect.TypeFor[api.SSOPending]()] = map[string][]fieldRule{
		"email":          {describe("The provider's email for the person, if it gave a valid one; empty otherwise.")},
		"account_exists": {describe("An account with that email exists: only `POST /api/v1/auth/oidc/link` with its password can follow.")},
	}
	fieldRules[reflect.TypeFor[api.Identity]()] = map[string][]fieldRule{
		"provider": {describe("The configured provider's name; empty when the operator removed that provider since.")},
		"label":    {describe("The provider's display label (its issuer when no longer configured).")},
		"issuer":   {describe("The provider's issuer. With the subject, which is not shown here but is in the export, it is all that is stored.")},
	}
	fieldRules[reflect.TypeFor[api.PrivacyManifest]()] = map[string][]fieldRule{
		"third_parties": {describe("Outside services this installation is configured to share owner data with, and exactly what each receives: the payment provider (Stripe, with billing stripe), the mail relay (with smtp_addr) and the single sign-on providers, each seeing the sign-ins made through it.")},
	}
	fieldRules[reflect.TypeFor[api.SSOSignup]()] = map[string][]fieldRule{
		"email": {describe("The new account's email; the provider's when absent.")},
	}
}

func ssoOperations() []operation {
	next := openapi3.NewQueryParameter("next").
		WithDescription("A path of this site to continue to after signing in in a browser (ignored unless local).").
		WithSchema(openapi3.NewStringSchema().WithMaxLength(512))
	cbParams := []*openapi3.Parameter{
		openapi3.NewQueryParameter("state").WithDescription("Must equal the state in this browser's flow cookie.").WithSchema(openapi3.NewStringSchema()),
		openapi3.NewQueryParameter("code").WithDescription("The provider's authorization code, exchanged with the PKCE verifier.").WithSchema(openapi3.NewStringSchema()),
		openapi3.NewQueryParameter("error").WithDescription("Set by the provider when it refused the sign-in.").WithSchema(openapi3.NewStringSchema()),
	}
	return []operation{
		{method: http.MethodGet, path: "/api/v1/auth/oidc/{provider}/start", id: "startSSO", tag: "auth",
			summary: "Start a single sign-on", desc: ssoDoc, query: []*openapi3.Parameter{next},
			replies: []reply{{status: 200, desc: "With `Accept: application/json`: the provider's authorization URL; sets the sealed flow cookie, which the callback needs.",
				body: api.SSOStart{}, headers: map[string]string{"Set-Cookie": "The sealed `" + oidcFlowCookie + "` cookie."}},
				{status: 302, desc: "To the provider's authorization endpoint; sets the sealed flow cookie.",
					headers: map[string]string{"Location": "The provider's authorization URL.", "Set-Cookie": "The sealed `" + oidcFlowCookie + "` cookie."}}},
			errs: []int{429, 502}},
		{method: http.MethodGet, path: "/api/v1/auth/oidc/{provider}/callback", id: "finishSSO", tag: "auth",
			summary: "Finish a single sign-on (the provider's redirect)",
			desc: "The provider sends the browser here. The flow cookie is dropped (a callback works once); the state must match it, " +
				"the code is exchanged with the PKCE verifier, and the ID token must be the provider's, for this client, unexpired, " +
				"and carry the flow's nonce. Browsers (`Accept: text/html`) get pages instead of what is documented here: one that moves " +
				"on (same-site, so the SameSite=Strict session cookie goes along) to `next`, their start page or /login/sso, or an error " +
				"page with the same status. Start and callback together are limited per client address (60 at once, then one a second).\n\n" + ssoDoc,
			query: cbParams,
			replies: []reply{
				{status: 200, desc: "Signed in: the sign-in is linked to an active account.", body: api.AuthResponse{}, cookie: true},
				{status: 202, desc: "The sign-in is linked to no account: it waits in the sealed `" + oidcPendingCookie + "` cookie for a signup or a link.",
					body: api.SSOPending{}},
			},
			errs: []int{400, 401, 403, 429, 502}},
		{method: http.MethodPost, path: "/api/v1/auth/oidc/signup", id: "ssoSignup", tag: "auth",
			summary: "Create an account for the waiting sign-in", body: api.SSOSignup{},
			desc: "Creates an owner account linked to the sign-in waiting in this browser and signs it in. The account gets a random " +
				"password nobody knows; a password reset sets one. 409 when an account has the email (link it instead) or the " +
				"sign-in is linked already. Signups are rate limited per address.",
			replies: []reply{{status: 201, body: api.AuthResponse{}, cookie: true}}, errs: []int{409, 429}},
		{method: http.MethodPost, path: "/api/v1/auth/oidc/link", id: "ssoLink", tag: "auth",
			summary: "Link the waiting sign-in to an account, with its password", body: api.Credentials{},
			desc: "Checks the email and password like `POST /api/v1/auth/login` (same limits, same 401 for an unknown email or a wrong " +
				"password), links the sign-in waiting in this browser to that account and signs it in. Operators restricted to " +
				"single sign-on link this way too.",
			replies: []reply{{status: 200, body: api.AuthResponse{}, cookie: true}}, errs: []int{401, 403, 409, 429}},
		{method: http.MethodGet, path: "/api/v1/me/identities", id: "listIdentities", tag: "account", sec: secOwner,
			summary: "Linked sign-in providers", desc: "The providers that sign in to this account, and the providers this server offers.",
			replies: []reply{{status: 200, body: api.IdentityList{}}}},
		{method: http.MethodDelete, path: "/api/v1/me/identities/{identity_id}", id: "unlinkIdentity", tag: "account", sec: secOwner,
			summary: "Unlink a sign-in provider", body: api.IdentityUnlink{}, optionalBody: true,
			desc: "The body is optional, except for the account's last provider: unlinking it needs the account's password (403 " +
				"with field password otherwise), so that the account keeps a way in. An operator restricted to single sign-on cannot " +
				"unlink the last one (409).",
			replies: []reply{{status: 204}}, errs: []int{409}},
	}
}
