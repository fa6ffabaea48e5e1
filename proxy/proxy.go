// Package proxy is mlsidecar's transparent forwarding path: every request
// that is not ML Commons API traffic goes to the OpenSearch cluster exactly
// as it came (method, encoded path, raw query, headers, streamed body), and
// the cluster's answer comes back exactly as it was sent.
package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TransportOptions tunes the one transport the forwarding path uses.
type TransportOptions struct {
	// TLS is the client TLS configuration for an https upstream. It must not
	// carry the sidecar's own client certificate: callers' requests are
	// forwarded with the callers' credentials only.
	TLS             *tls.Config
	DialTimeout     time.Duration
	ResponseTimeout time.Duration
	// MaxHeaderBytes refuses, without sending it, a request whose header
	// block (HeaderBytes) is larger; 0 means no limit. Set it to the
	// cluster's http.max_header_size.
	MaxHeaderBytes int
}

// NewTransport returns the transport for forwarded traffic: one upstream, so
// the idle pool per host is large; compression is left entirely to the
// client and the cluster. No connection is reused after an answer that may
// have left the cluster no longer reading it (see mayLeaveConnUnread).
func NewTransport(o TransportOptions) http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}).DialContext
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 1024
	t.IdleConnTimeout = 90 * time.Second
	t.ResponseHeaderTimeout = o.ResponseTimeout
	t.DisableCompression = true
	t.WriteBufferSize = 64 << 10
	t.ReadBufferSize = 64 << 10
	t.TLSClientConfig = o.TLS
	t.Proxy = nil // the upstream is reached directly, never through HTTP_PROXY
	return &transport{next: t, maxHeaderBytes: o.MaxHeaderBytes}
}

// Proxy forwards requests to one upstream.
type Proxy struct {
	rp      *httputil.ReverseProxy
	log     *slog.Logger
	metrics *metrics
	small   sync.Pool // *[]byte of smallBody bytes
}

// New returns a Proxy to upstream (scheme, host and an optional path prefix).
func New(upstream *url.URL, transport http.RoundTripper, log *slog.Logger, reg prometheus.Registerer) *Proxy {
	p := &Proxy{log: log, metrics: newMetrics(reg)}
	p.small.New = func() any { b := make([]byte, smallBody); return &b }
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(upstream)
			// Rewrite would otherwise hand on a re-encoded query; OpenSearch
			// must see the caller's bytes.
			pr.Out.URL.RawQuery = pr.In.URL.RawQuery
			// Append to the caller's chain instead of replacing it.
			if xff, ok := pr.In.Header["X-Forwarded-For"]; ok {
				pr.Out.Header["X-Forwarded-For"] = xff
			}
			pr.SetXForwarded()
		},
		Transport:    transport,
		BufferPool:   newBufferPool(),
		ErrorHandler: p.handleError,
		ErrorLog:     slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return p
}

// smallBody is the largest request body read into memory before it is
// forwarded (as nginx's client_body_buffer_size): the transport then sends
// headers and body in one write instead of flushing the headers first.
// Larger bodies stream, so memory stays flat however big a _bulk is.
const smallBody = 16 << 10

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > 0 && r.ContentLength <= smallBody {
		bp := p.small.Get().(*[]byte)
		defer p.small.Put(bp)
		buf := (*bp)[:r.ContentLength]
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			// The client sent less than it announced, or went away.
			p.log.DebugContext(r.Context(), "reading request body", "err", err)
			WriteError(w, http.StatusBadRequest, "parse_exception", "request body is shorter than its Content-Length")
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(buf))
	} else if r.Body != nil && r.Body != http.NoBody {
		r.Body = &clientBody{ReadCloser: r.Body}
	}
	p.rp.ServeHTTP(w, r)
}

// clientBody marks errors reading the caller's streamed body, so that a
// client's framing mistake (a bad chunk, a body shorter than announced) is
// answered as the client's error, not as an unreachable cluster.
type clientBody struct{ io.ReadCloser }

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = &clientBodyError{err: err}
	}
	return n, err
}

type clientBodyError struct{ err error }

func (e *clientBodyError) Error() string { return "reading the request body: " + e.err.Error() }
func (e *clientBodyError) Unwrap() error { return e.err }

// handleError answers for an upstream that could not be reached or did not
// answer in time, in OpenSearch's error envelope and without naming the
// upstream's address; a request the client got wrong is the client's 4xx.
func (p *Proxy) handleError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		// The client went away: there is nobody to answer and nothing failed.
		p.log.DebugContext(r.Context(), "client went away", "err", err)
		return
	}
	var tooLarge *HeaderTooLargeError
	if errors.As(err, &tooLarge) {
		p.log.DebugContext(r.Context(), "request header block too large", "max_bytes", tooLarge.Max)
		WriteHeaderTooLarge(w, tooLarge.Max)
		return
	}
	var bodyErr *clientBodyError
	if errors.As(err, &bodyErr) {
		p.log.DebugContext(r.Context(), "reading request body", "err", err)
		WriteError(w, http.StatusBadRequest, "parse_exception", "the request body could not be read: it is malformed or shorter than announced")
		return
	}
	reason := classify(err)
	p.metrics.upstreamErrors.WithLabelValues(reason).Inc()
	p.log.WarnContext(r.Context(), "upstream request failed", "reason", reason, "method", r.Method, "err", err)
	if reason == reasonTimeout {
		WriteError(w, http.StatusGatewayTimeout, "gateway_timeout_exception", "the OpenSearch cluster did not answer in time")
		return
	}
	WriteError(w, http.StatusBadGateway, "bad_gateway_exception", "the OpenSearch cluster cannot be reached")
}

const (
	reasonTimeout = "timeout"
	reasonRefused = "refused"
	reasonReset   = "reset"
	reasonDNS     = "dns"
	reasonTLS     = "tls"
	reasonOther   = "other"
)

// classify names an upstream failure with a bounded label.
func classify(err error) string {
	var netErr net.Error
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var recordErr tls.RecordHeaderError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return reasonTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return reasonRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return reasonReset
	case errors.As(err, &dnsErr):
		return reasonDNS
	case errors.As(err, &certErr), errors.As(err, &recordErr):
		return reasonTLS
	default:
		return reasonOther
	}
}

// bufferPool lends ReverseProxy its copy buffers so streaming large bodies
// allocates nothing per request.
type bufferPool struct{ p sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
}

func (bp *bufferPool) Get() []byte  { return *(bp.p.Get().(*[]byte)) }
func (bp *bufferPool) Put(b []byte) { bp.p.Put(&b) }
