package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlsidecar/mlsidecar/e2e/providers/openai"
)

// clientsDir holds the client scripts, and the virtualenv and node_modules
// that e2e/testdata/clients/install.sh creates there.
const clientsDir = "testdata/clients"

const installHint = "run bash e2e/testdata/clients/install.sh (it creates e2e/testdata/clients/.venv and e2e/testdata/clients/node_modules)"

// Given a sidecar in front of the node and an OpenAI double, when
// opensearch-py 3.2 runs the remote-model lifecycle through the sidecar with
// http_compress=True, then every step passes and the bodies went gzipped
// both ways.
func TestClientsPython(t *testing.T) {
	python := clientTool(t, filepath.Join(clientsDir, ".venv", "bin", "python"))
	runClient(t, ".e2e-clients-py-", python, filepath.Join(clientsDir, "py_client.py"))
}

// The same with opensearch-py-ml 1.3's MLCommonClient on a compressing
// opensearch-py client.
func TestClientsPythonML(t *testing.T) {
	python := clientTool(t, filepath.Join(clientsDir, ".venv", "bin", "python"))
	runClient(t, ".e2e-clients-pyml-", python, filepath.Join(clientsDir, "py_ml_client.py"))
}

// The same with @opensearch-project/opensearch 3.9 on Node, compression
// 'gzip'.
func TestClientsJS(t *testing.T) {
	clientTool(t, filepath.Join(clientsDir, "node_modules", "@opensearch-project", "opensearch", "package.json"))
	nodeJS, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not on PATH (Node 20 is needed): %v; then %s", err, installHint)
	}
	runClient(t, ".e2e-clients-js-", nodeJS, filepath.Join(clientsDir, "js_client.mjs"))
}

// clientTool returns the absolute path of a file install.sh creates, and
// fails the test when it is missing: a missing install is a failure, not a
// reason to skip.
func clientTool(t *testing.T, path string) string {
	t.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(abs); err != nil {
		t.Fatalf("%s is missing: %s", abs, installHint)
	}
	return abs
}

// runClient starts a double and a sidecar, runs one client script through an
// encodingTap in front of the sidecar, fails with the script's output when it
// exits non-zero, and then checks what the tap saw.
func runClient(t *testing.T, prefix, interpreter, script string) {
	t.Helper()
	d := openai.New(openai.Options{APIKey: openAIKey, Dim: 8})
	d.Start()
	t.Cleanup(d.Close)
	input := uploadBatchInput(t, d, embeddingLine("doc-1", "hello"), embeddingLine("doc-2", "world"))
	sc := startSidecar(t, withArgs("--index-prefix", prefix, "--batch-poll-interval", "200ms")...)
	tap := newEncodingTap(t, sc.url)

	expected := map[string][]float32{"hello": openai.Embedding("hello", 8), "world": openai.Embedding("world", 8)}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, interpreter, filepath.Base(script))
	cmd.Dir = filepath.Dir(script)
	cmd.Env = append(os.Environ(),
		"MLSIDECAR_URL="+tap.url,
		"OPENAI_URL="+d.URL(),
		"OPENAI_KEY="+openAIKey,
		"BATCH_INPUT_FILE_ID="+input,
		"EXPECTED_EMBEDDINGS="+jsonString(expected),
		"PYTHONUNBUFFERED=1",
		"PYTHONDONTWRITEBYTECODE=1",
	)
	cmd.WaitDelay = 5 * time.Second // a killed script's pipes must not hold the test
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	steps, failed := clientSteps(stdout.String())
	t.Logf("%s: %d steps in %s", script, len(steps), time.Since(start).Round(time.Millisecond))
	if err != nil || len(failed) > 0 || len(steps) == 0 {
		t.Errorf("%s: %v; failed steps %v\nstdout:\n%s\nstderr:\n%s\nwire:\n%s", script, err, failed,
			stdout.String(), lastChars(stderr.String(), 6000), tap)
	}
	// Whatever the steps said, the encodings on the wire are checked too.
	tap.check(t)
	if strings.Contains(sc.logs.String(), openAIKey) {
		t.Error("the sidecar's logs contain the provider key")
	}
}

// clientSteps parses the scripts' step lines; other lines are ignored.
func clientSteps(out string) (steps []string, failed []string) {
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var s struct {
			Step string `json:"step"`
			OK   bool   `json:"ok"`
		}
		if json.Unmarshal(sc.Bytes(), &s) != nil || s.Step == "" {
			continue
		}
		steps = append(steps, s.Step)
		if !s.OK {
			failed = append(failed, s.Step)
		}
	}
	return steps, failed
}

func lastChars(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// encodingTap is a reverse proxy between a client and the sidecar that records
// the encodings on the wire, so the test knows that compression was on
// rather than assuming it: it neither decompresses nor asks for encodings.
type encodingTap struct {
	url string
	mu  sync.Mutex
	log []tappedExchange
}

type tappedExchange struct {
	method, path     string
	reqBody          bool   // the request had a body
	reqEncoding      string // its Content-Encoding
	acceptEncoding   string
	status           int
	respEncoding     string
	respBytes        int64 // bytes of the answer as sent
	respDecompressed bool  // a gzip answer that decompressed as gzip
}

func newEncodingTap(t *testing.T, target string) *encodingTap {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableCompression = true
	w := &encodingTap{}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.URL.RawQuery = pr.In.URL.RawQuery
		},
		Transport: tr,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		e := tappedExchange{
			method: r.Method, path: r.URL.Path,
			reqBody:        r.ContentLength != 0,
			reqEncoding:    r.Header.Get("Content-Encoding"),
			acceptEncoding: r.Header.Get("Accept-Encoding"),
		}
		rec := &tapWriter{ResponseWriter: rw}
		proxy.ServeHTTP(rec, r)
		e.status, e.respEncoding, e.respBytes = rec.status, rec.Header().Get("Content-Encoding"), int64(rec.body.Len())
		if e.respEncoding == "gzip" {
			e.respDecompressed = isGzip(rec.body.Bytes())
		}
		w.mu.Lock()
		w.log = append(w.log, e)
		w.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	w.url = srv.URL
	return w
}

// check insists that every body went gzipped: each request with a body
// carried Content-Encoding gzip, each request asked for gzip, and each
// answer with a body came back as valid gzip.
func (w *encodingTap) check(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	var ml, gzReq, gzResp int
	for _, e := range w.log {
		if strings.HasPrefix(e.path, "/_plugins/_ml") {
			ml++
		}
		if e.reqBody {
			if e.reqEncoding != "gzip" {
				t.Errorf("%s %s: request body with Content-Encoding %q, want gzip", e.method, e.path, e.reqEncoding)
			} else {
				gzReq++
			}
		}
		if !strings.Contains(e.acceptEncoding, "gzip") {
			t.Errorf("%s %s: Accept-Encoding %q does not ask for gzip", e.method, e.path, e.acceptEncoding)
		}
		if e.respBytes > 0 && e.method != http.MethodHead {
			if e.respEncoding != "gzip" || !e.respDecompressed {
				t.Errorf("%s %s: answer of %d bytes with Content-Encoding %q, want valid gzip", e.method, e.path, e.respBytes, e.respEncoding)
				continue
			}
			gzResp++
		}
	}
	if ml == 0 || gzReq == 0 || gzResp == 0 {
		t.Errorf("the wire saw %d ML requests, %d gzipped request bodies, %d gzipped answers; want some of each", ml, gzReq, gzResp)
	}
	t.Logf("wire: %d requests (%d to the ML API), %d gzipped request bodies, %d gzipped answers", len(w.log), ml, gzReq, gzResp)
}

func (w *encodingTap) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	for _, e := range w.log {
		fmt.Fprintf(&b, "%s %s body=%t enc=%q accept=%q -> %d enc=%q bytes=%d\n",
			e.method, e.path, e.reqBody, e.reqEncoding, e.acceptEncoding, e.status, e.respEncoding, e.respBytes)
	}
	return b.String()
}

// tapWriter keeps a copy of the answer as written to the client.
type tapWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (r *tapWriter) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *tapWriter) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	r.body.Write(p)
	return r.ResponseWriter.Write(p)
}

func (r *tapWriter) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func isGzip(b []byte) bool {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return false
	}
	_, err = io.Copy(io.Discard, zr)
	return err == nil
}
