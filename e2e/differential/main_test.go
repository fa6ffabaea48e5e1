package differential

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mlsidecar/mlsidecar/e2e/providers/openai"
)

// setup is what TestMain starts once for every test of the package.
type setup struct {
	genuine, sidecar target
	double           *openai.Server
	trusted          string // the regex both trust the double with
}

var env setup

// target is one implementation of the ML Commons API under test.
type target struct {
	name   string // "genuine" or "mlsidecar"
	url    string // where ML API requests go
	node   string // the OpenSearch node holding its state, for raw reads
	nodeID string // the name ML Commons answers give the node
}

const sidecarNode = "sidecar-0"

const openAIKey = "sk-diff-double-key-7"

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	fail := func(what string, err error) int {
		fmt.Fprintf(os.Stderr, "differential: %s: %v\n", what, err)
		return 1
	}
	tmp, err := os.MkdirTemp("", "mlsidecar-differential-")
	if err != nil {
		return fail("temp dir", err)
	}
	if os.Getenv("DIFFERENTIAL_KEEP") == "" {
		defer os.RemoveAll(tmp)
	} else {
		fmt.Fprintf(os.Stderr, "differential: keeping %s\n", tmp)
	}

	bin := os.Getenv("MLSIDECAR_BIN")
	if bin == "" {
		bin = filepath.Join(tmp, "mlsidecar")
		build := exec.Command("go", "build", "-o", bin, "../../cmd/mlsidecar")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fail("building mlsidecar", err)
		}
	}

	// The double answers both implementations. Its batches stay validating
	// (and cancelling) for the whole run: genuine ML Commons never refreshes
	// them, mlsidecar does, and both then show the same job.
	env.double = openai.New(openai.Options{APIKey: openAIKey, Dim: 8, ValidatingFor: 24 * time.Hour, CancellingFor: 24 * time.Hour})
	env.double.Start()
	defer env.double.Close()

	genuine := &node{home: filepath.Join(tmp, "genuine"), env: []string{"WITH_ML=1"}}
	plain := &node{home: filepath.Join(tmp, "plain")}
	started := time.Now()
	if err := startNodes(genuine, plain); err != nil {
		genuine.printLog()
		plain.printLog()
		return fail("starting OpenSearch", err)
	}
	defer genuine.stop()
	defer plain.stop()
	fmt.Fprintf(os.Stderr, "differential: both nodes ready after %s\n", time.Since(started).Round(time.Second))

	trusted := "^" + regexp.QuoteMeta(env.double.URL()) + "/.*$"
	env.trusted = trusted
	if err := configureGenuine(genuine.url(), trusted); err != nil {
		return fail("configuring ML Commons", err)
	}
	if err := warmUp(genuine.url(), env.double.URL()); err != nil {
		return fail("warming up ML Commons", err)
	}
	genuineNode, err := nodeID(genuine.url())
	if err != nil {
		return fail("reading the genuine node's id", err)
	}
	sc, err := startSidecar(bin, plain.url(),
		"--trusted-endpoint-regex", trusted, "--allow-private-endpoints", "--node-id", sidecarNode)
	if err != nil {
		return fail("starting mlsidecar", err)
	}
	defer sc.stop()

	env.genuine = target{name: "genuine", url: genuine.url(), node: genuine.url(), nodeID: genuineNode}
	env.sidecar = target{name: "mlsidecar", url: sc.url, node: plain.url(), nodeID: sidecarNode}
	return m.Run()
}

// configureGenuine makes ML Commons trust the double, as a user of a
// cluster does, through the cluster settings.
func configureGenuine(url, trusted string) error {
	body, _ := json.Marshal(map[string]any{"persistent": map[string]any{
		"plugins.ml_commons.trusted_connector_endpoints_regex": []string{trusted},
		"plugins.ml_commons.connector.private_ip_enabled":      true,
		"plugins.ml_commons.only_run_on_ml_node":               false,
		"plugins.ml_commons.native_memory_threshold":           100,
		"plugins.ml_commons.jvm_heap_memory_threshold":         100,
	}})
	status, b, err := send(context.Background(), "PUT", url+"/_cluster/settings", string(body), nil)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("PUT /_cluster/settings: %d %s", status, b)
	}
	return nil
}

// nodeID is the id OpenSearch gave the genuine node.
func nodeID(url string) (string, error) {
	status, b, err := send(context.Background(), "GET", url+"/_nodes/_local/none", "", nil)
	if err != nil {
		return "", err
	}
	var nodes struct {
		Nodes map[string]any `json:"nodes"`
	}
	if err := json.Unmarshal(b, &nodes); err != nil || status != http.StatusOK || len(nodes.Nodes) != 1 {
		return "", fmt.Errorf("GET /_nodes/_local: %d %s", status, b)
	}
	for id := range nodes.Nodes {
		return id, nil
	}
	return "", nil
}

// warmUp creates and deletes a connector on genuine ML Commons. Its first
// connector makes the master key, and on a busy machine that first request
// can answer 500 "Fetching master key timed out." before the key exists.
func warmUp(url, double string) error {
	c := `{"name":"warm-up","version":"1","protocol":"http","parameters":{},"credential":{"k":"v"},
	  "actions":[{"action_type":"predict","method":"POST","url":"` + double + `/v1/embeddings"}]}`
	var last string
	err := poll(context.Background(), 3*time.Minute, func(ctx context.Context) bool {
		status, b, err := send(ctx, "POST", url+"/_plugins/_ml/connectors/_create", c, nil)
		last = fmt.Sprint(status, " ", string(b), err)
		if err != nil || status != http.StatusOK {
			return false
		}
		var created struct {
			ConnectorID string `json:"connector_id"`
		}
		_ = json.Unmarshal(b, &created)
		status, b, err = send(ctx, "DELETE", url+"/_plugins/_ml/connectors/"+created.ConnectorID, "", nil)
		last = fmt.Sprint(status, " ", string(b), err)
		return err == nil && status == http.StatusOK
	})
	if err != nil {
		return fmt.Errorf("%w: last answer %s", err, last)
	}
	return nil
}

// node drives e2e/opensearch/node.sh for one node home.
type node struct {
	home string
	env  []string // e.g. WITH_ML=1
	addr string
}

func (n *node) script(args ...string) *exec.Cmd {
	cmd := exec.Command("bash", append([]string{"../opensearch/node.sh"}, args...)...)
	cmd.Env = append(append(os.Environ(), "OS_HOME="+n.home, "OS_HTTP_PORT=0"), n.env...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd
}

// startNodes fetches in turn (both share the launcher build) and starts
// and waits for the nodes at once.
func startNodes(nodes ...*node) error {
	for _, n := range nodes {
		if err := n.script("fetch").Run(); err != nil {
			return fmt.Errorf("fetch %s: %w", n.home, err)
		}
	}
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() { errs[i] = n.start() })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (n *node) start() error {
	if err := n.script("start").Run(); err != nil {
		return fmt.Errorf("start %s: %w", n.home, err)
	}
	if err := n.script("wait").Run(); err != nil {
		return fmt.Errorf("wait %s: %w", n.home, err)
	}
	b, err := os.ReadFile(filepath.Join(n.home, "http.addr"))
	n.addr = strings.TrimSpace(string(b))
	return err
}

func (n *node) stop() { _ = n.script("stop").Run() }

func (n *node) url() string { return "http://" + n.addr }

func (n *node) printLog() {
	b, _ := os.ReadFile(filepath.Join(n.home, "logs", "stdout.log"))
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	os.Stderr.Write(b)
}

// sidecar is the running mlsidecar binary.
type sidecar struct {
	cmd    *exec.Cmd
	url    string
	exited chan error
	logs   *bytes.Buffer // written only by the reader goroutine until exited
}

func startSidecar(bin, upstream string, extra ...string) (*sidecar, error) {
	args := append([]string{
		"--listen-address", "127.0.0.1:0",
		"--internal-listen-address", "127.0.0.1:0",
		"--upstream", upstream,
		"--authentication", "none", // the plain node has no security plugin
		"--upstream-check-interval", "200ms",
	}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &sidecar{cmd: cmd, exited: make(chan error, 1), logs: &bytes.Buffer{}}
	started := make(chan map[string]any, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			if s.logs.Len() < 1<<20 {
				s.logs.Write(append(line, '\n'))
			}
			var rec map[string]any
			if json.Unmarshal(line, &rec) == nil && rec["msg"] == "mlsidecar started" {
				started <- rec
			}
		}
		s.exited <- cmd.Wait()
	}()
	var internal string
	select {
	case rec := <-started:
		s.url = "http://" + rec["listen_address"].(string)
		internal = "http://" + rec["internal_listen_address"].(string)
	case err := <-s.exited:
		return nil, fmt.Errorf("exited before starting: %v\n%s", err, s.logs)
	case <-time.After(30 * time.Second):
		s.stop()
		return nil, errors.New("did not start within 30s")
	}
	err = poll(context.Background(), time.Minute, func(ctx context.Context) bool {
		status, _, err := send(ctx, "GET", internal+"/-/ready", "", nil)
		return err == nil && status == http.StatusOK
	})
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("never ready: %w", err)
	}
	return s, nil
}

func (s *sidecar) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(40 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// client neither adds Accept-Encoding nor decompresses.
var client = &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: time.Minute}

// send sends one request; a non-empty body is sent as JSON.
func send(ctx context.Context, method, url, body string, header map[string]string) (int, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// poll calls cond every 100ms until it holds or timeout passes.
func poll(ctx context.Context, timeout time.Duration, cond func(context.Context) bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for !cond(ctx) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("not within %s", timeout)
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}
