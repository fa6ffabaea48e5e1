// Package remote is the one way mlsidecar calls a model provider: every
// connector action (predict, batch predict, status, cancel, file reads) is
// turned into a Call and executed here, with the connector's client
// configuration, retries only where they are safe, SigV4 signing, and the
// outbound safety checks on every connection.
package remote

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mlsidecar/mlsidecar/mlcommons/outbound"
)

// Config is a connector's client_config, timeouts in seconds.
type Config struct {
	MaxConnection       int
	ConnectionTimeout   int
	ReadTimeout         int
	RetryBackoffMillis  int
	RetryTimeoutSeconds int
	MaxRetryTimes       int // 0: no retry; -1: until RetryTimeoutSeconds
	RetryBackoffPolicy  string
	SkipSSLVerification bool
}

// DefaultConfig is what a connector without client_config gets.
func DefaultConfig() Config {
	return Config{MaxConnection: 30, ConnectionTimeout: 30, ReadTimeout: 30, RetryBackoffMillis: 200,
		RetryTimeoutSeconds: 30, RetryBackoffPolicy: "constant"}
}

// SigV4 are the signing parameters of an aws_sigv4 connector.
type SigV4 struct {
	AccessKey, SecretKey, SessionToken string
	Region, Service                    string
}

// Call is one provider request.
type Call struct {
	// Provider and Action label metrics ("openai", "predict").
	Provider, Action string
	Method, URL      string
	Headers          map[string]string
	Body             []byte
	SigV4            *SigV4
	Config           Config
	// ClientKey selects the pooled client: calls of one connector version
	// share connections.
	ClientKey string
	// AllowEmpty accepts a 2xx answer without a body (cancel calls).
	AllowEmpty bool
}

// Response is a provider's successful answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Error is a failed call, worded as ML Commons words it. It never carries a
// credential or a signed URL.
type Error struct {
	Status int
	Type   string
	Reason string
}

func (e *Error) Error() string { return e.Reason }

// MaxRetryAfter caps how long a provider's Retry-After may hold a retry.
const MaxRetryAfter = 30 * time.Second

// maxResponseBytes bounds what is read of a provider's answer.
const maxResponseBytes = 64 << 20

// Engine executes Calls.
type Engine struct {
	guard   *outbound.Guard
	log     *slog.Logger
	metrics *metrics

	mu      sync.Mutex
	clients map[string]*retryablehttp.Client
}

// New returns an Engine whose every connection passes guard.
func New(guard *outbound.Guard, log *slog.Logger, reg prometheus.Registerer) *Engine {
	return &Engine{guard: guard, log: log, metrics: newMetrics(reg), clients: map[string]*retryablehttp.Client{}}
}

// Do executes the call: 2xx with a body is a Response, anything else an
// *Error (or an *outbound.Error when the safety checks refuse).
func (e *Engine) Do(ctx context.Context, c Call) (*Response, error) {
	if err := e.guard.CheckURL(c.URL); err != nil {
		return nil, err
	}
	client := e.client(c)
	if c.Config.MaxRetryTimes != 0 && c.Config.RetryTimeoutSeconds > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(c.Config.RetryTimeoutSeconds)*time.Second+
			time.Duration(c.Config.ReadTimeout+c.Config.ConnectionTimeout)*time.Second)
		defer cancel()
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, c.Method, c.URL, c.Body)
	if err != nil {
		return nil, &Error{Status: http.StatusBadRequest, Type: "illegal_argument_exception",
			Reason: "Encountered error when trying to create uri from endpoint in ml connector. Please update the endpoint in connection configuration"}
	}
	for k, v := range c.Headers {
		req.Header.Set(k, v)
	}
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	ctx = withCall(ctx, &c)
	req = req.WithContext(ctx)

	start := time.Now()
	resp, err := client.Do(req)
	elapsed := time.Since(start)
	if err != nil {
		e.metrics.observe(c, "error", elapsed)
		return nil, e.transportError(ctx, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		e.metrics.observe(c, "error", elapsed)
		return nil, e.transportError(ctx, err)
	}
	e.metrics.observe(c, strconv.Itoa(resp.StatusCode), elapsed)
	switch {
	case resp.StatusCode < 200 || resp.StatusCode >= 300:
		if len(bytes.TrimSpace(body)) == 0 {
			return nil, &Error{Status: resp.StatusCode, Type: "status_exception",
				Reason: fmt.Sprintf("Remote service returned error status %d with empty body", resp.StatusCode)}
		}
		return nil, &Error{Status: resp.StatusCode, Type: "status_exception", Reason: "Error from remote service: " + string(body)}
	case len(bytes.TrimSpace(body)) == 0 && !c.AllowEmpty:
		return nil, &Error{Status: http.StatusBadGateway, Type: "status_exception", Reason: "Remote service returned empty response body"}
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// transportError words a failure without the URL (it may be signed or hold
// a secret in its query).
func (e *Engine) transportError(ctx context.Context, err error) error {
	var oe *outbound.Error
	if errors.As(err, &oe) {
		return oe
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return &Error{Status: http.StatusGatewayTimeout, Type: "status_exception", Reason: "Remote service did not answer in time"}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return &Error{Status: http.StatusInternalServerError, Type: "status_exception",
		Reason: "Error communicating with remote model: " + err.Error()}
}

// client returns the pooled client of a connector version.
func (e *Engine) client(c Call) *retryablehttp.Client {
	e.mu.Lock()
	defer e.mu.Unlock()
	if cl, ok := e.clients[c.ClientKey]; ok && c.ClientKey != "" {
		return cl
	}
	if len(e.clients) > 1000 { // connector versions come and go; start over
		for k, cl := range e.clients {
			cl.HTTPClient.CloseIdleConnections()
			delete(e.clients, k)
		}
	}
	cfg := c.Config
	t := e.guard.Transport()
	t.MaxConnsPerHost = max(cfg.MaxConnection, 1)
	t.MaxIdleConnsPerHost = max(cfg.MaxConnection, 1)
	t.ResponseHeaderTimeout = time.Duration(cfg.ReadTimeout) * time.Second
	t.DialContext = (&guardDialer{guard: e.guard, timeout: time.Duration(cfg.ConnectionTimeout) * time.Second}).DialContext
	if cfg.SkipSSLVerification {
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the connector asked for it
	}
	cl := retryablehttp.NewClient()
	cl.HTTPClient = &http.Client{
		Transport: &signer{next: t},
		// ML Commons never follows redirects; a redirect target is checked anyway.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	cl.Logger = nil
	cl.RetryMax = cfg.MaxRetryTimes
	if cfg.MaxRetryTimes < 0 {
		cl.RetryMax = 1 << 20 // bounded by the retry timeout
	}
	base := time.Duration(max(cfg.RetryBackoffMillis, 1)) * time.Millisecond
	cl.RetryWaitMin, cl.RetryWaitMax = base, max(base, MaxRetryAfter)
	cl.CheckRetry = e.checkRetry
	cl.Backoff = backoff(cfg.RetryBackoffPolicy)
	cl.ErrorHandler = retryablehttp.PassthroughErrorHandler
	cl.RequestLogHook = func(_ retryablehttp.Logger, r *http.Request, attempt int) {
		if attempt > 0 {
			if c := callFrom(r.Context()); c != nil {
				e.metrics.retries.WithLabelValues(c.Provider, c.Action).Inc()
			}
		}
	}
	if c.ClientKey != "" {
		e.clients[c.ClientKey] = cl
	}
	return cl
}

// checkRetry retries only answers that say "try again": 429, 5xx and AWS
// throttling. Connection failures are not retried: a submission may have
// reached the provider.
func (e *Engine) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil || resp == nil {
		return false, err
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		return true, nil
	}
	if strings.HasPrefix(resp.Header.Get("X-Amzn-Errortype"), "ThrottlingException") {
		return true, nil
	}
	return false, nil
}

// backoff implements ML Commons' retry_backoff_policy values; a provider's
// Retry-After wins, capped at MaxRetryAfter.
func backoff(policy string) retryablehttp.Backoff {
	return func(min, max time.Duration, attempt int, resp *http.Response) time.Duration {
		if resp != nil {
			if s := resp.Header.Get("Retry-After"); s != "" {
				if secs, err := strconv.Atoi(s); err == nil && secs >= 0 {
					return minDuration(time.Duration(secs)*time.Second, MaxRetryAfter)
				}
				if t, err := http.ParseTime(s); err == nil {
					return minDuration(max0(time.Until(t)), MaxRetryAfter)
				}
			}
		}
		exp := minDuration(min<<min64(attempt, 20), max)
		switch policy {
		case "exponential_equal_jitter":
			half := exp / 2
			return half + time.Duration(rand.Int64N(int64(half)+1))
		case "exponential_full_jitter":
			return time.Duration(rand.Int64N(int64(exp) + 1))
		default: // constant
			return min
		}
	}
}

func minDuration(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}

func max0(d time.Duration) time.Duration {
	if d < 0 {
		return 0
	}
	return d
}

func min64(a, b int) int {
	if a < b {
		return a
	}
	return b
}

// guardDialer applies the connector's connection timeout on top of the
// guard's checked dial.
type guardDialer struct {
	guard   *outbound.Guard
	timeout time.Duration
}

func (d *guardDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if d.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.timeout)
		defer cancel()
	}
	return d.guard.DialContext(ctx, network, addr)
}

type callKey struct{}

func withCall(ctx context.Context, c *Call) context.Context {
	return context.WithValue(ctx, callKey{}, c)
}

func callFrom(ctx context.Context) *Call {
	c, _ := ctx.Value(callKey{}).(*Call)
	return c
}
