package controlplane

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// TestHashFormat uses the production costs: the PHC string must record
// them, and a hash must verify with them.
func TestHashFormat(t *testing.T) {
	h := newHasher(DefaultArgon2, 1)
	ctx := context.Background()
	enc, err := h.hash(ctx, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`^\$argon2id\$v=19\$m=65536,t=2,p=2\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)
	if !re.MatchString(enc) {
		t.Errorf("hash %q does not match %s", enc, re)
	}
	p, salt, key, err := parsePHC(enc)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(DefaultArgon2, p); diff != "" || len(salt) != saltLen || len(key) != keyLen {
		t.Errorf("parsed params mismatch (-want +got):\n%s salt %d key %d", diff, len(salt), len(key))
	}
	if ok, err := h.verify(ctx, testPassword, enc); !ok || err != nil {
		t.Errorf("verify(right) = %v, %v", ok, err)
	}
	if ok, err := h.verify(ctx, testPassword+" ", enc); ok || err != nil {
		t.Errorf("verify(wrong) = %v, %v", ok, err)
	}
	// The dummy hash for unknown emails has the same costs.
	if dp, _, _, err := parsePHC(h.dummy); err != nil || dp != DefaultArgon2 {
		t.Errorf("dummy hash params = %+v, %v", dp, err)
	}
}

func TestHashSaltedAndNormalized(t *testing.T) {
	h := newHasher(cheapArgon2, 2)
	ctx := context.Background()
	a, _ := h.hash(ctx, testPassword)
	b, _ := h.hash(ctx, testPassword)
	if a == b {
		t.Error("two hashes of one password are equal: no salt")
	}
	// NFC: a composed and a decomposed é are the same password.
	enc, _ := h.hash(ctx, "caf\u00e9 au lait 2024")
	if ok, _ := h.verify(ctx, "cafe\u0301 au lait 2024", enc); !ok {
		t.Error("decomposed form of the password does not verify")
	}
	// A hash made with other costs still verifies (costs come from the hash).
	old, _ := newHasher(Argon2Params{Memory: 32, Time: 2, Threads: 2}, 1).hash(ctx, testPassword)
	if ok, err := h.verify(ctx, testPassword, old); !ok || err != nil {
		t.Errorf("verify with other costs = %v, %v", ok, err)
	}
}

func TestParsePHCRejects(t *testing.T) {
	h := newHasher(cheapArgon2, 1)
	good, _ := h.hash(context.Background(), testPassword)
	parts := strings.Split(good, "$")
	with := func(i int, v string) string {
		p := append([]string(nil), parts...)
		p[i] = v
		return strings.Join(p, "$")
	}
	for name, enc := range map[string]string{
		"empty":          "",
		"bcrypt":         "$2a$10$abcdefghijklmnopqrstuv",
		"argon2i":        with(1, "argon2i"),
		"version 16":     with(2, "v=16"),
		"zero passes":    with(3, "m=64,t=0,p=1"),
		"zero lanes":     with(3, "m=64,t=1,p=0"),
		"256 lanes":      with(3, "m=64,t=1,p=256"),
		"huge memory":    with(3, "m=4294967295,t=1,p=1"),
		"many passes":    with(3, "m=64,t=100000,p=1"),
		"negative":       with(3, "m=-1,t=1,p=1"),
		"no params":      with(3, ""),
		"bad salt":       with(4, "!!!"),
		"short salt":     with(4, "AAAA"),
		"empty key":      with(5, ""),
		"short key":      with(5, "AAAA"),
		"huge key":       with(5, strings.Repeat("A", 1000)),
		"extra part":     good + "$x",
		"missing a part": strings.Join(parts[:5], "$"),
	} {
		if _, _, _, err := parsePHC(enc); err == nil {
			t.Errorf("%s: parsePHC(%q) accepted", name, enc)
		}
		// verify reports the error instead of panicking in argon2.
		if ok, err := h.verify(context.Background(), testPassword, enc); ok || err == nil {
			t.Errorf("%s: verify = %v, %v", name, ok, err)
		}
	}
}

// TestNewHasherZeroCosts: zero passes or lanes would make argon2 panic.
func TestNewHasherZeroCosts(t *testing.T) {
	h := newHasher(Argon2Params{Memory: 64}, 0)
	enc, err := h.hash(context.Background(), testPassword)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := h.verify(context.Background(), testPassword, enc); !ok || err != nil {
		t.Errorf("verify = %v, %v", ok, err)
	}
}

func TestCheckPassword(t *testing.T) {
	const email = "jane.doe@example.com"
	for _, tc := range []struct {
		pw string
		ok bool
	}{
		{"correct horse battery staple", true},
		{"Tr0ub4dor&3", true},
		{"\u00e9t\u00e9 \u00e0 la plage", true},
		{"0123456789", false},
		{"abcdefghi", false},
		{strings.Repeat("\u00e9", 9), false},
		{strings.Repeat("x", 256), false},  // one character
		{strings.Repeat("abcd", 64), true}, // 256 bytes
		{strings.Repeat("abcd", 64) + "e", false},
		{"aabbaabbaabb", false},
		{"abcabcabcabc", false},
		{"abcdabcdabcd", true},
		{"LetMeIn1234", false},
		{"i am jane.doe!", false},
		{"tab\there and more", false},
		{"newline\nand more", false},
		{"\x7fdel and more", false},
	} {
		err := checkPassword(tc.pw, email)
		if (err == nil) != tc.ok {
			t.Errorf("checkPassword(%q) = %v, want ok=%v", tc.pw, err, tc.ok)
		}
		if err != nil {
			if ae, _ := err.(*api.Error); ae == nil || ae.Field != "password" || strings.Contains(ae.Message, tc.pw) {
				t.Errorf("checkPassword(%q) error = %v", tc.pw, err)
			}
		}
	}
}

func TestNormalizeEmail(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a@example.com", "a@example.com"},
		{"  Jane.Doe+vpn@Example.COM\t", "jane.doe+vpn@example.com"},
		{"x@sub.example.co.uk", "x@sub.example.co.uk"},
		{"a@example", ""},
		{"a@[192.0.2.1]", ""},
		{"Jane <a@example.com>", ""},
		{"a@example.com (Jane)", ""},
		{`"a b"@example.com`, ""},
		{"\u212a@example.com", ""}, // Kelvin sign lower-cases to k
		{"a@example.com\u0000", ""},
	} {
		got, err := normalizeEmail(tc.in)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("normalizeEmail(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
