package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// agentPost posts body to an agent route with plain net/http, as
// traceless-agent would, and decodes the answer into out.
func agentPost(t *testing.T, url, path, bearer string, body, out any) {
	t.Helper()
	b, _ := json.Marshal(body)
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
		t.Fatalf("POST %s: %s", path, res.Status)
	}
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
}

// enrollNode enrolls a node with the token and reports a status with the
// given peer count and posture.
func enrollNode(t *testing.T, url, token, name string, peers int, posture api.Posture) string {
	t.Helper()
	return enrollNodeStatus(t, url, token, name, api.NodeStatus{AppliedRevision: 4, PeerCount: peers,
		InterfaceUp: true, Version: "test", Posture: posture})
}

// enrollNodeStatus enrolls a node with the token and reports st.
func enrollNodeStatus(t *testing.T, url, token, name string, st api.NodeStatus) string {
	t.Helper()
	var en api.EnrollResponse
	agentPost(t, url, "/agent/v1/enroll", "", api.EnrollRequest{Token: token, Name: name, PublicKey: randomPublic(t),
		Endpoint: "198.51.100.7:51820"}, &en)
	var tok api.NodeToken
	agentPost(t, url, "/agent/v1/token", en.Credential, struct{}{}, &tok)
	var res api.StatusResponse
	agentPost(t, url, "/agent/v1/status", tok.Token, st, &res)
	return en.NodeID
}

// enrollToken returns the first enrollment token in the output of 'pools
// token'.
func enrollToken(out string) string {
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, "tle_") {
			return f
		}
	}
	return ""
}

var allGood = api.Posture{ConntrackAccountingOff: true, ConntrackTimestampsOff: true, NoLogRules: true, SwapOff: true,
	NotDumpable: true, CoreSizeZero: true, NoStateOnDisk: true}

func TestOwnerPoolsAndNodes(t *testing.T) {
	url, _ := newServer(t)
	s := "--server=" + url
	ok(t, password, s, "signup", "--email", "cy@example.com", "--password-stdin")
	create := []string{s, "pools", "create", "--name", "home", "--region", "eu-central", "--country", "DE", "--city", "Berlin"}

	if r := cliRun(t, "", create...); r.code != 1 || !strings.HasPrefix(r.stderr, "traceless: plan_limit: ") {
		t.Fatalf("pool on the free plan: %+v", r)
	}
	if r := cliRun(t, "", s, "pools", "create", "--name", "x"); r.code != 2 {
		t.Fatalf("create without flags: %+v", r)
	}
	ok(t, "", s, "plan", "set", "pro")
	pool := decode[api.Pool](t, ok(t, "", append(create, "-o", "json")...))
	if pool.ID == "" || pool.Name != "home" || pool.Country != "DE" {
		t.Fatalf("pools create: %+v", pool)
	}
	if r := ok(t, "", s, "pools", "list"); !strings.Contains(r.stdout, pool.ID) || !strings.Contains(r.stdout, "Berlin") {
		t.Fatalf("pools list: %s", r.stdout)
	}
	if got := decode[[]api.Pool](t, ok(t, "", s, "pools", "list", "-o", "json")); len(got) != 1 {
		t.Fatalf("pools list json: %+v", got)
	}
	if got := decode[[]api.Node](t, ok(t, "", s, "nodes", "list", "-o", "json")); got == nil || len(got) != 0 {
		t.Fatalf("nodes list before enrolling: %+v", got)
	}

	// The token, once, with the agent's command line.
	r := ok(t, "", s, "pools", "token", "home")
	token := enrollToken(r.stdout)
	// The token goes in the agent's environment, not on its command line;
	// the credential is kept on disk, or on a tmpfs at a stated cost.
	want := "TRACELESS_AGENT_ENROLL_TOKEN=" + token + " traceless-agent --server " + url +
		" --endpoint <HOST:PORT> --credential-file /var/lib/traceless-agent/credential.json\n"
	wantTmpfs := "TRACELESS_AGENT_ENROLL_TOKEN=" + token + " traceless-agent --server " + url +
		" --endpoint <HOST:PORT> --credential-file /run/traceless-agent/credential.json\n"
	if token == "" || !strings.Contains(r.stdout, want) || !strings.Contains(r.stdout, wantTmpfs) ||
		!strings.Contains(r.stdout, "after a reboot the node needs a new enrollment token") ||
		strings.Contains(r.stdout, "--enroll-token") || !strings.Contains(r.stderr, "only this once") {
		t.Fatalf("pools token: want %q and %q in\n%s\nstderr %s", want, wantTmpfs, r.stdout, r.stderr)
	}
	tr := decode[tokenResult](t, ok(t, "", s, "pools", "token", pool.ID, "--endpoint", "vpn.example.com:51820", "-o", "json"))
	if tr.Token == "" || tr.Token == token || tr.PoolID != pool.ID ||
		tr.Command != "TRACELESS_AGENT_ENROLL_TOKEN="+tr.Token+" traceless-agent --server "+url+
			" --endpoint vpn.example.com:51820 --credential-file /var/lib/traceless-agent/credential.json" ||
		tr.TmpfsCommand != "TRACELESS_AGENT_ENROLL_TOKEN="+tr.Token+" traceless-agent --server "+url+
			" --endpoint vpn.example.com:51820 --credential-file /run/traceless-agent/credential.json" {
		t.Fatalf("pools token json: %+v", tr)
	}

	nodeID := enrollNode(t, url, token, "home-1", 2, allGood)
	r = ok(t, "", s, "nodes", "list")
	if !strings.Contains(r.stdout, nodeID) || !strings.Contains(r.stdout, "home-1") || !strings.Contains(r.stdout, "OK") {
		t.Fatalf("nodes list: %s", r.stdout)
	}
	nodes := decode[[]api.Node](t, ok(t, "", s, "nodes", "list", "-o", "json"))
	if len(nodes) != 1 || nodes[0].ID != nodeID || !nodes[0].Online || nodes[0].Status == nil || nodes[0].Status.PeerCount != 2 {
		t.Fatalf("nodes list json: %+v", nodes)
	}
	if r := cliRun(t, "", s, "nodes", "delete", "no-such-node"); r.code != 1 || !strings.Contains(r.stderr, "no node") {
		t.Fatalf("delete unknown node: %+v", r)
	}
	ok(t, "", s, "nodes", "delete", "home-1")
	if got := decode[[]api.Node](t, ok(t, "", s, "nodes", "list", "-o", "json")); len(got) != 0 {
		t.Fatalf("nodes after delete: %+v", got)
	}
	ok(t, "", s, "pools", "delete", "home")
	if got := decode[[]api.Pool](t, ok(t, "", s, "pools", "list", "-o", "json")); len(got) != 0 {
		t.Fatalf("pools after delete: %+v", got)
	}
	if r := cliRun(t, "", s, "pools", "delete", pool.ID); r.code != 1 || !strings.HasPrefix(r.stderr, "traceless: not_found: ") {
		t.Fatalf("delete twice: %+v", r)
	}
	// Owners have no enable/disable.
	if r := cliRun(t, "", s, "nodes", "disable", nodeID); r.code != 2 {
		t.Fatalf("nodes disable as owner: %+v", r)
	}
}

func TestAdminPoolsNodesOwners(t *testing.T) {
	url, _ := newServer(t)
	s := "--server=" + url
	ok(t, password, s, "signup", "--email", "dee@example.com", "--password-stdin")
	if r := cliRun(t, "", s, "admin", "nodes", "list"); r.code != 1 || !strings.HasPrefix(r.stderr, "traceless: forbidden: ") {
		t.Fatalf("owner on admin nodes: %+v", r)
	}
	ok(t, opPassword, s, "login", "--email", opEmail, "--password-stdin")

	pool := decode[api.Pool](t, ok(t, "", s, "admin", "pools", "create", "--name", "ams", "--region", "eu-west",
		"--country", "NL", "--city", "Amsterdam", "-o", "json"))
	if r := ok(t, "", s, "admin", "pools", "list"); !strings.Contains(r.stdout, "ams") || !strings.Contains(r.stdout, "shared") {
		t.Fatalf("admin pools list: %s", r.stdout)
	}
	r := ok(t, "", s, "admin", "pools", "token", "ams")
	if !strings.Contains(r.stdout, "TRACELESS_AGENT_ENROLL_TOKEN=tle_") || !strings.Contains(r.stdout, " traceless-agent --server "+url+" ") {
		t.Fatalf("admin pools token: %s", r.stdout)
	}
	tr := decode[tokenResult](t, ok(t, "", s, "admin", "pools", "token", pool.ID, "-o", "json"))
	bad := allGood
	bad.NoLogRules = false
	goodID := enrollNode(t, url, enrollToken(r.stdout), "ams-1", 5, allGood)
	badID := enrollNode(t, url, tr.Token, "ams-2", 0, bad)

	r = ok(t, "", s, "admin", "nodes", "list")
	var goodLine, badLine string
	for _, l := range strings.Split(r.stdout, "\n") {
		switch {
		case strings.HasPrefix(l, goodID):
			goodLine = l
		case strings.HasPrefix(l, badID):
			badLine = l
		}
	}
	if f := strings.Fields(goodLine); len(f) != 9 || f[4] != "yes" || f[5] != "yes" || f[6] != "5" || f[7] != "4" || f[8] != "OK" {
		t.Fatalf("good node: %q\n%s", goodLine, r.stdout)
	}
	if f := strings.Fields(badLine); len(f) != 9 || f[8] != "FAIL" {
		t.Fatalf("bad node: %q\n%s", badLine, r.stdout)
	}
	if !strings.Contains(r.stdout, "ONLINE") || !strings.Contains(r.stdout, "PEERS") || !strings.Contains(r.stdout, "REVISION") {
		t.Fatalf("header: %s", r.stdout)
	}

	// A node over capacity: its cell, a note, and the pool's warning.
	tr = decode[tokenResult](t, ok(t, "", s, "admin", "pools", "token", pool.ID, "-o", "json"))
	overID := enrollNodeStatus(t, url, tr.Token, "ams-3", api.NodeStatus{AppliedRevision: 4, PeerCount: 70000, PeerLimit: 65536,
		OverCapacity: &api.OverCapacity{Desired: 70000, Applied: 65536, NotApplied: 4464}, InterfaceUp: true, Version: "test", Posture: allGood})
	r = ok(t, "", s, "admin", "nodes", "list")
	if !strings.Contains(r.stdout, "OVER:65536/70000") || !strings.Contains(r.stderr, "Node ams-3 is over capacity: it holds 65536 of its pool's 70000 peers") {
		t.Fatalf("nodes list with a node over capacity:\n%s\n%s", r.stdout, r.stderr)
	}
	r = ok(t, "", s, "admin", "pools", "list")
	if !strings.Contains(r.stdout, "NEAR:70000/65536") || !strings.Contains(r.stderr, "Pool ams carries 70000 devices; its smallest node, ams-3, holds at most 65536 peers") {
		t.Fatalf("pools list with a full pool:\n%s\n%s", r.stdout, r.stderr)
	}
	ok(t, "", s, "admin", "nodes", "delete", overID)

	n := decode[api.Node](t, ok(t, "", s, "admin", "nodes", "disable", "ams-2", "-o", "json"))
	if n.ID != badID || n.Enabled {
		t.Fatalf("disable: %+v", n)
	}
	n = decode[api.Node](t, ok(t, "", s, "admin", "nodes", "enable", badID, "-o", "json"))
	if !n.Enabled {
		t.Fatalf("enable: %+v", n)
	}
	ok(t, "", s, "admin", "nodes", "delete", "ams-2")
	if got := decode[[]api.Node](t, ok(t, "", s, "admin", "nodes", "list", "-o", "json")); len(got) != 1 || got[0].ID != goodID {
		t.Fatalf("nodes after delete: %+v", got)
	}
	ok(t, "", s, "admin", "pools", "delete", "ams")
	if got := decode[[]api.Pool](t, ok(t, "", s, "admin", "pools", "list", "-o", "json")); len(got) != 0 {
		t.Fatalf("pools after delete: %+v", got)
	}

	// Owner deletion: --yes without a terminal, the hold's reason, then gone.
	if r := cliRun(t, "", s, "admin", "owners", "delete", "dee@example.com"); r.code != 2 {
		t.Fatalf("delete without --yes: %+v", r)
	}
	ok(t, "", s, "admin", "owners", "update", "dee@example.com", "--legal-hold", "audit 3")
	r = cliRun(t, "", s, "admin", "owners", "delete", "dee@example.com", "--yes")
	if r.code != 1 || !strings.Contains(r.stderr, "traceless: legal_hold: ") || !strings.Contains(r.stderr, "audit 3") {
		t.Fatalf("delete under hold: %+v", r)
	}
	ok(t, "", s, "admin", "owners", "update", "dee@example.com", "--release-hold")
	ok(t, "", s, "admin", "owners", "delete", "dee@example.com", "--yes")
	owners := decode[[]api.Owner](t, ok(t, "", s, "admin", "owners", "list", "-o", "json"))
	if len(owners) != 1 || owners[0].Email != opEmail {
		t.Fatalf("owners after delete: %+v", owners)
	}
	if r := cliRun(t, "", s, "admin", "owners", "delete", "dee@example.com", "--yes"); r.code != 1 || !strings.Contains(r.stderr, "no owner") {
		t.Fatalf("delete twice: %+v", r)
	}
}
