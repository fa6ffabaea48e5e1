package e2e

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// trustProxyGet sends one request on a fresh client whose deadline is far
// shorter than the sidecar's upstream response timeout (2 min), so a request
// stuck on a dead upstream connection fails here instead of waiting.
func trustProxyGet(t *testing.T, target string, header map[string]string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableCompression: true}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequest("GET", target, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Given a sidecar in front of the node, when one caller sends a header block
// larger than the node's http.max_header_size (8 KiB), then that caller gets
// a 431 and every request after it, forwarded or ML, is answered at once —
// the node never saw the oversize request, so no pooled connection is dead.
func TestTrustProxyOversizeHeadersDoNotPoisonThePool(t *testing.T) {
	sc := startSidecar(t)
	big := strings.Repeat("a", 9<<10)

	for _, tt := range []struct{ name, oversize, next string }{
		{"forwarded", "/_cluster/health", "/_cluster/health"},
		// ML requests are first checked with the caller's credentials
		// against the node's authinfo endpoint.
		{"ML", "/_plugins/_ml/tasks/_search", "/_plugins/_ml/tasks/_search"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, h := range []string{"X-Big", "Authorization"} {
				status, body := trustProxyGet(t, sc.url+tt.oversize, map[string]string{h: big})
				if status != http.StatusRequestHeaderFieldsTooLarge || !strings.Contains(body, `"type":"too_long_http_header_exception"`) {
					t.Errorf("9 KiB %s header: %d %s, want 431 too_long_http_header_exception", h, status, body)
				}
				for i := 0; i < 3; i++ {
					status, body := trustProxyGet(t, sc.url+tt.next, nil)
					if status >= 500 {
						t.Fatalf("request %d after the oversize one: %d %s", i, status, body)
					}
				}
			}
		})
	}
}

// recordingHop is a reverse proxy between the sidecar and the node that
// records every request URI it forwards, exactly as it arrived.
type recordingHop struct {
	mu   sync.Mutex
	uris []string
}

func startRecordingHop(t *testing.T) (*recordingHop, string) {
	t.Helper()
	u, err := url.Parse(node.url())
	if err != nil {
		t.Fatal(err)
	}
	hop := &recordingHop{}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(u)
		pr.Out.URL.RawQuery = pr.In.URL.RawQuery
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hop.mu.Lock()
		hop.uris = append(hop.uris, r.RequestURI)
		hop.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return hop, srv.URL
}

func (h *recordingHop) seen() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.uris...)
}

// Given a sidecar whose upstream records what reaches it, when ML paths
// with encoded or literal dot segments are sent — paths that cleaned leave
// /_plugins/_ml but that the cluster would route to its own ML plugin — then
// the sidecar answers them itself and none reaches the cluster.
func TestTrustProxyDotSegmentsNeverReachTheClusterMLRoutes(t *testing.T) {
	hop, upstream := startRecordingHop(t)
	sc := startSidecar(t, "--upstream", upstream)

	for _, target := range []string{
		"/_plugins/_ml/connectors/..%2F..%2F..%2F_cluster%2Fhealth",
		"/_plugins/_ml/models/..%2f..%2f..%2fx/_predict",
		"/_plugins/_ml/connectors/%2E%2E/%2E%2E/%2E%2E/_cluster/health",
		"/_plugins/_ml/../../_cluster/health",
	} {
		status, _, body := rawExchange(t, sc.url, "GET "+target+" HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
		if status < 400 || status >= 500 {
			t.Errorf("GET %s: %d %s, want the sidecar's own 4xx", target, status, body)
		}
	}
	for _, uri := range hop.seen() {
		decoded, err := url.PathUnescape(strings.SplitN(uri, "?", 2)[0])
		if err != nil {
			decoded = uri
		}
		if strings.HasPrefix(uri, "/_plugins/_ml") || strings.HasPrefix(decoded, "/_plugins/_ml") {
			t.Errorf("the cluster received %s", uri)
		}
	}
}

// Given a sidecar, when a client sends a streamed body with broken chunked
// framing, then it gets a 400 for its own mistake, not a 502 saying the
// cluster cannot be reached.
func TestTrustProxyClientFramingErrorIsA400(t *testing.T) {
	sc := startSidecar(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(sc.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	io.WriteString(conn, "POST /_bulk HTTP/1.1\r\nHost: test\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"+
		"5\r\n{\"ind\r\nnot-hex\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"status":400`) {
		t.Errorf("broken chunked body: %d %s, want an OpenSearch 400", resp.StatusCode, body)
	}
}
