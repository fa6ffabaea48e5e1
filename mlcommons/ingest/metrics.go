package ingest

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	documents *prometheus.CounterVec
	failures  *prometheus.CounterVec
	bytes     *prometheus.CounterVec
	bulk      prometheus.Histogram
	tasks     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		documents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlsidecar_ingest_documents_total",
			Help: "Documents batch ingestion indexed, by source (openai, s3, or the provider of the batch job).",
		}, []string{"source"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlsidecar_ingest_failures_total",
			Help: "Records batch ingestion could not index (recorded in the failures index), by source.",
		}, []string{"source"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlsidecar_ingest_read_bytes_total",
			Help: "Bytes of source files batch ingestion has committed, by source.",
		}, []string{"source"}),
		bulk: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mlsidecar_ingest_bulk_seconds",
			Help:    "Duration of one bulk request of batch ingestion.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		tasks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlsidecar_ingest_tasks_total",
			Help: "BATCH_INGEST tasks created, and ended by state (COMPLETED, COMPLETED_WITH_ERROR, FAILED), on this replica.",
		}, []string{"state"}),
	}
	if reg != nil {
		reg.MustRegister(m.documents, m.failures, m.bytes, m.bulk, m.tasks)
	}
	return m
}
