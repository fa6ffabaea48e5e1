package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	oai "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/mlsidecar/mlsidecar/e2e/providers/openai"
	"github.com/mlsidecar/mlsidecar/e2e/providers/sagemaker"
	"github.com/mlsidecar/mlsidecar/e2e/s3server"
)

const ingestPath = "/_plugins/_ml/_batch_ingestion"

// ingestStates are the states a BATCH_INGEST task may show, and whether
// each is final.
var ingestStates = map[string]bool{"CREATED": false, "RUNNING": false, "COMPLETED": true, "COMPLETED_WITH_ERROR": true, "FAILED": true}

// postIngest sends POST _batch_ingestion, insists on ML Commons' answer
// and returns the task id.
func postIngest(t *testing.T, sc *sidecar, body string) string {
	t.Helper()
	v := mustML(t, sc, 200, "POST", ingestPath, body)
	id, _ := v["task_id"].(string)
	if id == "" || v["task_type"] != "BATCH_INGEST" || v["status"] != "CREATED" || len(v) != 3 {
		t.Fatalf("_batch_ingestion answer = %v, want {task_id, task_type: BATCH_INGEST, status: CREATED}", v)
	}
	return id
}

// waitIngest polls GET task through sc until the ingestion has ended. A
// state ML Commons does not know fails the test at once.
func waitIngest(t *testing.T, sc *sidecar, id string, timeout time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		task := mustML(t, sc, 200, "GET", "/_plugins/_ml/tasks/"+id, "")
		state, _ := task["state"].(string)
		final, known := ingestStates[state]
		if !known {
			t.Fatalf("ingestion task %s has state %q: %v", id, state, task)
		}
		if final {
			return task
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for ingestion %s to end; last seen %v", timeout, id, task)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type ingestCounts struct{ Total, Indexed, Failed int }

func countsOf(task map[string]any) (ingestCounts, bool) {
	m, ok := task["ingest_counts"].(map[string]any)
	if !ok {
		return ingestCounts{}, false
	}
	n := func(k string) int { f, _ := m[k].(float64); return int(f) }
	return ingestCounts{n("total"), n("indexed"), n("failed")}, true
}

// checkIngestTask checks an ended ingestion as GET task shows it: the
// state, the counts, the task fields of §9.2 and nothing of the sidecar's
// bookkeeping.
func checkIngestTask(t *testing.T, task map[string]any, state string, want ingestCounts) {
	t.Helper()
	if task["task_type"] != "BATCH_INGEST" || task["state"] != state || task["is_async"] != true {
		t.Errorf("ingestion task = %v, want task_type BATCH_INGEST, state %s, is_async true", task, state)
	}
	if got, ok := countsOf(task); !ok || got != want {
		t.Errorf("ingest_counts = %v, want %+v", task["ingest_counts"], want)
	}
	for _, k := range []string{"create_time", "last_update_time"} {
		if v, _ := task[k].(float64); v <= 0 {
			t.Errorf("ingestion task %s = %v, want epoch millis", k, task[k])
		}
	}
	for _, k := range []string{"model_id", "function_name", "worker_node", "ingest", "batch", "credential"} {
		if _, ok := task[k]; ok {
			t.Errorf("ingestion task shows %s: %v", k, task)
		}
	}
	if state != "FAILED" {
		if p, _ := task["progress"].(float64); p != 1 {
			t.Errorf("ended ingestion's progress = %v, want 1", task["progress"])
		}
	}
}

type ingestFailure struct {
	Source int
	Line   int
	Reason string
}

// taskFailures reads a task's ingest_failures.
func taskFailures(t *testing.T, task map[string]any) []ingestFailure {
	t.Helper()
	raw, _ := task["ingest_failures"].([]any)
	out := make([]ingestFailure, 0, len(raw))
	for _, r := range raw {
		m, _ := r.(map[string]any)
		src, okS := m["source"].(float64)
		line, okL := m["line"].(float64)
		reason, _ := m["reason"].(string)
		if !okS || !okL || reason == "" {
			t.Errorf("ingest_failures entry %v, want source, line and reason", r)
		}
		out = append(out, ingestFailure{int(src), int(line), reason})
	}
	return out
}

// failureRecords searches the failures index through the sidecar's proxy
// for a task's records, in line order.
func failureRecords(t *testing.T, sc *sidecar, prefix, taskID string) []map[string]any {
	t.Helper()
	index := prefix + "batch-failures"
	if status, _, b := do(t, "POST", sc.url+"/"+index+"/_refresh", nil, nil); status != 200 {
		t.Fatalf("refreshing %s: %d %s", index, status, b)
	}
	status, _, b := do(t, "POST", sc.url+"/"+index+"/_search",
		stringsReader(`{"size":1000,"query":{"term":{"task_id":"`+taskID+`"}}}`), map[string]string{"Content-Type": "application/json"})
	if status != 200 {
		t.Fatalf("searching %s: %d %s", index, status, b)
	}
	var res struct {
		Hits struct {
			Hits []struct {
				Source map[string]any `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, h := range res.Hits.Hits {
		out = append(out, h.Source)
	}
	line := func(m map[string]any) float64 { f, _ := m["line"].(float64); return f }
	sort.Slice(out, func(i, j int) bool { return line(out[i]) < line(out[j]) })
	return out
}

// createIndex creates a one-shard index with mappings on the node, deleted
// when the test ends.
func createIndex(t *testing.T, name, mappings string) {
	t.Helper()
	status, _, b := do(t, "PUT", node.url()+"/"+name,
		stringsReader(`{"settings":{"number_of_shards":1,"number_of_replicas":0},"mappings":`+mappings+`}`),
		map[string]string{"Content-Type": "application/json"})
	if status != 200 {
		t.Fatalf("creating index %s: %d %s", name, status, b)
	}
	deleteIndexAtEnd(t, name)
}

func deleteIndexAtEnd(t *testing.T, name string) {
	t.Cleanup(func() { do(t, "DELETE", node.url()+"/"+name, nil, nil) })
}

// docCount counts an index's documents after a refresh; an index that does
// not exist holds none.
func docCount(t *testing.T, index string) int {
	t.Helper()
	status, _, b := do(t, "POST", node.url()+"/"+index+"/_refresh", nil, nil)
	if status == 404 {
		return 0
	}
	if status != 200 {
		t.Fatalf("refreshing %s: %d %s", index, status, b)
	}
	status, _, b = do(t, "GET", node.url()+"/"+index+"/_count", nil, nil)
	if status != 200 {
		t.Fatalf("counting %s: %d %s", index, status, b)
	}
	return jsonCount(b)
}

// docSource reads one document's _source from the node.
func docSource(t *testing.T, index, id string) (map[string]any, bool) {
	t.Helper()
	status, _, b := do(t, "GET", node.url()+"/"+index+"/_doc/"+id, nil, nil)
	if status == 404 {
		return nil, false
	}
	if status != 200 {
		t.Fatalf("reading %s/%s: %d %s", index, id, status, b)
	}
	var doc struct {
		Found  bool           `json:"found"`
		Source map[string]any `json:"_source"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Source, doc.Found
}

// floats reads a JSON array of numbers.
func floats(v any) []float64 {
	arr, _ := v.([]any)
	out := make([]float64, 0, len(arr))
	for _, x := range arr {
		f, ok := x.(float64)
		if !ok {
			return nil
		}
		out = append(out, f)
	}
	return out
}

func closeVector(got, want []float64) bool {
	if len(got) != len(want) || len(got) == 0 {
		return false
	}
	for i := range got {
		if math.Abs(got[i]-want[i]) > 1e-9 {
			return false
		}
	}
	return true
}

// runOpenAIBatch runs an embeddings batch through the double's Batches API
// with the official SDK and returns its input and output file ids.
func runOpenAIBatch(t *testing.T, d *openai.Server, clock *openai.Clock, lines ...string) (input, output string) {
	t.Helper()
	input = uploadBatchInput(t, d, lines...)
	c := oai.NewClient(option.WithBaseURL(d.URL()+"/v1/"), option.WithAPIKey(openAIKey), option.WithMaxRetries(0))
	b, err := c.Batches.New(t.Context(), oai.BatchNewParams{
		InputFileID:      input,
		Endpoint:         oai.BatchNewParamsEndpointV1Embeddings,
		CompletionWindow: oai.BatchNewParamsCompletionWindow24h,
	})
	if err != nil {
		t.Fatalf("creating the batch: %v", err)
	}
	clock.Advance(3 * time.Minute)
	b, err = c.Batches.Get(t.Context(), b.ID)
	if err != nil {
		t.Fatalf("reading the batch: %v", err)
	}
	if b.Status != oai.BatchStatusCompleted || b.OutputFileID == "" || b.RequestCounts.Failed != 0 {
		t.Fatalf("the double's batch = %s, want completed with an output file", b.RawJSON())
	}
	return input, b.OutputFileID
}

func containsAny(s string, parts ...string) bool {
	for _, p := range parts {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

// Given an embeddings batch run through the OpenAI double (its input file
// and the output file the double wrote), when they are ingested with the
// documentation's request for OpenAI files — field_map with source[0]. and
// source[1]. selectors and the _id from both — then the task goes to
// COMPLETED with every record counted, and each document holds its texts
// from the input file and its vectors from the output file, under its
// custom_id. The documentation's third file ("your other file", copied by
// ingest_fields) is left out: it maps no _id, which ML Commons itself
// refuses for several sources; an ingest_fields path of the output takes
// its place. The key is never shown nor stored in clear.
func TestBatchIngestionOpenAIDocExample(t *testing.T) {
	const prefix, index = ".e2e-ingest-doc-", "e2e-ingest-openai"
	d, clock := batchDouble(t)
	chapters := []struct{ id, chapter, title string }{
		{"chapter-1", "It was the best of times, it was the worst of times.", "A Tale of Two Cities"},
		{"chapter-2", "Call me Ishmael.", "Moby-Dick"},
		{"chapter-3", "All happy families are alike; each unhappy family is unhappy in its own way.", "Anna Karenina"},
	}
	var lines []string
	for _, c := range chapters {
		lines = append(lines, fmt.Sprintf(`{"custom_id":%q,"method":"POST","url":"/v1/embeddings","body":{"model":"text-embedding-ada-002","input":[%q,%q]}}`,
			c.id, c.chapter, c.title))
	}
	input, output := runOpenAIBatch(t, d, clock, lines...)
	sc := startSidecar(t, withArgs("--index-prefix", prefix, "--batch-poll-interval", "200ms", "--openai-files-url", d.URL())...)
	createIndex(t, index, `{"properties":{"chapter":{"type":"text"},"title":{"type":"text"},
	  "chapter_embedding":{"type":"float"},"title_embedding":{"type":"float"},"model":{"type":"keyword"}}}`)

	id := postIngest(t, sc, fmt.Sprintf(`{
  "index_name": %q,
  "field_map": {
    "chapter": "source[1].$.body.input[0]",
    "title": "source[1].$.body.input[1]",
    "chapter_embedding": "source[0].$.response.body.data[0].embedding",
    "title_embedding": "source[0].$.response.body.data[1].embedding",
    "_id": ["source[0].$.custom_id", "source[1].$.custom_id"]
  },
  "ingest_fields": ["source[0].$.response.body.model"],
  "credential": {
    "openAI_key": %q
  },
  "data_source": {
    "type": "openAI",
    "source": [%q, %q]
  }
}`, index, openAIKey, output, input))

	task := waitIngest(t, sc, id, time.Minute)
	// Three lines in each of the two files.
	checkIngestTask(t, task, "COMPLETED", ingestCounts{Total: 6, Indexed: 6})
	if f := taskFailures(t, task); len(f) != 0 {
		t.Errorf("ingest_failures = %v, want none", f)
	}
	if n := docCount(t, index); n != len(chapters) {
		t.Errorf("documents = %d, want %d (one per custom_id)", n, len(chapters))
	}
	for _, c := range chapters {
		src, ok := docSource(t, index, c.id)
		if !ok {
			t.Errorf("no document %s", c.id)
			continue
		}
		if src["chapter"] != c.chapter || src["title"] != c.title || src["model"] != "text-embedding-ada-002" {
			t.Errorf("document %s = %v, want chapter %q, title %q, model text-embedding-ada-002", c.id, src, c.chapter, c.title)
		}
		if !sameVector(floats(src["chapter_embedding"]), openai.Embedding(c.chapter, 8)) ||
			!sameVector(floats(src["title_embedding"]), openai.Embedding(c.title, 8)) {
			t.Errorf("document %s vectors = %v / %v, want the double's embeddings of its texts", c.id, src["chapter_embedding"], src["title_embedding"])
		}
		if _, leaked := src["_id"]; leaked {
			t.Errorf("document %s holds _id in its source", c.id)
		}
	}
	if d.Requests("files.content") < 2 {
		t.Errorf("files.content calls = %d, want both files read from the double", d.Requests("files.content"))
	}
	if strings.Contains(jsonString(task), openAIKey) || strings.Contains(rawIndexDocs(t, prefix+"tasks"), openAIKey) ||
		strings.Contains(sc.logs.String(), openAIKey) {
		t.Error("the OpenAI key is visible in the task, the tasks index or the logs")
	}
}

// sageMakerLine is one record of a SageMaker batch transform .out object
// (JoinSource Input: the input record with the model's SageMakerOutput).
func sageMakerLine(t *testing.T, id int, texts ...string) string {
	t.Helper()
	vectors := make([][]float64, len(texts))
	for i, s := range texts {
		vectors[i] = sagemaker.Embedding(s, 4)
	}
	b, err := json.Marshal(map[string]any{"id": id, "content": texts, "SageMakerOutput": vectors})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func putObject(t *testing.T, c *s3.Client, bucket, key, body string) {
	t.Helper()
	if _, err := c.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body)}); err != nil {
		t.Fatalf("putting s3://%s/%s: %v", bucket, key, err)
	}
}

// Given two SageMaker batch transform outputs in a real S3 server (moto,
// SigV4 checked) — chapters with their title, and summaries, one of which
// has no chapter — when both are ingested with source[0]. and source[1].
// selectors and the _id taken from each, once with the credential in the
// request and once with a SageMaker connector's credential and region
// (connector_id), then every id is one document holding the fields of both
// sources (the summary-only id only the summary's), and the task counts
// every line of both objects.
func TestBatchIngestionS3SageMakerTwoSources(t *testing.T) {
	const prefix, bucket = ".e2e-ingest-s3-", "offlinebatch"
	store := s3server.StartForTest(t)
	c := store.Client()
	if _, err := c.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	chapters := []struct {
		id             int
		chapter, title string
	}{
		{1, "It was the best of times, it was the worst of times.", "A Tale of Two Cities"},
		{2, "Call me Ishmael.", "Moby-Dick"},
		{3, "Happy families are all alike.", "Anna Karenina"},
	}
	summaries := map[int]string{1: "Two cities, one revolution.", 2: "A whale hunt.", 3: "A family drama.", 4: "A summary without a chapter."}
	var chOut, sumOut strings.Builder
	for _, ch := range chapters {
		chOut.WriteString(sageMakerLine(t, ch.id, ch.chapter, ch.title) + "\n")
	}
	for id := 1; id <= 4; id++ {
		sumOut.WriteString(sageMakerLine(t, id, summaries[id]) + "\n")
	}
	putObject(t, c, bucket, "output/chapters.json.out", chOut.String())
	putObject(t, c, bucket, "output/summaries.json.out", sumOut.String())

	sc := startSidecar(t, withArgs("--index-prefix", prefix, "--batch-poll-interval", "200ms", "--s3-endpoint", store.Endpoint())...)
	creds := store.Credentials()
	cid := mustML(t, sc, 200, "POST", "/_plugins/_ml/connectors/_create", fmt.Sprintf(`{"name":"sagemaker ingest","version":"1","protocol":"aws_sigv4",
	  "parameters":{"region":%q,"service_name":"sagemaker"},
	  "credential":{"access_key":%q,"secret_key":%q},
	  "actions":[{"action_type":"predict","method":"POST","url":"http://127.0.0.1:9/endpoints/embedder/invocations","request_body":"{ \"inputs\": ${parameters.input} }"}]}`,
		store.Region(), creds.AccessKeyID, creds.SecretAccessKey))["connector_id"].(string)

	for _, tc := range []struct{ name, auth string }{
		{"credential", fmt.Sprintf(`"credential": {"region": %q, "access_key": %q, "secret_key": %q}`, store.Region(), creds.AccessKeyID, creds.SecretAccessKey)},
		{"connector_id", fmt.Sprintf(`"connector_id": %q`, cid)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			index := "e2e-ingest-s3-" + strings.ReplaceAll(tc.name, "_", "-")
			createIndex(t, index, `{"properties":{"chapter":{"type":"text"},"title":{"type":"text"},"summary":{"type":"text"},"id":{"type":"long"},
			  "chapter_embedding":{"type":"float"},"title_embedding":{"type":"float"},"summary_embedding":{"type":"float"}}}`)
			id := postIngest(t, sc, fmt.Sprintf(`{
  "index_name": %q,
  "field_map": {
    "chapter": "source[0].$.content[0]",
    "title": "source[0].$.content[1]",
    "chapter_embedding": "source[0].$.SageMakerOutput[0]",
    "title_embedding": "source[0].$.SageMakerOutput[1]",
    "summary": "source[1].$.content[0]",
    "summary_embedding": "source[1].$.SageMakerOutput[0]",
    "_id": ["source[0].$.id", "source[1].$.id"]
  },
  "ingest_fields": ["source[0].$.id"],
  %s,
  "data_source": {
    "type": "s3",
    "source": ["s3://%s/output/chapters.json.out", "s3://%s/output/summaries.json.out"]
  }
}`, index, tc.auth, bucket, bucket))
			task := waitIngest(t, sc, id, time.Minute)
			checkIngestTask(t, task, "COMPLETED", ingestCounts{Total: 7, Indexed: 7})
			if n := docCount(t, index); n != 4 {
				t.Errorf("documents = %d, want 4 (ids 1-4)", n)
			}
			for _, ch := range chapters {
				key := strconv.Itoa(ch.id)
				src, ok := docSource(t, index, key)
				if !ok {
					t.Errorf("no document %s", key)
					continue
				}
				if src["chapter"] != ch.chapter || src["title"] != ch.title || src["summary"] != summaries[ch.id] || src["id"] != float64(ch.id) {
					t.Errorf("document %s = %v, want chapter, title, id from source 0 and summary from source 1", key, src)
				}
				if !closeVector(floats(src["chapter_embedding"]), sagemaker.Embedding(ch.chapter, 4)) ||
					!closeVector(floats(src["title_embedding"]), sagemaker.Embedding(ch.title, 4)) ||
					!closeVector(floats(src["summary_embedding"]), sagemaker.Embedding(summaries[ch.id], 4)) {
					t.Errorf("document %s vectors = %v, want the SageMakerOutput of both sources", key, src)
				}
			}
			src, ok := docSource(t, index, "4")
			if !ok || src["summary"] != summaries[4] || !closeVector(floats(src["summary_embedding"]), sagemaker.Embedding(summaries[4], 4)) {
				t.Errorf("document 4 = %v (found %v), want the summary and its vector", src, ok)
			}
			for _, k := range []string{"chapter", "title", "chapter_embedding", "id"} {
				if _, has := src[k]; has {
					t.Errorf("document 4 has %s, which only source 0 gives: %v", k, src)
				}
			}
			if strings.Contains(jsonString(task), creds.SecretAccessKey) || strings.Contains(rawIndexDocs(t, prefix+"tasks"), creds.SecretAccessKey) {
				t.Error("the S3 secret key is visible in the task or the tasks index")
			}
		})
	}
	if strings.Contains(sc.logs.String(), creds.SecretAccessKey) {
		t.Error("the S3 secret key is in the logs")
	}
}

// Given an output file with good lines, a line that is not JSON, a line
// without a mapped path, a line whose value the index mapping rejects (a
// string into a long), a bad line longer than a KB and more bad lines, so
// more than ten fail, when it is ingested, then the task ends
// COMPLETED_WITH_ERROR with exact counts and ten of its failures, the
// failures index holds exactly the failed lines (each with the first KB of
// its record), and the good lines are indexed.
func TestBatchIngestionFailuresAreRecorded(t *testing.T) {
	const prefix, index = ".e2e-ingest-fail-", "e2e-ingest-failures"
	d := openai.New(openai.Options{APIKey: openAIKey})
	d.Start()
	t.Cleanup(d.Close)
	sc := startSidecar(t, withArgs("--index-prefix", prefix, "--batch-poll-interval", "200ms", "--openai-files-url", d.URL())...)
	createIndex(t, index, `{"properties":{"title":{"type":"keyword"},"count":{"type":"long"}}}`)

	long := `{"custom_id":"long-bad","title":"` + strings.Repeat("x", 3000) // never closed
	type line struct {
		text   string
		okID   string // the document id of a good line
		reason string // a part of a failure's reason; "" for any
	}
	lines := []line{
		{text: `{"custom_id":"ok-1","title":"one","count":1}`, okID: "ok-1"},
		{text: `{"custom_id":"bad-json","title":`},
		{text: `{"custom_id":"ok-2","title":"two","count":2}`, okID: "ok-2"},
		{text: `{"custom_id":"no-count","title":"three"}`, reason: "count"},
		{text: `{"custom_id":"conflict","title":"four","count":"not a number"}`, reason: "count"},
		{text: `{"custom_id":"ok-3","title":"five","count":5}`, okID: "ok-3"},
		{text: long},
	}
	for i := range 8 {
		lines = append(lines, line{text: fmt.Sprintf(`{"custom_id":"junk-%d",`, i)})
	}
	var texts []string
	wantFailed := map[int]line{}
	for i, l := range lines {
		texts = append(texts, l.text)
		if l.okID == "" {
			wantFailed[i+1] = l
		}
	}
	file := uploadBatchInput(t, d, texts...)

	id := postIngest(t, sc, fmt.Sprintf(`{"index_name":%q,
	  "field_map":{"title":"$.title","count":"$.count","_id":"$.custom_id"},
	  "credential":{"openAI_key":%q},
	  "data_source":{"type":"openAI","source":[%q]}}`, index, openAIKey, file))
	task := waitIngest(t, sc, id, time.Minute)
	checkIngestTask(t, task, "COMPLETED_WITH_ERROR", ingestCounts{Total: len(lines), Indexed: 3, Failed: len(wantFailed)})

	// The task shows the first ten; each is one of the failed lines.
	shown := taskFailures(t, task)
	seen := map[int]bool{}
	for _, f := range shown {
		if _, failed := wantFailed[f.Line]; !failed || f.Source != 0 || seen[f.Line] {
			t.Errorf("ingest_failures has %+v, want distinct failed lines of source 0", f)
		}
		seen[f.Line] = true
	}
	if len(shown) != 10 {
		t.Errorf("ingest_failures holds %d entries, want the first 10 of %d", len(shown), len(wantFailed))
	}

	// The failures index holds all of them, and nothing else of the task.
	records := failureRecords(t, sc, prefix, id)
	var gotLines, wantLines []int
	for n := range wantFailed {
		wantLines = append(wantLines, n)
	}
	sort.Ints(wantLines)
	for _, r := range records {
		n := int(r["line"].(float64))
		gotLines = append(gotLines, n)
		want := wantFailed[n]
		reason, _ := r["reason"].(string)
		record, _ := r["record"].(string)
		if r["task_id"] != id || r["source"] != 0.0 || r["source_name"] != file || reason == "" || r["time"] == nil {
			t.Errorf("failure record of line %d = %v, want task_id %s, source 0, source_name %s, a reason and a time", n, r, id, file)
		}
		if want.reason != "" && !strings.Contains(reason, want.reason) {
			t.Errorf("failure of line %d has reason %q, want it to name %q", n, reason, want.reason)
		}
		switch {
		case want.text == long:
			if len(record) > 1024 || len(record) < 1000 || !strings.HasPrefix(long, record) {
				t.Errorf("record of the long line holds %d bytes, want its first KB", len(record))
			}
		case record != want.text:
			t.Errorf("record of line %d = %q, want %q (failure record %v)", n, record, want.text, r)
		}
	}
	if fmt.Sprint(gotLines) != fmt.Sprint(wantLines) {
		t.Errorf("failure records for lines %v, want %v", gotLines, wantLines)
	}

	if n := docCount(t, index); n != 3 {
		t.Errorf("documents = %d, want the 3 good lines", n)
	}
	for i, l := range lines {
		if l.okID == "" {
			continue
		}
		var want map[string]any
		_ = json.Unmarshal([]byte(l.text), &want)
		src, ok := docSource(t, index, l.okID)
		if !ok || src["title"] != want["title"] || src["count"] != want["count"] {
			t.Errorf("document of line %d = %v (found %v), want title %v and count %v", i+1, src, ok, want["title"], want["count"])
		}
	}
}

// Given requests ML Commons refuses, when they are sent, then each gets
// ML Commons' status, type and text (§9.1; an empty body 400 where ML
// Commons answers 500) and no task is made; the feature gate gives 500 and
// the task limit 429. Given requests that pass but whose data cannot be
// read — an object or bucket that does not exist, a wrong secret key, an
// S3 endpoint nobody listens on, an OpenAI file id that does not exist —
// then each task ends FAILED with an error naming the problem and nothing
// is indexed.
func TestBatchIngestionBadInput(t *testing.T) {
	const prefix, bucket = ".e2e-ingest-bad-", "ingest-bad"
	d := openai.New(openai.Options{APIKey: openAIKey})
	d.Start()
	t.Cleanup(d.Close)
	store := s3server.StartForTest(t)
	c := store.Client()
	if _, err := c.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	putObject(t, c, bucket, "present.json.out", sageMakerLine(t, 1, "a chapter", "a title")+"\n")
	args := withArgs("--index-prefix", prefix, "--batch-poll-interval", "200ms", "--openai-files-url", d.URL())
	sc := startSidecar(t, append(args, "--s3-endpoint", store.Endpoint())...)

	creds := store.Credentials()
	cred := fmt.Sprintf(`"credential":{"region":%q,"access_key":%q,"secret_key":%q}`, store.Region(), creds.AccessKeyID, creds.SecretAccessKey)
	const fieldMap = `"field_map":{"chapter":"$.content[0]","chapter_embedding":"$.SageMakerOutput[0]","_id":"$.id"}`
	present := `"data_source":{"type":"s3","source":["s3://` + bucket + `/present.json.out"]}`
	good := `{"index_name":"e2e-ingest-bad-never",` + fieldMap + `,` + cred + `,` + present + `}`
	deleteIndexAtEnd(t, "e2e-ingest-bad-never")
	const iae = "IllegalArgumentException in the batch ingestion input: "

	tests := []struct {
		name   string
		body   string
		status int
		typ    string // "" when ML Commons' type is not fixed by the contract
		reason string
		exact  bool // reason is the whole text, not a part
	}{
		{"empty body", "", 400, "", "Batch Ingestion request has empty body", false},
		{"no index_name", `{` + fieldMap + `,` + cred + `,` + present + `}`, 400, "illegal_argument_exception",
			"The index name for data ingestion is missing. Please provide a valid index name to proceed.", true},
		{"no data_source", `{"index_name":"x",` + fieldMap + `,` + cred + `}`, 400, "illegal_argument_exception",
			"No data sources were provided for ingestion. Please specify at least one valid data source to proceed.", true},
		{"empty data_source", `{"index_name":"x",` + fieldMap + `,` + cred + `,"data_source":{}}`, 400, "status_exception",
			iae + "The batch ingest input data source cannot be null", true},
		{"null credential", `{"index_name":"x",` + fieldMap + `,"credential":null,` + present + `}`, 400, "status_exception",
			iae + "The batch ingest credential or connector_id cannot be null", true},
		{"no type", `{"index_name":"x",` + fieldMap + `,` + cred + `,"data_source":{"source":["s3://b/k.out"]}}`, 400, "status_exception",
			iae + "The batch ingest input data source is missing data type or source", true},
		{"no source", `{"index_name":"x",` + fieldMap + `,` + cred + `,"data_source":{"type":"s3"}}`, 400, "status_exception",
			iae + "The batch ingest input data source is missing data type or source", true},
		{"no s3 URIs", `{"index_name":"x",` + fieldMap + `,` + cred + `,"data_source":{"type":"s3","source":[]}}`, 400, "status_exception",
			iae + "The batch ingest input s3Uris is empty", true},
		{"invalid s3 URIs", `{"index_name":"x",` + fieldMap + `,` + cred +
			`,"data_source":{"type":"s3","source":["s3://ingest-bad/present.json.out","https://ingest-bad/x.out","s3://bad_bucket/x.out"]}}`,
			400, "status_exception", iae + "The following batch ingest input S3 URIs are invalid: [https://ingest-bad/x.out, s3://bad_bucket/x.out]", true},
		{"several sources without _id", `{"index_name":"x","field_map":{"chapter":"source[0].$.content[0]","title":"source[1].$.content[0]"},` + cred +
			`,"data_source":{"type":"s3","source":["s3://ingest-bad/present.json.out","s3://ingest-bad/present.json.out"]}}`,
			400, "", "The id filed must be provided to match documents for multiple sources", false},
		{"unknown connector", `{"index_name":"x",` + fieldMap + `,"connector_id":"no-such-connector",` + present + `}`, 400, "",
			"Fail to fetch credentials from the connector in the batch ingestion input: ", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, v := mlCall(t, sc, "POST", ingestPath, tc.body)
			e, _ := v["error"].(map[string]any)
			reason, _ := e["reason"].(string)
			rc, _ := e["root_cause"].([]any)
			switch {
			case status != tc.status || e == nil || v["status"] != float64(tc.status) || len(rc) != 1:
				t.Errorf("got %d %v, want %d with OpenSearch's error envelope", status, v, tc.status)
			case tc.typ != "" && e["type"] != tc.typ:
				t.Errorf("error type %v, want %s: %v", e["type"], tc.typ, v)
			case tc.exact && reason != tc.reason, !tc.exact && !strings.Contains(reason, tc.reason):
				t.Errorf("reason %q, want %q", reason, tc.reason)
			}
		})
	}

	t.Run("ingestion disabled", func(t *testing.T) {
		if status, _, raw := putSettings(t, sc.url, "", `{"persistent":{"plugins.ml_commons.offline_batch_ingestion_enabled":false}}`, nil); status != 200 {
			t.Fatalf("%d %s", status, raw)
		}
		status, v := mlCall(t, sc, "POST", ingestPath, good)
		wantError(t, v, 500, "illegal_state_exception", "Offline batch ingestion is currently disabled")
		if status != 500 {
			t.Errorf("ingestion while disabled: %d", status)
		}
		if status, _, raw := putSettings(t, sc.url, "", `{"persistent":{"plugins.ml_commons.offline_batch_ingestion_enabled":null}}`, nil); status != 200 {
			t.Fatalf("%d %s", status, raw)
		}
	})
	t.Run("task limit", func(t *testing.T) {
		if status, _, raw := putSettings(t, sc.url, "", `{"persistent":{"plugins.ml_commons.max_batch_ingestion_tasks":0}}`, nil); status != 200 {
			t.Fatalf("%d %s", status, raw)
		}
		status, v := mlCall(t, sc, "POST", ingestPath, good)
		wantError(t, v, 429, "status_exception",
			"Exceeded maximum limit for BATCH_INGEST tasks. To increase the limit, update the plugins.ml_commons.max_batch_ingestion_tasks setting.")
		if status != 429 {
			t.Errorf("ingestion over the limit: %d", status)
		}
		if status, _, raw := putSettings(t, sc.url, "", `{"persistent":{"plugins.ml_commons.max_batch_ingestion_tasks":null}}`, nil); status != 200 {
			t.Fatalf("%d %s", status, raw)
		}
	})

	// Nothing refused made a task.
	do(t, "POST", node.url()+"/"+prefix+"tasks/_refresh", nil, nil)
	_, _, b := do(t, "POST", node.url()+"/"+prefix+"tasks/_count", stringsReader(`{"query":{"term":{"task_type":"BATCH_INGEST"}}}`),
		map[string]string{"Content-Type": "application/json"})
	if n := jsonCount(b); n != 0 {
		t.Errorf("refused requests made %d BATCH_INGEST tasks: %s", n, b)
	}
	if n := docCount(t, "e2e-ingest-bad-never"); n != 0 {
		t.Errorf("refused requests indexed %d documents", n)
	}

	// An S3 endpoint nobody listens on: a free port, closed again.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadEndpoint := "http://" + l.Addr().String()
	l.Close()
	// Its own prefix: a replica of sc would take its tasks and read them
	// from sc's endpoint.
	dead := startSidecar(t, withArgs("--index-prefix", ".e2e-ingest-dead-", "--batch-poll-interval", "200ms", "--s3-endpoint", deadEndpoint)...)

	wrongCred := fmt.Sprintf(`"credential":{"region":%q,"access_key":%q,"secret_key":"wrong-secret"}`, store.Region(), creds.AccessKeyID)
	unread := []struct {
		name   string
		sc     *sidecar
		body   string
		errors []string // the error names at least one
		wait   time.Duration
	}{
		{"missing object", sc, `"data_source":{"type":"s3","source":["s3://` + bucket + `/no-such-object.json.out"]},` + cred,
			[]string{"NoSuchKey", "no-such-object.json.out"}, time.Minute},
		{"missing bucket", sc, `"data_source":{"type":"s3","source":["s3://no-such-bucket-e2e/out.json.out"]},` + cred,
			[]string{"NoSuchBucket", "no-such-bucket-e2e"}, time.Minute},
		{"wrong secret key", sc, present + `,` + wrongCred, []string{"SignatureDoesNotMatch", "403"}, time.Minute},
		{"unreachable endpoint", dead, present + `,` + cred, []string{l.Addr().String(), "connection refused"},
			// A refused connection may be passing: the task is tried again,
			// backing off, before it fails.
			5 * time.Minute},
		{"missing OpenAI file", sc, `"data_source":{"type":"openAI","source":["file-NoSuchFile0000000000"]},"credential":{"openAI_key":"` + openAIKey + `"}`,
			[]string{"file-NoSuchFile0000000000"}, time.Minute},
	}
	for i, tc := range unread {
		t.Run(tc.name, func(t *testing.T) {
			index := fmt.Sprintf("e2e-ingest-bad-%d", i)
			deleteIndexAtEnd(t, index)
			id := postIngest(t, tc.sc, `{"index_name":"`+index+`",`+fieldMap+`,`+tc.body+`}`)
			task := waitIngest(t, tc.sc, id, tc.wait)
			msg, _ := task["error"].(string)
			if task["state"] != "FAILED" || !containsAny(msg, tc.errors...) {
				t.Errorf("task = %v, want FAILED with an error naming one of %q", task, tc.errors)
			}
			if counts, ok := countsOf(task); ok && counts != (ingestCounts{}) {
				t.Errorf("ingest_counts = %+v, want nothing read", counts)
			}
			if n := docCount(t, index); n != 0 {
				t.Errorf("%d documents indexed, want none", n)
			}
			if strings.Contains(jsonString(task), creds.SecretAccessKey) {
				t.Errorf("the task shows the secret key: %v", task)
			}
		})
	}
}

// countIngestTasks counts a prefix's BATCH_INGEST tasks, straight from the
// node.
func countIngestTasks(t *testing.T, prefix string) int {
	t.Helper()
	do(t, "POST", node.url()+"/"+prefix+"tasks/_refresh", nil, nil)
	status, _, b := do(t, "POST", node.url()+"/"+prefix+"tasks/_count", stringsReader(`{"query":{"term":{"task_type":"BATCH_INGEST"}}}`),
		map[string]string{"Content-Type": "application/json"})
	if status != 200 {
		t.Fatalf("counting ingestion tasks: %d %s", status, b)
	}
	return jsonCount(b)
}

// Given the documentation's OpenAI batch connector and two replicas, when
// _batch_predict carries "ingest", then once the poller alone has seen the
// job completed, the batch task names its BATCH_INGEST task, which ends
// COMPLETED with every input's vector in the index under its custom_id; a
// second job with a request the provider failed ends COMPLETED_WITH_ERROR,
// its error file's line recorded as a failure. Each job is ingested exactly
// once across the replicas.
func TestBatchPredictIngestsResults(t *testing.T) {
	const prefix, index = ".e2e-ingest-predict-", "e2e-ingest-predict"
	d, clock := batchDouble(t)
	args := withArgs("--index-prefix", prefix, "--batch-poll-interval", "200ms", "--batch-lease-ttl", "5s")
	a := startSidecar(t, append(args, "--node-id", "replica-a")...)
	b := startSidecar(t, append(args, "--node-id", "replica-b")...)
	texts := map[string]string{"doc-1": "hello", "doc-2": "world", "doc-3": "again"}
	input := uploadBatchInput(t, d, embeddingLine("doc-1", texts["doc-1"]), embeddingLine("doc-2", texts["doc-2"]), embeddingLine("doc-3", texts["doc-3"]))
	// The double's URL does not say OpenAI; the parameter does.
	connector := strings.Replace(openAIConnector(d.URL(), input, ""), `"parameters": {`, `"parameters": {"mlsidecar.provider": "openai",`, 1)
	model := deployModel(t, a, connector)
	createIndex(t, index, `{"properties":{"embedding":{"type":"float"},"model":{"type":"keyword"}}}`)
	ingest := `"ingest":{"index_name":"` + index + `","field_map":{"embedding":"$.response.body.data[0].embedding","_id":"$.custom_id"},"ingest_fields":["$.response.body.model"]}`

	// submit runs one job with ingestion and waits until its batch task
	// names the ingestion; only the pollers read the job meanwhile.
	submit := func(parameters string) (batchTask map[string]any, ingestID string) {
		t.Helper()
		sub := mustML(t, a, 200, "POST", "/_plugins/_ml/models/"+model+"/_batch_predict", `{"parameters":`+parameters+`,`+ingest+`}`)
		taskID, _ := sub["task_id"].(string)
		if taskID == "" || sub["status"] != "CREATED" {
			t.Fatalf("_batch_predict answer = %v", sub)
		}
		clock.Advance(3 * time.Minute)
		stored := waitTask(t, prefix, taskID, "the poller to complete the job and start its ingestion", func(task map[string]any) bool {
			return task["state"] == "COMPLETED" && task["ingest_task_id"] != nil
		})
		got := mustML(t, b, 200, "GET", "/_plugins/_ml/tasks/"+taskID, "")
		ingestID, _ = got["ingest_task_id"].(string)
		if got["state"] != "COMPLETED" || ingestID == "" || ingestID != stored["ingest_task_id"] {
			t.Fatalf("batch task GET = %v, want COMPLETED with ingest_task_id %v", got, stored["ingest_task_id"])
		}
		return stored, ingestID
	}

	_, first := submit(`{"model":"text-embedding-ada-002"}`)
	task := waitIngest(t, b, first, time.Minute)
	checkIngestTask(t, task, "COMPLETED", ingestCounts{Total: 3, Indexed: 3})
	for id, text := range texts {
		src, ok := docSource(t, index, id)
		if !ok || !sameVector(floats(src["embedding"]), openai.Embedding(text, 8)) || src["model"] != "text-embedding-ada-002" {
			t.Errorf("document %s = %v (found %v), want the embedding of %q and the model", id, src, ok, text)
		}
	}

	// A request the provider fails lands in the error file.
	bad := uploadBatchInput(t, d, embeddingLine("doc-4", "fourth"),
		`{"custom_id":"doc-bad","method":"POST","url":"/v1/embeddings","body":{"model":"text-embedding-ada-002"}}`)
	job, second := submit(`{"input_file_id":"` + bad + `"}`)
	errorFile, _ := job["remote_job"].(map[string]any)["error_file_id"].(string)
	if errorFile == "" {
		t.Fatalf("the second job has no error file: %v", job["remote_job"])
	}
	task = waitIngest(t, a, second, time.Minute)
	checkIngestTask(t, task, "COMPLETED_WITH_ERROR", ingestCounts{Total: 2, Indexed: 1, Failed: 1})
	if f := taskFailures(t, task); len(f) != 1 || f[0].Line != 1 {
		t.Errorf("ingest_failures = %+v, want the error file's one line", f)
	}
	records := failureRecords(t, a, prefix, second)
	if len(records) != 1 || records[0]["source_name"] != errorFile || !strings.Contains(fmt.Sprint(records[0]["record"]), `"doc-bad"`) {
		t.Errorf("failure records = %v, want the error file's line for doc-bad", records)
	}
	if src, ok := docSource(t, index, "doc-4"); !ok || !sameVector(floats(src["embedding"]), openai.Embedding("fourth", 8)) {
		t.Errorf("document doc-4 = %v (found %v), want the embedding of fourth", src, ok)
	}
	if _, ok := docSource(t, index, "doc-bad"); ok {
		t.Error("the failed request has a document")
	}

	if first == second {
		t.Errorf("both jobs name ingestion %s", first)
	}
	if n := countIngestTasks(t, prefix); n != 2 {
		t.Errorf("BATCH_INGEST tasks = %d, want one per job", n)
	}
	if n := docCount(t, index); n != 4 {
		t.Errorf("documents = %d, want 4", n)
	}
}

// gatedFiles serves one OpenAI file's content (GET /v1/files/{id}/content,
// Range requests answered 206 as OpenAI's CDN does): the first part at
// once, then a line every 100 ms until released, so a test can hold an
// ingestion mid-file. It records every request's Range header and whether
// it came after the test's kill.
type gatedFiles struct {
	url     string
	id      string
	content []byte
	part    int // bytes served at once

	gate    chan struct{}
	release func()

	mu     sync.Mutex
	killed bool
	reqs   []gatedRequest
}

type gatedRequest struct {
	rng       string
	afterKill bool
}

func newGatedFiles(t *testing.T, id string, content []byte, part int) *gatedFiles {
	t.Helper()
	g := &gatedFiles{id: id, content: content, part: part, gate: make(chan struct{})}
	var once sync.Once
	g.release = func() { once.Do(func() { close(g.gate) }) }
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/files/{id}/content", g.serve)
	ts := httptest.NewServer(mux)
	t.Cleanup(func() { g.release(); ts.Close() })
	g.url = ts.URL
	return g
}

func (g *gatedFiles) markKilled() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.killed = true
}

func (g *gatedFiles) requests() []gatedRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]gatedRequest(nil), g.reqs...)
}

func (g *gatedFiles) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+openAIKey {
		http.Error(w, `{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`, http.StatusUnauthorized)
		return
	}
	if r.PathValue("id") != g.id {
		http.Error(w, `{"error":{"message":"No such File object: `+r.PathValue("id")+`","type":"invalid_request_error","param":"id","code":null}}`, http.StatusNotFound)
		return
	}
	rng := r.Header.Get("Range")
	g.mu.Lock()
	g.reqs = append(g.reqs, gatedRequest{rng: rng, afterKill: g.killed})
	g.mu.Unlock()

	size := len(g.content)
	from := 0
	if rng != "" {
		spec, ok := strings.CutPrefix(rng, "bytes=")
		spec, ok2 := strings.CutSuffix(spec, "-")
		n, err := strconv.Atoi(spec)
		if !ok || !ok2 || err != nil || n < 0 {
			http.Error(w, "unsupported Range "+rng, http.StatusBadRequest)
			return
		}
		if n >= size {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", size))
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		from = n
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(size-from))
	if rng != "" {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, size-1, size))
		w.WriteHeader(http.StatusPartialContent)
	} else {
		w.WriteHeader(http.StatusOK)
	}
	rc := http.NewResponseController(w)
	pos := from
	if pos < g.part {
		if _, err := w.Write(g.content[pos:g.part]); err != nil {
			return
		}
		pos = g.part
		_ = rc.Flush()
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for pos < size {
		select {
		case <-g.gate:
			_, _ = w.Write(g.content[pos:])
			return
		case <-r.Context().Done():
			return
		case <-tick.C:
			end := pos + bytes.IndexByte(g.content[pos:], '\n') + 1
			if _, err := w.Write(g.content[pos:end]); err != nil {
				return
			}
			pos = end
			_ = rc.Flush()
		}
	}
}

// Given one replica ingesting a 20,000-line file without mapped ids, held
// mid-file by its file server, when a second replica starts and the first
// is killed with SIGKILL, then after the lease ends the second resumes from
// the checkpoint (a Range request at a line boundary) and finishes: the
// index holds one document per line, no line twice, and the task counts
// every line once.
func TestBatchIngestionResumesAfterKill(t *testing.T) {
	const prefix, index, lines = ".e2e-ingest-kill-", "e2e-ingest-kill", 20000
	var content bytes.Buffer
	part := 0
	for n := 1; n <= lines; n++ {
		fmt.Fprintf(&content, `{"n":%d,"text":"line %d of a large output file"}`+"\n", n, n)
		if n == lines/2 {
			part = content.Len()
		}
	}
	files := newGatedFiles(t, "file-large0000000000000", content.Bytes(), part)
	args := withArgs("--index-prefix", prefix, "--batch-poll-interval", "200ms", "--batch-lease-ttl", "2s", "--openai-files-url", files.url)
	victim := startSidecar(t, append(args, "--node-id", "victim")...)
	createIndex(t, index, `{"properties":{"n":{"type":"long"},"text":{"type":"text"}}}`)

	id := postIngest(t, victim, fmt.Sprintf(`{"index_name":%q,"field_map":{"n":"$.n","text":"$.text"},
	  "credential":{"openAI_key":%q},"data_source":{"type":"openAI","source":[%q]}}`, index, openAIKey, files.id))
	var mid map[string]any
	eventually(t, time.Minute, "the victim to checkpoint part of the file", func() bool {
		mid = mustML(t, victim, 200, "GET", "/_plugins/_ml/tasks/"+id, "")
		c, _ := countsOf(mid)
		return c.Total > 0
	})
	c, _ := countsOf(mid)
	p, _ := mid["progress"].(float64)
	if mid["state"] != "RUNNING" || c.Total >= lines || p <= 0 || p >= 1 {
		t.Fatalf("task mid-file = %v, want RUNNING with 0 < total < %d and 0 < progress < 1", mid, lines)
	}

	survivor := startSidecar(t, append(args, "--node-id", "survivor")...)
	files.markKilled()
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	victim.exited <- <-victim.exited
	files.release()

	task := waitIngest(t, survivor, id, 2*time.Minute)
	checkIngestTask(t, task, "COMPLETED", ingestCounts{Total: lines, Indexed: lines})

	// While the victim lived it alone read the file; after, the survivor
	// went on from a committed line instead of starting over.
	var before, resumed int
	for _, r := range files.requests() {
		if !r.afterKill {
			before++
			continue
		}
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(r.rng, "bytes="), "-"))
		if err == nil && n > 0 && n < content.Len() && content.Bytes()[n-1] == '\n' {
			resumed++
		}
	}
	if before != 1 || resumed == 0 {
		t.Errorf("file requests %+v: want one before the kill, then a Range request at a line boundary", files.requests())
	}

	if n := docCount(t, index); n != lines {
		t.Errorf("documents = %d, want %d", n, lines)
	}
	_, _, b := do(t, "POST", node.url()+"/"+index+"/_search", stringsReader(
		`{"size":0,"aggs":{"twice":{"terms":{"field":"n","min_doc_count":2,"size":10}},"n":{"stats":{"field":"n"}}}}`),
		map[string]string{"Content-Type": "application/json"})
	var res struct {
		Aggregations struct {
			Twice struct {
				Buckets []any `json:"buckets"`
			} `json:"twice"`
			N struct {
				Count int     `json:"count"`
				Min   float64 `json:"min"`
				Max   float64 `json:"max"`
			} `json:"n"`
		} `json:"aggregations"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	if ag := res.Aggregations; len(ag.Twice.Buckets) != 0 || ag.N.Count != lines || ag.N.Min != 1 || ag.N.Max != lines {
		t.Errorf("lines indexed: %s; want each of 1..%d exactly once", b, lines)
	}
}
