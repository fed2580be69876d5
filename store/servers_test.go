package store

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
)

// MustInsertNode inserts a node directly through the write handle (there is
// no node repository yet).
func MustInsertNode(tb testing.TB, s *Store, pool Pool, name string, enabled bool) Node {
	tb.Helper()
	n := Node{ID: uuid.NewString(), PoolID: pool.ID, Name: name, Endpoint: name + ".example.net:51820",
		PublicKey: randomKey(tb), CredentialHash: randomHex(tb, 32), Enabled: enabled}
	// Select("*") so that Enabled=false is written, not the column default.
	if err := s.w.Select("*").Create(&n).Error; err != nil {
		tb.Fatalf("insert node: %v", err)
	}
	return n
}

// MustInsertPoolAt inserts a pool in a region, dedicated to owner when owner
// is not "".
func MustInsertPoolAt(tb testing.TB, s *Store, name, region, owner string) Pool {
	tb.Helper()
	p := Pool{ID: uuid.NewString(), Name: name, Region: region, Country: "DE", City: "Frankfurt"}
	if owner != "" {
		p.OwnerID = &owner
	}
	if err := s.w.Create(&p).Error; err != nil {
		tb.Fatalf("insert pool: %v", err)
	}
	return p
}

// MustGrantPool lets a plan use a pool.
func MustGrantPool(tb testing.TB, s *Store, planID, poolID string) {
	tb.Helper()
	if err := s.w.Create(&PlanPool{PlanID: planID, PoolID: poolID}).Error; err != nil {
		tb.Fatalf("insert plan pool: %v", err)
	}
}

// serverOf is the Server the store should report for n: without the node's
// credential hash.
func serverOf(n Node, p Pool) Server {
	n.CredentialHash = ""
	return Server{Node: n, PoolName: p.Name, Region: p.Region, Country: p.Country, City: p.City}
}

func TestListServers(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		plans := MustSeedPlans(t, s)
		alice := MustCreateOwner(t, s, "alice@example.com", "pro")
		bob := MustCreateOwner(t, s, "bob@example.com", "pro")
		carol := MustCreateOwner(t, s, "carol@example.com", "free")

		eu := MustInsertPoolAt(t, s, "eu", "eu-central", "")
		us := MustInsertPoolAt(t, s, "us", "us-east", "")
		asia := MustInsertPoolAt(t, s, "asia", "ap-south", "")
		aliceOwn := MustInsertPoolAt(t, s, "alice-own", "eu-west", alice.ID)
		bobOwn := MustInsertPoolAt(t, s, "bob-own", "eu-north", bob.ID)
		MustGrantPool(t, s, plans["pro"].ID, eu.ID)
		MustGrantPool(t, s, plans["pro"].ID, us.ID)
		MustGrantPool(t, s, plans["free"].ID, eu.ID)

		eu1 := MustInsertNode(t, s, eu, "eu-1", true)
		eu2 := MustInsertNode(t, s, eu, "eu-2", true)
		euOff := MustInsertNode(t, s, eu, "eu-0-off", false)
		us1 := MustInsertNode(t, s, us, "us-1", true)
		asia1 := MustInsertNode(t, s, asia, "asia-1", true)
		alice1 := MustInsertNode(t, s, aliceOwn, "alice-1", true)
		aliceOff := MustInsertNode(t, s, aliceOwn, "alice-0-off", false)
		bob1 := MustInsertNode(t, s, bobOwn, "bob-1", true)

		check := func(t *testing.T, want map[string][]Server) {
			t.Helper()
			for name, id := range map[string]string{"alice": alice.ID, "bob": bob.ID, "carol": carol.ID, "stranger": uuid.NewString()} {
				got, err := s.ListServers(ctx, id)
				if err != nil {
					t.Fatalf("ListServers(%s): %v", name, err)
				}
				if diff := cmp.Diff(want[name], got); diff != "" {
					t.Errorf("ListServers(%s) (-want +got):\n%s", name, diff)
				}
			}
		}
		// Ordered by region, then name.
		want := map[string][]Server{
			"alice": {serverOf(eu1, eu), serverOf(eu2, eu), serverOf(alice1, aliceOwn), serverOf(us1, us)},
			"bob":   {serverOf(eu1, eu), serverOf(eu2, eu), serverOf(bob1, bobOwn), serverOf(us1, us)},
			"carol": {serverOf(eu1, eu), serverOf(eu2, eu)},
		}
		check(t, want)

		for _, tt := range []struct {
			name  string
			owner string
			node  Node
			pool  Pool
		}{
			{"granted", alice.ID, us1, us},
			{"own dedicated", alice.ID, alice1, aliceOwn},
			{"free plan", carol.ID, eu2, eu},
		} {
			t.Run("GetServer "+tt.name, func(t *testing.T) {
				got, err := s.GetServer(ctx, tt.owner, tt.node.ID)
				if err != nil {
					t.Fatalf("GetServer: %v", err)
				}
				if diff := cmp.Diff(serverOf(tt.node, tt.pool), got); diff != "" {
					t.Errorf("GetServer (-want +got):\n%s", diff)
				}
			})
		}
		for _, tt := range []struct {
			name  string
			owner string
			node  Node
		}{
			{"not granted", alice.ID, asia1},
			{"not granted to the plan", carol.ID, us1},
			{"disabled", alice.ID, euOff},
			{"own disabled", alice.ID, aliceOff},
			{"another owner's dedicated", alice.ID, bob1},
			{"dedicated to another owner", carol.ID, alice1},
			{"unknown owner", uuid.NewString(), eu1},
		} {
			t.Run("GetServer "+tt.name, func(t *testing.T) {
				if _, err := s.GetServer(ctx, tt.owner, tt.node.ID); !errors.Is(err, ErrNotFound) {
					t.Errorf("GetServer error = %v; want ErrNotFound", err)
				}
			})
		}
		if _, err := s.GetServer(ctx, alice.ID, uuid.NewString()); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetServer(unknown node) error = %v; want ErrNotFound", err)
		}

		// A dedicated pool stays its owner's even if a plan names it: the
		// other owners on that plan must not see it.
		t.Run("dedicated pool granted to a plan", func(t *testing.T) {
			MustGrantPool(t, s, plans["pro"].ID, bobOwn.ID)
			check(t, want)
			if _, err := s.GetServer(ctx, alice.ID, bob1.ID); !errors.Is(err, ErrNotFound) {
				t.Errorf("GetServer(another owner's dedicated node) error = %v; want ErrNotFound", err)
			}
		})
	})
}
