package controlplane_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3filter"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// checkAllCredentials extends checkCredentials with the node schemes.
func checkAllCredentials(ctx context.Context, in *openapi3filter.AuthenticationInput) error {
	tok, _ := strings.CutPrefix(in.RequestValidationInput.Request.Header.Get("Authorization"), "Bearer ")
	switch in.SecuritySchemeName {
	case "nodeCredential":
		if !strings.HasPrefix(tok, "tln_") {
			return errNoCredential
		}
		return nil
	case "nodeToken":
		if tok == "" || strings.HasPrefix(tok, "tln_") || strings.HasPrefix(tok, "tlk_") {
			return errNoCredential
		}
		return nil
	}
	return checkCredentials(ctx, in)
}

// TestOpenAPIRealAnswersConform drives the operations the main flow does
// not (nodes, pools, the agent API, policy, export, alerts), with answers
// that hold nulls — a node that has not reported, no upcoming policy, an
// export of unset columns — and validates each answer against the
// document: a null where the document does not allow one fails.
func TestOpenAPIRealAnswersConform(t *testing.T) {
	s := newOAServer(t)
	c := newOAClient(t, s)
	c.auth = checkAllCredentials
	op := oaOperatorLogin(t, c)
	owner, ownerID := oaOwnerAccount(t, c)

	// No upcoming policy: null.
	var ps api.PolicyStatus
	res := c.do(oaCall{method: "GET", path: "/api/v1/policy", want: 200})
	res.decode(t, &ps)
	mustHoldNull(t, res, `"upcoming":null`)
	c.do(oaCall{method: "PUT", path: "/api/v1/me/policy", token: owner, body: api.PolicyAccept{Version: ps.Current.Version}, want: 200})
	// The export holds unset columns (no legal hold) as null.
	mustHoldNull(t, c.do(oaCall{method: "GET", path: "/api/v1/me/export", token: owner, want: 200}), `"legal_hold":null`)

	appID, key := oaApps(t, c, owner) // the owner is on pro now
	c.do(oaCall{method: "GET", path: "/api/v1/app", token: key, want: 200})
	// The plan includes no pool: an empty list, explained.
	var sl api.ServerList
	c.do(oaCall{method: "GET", path: "/api/v1/servers", token: key, want: 200}).decode(t, &sl)
	if sl.Explanation == nil || sl.Explanation.Code != api.NoServersPlanIncludesNoPool {
		t.Errorf("servers on a plan without pools: %+v", sl)
	}

	// A shared pool in pro, and one in no plan.
	var pool api.Pool
	c.do(oaCall{method: "POST", path: "/api/v1/admin/pools", token: op, want: 201,
		body: api.PoolInput{Name: "fra", Region: "eu-central", Country: "DE", City: "Frankfurt", Plans: []string{"pro"}}}).decode(t, &pool)
	var lonely api.Pool
	c.do(oaCall{method: "POST", path: "/api/v1/admin/pools", token: op, want: 201,
		body: api.PoolInput{Name: "lonely", Region: "eu", Country: "FR", City: "Paris"}}).decode(t, &lonely)
	c.do(oaCall{method: "POST", path: "/api/v1/admin/pools", token: op, want: 400, wantCode: api.CodeInvalidRequest,
		body: api.PoolInput{Name: "ghost", Region: "eu", Country: "FR", City: "Paris", Plans: []string{"gold"}}})
	c.do(oaCall{method: "POST", path: "/api/v1/admin/pools", token: op, want: 409, wantCode: api.CodeConflict,
		body: api.PoolInput{Name: "fra", Region: "eu-central", Country: "DE", City: "Frankfurt"}})
	c.do(oaCall{method: "GET", path: "/api/v1/admin/pools", token: op, want: 200})

	// A node enrolls; before it reports, its status is null.
	var et api.EnrollmentToken
	c.do(oaCall{method: "POST", path: "/api/v1/admin/pools/" + pool.ID + "/enrollment-tokens", token: op, want: 201}).decode(t, &et)
	var er api.EnrollResponse
	c.do(oaCall{method: "POST", path: "/agent/v1/enroll", want: 201,
		body: api.EnrollRequest{Token: et.Token, Name: "fra-1", PublicKey: newWGKey(t), Endpoint: "203.0.113.10:51820"}}).decode(t, &er)
	c.do(oaCall{method: "POST", path: "/agent/v1/enroll", want: 401, wantCode: api.CodeUnauthorized,
		body: api.EnrollRequest{Token: et.Token, Name: "fra-2", PublicKey: newWGKey(t), Endpoint: "203.0.113.11:51820"}})
	var nt api.NodeToken
	c.do(oaCall{method: "POST", path: "/agent/v1/token", token: er.Credential, want: 200}).decode(t, &nt)
	mustHoldNull(t, c.do(oaCall{method: "GET", path: "/api/v1/admin/nodes", token: op, want: 200}), `"status":null`)

	// A device, so that the node's first poll answers at once.
	c.do(oaCall{method: "POST", path: "/api/v1/devices", token: key, body: api.DeviceInput{PublicKey: newWGKey(t)}, want: 201})
	c.do(oaCall{method: "GET", path: "/agent/v1/peers?since=0", token: nt.Token, want: 200})
	c.do(oaCall{method: "POST", path: "/agent/v1/status", token: nt.Token, want: 200,
		body: api.NodeStatus{AppliedRevision: 1, PeerCount: 1, InterfaceUp: true, Version: "test", Posture: api.Posture{SwapOff: true}}})
	c.do(oaCall{method: "GET", path: "/api/v1/admin/nodes", token: op, want: 200})
	c.do(oaCall{method: "GET", path: "/api/v1/servers", token: key, want: 200})
	enabled := false
	c.do(oaCall{method: "PUT", path: "/api/v1/admin/nodes/" + er.NodeID, token: op, body: api.NodeUpdate{Enabled: &enabled}, want: 200})
	c.do(oaCall{method: "PUT", path: "/api/v1/admin/nodes/" + er.NodeID, token: op, body: map[string]any{}, want: 400,
		wantCode: api.CodeInvalidRequest, nonConforming: true})

	// The owner's own pools and nodes.
	var own api.Pool
	c.do(oaCall{method: "POST", path: "/api/v1/pools", token: owner, want: 201,
		body: api.PoolInput{Name: "home", Region: "eu", Country: "DE", City: "Berlin"}}).decode(t, &own)
	c.do(oaCall{method: "POST", path: "/api/v1/pools", token: owner, want: 400, wantCode: api.CodeInvalidRequest,
		body: api.PoolInput{Name: "home2", Region: "eu", Country: "DE", City: "Berlin", Plans: []string{"pro"}}})
	c.do(oaCall{method: "GET", path: "/api/v1/pools", token: owner, want: 200})
	c.do(oaCall{method: "POST", path: "/api/v1/pools/" + own.ID + "/enrollment-tokens", token: owner, want: 201})
	c.do(oaCall{method: "POST", path: "/api/v1/pools/" + pool.ID + "/enrollment-tokens", token: owner, want: 404, wantCode: api.CodeNotFound})
	c.do(oaCall{method: "GET", path: "/api/v1/nodes", token: owner, want: 200})
	c.do(oaCall{method: "DELETE", path: "/api/v1/nodes/" + er.NodeID, token: owner, want: 404, wantCode: api.CodeNotFound})
	c.do(oaCall{method: "DELETE", path: "/api/v1/pools/" + own.ID, token: owner, want: 204})

	// Alerts.
	c.do(oaCall{method: "GET", path: "/api/v1/alerts/settings", token: owner, want: 200})
	on := true
	c.do(oaCall{method: "PUT", path: "/api/v1/alerts/settings", token: owner, body: api.AlertSettingsInput{History: &on}, want: 200})
	c.do(oaCall{method: "GET", path: "/api/v1/alerts/history", token: owner, want: 200})
	c.do(oaCall{method: "POST", path: "/api/v1/alerts/test", token: owner, want: 202})
	c.do(oaCall{method: "DELETE", path: "/api/v1/alerts/history", token: owner, want: 204})

	// Teardown: the node, the pools, the owner.
	c.do(oaCall{method: "DELETE", path: "/api/v1/admin/nodes/" + er.NodeID, token: op, want: 204})
	c.do(oaCall{method: "DELETE", path: "/api/v1/admin/pools/" + lonely.ID, token: op, want: 204})
	c.do(oaCall{method: "DELETE", path: "/api/v1/admin/pools/" + lonely.ID, token: op, want: 404, wantCode: api.CodeNotFound})
	c.do(oaCall{method: "DELETE", path: "/api/v1/apps/" + appID, token: owner, want: 204})
	c.do(oaCall{method: "DELETE", path: "/api/v1/admin/owners/" + ownerID, token: op, want: 204})
	c.do(oaCall{method: "DELETE", path: "/api/v1/me", token: op, want: 204})
}

// mustHoldNull fails unless the answer holds want, a JSON null the test
// means to validate.
func mustHoldNull(t *testing.T, res oaResult, want string) {
	t.Helper()
	var compact bytes.Buffer
	if err := compactJSON(&compact, res.body); err != nil || !strings.Contains(compact.String(), want) {
		t.Errorf("answer lacks %s: %.500s", want, res.body)
	}
}
