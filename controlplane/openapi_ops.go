package controlplane

import (
	"net/http"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// security is who may call an operation.
type security int

const (
	secNone     security = iota // public
	secOwner                    // an owner's sign-in token (bearer or cookie)
	secApp                      // a provisioning credential of the kinds in operation.creds
	secAdmin                    // an owner's sign-in token with role admin
	secNodeCred                 // a node credential (tln_…)
	secNode                     // a short-lived node token
)

// operation is one documented route. Path parameters come from the path;
// the error responses that follow from the body, the parameters and the
// security are added automatically (see operation.errorStatuses).
type operation struct {
	method  string
	path    string // OpenAPI form: /api/v1/apps/{app_id}
	id      string // operationId
	tag     string
	summary string
	desc    string
	sec     security
	// creds are the provisioning credentials a secApp operation admits.
	creds   credKind
	query   []*openapi3.Parameter
	body    any // a wire type value: the JSON request body
	form    *openapi3.Schema
	replies []reply
	// errs are error statuses beyond the automatic ones.
	errs []int
	// raw operations get no automatic error responses.
	raw bool
	// optionalBody: the JSON body may be left out.
	optionalBody bool
	// rawJSON is a JSON request body that is not one of ours (a payment
	// provider's event), described by its schema.
	rawJSON *openapi3.Schema
}

// reply is one documented response.
type reply struct {
	status  int
	desc    string
	body    any // a wire type value: a JSON body
	media   map[string]*openapi3.Schema
	cookie  bool // sets or clears the traceless_session cookie
	headers map[string]string
}

// Non-JSON bodies.
var (
	htmlPage    = map[string]*openapi3.Schema{"text/html": openapi3.NewStringSchema()}
	plainText   = openapi3.NewStringSchema()
	binaryBody  = openapi3.NewStringSchema().WithFormat("binary")
	anyJSONBody = openapi3.NewObjectSchema()
)

// Query parameters.
var (
	limitParam = openapi3.NewQueryParameter("limit").
			WithDescription("Page size (default 50).").
			WithSchema(openapi3.NewIntegerSchema().WithMin(1).WithMax(500).WithDefault(50))
	cursorParam = openapi3.NewQueryParameter("cursor").
			WithDescription("The next_cursor of the previous page.").
			WithSchema(openapi3.NewStringSchema().WithMaxLength(64))
)

// pathParamDesc describes every path parameter.
var pathParamDesc = map[string]string{
	"app_id":    "The app's ID.",
	"key_id":    "The API key's ID.",
	"device_id": "The device's ID.",
	"plan_id":   "The plan's ID.",
	"owner_id":  "The owner's ID.",
	"path":      "The file's path below /static/.",
	"pool_id":   "The pool's ID.",
	"node_id":   "The node's ID.",
}

// paymentRequiredDoc is said of every operation a plan limit refuses.
const paymentRequiredDoc = " 402 payment_required instead when the owner's payment is overdue past its grace period: " +
	"the account is held to the free plan's limits (what is registered keeps working)."

// operations is the table of every route of the API. TestOpenAPIRoutes
// fails when a registered route is missing here, or the other way round.
func operations() []operation {
	ops := publicOperations()
	ops = append(ops, ownerOperations()...)
	ops = append(ops, provisioningOperations()...)
	ops = append(ops, alertOperations()...)
	ops = append(ops, ssoOperations()...)
	ops = append(ops, billingOperations()...)
	return append(ops, adminOperations()...)
}

func publicOperations() []operation {
	setupForm := openapi3.NewObjectSchema().
		WithProperty("token", openapi3.NewStringSchema()).
		WithProperty("email", openapi3.NewStringSchema()).
		WithProperty("password", openapi3.NewStringSchema().WithFormat("password")).
		WithRequired([]string{"token", "email", "password"})
	return []operation{
		{method: http.MethodGet, path: "/healthz", id: "getHealth", tag: "public",
			summary: "Health check", desc: "200 when the store answers, 503 when it does not.",
			replies: []reply{{status: 200, body: api.Health{}}, {status: 503, desc: "The store does not answer.", body: api.Health{}}}},
		{method: http.MethodHead, path: "/healthz", id: "headHealth", tag: "public",
			summary: "Health check without a body", raw: true,
			replies: []reply{{status: 200}, {status: 503, desc: "The store does not answer."}}},
		{method: http.MethodGet, path: "/readyz", id: "getReady", tag: "public",
			summary: "Readiness check",
			desc: "200 when the store takes writes; 503 storage_unavailable when it cannot (disk full, read-only, database gone), " +
				"so a load balancer can send requests elsewhere. /healthz stays a liveness check.",
			replies: []reply{{status: 200, body: api.Health{}}}},
		{method: http.MethodHead, path: "/readyz", id: "headReady", tag: "public",
			summary: "Readiness check without a body", raw: true,
			replies: []reply{{status: 200}, {status: 503, desc: "The store cannot take writes."}}},
		{method: http.MethodGet, path: "/metrics", id: "getMetrics", tag: "public",
			summary: "Prometheus metrics",
			desc:    "Aggregates only: no per-device, per-owner or per-address labels.", raw: true,
			replies: []reply{{status: 200, media: map[string]*openapi3.Schema{
				"text/plain": plainText, "application/openmetrics-text": plainText}}}},
		{method: http.MethodGet, path: "/api/v1/privacy", id: "getPrivacy", tag: "public",
			summary: "Privacy manifest", desc: "Every table and column the control plane stores, generated from the schema.",
			replies: []reply{{status: 200, body: api.PrivacyManifest{}}}},
		{method: http.MethodGet, path: "/api/v1/openapi.json", id: "getOpenAPI", tag: "public",
			summary: "This OpenAPI document",
			replies: []reply{{status: 200, media: map[string]*openapi3.Schema{"application/json": anyJSONBody}}}},
		{method: http.MethodGet, path: "/api/v1/policy", id: "getPolicy", tag: "public", sec: secNone,
			summary: "The privacy policy in effect and, once announced, the next version",
			desc:    "A new version is announced a notice period (30 days by default) before it takes effect.",
			replies: []reply{{status: 200, body: api.PolicyStatus{}}}},
		{method: http.MethodGet, path: "/api/v1/plans", id: "listPlans", tag: "public",
			summary: "Plan catalogue", desc: "The active plans.",
			replies: []reply{{status: 200, body: api.PlanList{}}}},

		{method: http.MethodGet, path: "/static/{path}", id: "getStatic", tag: "web",
			summary: "Dashboard assets", desc: "Stylesheets and scripts of the setup page; the type follows the extension.",
			replies: []reply{{status: 200, media: map[string]*openapi3.Schema{"*/*": binaryBody}}}},
		{method: http.MethodGet, path: "/setup", id: "getSetupPage", tag: "setup",
			summary: "First-start setup page",
			desc:    "The HTML form that creates the first operator with the one-time token printed at first start.",
			query: []*openapi3.Parameter{openapi3.NewQueryParameter("token").
				WithDescription("The one-time setup token, to prefill the form.").WithSchema(openapi3.NewStringSchema())},
			replies: []reply{{status: 200, media: htmlPage},
				{status: 410, desc: "An operator exists or no setup token is armed.", media: htmlPage}}},
		{method: http.MethodPost, path: "/setup", id: "postSetupForm", tag: "setup",
			summary: "Submit the setup page", form: setupForm,
			desc: "Creates the first operator and signs them in. Input errors re-render the form with the error's status.",
			replies: []reply{{status: 201, media: htmlPage, cookie: true},
				{status: 400, desc: "Invalid email or password.", media: htmlPage},
				{status: 403, desc: "The setup token is wrong or was used.", media: htmlPage},
				{status: 409, desc: "An account with this email exists.", media: htmlPage},
				{status: 410, desc: "An operator exists or no setup token is armed.", media: htmlPage}}},
		{method: http.MethodPost, path: "/api/v1/setup", id: "setup", tag: "setup",
			summary: "Create the first operator", body: api.Setup{},
			desc:    "The JSON form of the setup page: spends the one-time token and signs the new operator in.",
			replies: []reply{{status: 201, body: api.AuthResponse{}, cookie: true}}, errs: []int{403, 409}},
	}
}

func ownerOperations() []operation {
	return []operation{
		{method: http.MethodPost, path: "/api/v1/auth/signup", id: "signup", tag: "auth",
			summary: "Create an owner account", body: api.Credentials{},
			replies: []reply{{status: 201, body: api.AuthResponse{}, cookie: true}}, errs: []int{409, 429}},
		{method: http.MethodPost, path: "/api/v1/auth/login", id: "login", tag: "auth",
			summary: "Sign in", body: api.Login{},
			desc: "An unknown email and a wrong password get the same 401 unauthorized. With two-factor authentication on, the " +
				"right email and password without `code` answer 401 second_factor_required; the same call with `code` (a TOTP code " +
				"or a recovery code) signs in, and a wrong, expired or replayed code answers 401 second_factor_invalid. A code is " +
				"accepted once. Every call, with or without a code, counts against the login limits.",
			replies: []reply{{status: 200, body: api.AuthResponse{}, cookie: true}}, errs: []int{401, 403, 429}},
		{method: http.MethodPost, path: "/api/v1/auth/logout", id: "logout", tag: "auth", sec: secOwner,
			summary: "Sign out", desc: "Revokes every sign-in token of the owner and clears the cookie.",
			replies: []reply{{status: 204, cookie: true}}},
		{method: http.MethodPost, path: "/api/v1/auth/password-reset", id: "requestPasswordReset", tag: "auth",
			summary: "Mail a password reset link", body: api.PasswordResetRequest{},
			desc: "Answers 202 with the same body, at once, whether or not an account uses the address: the lookup and the mail " +
				"happen in the background. The mailed link works once, within 30 minutes. 409 mail_unavailable on a server that sends no mail.",
			replies: []reply{{status: 202, body: api.MailQueued{}}}, errs: []int{409, 429}},
		{method: http.MethodPost, path: "/api/v1/auth/password-reset/confirm", id: "confirmPasswordReset", tag: "auth",
			summary: "Set a new password with a mailed reset link", body: api.PasswordResetConfirm{},
			desc: "`token` is the link's token. Every session of the account ends; sign in with the new password " +
				"(and the second factor, if the account has one). 400 on token for an unknown, used or expired link.",
			replies: []reply{{status: 204}}, errs: []int{429}},
		{method: http.MethodPost, path: "/api/v1/auth/verify-email", id: "verifyEmail", tag: "auth",
			summary: "Verify the email address with the mailed link", body: api.EmailVerification{},
			desc:    "`token` is the link's token; it works once. 400 on token for an unknown, used or expired link.",
			replies: []reply{{status: 204}}, errs: []int{429}},
		{method: http.MethodGet, path: "/api/v1/me", id: "getMe", tag: "account", sec: secOwner,
			summary: "The signed-in owner", replies: []reply{{status: 200, body: api.Owner{}}}},
		{method: http.MethodDelete, path: "/api/v1/me", id: "deleteMe", tag: "account", sec: secOwner,
			summary: "Delete the account and everything of it",
			desc: "Hard-deletes the owner, apps, keys and devices; the devices leave every node within a second and no copy stays " +
				"in the database files. 409 legal_hold, with the reason, while an operator holds the account.",
			replies: []reply{{status: 204, cookie: true}}, errs: []int{409}},
		{method: http.MethodGet, path: "/api/v1/me/export", id: "exportMe", tag: "account", sec: secOwner,
			summary: "Export everything stored about the account",
			desc:    "Every stored row about the owner, table by table, with exactly the columns of the privacy manifest. Credential hashes are named but withheld.",
			replies: []reply{{status: 200, body: api.Export{}}}},
		{method: http.MethodPut, path: "/api/v1/me/policy", id: "acceptPolicy", tag: "account", sec: secOwner,
			summary: "Accept a privacy policy version", body: api.PolicyAccept{},
			desc:    "The version must be the current one or the announced upcoming one.",
			replies: []reply{{status: 200, body: api.Owner{}}}},
		{method: http.MethodPut, path: "/api/v1/me/password", id: "changePassword", tag: "account", sec: secOwner,
			summary: "Change the password", body: api.PasswordChange{},
			desc: "Needs the current password (403 forbidden on current_password when it is wrong; the login limits apply). " +
				"Every other session ends; the answer holds a new token for this one.",
			replies: []reply{{status: 200, body: api.AuthResponse{}, cookie: true}}, errs: []int{429}},
		{method: http.MethodPost, path: "/api/v1/me/2fa", id: "startTwoFactor", tag: "account", sec: secOwner,
			summary: "Start two-factor (TOTP) enrolment",
			desc: "Answers a new secret (base32) and its otpauth:// URL for an authenticator app; it replaces an enrolment not yet " +
				"confirmed. Nothing changes at sign-in until POST /api/v1/me/2fa/confirm. 409 conflict when two-factor is on.",
			replies: []reply{{status: 200, body: api.TOTPEnrolment{}}}, errs: []int{409}},
		{method: http.MethodPost, path: "/api/v1/me/2fa/confirm", id: "confirmTwoFactor", tag: "account", sec: secOwner,
			summary: "Confirm two-factor enrolment with a code", body: api.TOTPCode{},
			desc: "Turns two-factor on with a code of the new secret (400 on code when it does not match) and answers ten " +
				"single-use recovery codes, shown only here. 409 conflict without an enrolment to confirm.",
			replies: []reply{{status: 200, body: api.RecoveryCodes{}}}, errs: []int{409}},
		{method: http.MethodDelete, path: "/api/v1/me/2fa", id: "disableTwoFactor", tag: "account", sec: secOwner,
			summary: "Turn two-factor off", body: api.TOTPDisable{},
			desc: "Needs the password (403 forbidden on password) and a TOTP or recovery code (403 second_factor_invalid on code). " +
				"The recovery codes are deleted. The login limits apply. 409 conflict when two-factor is off.",
			replies: []reply{{status: 204}}, errs: []int{409, 429}},
		{method: http.MethodPost, path: "/api/v1/me/verify-email", id: "resendVerification", tag: "account", sec: secOwner,
			summary: "Mail a new email verification link",
			desc:    "The previous link stops working. 409 conflict when the address is verified; 409 mail_unavailable without mail.",
			replies: []reply{{status: 202, body: api.MailQueued{}}}, errs: []int{409, 429}},
		{method: http.MethodPut, path: "/api/v1/me/plan", id: "changePlan", tag: "account", sec: secOwner,
			summary: "Change plan", body: api.PlanChange{},
			desc: "403 plan_limit when the owner uses more than the new plan allows. 403 forbidden when the operator assigns plans " +
				"(`plan_self_service: false`). With Stripe, a paid plan is bought through checkout (402 payment_required here) and a " +
				"subscription is cancelled in the customer portal (409 conflict here while subscribed or comped).",
			replies: []reply{{status: 200, body: api.Owner{}}}, errs: []int{402, 409}},

		{method: http.MethodPost, path: "/api/v1/apps", id: "createApp", tag: "apps", sec: secOwner,
			summary: "Create an app", body: api.AppInput{}, desc: "403 plan_limit beyond the plan's apps." + paymentRequiredDoc,
			replies: []reply{{status: 201, body: api.App{}}}, errs: []int{402}},
		{method: http.MethodGet, path: "/api/v1/apps", id: "listApps", tag: "apps", sec: secOwner,
			summary: "List apps", desc: "The owner's apps, each with its device count.",
			replies: []reply{{status: 200, body: api.AppList{}}}},
		{method: http.MethodGet, path: "/api/v1/apps/{app_id}", id: "getApp", tag: "apps", sec: secOwner,
			summary: "Get an app", replies: []reply{{status: 200, body: api.App{}}}},
		{method: http.MethodPut, path: "/api/v1/apps/{app_id}", id: "updateApp", tag: "apps", sec: secOwner,
			summary: "Rename an app or set its key rotation policy or registration cap", body: api.AppUpdate{},
			desc: "rotation_days asks the app's devices to rotate their key (and addresses) every N days; 0 removes the policy. " +
				"registration_cap bounds the registrations per hour made with the app's publishable keys, per control-plane replica " +
				"(0 removes the cap); the app's registration_cap_hits counts the refusals.",
			replies: []reply{{status: 200, body: api.App{}}}},
		{method: http.MethodDelete, path: "/api/v1/apps/{app_id}", id: "deleteApp", tag: "apps", sec: secOwner,
			summary: "Delete an app", desc: "Hard-deletes the app, its keys and its devices; the devices leave every node.",
			replies: []reply{{status: 204}}},
		{method: http.MethodPost, path: "/api/v1/apps/{app_id}/keys", id: "createKey", tag: "keys", sec: secOwner,
			summary: "Create an API key", body: api.APIKeyInput{},
			desc: "The key is shown only in this response. `kind` is `secret` (the default; `tlk_…`, for the owner's backend: " +
				"the whole provisioning API and minting registration tickets) or `publishable` (`tlp_…`, safe to ship inside an app: " +
				"registering devices and reading the app's policy and servers only). `expires_at`, in the future, ends the key then. " +
				"Names are unique per app: 409 conflict (field `name`) for a taken one. 403 email_unverified while the owner's email awaits verification.",
			replies: []reply{{status: 201, body: api.APIKeyCreated{}}}, errs: []int{409}},
		{method: http.MethodPost, path: "/api/v1/apps/{app_id}/keys/{key_id}/replace", id: "replaceKey", tag: "keys", sec: secOwner,
			summary: "Replace an API key, keeping the old one for a grace period", body: api.KeyReplaceInput{},
			desc: "Creates a key of the old key's kind (shown only in this response) and lets the old key work until `grace_until` " +
				"(at most 366 days ahead; now ends it at once), so app versions shipped with a publishable key keep working while " +
				"users update. The old key's `replaced_by` names the new one. 409 conflict for a key already replaced or a taken name.",
			replies: []reply{{status: 201, body: api.KeyReplaced{}}}, errs: []int{409}},
		{method: http.MethodGet, path: "/api/v1/apps/{app_id}/keys", id: "listKeys", tag: "keys", sec: secOwner,
			summary: "List API keys", desc: "Never the keys themselves.",
			replies: []reply{{status: 200, body: api.APIKeyList{}}}},
		{method: http.MethodDelete, path: "/api/v1/apps/{app_id}/keys/{key_id}", id: "deleteKey", tag: "keys", sec: secOwner,
			summary: "Revoke an API key", desc: "Takes effect at once.", replies: []reply{{status: 204}}},
	}
}

func provisioningOperations() []operation {
	return []operation{
		{method: http.MethodGet, path: "/api/v1/pools", id: "listOwnPools", tag: "pools", sec: secOwner,
			summary: "List the owner's dedicated pools", replies: []reply{{status: 200, body: api.PoolList{}}}},
		{method: http.MethodPost, path: "/api/v1/pools", id: "createOwnPool", tag: "pools", sec: secOwner,
			summary: "Create a dedicated pool for the owner's own nodes", body: api.PoolInput{},
			desc: "403 plan_limit when the plan allows no own nodes. The owner's apps' devices are carried by the pool's nodes; no other owner's are. " +
				"A dedicated pool is in no plan: `plans` is for operators and answers 400 here." + paymentRequiredDoc,
			replies: []reply{{status: 201, body: api.Pool{}}}, errs: []int{402, 409}},
		{method: http.MethodDelete, path: "/api/v1/pools/{pool_id}", id: "deleteOwnPool", tag: "pools", sec: secOwner,
			summary: "Delete a dedicated pool and its nodes", replies: []reply{{status: 204}}},
		{method: http.MethodPost, path: "/api/v1/pools/{pool_id}/enrollment-tokens", id: "createOwnEnrollmentToken", tag: "pools", sec: secOwner,
			summary: "Create a one-use enrollment token for a dedicated pool",
			desc:    "Enrollment answers 403 plan_limit once the owner runs as many nodes as the plan allows." + paymentRequiredDoc,
			replies: []reply{{status: 201, body: api.EnrollmentToken{}}}},
		{method: http.MethodGet, path: "/api/v1/nodes", id: "listOwnNodes", tag: "pools", sec: secOwner,
			summary: "List the owner's own nodes with their aggregate status", replies: []reply{{status: 200, body: api.NodeList{}}}},
		{method: http.MethodDelete, path: "/api/v1/nodes/{node_id}", id: "deleteOwnNode", tag: "pools", sec: secOwner,
			summary: "Remove one of the owner's own nodes", replies: []reply{{status: 204}}},
		{method: http.MethodGet, path: "/api/v1/app", id: "getAppPolicy", tag: "devices", sec: secApp, creds: permAppRead,
			summary: "The key rotation policy of the key's app",
			desc:    "Devices remember when they last rotated and rotate when the policy says so; the server keeps no device-level time.",
			replies: []reply{{status: 200, body: api.AppPolicy{}}}},
		{method: http.MethodGet, path: "/api/v1/servers", id: "listServers", tag: "servers", sec: secApp, creds: permServers,
			summary: "List servers",
			desc: "The nodes the app's plan grants, and the enabled nodes of the owner's dedicated pools. " +
				"When there is none, `explanation` says why (`plan_includes_no_pool`: the plan includes no server pool, " +
				"ask the operator; `no_enabled_node`: its pools have no enabled node yet).",
			replies: []reply{{status: 200, body: api.ServerList{}}}},
		{method: http.MethodPost, path: "/api/v1/registration-tickets", id: "createRegistrationTicket", tag: "devices", sec: secApp, creds: permSecret,
			summary: "Mint a registration ticket", body: api.TicketInput{},
			desc: "The recommended way for an app to register: the owner's backend mints a ticket (`tlt_…`, shown only here) for " +
				"one app install and hands it over; the app registers one device with it, once, before `expires_at` " +
				"(`ttl_seconds`, 10 to 600, default 600). `external_ref` binds the ticket: the device gets that reference. " +
				"A used or expired ticket is deleted.",
			replies: []reply{{status: 201, body: api.RegistrationTicket{}}}},
		{method: http.MethodPost, path: "/api/v1/devices", id: "registerDevice", tag: "devices", sec: secApp, creds: permRegister,
			summary: "Register a device", body: api.DeviceInput{},
			desc: "409 conflict for a known public key; 403 plan_limit beyond the plan's devices. The answer's `device_token` " +
				"(`tld_…`, shown only here) lets the device read, configure, rotate and delete itself and list its servers. " +
				"With a ticket: 401 for a used or expired one, 403 (field `external_ref`) for a reference other than the one the " +
				"ticket is bound to. With a publishable key: 429 rate_limited (with Retry-After) once the app's hourly " +
				"`registration_cap` is reached. 403 email_unverified while the app owner's email awaits verification." + paymentRequiredDoc,
			replies: []reply{{status: 201, body: api.DeviceCreated{}}}, errs: []int{402, 409}},
		{method: http.MethodGet, path: "/api/v1/devices", id: "listDevices", tag: "devices", sec: secApp, creds: permSecret,
			summary: "List devices", query: []*openapi3.Parameter{limitParam, cursorParam},
			replies: []reply{{status: 200, body: api.DeviceList{}}}},
		{method: http.MethodGet, path: "/api/v1/devices/{device_id}", id: "getDevice", tag: "devices", sec: secApp, creds: permOwnDevice,
			summary: "Get a device", desc: "With the app's rotation policy (`rotation_days`), for devices that hold only their own token.",
			replies: []reply{{status: 200, body: api.Device{}}}},
		{method: http.MethodDelete, path: "/api/v1/devices/{device_id}", id: "deleteDevice", tag: "devices", sec: secApp, creds: permOwnDevice,
			summary: "Delete a device", desc: "The device is removed from every node.", replies: []reply{{status: 204}}},
		{method: http.MethodPost, path: "/api/v1/devices/{device_id}/rotate", id: "rotateDevice", tag: "devices", sec: secApp, creds: permOwnDevice,
			summary: "Rotate a device's key", body: api.RotateInput{},
			desc:    "The device gets the new public key, new tunnel addresses and a new `device_token`; the old token stops working.",
			replies: []reply{{status: 200, body: api.DeviceCreated{}}}, errs: []int{409}},
		{method: http.MethodPost, path: "/api/v1/devices/{device_id}/token", id: "resetDeviceToken", tag: "devices", sec: secApp, creds: permSecret,
			summary: "Reset a device's token",
			desc:    "For a device that lost its token: a new one, shown only here; the old one stops working. The WireGuard key stays.",
			replies: []reply{{status: 200, body: api.DeviceToken{}}}},
		{method: http.MethodGet, path: "/api/v1/devices/{device_id}/config", id: "getDeviceConfig", tag: "devices", sec: secApp, creds: permOwnDevice,
			summary: "A device's wg-quick config",
			desc: "The `PrivateKey` line is a placeholder: the server never knows a device's private key. " +
				"With format=qr the config comes as a PNG QR code.",
			query: []*openapi3.Parameter{
				openapi3.NewQueryParameter("server").WithRequired(true).
					WithDescription("The ID of a server from GET /api/v1/servers.").WithSchema(openapi3.NewStringSchema()),
				openapi3.NewQueryParameter("format").
					WithDescription("conf (the default) or qr.").WithSchema(openapi3.NewStringSchema().WithEnum("conf", "qr")),
			},
			replies: []reply{{status: 200, desc: "The wg-quick file (conf) or its QR code (qr).",
				media:   map[string]*openapi3.Schema{"text/plain": plainText, "image/png": binaryBody},
				headers: map[string]string{"Content-Disposition": "attachment; filename=\"traceless.conf\" (conf only)"}}}},
	}
}

func adminOperations() []operation {
	return []operation{
		{method: http.MethodGet, path: "/api/v1/admin/plans", id: "adminListPlans", tag: "admin", sec: secAdmin,
			summary: "List all plans", desc: "Retired plans included.", replies: []reply{{status: 200, body: api.PlanList{}}}},
		{method: http.MethodPost, path: "/api/v1/admin/plans", id: "adminCreatePlan", tag: "admin", sec: secAdmin,
			summary: "Create a plan", body: api.PlanInput{}, replies: []reply{{status: 201, body: api.Plan{}}}, errs: []int{409}},
		{method: http.MethodPut, path: "/api/v1/admin/plans/{plan_id}", id: "adminUpdatePlan", tag: "admin", sec: secAdmin,
			summary: "Replace a plan", body: api.PlanInput{}, replies: []reply{{status: 200, body: api.Plan{}}}, errs: []int{409}},
		{method: http.MethodDelete, path: "/api/v1/admin/plans/{plan_id}", id: "adminDeletePlan", tag: "admin", sec: secAdmin,
			summary: "Delete a plan", desc: "409 conflict while owners are on it; retire it instead.",
			replies: []reply{{status: 204}}, errs: []int{409}},
		{method: http.MethodGet, path: "/api/v1/admin/owners", id: "adminListOwners", tag: "admin", sec: secAdmin,
			summary: "List owners", query: []*openapi3.Parameter{limitParam, cursorParam},
			replies: []reply{{status: 200, body: api.OwnerList{}}}},
		{method: http.MethodPut, path: "/api/v1/admin/owners/{owner_id}", id: "adminUpdateOwner", tag: "admin", sec: secAdmin,
			summary: "Update an owner", body: api.OwnerUpdate{},
			desc:    "Status, plan and legal hold; absent fields are left alone.",
			replies: []reply{{status: 200, body: api.Owner{}}}},
		{method: http.MethodDelete, path: "/api/v1/admin/owners/{owner_id}", id: "adminDeleteOwner", tag: "admin", sec: secAdmin,
			summary: "Delete an owner and everything of theirs",
			desc:    "Hard delete, as DELETE /api/v1/me. 409 legal_hold (with the reason) while the account is held.",
			replies: []reply{{status: 204}}, errs: []int{409}},
		{method: http.MethodGet, path: "/api/v1/admin/pools", id: "adminListPools", tag: "admin", sec: secAdmin,
			summary: "List pools", replies: []reply{{status: 200, body: api.PoolList{}}}},
		{method: http.MethodPost, path: "/api/v1/admin/pools", id: "adminCreatePool", tag: "admin", sec: secAdmin,
			summary: "Create a shared pool", body: api.PoolInput{},
			desc: "`plans` names the plans (by slug or ID) that include the new pool; 400 for an unknown plan. " +
				"A pool that no plan includes serves nobody: its answer says `in_no_plan: true` until a plan includes it " +
				"(PUT /api/v1/admin/plans/{plan_id} with the pool in `pools`).",
			replies: []reply{{status: 201, body: api.Pool{}}}, errs: []int{409}},
		{method: http.MethodDelete, path: "/api/v1/admin/pools/{pool_id}", id: "adminDeletePool", tag: "admin", sec: secAdmin,
			summary: "Delete a pool and its nodes", replies: []reply{{status: 204}}},
		{method: http.MethodPost, path: "/api/v1/admin/pools/{pool_id}/enrollment-tokens", id: "adminCreateEnrollmentToken", tag: "admin", sec: secAdmin,
			summary: "Create a one-use enrollment token",
			desc:    "The token lets one node join the pool before it expires; it is shown only here and stored as a hash.",
			replies: []reply{{status: 201, body: api.EnrollmentToken{}}}},
		{method: http.MethodGet, path: "/api/v1/admin/nodes", id: "adminListNodes", tag: "admin", sec: secAdmin,
			summary: "List nodes with their last aggregate status and privacy posture",
			replies: []reply{{status: 200, body: api.NodeList{}}}},
		{method: http.MethodPut, path: "/api/v1/admin/nodes/{node_id}", id: "adminUpdateNode", tag: "admin", sec: secAdmin,
			summary: "Enable or disable a node", body: api.NodeUpdate{},
			desc:    "A disabled node is offered to no client and is sent an empty peer set.",
			replies: []reply{{status: 200, body: api.Node{}}}},
		{method: http.MethodDelete, path: "/api/v1/admin/nodes/{node_id}", id: "adminDeleteNode", tag: "admin", sec: secAdmin,
			summary: "Remove a node", desc: "Its credential and tokens stop working at once.",
			replies: []reply{{status: 204}}},
		{method: http.MethodPost, path: "/agent/v1/enroll", id: "agentEnroll", tag: "agent", sec: secNone,
			summary: "Enroll a node with a one-use token", body: api.EnrollRequest{},
			desc:    "Returns the node credential, shown only here." + paymentRequiredDoc,
			replies: []reply{{status: 201, body: api.EnrollResponse{}}}, errs: []int{401, 402, 403, 409, 429}},
		{method: http.MethodPost, path: "/agent/v1/token", id: "agentToken", tag: "agent", sec: secNodeCred,
			summary: "Trade the node credential for a short-lived node token",
			replies: []reply{{status: 200, body: api.NodeToken{}}}},
		{method: http.MethodGet, path: "/agent/v1/peers", id: "agentPeers", tag: "agent", sec: secNode,
			summary: "Long-poll for peer changes since a revision",
			desc: "With `full=true`, a full snapshot at once. Otherwise waits until the installation moves past revision `since` " +
				"(0 included: a node at revision 0 holds the empty set) or about 25 s pass, then answers a delta (upserts, then removes, " +
				"on top of `since`), or a full snapshot when `since` is 0 and the installation has moved, or `since` is too old. " +
				"A snapshot is the whole set, so agents that treat any answer to `since=0` as one stay correct. " +
				"With `Accept: " + api.SnapshotMediaType + "` a full snapshot is streamed as fixed 52-byte records. " +
				"A node may hold a few polls open at once (4 by default); more get 429 rate_limited with Retry-After.",
			query: []*openapi3.Parameter{
				openapi3.NewQueryParameter("since").
					WithDescription("The revision the node has applied. Required unless full=true.").
					WithSchema(openapi3.NewInt64Schema().WithMin(0)),
				openapi3.NewQueryParameter("full").
					WithDescription("true asks for a full snapshot now: at start, after a gap, or when status asked for a resync.").
					WithSchema(openapi3.NewBoolSchema()),
			},
			replies: []reply{{status: 200, body: api.PeersResponse{},
				media: map[string]*openapi3.Schema{api.SnapshotMediaType: binaryBody}}}, errs: []int{429}},
		{method: http.MethodPost, path: "/agent/v1/status", id: "agentStatus", tag: "agent", sec: secNode,
			summary: "Report aggregate status and privacy posture", body: api.NodeStatus{},
			desc:    "Aggregates only. resync=true asks the node for a full snapshot because its peer set hash differs.",
			replies: []reply{{status: 200, body: api.StatusResponse{}}}},
	}
}
