package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mlsidecar/mlsidecar/config"
)

// newInternalMux serves the operational endpoints on the internal listener.
func newInternalMux(reg *prometheus.Registry, ready *readiness) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "OK\n")
	})
	mux.HandleFunc("GET /-/ready", func(w http.ResponseWriter, _ *http.Request) {
		if why := ready.notReadyReason(); why != "" {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "OK\n")
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// readiness is true only while every dependency is ready and the process is
// not shutting down.
type readiness struct {
	upstreamUp atomic.Bool
	stopping   atomic.Bool
	upGauge    prometheus.Gauge
	mlReady    func() bool
}

func newReadiness(reg prometheus.Registerer, mlReady func() bool) *readiness {
	r := &readiness{mlReady: mlReady, upGauge: prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "mlsidecar_upstream_up",
		Help: "1 while the upstream OpenSearch cluster answers the readiness check.",
	})}
	reg.MustRegister(r.upGauge)
	return r
}

func (r *readiness) notReadyReason() string {
	switch {
	case r.stopping.Load():
		return "shutting down"
	case !r.upstreamUp.Load():
		return "upstream OpenSearch cluster does not answer"
	case !r.mlReady():
		return "ML Commons indices or master key not ready"
	}
	return ""
}

func (r *readiness) stop() { r.stopping.Store(true) }

func (r *readiness) setUpstream(up bool) (changed bool) {
	if up {
		r.upGauge.Set(1)
	} else {
		r.upGauge.Set(0)
	}
	return r.upstreamUp.Swap(up) != up
}

// upstreamChecker asks the upstream at a fixed interval whether it answers.
// Any HTTP answer below 500 counts: a 401 still proves the cluster is there.
// One answer makes it ready; it takes downThreshold failures in a row to
// make it not ready, so one slow answer from a busy cluster does not.
type upstreamChecker struct {
	client   *http.Client
	upstream *url.URL
	interval time.Duration
	ready    *readiness
	log      *slog.Logger
}

const downThreshold = 3

func (c *upstreamChecker) run(ctx context.Context) {
	t := time.NewTicker(c.interval)
	defer t.Stop()
	failures := downThreshold // not ready until the first answer
	for {
		if c.check(ctx) {
			failures = 0
		} else {
			failures++
		}
		up := failures < downThreshold
		if c.ready.setUpstream(up) {
			if up {
				c.log.Info("upstream answers")
			} else {
				c.log.Warn("upstream does not answer")
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *upstreamChecker) check(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, min(max(c.interval, 2*time.Second), 5*time.Second))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.upstream.JoinPath("/").String(), nil)
	if err != nil {
		return false
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode < 500
}

// newServiceClient is the HTTP client of the sidecar's own upstream traffic,
// with the sidecar's own credentials.
func newServiceClient(cfg *config.Config) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = cfg.UpstreamTLS
	t.Proxy = nil
	var rt http.RoundTripper = t
	if cfg.UpstreamUsername != "" {
		rt = basicAuth{next: t, user: cfg.UpstreamUsername, password: cfg.UpstreamPassword}
	}
	return &http.Client{Transport: rt, Timeout: 30 * time.Second}
}

type basicAuth struct {
	next           http.RoundTripper
	user, password string
}

func (b basicAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.SetBasicAuth(b.user, b.password)
	return b.next.RoundTrip(r)
}
