package store

import (
	"context"
	"testing"
	"time"
)

// TestEnrollmentTokenPurgeUsesCallersClock: creating a token purges the
// expired ones by the clock the caller computed expiries with, the one
// EnrollNode checks against. With the real clock instead, a server whose
// clock runs behind (or a test clock) lost tokens that were still valid by
// its own time.
func TestEnrollmentTokenPurgeUsesCallersClock(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		p, err := s.CreatePool(ctx, Pool{Name: "fra", Region: "eu", Country: "DE", City: "Frankfurt"})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC) // long before the real clock
		first := randomHex(t, 32)
		if err := s.CreateEnrollmentToken(ctx, p.ID, first, now.Add(time.Hour), now); err != nil {
			t.Fatal(err)
		}
		// A second token, minted a minute later by the same clock, purges
		// only what expired by then: not the first.
		if err := s.CreateEnrollmentToken(ctx, p.ID, randomHex(t, 32), now.Add(time.Hour), now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.EnrollNode(ctx, first, Node{Name: "n", Endpoint: "vpn.example.com:51820",
			PublicKey: randomKey(t), CredentialHash: randomHex(t, 32)}, now.Add(2*time.Minute)); err != nil {
			t.Fatalf("enroll with a token valid by the caller's clock: %v", err)
		}

		// And by that clock, an expired token is purged.
		stale := randomHex(t, 32)
		if err := s.CreateEnrollmentToken(ctx, p.ID, stale, now.Add(time.Hour), now); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateEnrollmentToken(ctx, p.ID, randomHex(t, 32), now.Add(3*time.Hour), now.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		var n int64
		if err := s.w.Model(&EnrollmentToken{}).Where("hash = ?", stale).Count(&n).Error; err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatalf("a token expired by the caller's clock is still stored")
		}
	})
}
