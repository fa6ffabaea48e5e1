package auth

import "github.com/prometheus/client_golang/prometheus"

const (
	resultAllowed   = "allowed"
	resultAnonymous = "anonymous"
	resultRejected  = "rejected"
	resultError     = "error"

	cacheHit  = "hit"
	cacheMiss = "miss"
)

type metrics struct {
	checks *prometheus.CounterVec
	cache  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlsidecar_auth_checks_total",
			Help: "ML requests by authentication outcome, from the cache or from the cluster.",
		}, []string{"result"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlsidecar_auth_cache_total",
			Help: "Authentication verdict cache lookups, by result.",
		}, []string{"result"}),
	}
	for _, r := range []string{resultAllowed, resultAnonymous, resultRejected, resultError} {
		m.checks.WithLabelValues(r)
	}
	for _, r := range []string{cacheHit, cacheMiss} {
		m.cache.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.checks, m.cache)
	}
	return m
}
