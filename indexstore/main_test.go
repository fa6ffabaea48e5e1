package indexstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The tests run against one real OpenSearch node per package run, started
// by e2e/opensearch/node.sh the first time a test needs it (so `go test
// -list` and `-run '^$'` start nothing) and stopped when the run ends. Every
// store gets its own index prefix, so tests are independent and may run in
// parallel.

var node = &testNode{}

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "indexstore-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	node.home = filepath.Join(tmp, "os-home")
	defer node.stop()
	return m.Run()
}

// testNode drives e2e/opensearch/node.sh for the package's node.
type testNode struct {
	home string

	once    sync.Once
	started bool     // node.sh start ran, so stop must run
	url     *url.URL // set once the node answers
	err     error    // why it does not
}

func (n *testNode) script(args ...string) ([]byte, error) {
	cmd := exec.Command("bash", append([]string{"../e2e/opensearch/node.sh"}, args...)...)
	cmd.Env = append(os.Environ(), "OS_HOME="+n.home, "OS_HTTP_PORT=0", "OS_FRESH=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("node.sh %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return out, nil
}

func (n *testNode) start() error {
	// fetch is idempotent and quick once the jars are in ~/.m2.
	if _, err := n.script("fetch"); err != nil {
		return err
	}
	n.started = true
	if _, err := n.script("start"); err != nil {
		return err
	}
	if _, err := n.script("wait"); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(n.home, "http.addr"))
	if err != nil {
		return err
	}
	n.url = &url.URL{Scheme: "http", Host: strings.TrimSpace(string(b))}
	return nil
}

func (n *testNode) stop() {
	if !n.started {
		return
	}
	if _, err := n.script("stop"); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}

// log is the tail of the node's own log.
func (n *testNode) log() string {
	b, _ := os.ReadFile(filepath.Join(n.home, "logs", "stdout.log"))
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

// nodeURL is the address of the running node; it starts the node on first
// use and fails the test, with the node's log, if it cannot.
func nodeURL(t *testing.T) *url.URL {
	t.Helper()
	node.once.Do(func() { node.err = node.start() })
	if node.err != nil {
		t.Fatalf("OpenSearch node did not start: %v\nnode log:\n%s", node.err, node.log())
	}
	return node.url
}

// newPrefix is an index prefix no other test uses; the prefix's indices are
// deleted when the test ends. It starts with a dot like the sidecar's own.
func newPrefix(t *testing.T) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	p := ".ixt-" + hex.EncodeToString(b[:]) + "-"
	t.Cleanup(func() {
		var names []string
		for _, c := range collections() {
			names = append(names, p+string(c))
		}
		path := "/" + strings.Join(names, ",") + "?ignore_unavailable=true&expand_wildcards=all"
		if status, body := nodeRequest(t, http.MethodDelete, path, nil); status != http.StatusOK {
			t.Errorf("deleting test indices: %d %s", status, body)
		}
	})
	return p
}

// newStoreAt is a Store talking to upstream under prefix, without indices.
func newStoreAt(t *testing.T, upstream *url.URL, prefix string) *Store {
	t.Helper()
	s, err := New(Options{Upstream: upstream, Prefix: prefix})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// newStore is a Store on the node with its own prefix and its indices made.
func newStore(t *testing.T) *Store {
	t.Helper()
	s := newStoreAt(t, nodeURL(t), newPrefix(t))
	if err := s.EnsureIndices(t.Context()); err != nil {
		t.Fatalf("EnsureIndices: %v", err)
	}
	return s
}

// nodeRequest sends a request straight to the node, past any Store, and
// returns the status and body of its answer. body, if not nil, is sent as
// JSON.
func nodeRequest(t *testing.T, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatalf("encoding %s %s: %v", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	// Not t.Context(): this also runs in cleanups, after it is cancelled.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, nodeURL(t).String()+path, rd)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading answer: %v", method, path, err)
	}
	return resp.StatusCode, b
}

// nodeJSON is nodeRequest for a 200 answer decoded into out.
func nodeJSON(t *testing.T, method, path string, body, out any) {
	t.Helper()
	status, b := nodeRequest(t, method, path, body)
	if status != http.StatusOK {
		t.Fatalf("%s %s: got status %d, want 200: %s", method, path, status, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("%s %s: decoding %s: %v", method, path, b, err)
	}
}

// searchIDs refreshes collection c and returns the ids of all its documents,
// as the node itself answers.
func searchIDs(t *testing.T, s *Store, c Collection) []string {
	t.Helper()
	idx := s.Index(c)
	nodeJSON(t, http.MethodPost, "/"+idx+"/_refresh", nil, &struct{}{})
	var res struct {
		Hits struct {
			Total struct {
				Value int `json:"value"`
			} `json:"total"`
			Hits []struct {
				ID string `json:"_id"`
			} `json:"hits"`
		} `json:"hits"`
	}
	nodeJSON(t, http.MethodPost, "/"+idx+"/_search", map[string]any{"size": 10000, "_source": false}, &res)
	ids := make([]string, 0, len(res.Hits.Hits))
	for _, h := range res.Hits.Hits {
		ids = append(ids, h.ID)
	}
	if len(ids) != res.Hits.Total.Value {
		t.Fatalf("search of %s: got %d hits of %d", idx, len(ids), res.Hits.Total.Value)
	}
	return ids
}

func ptr[T any](v T) *T { return &v }
