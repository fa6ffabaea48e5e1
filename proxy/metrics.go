package proxy

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	upstreamErrors *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlsidecar_upstream_errors_total",
			Help: "Forwarded requests that got no answer from the upstream, by reason.",
		}, []string{"reason"}),
	}
	for _, r := range []string{reasonTimeout, reasonRefused, reasonReset, reasonDNS, reasonTLS, reasonOther} {
		m.upstreamErrors.WithLabelValues(r)
	}
	reg.MustRegister(m.upstreamErrors)
	return m
}
