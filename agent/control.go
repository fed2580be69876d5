package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// Limits on what the control plane may send.
const (
	// maxSnapshotPeers bounds a binary snapshot's count: more than a
	// kernel interface holds.
	maxSnapshotPeers = 4 << 20
	// maxJSONBytes bounds a JSON answer (a JSON snapshot of a large pool
	// included).
	maxJSONBytes = 256 << 20
	// maxErrorBytes bounds an error body.
	maxErrorBytes = 64 << 10
)

// controlPlane speaks the agent protocol to one of several control-plane
// URLs, failing over in order. It never puts a credential or token in an
// error.
type controlPlane struct {
	hc        *http.Client
	userAgent string

	mu      sync.Mutex
	servers []string // base URLs without a trailing slash
	cur     int
}

func newControlPlane(servers []string, hc *http.Client, userAgent string) (*controlPlane, error) {
	if len(servers) == 0 {
		return nil, errors.New("no control-plane URL")
	}
	c := &controlPlane{hc: hc, userAgent: userAgent}
	for _, s := range servers {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			return nil, fmt.Errorf("server %q is not an http(s) URL without credentials", s)
		}
		c.servers = append(c.servers, strings.TrimRight(s, "/"))
	}
	return c, nil
}

// server is the URL requests go to now.
func (c *controlPlane) server() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.servers[c.cur]
}

// failover moves to the next URL and returns it.
func (c *controlPlane) failover() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cur = (c.cur + 1) % len(c.servers)
	return c.servers[c.cur]
}

// count is the number of URLs.
func (c *controlPlane) count() int { return len(c.servers) }

// httpError is an error answer from the control plane.
type httpError struct {
	Status  int
	Code    string
	Message string
}

func (e *httpError) Error() string {
	if e.Code == "" {
		return "HTTP " + strconv.Itoa(e.Status)
	}
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// Retryable reports whether the same request may succeed later.
func (e *httpError) Retryable() bool {
	return e.Status >= 500 || e.Status == http.StatusTooManyRequests || e.Status == http.StatusRequestTimeout
}

// statusOf returns the HTTP status of an error answer, or 0.
func statusOf(err error) int {
	var he *httpError
	if errors.As(err, &he) {
		return he.Status
	}
	return 0
}

// serverTrouble reports whether err says the current server is down or
// failing, so the next one should be tried: no answer at all, or a 5xx.
func serverTrouble(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	var he *httpError
	if errors.As(err, &he) {
		return he.Status >= 500
	}
	return true
}

// do sends one request to the current server and returns the response
// when its status is want; otherwise the error answer as *httpError.
func (c *controlPlane) do(ctx context.Context, method, path, bearer, accept string, body any, want int) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.server()+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("User-Agent", c.userAgent)
	res, err := c.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = fmt.Errorf("%s %s: %w", method, path, ue.Err)
		}
		return nil, err
	}
	if res.StatusCode == want {
		return res, nil
	}
	defer res.Body.Close()
	he := &httpError{Status: res.StatusCode}
	var eb api.ErrorBody
	if json.NewDecoder(io.LimitReader(res.Body, maxErrorBytes)).Decode(&eb) == nil {
		he.Code, he.Message = eb.Error.Code, eb.Error.Message
	}
	return nil, fmt.Errorf("%s %s: %w", method, path, he)
}

// doJSON sends a request and decodes a JSON answer into out.
func (c *controlPlane) doJSON(ctx context.Context, method, path, bearer string, body, out any, want ...int) error {
	w := http.StatusOK
	if len(want) > 0 {
		w = want[0]
	}
	res, err := c.do(ctx, method, path, bearer, "application/json", body, w)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if err := json.NewDecoder(io.LimitReader(res.Body, maxJSONBytes)).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// enroll exchanges a one-use enrollment token for the node credential.
func (c *controlPlane) enroll(ctx context.Context, req api.EnrollRequest) (api.EnrollResponse, error) {
	var out api.EnrollResponse
	err := c.doJSON(ctx, http.MethodPost, "/agent/v1/enroll", "", req, &out, http.StatusCreated)
	return out, err
}

// token exchanges the credential for a short-lived node token.
func (c *controlPlane) token(ctx context.Context, credential string) (api.NodeToken, error) {
	var out api.NodeToken
	err := c.doJSON(ctx, http.MethodPost, "/agent/v1/token", credential, struct{}{}, &out)
	return out, err
}

// status reports the node's aggregates.
func (c *controlPlane) status(ctx context.Context, token string, st api.NodeStatus) (api.StatusResponse, error) {
	var out api.StatusResponse
	err := c.doJSON(ctx, http.MethodPost, "/agent/v1/status", token, st, &out)
	return out, err
}

// peersAnswer is an answer to a peers poll: a full snapshot (set) or a
// delta (upserts and removes), at revision.
type peersAnswer struct {
	revision int64
	full     bool
	set      *setBuilder
	upserts  []api.Peer
	removes  []string
	binary   bool
}

// peers long-polls for changes since a revision, or with full asks for a
// full snapshot at once. It asks for the binary snapshot encoding, which
// the control plane uses for full snapshots. A full request also says
// since=0, which control planes before full=true read as the same
// request.
func (c *controlPlane) peers(ctx context.Context, token string, since int64, full bool) (*peersAnswer, error) {
	path := "/agent/v1/peers?since=" + strconv.FormatInt(since, 10)
	if full {
		path = "/agent/v1/peers?since=0&full=true"
	}
	res, err := c.do(ctx, http.MethodGet, path, token, api.SnapshotMediaType+", application/json;q=0.9", nil, http.StatusOK)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type"))
	if mt == api.SnapshotMediaType {
		a, err := readSnapshot(res.Body)
		if err != nil {
			return nil, fmt.Errorf("GET /agent/v1/peers: %w", err)
		}
		return a, nil
	}
	var pr api.PeersResponse
	if err := json.NewDecoder(io.LimitReader(res.Body, maxJSONBytes)).Decode(&pr); err != nil {
		return nil, fmt.Errorf("GET /agent/v1/peers: decode answer: %w", err)
	}
	a := &peersAnswer{revision: pr.Revision, full: pr.Full || full}
	if a.full {
		a.set = newSetBuilder(len(pr.Upserts))
		for _, p := range pr.Upserts {
			a.set.add(p)
		}
	} else {
		a.upserts, a.removes = pr.Upserts, pr.Removes
	}
	return a, nil
}

// readSnapshot reads a binary snapshot stream into a peer set, record by
// record, without holding the stream.
func readSnapshot(r io.Reader) (*peersAnswer, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	h, err := api.ReadSnapshotHeader(br)
	if err != nil {
		return nil, err
	}
	if h.Count > maxSnapshotPeers {
		return nil, fmt.Errorf("snapshot of %d peers exceeds %d", h.Count, maxSnapshotPeers)
	}
	b := newSetBuilder(0)
	var rec [api.PeerRecordSize]byte
	for i := int64(0); i < h.Count; i++ {
		if _, err := io.ReadFull(br, rec[:]); err != nil {
			return nil, fmt.Errorf("snapshot record %d of %d: %w", i+1, h.Count, err)
		}
		b.addRecord(&rec)
	}
	return &peersAnswer{revision: h.Revision, full: true, set: b, binary: true}, nil
}
