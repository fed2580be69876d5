package store

import (
	"context"
	"errors"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestOwnerTokens(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustSeedPlans(t, s)
		o := MustCreateOwner(t, s, "a@example.com", "free")
		now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

		// A verification token works once.
		v := randomHex(t, 32)
		if err := s.CreateOwnerToken(ctx, o.ID, TokenVerifyEmail, v, now.Add(time.Hour), now); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ResetPassword(ctx, v, "$argon2id$x", now); !errors.Is(err, ErrNotFound) {
			t.Errorf("ResetPassword with a verification token: %v, want ErrNotFound", err)
		}
		// The wrong-kind attempt did not spend it.
		got, err := s.VerifyEmail(ctx, v, now)
		if err != nil {
			t.Fatalf("VerifyEmail: %v", err)
		}
		if !got.EmailVerified {
			t.Error("VerifyEmail left the address unverified")
		}
		if _, err := s.VerifyEmail(ctx, v, now); !errors.Is(err, ErrNotFound) {
			t.Errorf("second VerifyEmail: %v, want ErrNotFound", err)
		}

		// A newer reset link replaces the older one; an expired one fails
		// and is gone.
		r1, r2 := randomHex(t, 32), randomHex(t, 32)
		for _, h := range []string{r1, r2} {
			if err := s.CreateOwnerToken(ctx, o.ID, TokenResetPassword, h, now.Add(30*time.Minute), now); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.ResetPassword(ctx, r1, "$argon2id$x", now); !errors.Is(err, ErrNotFound) {
			t.Errorf("replaced reset link: %v, want ErrNotFound", err)
		}
		if _, err := s.ResetPassword(ctx, r2, "$argon2id$x", now.Add(30*time.Minute)); !errors.Is(err, ErrNotFound) {
			t.Errorf("expired reset link: %v, want ErrNotFound", err)
		}
		if n := MustCountWhere(t, s, &OwnerToken{}, "owner_id = ?", o.ID); n != 0 {
			t.Errorf("%d tokens left after the expired one was tried, want 0", n)
		}

		// A reset sets the password and revokes every sign-in token.
		r3 := randomHex(t, 32)
		if err := s.CreateOwnerToken(ctx, o.ID, TokenResetPassword, r3, now.Add(30*time.Minute), now); err != nil {
			t.Fatal(err)
		}
		before, _ := s.GetOwner(ctx, o.ID)
		after, err := s.ResetPassword(ctx, r3, "$argon2id$reset", now.Add(29*time.Minute))
		if err != nil {
			t.Fatalf("ResetPassword: %v", err)
		}
		if after.PasswordHash != "$argon2id$reset" || after.TokenEpoch != before.TokenEpoch+1 {
			t.Errorf("after reset: hash %q epoch %d, want the new hash and epoch %d", after.PasswordHash, after.TokenEpoch, before.TokenEpoch+1)
		}
		if _, err := s.ResetPassword(ctx, r3, "$argon2id$again", now); !errors.Is(err, ErrNotFound) {
			t.Errorf("reset link used twice: %v, want ErrNotFound", err)
		}

		// Purging removes exactly the expired tokens of everyone.
		b := MustCreateOwner(t, s, "b@example.com", "free")
		live, dead := randomHex(t, 32), randomHex(t, 32)
		if err := s.CreateOwnerToken(ctx, o.ID, TokenVerifyEmail, dead, now.Add(time.Minute), now); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateOwnerToken(ctx, b.ID, TokenVerifyEmail, live, now.Add(time.Hour), now); err != nil {
			t.Fatal(err)
		}
		n, err := s.PurgeExpiredOwnerTokens(ctx, now.Add(2*time.Minute))
		if err != nil || n != 1 {
			t.Errorf("PurgeExpiredOwnerTokens = %d, %v; want 1", n, err)
		}
		if _, err := s.VerifyEmail(ctx, live, now); err != nil {
			t.Errorf("the live token did not survive the purge: %v", err)
		}

		for _, bad := range []struct{ owner, kind, hash string }{
			{o.ID, "login", randomHex(t, 32)},
			{o.ID, TokenVerifyEmail, "not-hex"},
			{"00000000-0000-4000-8000-000000000000", TokenVerifyEmail, randomHex(t, 32)},
		} {
			if err := s.CreateOwnerToken(ctx, bad.owner, bad.kind, bad.hash, now.Add(time.Hour), now); err == nil {
				t.Errorf("CreateOwnerToken(%q, %q, %q) succeeded", bad.owner, bad.kind, bad.hash)
			}
		}
	})
}

func TestSetPasswordRevokes(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustSeedPlans(t, s)
		o := MustCreateOwner(t, s, "a@example.com", "free")
		now := time.Now()
		pending := randomHex(t, 32)
		if err := s.CreateOwnerToken(ctx, o.ID, TokenResetPassword, pending, now.Add(time.Hour), now); err != nil {
			t.Fatal(err)
		}
		got, err := s.SetPassword(ctx, o.ID, "$argon2id$changed")
		if err != nil {
			t.Fatal(err)
		}
		if got.PasswordHash != "$argon2id$changed" || got.TokenEpoch != o.TokenEpoch+1 {
			t.Errorf("SetPassword: hash %q epoch %d", got.PasswordHash, got.TokenEpoch)
		}
		if _, err := s.ResetPassword(ctx, pending, "$argon2id$x", now); !errors.Is(err, ErrNotFound) {
			t.Errorf("a reset link from before the change still works: %v", err)
		}
		if _, err := s.SetPassword(ctx, "00000000-0000-4000-8000-000000000000", "$argon2id$x"); !errors.Is(err, ErrNotFound) {
			t.Errorf("SetPassword of nobody: %v, want ErrNotFound", err)
		}
	})
}

func TestTOTPCredential(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustSeedPlans(t, s)
		o := MustCreateOwner(t, s, "a@example.com", "free")

		if err := s.EnableTOTP(ctx, o.ID, 10, nil); !errors.Is(err, ErrNotFound) {
			t.Errorf("EnableTOTP without enrolment: %v, want ErrNotFound", err)
		}
		if err := s.StartTOTP(ctx, o.ID, "v1.first"); err != nil {
			t.Fatal(err)
		}
		if err := s.StartTOTP(ctx, o.ID, "v1.second"); err != nil {
			t.Fatalf("restarting an unconfirmed enrolment: %v", err)
		}
		if on, _ := s.TOTPEnabled(ctx, o.ID); on {
			t.Error("an unconfirmed enrolment counts as enabled")
		}
		if err := s.AcceptTOTPStep(ctx, o.ID, 5); !errors.Is(err, ErrConflict) {
			t.Errorf("AcceptTOTPStep before confirmation: %v, want ErrConflict", err)
		}
		codes := []string{randomHex(t, 32), randomHex(t, 32), randomHex(t, 32)}
		if err := s.EnableTOTP(ctx, o.ID, 100, codes); err != nil {
			t.Fatal(err)
		}
		cred, err := s.GetTOTP(ctx, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(TOTPCredential{OwnerID: o.ID, Secret: "v1.second", Enabled: true, LastStep: 100}, cred); diff != "" {
			t.Errorf("credential (-want +got):\n%s", diff)
		}
		if err := s.StartTOTP(ctx, o.ID, "v1.third"); !errors.Is(err, ErrConflict) {
			t.Errorf("StartTOTP while enabled: %v, want ErrConflict", err)
		}
		if err := s.EnableTOTP(ctx, o.ID, 101, codes); !errors.Is(err, ErrConflict) {
			t.Errorf("EnableTOTP twice: %v, want ErrConflict", err)
		}

		// Steps are accepted once, in increasing order only.
		for _, c := range []struct {
			step int64
			want error
		}{{100, ErrConflict}, {99, ErrConflict}, {101, nil}, {101, ErrConflict}, {103, nil}, {102, ErrConflict}} {
			if err := s.AcceptTOTPStep(ctx, o.ID, c.step); !errors.Is(err, c.want) {
				t.Errorf("AcceptTOTPStep(%d) = %v, want %v", c.step, err, c.want)
			}
		}

		// Recovery codes are single-use.
		if err := s.UseRecoveryCode(ctx, o.ID, codes[1]); err != nil {
			t.Fatal(err)
		}
		if err := s.UseRecoveryCode(ctx, o.ID, codes[1]); !errors.Is(err, ErrNotFound) {
			t.Errorf("recovery code used twice: %v, want ErrNotFound", err)
		}
		b := MustCreateOwner(t, s, "b@example.com", "free")
		if err := s.UseRecoveryCode(ctx, b.ID, codes[0]); !errors.Is(err, ErrNotFound) {
			t.Errorf("another owner's recovery code: %v, want ErrNotFound", err)
		}
		if n, _ := s.CountRecoveryCodes(ctx, o.ID); n != 2 {
			t.Errorf("%d recovery codes left, want 2", n)
		}

		// Rewrapping changes what rewrap says.
		n, err := s.RewrapTOTPSecrets(ctx, func(owner, secret string) (string, bool, error) {
			if owner != o.ID {
				t.Errorf("rewrap got owner %s", owner)
			}
			return "v1.rewrapped", secret != "v1.rewrapped", nil
		})
		if err != nil || n != 1 {
			t.Errorf("RewrapTOTPSecrets = %d, %v; want 1", n, err)
		}
		if cred, _ := s.GetTOTP(ctx, o.ID); cred.Secret != "v1.rewrapped" {
			t.Errorf("secret after rewrap = %q", cred.Secret)
		}

		if err := s.DisableTOTP(ctx, o.ID); err != nil {
			t.Fatal(err)
		}
		if n := MustCountWhere(t, s, &RecoveryCode{}, "owner_id = ?", o.ID); n != 0 {
			t.Errorf("%d recovery codes left after disabling", n)
		}
		if err := s.DisableTOTP(ctx, o.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("DisableTOTP twice: %v, want ErrNotFound", err)
		}
	})
}

// TestDeleteOwnerRemovesSignInData: account deletion takes the mailed
// tokens, the second factor and the recovery codes with it, and the export
// lists them with their secrets withheld.
func TestDeleteOwnerRemovesSignInData(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustSeedPlans(t, s)
		o := MustCreateOwner(t, s, "a@example.com", "free")
		keep := MustCreateOwner(t, s, "b@example.com", "free")
		now := time.Now()
		for _, owner := range []Owner{o, keep} {
			if err := s.CreateOwnerToken(ctx, owner.ID, TokenResetPassword, randomHex(t, 32), now.Add(time.Hour), now); err != nil {
				t.Fatal(err)
			}
			if err := s.StartTOTP(ctx, owner.ID, "v1.sealed"); err != nil {
				t.Fatal(err)
			}
			if err := s.EnableTOTP(ctx, owner.ID, 7, []string{randomHex(t, 32), randomHex(t, 32)}); err != nil {
				t.Fatal(err)
			}
		}

		ex, err := s.ExportOwner(ctx, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			table, col string
			rows       int
		}{{"owner_tokens", "hash", 1}, {"totp_credentials", "secret", 1}, {"recovery_codes", "hash", 2}} {
			rows := ex[c.table]
			if len(rows) != c.rows {
				t.Errorf("export has %d %s rows, want %d", len(rows), c.table, c.rows)
				continue
			}
			for _, r := range rows {
				if r[c.col] != Withheld {
					t.Errorf("export shows %s.%s = %v, want it withheld", c.table, c.col, r[c.col])
				}
			}
		}
		if got := ex["totp_credentials"][0]["last_step"]; got == nil {
			t.Error("export leaves out totp_credentials.last_step")
		}

		if err := s.DeleteOwner(ctx, o.ID); err != nil {
			t.Fatal(err)
		}
		for _, m := range []any{&OwnerToken{}, &TOTPCredential{}, &RecoveryCode{}} {
			if n := MustCountWhere(t, s, m, "owner_id = ?", o.ID); n != 0 {
				t.Errorf("%T: %d rows of the deleted owner remain", m, n)
			}
			if n := MustCountWhere(t, s, m, "owner_id = ?", keep.ID); n == 0 {
				t.Errorf("%T: the other owner's rows went too", m)
			}
		}
	})
}

// TestSignInTablesInManifest: the manifest explains the new tables, and
// the guard allows the one time column with its reason.
func TestSignInTablesInManifest(t *testing.T) {
	m, err := GenerateManifest()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"owner_tokens":     {"expires_at", "hash", "kind", "owner_id"},
		"totp_credentials": {"enabled", "last_step", "owner_id", "secret"},
		"recovery_codes":   {"hash", "owner_id"},
	}
	for table, cols := range want {
		mt, ok := m.Table(table)
		if !ok {
			t.Errorf("manifest has no %s", table)
			continue
		}
		var got []string
		for _, c := range mt.Columns {
			got = append(got, c.Name)
		}
		sort.Strings(got)
		if diff := cmp.Diff(cols, got); diff != "" {
			t.Errorf("%s columns (-want +got):\n%s", table, diff)
		}
	}
	if timeAllowed["owner_tokens.expires_at"] == "" {
		t.Error("owner_tokens.expires_at has no reason in timeAllowed")
	}
}
