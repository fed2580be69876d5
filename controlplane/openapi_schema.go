package controlplane

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3gen"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// The JSON schemas of the OpenAPI document are generated from the wire
// types in controlplane/api, so the document cannot drift from the Go
// types. Every struct becomes a component named after its Go type.
//
// What reflection cannot know is added here, by type:
//   - response bodies: every field without omitempty/omitzero is required,
//     because encoding/json always writes it;
//   - request bodies: the fields the server rejects when missing are
//     required (requestRequired), unknown fields are forbidden (the server
//     decodes with DisallowUnknownFields) and arrays may be null;
//   - a few enums and patterns (fieldRules).

// requestRequired lists, per request body type, the fields the server
// cannot do without. A type missing here is not a request body; a field
// that does not exist fails the build (and so the tests).
var requestRequired = map[reflect.Type][]string{
	reflect.TypeFor[api.Credentials]():     {"email", "password"},
	reflect.TypeFor[api.Setup]():           {"token", "email", "password"},
	reflect.TypeFor[api.PlanChange]():      {"plan"},
	reflect.TypeFor[api.AppInput]():        {"name"},
	reflect.TypeFor[api.AppUpdate]():       nil,
	reflect.TypeFor[api.PolicyAccept]():    {"version"},
	reflect.TypeFor[api.APIKeyInput]():     {"name"},
	reflect.TypeFor[api.KeyReplaceInput](): {"name", "grace_until"},
	reflect.TypeFor[api.TicketInput]():     nil,
	reflect.TypeFor[api.DeviceInput]():     {"public_key"},
	reflect.TypeFor[api.RotateInput]():     {"public_key"},
	reflect.TypeFor[api.PlanInput]():       {"slug", "name", "currency"},
	reflect.TypeFor[api.OwnerUpdate]():     nil,
	reflect.TypeFor[api.PoolInput]():       {"name", "region", "country", "city"},
	reflect.TypeFor[api.NodeUpdate]():      {"enabled"},
	reflect.TypeFor[api.EnrollRequest]():   {"token", "name", "public_key", "endpoint"},
	reflect.TypeFor[api.NodeStatus]():      nil,

	// Alerts.
	reflect.TypeFor[api.AlertSettingsInput](): nil,

	// Sign-in.
	reflect.TypeFor[api.Login]():                {"email", "password"},
	reflect.TypeFor[api.PasswordChange]():       {"current_password", "new_password"},
	reflect.TypeFor[api.PasswordResetRequest](): {"email"},
	reflect.TypeFor[api.PasswordResetConfirm](): {"token", "new_password"},
	reflect.TypeFor[api.EmailVerification]():    {"token"},
	reflect.TypeFor[api.TOTPCode]():             {"code"},
	reflect.TypeFor[api.TOTPDisable]():          {"password", "code"},
}

// isRequestType reports whether t is a request body type.
func isRequestType(t reflect.Type) bool {
	_, ok := requestRequired[t]
	return ok
}

// fieldRule refines one generated property.
type fieldRule func(*openapi3.Schema)

func enum(values ...string) fieldRule {
	return func(s *openapi3.Schema) {
		for _, v := range values {
			s.Enum = append(s.Enum, v)
		}
	}
}

func describe(text string) fieldRule { return func(s *openapi3.Schema) { s.Description = text } }

func pattern(p string) fieldRule { return func(s *openapi3.Schema) { s.Pattern = p } }

func minMax(lo, hi int) fieldRule {
	return func(s *openapi3.Schema) { s.WithMin(float64(lo)).WithMax(float64(hi)) }
}

// exportTableValues lets the column values of the export's rows (tables:
// {name: [{column: value}]}) be null, as they are for unset columns.
func exportTableValues(s *openapi3.Schema) {
	rows := s.AdditionalProperties.Schema
	if rows == nil || rows.Value == nil || rows.Value.Items == nil || rows.Value.Items.Value == nil {
		panic("openapi: the export's tables are not a map of row arrays")
	}
	row := rows.Value.Items.Value
	value := openapi3.NewAnyOfSchema(openapi3.NewStringSchema().WithNullable(), openapi3.NewFloat64Schema(), openapi3.NewBoolSchema())
	value.Description = "A column's value: a string (timestamps in RFC 3339), a number, a boolean, or null."
	row.AdditionalProperties = openapi3.AdditionalProperties{Schema: value.NewRef()}
}

// wgKeyPattern is a WireGuard key: standard base64 of 32 bytes.
const wgKeyPattern = `^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$`

// fieldRules refine generated properties, by type and JSON field name.
var fieldRules = map[reflect.Type]map[string][]fieldRule{
	reflect.TypeFor[api.Error](): {
		"code": {enum(api.CodeInvalidRequest, api.CodeUnauthorized, api.CodeForbidden, api.CodeNotFound,
			api.CodeConflict, api.CodePlanLimit, api.CodeRateLimited, api.CodeLegalHold, api.CodeInternal,
			api.CodeStorageUnavailable, api.CodeSSORequired, api.CodeProviderUnavailable, api.CodePaymentRequired, api.CodeBillingUnavailable,
			api.CodeSubscriptionLive),
			describe("Stable error code; clients switch on it. The message may change.")},
		"field": {describe("The offending input field, for invalid_request.")},
	},
	reflect.TypeFor[api.Owner](): {
		"role":       {enum(store.RoleOwner, store.RoleAdmin)},
		"status":     {enum(store.StatusActive, store.StatusSuspended)},
		"plan":       {describe("The slug of the owner's plan.")},
		"legal_hold": {describe("The reason of a legal hold, or null.")},
	},
	reflect.TypeFor[api.OwnerUpdate](): {
		"status":     {enum(store.StatusActive, store.StatusSuspended)},
		"plan":       {describe("A plan slug; retired plans are allowed here.")},
		"legal_hold": {describe("A string sets a legal hold with that reason; null releases it; absent leaves it.")},
	},
	reflect.TypeFor[api.AuthResponse](): {
		"token": {describe("The sign-in token (a JWT); send it as `Authorization: Bearer <token>`.")},
	},
	reflect.TypeFor[api.APIKeyCreated](): {
		"key": {pattern(`^tl[kp]_[A-Za-z0-9_-]{43}$`),
			describe("The API key (`tlk_…` secret, `tlp_…` publishable). It is shown only in this response.")},
		"prefix":     {describe("The first characters of the key, to recognise it in lists.")},
		"kind":       {enum(api.KeySecret, api.KeyPublishable)},
		"expires_at": {describe("When the key stops working, or null for never.")},
	},
	reflect.TypeFor[api.APIKey](): {
		"prefix":      {describe("The first characters of the key, to recognise it in lists.")},
		"kind":        {enum(api.KeySecret, api.KeyPublishable)},
		"expires_at":  {describe("When the key stops working (its own expiry or the end of its grace period), or null for never.")},
		"expired":     {describe("Whether the key no longer works.")},
		"replaced_by": {describe("The key that replaced this one, while this one runs out its grace period; null otherwise.")},
	},
	reflect.TypeFor[api.APIKeyInput](): {
		"name":       {describe("Unique among the app's keys (1-100 printable characters).")},
		"kind":       {enum(api.KeySecret, api.KeyPublishable), describe("secret (the default) or publishable.")},
		"expires_at": {describe("When the key stops working; in the future. Absent: never.")},
	},
	reflect.TypeFor[api.KeyReplaceInput](): {
		"name":        {describe("The new key's name, unique among the app's keys.")},
		"grace_until": {describe("Until when the old key keeps working: from now (ends it at once) to 366 days ahead.")},
		"expires_at":  {describe("When the new key stops working; in the future. Absent: never.")},
	},
	reflect.TypeFor[api.TicketInput](): {
		"external_ref": {describe("Binds the ticket: the device registered with it gets this reference (1-128 printable characters).")},
		"ttl_seconds":  {minMax(minTicketTTL, maxTicketTTL), describe("How long the unused ticket works, in seconds (default 600).")},
	},
	reflect.TypeFor[api.RegistrationTicket](): {
		"ticket":       {pattern(`^tlt_[A-Za-z0-9_-]{43}$`), describe("The ticket, shown only in this response: one registration, once.")},
		"expires_at":   {describe("When the unused ticket stops working (at most 10 minutes ahead).")},
		"external_ref": {describe("The reference the ticket is bound to, or null.")},
	},
	reflect.TypeFor[api.DeviceToken](): {
		"device_token": {pattern(`^tld_[A-Za-z0-9_-]{43}$`), describe("The device's new token, shown only in this response.")},
	},
	reflect.TypeFor[api.DeviceCreated](): {
		"device_token": {pattern(`^tld_[A-Za-z0-9_-]{43}$`),
			describe("The device's own token, shown only in this response: it reads, configures, rotates and deletes this device and lists its servers. A rotation replaces it.")},
	},
	reflect.TypeFor[api.App](): {
		"registration_cap":      {describe("Registrations per hour allowed with the app's publishable keys, per control-plane replica; 0: no cap.")},
		"registration_cap_hits": {describe("How many registrations the cap refused (a count, not who or when).")},
	},
	reflect.TypeFor[api.AppUpdate](): {
		"registration_cap": {minMax(0, store.MaxRegistrationCap), describe("Registrations per hour allowed with the app's publishable keys; 0 removes the cap.")},
	},
	reflect.TypeFor[api.Device](): {
		"public_key":    {pattern(wgKeyPattern)},
		"external_ref":  {describe("The owner's own reference for the device, or null.")},
		"rotation_days": {describe("The app's key rotation policy in days (0: none); given with one device's record, absent in lists.")},
	},
	reflect.TypeFor[api.DeviceInput](): {
		"public_key":   {describe("The device's WireGuard public key (standard base64, 44 characters).")},
		"external_ref": {describe("The owner's own reference for the device (1-128 printable characters).")},
	},
	reflect.TypeFor[api.RotateInput](): {
		"public_key": {describe("The device's new WireGuard public key.")},
	},
	reflect.TypeFor[api.DeviceList](): {
		"next_cursor": {describe("Pass as ?cursor= for the next page; empty on the last page.")},
	},
	reflect.TypeFor[api.OwnerList](): {
		"next_cursor": {describe("Pass as ?cursor= for the next page; empty on the last page.")},
	},
	reflect.TypeFor[api.Export](): {
		"tables": {describe("Every stored row about the owner, by table; a column's value is null where nothing is stored (a legal hold not set, for one)."),
			exportTableValues},
	},
	reflect.TypeFor[api.Pool](): {
		"owner_id":   {describe("The owner of a dedicated pool; null for a shared pool.")},
		"plans":      {describe("Slugs of the plans that include a shared pool (retired plans too); empty for a dedicated pool, which serves its owner alone.")},
		"in_no_plan": {describe("True for a shared pool that no plan includes: its nodes serve nobody until a plan includes it.")},
	},
	reflect.TypeFor[api.PoolInput](): {
		"plans": {describe("Operators only: the plans (slugs or IDs) that include the new shared pool. Without it the pool serves nobody until a plan includes it.")},
	},
	reflect.TypeFor[api.ServerList](): {
		"explanation": {describe("Why `servers` is empty; absent when it is not.")},
	},
	reflect.TypeFor[api.Explanation](): {
		"code":    {enum(api.NoServersPlanIncludesNoPool, api.NoServersNoEnabledNode), describe("Stable reason; clients switch on it.")},
		"message": {describe("The reason for people; it may change.")},
	},
	reflect.TypeFor[api.Server](): {
		"public_key": {pattern(wgKeyPattern)},
		"online":     {describe("Whether the node reported its status recently.")},
	},
}

// nullableStringType is decoded from a JSON string or null; it has no JSON
// tags, so reflection alone would make it an empty object.
var nullableStringType = reflect.TypeFor[api.NullableString]()

// schemaGen generates component schemas into schemas.
type schemaGen struct {
	gen     *openapi3gen.Generator
	schemas openapi3.Schemas
}

func newSchemaGen() *schemaGen {
	g := &schemaGen{schemas: openapi3.Schemas{}}
	g.gen = openapi3gen.NewGenerator(
		openapi3gen.CreateComponentSchemas(openapi3gen.ExportComponentSchemasOptions{
			ExportComponentSchemas: true,
			ExportTopLevelSchema:   true,
		}),
		// NullableString is inlined (an empty name is never a component), so
		// its nullable flag survives.
		openapi3gen.CreateTypeNameGenerator(func(t reflect.Type) string {
			if t == nullableStringType {
				return ""
			}
			return t.Name()
		}),
		openapi3gen.SchemaCustomizer(customizeSchema),
	)
	return g
}

// ref returns a reference to the component schema of v's type, generating
// it (and the types it uses) on first use.
func (g *schemaGen) ref(v any) (*openapi3.SchemaRef, error) {
	t := reflect.TypeOf(v)
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("openapi: %v is not a struct", t)
	}
	r, err := g.gen.NewSchemaRefForValue(v, g.schemas)
	if err != nil {
		return nil, fmt.Errorf("openapi: schema of %v: %w", t, err)
	}
	if r.Ref == "" {
		return nil, fmt.Errorf("openapi: %v did not become a component", t)
	}
	return openapi3.NewSchemaRef(r.Ref, nil), nil
}

// customizeSchema is called for every generated schema.
func customizeSchema(_ string, t reflect.Type, _ reflect.StructTag, s *openapi3.Schema) error {
	if t == nullableStringType {
		*s = openapi3.Schema{Type: &openapi3.Types{openapi3.TypeString}, Nullable: true}
		return nil
	}
	if t.Kind() != reflect.Struct || s.Properties == nil {
		return nil
	}
	if isRequestType(t) {
		s.Required = requestRequired[t]
		s.AdditionalProperties = openapi3.AdditionalProperties{Has: openapi3.Ptr(false)}
		for _, p := range s.Properties {
			if p.Value != nil && p.Value.Type.Is(openapi3.TypeArray) {
				p.Value.Nullable = true
			}
		}
	} else {
		s.Required = alwaysWritten(t)
	}
	for _, name := range s.Required {
		if s.Properties[name] == nil {
			return fmt.Errorf("openapi: %v has no JSON field %q", t, name)
		}
	}
	// A pointer to a struct is a $ref, and OpenAPI 3.0 ignores whatever
	// stands beside a $ref: such a field may be null (encoding/json writes
	// null for nil, unless omitempty leaves it out), so it becomes
	// {nullable, allOf: [$ref]}. Pointers to other types are nullable
	// already.
	for name, f := range jsonFields(t) {
		_, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		omitted := strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero")
		if p := s.Properties[name]; p != nil && isComponentRef(p) && f.Type.Kind() == reflect.Pointer && !omitted {
			s.Properties[name] = &openapi3.SchemaRef{Value: &openapi3.Schema{Type: &openapi3.Types{openapi3.TypeObject},
				Nullable: true, AllOf: openapi3.SchemaRefs{openapi3.NewSchemaRef(p.Ref, nil)}}}
		}
	}
	for _, rt := range withEmbedded(t) {
		for name, rules := range fieldRules[rt] {
			p := s.Properties[name]
			if p == nil || p.Value == nil {
				return fmt.Errorf("openapi: rule for %v.%s: no such JSON field", rt, name)
			}
			if isComponentRef(p) {
				// A rule refines this field, not the component it refers
				// to (which other fields share).
				p = &openapi3.SchemaRef{Value: &openapi3.Schema{AllOf: openapi3.SchemaRefs{openapi3.NewSchemaRef(p.Ref, nil)}}}
				s.Properties[name] = p
			}
			for _, rule := range rules {
				rule(p.Value)
			}
		}
	}
	return nil
}

// isComponentRef reports whether p refers to a component schema (the
// generator also names primitive types in Ref, which do not survive).
func isComponentRef(p *openapi3.SchemaRef) bool {
	return strings.HasPrefix(p.Ref, "#/components/schemas/")
}

// jsonFields returns t's exported fields by JSON name, embedded structs
// without a tag flattened, as encoding/json does.
func jsonFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag, hasTag := f.Tag.Lookup("json")
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && !hasTag && f.Type.Kind() == reflect.Struct {
			for n, ef := range jsonFields(f.Type) {
				out[n] = ef
			}
			continue
		}
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f
	}
	return out
}

// withEmbedded returns t and the structs it embeds without a JSON tag,
// whose fields encoding/json flattens into t's.
func withEmbedded(t reflect.Type) []reflect.Type {
	out := []reflect.Type{t}
	for i := range t.NumField() {
		f := t.Field(i)
		if _, hasTag := f.Tag.Lookup("json"); f.Anonymous && !hasTag && f.Type.Kind() == reflect.Struct {
			out = append(out, withEmbedded(f.Type)...)
		}
	}
	return out
}

// alwaysWritten returns the JSON names of t's fields that encoding/json
// always writes: those without "-", omitempty or omitzero. Embedded
// structs without a tag are flattened, as encoding/json does.
func alwaysWritten(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag, hasTag := f.Tag.Lookup("json")
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && !hasTag && f.Type.Kind() == reflect.Struct {
			out = append(out, alwaysWritten(f.Type)...)
			continue
		}
		if !f.IsExported() || name == "-" || strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero") {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	return out
}
