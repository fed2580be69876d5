package store

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const testIssuer = "https://id.example.com/"

// TestIdentities links, finds, lists and unlinks single sign-on
// identities, on every backend.
func TestIdentities(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustSeedPlans(t, s)
		a := MustCreateOwner(t, s, "a@example.com", "")
		b := MustCreateOwner(t, s, "b@example.com", "")

		ia, err := s.LinkIdentity(ctx, a.ID, testIssuer, "sub-a")
		if err != nil {
			t.Fatalf("LinkIdentity: %v", err)
		}
		got, err := s.GetOwnerByIdentity(ctx, testIssuer, "sub-a")
		if err != nil || got.ID != a.ID {
			t.Fatalf("GetOwnerByIdentity = %s, %v; want %s", got.ID, err, a.ID)
		}
		// The same subject at another issuer is another person.
		if _, err := s.GetOwnerByIdentity(ctx, "https://other.example.com/", "sub-a"); !errors.Is(err, ErrNotFound) {
			t.Errorf("another issuer's sub-a: %v; want ErrNotFound", err)
		}
		// An identity links to one account only.
		if _, err := s.LinkIdentity(ctx, b.ID, testIssuer, "sub-a"); !errors.Is(err, ErrConflict) {
			t.Errorf("linking sub-a to b: %v; want ErrConflict", err)
		}
		if _, err := s.LinkIdentity(ctx, "no-such-owner", testIssuer, "sub-x"); !errors.Is(err, ErrNotFound) {
			t.Errorf("linking to no account: %v; want ErrNotFound", err)
		}
		for _, bad := range [][2]string{{"", "s"}, {testIssuer, ""}, {testIssuer, string(make([]byte, 256))}, {testIssuer, "a\x00b"}} {
			var ve *ValidationError
			if _, err := s.LinkIdentity(ctx, a.ID, bad[0], bad[1]); !errors.As(err, &ve) {
				t.Errorf("LinkIdentity(%q, %q): %v; want a ValidationError", bad[0], bad[1], err)
			}
		}
		ia2, err := s.LinkIdentity(ctx, a.ID, "https://other.example.com/", "sub-a")
		if err != nil {
			t.Fatal(err)
		}
		list, err := s.ListIdentities(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]OwnerIdentity{ia, ia2}, list); diff != "" {
			t.Errorf("ListIdentities (-want +got):\n%s", diff)
		}
		if list, _ := s.ListIdentities(ctx, b.ID); len(list) != 0 {
			t.Errorf("b's identities = %v; want none", list)
		}

		// Another owner cannot unlink a's identity; keepOne keeps the last.
		if err := s.UnlinkIdentity(ctx, b.ID, ia.ID, false); !errors.Is(err, ErrNotFound) {
			t.Errorf("b unlinking a's identity: %v; want ErrNotFound", err)
		}
		if err := s.UnlinkIdentity(ctx, a.ID, ia.ID, true); err != nil {
			t.Fatalf("unlinking one of two: %v", err)
		}
		if err := s.UnlinkIdentity(ctx, a.ID, ia2.ID, true); !errors.Is(err, ErrLastIdentity) {
			t.Errorf("unlinking the last with keepOne: %v; want ErrLastIdentity", err)
		}
		if err := s.UnlinkIdentity(ctx, a.ID, ia2.ID, false); err != nil {
			t.Fatalf("unlinking the last: %v", err)
		}
		if _, err := s.GetOwnerByIdentity(ctx, testIssuer, "sub-a"); !errors.Is(err, ErrNotFound) {
			t.Errorf("after unlinking: %v; want ErrNotFound", err)
		}
		// Once unlinked, the identity may link to another account.
		if _, err := s.LinkIdentity(ctx, b.ID, testIssuer, "sub-a"); err != nil {
			t.Errorf("relinking to b: %v", err)
		}
	})
}

// TestCreateOwnerWithIdentity: the account and its identity are created
// together or not at all.
func TestCreateOwnerWithIdentity(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustSeedPlans(t, s)
		o, err := s.CreateOwnerWithIdentity(ctx, Owner{Email: "sso@example.com", PasswordHash: "$argon2id$x", Role: RoleOwner}, "", testIssuer, "sub-1")
		if err != nil {
			t.Fatalf("CreateOwnerWithIdentity: %v", err)
		}
		if got, err := s.GetOwnerByIdentity(ctx, testIssuer, "sub-1"); err != nil || got.ID != o.ID || got.Email != "sso@example.com" {
			t.Errorf("GetOwnerByIdentity = %+v, %v", got, err)
		}
		// A linked identity: no account is left behind.
		if _, err := s.CreateOwnerWithIdentity(ctx, Owner{Email: "second@example.com", PasswordHash: "$argon2id$x", Role: RoleOwner}, "", testIssuer, "sub-1"); !errors.Is(err, ErrConflict) {
			t.Errorf("second account with sub-1: %v; want ErrConflict", err)
		}
		if _, err := s.GetOwnerByEmail(ctx, "second@example.com"); !errors.Is(err, ErrNotFound) {
			t.Errorf("the refused account exists: %v", err)
		}
		// A taken email: no identity is left behind.
		if _, err := s.CreateOwnerWithIdentity(ctx, Owner{Email: "sso@example.com", PasswordHash: "$argon2id$x", Role: RoleOwner}, "", testIssuer, "sub-2"); !errors.Is(err, ErrConflict) {
			t.Errorf("taken email: %v; want ErrConflict", err)
		}
		if n := MustCountWhere(t, s, &OwnerIdentity{}, "subject = ?", "sub-2"); n != 0 {
			t.Errorf("%d identities sub-2 left behind", n)
		}
	})
}

// TestIdentitiesExportAndDelete: the export lists an owner's identities
// (issuer and subject, nothing else) and deleting the account removes them.
func TestIdentitiesExportAndDelete(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustSeedPlans(t, s)
		a := MustCreateOwner(t, s, "a@example.com", "")
		b := MustCreateOwner(t, s, "b@example.com", "")
		ia, err := s.LinkIdentity(ctx, a.ID, testIssuer, "sub-a")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.LinkIdentity(ctx, b.ID, testIssuer, "sub-b"); err != nil {
			t.Fatal(err)
		}
		exp, err := s.ExportOwner(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := []map[string]any{{"id": ia.ID, "owner_id": a.ID, "issuer": testIssuer, "subject": "sub-a"}}
		if diff := cmp.Diff(want, exp["owner_identities"]); diff != "" {
			t.Errorf("exported identities (-want +got):\n%s", diff)
		}
		if err := s.DeleteOwner(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		if n := MustCountWhere(t, s, &OwnerIdentity{}, "owner_id = ?", a.ID); n != 0 {
			t.Errorf("%d identities of the deleted account remain", n)
		}
		if n := MustCountWhere(t, s, &OwnerIdentity{}, "owner_id = ?", b.ID); n != 1 {
			t.Errorf("b has %d identities; want 1", n)
		}
	})
}
