package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mlsidecar/mlsidecar/mlcommons/outbound"
)

func newEngine(t *testing.T, allowPrivate bool) *Engine {
	t.Helper()
	g, err := outbound.New(outbound.Options{TrustedEndpoints: []*regexp.Regexp{regexp.MustCompile(`^http://127\.0\.0\.1:[0-9]+/.*$`)}, AllowPrivate: allowPrivate})
	if err != nil {
		t.Fatal(err)
	}
	return New(g, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
}

// provider answers with the scripted responses in order, then the last one.
func provider(t *testing.T, script ...func(w http.ResponseWriter, r *http.Request)) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		if i >= len(script) {
			i = len(script) - 1
		}
		script[i](w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func answer(status int, body string, headers ...string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

func call(url string, cfg Config) Call {
	return Call{Provider: "test", Action: "predict", Method: "POST", URL: url + "/v1/x", Body: []byte(`{"a":1}`),
		Config: cfg, ClientKey: url}
}

func TestDo(t *testing.T) {
	retrying := DefaultConfig()
	retrying.MaxRetryTimes = 3
	retrying.RetryBackoffMillis = 1
	tests := []struct {
		name       string
		script     []func(http.ResponseWriter, *http.Request)
		cfg        Config
		wantCalls  int64
		wantStatus int // of the Error; 0 for success
		wantReason string
	}{
		{"success", []func(http.ResponseWriter, *http.Request){answer(200, `{"ok":true}`)}, DefaultConfig(), 1, 0, ""},
		{"429 then success", []func(http.ResponseWriter, *http.Request){answer(429, `{"e":1}`, "Retry-After", "0"), answer(200, `{}`)}, retrying, 2, 0, ""},
		{"throttled answer then success", []func(http.ResponseWriter, *http.Request){
			answer(400, `{"message":"slow down"}`, "X-Test-Throttled", "yes"), answer(200, `{}`)}, retrying, 2, 0, ""},
		{"unthrottled 400 is not retried", []func(http.ResponseWriter, *http.Request){
			answer(400, `{"message":"bad"}`, "X-Test-Throttled", "no"), answer(200, `{}`)}, retrying, 1, 400, "bad"},
		{"no retry without max_retry_times", []func(http.ResponseWriter, *http.Request){answer(503, `busy`), answer(200, `{}`)}, DefaultConfig(), 1, 503, "Error from remote service: busy"},
		{"5xx exhausts the retries", []func(http.ResponseWriter, *http.Request){answer(500, `{"error":"x"}`)}, retrying, 4, 500, `Error from remote service: {"error":"x"}`},
		{"4xx is not retried", []func(http.ResponseWriter, *http.Request){answer(401, `{"error":"bad key"}`), answer(200, `{}`)}, retrying, 1, 401, "bad key"},
		{"error status with empty body", []func(http.ResponseWriter, *http.Request){answer(404, ``)}, DefaultConfig(), 1, 404, "Remote service returned error status 404 with empty body"},
		{"2xx with empty body", []func(http.ResponseWriter, *http.Request){answer(200, ` `)}, DefaultConfig(), 1, 502, "Remote service returned empty response body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, n := provider(t, tt.script...)
			c := call(srv.URL, tt.cfg)
			c.Throttled = func(r *http.Response) bool { return r.Header.Get("X-Test-Throttled") == "yes" }
			resp, err := newEngine(t, true).Do(context.Background(), c)
			if got := n.Load(); got != tt.wantCalls {
				t.Errorf("provider saw %d requests, want %d", got, tt.wantCalls)
			}
			if tt.wantStatus == 0 {
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("got %v, %v, want success", resp, err)
				}
				return
			}
			var e *mlerr.Error
			if !errors.As(err, &e) || e.Status != tt.wantStatus || !strings.Contains(e.Reason, tt.wantReason) {
				t.Fatalf("got %v, want status %d reason %q", err, tt.wantStatus, tt.wantReason)
			}
		})
	}
}

func TestRetryAfterIsHonouredAndCounted(t *testing.T) {
	srv, n := provider(t, answer(429, `{}`, "Retry-After", "1"), answer(200, `{}`))
	e := newEngine(t, true)
	cfg := DefaultConfig()
	cfg.MaxRetryTimes, cfg.RetryBackoffMillis = 2, 1
	start := time.Now()
	if _, err := e.Do(context.Background(), call(srv.URL, cfg)); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 900*time.Millisecond {
		t.Errorf("retried after %s, want the provider's Retry-After of 1s", waited)
	}
	if got := testutil.ToFloat64(e.metrics.retries.WithLabelValues("test", "predict")); got != 1 || n.Load() != 2 {
		t.Errorf("retries metric %v, requests %d; want 1 and 2", got, n.Load())
	}
	if got := testutil.ToFloat64(e.metrics.requests.WithLabelValues("test", "predict", "200")); got != 1 {
		t.Errorf("requests{200} = %v, want 1", got)
	}
}

func TestTimeoutIs504(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	srv, _ := provider(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	cfg := DefaultConfig()
	cfg.ReadTimeout = 1
	_, err := newEngine(t, true).Do(context.Background(), call(srv.URL, cfg))
	var e *mlerr.Error
	if !errors.As(err, &e) || e.Status != 504 {
		t.Fatalf("got %v, want 504", err)
	}
	if strings.Contains(e.Reason, "127.0.0.1") {
		t.Errorf("reason %q names the URL", e.Reason)
	}
	if !errors.Is(err, ErrUnanswered) {
		t.Errorf("a request sent and never answered is not marked ErrUnanswered: %v", err)
	}
}

func TestOutboundChecks(t *testing.T) {
	srv, n := provider(t, answer(200, `{}`))
	_, err := newEngine(t, false).Do(context.Background(), call(srv.URL, DefaultConfig()))
	if !errors.Is(err, outbound.ErrPrivateAddress) || n.Load() != 0 {
		t.Errorf("private address: got %v after %d requests, want ErrPrivateAddress and none", err, n.Load())
	}
	c := call(srv.URL, DefaultConfig())
	c.URL = "http://localhost:1/v1/x"
	if _, err := newEngine(t, true).Do(context.Background(), c); !errors.Is(err, outbound.ErrUntrustedEndpoint) {
		t.Errorf("untrusted URL: got %v, want ErrUntrustedEndpoint", err)
	}
}

func TestSigV4SignsEveryAttempt(t *testing.T) {
	var auths []string
	srv, _ := provider(t,
		func(w http.ResponseWriter, r *http.Request) {
			auths = append(auths, r.Header.Get("Authorization"))
			w.WriteHeader(500)
			io.WriteString(w, "x")
		},
		func(w http.ResponseWriter, r *http.Request) {
			auths = append(auths, r.Header.Get("Authorization")+"|"+r.Header.Get("X-Amz-Security-Token"))
			io.WriteString(w, `{}`)
		})
	c := call(srv.URL, DefaultConfig())
	c.Config.MaxRetryTimes, c.Config.RetryBackoffMillis = 1, 1
	c.SigV4 = &SigV4{AccessKey: "AKIDEXAMPLE", SecretKey: "secret", SessionToken: "tok", Region: "us-east-1", Service: "bedrock"}
	if _, err := newEngine(t, true).Do(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if len(auths) != 2 {
		t.Fatalf("attempts = %d, want 2", len(auths))
	}
	for _, a := range auths {
		if !strings.HasPrefix(a, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") || !strings.Contains(a, "/us-east-1/bedrock/aws4_request") {
			t.Errorf("Authorization = %q, want a SigV4 signature for bedrock in us-east-1", a)
		}
	}
	if !strings.HasSuffix(auths[1], "|tok") {
		t.Errorf("retry lacks the session token: %q", auths[1])
	}
}

// waitDo runs Do and fails the test when it has not returned in 20 s: a call
// that never ends is the bug, so the bound is a deadline, not a measurement.
func waitDo(t *testing.T, e *Engine, c Call) (*Response, error) {
	t.Helper()
	type result struct {
		resp *Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := e.Do(context.Background(), c)
		done <- result{resp, err}
	}()
	select {
	case r := <-done:
		return r.resp, r.err
	case <-time.After(20 * time.Second):
		t.Fatal("Do has not returned after 20s")
		return nil, nil
	}
}

// A provider that sends the headers and half a body, then stalls, is cut off
// by the attempt's deadline (connection_timeout + read_timeout) with a 504.
func TestStalledBodyIs504(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	srv, _ := provider(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(200)
		io.WriteString(w, `{"id":"batch_1","sta`)
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	for _, retries := range []int{0, 2} {
		cfg := DefaultConfig()
		cfg.ConnectionTimeout, cfg.ReadTimeout, cfg.MaxRetryTimes, cfg.RetryTimeoutSeconds = 1, 1, retries, 1
		_, err := waitDo(t, newEngine(t, true), call(srv.URL, cfg))
		if e, ok := mlerr.From(err); !ok || e.Status != 504 || !errors.Is(err, ErrUnanswered) {
			t.Errorf("max_retry_times %d: got %v, want 504 marked ErrUnanswered", retries, err)
		}
	}
}

// A call that never reached the provider, and one it answered, are not
// "unanswered": the provider surely did not act, or said what it did.
func TestAnsweredOrNeverSent(t *testing.T) {
	srv, _ := provider(t, answer(400, `{"error":"bad"}`))
	_, err := newEngine(t, true).Do(context.Background(), call(srv.URL, DefaultConfig()))
	if _, ok := mlerr.From(err); !ok || errors.Is(err, ErrUnanswered) {
		t.Errorf("an answered 400: got %v, want the provider's error, not ErrUnanswered", err)
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	cfg := DefaultConfig()
	cfg.MaxRetryTimes = 0
	_, err = newEngine(t, true).Do(context.Background(), call(closed.URL, cfg))
	if err == nil || errors.Is(err, ErrUnanswered) {
		t.Errorf("a refused connection: got %v, want an error not marked ErrUnanswered", err)
	}
	_, err = newEngine(t, false).Do(context.Background(), call(srv.URL, DefaultConfig()))
	if !errors.Is(err, outbound.ErrPrivateAddress) || errors.Is(err, ErrUnanswered) {
		t.Errorf("a refused address: got %v, want ErrPrivateAddress only", err)
	}
}

// A Retry-After longer than what is left of the retry budget, or a budget
// spent on retries, gives the caller the provider's 429 and its body, not a
// timeout.
func TestThrottlingBeyondTheBudgetReturnsTheProviderAnswer(t *testing.T) {
	tests := []struct {
		name       string
		retryAfter string
		maxRetries int
		wantCalls  int64
	}{
		{"Retry-After beyond the budget", "120", 3, 1},
		{"budget spent on retries", "0", -1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, n := provider(t, answer(429, `{"error":"slow down"}`, "Retry-After", tt.retryAfter))
			cfg := DefaultConfig()
			cfg.MaxRetryTimes, cfg.RetryTimeoutSeconds, cfg.RetryBackoffMillis = tt.maxRetries, 1, 50
			_, err := waitDo(t, newEngine(t, true), call(srv.URL, cfg))
			e, ok := mlerr.From(err)
			if !ok || e.Status != 429 || !strings.Contains(e.Reason, "slow down") {
				t.Fatalf("got %v, want the provider's 429 with its body", err)
			}
			if tt.wantCalls > 0 && n.Load() != tt.wantCalls {
				t.Errorf("provider called %d times, want %d", n.Load(), tt.wantCalls)
			}
		})
	}
}

// A provider that echoes the request's headers in its answer does not hand
// the key back, in any encoding.
func TestSecretsAreRedactedFromAnswers(t *testing.T) {
	const key = `sk-"e2e"/key<42>`
	echo := func(status int) func(http.ResponseWriter, *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			b, _ := json.Marshal(map[string]any{"headers": r.Header, "raw": r.Header.Get("Authorization")})
			w.WriteHeader(status)
			w.Write(b)
			io.WriteString(w, ` \/ `+strings.ReplaceAll(strings.ReplaceAll(key, `"`, `\"`), "/", `\/`))
		}
	}
	for _, status := range []int{401, 200} {
		srv, _ := provider(t, echo(status))
		c := call(srv.URL, DefaultConfig())
		c.Headers = map[string]string{"Authorization": "Bearer " + key}
		c.Secrets = []string{key, "ab"}
		resp, err := newEngine(t, true).Do(context.Background(), c)
		var text string
		if status == 200 {
			if err != nil {
				t.Fatal(err)
			}
			text = string(resp.Body)
		} else {
			text = mlerr.Reason(err)
		}
		for _, leak := range []string{"e2e", `e2e\"\/key`, `\u003c42`} {
			if strings.Contains(text, leak) {
				t.Errorf("status %d: answer shows %q: %s", status, leak, text)
			}
		}
		if !strings.Contains(text, Redacted) || !strings.Contains(text, "Bearer") {
			t.Errorf("status %d: answer %s, want the key redacted and the rest kept", status, text)
		}
	}
}

func TestRedactError(t *testing.T) {
	const key = "sk-secret-value"
	inner := mlerr.Provider(401, "Error from remote service: bad key %s", key)
	tests := []struct {
		name       string
		err        error
		wantReason string
	}{
		{"ml error", inner, "Error from remote service: bad key [REDACTED]"},
		{"wrapped ml error", fmt.Errorf("calling: %w", inner), "Error from remote service: bad key [REDACTED]"},
		{"other error", fmt.Errorf("dial %s: %w", key, context.DeadlineExceeded), "internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := RedactError(tt.err, []string{key})
			if strings.Contains(got.Error(), key) {
				t.Errorf("Error() = %q shows the key", got)
			}
			if r := mlerr.Reason(got); r != tt.wantReason {
				t.Errorf("reason = %q, want %q", r, tt.wantReason)
			}
			if errors.Is(tt.err, context.DeadlineExceeded) != errors.Is(got, context.DeadlineExceeded) {
				t.Error("errors.Is changed")
			}
		})
	}
	if err := errors.New("clean"); RedactError(err, []string{key}) != err {
		t.Error("an error without a secret was replaced")
	}
}
