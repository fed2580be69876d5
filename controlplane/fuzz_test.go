package controlplane

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// stableCodes are the error codes of the API contract.
var stableCodes = map[string]bool{
	api.CodeInvalidRequest: true, api.CodeUnauthorized: true, api.CodeForbidden: true, api.CodeNotFound: true,
	api.CodeConflict: true, api.CodePlanLimit: true, api.CodeRateLimited: true, api.CodeLegalHold: true, api.CodeInternal: true,
}

// checkClientError fails unless err is nil or a 4xx *api.Error with a
// stable code, a message and a valid-UTF-8 field.
func checkClientError(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var ae *api.Error
	if !errors.As(err, &ae) {
		t.Fatalf("error %v is %T, want *api.Error", err, err)
	}
	if ae.Status < 400 || ae.Status > 499 {
		t.Fatalf("status %d for %v, want 4xx", ae.Status, ae)
	}
	if !stableCodes[ae.Code] {
		t.Fatalf("code %q is not a stable code", ae.Code)
	}
	if ae.Message == "" {
		t.Fatalf("error %q has no message", ae.Code)
	}
	if !utf8.ValidString(ae.Field) || len(ae.Field) > 64 || !utf8.ValidString(ae.Message) {
		t.Fatalf("field %q / message %q is not short valid UTF-8", ae.Field, ae.Message)
	}
	if _, err := json.Marshal(api.ErrorBody{Error: *ae}); err != nil {
		t.Fatalf("error body does not encode: %v", err)
	}
}

func FuzzDecodeBody(f *testing.F) {
	for _, s := range []string{
		``, ` `, `{`, `}`, `{}`, `[]`, `null`, `"x"`, `42`, `{} {}`, `{}x`, `{"email":"a@example.com","password":"pw"}`,
		`{"email":5}`, `{"email":"a","email":"b"}`, `{"EMAIL":"a"}`, `{"unknown":1}`, `{"` + strings.Repeat("\u00e9", 40) + `":1}`,
		`{"slug":"pro","name":"Pro","max_apps":1,"max_devices":1e400,"currency":"EUR","pools":["a",null]}`,
		`{"max_apps":-9223372036854775809}`, `{"pools":{}}`, `{"retired":"true"}`, `{"legal_hold":null}`, `{"legal_hold":5}`,
		"{\"email\":\"\xff\"}", "\ufeff{}", "\u00a0{}", `{"email":"\u0000\ud800"}`, `{"a":` + strings.Repeat("[", 10001) + `}`,
		`{"email":"a"` + strings.Repeat(" ", 100) + `}`, `{"email":"a"}` + "\n", `{"password":"` + strings.Repeat("x", 300) + `"}`,
		"{\"\xc3\":1}", `{"\u00e9\u00e9":1}`,
		`{"name":"k","kind":"publishable","expires_at":"2031-01-01T00:00:00Z"}`, `{"expires_at":"2031-13-01T00:00:00Z"}`,
		`{"expires_at":"+10000-01-01T00:00:00Z"}`, `{"grace_until":null}`, `{"grace_until":""}`, `{"ttl_seconds":1e9}`,
		`{"ttl_seconds":-0}`, `{"external_ref":null}`, `{"registration_cap":9223372036854775808}`, `{"kind":["secret"]}`,
		`{"plan":"pro","reason":"partner"}`, `{"plan":null,"reason":{}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, dst := range []any{&api.Credentials{}, &api.PlanInput{}, &api.OwnerUpdate{}, &api.Setup{}, &api.PlanChange{},
			&api.APIKeyInput{}, &api.KeyReplaceInput{}, &api.TicketInput{}, &api.AppUpdate{}, &api.DeviceInput{},
			&api.CheckoutInput{}, &api.CompInput{}} {
			err := decodeBody(body, dst)
			checkClientError(t, err)
			if err == nil && !json.Valid(body) {
				t.Fatalf("decodeBody accepted invalid JSON %q into %T", body, dst)
			}
		}
	})
}

func FuzzNormalizeEmail(f *testing.F) {
	for _, s := range []string{
		"a@example.com", " A@Example.COM ", "", "@", "a@b", "a@b.c", "a@@b.c", `"a@b"@c.d`, `"a b"@c.d`, "a@[1.2.3.4]",
		"a(b)@c.d", "a@c.d(x)", "<a@c.d>", "N <a@c.d>", "a\u202e@c.d", "a\u200b@c.d", "a\uff20c.d", "a\x00@c.d",
		"\u212a@c.d", "a@c.d.", "a.@c.d", ".a@c.d", "a..b@c.d", strings.Repeat("a", 64) + "@c.d", strings.Repeat("a", 65) + "@c.d",
		"=?utf-8?q?a?=@c.d", "a@xn--bcher-kva.example", "!#$%&'*+/=?^_`{|}~-@c.d",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		e, err := normalizeEmail(raw)
		if err != nil {
			checkClientError(t, err)
			var ae *api.Error
			errors.As(err, &ae)
			if ae.Field != "email" || e != "" {
				t.Fatalf("normalizeEmail(%q) = %q, %v; want field email and no result", raw, e, err)
			}
			return
		}
		if strings.Count(e, "@") != 1 {
			t.Fatalf("normalizeEmail(%q) = %q: not exactly one @", raw, e)
		}
		if e != strings.ToLower(e) || len(e) > 254 {
			t.Fatalf("normalizeEmail(%q) = %q: not lower case or too long", raw, e)
		}
		for i := 0; i < len(e); i++ {
			if e[i] <= 0x20 || e[i] >= 0x7f {
				t.Fatalf("normalizeEmail(%q) = %q: byte %#x is not printable ASCII", raw, e, e[i])
			}
		}
		local, domain, _ := strings.Cut(e, "@")
		if local == "" || len(local) > 64 || !strings.Contains(domain, ".") {
			t.Fatalf("normalizeEmail(%q) = %q: bad local part or domain", raw, e)
		}
		if again, err := normalizeEmail(e); err != nil || again != e {
			t.Fatalf("normalizeEmail is not idempotent: %q -> %q -> %q, %v", raw, e, again, err)
		}
	})
}

func FuzzCheckPassword(f *testing.F) {
	for _, s := range []string{"", "short", "correct horse battery staple", "password123", "aaaaaaaaaaaa", "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", "\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6", strings.Repeat("ab", 200)} {
		f.Add(s, "jane.doe@example.com")
	}
	f.Fuzz(func(t *testing.T, pw, email string) {
		err := checkPassword(pw, email)
		checkClientError(t, err)
		if err != nil {
			return
		}
		if len(pw) > maxPasswordBytes || utf8.RuneCountInString(pw) < minPasswordRunes || !utf8.ValidString(pw) {
			t.Fatalf("checkPassword accepted %q", pw)
		}
	})
}
