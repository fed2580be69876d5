package client_test

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/controlplane/client"
)

// TestPoolPlansAndServerExplanation: AdminCreatePool puts a pool in the
// plans it names, pools say which plans include them, and ListServers says
// why an app has no server.
func TestPoolPlansAndServerExplanation(t *testing.T) {
	ctx := context.Background()
	url := newServer(t)
	op := mustNew(t, url)
	if _, err := op.Login(ctx, opEmail, opPassword); err != nil {
		t.Fatal(err)
	}
	own := owner(t, url, "ida@example.com")
	if _, err := own.ChangePlan(ctx, "pro"); err != nil {
		t.Fatal(err)
	}
	app, err := own.CreateApp(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	key, err := own.CreateAPIKey(ctx, app.ID, "k")
	if err != nil {
		t.Fatal(err)
	}
	apps := mustNew(t, url, client.WithAPIKey(key.Key))

	list, err := apps.ListServers(ctx)
	if err != nil || len(list.Servers) != 0 || list.Explanation == nil || list.Explanation.Code != api.NoServersPlanIncludesNoPool {
		t.Fatalf("servers on a plan without pools: %+v, %v", list, err)
	}

	lonely, err := op.AdminCreatePool(ctx, api.PoolInput{Name: "lonely", Region: "eu", Country: "DE", City: "Berlin"})
	if err != nil || !lonely.InNoPlan {
		t.Fatalf("pool without plans: %+v, %v", lonely, err)
	}
	fra, err := op.AdminCreatePool(ctx, api.PoolInput{Name: "fra", Region: "eu", Country: "DE", City: "Frankfurt", Plans: []string{"pro"}})
	if err != nil || fra.InNoPlan || !slices.Equal(fra.Plans, []string{"pro"}) {
		t.Fatalf("pool in pro: %+v, %v", fra, err)
	}
	_, err = op.AdminCreatePool(ctx, api.PoolInput{Name: "x", Region: "eu", Country: "DE", City: "Berlin", Plans: []string{"gold"}})
	wantCode(t, err, http.StatusBadRequest, api.CodeInvalidRequest)
	// Owners' dedicated pools are in no plan.
	_, err = own.CreatePool(ctx, api.PoolInput{Name: "home", Region: "eu", Country: "DE", City: "Berlin", Plans: []string{"pro"}})
	wantCode(t, err, http.StatusBadRequest, api.CodeInvalidRequest)

	pools, err := op.AdminPools(ctx)
	if err != nil || len(pools) != 2 {
		t.Fatalf("admin pools: %+v, %v", pools, err)
	}
	for _, p := range pools {
		if p.InNoPlan != (p.Name == "lonely") {
			t.Errorf("pool %s: in_no_plan %v", p.Name, p.InNoPlan)
		}
	}

	list, err = apps.ListServers(ctx)
	if err != nil || list.Explanation == nil || list.Explanation.Code != api.NoServersNoEnabledNode {
		t.Fatalf("servers of a pool without nodes: %+v, %v", list, err)
	}
	tok, err := op.AdminCreateEnrollmentToken(ctx, fra.ID)
	if err != nil {
		t.Fatal(err)
	}
	enroll(t, url, tok.Token, "fra-1")
	list, err = apps.ListServers(ctx)
	if err != nil || len(list.Servers) != 1 || list.Explanation != nil {
		t.Fatalf("servers with a node: %+v, %v", list, err)
	}
	if servers, err := apps.Servers(ctx); err != nil || len(servers) != 1 {
		t.Fatalf("Servers: %+v, %v", servers, err)
	}
}
