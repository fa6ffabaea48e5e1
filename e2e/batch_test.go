package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	oai "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/mlsidecar/mlsidecar/e2e/providers/openai"
)

// batchDouble is an OpenAI double whose batches move one state per minute
// of its clock, which only the test advances.
func batchDouble(t *testing.T) (*openai.Server, *openai.Clock) {
	t.Helper()
	clock := openai.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	d := openai.New(openai.Options{APIKey: openAIKey, Dim: 8, Clock: clock,
		ValidatingFor: time.Minute, InProgressFor: time.Minute, FinalizingFor: time.Minute, CancellingFor: time.Minute})
	d.Start()
	t.Cleanup(d.Close)
	return d, clock
}

// uploadBatchInput uploads a JSONL batch input file through the official SDK.
func uploadBatchInput(t *testing.T, d *openai.Server, lines ...string) string {
	t.Helper()
	c := oai.NewClient(option.WithBaseURL(d.URL()+"/v1/"), option.WithAPIKey(openAIKey), option.WithMaxRetries(0))
	f, err := c.Files.New(t.Context(), oai.FileNewParams{
		File:    oai.File(strings.NewReader(strings.Join(lines, "\n")+"\n"), "input.jsonl", "application/jsonl"),
		Purpose: oai.FilePurposeBatch,
	})
	if err != nil {
		t.Fatalf("uploading the batch input: %v", err)
	}
	return f.ID
}

func embeddingLine(id, text string) string {
	return fmt.Sprintf(`{"custom_id":%q,"method":"POST","url":"/v1/embeddings","body":{"model":"text-embedding-ada-002","input":%q}}`, id, text)
}

// rawTask reads a task document straight from the node: what the poller
// stored, without the live refresh a GET through the sidecar would do.
func rawTask(t *testing.T, prefix, id string) map[string]any {
	t.Helper()
	status, _, b := do(t, "GET", node.url()+"/"+prefix+"tasks/_doc/"+id, nil, nil)
	if status != 200 {
		t.Fatalf("reading task %s from the node: %d %s", id, status, b)
	}
	var doc struct {
		Source map[string]any `json:"_source"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Source
}

func waitTask(t *testing.T, prefix, id string, what string, cond func(task map[string]any) bool) map[string]any {
	t.Helper()
	var task map[string]any
	eventually(t, 30*time.Second, what, func() bool {
		task = rawTask(t, prefix, id)
		return cond(task)
	})
	return task
}

func remoteStatus(task map[string]any) string {
	job, _ := task["remote_job"].(map[string]any)
	s, _ := job["status"].(string)
	return s
}

// Given the documentation's OpenAI connector pointed at an OpenAI double,
// when a batch job is submitted literally as documented, then the poller
// alone moves the task RUNNING -> COMPLETED with the provider's counts and
// output file; a second job cancelled through _cancel_batch ends CANCELLED;
// a job with a broken input ends FAILED with the provider's errors.
func TestBatchPredictOpenAI(t *testing.T) {
	const prefix = ".e2e-batch-"
	d, clock := batchDouble(t)
	sc := startSidecar(t, withArgs("--index-prefix", prefix, "--batch-poll-interval", "200ms", "--max-batch-inference-tasks", "3")...)
	input := uploadBatchInput(t, d, embeddingLine("doc-1", "hello"), embeddingLine("doc-2", "world"), embeddingLine("doc-3", "again"))
	model := deployModel(t, sc, openAIConnector(d.URL(), input, ""))

	// The documented request and the documented answer's shape.
	sub := mustML(t, sc, 200, "POST", "/_plugins/_ml/models/"+model+"/_batch_predict", `{"parameters":{"model":"text-embedding-3-large"}}`)
	taskID, _ := sub["task_id"].(string)
	job, _ := sub["remote_job"].(map[string]any)
	if taskID == "" || sub["status"] != "CREATED" || job["status"] != "validating" || !strings.HasPrefix(fmt.Sprint(job["id"]), "batch_") {
		t.Fatalf("_batch_predict answer = %v", sub)
	}
	if job["input_file_id"] != input || job["endpoint"] != "/v1/embeddings" {
		t.Errorf("the batch was not created from the connector's parameters: %v", job)
	}

	task := rawTask(t, prefix, taskID)
	for k, want := range map[string]any{"model_id": model, "task_type": "BATCH_PREDICTION", "function_name": "REMOTE",
		"state": "RUNNING", "input_type": "REMOTE", "is_async": false} {
		if task[k] != want {
			t.Errorf("stored task %s = %v, want %v", k, task[k], want)
		}
	}

	// Only the poller talks to the provider from here on.
	clock.Advance(time.Minute)
	waitTask(t, prefix, taskID, "in_progress", func(task map[string]any) bool { return remoteStatus(task) == "in_progress" })
	clock.Advance(2 * time.Minute)
	task = waitTask(t, prefix, taskID, "COMPLETED", func(task map[string]any) bool { return task["state"] == "COMPLETED" })
	job = task["remote_job"].(map[string]any)
	counts, _ := job["request_counts"].(map[string]any)
	if remoteStatus(task) != "completed" || fmt.Sprint(counts) != "map[completed:3 failed:0 total:3]" ||
		!strings.HasPrefix(fmt.Sprint(job["output_file_id"]), "file-") || task["progress"] != 1.0 {
		t.Errorf("completed task = %v", task)
	}

	// A finished task is answered from the index: no provider call.
	before := d.Requests("batches.retrieve")
	got := mustML(t, sc, 200, "GET", "/_plugins/_ml/tasks/"+taskID, "")
	if got["state"] != "COMPLETED" || d.Requests("batches.retrieve") != before {
		t.Errorf("GET of a finished task: state %v, %d provider calls", got["state"], d.Requests("batches.retrieve")-before)
	}
	if _, leaked := got["batch"]; leaked {
		t.Errorf("GET task shows the sidecar's bookkeeping: %v", got)
	}
	if strings.Contains(jsonString(got), openAIKey) || strings.Contains(rawIndexDocs(t, prefix+"tasks"), openAIKey) {
		t.Error("the provider key is visible in a task")
	}

	// Cancel through the documented route.
	second := mustML(t, sc, 200, "POST", "/_plugins/_ml/models/"+model+"/_batch_predict", `{"parameters":{"model":"text-embedding-3-large"}}`)["task_id"].(string)
	if ok := mustML(t, sc, 200, "POST", "/_plugins/_ml/tasks/"+second+"/_cancel_batch", ""); ok["status"] != "OK" || len(ok) != 1 {
		t.Errorf("_cancel_batch answer = %v", ok)
	}
	if s := rawTask(t, prefix, second)["state"]; s != "CANCELLING" {
		t.Errorf("state right after cancel = %v, want CANCELLING", s)
	}
	wantError(t, mustML(t, sc, 409, "DELETE", "/_plugins/_ml/tasks/"+second, ""), 409, "exception", "Task cannot be deleted in running state")
	clock.Advance(2 * time.Minute)
	waitTask(t, prefix, second, "CANCELLED", func(task map[string]any) bool { return task["state"] == "CANCELLED" })
	mustML(t, sc, 200, "DELETE", "/_plugins/_ml/tasks/"+second, "")

	// A broken input line: the provider fails the batch, the task says why.
	bad := uploadBatchInput(t, d, embeddingLine("ok", "x"), `{"custom_id":"bad","method":"POST"`)
	third := mustML(t, sc, 200, "POST", "/_plugins/_ml/models/"+model+"/_batch_predict",
		`{"parameters":{"input_file_id":"`+bad+`"}}`)["task_id"].(string)
	clock.Advance(2 * time.Minute)
	failed := waitTask(t, prefix, third, "FAILED", func(task map[string]any) bool { return task["state"] == "FAILED" })
	if errs := fmt.Sprint(failed["remote_job"].(map[string]any)["errors"]); !strings.Contains(errs, "line") {
		t.Errorf("failed task's remote_job.errors = %v, want the provider's errors", errs)
	}

	// The limit counts open tasks for real: fill it, then one more is refused.
	for i := 0; i < 3; i++ {
		mustML(t, sc, 200, "POST", "/_plugins/_ml/models/"+model+"/_batch_predict", `{"parameters":{}}`)
	}
	wantError(t, mustML(t, sc, 429, "POST", "/_plugins/_ml/models/"+model+"/_batch_predict", `{"parameters":{}}`),
		429, "status_exception", "Exceeded maximum limit for BATCH_PREDICTION tasks")

	// _search finds batch tasks, without the bookkeeping.
	res := mustML(t, sc, 200, "POST", "/_plugins/_ml/tasks/_search", `{"query":{"term":{"task_type":"BATCH_PREDICTION"}},"size":100}`)
	hits := res["hits"].(map[string]any)["hits"].([]any)
	if len(hits) != 5 {
		t.Errorf("batch tasks found = %d, want 5", len(hits))
	}
	if strings.Contains(jsonString(res), `"batch":{`) || strings.Contains(jsonString(res), "lease_owner") {
		t.Errorf("task search shows the bookkeeping")
	}
	if got := sc.metric(t, "mlsidecar_batch_submissions_total", map[string]string{"result": "ok"}); got != 6 {
		t.Errorf("submissions metric = %v, want 6", got)
	}
}

// Given an open batch task, when its provider fails, then GET answers the
// stored task with an error field instead of failing, and the task stays
// readable after its model and connector are deleted.
func TestBatchTaskOutlivesItsModelAndSurvivesProviderErrors(t *testing.T) {
	const prefix = ".e2e-batch-life-"
	d, clock := batchDouble(t)
	sc := startSidecar(t, withArgs("--index-prefix", prefix, "--batch-poll-interval", "1h")...)
	input := uploadBatchInput(t, d, embeddingLine("a", "a"))
	cid := mustML(t, sc, 200, "POST", "/_plugins/_ml/connectors/_create", openAIConnector(d.URL(), input, ""))["connector_id"].(string)
	model := mustML(t, sc, 200, "POST", "/_plugins/_ml/models/_register?deploy=true",
		`{"name":"life","function_name":"remote","connector_id":"`+cid+`"}`)["model_id"].(string)
	taskID := mustML(t, sc, 200, "POST", "/_plugins/_ml/models/"+model+"/_batch_predict", `{"parameters":{}}`)["task_id"].(string)

	d.Faults.Inject("batches.retrieve", faultStatus(500))
	got := mustML(t, sc, 200, "GET", "/_plugins/_ml/tasks/"+taskID, "")
	if got["state"] != "RUNNING" || !strings.Contains(fmt.Sprint(got["error"]), "Error from remote service") {
		t.Errorf("GET while the provider fails = %v, want the stored task with an error", got)
	}

	mustML(t, sc, 200, "POST", "/_plugins/_ml/models/"+model+"/_undeploy", "")
	mustML(t, sc, 200, "DELETE", "/_plugins/_ml/models/"+model, "")
	mustML(t, sc, 200, "DELETE", "/_plugins/_ml/connectors/"+cid, "")
	clock.Advance(3 * time.Minute)
	got = mustML(t, sc, 200, "GET", "/_plugins/_ml/tasks/"+taskID, "")
	if got["state"] != "COMPLETED" {
		t.Errorf("GET after the model and connector are gone = %v, want a live refresh to COMPLETED", got)
	}
}

// Given a connector with only predict and batch_predict actions, named an
// OpenAI connector by its mlsidecar.provider parameter (the double's URL says
// nothing), when jobs are followed and cancelled through the 2.18+ route,
// then ML Commons' derived status and cancel actions are used.
func TestBatchDerivedActions(t *testing.T) {
	const prefix = ".e2e-batch-derived-"
	d, clock := batchDouble(t)
	sc := startSidecar(t, withArgs("--index-prefix", prefix, "--batch-poll-interval", "200ms")...)
	input := uploadBatchInput(t, d, embeddingLine("a", "a"))
	connector := fmt.Sprintf(`{"name":"derived","version":"1","protocol":"http",
	  "parameters":{"model":"text-embedding-ada-002","input_file_id":%q,"endpoint":"/v1/embeddings","mlsidecar.provider":"openai"},
	  "credential":{"openAI_key":%q},
	  "actions":[
	    {"action_type":"predict","method":"POST","url":"%s/v1/embeddings","headers":{"Authorization":"Bearer ${credential.openAI_key}"},
	     "request_body":"{ \"input\": ${parameters.input}, \"model\": \"${parameters.model}\" }"},
	    {"action_type":"batch_predict","method":"POST","url":"%s/v1/batches","headers":{"Authorization":"Bearer ${credential.openAI_key}"},
	     "request_body":"{ \"input_file_id\": \"${parameters.input_file_id}\", \"endpoint\": \"${parameters.endpoint}\", \"completion_window\": \"24h\" }"}]}`,
		input, openAIKey, d.URL(), d.URL())
	model := deployModel(t, sc, connector)

	done := mustML(t, sc, 200, "POST", "/_plugins/_ml/models/"+model+"/_batch_predict", `{"parameters":{}}`)["task_id"].(string)
	cancelled := mustML(t, sc, 200, "POST", "/_plugins/_ml/models/"+model+"/_batch_predict", `{"parameters":{}}`)["task_id"].(string)
	if ok := mustML(t, sc, 200, "POST", "/_plugins/_ml/tasks/"+cancelled+"/_cancel", ""); ok["status"] != "OK" {
		t.Errorf("_cancel answer = %v", ok)
	}
	if d.Requests("batches.cancel") != 1 {
		t.Errorf("the derived cancel action made %d cancel calls, want 1", d.Requests("batches.cancel"))
	}
	clock.Advance(3 * time.Minute)
	waitTask(t, prefix, done, "COMPLETED through the derived status action", func(task map[string]any) bool { return task["state"] == "COMPLETED" })
	waitTask(t, prefix, cancelled, "CANCELLED", func(task map[string]any) bool { return task["state"] == "CANCELLED" })
}
