package e2e

import (
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
