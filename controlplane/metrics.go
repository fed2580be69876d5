package controlplane

import (
	"context"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/traceless-vpn/traceless/store"
)

// metrics are aggregate Prometheus metrics. Labels are the method, the
// route pattern and the status code: never a path, an address or an ID.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// deviceChanges counts device upserts and removals published to nodes.
	deviceChanges prometheus.Counter
}

func newMetrics(st *store.Store) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "traceless_http_requests_total", Help: "HTTP requests by method, route pattern and status.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "traceless_http_request_duration_seconds", Help: "HTTP request duration by method and route pattern.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"method", "route"}),
	}
	m.deviceChanges = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "traceless_device_changes_total", Help: "Device additions, rotations and removals published to nodes.",
	})
	m.reg.MustRegister(m.requests, m.duration, m.deviceChanges,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&storeCollector{st: st})
	return m
}

func (m *metrics) observe(method, route string, status int, d time.Duration) {
	m.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(method, route).Observe(d.Seconds())
}

func (s *Server) handleMetrics(c echo.Context) error {
	promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}).ServeHTTP(c.Response(), c.Request())
	return nil
}

// storeCollector reports row counts at scrape time.
type storeCollector struct{ st *store.Store }

var (
	descOwners   = prometheus.NewDesc("traceless_owners", "Registered owner accounts.", nil, nil)
	descApps     = prometheus.NewDesc("traceless_apps", "Registered apps.", nil, nil)
	descDevices  = prometheus.NewDesc("traceless_devices", "Registered devices.", nil, nil)
	descNodes    = prometheus.NewDesc("traceless_nodes", "Enrolled nodes.", nil, nil)
	descRevision = prometheus.NewDesc("traceless_sync_revision", "Current global sync revision.", nil, nil)
)

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descOwners, descApps, descDevices, descNodes, descRevision} {
		ch <- d
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.st.Stats(ctx)
	if err != nil {
		return
	}
	for _, v := range []struct {
		d *prometheus.Desc
		n int64
	}{{descOwners, st.Owners}, {descApps, st.Apps}, {descDevices, st.Devices}, {descNodes, st.Nodes}, {descRevision, st.Revision}} {
		ch <- prometheus.MustNewConstMetric(v.d, prometheus.GaugeValue, float64(v.n))
	}
}
