package store

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
)

// TestMigrationAppCredentials upgrades a database with keys from before
// key kinds: every key becomes a secret key without expiry, and duplicate
// names within an app get a suffix no key of the app uses, so that the
// unique index can be created.
func TestMigrationAppCredentials(t *testing.T) {
	eachBackend(t, func(t *testing.T, b testBackend) {
		ctx := context.Background()
		cfg := b.Config(t)
		raw := MustRawDB(t, cfg)
		MustMigrateTo(t, raw, "0007_alerts")
		long := strings.Repeat("x", 100)
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`INSERT INTO plans (id, slug, name, max_apps, max_devices, max_own_nodes, price_cents, currency) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
				[]any{"p1", "pro", "Pro", 5, 100, 2, 4900, "EUR"}},
			{`INSERT INTO owners (id, email, password_hash, role, plan_id, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
				[]any{"o1", "owner@example.com", "$argon2id$x", RoleOwner, "p1", StatusActive, time.Now().UTC()}},
			{`INSERT INTO apps (id, owner_id, name) VALUES (?, ?, ?)`, []any{"a1", "o1", "one"}},
			{`INSERT INTO apps (id, owner_id, name) VALUES (?, ?, ?)`, []any{"a2", "o1", "two"}},
			{`INSERT INTO devices (id, app_id, public_key, ipv4, ipv6, external_ref, revision) VALUES (?, ?, ?, ?, ?, ?, ?)`,
				[]any{"d1", "a1", "pk1=", "10.64.0.2", "fd00::2", nil, 1}},
		} {
			if err := raw.Exec(q.sql, q.args...).Error; err != nil {
				t.Fatalf("exec %q: %v", q.sql, err)
			}
		}
		keys := []struct{ id, app, name string }{
			{"k1", "a1", "backend"}, {"k2", "a1", "backend"}, {"k3", "a1", "backend"}, {"k4", "a1", "backend (2)"},
			{"k5", "a1", long}, {"k6", "a1", long}, {"k7", "a2", "backend"},
		}
		for i, k := range keys {
			if err := raw.Exec(`INSERT INTO api_keys (id, app_id, name, prefix, hash, scopes) VALUES (?, ?, ?, ?, ?, ?)`,
				k.id, k.app, k.name, "tlk_x", testKeyHash(k.id), "devices").Error; err != nil {
				t.Fatalf("insert key %d: %v", i, err)
			}
		}
		closeGorm(raw)

		s := MustOpen(t, cfg)
		got := map[string]string{}
		for _, app := range []string{"a1", "a2"} {
			list, err := s.ListAPIKeys(ctx, "o1", app)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range list {
				got[k.ID] = k.Name
				if k.Kind != KeySecret || k.ExpiresAt != nil || k.ReplacedBy != nil {
					t.Errorf("key %s after the upgrade: kind %q, expires %v, replaced by %v; want a secret key without expiry", k.ID, k.Kind, k.ExpiresAt, k.ReplacedBy)
				}
			}
		}
		want := map[string]string{
			"k1": "backend", "k2": "backend (3)", "k3": "backend (4)", "k4": "backend (2)",
			"k5": long, "k6": strings.Repeat("x", 96) + " (2)", "k7": "backend",
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("key names after the upgrade (-want +got):\n%s", diff)
		}
		// The keys still authenticate, as secret keys.
		ka, err := s.AuthenticateAPIKey(ctx, testKeyHash("k2"))
		if err != nil || ka.Kind != KeySecret || ka.KeyID != "k2" {
			t.Errorf("AuthenticateAPIKey(k2) = %+v, %v; want the secret key k2", ka, err)
		}
		// Names are unique from now on, for the store and the database.
		if _, err := s.CreateAPIKey(ctx, "o1", "a1", APIKey{Name: "backend", Prefix: "tlk_x", Hash: testKeyHash("new"), Scopes: "devices"}); !errors.Is(err, ErrKeyNameTaken) {
			t.Errorf("CreateAPIKey with a taken name error = %v; want ErrKeyNameTaken", err)
		}
		if err := s.w.Exec(`INSERT INTO api_keys (id, app_id, name, prefix, hash, scopes) VALUES ('k9', 'a1', 'backend', 'x', ?, 'devices')`,
			testKeyHash("k9")).Error; err == nil {
			t.Error("the database accepted a duplicate key name")
		}
		var d Device
		if err := s.r.Where("id = ?", "d1").Take(&d).Error; err != nil || d.TokenHash != nil {
			t.Errorf("device after the upgrade = %+v, %v; want it without a token", d, err)
		}
	})
}

func TestUniqueKeyName(t *testing.T) {
	taken := map[string]bool{"a": true, "a (2)": true}
	if got := uniqueKeyName("a", func(n string) bool { return taken[n] }); got != "a (3)" {
		t.Errorf("uniqueKeyName = %q; want %q", got, "a (3)")
	}
	long := strings.Repeat("é", 100)
	got := uniqueKeyName(long, func(string) bool { return false })
	if want := strings.Repeat("é", 96) + " (2)"; got != want || !validText(got, 100) {
		t.Errorf("uniqueKeyName(100 runes) = %q; want %q", got, want)
	}
}

func TestCreateAPIKeyKinds(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustSeedPlans(t, s)
		o := MustCreateOwner(t, s, "a@example.com", "pro")
		app := MustCreateApp(t, s, o.ID, "app")
		exp := time.Date(2031, 2, 3, 4, 5, 6, 0, time.FixedZone("x", 3600))
		k, err := s.CreateAPIKey(ctx, o.ID, app.ID, APIKey{Name: "shipped", Prefix: "tlp_x", Hash: testKeyHash("p"), Scopes: "devices", Kind: KeyPublishable, ExpiresAt: &exp})
		if err != nil {
			t.Fatal(err)
		}
		ka, err := s.AuthenticateAPIKey(ctx, testKeyHash("p"))
		if err != nil {
			t.Fatal(err)
		}
		if ka.Kind != KeyPublishable || ka.ExpiresAt == nil || !ka.ExpiresAt.Equal(exp) || ka.KeyID != k.ID {
			t.Errorf("AuthenticateAPIKey = %+v; want the publishable key expiring at %v", ka, exp)
		}
		if ka.Expired(exp.Add(-time.Second)) || !ka.Expired(exp) {
			t.Errorf("Expired around %v is wrong", exp)
		}
		list, err := s.ListAPIKeys(ctx, o.ID, app.ID)
		if err != nil || len(list) != 1 || list[0].Kind != KeyPublishable || !list[0].ExpiresAt.Equal(exp) {
			t.Errorf("ListAPIKeys = %+v, %v", list, err)
		}
		for _, tt := range []struct {
			name  string
			key   APIKey
			field string
		}{
			{"unknown kind", APIKey{Name: "x", Hash: testKeyHash("x"), Kind: "admin"}, "kind"},
			{"upper-case kind", APIKey{Name: "x", Hash: testKeyHash("x"), Kind: "Secret"}, "kind"},
			{"zero expiry", APIKey{Name: "x", Hash: testKeyHash("x"), ExpiresAt: &time.Time{}}, "expires_at"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				_, err := s.CreateAPIKey(ctx, o.ID, app.ID, tt.key)
				wantValidation(t, err, tt.field)
			})
		}
	})
}

func TestReplaceAPIKey(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustSeedPlans(t, s)
		o := MustCreateOwner(t, s, "a@example.com", "pro")
		mallory := MustCreateOwner(t, s, "m@example.com", "pro")
		app := MustCreateApp(t, s, o.ID, "app")
		old, err := s.CreateAPIKey(ctx, o.ID, app.ID, APIKey{Name: "v1", Prefix: "tlp_1", Hash: testKeyHash("v1"), Scopes: "devices", Kind: KeyPublishable})
		if err != nil {
			t.Fatal(err)
		}
		grace := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		in := APIKey{Name: "v2", Prefix: "tlp_2", Hash: testKeyHash("v2"), Scopes: "devices", Kind: KeySecret}

		// Failures change nothing.
		if _, _, err := s.ReplaceAPIKey(ctx, mallory.ID, app.ID, old.ID, in, grace); !errors.Is(err, ErrNotFound) {
			t.Errorf("ReplaceAPIKey by another owner error = %v; want ErrNotFound", err)
		}
		if _, _, err := s.ReplaceAPIKey(ctx, o.ID, app.ID, uuid.NewString(), in, grace); !errors.Is(err, ErrNotFound) {
			t.Errorf("ReplaceAPIKey of an unknown key error = %v; want ErrNotFound", err)
		}
		if _, _, err := s.ReplaceAPIKey(ctx, o.ID, app.ID, old.ID, in, time.Time{}); err == nil {
			t.Error("ReplaceAPIKey without a grace time succeeded")
		} else {
			wantValidation(t, err, "grace_until")
		}
		taken := in
		taken.Name = "v1"
		if _, _, err := s.ReplaceAPIKey(ctx, o.ID, app.ID, old.ID, taken, grace); !errors.Is(err, ErrKeyNameTaken) {
			t.Errorf("ReplaceAPIKey with a taken name error = %v; want ErrKeyNameTaken", err)
		}
		if n := MustCount(t, s, &APIKey{}); n != 1 {
			t.Fatalf("%d keys after failed replacements; want 1", n)
		}

		nk, changed, err := s.ReplaceAPIKey(ctx, o.ID, app.ID, old.ID, in, grace)
		if err != nil {
			t.Fatalf("ReplaceAPIKey: %v", err)
		}
		if nk.Kind != KeyPublishable {
			t.Errorf("new key kind %q; want the old key's (publishable)", nk.Kind)
		}
		if changed.ExpiresAt == nil || !changed.ExpiresAt.Equal(grace) || changed.ReplacedBy == nil || *changed.ReplacedBy != nk.ID {
			t.Errorf("old key after replacement = %+v; want it to expire at %v, replaced by %s", changed, grace, nk.ID)
		}
		ka, err := s.AuthenticateAPIKey(ctx, testKeyHash("v1"))
		if err != nil || ka.Expired(grace.Add(-time.Second)) || !ka.Expired(grace) {
			t.Errorf("the old key must work until %v: %+v, %v", grace, ka, err)
		}
		if _, _, err := s.ReplaceAPIKey(ctx, o.ID, app.ID, old.ID, APIKey{Name: "v3", Hash: testKeyHash("v3")}, grace); !errors.Is(err, ErrConflict) {
			t.Errorf("second ReplaceAPIKey error = %v; want ErrConflict", err)
		}

		// A grace later than the key's own expiry keeps the earlier one.
		early := grace.Add(-time.Hour)
		k3, err := s.CreateAPIKey(ctx, o.ID, app.ID, APIKey{Name: "short", Hash: testKeyHash("short"), Scopes: "devices", ExpiresAt: &early})
		if err != nil {
			t.Fatal(err)
		}
		_, changed, err = s.ReplaceAPIKey(ctx, o.ID, app.ID, k3.ID, APIKey{Name: "short 2", Hash: testKeyHash("short2"), Scopes: "devices"}, grace)
		if err != nil || !changed.ExpiresAt.Equal(early) {
			t.Errorf("ReplaceAPIKey of a key expiring before the grace: %+v, %v; want it to keep %v", changed, err, early)
		}

		// Revoking the replacement leaves the old key without a dangling name.
		if err := s.DeleteAPIKey(ctx, o.ID, app.ID, nk.ID); err != nil {
			t.Fatal(err)
		}
		list, err := s.ListAPIKeys(ctx, o.ID, app.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range list {
			if k.ID == old.ID && k.ReplacedBy != nil {
				t.Errorf("old key still names the revoked replacement %s", *k.ReplacedBy)
			}
		}
	})
}

// mustTicket stores a ticket of app expiring at exp and returns its hash.
func mustTicket(tb testing.TB, s *Store, appID string, exp time.Time, ref *string) string {
	tb.Helper()
	h := randomHex(tb, 32)
	if _, err := s.CreateTicket(context.Background(), RegistrationTicket{Hash: h, AppID: appID, ExpiresAt: exp, ExternalRef: ref}); err != nil {
		tb.Fatalf("CreateTicket: %v", err)
	}
	return h
}

func TestRegistrationTickets(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustSeedPlans(t, s)
		o := MustCreateOwner(t, s, "a@example.com", "pro")
		app := MustCreateApp(t, s, o.ID, "app")
		other := MustCreateApp(t, s, o.ID, "other")
		now := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
		ref := "user-42"

		for _, tt := range []struct {
			name  string
			t     RegistrationTicket
			field string
			err   error
		}{
			{name: "bad hash", t: RegistrationTicket{Hash: "tlt_x", AppID: app.ID, ExpiresAt: now}, field: "hash"},
			{name: "no expiry", t: RegistrationTicket{Hash: randomHex(t, 32), AppID: app.ID}, field: "expires_at"},
			{name: "bad external_ref", t: RegistrationTicket{Hash: randomHex(t, 32), AppID: app.ID, ExpiresAt: now, ExternalRef: ptr("a\nb")}, field: "external_ref"},
			{name: "long external_ref", t: RegistrationTicket{Hash: randomHex(t, 32), AppID: app.ID, ExpiresAt: now, ExternalRef: ptr(strings.Repeat("r", 129))}, field: "external_ref"},
			{name: "unknown app", t: RegistrationTicket{Hash: randomHex(t, 32), AppID: uuid.NewString(), ExpiresAt: now}, err: ErrNotFound},
		} {
			t.Run(tt.name, func(t *testing.T) {
				_, err := s.CreateTicket(ctx, tt.t)
				if tt.err != nil {
					if !errors.Is(err, tt.err) {
						t.Errorf("CreateTicket error = %v; want %v", err, tt.err)
					}
					return
				}
				wantValidation(t, err, tt.field)
			})
		}

		h := mustTicket(t, s, app.ID, now.Add(MaxTicketTTL), &ref)
		ta, err := s.AuthenticateTicket(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		if ta.AppID != app.ID || ta.OwnerID != o.ID || ta.OwnerStatus != StatusActive || ta.ExternalRef == nil || *ta.ExternalRef != ref ||
			!ta.ExpiresAt.Equal(now.Add(MaxTicketTTL)) {
			t.Errorf("AuthenticateTicket = %+v", ta)
		}
		if ta.Expired(now) || !ta.Expired(now.Add(MaxTicketTTL)) {
			t.Error("TicketAuth.Expired is wrong at the edges")
		}
		use := &TicketUse{Hash: h, Now: now}

		// Another app's registration cannot spend it; a refused
		// registration (a known key) keeps it.
		if _, err := s.RegisterDevice(ctx, other.ID, NewDevice{PublicKey: randomKey(t), Ticket: use}); !errors.Is(err, ErrTicketInvalid) {
			t.Errorf("RegisterDevice in another app with the ticket error = %v; want ErrTicketInvalid", err)
		}
		known := MustRegister(t, s, app.ID)
		if _, err := s.RegisterDevice(ctx, app.ID, NewDevice{PublicKey: known.PublicKey, Ticket: use}); !errors.Is(err, ErrConflict) {
			t.Errorf("RegisterDevice with a known key error = %v; want ErrConflict", err)
		}
		if n := MustCount(t, s, &RegistrationTicket{}); n != 1 {
			t.Fatalf("%d tickets after refused registrations; want 1", n)
		}
		// An expired ticket admits nothing.
		late := &TicketUse{Hash: h, Now: now.Add(MaxTicketTTL)}
		if _, err := s.RegisterDevice(ctx, app.ID, NewDevice{PublicKey: randomKey(t), Ticket: late}); !errors.Is(err, ErrTicketInvalid) {
			t.Errorf("RegisterDevice with an expired ticket error = %v; want ErrTicketInvalid", err)
		}

		// Many registrations race for one ticket: exactly one wins, and
		// the ticket is gone.
		const racers = 16
		errs := make([]error, racers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range racers {
			wg.Go(func() {
				<-start
				_, errs[i] = s.RegisterDevice(ctx, app.ID, NewDevice{PublicKey: randomKey(t), Ticket: use})
			})
		}
		close(start)
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, ErrTicketInvalid):
				t.Errorf("racing registration: %v", err)
			}
		}
		if won != 1 {
			t.Errorf("%d registrations won the ticket; want 1", won)
		}
		if n := MustCount(t, s, &RegistrationTicket{}); n != 0 {
			t.Errorf("%d tickets after use; want 0 (a used ticket is deleted)", n)
		}
		if _, err := s.AuthenticateTicket(ctx, h); !errors.Is(err, ErrNotFound) {
			t.Errorf("AuthenticateTicket after use error = %v; want ErrNotFound", err)
		}

		// Purging removes the expired tickets only; DeleteTicket removes one.
		expired := mustTicket(t, s, app.ID, now.Add(-time.Second), nil)
		fresh := mustTicket(t, s, app.ID, now.Add(time.Minute), nil)
		edge := mustTicket(t, s, other.ID, now, nil)
		n, err := s.PurgeExpiredTickets(ctx, now)
		if err != nil || n != 2 {
			t.Errorf("PurgeExpiredTickets = %d, %v; want 2", n, err)
		}
		for h, want := range map[string]error{expired: ErrNotFound, edge: ErrNotFound, fresh: nil} {
			if _, err := s.AuthenticateTicket(ctx, h); !errors.Is(err, want) {
				t.Errorf("AuthenticateTicket after purge error = %v; want %v", err, want)
			}
		}
		if err := s.DeleteTicket(ctx, fresh); err != nil {
			t.Fatal(err)
		}
		if n := MustCount(t, s, &RegistrationTicket{}); n != 0 {
			t.Errorf("%d tickets left; want 0", n)
		}

		// Tickets go with their app.
		mustTicket(t, s, other.ID, now.Add(time.Minute), nil)
		if err := s.DeleteApp(ctx, o.ID, other.ID); err != nil {
			t.Fatal(err)
		}
		if n := MustCount(t, s, &RegistrationTicket{}); n != 0 {
			t.Errorf("%d tickets after deleting their app; want 0", n)
		}
	})
}

// TestTicketAcrossReplicas mints a ticket on one store and spends it on
// another over the same database, as two control-plane replicas do: the
// first to register wins on any replica.
func TestTicketAcrossReplicas(t *testing.T) {
	eachBackend(t, func(t *testing.T, b testBackend) {
		ctx := context.Background()
		cfg := b.Config(t)
		s1, s2 := MustOpen(t, cfg), MustOpen(t, cfg)
		MustSeedPlans(t, s1)
		o := MustCreateOwner(t, s1, "a@example.com", "pro")
		app := MustCreateApp(t, s1, o.ID, "app")
		now := time.Now()
		h := mustTicket(t, s1, app.ID, now.Add(time.Minute), nil)
		if _, err := s2.AuthenticateTicket(ctx, h); err != nil {
			t.Fatalf("replica 2 does not see the ticket: %v", err)
		}
		if _, err := s2.RegisterDevice(ctx, app.ID, NewDevice{PublicKey: randomKey(t), Ticket: &TicketUse{Hash: h, Now: now}}); err != nil {
			t.Fatalf("RegisterDevice on replica 2: %v", err)
		}
		if _, err := s1.RegisterDevice(ctx, app.ID, NewDevice{PublicKey: randomKey(t), Ticket: &TicketUse{Hash: h, Now: now}}); !errors.Is(err, ErrTicketInvalid) {
			t.Errorf("RegisterDevice on replica 1 with the spent ticket error = %v; want ErrTicketInvalid", err)
		}
	})
}

func TestDeviceTokens(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustSeedPlans(t, s)
		o := MustCreateOwner(t, s, "a@example.com", "pro")
		app := MustCreateApp(t, s, o.ID, "app")
		other := MustCreateApp(t, s, o.ID, "other")
		tok1 := randomHex(t, 32)
		if _, err := s.RegisterDevice(ctx, app.ID, NewDevice{PublicKey: randomKey(t), TokenHash: "tld_notahash"}); err == nil {
			t.Error("RegisterDevice took a token that is no hash")
		} else {
			wantValidation(t, err, "token_hash")
		}
		d, err := s.RegisterDevice(ctx, app.ID, NewDevice{PublicKey: randomKey(t), TokenHash: tok1})
		if err != nil {
			t.Fatal(err)
		}
		auth := func(h string) (DeviceAuth, error) { return s.AuthenticateDeviceToken(ctx, h) }
		want := DeviceAuth{DeviceID: d.ID, AppID: app.ID, OwnerID: o.ID, OwnerStatus: StatusActive}
		if got, err := auth(tok1); err != nil || got != want {
			t.Errorf("AuthenticateDeviceToken = %+v, %v; want %+v", got, err, want)
		}
		if _, err := s.RegisterDevice(ctx, app.ID, NewDevice{PublicKey: randomKey(t), TokenHash: tok1}); !errors.Is(err, ErrConflict) {
			t.Errorf("a second device with the same token hash: error %v; want ErrConflict", err)
		}

		// Rotation replaces the token.
		tok2 := randomHex(t, 32)
		if _, err := s.RotateDevice(ctx, app.ID, d.ID, randomKey(t), tok2); err != nil {
			t.Fatal(err)
		}
		if _, err := auth(tok1); !errors.Is(err, ErrNotFound) {
			t.Errorf("old token after rotation: %v; want ErrNotFound", err)
		}
		if got, err := auth(tok2); err != nil || got != want {
			t.Errorf("new token after rotation = %+v, %v", got, err)
		}
		// A rotation without a token leaves none.
		if _, err := s.RotateDevice(ctx, app.ID, d.ID, randomKey(t), ""); err != nil {
			t.Fatal(err)
		}
		if _, err := auth(tok2); !errors.Is(err, ErrNotFound) {
			t.Errorf("token after a rotation without one: %v; want ErrNotFound", err)
		}

		// A reset, by the app only.
		tok3 := randomHex(t, 32)
		if err := s.ResetDeviceToken(ctx, other.ID, d.ID, tok3); !errors.Is(err, ErrNotFound) {
			t.Errorf("ResetDeviceToken through another app: %v; want ErrNotFound", err)
		}
		if err := s.ResetDeviceToken(ctx, app.ID, d.ID, "x"); err == nil {
			t.Error("ResetDeviceToken took a token that is no hash")
		}
		if err := s.ResetDeviceToken(ctx, app.ID, d.ID, tok3); err != nil {
			t.Fatal(err)
		}
		if got, err := auth(tok3); err != nil || got != want {
			t.Errorf("token after reset = %+v, %v", got, err)
		}

		// The export names the token without revealing its hash.
		ex, err := s.ExportOwner(ctx, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got := ex["devices"][0]["token_hash"]; got != Withheld {
			t.Errorf("export of devices.token_hash = %v; want %q", got, Withheld)
		}
		if _, ok := ex["registration_tickets"]; !ok {
			t.Error("the export has no registration_tickets table")
		}

		// Deleting the device deletes its token.
		if err := s.DeleteDevice(ctx, app.ID, d.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := auth(tok3); !errors.Is(err, ErrNotFound) {
			t.Errorf("token of a deleted device: %v; want ErrNotFound", err)
		}
	})
}

func TestRegistrationCapSettings(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustSeedPlans(t, s)
		o := MustCreateOwner(t, s, "a@example.com", "pro")
		app := MustCreateApp(t, s, o.ID, "app")
		for _, bad := range []int{-1, MaxRegistrationCap + 1} {
			if _, err := s.UpdateApp(ctx, o.ID, app.ID, AppUpdate{RegistrationCap: &bad}); err == nil {
				t.Errorf("UpdateApp(registration_cap %d) succeeded", bad)
			} else {
				wantValidation(t, err, "registration_cap")
			}
		}
		if _, err := s.UpdateApp(ctx, o.ID, app.ID, AppUpdate{RegistrationCap: ptr(500)}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateAPIKey(ctx, o.ID, app.ID, APIKey{Name: "p", Hash: testKeyHash("p"), Scopes: "devices", Kind: KeyPublishable}); err != nil {
			t.Fatal(err)
		}
		if ka, err := s.AuthenticateAPIKey(ctx, testKeyHash("p")); err != nil || ka.RegistrationCap != 500 {
			t.Errorf("KeyAuth.RegistrationCap = %d, %v; want 500", ka.RegistrationCap, err)
		}
		if err := s.AddRegistrationCapHits(ctx, map[string]int64{app.ID: 3, uuid.NewString(): 9}); err != nil {
			t.Fatal(err)
		}
		if err := s.AddRegistrationCapHits(ctx, map[string]int64{app.ID: 2}); err != nil {
			t.Fatal(err)
		}
		a, err := s.GetApp(ctx, o.ID, app.ID)
		if err != nil || a.RegistrationCapHits != 5 || a.RegistrationCap != 500 {
			t.Errorf("app = %+v, %v; want cap 500 with 5 hits", a, err)
		}
	})
}
