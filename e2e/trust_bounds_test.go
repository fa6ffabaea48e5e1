package e2e

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Given a sidecar whose cluster stops answering (as a SIGSTOPped node
// does), when an ML request needs the sidecar's indices, then it gets a 504
// once --index-call-timeout has passed instead of hanging; when the cluster
// answers again, so does the sidecar.
func TestIndexCallsHaveADeadline(t *testing.T) {
	target, _ := url.Parse(node.url())
	rp := httputil.NewSingleHostReverseProxy(target)
	var stalled atomic.Bool
	release := make(chan struct{})
	hop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if stalled.Load() {
			select { // a cluster that takes the request and never answers
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { close(release); hop.Close() })
	sc := startSidecar(t, "--upstream", hop.URL, "--index-prefix", ".e2e-index-timeout-", "--index-call-timeout", "2s",
		"--upstream-response-timeout", "0")
	if status, v := mlCall(t, sc, "GET", "/_plugins/_ml/connectors/abc", ""); status != 404 {
		t.Fatalf("before the stall: %d %v", status, v)
	}

	stalled.Store(true)
	// The client's own deadline is far above the call timeout: a hang
	// would fail here, a 504 answers.
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Get(sc.url + "/_plugins/_ml/connectors/abc")
	if err != nil {
		t.Fatalf("ML request while the cluster is silent: %v", err)
	}
	body := make([]byte, 4096)
	n, _ := resp.Body.Read(body)
	resp.Body.Close()
	if resp.StatusCode != 504 || !strings.Contains(string(body[:n]), "did not answer in time") {
		t.Errorf("ML request while the cluster is silent: %d %s, want 504", resp.StatusCode, body[:n])
	}

	stalled.Store(false)
	eventually(t, 20*time.Second, "ML answers again", func() bool {
		status, _ := mlCall(t, sc, "GET", "/_plugins/_ml/connectors/abc", "")
		return status == 404
	})
}

// trickle opens a connection and starts an ML request whose body of
// contentLength bytes never fully arrives; it returns the connection.
func trickle(t *testing.T, sc *sidecar, contentLength int) net.Conn {
	t.Helper()
	u, _ := url.Parse(sc.url)
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST /_plugins/_ml/connectors/_create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"name\":", contentLength)
	return c
}

// Given a sidecar with room for one 1 MiB ML body at a time, when a client
// sends a body that never finishes, then while it is being read a second
// body gets 429 at once instead of more memory; once the first is gone the
// budget is free again.
func TestMLBodiesShareAnInflightBudget(t *testing.T) {
	sc := startSidecar(t, "--index-prefix", ".e2e-bodies-budget-", "--ml-body-read-timeout", "10m",
		"--max-request-body-bytes", "1048576", "--max-inflight-ml-body-bytes", "1048576")
	slow := trickle(t, sc, 1<<20)
	eventually(t, 20*time.Second, "the slow body to hold the budget", func() bool {
		return sc.metric(t, "mlsidecar_ml_inflight_body_bytes", nil) == 1<<20
	})
	status, _, b := do(t, "POST", sc.url+"/_plugins/_ml/connectors/_create", strings.NewReader(strings.Repeat(" ", 2048)+"{}"),
		map[string]string{"Content-Type": "application/json"})
	if status != 429 || !strings.Contains(string(b), "circuit_breaking_exception") {
		t.Errorf("a second body while the budget is held: %d %s, want 429 circuit_breaking_exception", status, b)
	}
	slow.Close()
	eventually(t, 20*time.Second, "the budget to be free again", func() bool {
		return sc.metric(t, "mlsidecar_ml_inflight_body_bytes", nil) == 0
	})
	if status, v := mlCall(t, sc, "POST", "/_plugins/_ml/connectors/_create", `{"name":"x"}`); status != 400 {
		t.Errorf("a body once the budget is free: %d %v, want 400 (admitted, refused by validation)", status, v)
	}
}

// Given a sidecar with a 2 s ML body read timeout, when a client trickles a
// body that never finishes, then its connection is cut off after the
// timeout instead of being held.
func TestMLBodiesHaveAReadDeadline(t *testing.T) {
	sc := startSidecar(t, "--index-prefix", ".e2e-bodies-deadline-", "--ml-body-read-timeout", "2s")
	slow := trickle(t, sc, 1<<20)
	// The connection answers or closes well before this deadline; before
	// the read timeout it was held for as long as the client liked.
	_ = slow.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 512)
	_, err := slow.Read(buf)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the trickling connection is still held after 30 s")
	}
}
