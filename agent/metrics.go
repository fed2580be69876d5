package agent

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the agent's Prometheus metrics: aggregates only, with no
// label that could name a peer.
type metrics struct {
	reg        *prometheus.Registry
	peers      prometheus.Gauge
	revision   prometheus.Gauge
	syncErrors prometheus.Counter
	scrubbed   prometheus.Counter
	scrubReads prometheus.Counter
	pending    prometheus.Gauge
	peerLimit  prometheus.Gauge
	postureOK  prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		peers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "traceless_agent_peers", Help: "Peers in the desired set applied to the interface.",
		}),
		revision: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "traceless_agent_applied_revision", Help: "Control-plane revision last applied.",
		}),
		syncErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "traceless_agent_sync_errors_total", Help: "Failed sync attempts (control plane or device).",
		}),
		scrubbed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "traceless_agent_scrubbed_total", Help: "Idle peers re-created so the device forgot their endpoint, handshake time and counters.",
		}),
		scrubReads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "traceless_agent_scrub_reads_total", Help: "Reads of the device by the scrubber (of its stale peers alone on a userspace device).",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "traceless_agent_peers_not_applied", Help: "Desired peers not on the interface because its backend holds no more.",
		}),
		peerLimit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "traceless_agent_peer_limit", Help: "The most peers the interface's WireGuard backend holds.",
		}),
		postureOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "traceless_agent_posture_ok", Help: "1 when every privacy posture check holds, else 0.",
		}),
	}
	m.reg.MustRegister(m.peers, m.revision, m.syncErrors, m.scrubbed, m.scrubReads, m.pending, m.peerLimit, m.postureOK)
	return m
}

// MetricsHandler serves the agent's metrics in the Prometheus text
// format. Serve it on a local address only.
func (a *Agent) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(a.metrics.reg, promhttp.HandlerOpts{})
}

// RegisterMetrics adds collectors to the metrics MetricsHandler serves,
// such as the binary's traceless_build_info.
func (a *Agent) RegisterMetrics(cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := a.metrics.reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
