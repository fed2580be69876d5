package controlplane

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// Node credentials and tokens.
const (
	nodeCredentialPrefix = "tln_"
	enrollTokenPrefix    = "tle_"
	nodeIssuer           = "traceless-node"
	ctxNode              = "traceless.node"
)

func randomSecret(prefix string) string {
	var b [32]byte
	rand.Read(b[:])
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// tunnel is the interface configuration nodes share.
func (s *Server) tunnel() api.Tunnel {
	v4, v6 := s.store.TunnelNetworks()
	return api.Tunnel{
		IPv4: netip.PrefixFrom(store.Gateway(v4), v4.Bits()).String(),
		IPv6: netip.PrefixFrom(store.Gateway(v6), v6.Bits()).String(),
		MTU:  s.opts.TunnelMTU,
	}
}

func (s *Server) handleEnroll(c echo.Context) error {
	var in api.EnrollRequest
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if err := checkRate(c, s.enrollLimit, clientKey(c)); err != nil {
		return err
	}
	if !strings.HasPrefix(in.Token, enrollTokenPrefix) || len(in.Token) > 100 {
		return apiError(http.StatusUnauthorized, api.CodeUnauthorized, "the enrollment token is not valid, was used, or expired")
	}
	cred := randomSecret(nodeCredentialPrefix)
	n, err := s.store.EnrollNode(c.Request().Context(), hashAPIKey(in.Token),
		store.Node{Name: in.Name, PublicKey: in.PublicKey, Endpoint: in.Endpoint, CredentialHash: hashAPIKey(cred)}, s.now())
	if errors.Is(err, store.ErrNotFound) {
		return apiError(http.StatusUnauthorized, api.CodeUnauthorized, "the enrollment token is not valid, was used, or expired")
	}
	if err != nil {
		return err
	}
	s.log.Info("node enrolled")
	return c.JSON(http.StatusCreated, api.EnrollResponse{NodeID: n.ID, Credential: cred, Tunnel: s.tunnel()})
}

// handleNodeToken trades the node credential for a short-lived node token.
func (s *Server) handleNodeToken(c echo.Context) error {
	cred := bearer(c)
	if !strings.HasPrefix(cred, nodeCredentialPrefix) || len(cred) > 100 {
		return errUnauthorized
	}
	n, err := s.store.NodeByCredential(c.Request().Context(), hashAPIKey(cred))
	if errors.Is(err, store.ErrNotFound) {
		return errUnauthorized
	}
	if err != nil {
		return err
	}
	now := s.now()
	exp := now.Add(s.opts.NodeTokenTTL)
	tok, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.RegisteredClaims{
		Issuer: nodeIssuer, Subject: n.ID, IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(exp),
	}).SignedString(s.sessions.priv)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, api.NodeToken{Token: tok, ExpiresAt: exp.UTC(), NodeID: n.ID, Tunnel: s.tunnel()})
}

// requireNode authenticates a node token and loads the node.
func (s *Server) requireNode(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		tok := bearer(c)
		if tok == "" || strings.HasPrefix(tok, apiKeyPrefix) || strings.HasPrefix(tok, nodeCredentialPrefix) || len(tok) > 4096 {
			return errUnauthorized
		}
		var claims jwt.RegisteredClaims
		_, err := jwt.ParseWithClaims(tok, &claims, func(*jwt.Token) (any, error) { return s.sessions.pub, nil },
			jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}), jwt.WithIssuer(nodeIssuer),
			jwt.WithExpirationRequired(), jwt.WithTimeFunc(s.now))
		if err != nil || claims.Subject == "" {
			return errUnauthorized
		}
		n, err := s.store.GetNode(c.Request().Context(), claims.Subject)
		if errors.Is(err, store.ErrNotFound) {
			return errUnauthorized
		}
		if err != nil {
			return err
		}
		c.Set(ctxNode, n)
		return next(c)
	}
}

func currentNode(c echo.Context) store.Node {
	n, _ := c.Get(ctxNode).(store.Node)
	return n
}

// handlePeers long-polls for the changes a node must apply since a
// revision: a delta of upserts and removals, or a full snapshot. A node
// asks for a snapshot with full=true; since=R says it holds revision R
// and waits until the installation moves past R, whatever R is. Since=0
// is no request for a snapshot: on an installation still at revision 0 a
// node that holds the empty set must wait like any other, or it polls in
// a loop. Agents before full=true existed send since=0 at start and treat
// any answer to it as the whole set, which every answer to since=0 is.
func (s *Server) handlePeers(c echo.Context) error {
	full, err := parseFull(c.QueryParam("full"))
	if err != nil {
		return err
	}
	var since int64
	if v := c.QueryParam("since"); v != "" || !full {
		since, err = strconv.ParseInt(v, 10, 64)
		if err != nil || since < 0 {
			return badRequest("since", "must be a non-negative revision")
		}
	}
	n := currentNode(c)
	if full {
		return s.writeSnapshot(c, n, s.hub.current())
	}
	pool, err := s.store.GetPool(c.Request().Context(), n.PoolID)
	if err != nil {
		return err
	}
	owner := ""
	if pool.OwnerID != nil {
		owner = *pool.OwnerID
	}
	ctx := c.Request().Context()
	if since > s.hub.current() {
		// The node comes from a replica that published more than this one
		// has: what is missing up to since will not be announced any more.
		s.hub.skipBelow(ctx, since)
	}
	deadline := time.NewTimer(s.opts.LongPoll)
	defer deadline.Stop()
	for {
		d := s.hub.since(since, n.PoolID, owner)
		if d.full {
			return s.writeSnapshot(c, n, d.cur)
		}
		if !n.Enabled {
			d.removed = nil // it holds nothing since its last snapshot
		}
		var ups []api.Peer
		if d.cur > since && n.Enabled {
			var err error
			if ups, err = s.poolDelta(ctx, n.PoolID, since, d.cur); err != nil {
				return err
			}
		}
		if len(ups) > 0 || len(d.removed) > 0 {
			return c.JSON(http.StatusOK, api.PeersResponse{Revision: d.cur, Upserts: ups, Removes: d.removed})
		}
		if d.cur > since {
			// Changes happened, none for this pool: move the node forward.
			return c.JSON(http.StatusOK, api.PeersResponse{Revision: d.cur, Upserts: []api.Peer{}, Removes: []string{}})
		}
		select {
		case <-d.wake:
		case <-deadline.C:
			return c.JSON(http.StatusOK, api.PeersResponse{Revision: d.cur, Upserts: []api.Peer{}, Removes: []string{}})
		case <-ctx.Done():
			return nil
		}
	}
}

// parseFull reads the full query parameter: absent or false, or true.
func parseFull(v string) (bool, error) {
	switch v {
	case "", "false", "0":
		return false, nil
	case "true", "1":
		return true, nil
	}
	return false, badRequest("full", "must be true or false")
}

// poolDelta returns the upserts of pool in (since, upto]. A change wakes
// every node of a pool at once and they ask the same question, so
// identical queries in flight are run once and shared.
func (s *Server) poolDelta(ctx context.Context, pool string, since, upto int64) ([]api.Peer, error) {
	key := pool + "/" + strconv.FormatInt(since, 10) + "/" + strconv.FormatInt(upto, 10)
	v, err, _ := s.deltas.Do(key, func() (any, error) {
		var ups []api.Peer
		err := s.store.PoolPeers(context.WithoutCancel(ctx), pool, since, upto, func(r store.PeerRow) error {
			ups = append(ups, api.DevicePeer(r.PublicKey, r.IPv4, r.IPv6))
			return nil
		})
		return ups, err
	})
	if err != nil {
		return nil, err
	}
	return v.([]api.Peer), nil
}

// writeSnapshot streams a node's complete peer set at revision rev, as
// JSON or, when the node accepts it, as fixed-size binary records. Rows
// are written as they are read; nothing holds the whole set. A disabled
// node gets an empty set.
func (s *Server) writeSnapshot(c echo.Context, n store.Node, rev int64) error {
	ctx := c.Request().Context()
	rc := http.NewResponseController(c.Response().Writer)
	_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Minute))
	binary := strings.Contains(c.Request().Header.Get(echo.HeaderAccept), api.SnapshotMediaType)
	each := func(fn func(store.PeerRow) error) error {
		if !n.Enabled {
			return nil
		}
		return s.store.PoolPeers(ctx, n.PoolID, 0, rev, fn)
	}
	w := bufio.NewWriterSize(c.Response(), 64<<10)
	if binary {
		started := false
		var rec []byte
		err := s.store.PoolSnapshot(ctx, n.PoolID, rev, func(count int64) error {
			if !n.Enabled {
				count = 0
			}
			c.Response().Header().Set(echo.HeaderContentType, api.SnapshotMediaType)
			c.Response().WriteHeader(http.StatusOK)
			started = true
			return api.WriteSnapshotHeader(w, api.SnapshotHeader{Revision: rev, Count: count})
		}, func(r store.PeerRow) error {
			if !n.Enabled {
				return errSnapshotDone
			}
			var err error
			rec, err = api.AppendPeerRecord(rec[:0], r.PublicKey, netip.MustParseAddr(r.IPv4), netip.MustParseAddr(r.IPv6))
			if err != nil {
				return err
			}
			_, err = w.Write(rec)
			return err
		})
		if errors.Is(err, errSnapshotDone) {
			err = nil
		}
		if err != nil {
			if !started {
				return err
			}
			// The status is sent; cut the stream so the node sees a short
			// read and retries rather than applying a partial set.
			s.log.Error("snapshot stream aborted", logError, err.Error())
			panic(http.ErrAbortHandler)
		}
		return w.Flush()
	}
	c.Response().Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	c.Response().WriteHeader(http.StatusOK)
	fmt.Fprintf(w, `{"revision":%d,"full":true,"upserts":[`, rev)
	first := true
	err := each(func(r store.PeerRow) error {
		if !first {
			w.WriteByte(',')
		}
		first = false
		return json.NewEncoder(w).Encode(api.DevicePeer(r.PublicKey, r.IPv4, r.IPv6))
	})
	if err != nil {
		s.log.Error("snapshot stream aborted", logError, err.Error())
		panic(http.ErrAbortHandler)
	}
	w.WriteString(`],"removes":[]}`)
	return w.Flush()
}

// errSnapshotDone stops a snapshot early (a disabled node gets none).
var errSnapshotDone = errors.New("snapshot done")

// handleNodeStatus records a node's aggregate status and tells it to
// resync when its peer set differs from what the server would send.
func (s *Server) handleNodeStatus(c echo.Context) error {
	var in api.NodeStatus
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if in.AppliedRevision < 0 || in.PeerCount < 0 || len(in.Version) > 64 || len(in.PeerSetHash) > 64 {
		return badRequest("", "status fields out of range")
	}
	n := currentNode(c)
	s.status.record(n.ID, in, s.now())
	s.announceStatus(n.ID, in)
	resync, err := s.peerSetDiffers(c.Request().Context(), n, in)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, api.StatusResponse{Resync: resync})
}
