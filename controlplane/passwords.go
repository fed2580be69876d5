package controlplane

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
	"golang.org/x/text/unicode/norm"
)

// Argon2Params are the argon2id cost parameters.
type Argon2Params struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
}

// DefaultArgon2 follows RFC 9106's second recommended option scaled to a
// small server: 64 MiB, 2 passes, 2 lanes. BENCHMARKS.md records its cost.
var DefaultArgon2 = Argon2Params{Memory: 64 * 1024, Time: 2, Threads: 2}

const (
	minPasswordRunes = 10
	maxPasswordBytes = 256
	saltLen          = 16
	keyLen           = 32

	// Bounds on the costs a stored hash may ask for.
	maxArgon2Memory = 4 << 20 // KiB: 4 GiB
	maxArgon2Time   = 64
)

// hasher hashes and verifies passwords, bounding how many argon2id
// computations (each holding Memory KiB) run at once.
type hasher struct {
	p     Argon2Params
	slots chan struct{}
	dummy string // hash of a random password, verified for unknown emails

	// verifies counts argon2id verifications, so tests can prove that every
	// login path runs exactly one without timing it.
	verifies atomic.Int64
}

func newHasher(p Argon2Params, concurrent int) *hasher {
	if concurrent < 1 {
		concurrent = 1
	}
	// argon2.IDKey panics on zero passes or lanes.
	p.Time = max(p.Time, 1)
	p.Threads = max(p.Threads, 1)
	h := &hasher{p: p, slots: make(chan struct{}, concurrent)}
	var pw [24]byte
	rand.Read(pw[:])
	h.dummy, _ = h.hash(context.Background(), base64.RawStdEncoding.EncodeToString(pw[:]))
	return h
}

func (h *hasher) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *hasher) release() { <-h.slots }

// hash returns the PHC string of password.
func (h *hasher) hash(ctx context.Context, password string) (string, error) {
	salt := make([]byte, saltLen)
	rand.Read(salt)
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	key := argon2.IDKey([]byte(norm.NFC.String(password)), salt, h.p.Time, h.p.Memory, h.p.Threads, keyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, h.p.Memory, h.p.Time, h.p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// verify reports whether password matches the PHC string encoded, in time
// that does not depend on where they differ.
func (h *hasher) verify(ctx context.Context, password, encoded string) (bool, error) {
	p, salt, key, err := parsePHC(encoded)
	if err != nil {
		return false, err
	}
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	h.verifies.Add(1)
	got := argon2.IDKey([]byte(norm.NFC.String(password)), salt, p.Time, p.Memory, p.Threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

// verifyDummy spends the same time as verify for an unknown account.
func (h *hasher) verifyDummy(ctx context.Context, password string) {
	_, _ = h.verify(ctx, password, h.dummy)
}

func parsePHC(s string) (Argon2Params, []byte, []byte, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return Argon2Params{}, nil, nil, errors.New("not an argon2id hash")
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return Argon2Params{}, nil, nil, errors.New("unsupported argon2 version")
	}
	var p Argon2Params
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil {
		return Argon2Params{}, nil, nil, errors.New("bad argon2 parameters")
	}
	// argon2.IDKey panics on zero passes or lanes; a stored hash must not
	// be able to crash (or exhaust) the server.
	if p.Time < 1 || p.Time > maxArgon2Time || p.Threads < 1 || p.Memory > maxArgon2Memory {
		return Argon2Params{}, nil, nil, errors.New("argon2 parameters out of range")
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil || len(salt) < 8 || len(salt) > 64 {
		return Argon2Params{}, nil, nil, errors.New("bad salt")
	}
	key, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(key) < 16 || len(key) > 64 {
		return Argon2Params{}, nil, nil, errors.New("bad key")
	}
	return p, salt, key, nil
}

// commonPasswords are refused outright; the length rule catches most others.
var commonPasswords = map[string]bool{
	"password123": true, "1234567890": true, "12345678910": true, "qwertyuiop": true,
	"password1234": true, "iloveyou123": true, "0123456789": true, "1111111111": true,
	"passwordpassword": true, "abcdefghij": true, "letmein1234": true, "welcome123": true,
	"administrator": true, "qwerty12345": true, "trustno1234": true,
}

// checkPassword enforces the password policy: 10 to 256 bytes of valid,
// printable UTF-8, not a common password, not mostly one character, and not
// containing the email's local part.
func checkPassword(password, email string) error {
	switch {
	case len(password) > maxPasswordBytes:
		return badRequest("password", "must be at most %d bytes", maxPasswordBytes)
	case !utf8.ValidString(password):
		return badRequest("password", "must be valid UTF-8")
	case utf8.RuneCountInString(password) < minPasswordRunes:
		return badRequest("password", "must be at least %d characters", minPasswordRunes)
	}
	distinct := map[rune]bool{}
	for _, r := range password {
		if r < 0x20 || r == 0x7f {
			return badRequest("password", "must not contain control characters")
		}
		distinct[r] = true
	}
	lower := strings.ToLower(password)
	local, _, _ := strings.Cut(email, "@")
	switch {
	case len(distinct) < 4:
		return badRequest("password", "is too simple")
	case commonPasswords[lower]:
		return badRequest("password", "is a commonly used password")
	case len(local) >= 4 && strings.Contains(lower, strings.ToLower(local)):
		return badRequest("password", "must not contain the email address")
	}
	return nil
}
