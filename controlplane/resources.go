package controlplane

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// Bounds on what callers can hold, and the failures an operator must see.
// The connection cap is the listener's (traceless-server --max-connections);
// here are the per-node long-poll cap, the rate limiters' size (in
// ratelimit.go) and the PostgreSQL LISTEN watch. Their metrics carry no
// label that could name anyone.

// pollRetry is the Retry-After of a long poll refused by the per-node cap:
// long enough for one of the node's open polls to end or be abandoned.
const pollRetry = 5 * time.Second

// errTooManyPolls refuses a long poll beyond the node's cap.
var errTooManyPolls = apiError(http.StatusTooManyRequests, api.CodeRateLimited,
	"too many long polls open for this node; wait for one to end")

// nodePolls counts the long polls each node has open. An entry lives only
// while its node has a poll open, so the map is bounded by the enrolled
// nodes polling at once.
type nodePolls struct {
	mu      sync.Mutex
	max     int
	open    map[string]int
	refused atomic.Int64
}

func newNodePolls(max int) *nodePolls {
	if max < 0 {
		return nil // no cap
	}
	return &nodePolls{max: max, open: map[string]int{}}
}

// acquire takes one of node's poll slots, or reports that all are taken.
func (p *nodePolls) acquire(node string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open[node] >= p.max {
		p.refused.Add(1)
		return false
	}
	p.open[node]++
	return true
}

func (p *nodePolls) release(node string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open[node]--; p.open[node] <= 0 {
		delete(p.open, node)
	}
}

// limitNodePolls caps the concurrent GET /agent/v1/peers of one node (one
// node credential): 429 rate_limited with a Retry-After beyond it. A node
// needs one at a time; a few more cover a restart whose old polls have not
// ended yet. It runs after requireNode.
func (s *Server) limitNodePolls(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.polls == nil {
			return next(c)
		}
		id := currentNode(c).ID
		if !s.polls.acquire(id) {
			c.Response().Header().Set(echo.HeaderRetryAfter, retryAfter(pollRetry))
			return errTooManyPolls
		}
		defer s.polls.release(id)
		return next(c)
	}
}

// listenWatch tells of a replica's PostgreSQL LISTEN failing: one log line
// when it starts failing (a connection that broke, or the first attempt
// that failed) and one when it works again, with how long it was away,
// however many attempts fail in between; a counter of the failed attempts
// and one of the reconnections. While it fails, the replica still learns
// of other replicas' changes from the revision it polls, only later.
type listenWatch struct {
	log        *slog.Logger
	down       atomic.Bool
	downSince  atomic.Int64 // unix nanoseconds
	ever       atomic.Bool  // connected at least once
	up         atomic.Bool
	failures   atomic.Int64
	reconnects atomic.Int64
}

func (w *listenWatch) failed(err error) {
	w.failures.Add(1)
	w.up.Store(false)
	if w.down.CompareAndSwap(false, true) {
		w.downSince.Store(time.Now().UnixNano())
		w.log.LogAttrs(context.Background(), slog.LevelError,
			"sync listen failed; retrying, changes from other replicas arrive by polling until it works",
			slog.String(logError, err.Error()))
	}
}

// connected records a connection and reports whether it is a
// reconnection (LISTEN was connected before).
func (w *listenWatch) connected() bool {
	w.up.Store(true)
	again := w.ever.Swap(true)
	if again {
		w.reconnects.Add(1)
	}
	if w.down.CompareAndSwap(true, false) {
		away := time.Since(time.Unix(0, w.downSince.Load()))
		w.log.LogAttrs(context.Background(), slog.LevelInfo, "sync listen works again",
			slog.Int64(logDuration, away.Milliseconds()))
	}
	return again
}

// resourceCollector reports the bounds' metrics at scrape time.
type resourceCollector struct{ s *Server }

var (
	descPollsRefused = prometheus.NewDesc("traceless_node_long_polls_refused_total",
		"Long polls refused because their node had the maximum open.", nil, nil)
	descRateKeys = prometheus.NewDesc("traceless_ratelimit_keys",
		"Keys the in-memory rate limiters track, all limiters together.", nil, nil)
	descRateEvicted = prometheus.NewDesc("traceless_ratelimit_keys_evicted_total",
		"Keys forgotten because a rate limiter held its maximum, all limiters together.", nil, nil)
	descListenFailures = prometheus.NewDesc("traceless_sync_listen_failures_total",
		"Failed attempts to LISTEN for other replicas' changes on PostgreSQL.", nil, nil)
	descListenReconnects = prometheus.NewDesc("traceless_sync_listen_reconnects_total",
		"Times the LISTEN for other replicas' changes connected again after its connection broke or could not be made.", nil, nil)
	descAlertsLeader = prometheus.NewDesc("traceless_alerts_leader",
		"1 while this replica leads alerts (watches node health and delivers the alert outbox), else 0.", nil, nil)
	descListenUp = prometheus.NewDesc("traceless_sync_listen_up",
		"1 while this replica LISTENs for other replicas' changes on PostgreSQL, else 0 (always 0 on SQLite).", nil, nil)
)

func (c *resourceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPollsRefused, descRateKeys, descRateEvicted, descListenFailures, descListenReconnects, descListenUp, descAlertsLeader} {
		ch <- d
	}
}

func (c *resourceCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	var refused int64
	if s.polls != nil {
		refused = s.polls.refused.Load()
	}
	var keys, evicted int64
	for _, l := range s.limiters() {
		keys += int64(l.size())
		evicted += l.evicted.Load()
	}
	ch <- prometheus.MustNewConstMetric(descPollsRefused, prometheus.CounterValue, float64(refused))
	ch <- prometheus.MustNewConstMetric(descRateKeys, prometheus.GaugeValue, float64(keys))
	ch <- prometheus.MustNewConstMetric(descRateEvicted, prometheus.CounterValue, float64(evicted))
	ch <- prometheus.MustNewConstMetric(descListenFailures, prometheus.CounterValue, float64(s.listenWatch.failures.Load()))
	ch <- prometheus.MustNewConstMetric(descListenReconnects, prometheus.CounterValue, float64(s.listenWatch.reconnects.Load()))
	up := 0.0
	if s.listenWatch.up.Load() {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(descListenUp, prometheus.GaugeValue, up)
	leader := 0.0
	if s.alerts.Leading() {
		leader = 1
	}
	ch <- prometheus.MustNewConstMetric(descAlertsLeader, prometheus.GaugeValue, leader)
}

// limiters are the server's rate limiters that are turned on.
func (s *Server) limiters() []*limiter {
	var out []*limiter
	for _, l := range []*limiter{s.loginIP, s.loginEmail, s.signupIP, s.keyLimit, s.enrollLimit} {
		if l != nil {
			out = append(out, l)
		}
	}
	return out
}
