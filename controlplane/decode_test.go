package controlplane

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// badInputCase is a request that must be refused with want and change
// nothing.
type badInputCase struct {
	name   string
	method string
	path   string // "{owner}" is replaced by the target owner's ID
	auth   string // "", "owner" or "admin"
	ct     string // Content-Type; application/json when empty
	body   string
	want   wantErr
}

func bad(field string) wantErr {
	return wantErr{Status: http.StatusBadRequest, Code: api.CodeInvalidRequest, Field: field}
}

var (
	tooLarge     = wantErr{Status: http.StatusRequestEntityTooLarge, Code: api.CodeInvalidRequest}
	unsupported  = wantErr{Status: http.StatusUnsupportedMediaType, Code: api.CodeInvalidRequest}
	unauthorized = wantErr{Status: http.StatusUnauthorized, Code: api.CodeUnauthorized}
	mib          = strings.Repeat("a", 1<<20)
)

// decodingCases are the failures every JSON route shares, for a route
// whose valid body is valid.
func decodingCases(method, path, auth, valid string) []badInputCase {
	c := func(name, ct, body string, want wantErr) badInputCase {
		return badInputCase{name: name, method: method, path: path, auth: auth, ct: ct, body: body, want: want}
	}
	return []badInputCase{
		c("malformed JSON", "", `{"email" "x"}`, bad("")),
		c("single quotes", "", `{'email': 'x'}`, bad("")),
		c("truncated JSON", "", valid[:len(valid)/2], bad("")),
		c("truncated after brace", "", `{`, bad("")),
		c("empty body", "", "", bad("")),
		c("blank body", "", " \n\t ", bad("")),
		c("array", "", "["+valid+"]", bad("")),
		c("string", "", `"hello"`, bad("")),
		c("null", "", `null`, bad("")),
		c("number", "", `42`, bad("")),
		c("trailing object", "", valid+` {}`, bad("")),
		c("trailing garbage", "", valid+`x`, bad("")),
		c("two objects", "", valid+valid, bad("")),
		c("unknown field", "", `{"not_a_field":1}`, bad("not_a_field")),
		c("invalid UTF-8", "", "{\"x\":\"\xff\xfe\"}", bad("")),
		c("UTF-8 BOM", "", "\ufeff"+valid, bad("")),
		c("1 MiB body", "", `{"email":"`+mib+`"}`, tooLarge),
		c("text/plain", "text/plain", valid, unsupported),
		c("form", "application/x-www-form-urlencoded", "email=a%40example.com", unsupported),
		c("no content type", "-", valid, unsupported),
		c("charset latin1", "application/json; charset=latin1", valid, unsupported),
		c("charset iso-8859-1", "application/json; charset=ISO-8859-1", valid, unsupported),
		c("json suffix type", "application/merge-patch+json", valid, unsupported),
		c("malformed content type", "application/json; charset", valid, unsupported),
	}
}

func signupCase(name, body string, want wantErr) badInputCase {
	return badInputCase{name: name, method: http.MethodPost, path: "/api/v1/auth/signup", body: body, want: want}
}

func TestBadInput(t *testing.T) {
	const validCreds = `{"email":"valid.owner@example.com","password":"correct horse battery staple"}`
	var cases []badInputCase
	prefix := func(p string, cs []badInputCase) []badInputCase {
		for i := range cs {
			cs[i].name = p + "/" + cs[i].name
		}
		return cs
	}
	cases = append(cases, prefix("signup", decodingCases(http.MethodPost, "/api/v1/auth/signup", "", validCreds))...)
	cases = append(cases, prefix("login", decodingCases(http.MethodPost, "/api/v1/auth/login", "", validCreds))...)
	cases = append(cases, prefix("me/plan", decodingCases(http.MethodPut, "/api/v1/me/plan", "owner", `{"plan":"pro"}`))...)
	cases = append(cases, prefix("admin/plans", decodingCases(http.MethodPost, "/api/v1/admin/plans", "admin",
		`{"slug":"new","name":"New","max_apps":1,"max_devices":1,"max_own_nodes":0,"price_cents":0,"currency":"EUR"}`))...)
	cases = append(cases, prefix("admin/owners", decodingCases(http.MethodPut, "/api/v1/admin/owners/{owner}", "admin", `{"status":"suspended"}`))...)
	cases = append(cases, prefix("password-reset", decodingCases(http.MethodPost, "/api/v1/auth/password-reset", "", `{"email":"jane.doe@example.com"}`))...)
	cases = append(cases, prefix("password-reset/confirm", decodingCases(http.MethodPost, "/api/v1/auth/password-reset/confirm", "",
		`{"token":"`+strings.Repeat("t", 43)+`","new_password":"a brand new passphrase"}`))...)
	cases = append(cases, prefix("verify-email", decodingCases(http.MethodPost, "/api/v1/auth/verify-email", "", `{"token":"`+strings.Repeat("t", 43)+`"}`))...)
	cases = append(cases, prefix("2fa/confirm", decodingCases(http.MethodPost, "/api/v1/me/2fa/confirm", "owner", `{"code":"123456"}`))...)
	cases = append(cases, prefix("2fa/disable", decodingCases(http.MethodDelete, "/api/v1/me/2fa", "owner", `{"password":"correct horse battery staple","code":"123456"}`))...)
	cases = append(cases, prefix("me/password", decodingCases(http.MethodPut, "/api/v1/me/password", "owner",
		`{"current_password":"correct horse battery staple","new_password":"a brand new passphrase"}`))...)

	cases = append(cases, prefix("me/billing/checkout", decodingCases(http.MethodPost, "/api/v1/me/billing/checkout", "owner", `{"plan":"pro"}`))...)
	cases = append(cases, prefix("admin/billing/comp", decodingCases(http.MethodPut, "/api/v1/admin/owners/{owner}/billing/comp", "admin",
		`{"plan":"pro","reason":"partner"}`))...)
	comp := func(name, body string, want wantErr) badInputCase {
		return badInputCase{name: "admin/billing/comp/" + name, method: http.MethodPut, path: "/api/v1/admin/owners/{owner}/billing/comp", auth: "admin", body: body, want: want}
	}
	cases = append(cases,
		comp("no fields", `{}`, bad("plan")),
		comp("no reason", `{"plan":"pro"}`, bad("reason")),
		comp("empty reason", `{"plan":"pro","reason":""}`, bad("reason")),
		comp("padded reason", `{"plan":"pro","reason":" partner"}`, bad("reason")),
		comp("bidi in reason", "{\"plan\":\"pro\",\"reason\":\"part\u202ener\"}", bad("reason")),
		comp("reason of 501", `{"plan":"pro","reason":"`+strings.Repeat("r", 501)+`"}`, bad("reason")),
		comp("reason is a number", `{"plan":"pro","reason":5}`, bad("reason")),
		comp("unknown plan", `{"plan":"platinum","reason":"partner"}`, bad("plan")),
		comp("plan is an array", `{"plan":["pro"],"reason":"partner"}`, bad("plan")),
		comp("extra field", `{"plan":"pro","reason":"partner","price_cents":0}`, bad("price_cents")),
		badInputCase{name: "me/billing/checkout/plan is a number", method: http.MethodPost, path: "/api/v1/me/billing/checkout", auth: "owner", body: `{"plan":1}`, want: bad("plan")},
		badInputCase{name: "me/billing/checkout/extra field", method: http.MethodPost, path: "/api/v1/me/billing/checkout", auth: "owner", body: `{"plan":"pro","customer":"cus_1"}`, want: bad("customer")},
		badInputCase{name: "me/billing/checkout/no provider", method: http.MethodPost, path: "/api/v1/me/billing/checkout", auth: "owner", body: `{"plan":"pro"}`, want: wantErr{http.StatusNotFound, api.CodeNotFound, ""}},
	)

	const pw = `"correct horse battery staple"`
	email := func(e string) string { return `{"email":"` + e + `","password":` + pw + `}` }
	password := func(p string) string { return `{"email":"jane.doe@example.com","password":"` + p + `"}` }
	cases = append(cases,
		signupCase("mass assignment of role", `{"email":"a@example.com","password":`+pw+`,"role":"admin"}`, bad("role")),
		signupCase("mass assignment of status", `{"email":"a@example.com","password":`+pw+`,"status":"active"}`, bad("status")),
		signupCase("email is a number", `{"email":5,"password":`+pw+`}`, bad("email")),
		signupCase("email is an object", `{"email":{"a":1},"password":`+pw+`}`, bad("email")),
		signupCase("password is a bool", `{"email":"a@example.com","password":true}`, bad("password")),
		signupCase("password is an array", `{"email":"a@example.com","password":["x"]}`, bad("password")),
		signupCase("no fields", `{}`, bad("email")),
		signupCase("email missing", `{"password":`+pw+`}`, bad("email")),
		signupCase("bidi override in email", email("admin\u202e@example.com"), bad("email")),
		signupCase("bidi override in domain", email("admin@exa\u202emple.com"), bad("email")),
		signupCase("zero-width space in email", email("ad\u200bmin@example.com"), bad("email")),
		signupCase("full-width at sign", email("admin\uff20example.com"), bad("email")),
		signupCase("NUL in email", email(`admin\u0000@example.com`), bad("email")),
		signupCase("newline in email", email(`admin@example.com\nBcc: x@example.com`), bad("email")),
		signupCase("non-ASCII letter", email("jos\u00e9@example.com"), bad("email")),
		signupCase("Cyrillic a", email("\u0430dmin@example.com"), bad("email")),
		signupCase("no at sign", email("plainaddress"), bad("email")),
		signupCase("no domain dot", email("a@localhost"), bad("email")),
		signupCase("empty local part", email("@example.com"), bad("email")),
		signupCase("leading dot domain", email("a@.example.com"), bad("email")),
		signupCase("trailing dot domain", email("a@example.com."), bad("email")),
		signupCase("two at signs", email("a@b@example.com"), bad("email")),
		signupCase("quoted at sign", email(`\"a@b\"@example.com`), bad("email")),
		signupCase("display name", email("Jane <jane@example.com>"), bad("email")),
		signupCase("comment", email("jane@example.com(x)"), bad("email")),
		signupCase("address literal", email("jane@[192.0.2.1]"), bad("email")),
		signupCase("space inside", email("ja ne@example.com"), bad("email")),
		signupCase("local part of 65", email(strings.Repeat("a", 65)+"@example.com"), bad("email")),
		signupCase("address of 255", email("a@"+strings.Repeat("b", 241)+".example.com"), bad("email")),
		signupCase("short password", password("Ab1!xyz"), bad("password")),
		signupCase("empty password", password(""), bad("password")),
		signupCase("common password", password("password123"), bad("password")),
		signupCase("common password, other case", password("PassWord123"), bad("password")),
		signupCase("all one char", password("aaaaaaaaaaaaaaaa"), bad("password")),
		signupCase("two chars", password("abababababab"), bad("password")),
		signupCase("contains local part", password("my-jane.doe-password"), bad("password")),
		signupCase("contains local part, other case", password("xx JANE.DOE xx 42"), bad("password")),
		signupCase("300-byte password", password(strings.Repeat("abcdefghij", 30)), bad("password")),
		signupCase("control character", password(`correct\u0001horse battery`), bad("password")),
		signupCase("DEL character", password("correct\u007fhorse battery"), bad("password")),
		signupCase("nine characters", password("abcdefgh9"), bad("password")),

		badInputCase{name: "login/weak password is just wrong", method: http.MethodPost, path: "/api/v1/auth/login", body: `{"email":"a@example.com","password":"x"}`, want: unauthorized},
		badInputCase{name: "login/300-byte password", method: http.MethodPost, path: "/api/v1/auth/login", body: password(strings.Repeat("x", 300)), want: unauthorized},
		badInputCase{name: "login/bidi email", method: http.MethodPost, path: "/api/v1/auth/login", body: email("victim\u202e@example.com"), want: unauthorized},
		badInputCase{name: "login/email is a number", method: http.MethodPost, path: "/api/v1/auth/login", body: `{"email":1,"password":"x"}`, want: bad("email")},

		badInputCase{name: "me/plan/missing plan", method: http.MethodPut, path: "/api/v1/me/plan", auth: "owner", body: `{}`, want: bad("plan")},
		badInputCase{name: "me/plan/empty plan", method: http.MethodPut, path: "/api/v1/me/plan", auth: "owner", body: `{"plan":""}`, want: bad("plan")},
		badInputCase{name: "me/plan/plan is a number", method: http.MethodPut, path: "/api/v1/me/plan", auth: "owner", body: `{"plan":2}`, want: bad("plan")},
		badInputCase{name: "me/plan/unknown plan", method: http.MethodPut, path: "/api/v1/me/plan", auth: "owner", body: `{"plan":"platinum"}`, want: bad("plan")},
		badInputCase{name: "me/plan/retired plan", method: http.MethodPut, path: "/api/v1/me/plan", auth: "owner", body: `{"plan":"legacy"}`, want: bad("plan")},
		badInputCase{name: "me/plan/bidi in plan", method: http.MethodPut, path: "/api/v1/me/plan", auth: "owner", body: "{\"plan\":\"pro\u202e\"}", want: bad("plan")},
		badInputCase{name: "me/plan/extra field", method: http.MethodPut, path: "/api/v1/me/plan", auth: "owner", body: `{"plan":"pro","price_cents":0}`, want: bad("price_cents")},
	)

	plan := func(fields string) string {
		return `{"slug":"new","name":"New","max_apps":1,"max_devices":1,"max_own_nodes":0,"price_cents":0,"currency":"EUR"` + fields + `}`
	}
	adminPlan := func(name, body string, want wantErr) badInputCase {
		return badInputCase{name: "admin/plans/" + name, method: http.MethodPost, path: "/api/v1/admin/plans", auth: "admin", body: body, want: want}
	}
	cases = append(cases,
		adminPlan("no fields", `{}`, bad("slug")),
		adminPlan("id field", plan(`,"id":"x"`), bad("id")),
		adminPlan("upper-case slug", `{"slug":"New","name":"New","currency":"EUR"}`, bad("slug")),
		adminPlan("slug with space", `{"slug":"a b","name":"New","currency":"EUR"}`, bad("slug")),
		adminPlan("slug of 33", `{"slug":"`+strings.Repeat("a", 33)+`","name":"New","currency":"EUR"}`, bad("slug")),
		adminPlan("empty name", `{"slug":"new","name":"","currency":"EUR"}`, bad("name")),
		adminPlan("padded name", `{"slug":"new","name":" New","currency":"EUR"}`, bad("name")),
		adminPlan("bidi in name", "{\"slug\":\"new\",\"name\":\"Ne\u202ew\",\"currency\":\"EUR\"}", bad("name")),
		adminPlan("zero-width in name", "{\"slug\":\"new\",\"name\":\"Ne\u200bw\",\"currency\":\"EUR\"}", bad("name")),
		adminPlan("NUL in name", `{"slug":"new","name":"Ne\u0000w","currency":"EUR"}`, bad("name")),
		adminPlan("name of 65", `{"slug":"new","name":"`+strings.Repeat("n", 65)+`","currency":"EUR"}`, bad("name")),
		adminPlan("negative max_apps", `{"slug":"new","name":"New","max_apps":-1,"currency":"EUR"}`, bad("max_apps")),
		adminPlan("max_apps is a string", `{"slug":"new","name":"New","max_apps":"1","currency":"EUR"}`, bad("max_apps")),
		adminPlan("max_apps is a float", `{"slug":"new","name":"New","max_apps":1.5,"currency":"EUR"}`, bad("max_apps")),
		adminPlan("max_apps overflows", `{"slug":"new","name":"New","max_apps":1e400,"currency":"EUR"}`, bad("max_apps")),
		adminPlan("max_devices too big", `{"slug":"new","name":"New","max_devices":100000001,"currency":"EUR"}`, bad("max_devices")),
		adminPlan("negative price", `{"slug":"new","name":"New","price_cents":-1,"currency":"EUR"}`, bad("price_cents")),
		adminPlan("lower-case currency", `{"slug":"new","name":"New","currency":"eur"}`, bad("currency")),
		adminPlan("no currency", `{"slug":"new","name":"New"}`, bad("currency")),
		adminPlan("unknown pool", plan(`,"pools":["00000000-0000-4000-8000-000000000000"]`), bad("pools")),
		adminPlan("pools is a string", plan(`,"pools":"x"`), bad("pools")),
		adminPlan("retired is a string", plan(`,"retired":"yes"`), bad("retired")),
		adminPlan("duplicate slug", `{"slug":"free","name":"Free again","currency":"EUR"}`, wantErr{http.StatusConflict, api.CodeConflict, ""}),
	)

	adminOwner := func(name, body string, want wantErr) badInputCase {
		return badInputCase{name: "admin/owners/" + name, method: http.MethodPut, path: "/api/v1/admin/owners/{owner}", auth: "admin", body: body, want: want}
	}
	cases = append(cases,
		adminOwner("unknown status", `{"status":"banned"}`, bad("status")),
		adminOwner("empty status", `{"status":""}`, bad("status")),
		adminOwner("status is a number", `{"status":1}`, bad("status")),
		adminOwner("unknown plan", `{"plan":"platinum"}`, bad("plan")),
		adminOwner("plan is null", `{"plan":null,"status":"nope"}`, bad("status")),
		adminOwner("good plan, bad status", `{"plan":"pro","status":"banned"}`, bad("status")),
		adminOwner("good plan, bad hold", `{"plan":"pro","legal_hold":""}`, bad("legal_hold")),
		adminOwner("empty hold", `{"legal_hold":""}`, bad("legal_hold")),
		adminOwner("hold is a number", `{"legal_hold":5}`, bad("legal_hold")),
		adminOwner("hold is an object", `{"legal_hold":{}}`, bad("legal_hold")),
		adminOwner("bidi in hold", "{\"legal_hold\":\"court \u202eorder\"}", bad("legal_hold")),
		adminOwner("hold of 501", `{"legal_hold":"`+strings.Repeat("h", 501)+`"}`, bad("legal_hold")),
		adminOwner("role", `{"role":"admin"}`, bad("role")),
		adminOwner("email", `{"email":"other@example.com"}`, bad("email")),
		adminOwner("unknown owner", `{"status":"suspended"}`, wantErr{http.StatusNotFound, api.CodeNotFound, ""}),
	)
	for i := range cases {
		if cases[i].name == "admin/owners/unknown owner" {
			cases[i].path = "/api/v1/admin/owners/00000000-0000-4000-8000-000000000000"
		}
	}

	// Sign-in cases last: the password checks count against the target's
	// login limit, which the login cases above must not meet.
	signin := func(name, method, path, auth, body string, want wantErr) badInputCase {
		return badInputCase{name: name, method: method, path: path, auth: auth, body: body, want: want}
	}
	const reset, confirm, verify, chpw = "/api/v1/auth/password-reset", "/api/v1/auth/password-reset/confirm", "/api/v1/auth/verify-email", "/api/v1/me/password"
	cases = append(cases,
		signin("password-reset/no email", "POST", reset, "", `{}`, bad("email")),
		signin("password-reset/email is a number", "POST", reset, "", `{"email":1}`, bad("email")),
		signin("password-reset/bidi email", "POST", reset, "", "{\"email\":\"jane\u202e@example.com\"}", bad("email")),
		signin("password-reset/display name", "POST", reset, "", `{"email":"Jane <jane@example.com>"}`, bad("email")),
		signin("password-reset/header injection", "POST", reset, "", `{"email":"jane@example.com\r\nBcc: x@example.com"}`, bad("email")),
		signin("password-reset/extra field", "POST", reset, "", `{"email":"jane@example.com","password":"x"}`, bad("password")),
		signin("password-reset/no mail on this server", "POST", reset, "", `{"email":"jane.doe@example.com"}`, wantErr{409, api.CodeMailUnavailable, ""}),
		signin("password-reset/confirm/no token", "POST", confirm, "", `{"new_password":"a brand new passphrase"}`, bad("token")),
		signin("password-reset/confirm/unknown token", "POST", confirm, "", `{"token":"abc","new_password":"a brand new passphrase"}`, bad("token")),
		signin("password-reset/confirm/token of 129", "POST", confirm, "", `{"token":"`+strings.Repeat("t", 129)+`","new_password":"a brand new passphrase"}`, bad("token")),
		signin("password-reset/confirm/token is a number", "POST", confirm, "", `{"token":5,"new_password":"a brand new passphrase"}`, bad("token")),
		signin("password-reset/confirm/email field", "POST", confirm, "", `{"token":"abc","new_password":"a brand new passphrase","email":"a@b.cd"}`, bad("email")),
		signin("verify-email/no token", "POST", verify, "", `{}`, bad("token")),
		signin("verify-email/empty token", "POST", verify, "", `{"token":""}`, bad("token")),
		signin("verify-email/NUL token", "POST", verify, "", `{"token":"a\u0000b"}`, bad("token")),
		signin("verify-email/token is an array", "POST", verify, "", `{"token":["x"]}`, bad("token")),
		signin("me/password/wrong current", "PUT", chpw, "owner", `{"current_password":"not my password","new_password":"a brand new passphrase"}`,
			wantErr{403, api.CodeForbidden, "current_password"}),
		signin("me/password/no fields", "PUT", chpw, "owner", `{}`, wantErr{403, api.CodeForbidden, "current_password"}),
		signin("me/password/short new", "PUT", chpw, "owner", `{"current_password":"correct horse battery staple","new_password":"short"}`, bad("new_password")),
		signin("me/password/new holds the email", "PUT", chpw, "owner", `{"current_password":"correct horse battery staple","new_password":"jane.doe is my name"}`, bad("new_password")),
		signin("me/password/same as before", "PUT", chpw, "owner", `{"current_password":"correct horse battery staple","new_password":"correct horse battery staple"}`, bad("new_password")),
		signin("me/password/new is a number", "PUT", chpw, "owner", `{"current_password":"correct horse battery staple","new_password":12}`, bad("new_password")),
		signin("login/code is a number", "POST", "/api/v1/auth/login", "", `{"email":"a@example.com","password":"x","code":123456}`, bad("code")),
		signin("login/code is an array", "POST", "/api/v1/auth/login", "", `{"email":"a@example.com","password":"x","code":["1"]}`, bad("code")),
		signin("login/long code, unknown email", "POST", "/api/v1/auth/login", "", `{"email":"a@example.com","password":"x","code":"`+strings.Repeat("9", 5000)+`"}`, unauthorized),
		signin("login/unknown field", "POST", "/api/v1/auth/login", "", `{"email":"a@example.com","password":"x","totp":"123456"}`, bad("totp")),
		signin("2fa/confirm/nothing to confirm", "POST", "/api/v1/me/2fa/confirm", "owner", `{"code":"123456"}`, wantErr{409, api.CodeConflict, ""}),
		signin("2fa/confirm/code is a number", "POST", "/api/v1/me/2fa/confirm", "owner", `{"code":123456}`, bad("code")),
		signin("2fa/confirm/secret field", "POST", "/api/v1/me/2fa/confirm", "owner", `{"code":"123456","secret":"JBSWY3DP"}`, bad("secret")),
		signin("2fa/disable/not on", "DELETE", "/api/v1/me/2fa", "owner", `{"password":"correct horse battery staple","code":"123456"}`, wantErr{409, api.CodeConflict, ""}),
		signin("2fa/disable/password is a bool", "DELETE", "/api/v1/me/2fa", "owner", `{"password":true,"code":"123456"}`, bad("password")),
		signin("2fa/disable/extra field", "DELETE", "/api/v1/me/2fa", "owner", `{"password":"x","code":"1","role":"admin"}`, bad("role")),
		signin("me/password/role field", "PUT", chpw, "owner", `{"current_password":"correct horse battery staple","new_password":"a brand new passphrase","role":"admin"}`, bad("role")),
	)
	h := newHarness(t)
	admin := h.MustAdmin()
	target := h.MustSignup("jane.doe@example.com", testPassword)
	legacy := h.Do(request{Method: http.MethodPost, Path: "/api/v1/admin/plans", Token: admin.Token,
		Body: api.PlanInput{Slug: "legacy", Name: "Legacy", MaxApps: 1, MaxDevices: 1, Currency: "EUR", Retired: true}})
	legacy.MustStatus(t, http.StatusCreated)

	for _, tc := range cases {
		if strings.HasPrefix(tc.name, "me/password/") {
			h.clock.Advance(12 * time.Second) // each check of the current password spends one of the login limit's tokens
		}
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, h)
			q := request{Method: tc.method, Path: strings.ReplaceAll(tc.path, "{owner}", target.Owner.ID), Body: tc.body, ContentType: tc.ct}
			switch tc.auth {
			case "owner":
				q.Token = target.Token
			case "admin":
				q.Token = admin.Token
			}
			r := h.Serve(q)
			r.MustHaveError(t, tc.want)
			if diff := cmp.Diff(before, snapshot(t, h)); diff != "" {
				t.Errorf("refused request changed the store (-before +after):\n%s", diff)
			}
		})
	}
}

// storeState is everything the refused requests could have changed.
type storeState struct {
	Owners []store.Owner
	Plans  []store.PlanWithPools
}

func snapshot(tb testing.TB, h *harness) storeState {
	tb.Helper()
	owners, err := h.store.ListOwners(context.Background(), "", 10000)
	if err != nil {
		tb.Fatal(err)
	}
	return storeState{Owners: owners, Plans: h.MustPlans()}
}

// TestDecodeJSONAcceptsCharsetUTF8: the controls of the content-type cases.
func TestDecodeJSONAcceptsCharsetUTF8(t *testing.T) {
	h := newHarness(t)
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "application/json;charset=UTF-8", "Application/JSON"} {
		r := h.Serve(request{Method: http.MethodPost, Path: "/api/v1/auth/signup", ContentType: ct, Body: api.Credentials{Email: h.NewEmail(), Password: testPassword}})
		r.MustStatus(t, http.StatusCreated)
	}
}

func TestDecodeBodyErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		want wantErr
	}{
		{"ok", `{"email":"a","password":"b"}`, wantErr{}},
		{"ok with spaces", " \n{\"email\":\"a\"}\n ", wantErr{}},
		{"truncated", `{"email":"a"`, bad("")},
		{"syntax", `{"email":}`, bad("")},
		{"type", `{"email":[]}`, bad("email")},
		{"unknown", `{"emial":"a"}`, bad("emial")},
		{"long unknown field name", `{"` + strings.Repeat("\u00e9", 40) + `":1}`, bad(strings.Repeat("\u00e9", 32))},
		{"deep nesting", `{"x":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`, bad("")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c api.Credentials
			err := decodeBody([]byte(tc.body), &c)
			var got wantErr
			if err != nil {
				var ae *api.Error
				if !errors.As(err, &ae) {
					t.Fatalf("error %v is %T, want *api.Error", err, err)
				}
				got = wantErr{ae.Status, ae.Code, ae.Field}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("decodeBody mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTruncateUTF8(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 5, "abc"},
		{"abcdef", 3, "abc"},
		{"\u00e9\u00e9", 3, "\u00e9"},
		{"a\xffb", 10, "a\ufffdb"},
		{"", 3, ""},
	} {
		if got := truncateUTF8(tc.in, tc.n); got != tc.want {
			t.Errorf("truncateUTF8(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
