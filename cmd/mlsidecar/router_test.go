package main

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mlsidecar/mlsidecar/mlcommons"
)

func TestRouterKeepsMLTrafficFromTheUpstream(t *testing.T) {
	forwarded := make(chan string, 1)
	fwd := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		forwarded <- r.RequestURI
		io.WriteString(w, "from upstream")
	})
	log := slog.New(slog.DiscardHandler)
	// No store or keys: real ML routes answer 503 "starting", unknown ones 400.
	ml := mlcommons.New(mlcommons.Options{Logger: log})
	noAuth := func(h http.Handler) http.Handler { return h }
	mw := newMiddleware(newRouter(ml, noAuth, fwd, fwd), log, prometheus.NewRegistry(), 0)
	srv := httptest.NewServer(mw)
	t.Cleanup(srv.Close)

	const starting, noHandler = http.StatusServiceUnavailable, http.StatusBadRequest
	tests := []struct {
		method, target string
		wantML         bool
		wantStatus     int
	}{
		{"GET", "/_plugins/_ml", true, noHandler},
		{"GET", "/_plugins/_ml/", true, noHandler},
		{"POST", "/_plugins/_ml/models/_search", true, starting},
		{"DELETE", "/_plugins/_ml/tasks/abc?pretty", true, starting},
		{"GET", "/_plugins/%5Fml/models/x", true, noHandler},
		{"GET", "/_plugins%2F_ml/models/x", true, noHandler},
		{"GET", "//_plugins/_ml/models/x", true, noHandler},
		{"GET", "/_plugins/./_ml/stats", true, noHandler},
		{"GET", "/x/../_plugins/_ml/stats", true, noHandler},
		{"GET", "/_plugins/_ml/no/such/route", true, noHandler},
		// Cleaned, these leave /_plugins/_ml; the cluster would not clean them.
		{"GET", "/_plugins/_ml/connectors/..%2F..%2F..%2Fx", true, starting},
		{"GET", "/_plugins/_ml/connectors/..%2f..%2f..%2f_cluster%2fhealth", true, starting},
		{"GET", "/_plugins/_ml/../x", true, noHandler},
		{"GET", "/_plugins/%5Fml/%2E%2E/%2E%2E/x", true, noHandler},
		{"HEAD", "/_plugins/_ml/connectors/_search", true, http.StatusMethodNotAllowed},
		{"GET", "/_plugins/_mlx", false, 0},
		{"GET", "/_plugins/_security/authinfo", false, 0},
		{"GET", "/_PLUGINS/_ML/stats", false, 0},
		{"GET", "/my_ml_index/_search", false, 0},
		{"GET", "/", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: x\r\n\r\n", tt.method, tt.target)
			resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: tt.method})
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			select {
			case uri := <-forwarded:
				if tt.wantML {
					t.Fatalf("ML request reached the upstream as %q", uri)
				}
			default:
				if !tt.wantML {
					t.Fatalf("request was not forwarded; got %d %s", resp.StatusCode, body)
				}
				if resp.StatusCode != tt.wantStatus {
					t.Errorf("status = %d, want %d (%s)", resp.StatusCode, tt.wantStatus, body)
				}
				if tt.wantStatus != http.StatusBadRequest || tt.method == "HEAD" {
					return
				}
				// OpenSearch names the decoded path, without the query.
				u, err := url.ParseRequestURI(tt.target)
				if err != nil {
					t.Fatal(err)
				}
				want := fmt.Sprintf(`{"error":"no handler found for uri [%s] and method [%s]"}`, u.Path, tt.method)
				if string(body) != want {
					t.Errorf("body = %s, want %s", body, want)
				}
			}
		})
	}

	if got := testutil.ToFloat64(mw.metrics.requests.WithLabelValues("ml", "GET", "400")); got != 10 {
		t.Errorf("requests{ml,GET,400} = %v, want 10", got)
	}
	if got := testutil.ToFloat64(mw.metrics.requests.WithLabelValues("proxy", "GET", "200")); got != 5 {
		t.Errorf("requests{proxy,GET,200} = %v, want 5", got)
	}
}

func TestMiddlewareRequestIDInLogs(t *testing.T) {
	var logs strings.Builder
	log := newLogger(&logs, slog.LevelDebug, "json")
	h := newMiddleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.InfoContext(r.Context(), "inside")
	}), log, prometheus.NewRegistry(), 0)

	req := httptest.NewRequest("GET", "/idx/_search?api_key=secret", nil)
	req.Header.Set("X-Opaque-Id", "opaque-42")
	req.Header.Set("Authorization", "Basic c2VjcmV0")
	h.ServeHTTP(httptest.NewRecorder(), req)

	out := logs.String()
	if got := strings.Count(out, `"request_id":"opaque-42"`); got != 2 {
		t.Errorf("request id appears %d times, want 2 (handler line and access line):\n%s", got, out)
	}
	for _, secret := range []string{"secret", "c2VjcmV0", "Authorization"} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains %q:\n%s", secret, out)
		}
	}

	logs.Reset()
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	if !strings.Contains(logs.String(), `"request_id":"`) {
		t.Errorf("no generated request id in %s", logs.String())
	}
}

func TestMiddlewareRecoversPanics(t *testing.T) {
	h := newMiddleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic("boom")
	}), slog.New(slog.DiscardHandler), prometheus.NewRegistry(), 0)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), `"status":500`) {
		t.Errorf("got %d %s, want a 500 OpenSearch error", rec.Code, rec.Body)
	}

	abort := newMiddleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic(http.ErrAbortHandler)
	}), slog.New(slog.DiscardHandler), prometheus.NewRegistry(), 0)
	defer func() {
		if p := recover(); p != http.ErrAbortHandler {
			t.Errorf("recovered %v, want http.ErrAbortHandler re-panicked", p)
		}
	}()
	abort.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/x", nil))
}

func TestOversizeHeaderBlockRefusedBeforeAuthentication(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	checked, forwarded := 0, 0
	authn := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { checked++; h.ServeHTTP(w, r) })
	}
	fwd := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { forwarded++ })
	const limit = 8192
	mw := newMiddleware(newRouter(mlcommons.New(mlcommons.Options{Logger: log}), authn, fwd, fwd), log, prometheus.NewRegistry(), limit)
	srv := httptest.NewServer(mw)
	t.Cleanup(srv.Close)

	// "Host: x" is 7 bytes, "Authorization: " 15.
	authz := func(blockSize int) string { return strings.Repeat("a", blockSize-7-15) }
	for _, target := range []string{"/_plugins/_ml/models/_search", "/idx/_search"} {
		for _, tt := range []struct {
			size int
			want int
		}{{limit, http.StatusOK}, {limit + 1, http.StatusRequestHeaderFieldsTooLarge}} {
			checked, forwarded = 0, 0
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n\r\n", target, authz(tt.size))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			conn.Close()
			if err != nil {
				t.Fatal(err)
			}
			reached := checked + forwarded
			if tt.want != http.StatusOK {
				if resp.StatusCode != tt.want || reached != 0 {
					t.Errorf("%s with a %d-byte block: status %d, authentication/upstream reached %d times; want %d and 0",
						target, tt.size, resp.StatusCode, reached, tt.want)
				}
				continue
			}
			if reached != 1 {
				t.Errorf("%s with a %d-byte block (the cluster's limit) was refused: %d", target, tt.size, resp.StatusCode)
			}
		}
	}
}
