//go:build bench

package ingest

import (
	"bufio"
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/opensearch-project/opensearch-go/v4"
	"github.com/opensearch-project/opensearch-go/v4/opensearchapi"
	"github.com/opensearch-project/opensearch-go/v4/opensearchutil"

	"github.com/mlsidecar/mlsidecar/e2e/s3server"
)

const (
	fileID    = "file-benchingest0000000000"
	openAIKey = "sk-bench-ingest"
	bucket    = "bench-ingest"
	objectKey = "batch/embeddings_output.jsonl"
	// indexMapping is the one mapping of every run's fresh index, the
	// ceiling's and mlsidecar's: the plain node has no k-NN plugin, so the
	// vector is a float array.
	indexMapping = `{"settings":{"number_of_shards":1,"number_of_replicas":0},` +
		`"mappings":{"properties":{"embedding":{"type":"float"}}}}`
	// mlsidecar's defaults, which the ceiling's BulkIndexer copies.
	bulkWorkers    = 2
	bulkFlushBytes = 5 << 20
	bulkFlushEvery = time.Second
	warmupLines    = 20000
)

// fieldMap is the _batch_ingestion field_map of every mlsidecar run; the
// ceiling maps each line the same way by hand.
var fieldMap = map[string]string{"_id": "$.custom_id", "embedding": "$.response.body.data[0].embedding"}

// TestBenchIngest measures batch ingestion of BENCH_INGEST_LINES (default
// 1,000,000) output lines of a 384-dimension embedding job into a fresh
// index: mlsidecar's _batch_ingestion from an OpenAI file, from S3, and
// with the replica doing the work SIGKILLed halfway, each next to the
// ceiling, opensearch-go's BulkIndexer writing the same documents straight
// to the node with mlsidecar's worker count and flush size, run first and
// again last (the node drifts; ratios are to the mean). It prints docs/s,
// ratios to the ceiling and mlsidecar's peak RSS and never asserts them; it
// fails only when the index does not end with one document per line.
//
// Everything shares this machine's CPUs: compare the ratios, not the
// absolute numbers.
//
// Environment: BENCH_INGEST_LINES (default 1000000), MLSIDECAR_BIN (default:
// built from this checkout), OS_HEAP (the node's heap, default 1g),
// BENCH_INGEST_KEEP_LOGS=1 (print every sidecar's log at the end),
// BENCH_INGEST_CPUPROFILE (a file name: the sidecar's CPU profile of the
// openAI and s3 runs is written to <name>.openAI and <name>.s3) and
// BENCH_INGEST_CPUPROFILE_SECONDS (default 30).
func TestBenchIngest(t *testing.T) {
	lines := envInt(t, "BENCH_INGEST_LINES", 1_000_000)
	tmp := t.TempDir()
	bin := sidecarBinary(t, tmp)
	node := startNode(t, filepath.Join(tmp, "os-home"))
	ctx := context.Background()

	// Given the job's output file on disk, served as an OpenAI file and
	// stored in a real S3 server.
	began := time.Now()
	path, size := writeJobOutput(t, tmp, lines)
	generated := time.Since(began)
	t.Logf("wrote %d lines, %.1f MiB, in %.1fs", lines, float64(size)/(1<<20), generated.Seconds())
	files := newFileServer(t, path, fileID, openAIKey)
	s3srv := s3server.StartForTest(t)
	began = time.Now()
	if err := uploadS3(ctx, s3srv.Client(), path, bucket, objectKey); err != nil {
		t.Fatalf("uploading to S3: %v", err)
	}
	uploaded := time.Since(began)
	t.Logf("uploaded s3://%s/%s in %.1fs", bucket, objectKey, uploaded.Seconds())

	sidecarArgs := []string{
		"--upstream", node.url(),
		"--master-key-file", writeMasterKey(t, tmp),
		"--authentication", "none", // the node has no security plugin
		"--index-prefix", ".bench-ingest-",
		"--trusted-endpoint-regex", `^http://127\.0\.0\.1:[0-9]+/.*$`,
		"--allow-private-endpoints",
		"--openai-files-url", files.URL(),
		"--s3-endpoint", s3srv.Endpoint(),
		"--batch-lease-ttl", "5s",
		"--batch-poll-interval", "1s",
	}
	openAISource := ingestRequest{
		IndexName:  "", // set per run
		FieldMap:   fieldMap,
		Credential: map[string]string{"openAI_key": openAIKey},
		DataSource: dataSource{Type: "openAI", Source: []string{fileID}},
	}
	creds := s3srv.Credentials()
	s3Source := ingestRequest{
		FieldMap:   fieldMap,
		Credential: map[string]string{"access_key": creds.AccessKeyID, "secret_key": creds.SecretAccessKey, "region": s3srv.Region()},
		DataSource: dataSource{Type: "s3", Source: []string{"s3://" + bucket + "/" + objectKey}},
	}
	deadline := 10*time.Minute + time.Duration(lines)*3*time.Millisecond

	// The node's JIT warms up on a scratch index first, so the first
	// measured run is not the only one paying for it.
	warm := runCeiling(t, node, path, "bench-ingest-warmup", min(lines, warmupLines), true)
	t.Logf("warm-up: %d documents straight to the node in %.1fs", warm.docs, warm.wall.Seconds())

	// When the same lines are written by the BulkIndexer, by mlsidecar from
	// each source, and by two replicas of which one is killed halfway.
	var runs []result
	logRun := func(r result) {
		runs = append(runs, r)
		t.Logf("%s: %d documents in %.1fs, %.0f docs/s", r.name, r.docs, r.wall.Seconds(), r.rate())
	}
	ceilingFirst := runCeiling(t, node, path, "bench-ingest-ceiling", lines, true)
	ceilingFirst.name += " (first)"
	logRun(ceilingFirst)
	indexCeiling := runCeiling(t, node, path, "bench-ingest-ceiling-index", lines, false)
	logRun(indexCeiling)
	var sidecars []*sidecar
	for _, r := range []struct {
		name string
		req  ingestRequest
	}{{"openai", openAISource}, {"s3", s3Source}} {
		sc := startSidecar(t, bin, "bench-ingest-"+r.name, sidecarArgs...)
		sidecars = append(sidecars, sc)
		req := r.req
		req.IndexName = "bench-ingest-" + r.name
		res := runSidecar(t, node, sc, req, lines, deadline)
		sc.stop(t)
		logRun(res)
	}
	a := startSidecar(t, bin, "bench-ingest-kill-a", sidecarArgs...)
	b := startSidecar(t, bin, "bench-ingest-kill-b", sidecarArgs...)
	sidecars = append(sidecars, a, b)
	req := openAISource
	req.IndexName = "bench-ingest-kill"
	killed := runKilled(t, node, a, b, req, lines, deadline)
	logRun(killed.result)
	// The node's speed drifts over a long run (JIT, page cache, merges): the
	// ceiling runs again last, and the ratios are to the mean of both.
	ceilingLast := runCeiling(t, node, path, "bench-ingest-ceiling", lines, true)
	ceilingLast.name += " (last)"
	logRun(ceilingLast)
	ceiling := (ceilingFirst.rate() + ceilingLast.rate()) / 2

	// The summary.
	var out bytes.Buffer
	fmt.Fprintf(&out, "\nbench-ingest: lines=%d dims=%d file=%.1f MiB (generated in %.1fs; S3 upload %.1fs) bulk workers=%d flush=%d MiB\n",
		lines, dims, float64(size)/(1<<20), generated.Seconds(), uploaded.Seconds(), bulkWorkers, bulkFlushBytes>>20)
	fmt.Fprintf(&out, "goal: mlsidecar docs/s >= 0.90 x the ceiling (update+upsert, the bulk action ML Commons' field_map with _id makes), peak RSS < 150 MiB\n")
	fmt.Fprintf(&out, "ceiling = mean of the first and last update+upsert runs: %.0f docs/s (first %.0f, last %.0f)\n\n", ceiling, ceilingFirst.rate(), ceilingLast.rate())
	tw := tabwriter.NewWriter(&out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "run\tdocs in index\twall s\tdocs/s\tratio to ceiling\tratio to index ceiling\twriter CPU s\tpeak RSS MiB\tstate\ttotal/indexed/failed\t")
	for _, r := range runs {
		rss, state, counts := "-", "-", "-"
		if r.rss > 0 {
			rss = fmt.Sprintf("%.1f", float64(r.rss)/(1<<20))
		}
		if r.task != nil {
			state = r.task.State
			counts = fmt.Sprintf("%d/%d/%d", r.task.IngestCounts.Total, r.task.IngestCounts.Indexed, r.task.IngestCounts.Failed)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.0f\t%.3f\t%.3f\t%.1f\t%s\t%s\t%s\t\n", r.name, r.docs, r.wall.Seconds(), r.rate(),
			r.rate()/ceiling, r.rate()/indexCeiling.rate(), r.cpu, rss, state, counts)
	}
	tw.Flush()
	if killed.victim == "" {
		fmt.Fprintf(&out, "\nkill run: the task ended before half its lines were seen; nothing killed (too few lines)\n")
	} else {
		fmt.Fprintf(&out, "\nkill run: killed %s (%s) at %.1fs, task at %s; resumed by %s %.1fs after the kill; peak RSS killed %.1f MiB, survivor %.1f MiB\n",
			killed.victim, killed.how, killed.killedAt.Seconds(), killed.atKill, killed.survivor, killed.resumedAfter.Seconds(),
			float64(killed.victimRSS)/(1<<20), float64(killed.result.rss)/(1<<20))
	}
	fmt.Fprintf(&out, "writer CPU: the bench process's own for the ceiling (reading, mapping, BulkIndexer), mlsidecar's for the rest (every replica's)\n")
	fmt.Fprintf(&out, "OpenAI file server: %d requests, %d with Range, %d refused for the key\n",
		files.requests.Load(), files.ranged.Load(), files.unauthorized.Load())
	fmt.Fprint(os.Stdout, out.String())
	for _, sc := range sidecars {
		msgs := sc.logSummary()
		if len(msgs) == 0 {
			t.Logf("%s logged no warnings or errors", sc.name)
		}
		for _, m := range msgs {
			t.Logf("%s logged %s", sc.name, m)
		}
		if os.Getenv("BENCH_INGEST_KEEP_LOGS") == "1" {
			t.Logf("%s log:\n%s", sc.name, sc.logs)
		}
	}
}

// result is one ingestion run.
type result struct {
	name string
	docs int64 // in the index after a refresh
	wall time.Duration
	rss  int64   // mlsidecar's VmHWM; 0 for the ceiling
	cpu  float64 // CPU seconds of the writing process(es) over the run
	task *task   // mlsidecar's task at the end; nil for the ceiling
}

func (r result) rate() float64 { return float64(r.docs) / r.wall.Seconds() }

type ingestRequest struct {
	IndexName  string            `json:"index_name"`
	FieldMap   map[string]string `json:"field_map"`
	Credential map[string]string `json:"credential"`
	DataSource dataSource        `json:"data_source"`
}

type dataSource struct {
	Type   string   `json:"type"`
	Source []string `json:"source"`
}

// task is what GET /_plugins/_ml/tasks/<id> says of a BATCH_INGEST task.
type task struct {
	TaskType     string  `json:"task_type"`
	State        string  `json:"state"`
	Progress     float64 `json:"progress"`
	IngestCounts struct {
		Total   int64 `json:"total"`
		Indexed int64 `json:"indexed"`
		Failed  int64 `json:"failed"`
	} `json:"ingest_counts"`
	Error string `json:"error"`
}

func (tk *task) done() bool {
	return tk.State == "COMPLETED" || tk.State == "COMPLETED_WITH_ERROR" || tk.State == "FAILED"
}

// where is the task's progress as the summary prints it.
func (tk *task) where() string {
	return fmt.Sprintf("%s total=%d indexed=%d progress=%.3f", tk.State, tk.IngestCounts.Total, tk.IngestCounts.Indexed, tk.Progress)
}

// outputLine is the part of an output line the ceiling maps.
type outputLine struct {
	CustomID string `json:"custom_id"`
	Response struct {
		Body struct {
			Data []struct {
				Embedding json.RawMessage `json:"embedding"`
			} `json:"data"`
		} `json:"body"`
	} `json:"response"`
}

// runCeiling writes the first lines lines of the file straight to the node
// with opensearch-go's BulkIndexer, mapped as fieldMap maps them: with
// update, as mlsidecar writes a line whose _id is mapped (ML Commons'
// update with doc and upsert); without, as plain index requests.
func runCeiling(t *testing.T, node *openSearchNode, path, index string, lines int, update bool) result {
	t.Helper()
	name := "ceiling: BulkIndexer, update+upsert"
	if !update {
		name = "ceiling: BulkIndexer, index"
	}
	createIndex(t, node, index)
	defer deleteIndex(t, node, index)

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	tr.DisableCompression = true
	client, err := opensearchapi.NewClient(opensearchapi.Config{Client: opensearch.Config{
		Addresses:    []string{node.url()},
		Transport:    tr,
		MaxRetries:   3,
		RetryBackoff: func(attempt int) time.Duration { return time.Duration(attempt) * 200 * time.Millisecond },
	}})
	if err != nil {
		t.Fatal(err)
	}
	var (
		failed   atomic.Int64
		mu       sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		failed.Add(1)
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	retry := 3
	cpu0 := cpuSeconds(t, os.Getpid())
	start := time.Now()
	bi, err := opensearchutil.NewBulkIndexer(opensearchutil.BulkIndexerConfig{
		NumWorkers:    bulkWorkers,
		FlushBytes:    bulkFlushBytes,
		FlushInterval: bulkFlushEvery,
		Timeout:       time.Minute,
		Client:        client,
		Index:         index,
		OnError:       func(_ context.Context, err error) { fail(err) },
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	ctx := context.Background()
	for n := 0; n < lines && sc.Scan(); n++ {
		var l outputLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil || len(l.Response.Body.Data) == 0 {
			t.Fatalf("line %d does not map: %v", n+1, err)
		}
		emb := l.Response.Body.Data[0].Embedding
		// The decoder has checked emb is one JSON value: appending it is
		// the cheapest correct body, which is what a ceiling should cost.
		var body []byte
		item := opensearchutil.BulkIndexerItem{
			DocumentID: l.CustomID,
			OnFailure: func(_ context.Context, _ opensearchutil.BulkIndexerItem, res opensearchapi.BulkRespItem, err error) {
				if err == nil && res.Error != nil {
					err = fmt.Errorf("%s: %s", res.Error.Type, res.Error.Reason)
				}
				fail(err)
			},
		}
		if update {
			item.Action, item.RetryOnConflict = "update", &retry
			body = make([]byte, 0, 2*len(emb)+40)
			body = append(append(append(body, `{"doc":{"embedding":`...), emb...), `},"upsert":{"embedding":`...)
			body = append(append(body, emb...), `}}`...)
		} else {
			item.Action = "index"
			body = append(append(append(make([]byte, 0, len(emb)+16), `{"embedding":`...), emb...), '}')
		}
		item.Body = bytes.NewReader(body)
		if err := bi.Add(ctx, item); err != nil {
			t.Fatal(err)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if err := bi.Close(ctx); err != nil {
		t.Fatal(err)
	}
	wall := time.Since(start)
	cpu := cpuSeconds(t, os.Getpid()) - cpu0
	if n := failed.Load(); n > 0 {
		t.Errorf("%s: %d items failed, the first: %v", name, n, firstErr)
	}
	docs := countDocs(t, node, index)
	if docs != int64(lines) {
		t.Errorf("%s: %d documents in %s, want %d", name, docs, index, lines)
	}
	return result{name: name, docs: docs, wall: wall, cpu: cpu}
}

// runSidecar ingests through one sidecar and measures from the POST to the
// task's end.
func runSidecar(t *testing.T, node *openSearchNode, sc *sidecar, req ingestRequest, lines int, timeout time.Duration) result {
	t.Helper()
	name := "mlsidecar: " + req.DataSource.Type
	createIndex(t, node, req.IndexName)
	defer deleteIndex(t, node, req.IndexName)
	cpu0 := cpuSeconds(t, sc.pid())
	start := time.Now()
	id := submit(t, sc, req)
	profiled := profile(t, sc, req.DataSource.Type)
	var tk *task
	for tk = getTask(t, sc, id); !tk.done(); tk = getTask(t, sc, id) {
		if time.Since(start) > timeout {
			t.Fatalf("%s: task %s not done after %s: %s\n%s", name, id, timeout, tk.where(), sc.logs)
		}
		time.Sleep(200 * time.Millisecond) // a sampling period, not synchronisation
	}
	wall := time.Since(start)
	cpu := cpuSeconds(t, sc.pid()) - cpu0
	rss, err := procStatusBytes(sc.pid(), "VmHWM:")
	if err != nil {
		t.Fatal(err)
	}
	if profiled != nil {
		if err := <-profiled; err != nil {
			t.Errorf("CPU profile: %v", err)
		}
	}
	docs := checkIndex(t, node, name, req.IndexName, lines, tk)
	return result{name: name, docs: docs, wall: wall, rss: rss, cpu: cpu, task: tk}
}

// killed is the run with a replica killed halfway.
type killed struct {
	result
	victim, survivor string
	how              string // how the victim was told to hold the task
	killedAt         time.Duration
	atKill           string
	resumedAfter     time.Duration
	victimRSS        int64
}

// runKilled submits through a with b running too, SIGKILLs the replica
// that is doing the work once half the lines are in, and waits for the
// other to finish from the checkpoint.
func runKilled(t *testing.T, node *openSearchNode, a, b *sidecar, req ingestRequest, lines int, timeout time.Duration) killed {
	t.Helper()
	name := "mlsidecar: openAI, a replica killed halfway"
	createIndex(t, node, req.IndexName)
	defer deleteIndex(t, node, req.IndexName)
	type sample struct {
		at   time.Time
		a, b int64
	}
	var samples []sample
	cpu := func() sample {
		ta, err1 := cpuTicks(a.pid())
		tb, err2 := cpuTicks(b.pid())
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		return sample{time.Now(), ta, tb}
	}
	k := killed{result: result{name: name}}
	cpuA, cpuB := cpuSeconds(t, a.pid()), cpuSeconds(t, b.pid())
	start := time.Now()
	id := submit(t, a, req)
	samples = append(samples, cpu())
	var (
		victim, survivor *sidecar
		tk               *task
		err              error
	)
	for {
		tk = getTask(t, b, id)
		now := cpu()
		samples = append(samples, now)
		if tk.done() {
			// Too few lines to catch it halfway: nothing to kill.
			t.Logf("%s: the task ended before half its lines were seen: %s; nothing killed", name, tk.where())
			k.wall, k.task = time.Since(start), tk
			k.cpu = cpuSeconds(t, a.pid()) - cpuA + cpuSeconds(t, b.pid()) - cpuB
			if k.rss, err = procStatusBytes(a.pid(), "VmHWM:"); err != nil {
				t.Fatal(err)
			}
			k.docs = checkIndex(t, node, name, req.IndexName, lines, tk)
			return k
		}
		if tk.IngestCounts.Total >= int64(lines)/2 || tk.Progress >= 0.5 {
			// The replica doing the work is the one burning CPU: compare
			// the last second or more of both.
			i := len(samples) - 2
			for i > 0 && now.at.Sub(samples[i].at) < time.Second {
				i--
			}
			da, db := now.a-samples[i].a, now.b-samples[i].b
			victim, survivor = a, b
			if db > da {
				victim, survivor = b, a
				cpuA, cpuB = cpuB, cpuA
			}
			k.how = fmt.Sprintf("busier: %d vs %d CPU ticks over the last %.1fs", max(da, db), min(da, db), now.at.Sub(samples[i].at).Seconds())
			break
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: task %s not half done after %s: %s", name, id, timeout, tk.where())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if k.victimRSS, err = procStatusBytes(victim.pid(), "VmHWM:"); err != nil {
		t.Fatal(err)
	}
	victimCPU := cpuSeconds(t, victim.pid()) - cpuA
	victim.kill(t)
	killedAt := time.Now()
	k.victim, k.survivor, k.killedAt, k.atKill = victim.name, survivor.name, killedAt.Sub(start), tk.where()
	before := *tk
	for tk = getTask(t, survivor, id); !tk.done(); tk = getTask(t, survivor, id) {
		if k.resumedAfter == 0 && (tk.IngestCounts != before.IngestCounts || tk.Progress != before.Progress) {
			k.resumedAfter = time.Since(killedAt)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: task %s not done after %s: %s\n%s", name, id, timeout, tk.where(), survivor.logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	k.wall = time.Since(start)
	if k.resumedAfter == 0 {
		k.resumedAfter = time.Since(killedAt)
	}
	if k.rss, err = procStatusBytes(survivor.pid(), "VmHWM:"); err != nil {
		t.Fatal(err)
	}
	k.cpu = victimCPU + cpuSeconds(t, survivor.pid()) - cpuB
	k.task = tk
	k.docs = checkIndex(t, node, name, req.IndexName, lines, tk)
	return k
}

func submit(t *testing.T, sc *sidecar, req ingestRequest) string {
	t.Helper()
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	status, b := call(t, http.MethodPost, sc.url+"/_plugins/_ml/_batch_ingestion", string(body))
	var res struct {
		TaskID   string `json:"task_id"`
		TaskType string `json:"task_type"`
		Status   string `json:"status"`
	}
	if status != http.StatusOK || json.Unmarshal(b, &res) != nil || res.TaskID == "" {
		t.Fatalf("POST /_plugins/_ml/_batch_ingestion (%s): %d %s", req.DataSource.Type, status, b)
	}
	if res.TaskType != "BATCH_INGEST" || res.Status != "CREATED" {
		t.Errorf("POST /_plugins/_ml/_batch_ingestion answered task_type %q, status %q; want BATCH_INGEST, CREATED: %s", res.TaskType, res.Status, b)
	}
	return res.TaskID
}

func getTask(t *testing.T, sc *sidecar, id string) *task {
	t.Helper()
	status, b := call(t, http.MethodGet, sc.url+"/_plugins/_ml/tasks/"+id, "")
	var tk task
	if status != http.StatusOK || json.Unmarshal(b, &tk) != nil {
		t.Fatalf("GET /_plugins/_ml/tasks/%s through %s: %d %s", id, sc.name, status, b)
	}
	return &tk
}

// checkIndex asserts what a finished ingestion must leave: a COMPLETED
// task, one document per line (ids are the custom ids, so none twice) and
// sample documents holding their line's vector.
func checkIndex(t *testing.T, node *openSearchNode, name, index string, lines int, tk *task) int64 {
	t.Helper()
	if tk.State != "COMPLETED" || tk.IngestCounts.Failed != 0 {
		t.Errorf("%s: task ended %s, failed=%d, error %q; want COMPLETED and none failed", name, tk.State, tk.IngestCounts.Failed, tk.Error)
	}
	docs := countDocs(t, node, index)
	if docs != int64(lines) {
		t.Errorf("%s: %d documents in %s, want %d (one per line)", name, docs, index, lines)
	}
	for _, n := range slices.Compact([]int{1, lines/2 + 1, lines, 1 + rand.IntN(lines)}) {
		status, b := call(t, http.MethodGet, node.url()+"/"+index+"/_doc/doc-"+strconv.Itoa(n), "")
		var doc struct {
			Source map[string][]float64 `json:"_source"`
		}
		if status != http.StatusOK || json.Unmarshal(b, &doc) != nil {
			t.Errorf("%s: GET %s/_doc/doc-%d: %d %.300s", name, index, n, status, b)
			continue
		}
		got, want := doc.Source["embedding"], vector(n)
		if len(doc.Source) != 1 || len(got) != len(want) {
			t.Errorf("%s: doc-%d has fields %v with %d dimensions, want only embedding with %d", name, n, keys(doc.Source), len(got), len(want))
			continue
		}
		for i := range want {
			if float32(got[i]) != want[i] {
				t.Errorf("%s: doc-%d embedding[%d] = %v, want %v", name, n, i, got[i], want[i])
				break
			}
		}
	}
	return docs
}

func keys(m map[string][]float64) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func createIndex(t *testing.T, node *openSearchNode, index string) {
	t.Helper()
	call(t, http.MethodDelete, node.url()+"/"+index+"?ignore_unavailable=true", "")
	if status, b := call(t, http.MethodPut, node.url()+"/"+index, indexMapping); status != http.StatusOK {
		t.Fatalf("creating %s: %d %s", index, status, b)
	}
	if status, b := call(t, http.MethodGet, node.url()+"/_cluster/health/"+index+"?wait_for_status=green&timeout=30s", ""); status != http.StatusOK {
		t.Fatalf("waiting for %s: %d %s", index, status, b)
	}
}

// deleteIndex frees the disk for the next run: at a million lines an
// index is gigabytes.
func deleteIndex(t *testing.T, node *openSearchNode, index string) {
	t.Helper()
	if status, b := call(t, http.MethodDelete, node.url()+"/"+index, ""); status != http.StatusOK {
		t.Errorf("deleting %s: %d %s", index, status, b)
	}
}

func countDocs(t *testing.T, node *openSearchNode, index string) int64 {
	t.Helper()
	if status, b := call(t, http.MethodPost, node.url()+"/"+index+"/_refresh", ""); status != http.StatusOK {
		t.Fatalf("refreshing %s: %d %s", index, status, b)
	}
	status, b := call(t, http.MethodGet, node.url()+"/"+index+"/_count", "")
	var res struct {
		Count *int64 `json:"count"`
	}
	if status != http.StatusOK || json.Unmarshal(b, &res) != nil || res.Count == nil {
		t.Fatalf("counting %s: %d %s", index, status, b)
	}
	return *res.Count
}

// cpuSeconds is a process's user plus system CPU time.
func cpuSeconds(t *testing.T, pid int) float64 {
	t.Helper()
	ticks, err := cpuTicks(pid)
	if err != nil {
		t.Fatal(err)
	}
	return float64(ticks) / clockTicks()
}

var clockTicks = sync.OnceValue(func() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return 100
	}
	hz, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil || hz <= 0 {
		return 100
	}
	return hz
})

// profile starts a CPU profile of the sidecar's run from source typ when
// BENCH_INGEST_CPUPROFILE names a file (<file>.<typ> is written); the
// channel reports when it is written.
func profile(t *testing.T, sc *sidecar, typ string) <-chan error {
	t.Helper()
	path := os.Getenv("BENCH_INGEST_CPUPROFILE")
	if path == "" {
		return nil
	}
	path += "." + typ
	seconds := envInt(t, "BENCH_INGEST_CPUPROFILE_SECONDS", 30)
	url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", sc.internalURL, seconds)
	done := make(chan error, 1)
	go func() {
		resp, err := http.Get(url)
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s: %d %s", url, resp.StatusCode, b)
		}
		if err == nil {
			err = os.WriteFile(path, b, 0o644)
		}
		done <- err
	}()
	t.Logf("profiling %s's CPU for %ds into %s", sc.name, seconds, path)
	return done
}

// writeMasterKey writes one credential key that every replica shares.
func writeMasterKey(t *testing.T, dir string) string {
	t.Helper()
	key := make([]byte, 32)
	if _, err := crand.Read(key); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "master-keys")
	if err := os.WriteFile(path, []byte("bench:"+base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := strings.TrimSpace(os.Getenv(name))
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}
