//go:build bench

package ingest

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

// The repository's root, from this package's directory (go test runs there).
const repoRoot = "../../.."

// openSearchNode is one node started with e2e/opensearch/node.sh in a home
// of its own, empty at start.
type openSearchNode struct {
	home string
	addr string
}

func (n *openSearchNode) script(args ...string) *exec.Cmd {
	heap := os.Getenv("OS_HEAP")
	if heap == "" {
		heap = "1g"
	}
	cmd := exec.Command("bash", append([]string{filepath.Join(repoRoot, "e2e", "opensearch", "node.sh")}, args...)...)
	cmd.Env = append(os.Environ(), "OS_HOME="+n.home, "OS_HEAP="+heap, "OS_HTTP_PORT=0", "OS_FRESH=1")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd
}

// startNode fetches (a no-op when built), starts and waits for a node, and
// stops it when the test ends.
func startNode(t *testing.T, home string) *openSearchNode {
	t.Helper()
	n := &openSearchNode{home: home}
	for _, step := range []string{"fetch", "start"} {
		if err := n.script(step).Run(); err != nil {
			t.Fatalf("node.sh %s: %v", step, err)
		}
	}
	t.Cleanup(func() {
		if err := n.script("stop").Run(); err != nil {
			t.Errorf("node.sh stop: %v", err)
		}
	})
	if err := n.script("wait").Run(); err != nil {
		t.Fatalf("node.sh wait: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(home, "http.addr"))
	if err != nil {
		t.Fatal(err)
	}
	n.addr = strings.TrimSpace(string(b))
	return n
}

func (n *openSearchNode) url() string { return "http://" + n.addr }

// sidecarBinary is a copy of $MLSIDECAR_BIN in dir, so a rebuild during a
// long run cannot mix two binaries in one result, or mlsidecar built from
// this checkout into dir.
func sidecarBinary(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "mlsidecar")
	if src := os.Getenv("MLSIDECAR_BIN"); src != "" {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin, b, 0o755); err != nil {
			t.Fatal(err)
		}
		return bin
	}
	build := exec.Command("go", "build", "-o", bin, "./cmd/mlsidecar")
	build.Dir = repoRoot
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("building mlsidecar: %v", err)
	}
	return bin
}

// sidecar is one running mlsidecar process.
type sidecar struct {
	name        string
	cmd         *exec.Cmd
	url         string
	internalURL string
	logs        *lockedBuffer
	exited      chan error // receives cmd.Wait's answer once, put back by whoever takes it
}

// startSidecar runs bin with args after the harness's own and waits until
// /-/ready answers 200. The process is stopped (SIGTERM) when the test ends.
func startSidecar(t *testing.T, bin, name string, args ...string) *sidecar {
	t.Helper()
	cmd := exec.Command(bin, append([]string{
		"--listen-address", "127.0.0.1:0",
		"--internal-listen-address", "127.0.0.1:0",
		"--upstream-check-interval", "200ms",
		"--node-id", name,
		// Info, not warn: the "mlsidecar started" record names the listeners.
		"--log-level", "info",
	}, args...)...)
	cmd.Env = []string{} // nothing from the bench's environment leaks in
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &sidecar{name: name, cmd: cmd, logs: &lockedBuffer{}, exited: make(chan error, 1)}
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
		t.Fatalf("mlsidecar %s exited before starting: %v\n%s", name, err, s.logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("mlsidecar %s did not start:\n%s", name, s.logs)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(s.internalURL + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("mlsidecar %s never became ready:\n%s", name, s.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *sidecar) pid() int { return s.cmd.Process.Pid }

// alive reports whether the process has not exited.
func (s *sidecar) alive() bool {
	select {
	case err := <-s.exited:
		s.exited <- err
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (s *sidecar) kill(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("killing %s: %v", s.name, err)
	}
	select {
	case err := <-s.exited:
		s.exited <- err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s still runs 10s after SIGKILL", s.name)
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (s *sidecar) stop(t *testing.T) {
	t.Helper()
	if !s.alive() {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.exited:
		s.exited <- err
		if err != nil {
			t.Errorf("mlsidecar %s exited with %v", s.name, err)
		}
	case <-time.After(40 * time.Second):
		_ = s.cmd.Process.Kill()
		t.Errorf("mlsidecar %s did not stop after SIGTERM", s.name)
	}
}

// logSummary is how many warnings and errors the sidecar logged, by
// message: a fast run that failed quietly is not a result.
func (s *sidecar) logSummary() []string {
	counts := map[string]int{}
	for _, line := range strings.Split(s.logs.String(), "\n") {
		var rec struct{ Level, Msg, Err, Error string }
		if json.Unmarshal([]byte(line), &rec) != nil || (rec.Level != "WARN" && rec.Level != "ERROR") {
			continue
		}
		counts[strings.TrimSpace(rec.Level+" "+rec.Msg+": "+rec.Err+rec.Error)]++
	}
	var out []string
	for msg, n := range counts {
		out = append(out, fmt.Sprintf("%d× %s", n, msg))
	}
	return out
}

// procStatusBytes is a /proc/<pid>/status field given in kB (VmHWM, VmRSS).
func procStatusBytes(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field) {
			f := strings.Fields(line)
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return 0, err
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// cpuTicks is the user plus system CPU time of a process in clock ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; the fields after it do not.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parsing /proc/%d/stat: %q", pid, b)
	}
	return utime + stime, nil
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

// httpClient is the bench's own client: no compression, so answers are the
// bytes on the wire.
var httpClient = &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 8}}

// call sends one JSON request and returns the status and body; a transport
// error fails the test.
func call(t *testing.T, method, url, body string) (int, []byte) {
	t.Helper()
	status, b, err := tryCall(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return status, b
}

func tryCall(method, url, body string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return 0, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}
