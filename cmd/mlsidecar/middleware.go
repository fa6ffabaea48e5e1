package main

import (
	"context"
	"encoding/hex"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mlsidecar/mlsidecar/proxy"
)

const (
	routeClassML    = "ml"
	routeClassProxy = "proxy"
	// statusClientClosed is recorded (never sent) when the client left before
	// any answer, as nginx does.
	statusClientClosed = 499
)

type serverMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight *prometheus.GaugeVec
}

func newServerMetrics(reg prometheus.Registerer) *serverMetrics {
	m := &serverMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlsidecar_http_requests_total",
			Help: "Requests served, by route class (ml or proxy), method and status code.",
		}, []string{"route_class", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mlsidecar_http_request_duration_seconds",
			Help:    "Time from request headers to the end of the response, by route class and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"route_class", "method"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mlsidecar_http_requests_in_flight",
			Help: "Requests being served, by route class.",
		}, []string{"route_class"}),
	}
	reg.MustRegister(m.requests, m.duration, m.inFlight)
	return m
}

// middleware is the one decorator around the router: request id, panic
// recovery, metrics, the access log and the header-size limit, with a single
// response-writer wrapper.
type middleware struct {
	next    http.Handler
	log     *slog.Logger
	metrics *serverMetrics
	// maxHeaderBytes is the cluster's http.max_header_size: a larger header
	// block is refused here, before the authentication check or the proxy
	// would send it to the cluster (0: no limit).
	maxHeaderBytes int
}

func newMiddleware(next http.Handler, log *slog.Logger, reg prometheus.Registerer, maxHeaderBytes int) *middleware {
	return &middleware{next: next, log: log, metrics: newServerMetrics(reg), maxHeaderBytes: maxHeaderBytes}
}

func (m *middleware) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := r.Header.Get("X-Opaque-Id")
	if id == "" {
		id = newRequestID()
	}
	ctx := withRequestID(r.Context(), id)
	r = r.WithContext(ctx)

	class := routeClassProxy
	if isML(r) {
		class = routeClassML
	}
	method := methodLabel(r.Method)
	inFlight := m.metrics.inFlight.WithLabelValues(class)
	inFlight.Inc()
	rec := &statusRecorder{ResponseWriter: w}
	defer func() {
		inFlight.Dec()
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			m.log.ErrorContext(ctx, "panic serving request", "panic", p, "stack", string(debug.Stack()))
			if rec.status == 0 {
				proxy.WriteError(rec, http.StatusInternalServerError, "exception", "internal error in mlsidecar")
			}
		}
		status := rec.status
		if status == 0 {
			status = http.StatusOK
			if ctx.Err() != nil {
				status = statusClientClosed
			}
		}
		elapsed := time.Since(start)
		m.metrics.requests.WithLabelValues(class, method, strconv.Itoa(status)).Inc()
		m.metrics.duration.WithLabelValues(class, method).Observe(elapsed.Seconds())
		// Never the query string, headers or body: they may carry secrets.
		// Checked first so the proxy path builds no log arguments by default.
		if m.log.Enabled(ctx, slog.LevelDebug) {
			m.log.DebugContext(ctx, "request", "route_class", class, "method", r.Method,
				"path", r.URL.EscapedPath(), "status", status, "duration_seconds", elapsed.Seconds())
		}
	}()
	if m.maxHeaderBytes > 0 && proxy.HeaderBytes(r) > m.maxHeaderBytes {
		proxy.WriteHeaderTooLarge(rec, m.maxHeaderBytes)
		return
	}
	m.next.ServeHTTP(rec, r)
}

// methodLabel keeps the method label bounded.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodDelete, http.MethodPatch, http.MethodOptions:
		return m
	}
	return "OTHER"
}

// statusRecorder remembers the status code. Unwrap lets ReverseProxy reach
// the connection's Flusher through http.ResponseController.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 && code >= 200 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

type requestIDKey struct{}

func withRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

func newRequestID() string {
	var b [8]byte
	v := rand.Uint64()
	for i := range b {
		b[i] = byte(v >> (8 * i))
	}
	return hex.EncodeToString(b[:])
}
