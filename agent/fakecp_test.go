package agent

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// fakeCP is an in-memory control plane speaking the agent protocol on
// 127.0.0.1: one-use enrollment tokens, a credential, short-lived node
// tokens, long-polled peers (deltas from a change log, full snapshots as
// JSON or as the binary stream) and status with resync.
type fakeCP struct {
	t   testing.TB
	srv *httptest.Server

	mu          sync.Mutex
	enrollToken string
	credential  string
	revoked     bool
	tokens      map[string]bool
	tokenSeq    int
	tokenTTL    time.Duration
	tunnel      api.Tunnel
	revision    int64
	peers       map[string]api.Peer
	log         []change // changes after logStart
	logStart    int64
	wake        chan struct{}
	pollWindow  time.Duration
	binary      bool
	forceResync bool
	down        bool
	// legacy answers since=0 with a snapshot at once, as control planes
	// did before full=true.
	legacy   bool
	enrolled *api.EnrollRequest

	// Observations.
	statuses  []api.NodeStatus
	polls     []int64 // since of each poll
	fullAsked int     // polls with full=true
	fullJSON  int
	fullBin   int
	tokenReqs int
}

type change struct {
	rev  int64
	key  string
	peer *api.Peer // nil: removed
}

func newFakeCP(t testing.TB) *fakeCP {
	cp := &fakeCP{
		t: t, enrollToken: "tle_enroll", credential: "tln_" + strings.Repeat("c", 20), tokens: map[string]bool{},
		tokenTTL: 10 * time.Minute, tunnel: api.Tunnel{IPv4: "10.64.0.1/10", IPv6: "fd74:6c73:7670:1::1/64", MTU: 1420},
		peers: map[string]api.Peer{}, wake: make(chan struct{}), pollWindow: 300 * time.Millisecond, binary: true,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /agent/v1/enroll", cp.handleEnroll)
	mux.HandleFunc("POST /agent/v1/token", cp.handleToken)
	mux.HandleFunc("GET /agent/v1/peers", cp.handlePeers)
	mux.HandleFunc("POST /agent/v1/status", cp.handleStatus)
	cp.srv = httptest.NewServer(cp.guard(mux))
	t.Cleanup(cp.srv.Close)
	return cp
}

func (cp *fakeCP) URL() string { return cp.srv.URL }

func writeErr(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(api.ErrorBody{Error: api.Error{Code: code, Message: code}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// guard answers 503 while the control plane is "down".
func (cp *fakeCP) guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cp.mu.Lock()
		down := cp.down
		cp.mu.Unlock()
		if down {
			writeErr(w, http.StatusServiceUnavailable, api.CodeInternal)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func bearer(r *http.Request) string {
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
}

func (cp *fakeCP) handleEnroll(w http.ResponseWriter, r *http.Request) {
	var req api.EnrollRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeErr(w, http.StatusBadRequest, api.CodeInvalidRequest)
		return
	}
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if req.Token == "" || req.Token != cp.enrollToken {
		writeErr(w, http.StatusUnauthorized, api.CodeUnauthorized)
		return
	}
	cp.enrollToken = "" // one use
	cp.enrolled = &req
	writeJSON(w, http.StatusCreated, api.EnrollResponse{NodeID: "node-1", Credential: cp.credential, Tunnel: cp.tunnel})
}

func (cp *fakeCP) handleToken(w http.ResponseWriter, r *http.Request) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.tokenReqs++
	if cp.revoked || bearer(r) != cp.credential {
		writeErr(w, http.StatusUnauthorized, api.CodeUnauthorized)
		return
	}
	cp.tokenSeq++
	tok := "ntk_" + strconv.Itoa(cp.tokenSeq)
	cp.tokens[tok] = true
	writeJSON(w, http.StatusOK, api.NodeToken{Token: tok, ExpiresAt: time.Now().Add(cp.tokenTTL), NodeID: "node-1", Tunnel: cp.tunnel})
}

func (cp *fakeCP) authorized(r *http.Request) bool {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.tokens[bearer(r)]
}

func (cp *fakeCP) handlePeers(w http.ResponseWriter, r *http.Request) {
	if !cp.authorized(r) {
		writeErr(w, http.StatusUnauthorized, api.CodeUnauthorized)
		return
	}
	since, err := strconv.ParseInt(r.URL.Query().Get("since"), 10, 64)
	if err != nil || since < 0 {
		writeErr(w, http.StatusBadRequest, api.CodeInvalidRequest)
		return
	}
	full := r.URL.Query().Get("full") == "true"
	cp.mu.Lock()
	cp.polls = append(cp.polls, since)
	if full {
		cp.fullAsked++
	}
	if full || (cp.legacy && since == 0) {
		defer cp.mu.Unlock()
		cp.writeFull(w, r)
		return
	}
	deadline := time.After(cp.pollWindow)
	for waiting := true; waiting && cp.revision == since; {
		wake := cp.wake
		cp.mu.Unlock()
		select {
		case <-wake:
		case <-deadline:
			waiting = false
		case <-r.Context().Done():
			return
		}
		cp.mu.Lock()
	}
	defer cp.mu.Unlock()
	if since < cp.logStart || since > cp.revision || (since == 0 && cp.revision > 0) {
		cp.writeFull(w, r)
		return
	}
	res := api.PeersResponse{Revision: cp.revision, Upserts: []api.Peer{}, Removes: []string{}}
	latest := map[string]*api.Peer{}
	for _, c := range cp.log {
		if c.rev > since {
			latest[c.key] = c.peer
		}
	}
	for k, p := range latest {
		if p == nil {
			res.Removes = append(res.Removes, k)
		} else {
			res.Upserts = append(res.Upserts, *p)
		}
	}
	writeJSON(w, http.StatusOK, res)
}

// writeFull answers a full snapshot, binary when asked for and enabled.
// Called with mu held.
func (cp *fakeCP) writeFull(w http.ResponseWriter, r *http.Request) {
	if cp.binary && strings.Contains(r.Header.Get("Accept"), api.SnapshotMediaType) {
		cp.fullBin++
		// Peers that have no record form (malformed test peers) are left
		// out, as a real server could not hold them.
		var body []byte
		n := 0
		for _, p := range cp.peers {
			if len(p.AllowedIPs) != 2 {
				continue
			}
			v4, err4 := netip.ParsePrefix(p.AllowedIPs[0])
			v6, err6 := netip.ParsePrefix(p.AllowedIPs[1])
			if err4 != nil || err6 != nil {
				continue
			}
			b, err := api.AppendPeerRecord(body, p.PublicKey, v4.Addr(), v6.Addr())
			if err != nil {
				continue
			}
			body, n = b, n+1
		}
		w.Header().Set("Content-Type", api.SnapshotMediaType)
		api.WriteSnapshotHeader(w, api.SnapshotHeader{Revision: cp.revision, Count: int64(n)})
		w.Write(body)
		return
	}
	cp.fullJSON++
	res := api.PeersResponse{Revision: cp.revision, Full: true, Upserts: []api.Peer{}, Removes: []string{}}
	for _, p := range cp.peers {
		res.Upserts = append(res.Upserts, p)
	}
	writeJSON(w, http.StatusOK, res)
}

func (cp *fakeCP) handleStatus(w http.ResponseWriter, r *http.Request) {
	if !cp.authorized(r) {
		writeErr(w, http.StatusUnauthorized, api.CodeUnauthorized)
		return
	}
	var st api.NodeStatus
	if err := json.NewDecoder(r.Body).Decode(&st); err != nil {
		writeErr(w, http.StatusBadRequest, api.CodeInvalidRequest)
		return
	}
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.statuses = append(cp.statuses, st)
	resync := cp.forceResync || (st.AppliedRevision == cp.revision && st.PeerSetHash != hashOf(cp.peers))
	cp.forceResync = false
	writeJSON(w, http.StatusOK, api.StatusResponse{Resync: resync})
}

// commit records changes under a new revision and wakes the polls.
// Called with mu held.
func (cp *fakeCP) commit(changes ...change) {
	cp.revision++
	for _, c := range changes {
		c.rev = cp.revision
		if c.peer == nil {
			delete(cp.peers, c.key)
		} else {
			cp.peers[c.key] = *c.peer
		}
		cp.log = append(cp.log, c)
	}
	close(cp.wake)
	cp.wake = make(chan struct{})
}

// upsert adds or changes peers in one revision.
func (cp *fakeCP) upsert(peers ...api.Peer) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	var cs []change
	for _, p := range peers {
		p := p
		cs = append(cs, change{key: p.PublicKey, peer: &p})
	}
	cp.commit(cs...)
}

// remove deletes peers in one revision.
func (cp *fakeCP) remove(keys ...string) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	var cs []change
	for _, k := range keys {
		cs = append(cs, change{key: k})
	}
	cp.commit(cs...)
}

// forgetLog drops the change log, so polls since an older revision get a
// full snapshot, like a server whose ring has moved on.
func (cp *fakeCP) forgetLog() {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.log, cp.logStart = nil, cp.revision
}

func (cp *fakeCP) with(f func(cp *fakeCP)) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	f(cp)
}

// snapshot returns a copy of the server's peers.
func (cp *fakeCP) snapshot() map[string]api.Peer {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	out := make(map[string]api.Peer, len(cp.peers))
	for k, p := range cp.peers {
		out[k] = p
	}
	return out
}

// lastStatus returns the last status report and how many there were.
func (cp *fakeCP) lastStatus() (api.NodeStatus, int) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if len(cp.statuses) == 0 {
		return api.NodeStatus{}, 0
	}
	return cp.statuses[len(cp.statuses)-1], len(cp.statuses)
}

func (cp *fakeCP) String() string {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return fmt.Sprintf("fakeCP{rev %d, %d peers, polls %v, full json %d bin %d}", cp.revision, len(cp.peers), cp.polls, cp.fullJSON, cp.fullBin)
}
