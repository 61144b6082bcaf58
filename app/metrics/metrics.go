// Package metrics exposes the server's Prometheus metrics on /metrics.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// OtherEvent is the event label of every webhook whose event is not a known one.
const OtherEvent = "other"

// Metrics holds the server's collectors in a registry of its own (no global default registry).
type Metrics struct {
	reg         *prometheus.Registry
	webhooks    *prometheus.CounterVec
	deployments *prometheus.CounterVec
	durations   *prometheus.HistogramVec
	// events are the event names webhooks are labelled by; any other name is OtherEvent, so
	// whoever sends requests cannot add series (the header of a rejected request is theirs).
	events map[string]bool
}

// New registers the collectors; connectedAgents reports how many agents are connected now, and
// webhookEvents are the event names the webhook counter keeps apart.
func New(connectedAgents func() int, webhookEvents []string) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stagely_webhooks_total", Help: "GitHub webhook deliveries by event (\"other\" for unknown names) and outcome.",
		}, []string{"event", "outcome"}),
		deployments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stagely_deployments_total", Help: "Finished deployments by outcome.",
		}, []string{"status"}),
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "stagely_deploy_duration_seconds", Help: "Time from a deployment being queued to its outcome.",
			Buckets: []float64{1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800},
		}, []string{"status"}),
		events: map[string]bool{},
	}
	for _, e := range webhookEvents {
		m.events[e] = true
	}
	m.reg.MustRegister(m.webhooks, m.deployments, m.durations,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "stagely_agents_connected", Help: "Agents connected to this server now.",
		}, func() float64 { return float64(connectedAgents()) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Webhook counts one delivery outcome: accepted, duplicate, rejected, busy (refused unread, 503),
// unavailable (not recorded, 503), processed, ignored, failed.
// An event name New was not given is counted as OtherEvent.
func (m *Metrics) Webhook(event, outcome string) {
	if !m.events[event] {
		event = OtherEvent
	}
	m.webhooks.WithLabelValues(event, outcome).Inc()
}

// DeploymentFinished counts an outcome and its duration.
func (m *Metrics) DeploymentFinished(status string, d time.Duration) {
	m.deployments.WithLabelValues(status).Inc()
	if d > 0 {
		m.durations.WithLabelValues(status).Observe(d.Seconds())
	}
}

// Handler serves the registry in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}
