package outbound

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Values of the check label.
const (
	checkTrustedEndpoint = "trusted_endpoint"
	checkPrivateAddress  = "private_address"
)

type metrics struct {
	rejections *prometheus.CounterVec
}

// newMetrics registers on reg unless it is nil. Guards sharing a registry
// share the counter.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	rejections := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mlsidecar_outbound_rejections_total",
		Help: "Outbound provider calls refused, by the check that refused them.",
	}, []string{"check"})
	if reg != nil {
		if err := reg.Register(rejections); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
			existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
			if !ok {
				return nil, err
			}
			rejections = existing
		}
	}
	for _, c := range []string{checkTrustedEndpoint, checkPrivateAddress} {
		rejections.WithLabelValues(c)
	}
	return &metrics{rejections: rejections}, nil
}

func (m *metrics) rejected(check string) { m.rejections.WithLabelValues(check).Inc() }
