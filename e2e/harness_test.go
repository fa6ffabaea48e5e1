package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The node and binary are shared by every test in the package: starting
// OpenSearch takes seconds, starting mlsidecar milliseconds.
var (
	sidecarBinary string
	node          *openSearchNode
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "mlsidecar-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)

	sidecarBinary = os.Getenv("MLSIDECAR_BIN")
	if sidecarBinary == "" {
		sidecarBinary = filepath.Join(tmp, "mlsidecar")
		build := exec.Command("go", "build", "-o", sidecarBinary, "../cmd/mlsidecar")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building mlsidecar:", err)
			return 1
		}
	}

	node = &openSearchNode{home: filepath.Join(tmp, "os-home")}
	if err := node.fetch(); err != nil {
		fmt.Fprintln(os.Stderr, "fetching OpenSearch:", err)
		return 1
	}
	// The large streamed _bulk needs more than the default 100mb request size.
	if err := os.MkdirAll(filepath.Join(node.home, "config"), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := os.WriteFile(filepath.Join(node.home, "config", "opensearch.yml"),
		[]byte("http.max_content_length: 600mb\nindexing_pressure.memory.limit: 80%\n"), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := node.start(0); err != nil {
		fmt.Fprintln(os.Stderr, "starting OpenSearch:", err)
		node.printLog()
		return 1
	}
	defer node.stop()
	return m.Run()
}

// openSearchNode drives e2e/opensearch/node.sh for one node home.
type openSearchNode struct {
	home string
	env  []string // extra environment of node.sh, e.g. WITH_SECURITY=1
	addr string   // host:port once started
	mu   sync.Mutex
}

func (n *openSearchNode) script(args ...string) *exec.Cmd {
	cmd := exec.Command("bash", append([]string{"opensearch/node.sh"}, args...)...)
	cmd.Env = append(append(os.Environ(), "OS_HOME="+n.home, "OS_HEAP=1g"), n.env...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd
}

func (n *openSearchNode) fetch() error { return n.script("fetch").Run() }

// start starts the node on port (0: a free port) and waits until it answers.
func (n *openSearchNode) start(port int) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	start := n.script("start")
	start.Env = append(start.Env, "OS_HTTP_PORT="+strconv.Itoa(port))
	if err := start.Run(); err != nil {
		return err
	}
	if err := n.script("wait").Run(); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(n.home, "http.addr"))
	if err != nil {
		return err
	}
	n.addr = strings.TrimSpace(string(b))
	return nil
}

func (n *openSearchNode) stop() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.script("stop").Run()
}

func (n *openSearchNode) url() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return "http://" + n.addr
}

func (n *openSearchNode) printLog() {
	b, _ := os.ReadFile(filepath.Join(n.home, "logs", "stdout.log"))
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	os.Stderr.Write(b)
}

// sidecar is one running mlsidecar process.
type sidecar struct {
	cmd         *exec.Cmd
	url         string // the proxy and ML API
	internalURL string // metrics, health, readiness
	logs        *lockedBuffer
	exited      chan error
}

// startSidecar runs the mlsidecar binary in front of the shared node and
// waits until it is ready.
func startSidecar(t *testing.T, extraArgs ...string) *sidecar {
	t.Helper()
	s := startSidecarUnready(t, extraArgs...)
	// Ready means the upstream answers and the ML indices and keys exist.
	deadline := time.Now().Add(60 * time.Second)
	for s.readyStatus(t) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatalf("mlsidecar never became ready:\n%s", s.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s
}

// startSidecarUnready runs the binary and waits only until it has bound its
// listeners.
func startSidecarUnready(t *testing.T, extraArgs ...string) *sidecar {
	t.Helper()
	args := append([]string{
		"--listen-address", "127.0.0.1:0",
		"--internal-listen-address", "127.0.0.1:0",
		"--upstream", node.url(),
		// The shared node has no security plugin; tests of a secured
		// cluster pass --authentication cluster.
		"--authentication", "none",
		"--upstream-check-interval", "200ms",
		"--log-level", "debug",
	}, extraArgs...)
	cmd := exec.Command(sidecarBinary, args...)
	cmd.Env = []string{} // nothing from the test's environment leaks in
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &sidecar{cmd: cmd, logs: &lockedBuffer{}, exited: make(chan error, 1)}
	started := make(chan map[string]any, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			s.logs.Write(append(line, '\n'))
			var rec map[string]any
			if json.Unmarshal(line, &rec) == nil && rec["msg"] == "mlsidecar started" {
				started <- rec
			}
		}
		s.exited <- cmd.Wait()
	}()
	t.Cleanup(func() { s.stop(t) })

	select {
	case rec := <-started:
		s.url = "http://" + rec["listen_address"].(string)
		s.internalURL = "http://" + rec["internal_listen_address"].(string)
	case err := <-s.exited:
		s.exited <- err
		t.Fatalf("mlsidecar exited before starting: %v\n%s", err, s.logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("mlsidecar did not start:\n%s", s.logs)
	}
	return s
}

// stop sends SIGTERM and waits for a clean exit.
func (s *sidecar) stop(t *testing.T) {
	t.Helper()
	select {
	case err := <-s.exited: // already gone
		s.exited <- err
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.exited:
		s.exited <- err
		if err != nil {
			t.Errorf("mlsidecar exited with %v\n%s", err, s.logs)
		}
	case <-time.After(40 * time.Second):
		_ = s.cmd.Process.Kill()
		t.Errorf("mlsidecar did not stop after SIGTERM\n%s", s.logs)
	}
}

// peakRSS is the process's peak resident set size (VmHWM) in bytes.
func (s *sidecar) peakRSS(t *testing.T) int64 {
	t.Helper()
	return procStatusBytes(t, s.cmd.Process.Pid, "VmHWM:")
}

func procStatusBytes(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field) {
			f := strings.Fields(line)
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// metric returns the sum of a counter or gauge's series whose labels include
// all of labels, as the sidecar's /metrics shows it.
func (s *sidecar) metric(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	resp, err := http.Get(s.internalURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		match := true
		for k, v := range labels {
			if !strings.Contains(line, fmt.Sprintf("%s=%q", k, v)) {
				match = false
			}
		}
		if !match {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

// ready reports the sidecar's /-/ready status code.
func (s *sidecar) readyStatus(t *testing.T) int {
	t.Helper()
	resp, err := http.Get(s.internalURL + "/-/ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// do sends one request with a fresh connection-pooled client and returns the
// status, headers and body.
func do(t *testing.T, method, url string, body io.Reader, header map[string]string) (int, http.Header, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := rawClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// rawClient neither adds Accept-Encoding nor decompresses, so tests see the
// bytes on the wire.
var rawClient = &http.Client{Transport: &http.Transport{DisableCompression: true}}

// basicAuthHeader is the Authorization header value of HTTP basic auth.
func basicAuthHeader(user, pass string) (string, error) {
	r, err := http.NewRequest("GET", "http://x", nil)
	if err != nil {
		return "", err
	}
	r.SetBasicAuth(user, pass)
	return r.Header.Get("Authorization"), nil
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }
