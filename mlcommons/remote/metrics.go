package remote

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	retries  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlsidecar_remote_requests_total",
			Help: "Calls to model providers, by provider, action and the final status code (\"error\" when no answer).",
		}, []string{"provider", "action", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mlsidecar_remote_request_duration_seconds",
			Help:    "Time of provider calls including retries, by provider and action.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"provider", "action"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlsidecar_remote_retries_total",
			Help: "Retried provider requests, by provider and action.",
		}, []string{"provider", "action"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.retries)
	}
	return m
}

func (m *metrics) observe(c Call, code string, d time.Duration) {
	m.requests.WithLabelValues(c.Provider, c.Action, code).Inc()
	m.duration.WithLabelValues(c.Provider, c.Action).Observe(d.Seconds())
}
