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
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mlsidecar/mlsidecar/mlcommons/outbound"
)

// Config is a connector's client_config, timeouts in seconds: the stored
// type itself, so the connector's settings reach the client unchanged.
type Config = indexstore.ClientConfig

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
	// Provider and Action label metrics (a provider name, an action type).
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
	// Throttled, if set, names answers besides 429 and 5xx that mean "try
	// again" (a provider's own throttling signal). Like SigV4, it is bound
	// into the pooled client of ClientKey when that client is built.
	Throttled func(*http.Response) bool
	// Secrets are the connector's decrypted credential values: whatever the
	// call gives back (answer bodies, error reasons) has them redacted, in
	// case a provider echoes a request header.
	Secrets []string
}

// Response is a provider's successful answer.
type Response struct {
	StatusCode int
	Header     http.Header
	Body       []byte
}

// MaxRetryAfter caps how long a provider's Retry-After may hold a retry.
const MaxRetryAfter = 30 * time.Second

// maxOpenBudget is the retry budget of a connector that retries without
// retry_timeout_seconds: every call ends some time.
const maxOpenBudget = 5 * time.Minute

// attemptTimeout bounds one attempt from dialling to the last byte of the
// answer: connection_timeout plus read_timeout (each defaulting when unset),
// so a provider that sends half a body and stalls cannot hold a caller.
func attemptTimeout(cfg Config) time.Duration {
	conn, read := cfg.ConnectionTimeout, cfg.ReadTimeout
	if conn <= 0 {
		conn = DefaultConfig().ConnectionTimeout
	}
	if read <= 0 {
		read = DefaultConfig().ReadTimeout
	}
	return time.Duration(conn+read) * time.Second
}

// retryBudget is how long after its start a call may still begin a retry.
func retryBudget(cfg Config) time.Duration {
	switch {
	case cfg.MaxRetryTimes == 0:
		return 0
	case cfg.RetryTimeoutSeconds > 0:
		return time.Duration(cfg.RetryTimeoutSeconds) * time.Second
	case cfg.MaxRetryTimes > 0:
		return min(time.Duration(cfg.MaxRetryTimes)*(attemptTimeout(cfg)+MaxRetryAfter), maxOpenBudget)
	default:
		return maxOpenBudget
	}
}

// Timeout is the longest a call with cfg takes, retries included: the retry
// budget plus one last attempt. Callers that must outlive a call (the batch
// worker recording its failure) wait this long.
func Timeout(cfg Config) time.Duration { return retryBudget(cfg) + attemptTimeout(cfg) }

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
// *mlerr.Error worded as ML Commons words it, never carrying a credential
// or a signed URL.
func (e *Engine) Do(ctx context.Context, c Call) (*Response, error) {
	if err := e.guard.CheckURL(c.URL); err != nil {
		return nil, err
	}
	client := e.client(c)
	// Each attempt is bounded by the client's Timeout; this bounds the whole
	// call, waits between attempts included.
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, Timeout(c.Config))
	defer cancel()
	req, err := retryablehttp.NewRequestWithContext(ctx, c.Method, c.URL, c.Body)
	if err != nil {
		return nil, mlerr.IllegalArgument("Encountered error when trying to create uri from endpoint in ml connector. Please update the endpoint in connection configuration")
	}
	for k, v := range c.Headers {
		req.Header.Set(k, v)
	}
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	// The labels ride along for the retry counter of the shared client;
	// the trace notes whether any attempt sent the request.
	var sent atomic.Bool
	traced := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteHeaders: func() { sent.Store(true) }})
	req = req.WithContext(withLabels(traced, labels{provider: c.Provider, action: c.Action,
		retryUntil: start.Add(retryBudget(c.Config))}))

	resp, err := client.Do(req)
	if err != nil {
		e.metrics.observe(c, "error", time.Since(start))
		return nil, unanswered(sent.Load(), RedactError(e.transportError(ctx, err), c.Secrets))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	elapsed := time.Since(start)
	if err != nil {
		e.metrics.observe(c, "error", elapsed)
		return nil, unanswered(true, RedactError(e.transportError(ctx, err), c.Secrets))
	}
	e.metrics.observe(c, strconv.Itoa(resp.StatusCode), elapsed)
	body = Redact(body, c.Secrets)
	switch {
	case resp.StatusCode < 200 || resp.StatusCode >= 300:
		if len(bytes.TrimSpace(body)) == 0 {
			return nil, mlerr.Provider(resp.StatusCode, "Remote service returned error status %d with empty body", resp.StatusCode)
		}
		return nil, mlerr.Provider(resp.StatusCode, "%s", "Error from remote service: "+string(body))
	case len(bytes.TrimSpace(body)) == 0 && !c.AllowEmpty:
		return nil, mlerr.BadGateway("Remote service returned empty response body")
	}
	return &Response{StatusCode: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// ErrUnanswered marks the failure of a call the provider received, or may
// have, but did not answer in full: whether it acted on it is unknown. A
// call that failed before any request was sent (no connection, the
// outbound guard's refusal) is not marked.
var ErrUnanswered = errors.New("the provider did not answer")

type unansweredError struct{ error }

func (e unansweredError) Unwrap() error      { return e.error }
func (unansweredError) Is(target error) bool { return target == ErrUnanswered }

func unanswered(sent bool, err error) error {
	if !sent {
		return err
	}
	return unansweredError{err}
}

// transportError words a failure without the URL (it may be signed or hold
// a secret in its query).
func (e *Engine) transportError(ctx context.Context, err error) error {
	if me, ok := mlerr.From(err); ok {
		return me // the outbound guard's refusal
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return mlerr.Status(http.StatusGatewayTimeout, "Remote service did not answer in time")
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return mlerr.Status(http.StatusInternalServerError, "%s", "Error communicating with remote model: "+err.Error())
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
	// 0 means the default, never "no bound" (attemptTimeout does the same).
	read, conn := cfg.ReadTimeout, cfg.ConnectionTimeout
	if read <= 0 {
		read = DefaultConfig().ReadTimeout
	}
	if conn <= 0 {
		conn = DefaultConfig().ConnectionTimeout
	}
	t.ResponseHeaderTimeout = time.Duration(read) * time.Second
	t.DialContext = (&guardDialer{guard: e.guard, timeout: time.Duration(conn) * time.Second}).DialContext
	if cfg.SkipSSLVerification {
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the connector asked for it
	}
	cl := retryablehttp.NewClient()
	cl.HTTPClient = &http.Client{
		// Per attempt, and unlike the transport's timeouts it covers reading
		// the body.
		Timeout:   attemptTimeout(cfg),
		Transport: newSigner(c.SigV4, t),
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
	cl.CheckRetry = checkRetry(c.Throttled)
	cl.Backoff = backoff(cfg.RetryBackoffPolicy)
	cl.ErrorHandler = retryablehttp.PassthroughErrorHandler
	cl.RequestLogHook = func(_ retryablehttp.Logger, r *http.Request, attempt int) {
		if attempt > 0 {
			l := labelsFrom(r.Context())
			e.metrics.retries.WithLabelValues(l.provider, l.action).Inc()
		}
	}
	if c.ClientKey != "" {
		e.clients[c.ClientKey] = cl
	}
	return cl
}

// checkRetry retries only answers that say "try again": 429, 5xx and what
// throttled recognises, and only within the call's retry budget. Once the
// budget is spent, or a Retry-After asks for longer than is left of it, the
// provider's answer is the call's answer: the caller learns the provider is
// throttling (429 and its body), not that the sidecar ran out of time.
// Connection failures are not retried: a submission may have reached the
// provider.
func checkRetry(throttled func(*http.Response) bool) retryablehttp.CheckRetry {
	return func(ctx context.Context, resp *http.Response, err error) (bool, error) {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		if err != nil || resp == nil {
			return false, err
		}
		again := resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 ||
			throttled != nil && throttled(resp)
		if !again {
			return false, nil
		}
		until := labelsFrom(ctx).retryUntil
		if wait, ok := retryAfter(resp); ok && !until.IsZero() && time.Now().Add(wait).After(until) {
			return false, nil
		}
		return until.IsZero() || time.Now().Before(until), nil
	}
}

// retryAfter reads a Retry-After header (seconds or a date), capped at
// MaxRetryAfter.
func retryAfter(resp *http.Response) (time.Duration, bool) {
	s := resp.Header.Get("Retry-After")
	if s == "" {
		return 0, false
	}
	if secs, err := strconv.Atoi(s); err == nil && secs >= 0 {
		return min(time.Duration(secs)*time.Second, MaxRetryAfter), true
	}
	if t, err := http.ParseTime(s); err == nil {
		return min(max(time.Until(t), 0), MaxRetryAfter), true
	}
	return 0, false
}

// backoff implements ML Commons' retry_backoff_policy values; a provider's
// Retry-After wins, capped at MaxRetryAfter. No wait outlasts the call's
// retry budget.
func backoff(policy string) retryablehttp.Backoff {
	return func(waitMin, waitMax time.Duration, attempt int, resp *http.Response) time.Duration {
		wait := policyWait(policy, waitMin, waitMax, attempt)
		if resp != nil {
			if d, ok := retryAfter(resp); ok {
				wait = d
			}
			if resp.Request != nil {
				if until := labelsFrom(resp.Request.Context()).retryUntil; !until.IsZero() {
					wait = min(wait, max(time.Until(until), 0))
				}
			}
		}
		return wait
	}
}

func policyWait(policy string, waitMin, waitMax time.Duration, attempt int) time.Duration {
	exp := min(waitMin<<min(attempt, 20), waitMax)
	switch policy {
	case "exponential_equal_jitter":
		half := exp / 2
		return half + time.Duration(rand.Int64N(int64(half)+1))
	case "exponential_full_jitter":
		return time.Duration(rand.Int64N(int64(exp) + 1))
	default: // constant
		return waitMin
	}
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

// labels are the metric labels of a call and the end of its retry budget,
// carried in the request context to the hooks of the client its connector
// version shares.
type labels struct {
	provider, action string
	retryUntil       time.Time
}

type labelsKey struct{}

func withLabels(ctx context.Context, l labels) context.Context {
	return context.WithValue(ctx, labelsKey{}, l)
}

func labelsFrom(ctx context.Context) labels {
	l, _ := ctx.Value(labelsKey{}).(labels)
	return l
}
