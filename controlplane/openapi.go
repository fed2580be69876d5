package controlplane

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// The OpenAPI document is built in Go from the operation table in
// openapi_ops.go and the wire types in controlplane/api (openapi_schema.go),
// validated, and marshalled once.

// openAPIVersion is the version of the contract; a change to it gets a line
// in openAPIChangelog.
const openAPIVersion = "1.4"

const openAPIChangelog = `## Changelog

Contract changes (routes, methods, status codes, JSON field names) are recorded here.

- v1.0 — initial contract.
- ` + "`GET /agent/v1/peers`" + ` takes ` + "`full=true`" + ` to ask for a full snapshot;
  ` + "`since=0`" + ` on an installation still at revision 0 now waits for a change
  instead of answering at once, so a node holding the empty set long-polls.
- v1.1 — additions. Pools answer with ` + "`plans`" + ` (the slugs of the plans that
  include them) and ` + "`in_no_plan`" + ` (a shared pool no plan includes serves nobody); POST /api/v1/admin/pools
  takes ` + "`plans`" + `. GET /api/v1/servers adds ` + "`explanation`" + ` when the list is empty. The document marks
  nullable every field that real answers hold as null (a node's ` + "`status`" + ` before it reports, the policy's
  ` + "`upcoming`" + `, the export's column values), names its ` + "`servers`" + ` and its license's URL.
- v1.2 — credentials that can ship inside an app. Keys have a ` + "`kind`" + `: ` + "`secret`" + ` (` + "`tlk_`" + `, the default and what
  every earlier key became) or ` + "`publishable`" + ` (` + "`tlp_`" + `: register devices, read the app's policy and servers), an optional
  ` + "`expires_at`" + ` and, once replaced (POST /api/v1/apps/{app_id}/keys/{key_id}/replace), a grace period and ` + "`replaced_by`" + `.
  Key names are unique per app: the upgrade renamed later duplicates to "name (2)", "name (3)", …
  POST /api/v1/registration-tickets (secret key) mints single-use tickets (` + "`tlt_`" + `). Registration and rotation answer a
  ` + "`device_token`" + ` (` + "`tld_`" + `) with which a device manages itself only; POST /api/v1/devices/{device_id}/token resets it.
  GET /api/v1/devices and the ticket and token routes take a secret key only (others: 403 forbidden). Apps have an
  optional hourly ` + "`registration_cap`" + ` for publishable keys (429 with Retry-After) and count its refusals. The security scheme
  ` + "`apiKey`" + ` is now ` + "`secretKey`" + `, beside ` + "`publishableKey`" + `, ` + "`registrationTicket`" + ` and ` + "`deviceToken`" + `;
  each provisioning operation lists the ones it admits.
- v1.3 — sign-in. Email verification (POST /api/v1/auth/verify-email, POST /api/v1/me/verify-email; while it is
  pending, creating keys and registering devices answer 403 ` + "`email_unverified`" + `), password change
  (PUT /api/v1/me/password) and reset by mail (POST /api/v1/auth/password-reset, /confirm; 409
  ` + "`mail_unavailable`" + ` on a server that sends no mail). Owners answer with ` + "`email_verified`" + `,
  ` + "`email_verification_required`" + ` and ` + "`two_factor`" + `. Two-factor authentication (TOTP): POST and DELETE
  /api/v1/me/2fa, POST /api/v1/me/2fa/confirm; POST /api/v1/auth/login takes ` + "`code`" + ` and answers 401
  ` + "`second_factor_required`" + ` or ` + "`second_factor_invalid`" + `. With operator two-factor required, an operator without it
  gets 403 ` + "`second_factor_enrolment_required`" + ` from every route but the enrolment routes and sign-out.
- v1.4 — billing. GET /api/v1/me/billing; with Stripe, POST /api/v1/me/billing/checkout and /portal answer a Stripe
  URL, and POST /api/v1/billing/stripe/webhook takes Stripe's signed events (without a provider these three answer 404).
  PUT /api/v1/me/plan answers 403 ` + "`forbidden`" + ` when the operator assigns plans, and with Stripe 402
  ` + "`payment_required`" + ` for a paid plan (buy it through checkout) and 409 while subscribed or comped. Where a plan
  limit refuses (apps, devices, own pools and nodes), an account whose payment is overdue past its grace period gets 402
  ` + "`payment_required`" + ` instead of 403 ` + "`plan_limit`" + `. Deleting an account answers 409 ` + "`legal_hold`" + ` while
  Stripe reports a balance or an open dispute, and 502 ` + "`billing_unavailable`" + ` when Stripe cannot be reached. Operators:
  GET /api/v1/admin/owners/{owner_id}/billing, PUT and DELETE …/billing/comp.`

const openAPIDescription = `Traceless is a no-logs WireGuard VPN control plane. App owners sign up,
create apps and API keys; their apps register end-user devices (a WireGuard
public key each) and fetch wg-quick configs for the nodes their plan grants.

**JSON.** Requests and responses are JSON with snake_case fields. Request
bodies must be ` + "`application/json`" + `, at most 64 KiB, one object, with no
unknown fields.

**Errors** are ` + "`{\"error\": {\"code\": \"...\", \"message\": \"...\", \"field\": \"...\"}}`" + `
with a stable code: invalid_request, unauthorized, forbidden, not_found,
conflict, plan_limit, rate_limited, legal_hold, internal, storage_unavailable,
for billing payment_required, billing_unavailable and subscription_live,
and for sign-in email_unverified, mail_unavailable, second_factor_required,
second_factor_invalid, second_factor_enrolment_required.

**Authentication.** Owners send their sign-in token as
` + "`Authorization: Bearer <token>`" + ` or the dashboard's HttpOnly cookie
` + "`traceless_session`" + `. Operator routes need an owner with role admin. The
provisioning API takes four credentials, each as ` + "`Authorization: Bearer <credential>`" + `,
each shown once and stored only as a hash: a **secret key** (` + "`tlk_`" + `) for the
owner's backend; a **publishable key** (` + "`tlp_`" + `), safe inside an app binary, which
registers devices and reads the app's policy and servers; a **registration
ticket** (` + "`tlt_`" + `), minted by the backend with the secret key, which registers one
device once within minutes; and a **device token** (` + "`tld_`" + `), answered by the
registration, with which a device manages itself only. The recommended pattern
is a ticket from your backend; the publishable key is the fallback for apps
without one. Each operation lists the credentials it admits.

**Paging.** List endpoints that page take ` + "`?limit=&cursor=`" + ` and return
` + "`next_cursor`" + `, empty on the last page.

`

// The license of the API and its document.
const (
	openAPILicenseName = "Traceless license"
	openAPILicenseURL  = "https://github.com/traceless-vpn/traceless/blob/main/LICENSE"
)

// Security scheme names.
const (
	schemeOwnerBearer    = "ownerBearer"
	schemeOwnerCookie    = "ownerCookie"
	schemeSecretKey      = "secretKey"
	schemePublishableKey = "publishableKey"
	schemeTicket         = "registrationTicket"
	schemeDeviceToken    = "deviceToken"
	schemeNodeCred       = "nodeCredential"
	schemeNode           = "nodeToken"
)

// openAPIJSON builds the document once.
var openAPIJSON = sync.OnceValues(func() ([]byte, error) {
	doc, err := buildOpenAPI()
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("marshal openapi: %w", err)
	}
	// Validate what is served: reload it, resolving every $ref.
	loaded, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		return nil, fmt.Errorf("load openapi: %w", err)
	}
	if err := loaded.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("validate openapi: %w", err)
	}
	return b, nil
})

// handleOpenAPI serves the OpenAPI 3 document of the API.
func (s *Server) handleOpenAPI(c echo.Context) error {
	b, err := openAPIJSON()
	if err != nil {
		return err
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, b)
}

// buildOpenAPI assembles the document from the operation table.
func buildOpenAPI() (*openapi3.T, error) {
	g := newSchemaGen()
	errBody, err := g.ref(api.ErrorBody{})
	if err != nil {
		return nil, err
	}
	doc := &openapi3.T{
		OpenAPI: "3.0.3",
		Info: &openapi3.Info{
			Title:       "Traceless API",
			Version:     openAPIVersion,
			Description: openAPIDescription + openAPIChangelog,
			License:     &openapi3.License{Name: openAPILicenseName, URL: openAPILicenseURL},
		},
		// The document describes whichever control plane serves it: its
		// paths are relative to that server's root.
		Servers: openapi3.Servers{{URL: "/", Description: "The control plane serving this document."}},
		Paths:   openapi3.NewPaths(),
		Tags: openapi3.Tags{
			{Name: "public", Description: "No authentication."},
			{Name: "setup", Description: "Creating the first operator account."},
			{Name: "web", Description: "Assets of the server's HTML pages."},
			{Name: "auth", Description: "Owner accounts and sign-in."},
			{Name: "account", Description: "The signed-in owner."},
			{Name: "apps", Description: "An owner's apps."},
			{Name: "keys", Description: "An app's API keys."},
			{Name: "servers", Description: "Provisioning with an app API key: nodes."},
			{Name: "devices", Description: "Provisioning with an app API key: end-user devices."},
			{Name: "admin", Description: "Operators (role admin)."},
		},
		Components: &openapi3.Components{
			Responses:       errorResponses(errBody),
			SecuritySchemes: securitySchemes(),
		},
	}
	seen := map[string]bool{}
	for _, op := range operations() {
		key := op.method + " " + op.path
		if seen[key] {
			return nil, fmt.Errorf("openapi: %s documented twice", key)
		}
		seen[key] = true
		o, err := op.build(g)
		if err != nil {
			return nil, fmt.Errorf("openapi: %s: %w", key, err)
		}
		item := doc.Paths.Value(op.path)
		if item == nil {
			item = &openapi3.PathItem{}
			doc.Paths.Set(op.path, item)
		}
		item.SetOperation(op.method, o)
	}
	doc.Components.Schemas = g.schemas
	return doc, nil
}

// errorResponse is a shared error response of components.responses.
type errorResponse struct {
	name, desc string
	example    api.Error
}

// errorResponseTable maps an error status to its shared response.
var errorResponseTable = map[int]errorResponse{
	400: {"BadRequest", "invalid_request: the input is malformed or invalid; `field` names the offending field.",
		api.Error{Code: api.CodeInvalidRequest, Message: "is required", Field: "name"}},
	401: {"Unauthorized", "unauthorized: missing, invalid or expired credentials (or a wrong email or password); " +
		"second_factor_required / second_factor_invalid: the account's second factor is missing from, or wrong in, a sign-in.",
		api.Error{Code: api.CodeUnauthorized, Message: "missing, invalid or expired credentials"}},
	403: {"Forbidden", "forbidden: not allowed, or the account is suspended; plan_limit: the plan's limit is reached; " +
		"email_unverified: the owner must verify their email first; second_factor_enrolment_required: the operator must enable a second factor first.",
		api.Error{Code: api.CodePlanLimit, Message: "the plan's limit is reached"}},
	404: {"NotFound", "not_found: no such resource (or not the caller's).",
		api.Error{Code: api.CodeNotFound, Message: "not found"}},
	409: {"Conflict", "conflict: conflicts with an existing resource; legal_hold: the account is under legal hold; " +
		"mail_unavailable: the server sends no mail.",
		api.Error{Code: api.CodeConflict, Message: "conflicts with an existing resource"}},
	413: {"PayloadTooLarge", "invalid_request: the body is larger than 64 KiB.",
		api.Error{Code: api.CodeInvalidRequest, Message: "body larger than 65536 bytes"}},
	415: {"UnsupportedMediaType", "invalid_request: the body is not application/json in UTF-8.",
		api.Error{Code: api.CodeInvalidRequest, Message: "Content-Type must be application/json"}},
	429: {"TooManyRequests", "rate_limited: too many requests; slow down.",
		api.Error{Code: api.CodeRateLimited, Message: "too many requests; slow down"}},
	500: {"InternalError", "internal: an internal error; nothing about it is returned.",
		api.Error{Code: api.CodeInternal, Message: "internal error"}},
	503: {"StorageUnavailable", "storage_unavailable: the database cannot take writes now (disk full, read-only, gone); try again later.",
		api.Error{Code: api.CodeStorageUnavailable, Message: "storage is unavailable; try again later"}},
}

// errorResponses are the shared error responses, all with the ErrorBody
// schema and an example.
func errorResponses(errBody *openapi3.SchemaRef) openapi3.ResponseBodies {
	out := openapi3.ResponseBodies{}
	for status, e := range errorResponseTable {
		mt := openapi3.NewMediaType().WithSchemaRef(errBody)
		mt.Example = api.ErrorBody{Error: e.example}
		resp := openapi3.NewResponse().
			WithDescription(e.desc).
			WithContent(openapi3.Content{echo.MIMEApplicationJSON: mt})
		if status == http.StatusTooManyRequests {
			resp.Headers = openapi3.Headers{echo.HeaderRetryAfter: &openapi3.HeaderRef{Value: &openapi3.Header{Parameter: openapi3.Parameter{
				Description: "Whole seconds (at least 1) after which the same request is allowed again.",
				Required:    true,
				Schema:      openapi3.NewIntegerSchema().WithMin(1).NewRef(),
			}}}}
		}
		out[e.name] = &openapi3.ResponseRef{Value: resp}
	}
	return out
}

func securitySchemes() openapi3.SecuritySchemes {
	return openapi3.SecuritySchemes{
		schemeOwnerBearer: {Value: &openapi3.SecurityScheme{
			Type: "http", Scheme: "bearer", BearerFormat: "JWT",
			Description: "An owner's sign-in token from signup, login or setup.",
		}},
		schemeOwnerCookie: {Value: &openapi3.SecurityScheme{
			Type: "apiKey", In: "cookie", Name: sessionCookie,
			Description: "The dashboard's HttpOnly session cookie, set by signup, login and setup.",
		}},
		schemeSecretKey: {Value: &openapi3.SecurityScheme{
			Type: "http", Scheme: "bearer", BearerFormat: "tlk_…",
			Description: "An app's secret key (`tlk_…`), for the owner's backend only: the whole provisioning API of its app, " +
				"and minting registration tickets. Never ship it inside an app.",
		}},
		schemePublishableKey: {Value: &openapi3.SecurityScheme{
			Type: "http", Scheme: "bearer", BearerFormat: "tlp_…",
			Description: "An app's publishable key (`tlp_…`), safe to ship inside an app: it registers devices (within the app's " +
				"hourly registration cap) and reads the app's policy and servers, nothing else.",
		}},
		schemeTicket: {Value: &openapi3.SecurityScheme{
			Type: "http", Scheme: "bearer", BearerFormat: "tlt_…",
			Description: "A registration ticket (`tlt_…`) from POST /api/v1/registration-tickets: registers exactly one device, " +
				"once, within minutes.",
		}},
		schemeDeviceToken: {Value: &openapi3.SecurityScheme{
			Type: "http", Scheme: "bearer", BearerFormat: "tld_…",
			Description: "A device's own token (`tld_…`), answered by its registration, rotation or a reset: it reads, configures, " +
				"rotates and deletes that device and lists its servers, nothing else.",
		}},
		schemeNodeCred: {Value: &openapi3.SecurityScheme{
			Type: "http", Scheme: "bearer", BearerFormat: "tln_…",
			Description: "A node credential from enrollment; used only to get node tokens.",
		}},
		schemeNode: {Value: &openapi3.SecurityScheme{
			Type: "http", Scheme: "bearer", BearerFormat: "JWT",
			Description: "A short-lived node token from POST /agent/v1/token.",
		}},
	}
}

// credSchemes names the security scheme of each provisioning credential,
// in the order the document lists them.
var credSchemes = []struct {
	kind   credKind
	scheme string
}{
	{credSecret, schemeSecretKey}, {credPublishable, schemePublishableKey}, {credTicket, schemeTicket}, {credDevice, schemeDeviceToken},
}

func (op operation) requirements() *openapi3.SecurityRequirements {
	switch op.sec {
	case secOwner, secAdmin:
		return &openapi3.SecurityRequirements{{schemeOwnerBearer: []string{}}, {schemeOwnerCookie: []string{}}}
	case secApp:
		reqs := openapi3.SecurityRequirements{}
		for _, cs := range credSchemes {
			if op.creds&cs.kind != 0 {
				reqs = append(reqs, openapi3.SecurityRequirement{cs.scheme: []string{}})
			}
		}
		return &reqs
	case secNodeCred:
		return &openapi3.SecurityRequirements{{schemeNodeCred: []string{}}}
	case secNode:
		return &openapi3.SecurityRequirements{{schemeNode: []string{}}}
	default:
		return &openapi3.SecurityRequirements{}
	}
}

var pathParamRE = regexp.MustCompile(`\{([a-z_]+)\}`)

// pathParams returns the operation's path parameters.
func (op operation) pathParams() []string {
	var out []string
	for _, m := range pathParamRE.FindAllStringSubmatch(op.path, -1) {
		out = append(out, m[1])
	}
	return out
}

// errorStatuses returns the documented error statuses: the ones the body,
// parameters and security imply, and op.errs.
func (op operation) errorStatuses() []int {
	if op.raw {
		return nil
	}
	out := []int{http.StatusInternalServerError, http.StatusServiceUnavailable}
	if op.body != nil {
		out = append(out, 400, 413, 415)
	}
	if len(op.query) > 0 {
		out = append(out, 400)
	}
	if len(op.pathParams()) > 0 {
		out = append(out, 404)
	}
	switch op.sec {
	case secOwner, secAdmin:
		out = append(out, 401, 403)
	case secApp:
		out = append(out, 401, 403, 429)
	case secNodeCred, secNode:
		out = append(out, 401)
	}
	out = append(out, op.errs...)
	slices.Sort(out)
	return slices.Compact(out)
}

// build turns the table row into an operation.
func (op operation) build(g *schemaGen) (*openapi3.Operation, error) {
	o := &openapi3.Operation{
		OperationID: op.id,
		Summary:     op.summary,
		Description: op.desc,
		Tags:        []string{op.tag},
		Security:    op.requirements(),
		Responses:   openapi3.NewResponses(),
	}
	if op.sec == secAdmin {
		o.Description = joinText(o.Description, "Operators only (role admin); other owners get 403 forbidden.")
		o.Extensions = map[string]any{"x-traceless-role": "admin"}
	}
	if op.sec == secApp {
		var names []string
		for _, cs := range credSchemes {
			if op.creds&cs.kind != 0 {
				names = append(names, cs.scheme)
			}
		}
		o.Extensions = map[string]any{"x-traceless-credentials": names}
		o.Description = joinText(o.Description, "Other provisioning credentials get 403 forbidden.")
		if op.creds&credDevice != 0 && len(op.pathParams()) > 0 {
			o.Description = joinText(o.Description, "A device token may name its own device only; another device is 404.")
		}
	}
	for _, name := range op.pathParams() {
		desc, ok := pathParamDesc[name]
		if !ok {
			return nil, fmt.Errorf("path parameter %q has no description", name)
		}
		p := openapi3.NewPathParameter(name).WithDescription(desc).WithSchema(openapi3.NewStringSchema())
		o.Parameters = append(o.Parameters, &openapi3.ParameterRef{Value: p})
	}
	for _, p := range op.query {
		o.Parameters = append(o.Parameters, &openapi3.ParameterRef{Value: p})
	}
	switch {
	case op.body != nil:
		if !isRequestType(reflect.TypeOf(op.body)) {
			return nil, fmt.Errorf("request body %T is not in requestRequired", op.body)
		}
		ref, err := g.ref(op.body)
		if err != nil {
			return nil, err
		}
		o.RequestBody = &openapi3.RequestBodyRef{Value: openapi3.NewRequestBody().WithRequired(!op.optionalBody).WithJSONSchemaRef(ref)}
	case op.rawJSON != nil:
		o.RequestBody = &openapi3.RequestBodyRef{Value: openapi3.NewRequestBody().WithRequired(true).WithJSONSchema(op.rawJSON)}
	case op.form != nil:
		o.RequestBody = &openapi3.RequestBodyRef{Value: openapi3.NewRequestBody().WithRequired(true).
			WithContent(openapi3.NewContentWithSchema(op.form, []string{"application/x-www-form-urlencoded", "multipart/form-data"}))}
	}
	for _, r := range op.replies {
		resp, err := r.build(g)
		if err != nil {
			return nil, err
		}
		o.Responses.Set(strconv.Itoa(r.status), &openapi3.ResponseRef{Value: resp})
	}
	for _, status := range op.errorStatuses() {
		if o.Responses.Status(status) != nil {
			continue // the operation documents its own
		}
		e, ok := errorResponseTable[status]
		if !ok {
			return nil, fmt.Errorf("no shared response for status %d", status)
		}
		o.Responses.Set(strconv.Itoa(status), &openapi3.ResponseRef{Ref: "#/components/responses/" + e.name})
	}
	return o, nil
}

// build turns a reply into a response.
func (r reply) build(g *schemaGen) (*openapi3.Response, error) {
	desc := r.desc
	if desc == "" {
		desc = http.StatusText(r.status)
	}
	resp := openapi3.NewResponse().WithDescription(desc)
	switch {
	case r.body != nil:
		ref, err := g.ref(r.body)
		if err != nil {
			return nil, err
		}
		resp.Content = openapi3.NewContentWithJSONSchemaRef(ref)
	case r.media != nil:
		resp.Content = openapi3.Content{}
		for typ, schema := range r.media {
			resp.Content[typ] = openapi3.NewMediaType().WithSchema(schema)
		}
	}
	headers := map[string]string{}
	for k, v := range r.headers {
		headers[k] = v
	}
	if r.cookie {
		headers["Set-Cookie"] = "Sets (or, on sign-out, clears) the HttpOnly `" + sessionCookie + "` cookie."
	}
	if len(headers) > 0 {
		resp.Headers = openapi3.Headers{}
		for name, desc := range headers {
			resp.Headers[name] = &openapi3.HeaderRef{Value: &openapi3.Header{Parameter: openapi3.Parameter{
				Description: desc, Schema: openapi3.NewStringSchema().NewRef(),
			}}}
		}
	}
	return resp, nil
}

func joinText(a, b string) string {
	if a == "" {
		return b
	}
	return a + " " + b
}
