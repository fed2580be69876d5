package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// TestPoolPlansAndEmptyServers: 'admin pools create --plan' puts a new pool
// in plans, a pool in no plan is flagged in 'admin pools list' (and noted
// when created or given a token), and 'servers list' says why there is no
// server instead of printing an empty table.
func TestPoolPlansAndEmptyServers(t *testing.T) {
	url, _ := newServer(t)
	s := "--server=" + url
	ok(t, password, s, "signup", "--email", "eve@example.com", "--password-stdin")
	ok(t, "", s, "plan", "set", "pro")
	app := decode[api.App](t, ok(t, "", s, "apps", "create", "demo", "-o", "json"))
	key := decode[api.APIKeyCreated](t, ok(t, "", s, "keys", "create", app.ID, "k", "-o", "json"))
	k := "--api-key=" + key.Key

	// The seeded plans include no pool.
	r := ok(t, "", s, k, "servers", "list")
	if !strings.HasPrefix(r.stdout, "No servers: Your plan (Pro) includes no server pool") ||
		!strings.Contains(r.stdout, "ask the operator") || strings.Contains(r.stdout, "ENDPOINT") {
		t.Fatalf("servers list on a plan without pools:\n%s", r.stdout)
	}
	r = ok(t, "", s, k, "servers", "list", "-o", "json")
	if got := decode[[]api.Server](t, r); got == nil || len(got) != 0 || !strings.Contains(r.stderr, "includes no server pool") {
		t.Fatalf("servers list -o json: %+v, stderr %q", got, r.stderr)
	}
	r = cliRun(t, "", s, k, "devices", "config", "some-device")
	if r.code != 1 || !strings.Contains(r.stderr, "no server to write a config for: Your plan (Pro) includes no server pool") {
		t.Fatalf("devices config without servers: %+v", r)
	}

	ok(t, opPassword, s, "login", "--email", opEmail, "--password-stdin")
	create := func(name string, more ...string) []string {
		return append([]string{s, "admin", "pools", "create", "--name", name, "--region", "eu", "--country", "DE", "--city", "Berlin"}, more...)
	}
	r = ok(t, "", create("fra", "--plan", "pro", "--plan", "business", "-o", "json")...)
	fra := decode[api.Pool](t, r)
	if fra.InNoPlan || !slices.Equal(fra.Plans, []string{"business", "pro"}) || strings.Contains(r.stderr, "in no plan") {
		t.Fatalf("pools create --plan: %+v, stderr %q", fra, r.stderr)
	}
	r = ok(t, "", create("lonely", "-o", "json")...)
	if p := decode[api.Pool](t, r); !p.InNoPlan || !strings.Contains(r.stderr, "Pool lonely is in no plan: its nodes serve nobody") ||
		!strings.Contains(r.stderr, "traceless admin plans update PLAN --add-pool "+p.ID) {
		t.Fatalf("pools create without --plan: %+v, stderr %q", p, r.stderr)
	}
	if r := cliRun(t, "", create("ghost", "--plan", "gold")...); r.code != 1 ||
		!strings.HasPrefix(r.stderr, "traceless: invalid_request: ") || !strings.Contains(r.stderr, "gold") {
		t.Fatalf("pools create --plan gold: %+v", r)
	}

	r = ok(t, "", s, "admin", "pools", "list")
	lines := map[string]string{}
	for _, l := range strings.Split(r.stdout, "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			lines[f[1]] = l
		}
	}
	if !strings.Contains(lines["NAME"], "PLANS") || !strings.HasSuffix(lines["fra"], "business,pro") ||
		!strings.HasSuffix(lines["lonely"], inNoPlanCell) || !strings.Contains(r.stderr, "Pool lonely is in no plan") {
		t.Fatalf("admin pools list:\n%s\nstderr %s", r.stdout, r.stderr)
	}
	if r := ok(t, "", s, "admin", "pools", "token", "lonely"); !strings.Contains(r.stderr, "Pool lonely is in no plan") {
		t.Fatalf("token for a pool in no plan: stderr %q", r.stderr)
	}
	r = ok(t, "", s, "admin", "pools", "token", "fra")
	if strings.Contains(r.stderr, "in no plan") {
		t.Fatalf("token for a pool in plans: stderr %q", r.stderr)
	}
	token := enrollToken(r.stdout)

	// --add-pool keeps the plan's other pools.
	plan := decode[api.Plan](t, ok(t, "", s, "admin", "plans", "update", "pro", "--add-pool", "lonely", "-o", "json"))
	if !slices.Contains(plan.Pools, fra.ID) || len(plan.Pools) != 2 {
		t.Fatalf("plans update --add-pool: %+v", plan)
	}
	if r := ok(t, "", s, "admin", "pools", "list"); strings.Contains(r.stdout+r.stderr, "in no plan") || strings.Contains(r.stdout, inNoPlanCell) {
		t.Fatalf("admin pools list after --add-pool:\n%s\n%s", r.stdout, r.stderr)
	}

	// The plan's pools have no node yet; then one joins.
	if r := ok(t, "", s, k, "servers", "list"); !strings.HasPrefix(r.stdout, "No servers: The server pools your plan includes have no enabled node yet") {
		t.Fatalf("servers list without nodes:\n%s", r.stdout)
	}
	nodeID := enrollNode(t, url, token, "fra-1", 0, allGood)
	if r := ok(t, "", s, k, "servers", "list"); !strings.Contains(r.stdout, "ENDPOINT") || !strings.Contains(r.stdout, nodeID) ||
		strings.Contains(r.stdout+r.stderr, "No servers") {
		t.Fatalf("servers list with a node:\n%s\n%s", r.stdout, r.stderr)
	}
}
