package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// bulkStream generates an NDJSON _bulk body of about size bytes on the fly,
// so neither the test nor anything but the proxy path holds it in memory.
type bulkStream struct {
	index     string
	remaining int64
	docs      int
	pending   []byte
	pad       string
}

func (b *bulkStream) Read(p []byte) (int, error) {
	if len(b.pending) == 0 {
		if b.remaining <= 0 {
			return 0, io.EOF
		}
		b.pending = fmt.Appendf(nil, "{\"index\":{\"_index\":%q}}\n{\"n\":%d,\"pad\":%q}\n", b.index, b.docs, b.pad)
		b.docs++
		b.remaining -= int64(len(b.pending))
	}
	n := copy(p, b.pending)
	b.pending = b.pending[n:]
	return n, nil
}

// Given a sidecar, when a _bulk of 256 MiB or more streams through it, then
// every document is indexed and the sidecar's peak memory stays far below
// the body's size.
func TestLargeStreamedBulk(t *testing.T) {
	sizeMiB := int64(256)
	if v := os.Getenv("E2E_BULK_MIB"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 256 {
			t.Fatalf("E2E_BULK_MIB=%q: want a number of at least 256", v)
		}
		sizeMiB = n
	}
	sc := startSidecar(t, "--log-level", "info")
	const index = "e2e-large-bulk"
	status, _, body := do(t, "PUT", node.url()+"/"+index, strings.NewReader(
		`{"settings":{"number_of_replicas":0,"refresh_interval":"-1"},"mappings":{"dynamic":false,"properties":{"n":{"type":"integer"}}}}`),
		map[string]string{"Content-Type": "application/json"})
	if status != 200 {
		t.Fatalf("create index: %d %s", status, body)
	}
	t.Cleanup(func() { do(t, "DELETE", node.url()+"/"+index, nil, nil) })

	before := sc.peakRSS(t)
	stream := &bulkStream{index: index, remaining: sizeMiB << 20, pad: strings.Repeat("p", 64<<10)}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", sc.url+"/_bulk?filter_path=errors,items.*.error", stream)
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := rawClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	elapsed := time.Since(start)
	if resp.StatusCode != 200 || !bytes.Equal(answer, []byte(`{"errors":false}`)) {
		t.Fatalf("bulk: %d %.500s", resp.StatusCode, answer)
	}

	do(t, "POST", node.url()+"/"+index+"/_refresh", nil, nil)
	_, _, countBody := do(t, "GET", node.url()+"/"+index+"/_count", nil, nil)
	var count struct{ Count int }
	json.Unmarshal(countBody, &count)
	if count.Count != stream.docs {
		t.Errorf("indexed %d documents, sent %d", count.Count, stream.docs)
	}

	peak := sc.peakRSS(t)
	t.Logf("streamed %d MiB (%d docs) through mlsidecar in %s; sidecar peak RSS %.1f MiB (before the bulk %.1f MiB)",
		sizeMiB, stream.docs, elapsed.Round(time.Millisecond), float64(peak)/(1<<20), float64(before)/(1<<20))
	// A proxy that buffered the body would need at least its size.
	if limit := int64(64 << 20); peak > limit {
		t.Errorf("sidecar peak RSS %d MiB, want under %d MiB for a %d MiB body", peak>>20, limit>>20, sizeMiB)
	}
}

// Given a sidecar, when the node stops, then forwarded requests get a 502
// OpenSearch error that names no address and readiness goes false; when the
// node is back, readiness and forwarding recover.
func TestUpstreamStopsAndRecovers(t *testing.T) {
	sc := startSidecar(t)
	eventually(t, 10*time.Second, "ready", func() bool { return sc.readyStatus(t) == 200 })
	_, port, err := net.SplitHostPort(strings.TrimPrefix(node.url(), "http://"))
	if err != nil {
		t.Fatal(err)
	}

	if err := node.stop(); err != nil {
		t.Fatalf("stopping the node: %v", err)
	}
	restarted := false
	t.Cleanup(func() {
		if !restarted { // leave a node for the tests that follow
			p, _ := strconv.Atoi(port)
			node.start(p)
		}
	})

	status, header, body := do(t, "GET", sc.url+"/_cluster/health", nil, nil)
	if status != http.StatusBadGateway {
		t.Errorf("status = %d, want 502", status)
	}
	var e struct {
		Error struct {
			RootCause []struct{ Type, Reason string } `json:"root_cause"`
			Type      string
			Reason    string
		}
		Status int
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Status != 502 || e.Error.Type != "bad_gateway_exception" ||
		len(e.Error.RootCause) != 1 || header.Get("Content-Type") != "application/json; charset=UTF-8" {
		t.Errorf("502 body %s (%s), want an OpenSearch error envelope", body, header.Get("Content-Type"))
	}
	if strings.Contains(string(body), port) || strings.Contains(string(body), "127.0.0.1") {
		t.Errorf("502 body %s names the upstream", body)
	}
	eventually(t, 10*time.Second, "not ready", func() bool { return sc.readyStatus(t) == 503 })
	if got := sc.metric(t, "mlsidecar_upstream_errors_total", map[string]string{"reason": "refused"}); got < 1 {
		t.Errorf("upstream errors {reason=refused} = %v, want at least 1", got)
	}
	if got := sc.metric(t, "mlsidecar_upstream_up", nil); got != 0 {
		t.Errorf("mlsidecar_upstream_up = %v, want 0", got)
	}

	p, _ := strconv.Atoi(port)
	if err := node.start(p); err != nil {
		node.printLog()
		t.Fatalf("restarting the node on port %d: %v", p, err)
	}
	restarted = true
	eventually(t, 30*time.Second, "ready again", func() bool { return sc.readyStatus(t) == 200 })
	if status, _, body := do(t, "GET", sc.url+"/_cluster/health", nil, nil); status != 200 {
		t.Errorf("after recovery: %d %s", status, body)
	}
}

// Given a sidecar, when requests pass, then the request counters move by
// exactly what was sent, and no credential reaches the logs.
func TestMetricsAndLogs(t *testing.T) {
	sc := startSidecar(t)
	proxyLabels := map[string]string{"route_class": "proxy", "method": "GET", "code": "200"}
	mlLabels := map[string]string{"route_class": "ml", "method": "GET", "code": "400"}
	proxyBefore := sc.metric(t, "mlsidecar_http_requests_total", proxyLabels)
	mlBefore := sc.metric(t, "mlsidecar_http_requests_total", mlLabels)

	secret := map[string]string{"Authorization": "Basic dG9wc2VjcmV0Omh1bnRlcjI=", "Cookie": "security_authentication=c00kie"}
	for i := 0; i < 3; i++ {
		if status, _, b := do(t, "GET", sc.url+"/_search?size=0&q=qu3rys3cret", nil, secret); status != 200 {
			t.Fatalf("search: %d %s", status, b)
		}
	}
	for i := 0; i < 2; i++ {
		do(t, "GET", sc.url+"/_plugins/_ml/agents/x", nil, secret)
	}

	if got := sc.metric(t, "mlsidecar_http_requests_total", proxyLabels) - proxyBefore; got != 3 {
		t.Errorf("proxy GET 200 moved by %v, want 3", got)
	}
	if got := sc.metric(t, "mlsidecar_http_requests_total", mlLabels) - mlBefore; got != 2 {
		t.Errorf("ml GET 400 moved by %v, want 2", got)
	}
	if got := sc.metric(t, "mlsidecar_http_request_duration_seconds_count", map[string]string{"route_class": "proxy"}); got < 3 {
		t.Errorf("duration histogram count = %v, want at least 3", got)
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "mlsidecar_http_requests_in_flight"} {
		if !strings.Contains(fetchMetrics(t, sc), name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}

	logs := sc.logs.String()
	if !strings.Contains(logs, `"msg":"request"`) {
		t.Fatalf("no access log lines at debug level:\n%s", logs)
	}
	for _, s := range []string{"dG9wc2VjcmV0", "topsecret", "c00kie", "qu3rys3cret", "Authorization"} {
		if strings.Contains(logs, s) {
			t.Errorf("logs contain %q", s)
		}
	}
}

func fetchMetrics(t *testing.T, sc *sidecar) string {
	t.Helper()
	_, _, b := do(t, "GET", sc.internalURL+"/metrics", nil, nil)
	return string(b)
}

// Given a sidecar serving a slow request, when it gets SIGTERM, then it
// reports not ready, stops taking connections, lets the request finish with
// the node's answer and exits cleanly.
func TestGracefulShutdownDrains(t *testing.T) {
	sc := startSidecar(t, "--shutdown-timeout", "30s")
	eventually(t, 10*time.Second, "ready", func() bool { return sc.readyStatus(t) == 200 })

	// The node holds this request for 3 s, then answers 408.
	var status atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.Get(sc.url + "/_cluster/health?wait_for_nodes=9&timeout=3s")
		if err != nil {
			status.Store(-1)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		status.Store(int64(resp.StatusCode))
	}()
	eventually(t, 5*time.Second, "request in flight", func() bool {
		return sc.metric(t, "mlsidecar_http_requests_in_flight", map[string]string{"route_class": "proxy"}) == 1
	})

	if err := sc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "not ready while draining", func() bool { return sc.readyStatus(t) == 503 })
	eventually(t, 2*time.Second, "listener closed", func() bool {
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(sc.url, "http://"), time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("in-flight request never finished")
	}
	if got := status.Load(); got != http.StatusRequestTimeout {
		t.Errorf("in-flight request got %d, want the node's 408", got)
	}
	select {
	case err := <-sc.exited:
		sc.exited <- err
		if err != nil {
			t.Errorf("exit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sidecar did not exit after draining")
	}
}
