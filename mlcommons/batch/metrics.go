package batch

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	batchTasks  *prometheus.GaugeVec
	submissions *prometheus.CounterVec
	refreshes   *prometheus.CounterVec
	pollCycle   prometheus.Histogram
	takeovers   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		batchTasks: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mlsidecar_batch_tasks",
			Help: "Batch prediction tasks in the tasks index, by state and provider (as of the last poll cycle).",
		}, []string{"state", "provider"}),
		submissions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlsidecar_batch_submissions_total",
			Help: "_batch_predict calls, by provider and result (ok, error).",
		}, []string{"provider", "result"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlsidecar_batch_refreshes_total",
			Help: "Batch task refreshes from the provider, by provider and result (unchanged, changed, error).",
		}, []string{"provider", "result"}),
		pollCycle: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mlsidecar_batch_poll_cycle_seconds",
			Help:    "Duration of one poll cycle over the due batch tasks.",
			Buckets: []float64{.01, .05, .1, .5, 1, 5, 10, 30, 60, 120, 300},
		}),
		takeovers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mlsidecar_batch_lease_takeovers_total",
			Help: "Batch tasks taken over from a replica whose lease had expired.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.batchTasks, m.submissions, m.refreshes, m.pollCycle, m.takeovers)
	}
	return m
}
