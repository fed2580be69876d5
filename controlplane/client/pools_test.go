package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/controlplane/client"
)

// agentCall posts body as JSON to an agent route with plain net/http (the
// SDK does not cover the agent API) and decodes the answer into out.
func agentCall(t *testing.T, url, path, bearer string, body, out any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, url+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer res.Body.Close()
	if res.StatusCode/100 != 2 {
		var eb api.ErrorBody
		json.NewDecoder(res.Body).Decode(&eb)
		t.Fatalf("POST %s: %d %+v", path, res.StatusCode, eb.Error)
	}
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		t.Fatalf("POST %s: decode: %v", path, err)
	}
}

// enroll enrolls a node with an enrollment token, as traceless-agent does.
func enroll(t *testing.T, url, token, name string) api.EnrollResponse {
	t.Helper()
	var out api.EnrollResponse
	agentCall(t, url, "/agent/v1/enroll", "", api.EnrollRequest{Token: token, Name: name, PublicKey: randomKey(t),
		Endpoint: "192.0.2.10:51820"}, &out)
	if out.NodeID == "" || out.Credential == "" {
		t.Fatalf("enroll: %+v", out)
	}
	return out
}

// reportStatus sends a node's status report with the given posture.
func reportStatus(t *testing.T, url, credential string, peers int, p api.Posture) {
	t.Helper()
	var tok api.NodeToken
	agentCall(t, url, "/agent/v1/token", credential, struct{}{}, &tok)
	var res api.StatusResponse
	agentCall(t, url, "/agent/v1/status", tok.Token, api.NodeStatus{AppliedRevision: 1, PeerCount: peers,
		InterfaceUp: true, Version: "test", Posture: p}, &res)
}

var goodPosture = api.Posture{ConntrackAccountingOff: true, ConntrackTimestampsOff: true, NoLogRules: true,
	SwapOff: true, NotDumpable: true, CoreSizeZero: true, NoStateOnDisk: true}

func TestOwnerPoolsAndNodes(t *testing.T) {
	ctx := context.Background()
	url := newServer(t)
	c := owner(t, url, "pat@example.com")

	in := api.PoolInput{Name: "home", Region: "eu-central", Country: "DE", City: "Berlin"}
	_, err := c.CreatePool(ctx, in)
	wantCode(t, err, http.StatusForbidden, api.CodePlanLimit) // the free plan has no own nodes
	if _, err := c.ChangePlan(ctx, "pro"); err != nil {
		t.Fatal(err)
	}
	_, err = c.CreatePool(ctx, api.PoolInput{Name: "x", Region: "eu", Country: "Germany", City: "Berlin"})
	wantCode(t, err, http.StatusBadRequest, api.CodeInvalidRequest)

	pool, err := c.CreatePool(ctx, in)
	if err != nil || pool.ID == "" || pool.Name != "home" || pool.OwnerID == nil {
		t.Fatalf("create pool: %+v, %v", pool, err)
	}
	pools, err := c.Pools(ctx)
	if err != nil || len(pools) != 1 || pools[0].ID != pool.ID {
		t.Fatalf("pools: %+v, %v", pools, err)
	}

	tok, err := c.CreateEnrollmentToken(ctx, pool.ID)
	if err != nil || !strings.HasPrefix(tok.Token, "tle_") || tok.PoolID != pool.ID || tok.ExpiresAt.IsZero() {
		t.Fatalf("enrollment token: %+v, %v", tok, err)
	}
	node := enroll(t, url, tok.Token, "home-1")
	reportStatus(t, url, node.Credential, 0, goodPosture)

	nodes, err := c.Nodes(ctx)
	if err != nil || len(nodes) != 1 {
		t.Fatalf("nodes: %+v, %v", nodes, err)
	}
	n := nodes[0]
	if n.ID != node.NodeID || n.Name != "home-1" || n.PoolID != pool.ID || !n.Enabled || !n.Online ||
		n.Status == nil || !n.Status.Posture.OK() {
		t.Fatalf("node: %+v", n)
	}

	// Another owner sees none of it.
	other := owner(t, url, "quinn@example.com")
	if got, err := other.Nodes(ctx); err != nil || len(got) != 0 {
		t.Fatalf("other owner's nodes: %+v, %v", got, err)
	}
	err = other.DeleteNode(ctx, n.ID)
	wantCode(t, err, http.StatusNotFound, api.CodeNotFound)
	_, err = other.CreateEnrollmentToken(ctx, pool.ID)
	wantCode(t, err, http.StatusNotFound, api.CodeNotFound)
	err = other.DeletePool(ctx, pool.ID)
	wantCode(t, err, http.StatusNotFound, api.CodeNotFound)

	if err := c.DeleteNode(ctx, n.ID); err != nil {
		t.Fatalf("delete node: %v", err)
	}
	if got, err := c.Nodes(ctx); err != nil || len(got) != 0 {
		t.Fatalf("nodes after delete: %+v, %v", got, err)
	}
	if err := c.DeletePool(ctx, pool.ID); err != nil {
		t.Fatalf("delete pool: %v", err)
	}
	err = c.DeletePool(ctx, pool.ID)
	wantCode(t, err, http.StatusNotFound, api.CodeNotFound)
}

func TestAdminPoolsNodesOwners(t *testing.T) {
	ctx := context.Background()
	url := newServer(t)
	op := mustNew(t, url)
	if _, err := op.Login(ctx, opEmail, opPassword); err != nil {
		t.Fatal(err)
	}
	bob := owner(t, url, "bob@example.com")
	_, err := bob.AdminPools(ctx)
	wantCode(t, err, http.StatusForbidden, api.CodeForbidden)
	_, err = bob.AdminNodes(ctx)
	wantCode(t, err, http.StatusForbidden, api.CodeForbidden)

	pool, err := op.AdminCreatePool(ctx, api.PoolInput{Name: "eu-1", Region: "eu", Country: "NL", City: "Amsterdam"})
	if err != nil || pool.OwnerID != nil {
		t.Fatalf("create pool: %+v, %v", pool, err)
	}
	_, err = op.AdminCreatePool(ctx, api.PoolInput{Name: "eu-1", Region: "eu", Country: "NL", City: "Amsterdam"})
	wantCode(t, err, http.StatusConflict, api.CodeConflict)
	pools, err := op.AdminPools(ctx)
	if err != nil || len(pools) != 1 || pools[0].ID != pool.ID {
		t.Fatalf("pools: %+v, %v", pools, err)
	}

	tok, err := op.AdminCreateEnrollmentToken(ctx, pool.ID)
	if err != nil || !strings.HasPrefix(tok.Token, "tle_") {
		t.Fatalf("token: %+v, %v", tok, err)
	}
	node := enroll(t, url, tok.Token, "ams-1")
	bad := goodPosture
	bad.SwapOff = false
	reportStatus(t, url, node.Credential, 3, bad)

	nodes, err := op.AdminNodes(ctx)
	if err != nil || len(nodes) != 1 {
		t.Fatalf("nodes: %+v, %v", nodes, err)
	}
	n := nodes[0]
	if n.ID != node.NodeID || n.Pool != "eu-1" || !n.Online || n.Status == nil || n.Status.PeerCount != 3 ||
		n.Status.AppliedRevision != 1 || n.Status.Posture.OK() {
		t.Fatalf("node: %+v status %+v", n, n.Status)
	}

	n, err = op.SetNodeEnabled(ctx, node.NodeID, false)
	if err != nil || n.Enabled {
		t.Fatalf("disable: %+v, %v", n, err)
	}
	enabled := true
	n, err = op.UpdateNode(ctx, node.NodeID, api.NodeUpdate{Enabled: &enabled})
	if err != nil || !n.Enabled {
		t.Fatalf("enable: %+v, %v", n, err)
	}
	_, err = op.UpdateNode(ctx, node.NodeID, api.NodeUpdate{})
	wantCode(t, err, http.StatusBadRequest, api.CodeInvalidRequest)

	if err := op.AdminDeleteNode(ctx, node.NodeID); err != nil {
		t.Fatalf("delete node: %v", err)
	}
	err = op.AdminDeleteNode(ctx, node.NodeID)
	wantCode(t, err, http.StatusNotFound, api.CodeNotFound)
	if err := op.AdminDeletePool(ctx, pool.ID); err != nil {
		t.Fatalf("delete pool: %v", err)
	}
	if got, err := op.AdminPools(ctx); err != nil || len(got) != 0 {
		t.Fatalf("pools after delete: %+v, %v", got, err)
	}

	// Owner deletion: refused under legal hold with the reason, then done.
	me, err := bob.Me(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := op.UpdateOwner(ctx, me.ID, api.OwnerUpdate{LegalHold: client.SetLegalHold("case 12")}); err != nil {
		t.Fatal(err)
	}
	err = op.DeleteOwner(ctx, me.ID)
	wantCode(t, err, http.StatusConflict, api.CodeLegalHold)
	if !strings.Contains(err.Error(), "case 12") {
		t.Fatalf("legal hold error lacks the reason: %v", err)
	}
	if _, err := op.UpdateOwner(ctx, me.ID, api.OwnerUpdate{LegalHold: client.ReleaseLegalHold()}); err != nil {
		t.Fatal(err)
	}
	if err := op.DeleteOwner(ctx, me.ID); err != nil {
		t.Fatalf("delete owner: %v", err)
	}
	_, err = bob.Me(ctx)
	wantCode(t, err, http.StatusUnauthorized, api.CodeUnauthorized)
	opMe, _ := op.Me(ctx)
	err = op.DeleteOwner(ctx, opMe.ID)
	wantCode(t, err, http.StatusConflict, api.CodeConflict)
}
