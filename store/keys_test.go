package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
)

// testKeyHash returns the hex SHA-256 of a made-up secret.
func testKeyHash(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

func TestCreateAPIKey(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustSeedPlans(t, s)
		alice := MustCreateOwner(t, s, "alice@example.com", "pro")
		mallory := MustCreateOwner(t, s, "mallory@example.com", "pro")
		app := MustCreateApp(t, s, alice.ID, "app")
		in := APIKey{Name: "backend", Prefix: "tl_4f2a", Hash: testKeyHash("s1"), Scopes: "devices"}

		k, err := s.CreateAPIKey(ctx, alice.ID, app.ID, in)
		if err != nil {
			t.Fatalf("CreateAPIKey: %v", err)
		}
		want := in
		want.ID, want.AppID, want.Kind = k.ID, app.ID, KeySecret
		if diff := cmp.Diff(want, k); diff != "" {
			t.Errorf("CreateAPIKey (-want +got):\n%s", diff)
		}
		list, err := s.ListAPIKeys(ctx, alice.ID, app.ID)
		if err != nil {
			t.Fatalf("ListAPIKeys: %v", err)
		}
		if diff := cmp.Diff([]APIKey{want}, list); diff != "" {
			t.Errorf("ListAPIKeys (-want +got):\n%s", diff)
		}

		tests := []struct {
			name    string
			owner   string
			app     string
			key     APIKey
			wantErr error  // a sentinel, or nil for a validation error
			field   string // the field of the validation error
		}{
			{name: "another owner's app", owner: mallory.ID, app: app.ID, key: APIKey{Name: "x", Prefix: "tl_x", Hash: testKeyHash("m"), Scopes: "devices"}, wantErr: ErrNotFound},
			{name: "unknown app", owner: alice.ID, app: uuid.NewString(), key: APIKey{Name: "x", Prefix: "tl_x", Hash: testKeyHash("u"), Scopes: "devices"}, wantErr: ErrNotFound},
			{name: "hash taken", owner: alice.ID, app: app.ID, key: APIKey{Name: "x", Prefix: "tl_x", Hash: testKeyHash("s1"), Scopes: "devices"}, wantErr: ErrConflict},
			{name: "empty hash", owner: alice.ID, app: app.ID, key: APIKey{Name: "x", Prefix: "tl_x", Scopes: "devices"}, field: "hash"},
			{name: "short hash", owner: alice.ID, app: app.ID, key: APIKey{Name: "x", Prefix: "tl_x", Hash: testKeyHash("a")[:63], Scopes: "devices"}, field: "hash"},
			{name: "long hash", owner: alice.ID, app: app.ID, key: APIKey{Name: "x", Prefix: "tl_x", Hash: testKeyHash("a") + "0", Scopes: "devices"}, field: "hash"},
			{name: "upper-case hash", owner: alice.ID, app: app.ID, key: APIKey{Name: "x", Prefix: "tl_x", Hash: strings.ToUpper(testKeyHash("a")), Scopes: "devices"}, field: "hash"},
			{name: "non-hex hash", owner: alice.ID, app: app.ID, key: APIKey{Name: "x", Prefix: "tl_x", Hash: strings.Repeat("g", 64), Scopes: "devices"}, field: "hash"},
			{name: "secret instead of hash", owner: alice.ID, app: app.ID, key: APIKey{Name: "x", Prefix: "tl_x", Hash: "tl_" + strings.Repeat("A", 43), Scopes: "devices"}, field: "hash"},
			{name: "empty name", owner: alice.ID, app: app.ID, key: APIKey{Prefix: "tl_x", Hash: testKeyHash("n"), Scopes: "devices"}, field: "name"},
			{name: "bidi name", owner: alice.ID, app: app.ID, key: APIKey{Name: "key\u202e", Prefix: "tl_x", Hash: testKeyHash("n"), Scopes: "devices"}, field: "name"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := s.CreateAPIKey(ctx, tt.owner, tt.app, tt.key)
				if tt.wantErr != nil {
					if !errors.Is(err, tt.wantErr) {
						t.Errorf("CreateAPIKey error = %v; want %v", err, tt.wantErr)
					}
				} else {
					wantValidation(t, err, tt.field)
				}
				if n := MustCount(t, s, &APIKey{}); n != 1 {
					t.Errorf("%d API keys stored; want 1", n)
				}
			})
		}
	})
}

func TestAuthenticateAPIKey(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustSeedPlans(t, s)
		alice := MustCreateOwner(t, s, "alice@example.com", "pro")
		mallory := MustCreateOwner(t, s, "mallory@example.com", "pro")
		app := MustCreateApp(t, s, alice.ID, "app")
		other := MustCreateApp(t, s, alice.ID, "other")
		malloryApp := MustCreateApp(t, s, mallory.ID, "mallory's")
		hash := testKeyHash("secret")
		k, err := s.CreateAPIKey(ctx, alice.ID, app.ID, APIKey{Name: "k", Prefix: "tl_x", Hash: hash, Scopes: "devices:write"})
		if err != nil {
			t.Fatal(err)
		}
		want := KeyAuth{KeyID: k.ID, AppID: app.ID, OwnerID: alice.ID, OwnerStatus: StatusActive, Scopes: "devices:write", Kind: KeySecret}

		authOK := func(t *testing.T) {
			t.Helper()
			got, err := s.AuthenticateAPIKey(ctx, hash)
			if err != nil {
				t.Fatalf("AuthenticateAPIKey: %v", err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("AuthenticateAPIKey (-want +got):\n%s", diff)
			}
		}
		authOK(t)
		if _, err := s.AuthenticateAPIKey(ctx, testKeyHash("wrong")); !errors.Is(err, ErrNotFound) {
			t.Errorf("AuthenticateAPIKey(unknown) error = %v; want ErrNotFound", err)
		}

		// The owner's status comes with the key, so a suspended owner's
		// apps can be refused.
		if _, err := s.UpdateOwner(ctx, alice.ID, OwnerUpdate{Status: ptr(StatusSuspended)}); err != nil {
			t.Fatal(err)
		}
		want.OwnerStatus = StatusSuspended
		authOK(t)

		// Failed deletes leave the key working.
		failed := []struct {
			name              string
			owner, app, keyID string
		}{
			{"by another owner", mallory.ID, app.ID, k.ID},
			{"through another owner's app", mallory.ID, malloryApp.ID, k.ID},
			{"through another app of the owner", alice.ID, other.ID, k.ID},
			{"unknown key", alice.ID, app.ID, uuid.NewString()},
		}
		for _, tt := range failed {
			t.Run(tt.name, func(t *testing.T) {
				if err := s.DeleteAPIKey(ctx, tt.owner, tt.app, tt.keyID); !errors.Is(err, ErrNotFound) {
					t.Errorf("DeleteAPIKey error = %v; want ErrNotFound", err)
				}
				authOK(t)
			})
		}

		if err := s.DeleteAPIKey(ctx, alice.ID, app.ID, k.ID); err != nil {
			t.Fatalf("DeleteAPIKey: %v", err)
		}
		if _, err := s.AuthenticateAPIKey(ctx, hash); !errors.Is(err, ErrNotFound) {
			t.Errorf("AuthenticateAPIKey after DeleteAPIKey error = %v; want ErrNotFound at once", err)
		}
		if n := MustCount(t, s, &APIKey{}); n != 0 {
			t.Errorf("%d API keys after the delete; want 0 (hard delete)", n)
		}
		if err := s.DeleteAPIKey(ctx, alice.ID, app.ID, k.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("second DeleteAPIKey error = %v; want ErrNotFound", err)
		}
	})
}

func TestAPIKeyCap(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustSeedPlans(t, s)
		o := MustCreateOwner(t, s, "a@example.com", "pro")
		full := MustCreateApp(t, s, o.ID, "full")
		other := MustCreateApp(t, s, o.ID, "other")
		var last APIKey
		for i := range maxKeysPerApp {
			k, err := s.CreateAPIKey(ctx, o.ID, full.ID, APIKey{Name: fmt.Sprintf("k%d", i), Prefix: "tl_x", Hash: testKeyHash(fmt.Sprint(i)), Scopes: "devices"})
			if err != nil {
				t.Fatalf("CreateAPIKey %d: %v", i, err)
			}
			last = k
		}
		if _, err := s.CreateAPIKey(ctx, o.ID, full.ID, APIKey{Name: "extra", Prefix: "tl_x", Hash: testKeyHash("extra"), Scopes: "devices"}); !errors.Is(err, ErrPlanLimit) {
			t.Errorf("CreateAPIKey beyond %d keys error = %v; want ErrPlanLimit", maxKeysPerApp, err)
		}
		if n := MustCountWhere(t, s, &APIKey{}, "app_id = ?", full.ID); n != maxKeysPerApp {
			t.Errorf("%d keys; want %d", n, maxKeysPerApp)
		}
		// The cap is per app.
		if _, err := s.CreateAPIKey(ctx, o.ID, other.ID, APIKey{Name: "k", Prefix: "tl_x", Hash: testKeyHash("other"), Scopes: "devices"}); err != nil {
			t.Errorf("CreateAPIKey in another app: %v", err)
		}
		// Revoking a key frees a slot.
		if err := s.DeleteAPIKey(ctx, o.ID, full.ID, last.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateAPIKey(ctx, o.ID, full.ID, APIKey{Name: "again", Prefix: "tl_x", Hash: testKeyHash("again"), Scopes: "devices"}); err != nil {
			t.Errorf("CreateAPIKey after a revocation: %v", err)
		}
	})
}

// TestAPIKeyCapConcurrent checks that parallel key creation cannot pass the
// per-app cap.
func TestAPIKeyCapConcurrent(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustSeedPlans(t, s)
		o := MustCreateOwner(t, s, "a@example.com", "pro")
		app := MustCreateApp(t, s, o.ID, "app")
		const existing, workers = maxKeysPerApp - 5, 20
		for i := range existing {
			if _, err := s.CreateAPIKey(ctx, o.ID, app.ID, APIKey{Name: fmt.Sprint("k", i), Prefix: "tl_x", Hash: testKeyHash(fmt.Sprint(i)), Scopes: "devices"}); err != nil {
				t.Fatal(err)
			}
		}
		errs := make([]error, workers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[i] = s.CreateAPIKey(ctx, o.ID, app.ID, APIKey{Name: fmt.Sprint("par", i), Prefix: "tl_x", Hash: testKeyHash(fmt.Sprint("par", i)), Scopes: "devices"})
			}()
		}
		close(start)
		wg.Wait()
		got := map[string]int{}
		for _, err := range errs {
			switch {
			case err == nil:
				got["ok"]++
			case errors.Is(err, ErrPlanLimit):
				got["plan limit"]++
			default:
				t.Errorf("CreateAPIKey: unexpected error %v", err)
			}
		}
		free := maxKeysPerApp - existing
		if diff := cmp.Diff(map[string]int{"ok": free, "plan limit": workers - free}, got); diff != "" {
			t.Errorf("outcomes of %d parallel CreateAPIKey (-want +got):\n%s", workers, diff)
		}
		if n := MustCount(t, s, &APIKey{}); n != maxKeysPerApp {
			t.Errorf("%d keys stored; want %d", n, maxKeysPerApp)
		}
	})
}
