package mlcommons

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/remote"
)

// providerOf answers OpenAI's embeddings and batches calls and counts them
// by URL path.
func providerOf(t *testing.T) (doerFunc, func(string) int) {
	var mu sync.Mutex
	calls := map[string]int{}
	return func(_ context.Context, c remote.Call) (*remote.Response, error) {
			mu.Lock()
			defer mu.Unlock()
			path := c.URL[strings.Index(c.URL, "/v1/"):]
			calls[path]++
			var v any
			switch path {
			case "/v1/batches":
				v = map[string]any{"id": "batch_abc", "object": "batch", "status": "validating"}
			case "/v1/embeddings":
				v = map[string]any{"object": "list", "data": []any{map[string]any{"object": "embedding", "index": 0, "embedding": []float64{0.5, 0.25}}}}
			default:
				t.Errorf("unexpected provider call %s %s", c.Method, c.URL)
			}
			body, err := json.Marshal(v)
			return &remote.Response{StatusCode: http.StatusOK, Body: body}, err
		}, func(path string) int {
			mu.Lock()
			defer mu.Unlock()
			return calls[path]
		}
}

// The body's action_type wins over the path's, as in ML Commons 2.19:
// _predict with batch_predict starts a batch job.
func TestPredictBodyActionType(t *testing.T) {
	doer, calls := providerOf(t)
	a := newTestAPIWith(t, testOptions{remote: doer})
	model := a.registerModel(t, "m", a.createConnector(t, batchConnector()), "?deploy=true")

	res := a.mustDo(t, http.MethodPost, modelsPath+model+"/_predict", `{"action_type":"batch_predict","parameters":{"input_file_id":"f"}}`)
	task, _ := res["task_id"].(string)
	job, _ := res["remote_job"].(map[string]any)
	if task == "" || res["status"] != "CREATED" || job["id"] != "batch_abc" {
		t.Fatalf("_predict with action_type batch_predict answered %v, want a batch task", res)
	}
	if dlq, ok := job["dlq"]; !ok || dlq != nil {
		t.Errorf("remote_job %v, want \"dlq\": null", job)
	}
	if stored := decodeRaw[indexstore.Task](t, "task", a.store.tasks.Raw(task)); stored.TaskType != indexstore.TaskBatchPrediction {
		t.Errorf("stored task type %q, want BATCH_PREDICTION", stored.TaskType)
	}
	if n := calls("/v1/batches"); n != 1 {
		t.Errorf("batch calls %d, want 1", n)
	}

	// The body's action is the request's only: the path's holds for the next.
	if res := a.mustDo(t, http.MethodPost, modelsPath+model+"/_predict", `{"parameters":{"input":["x"]}}`); res["inference_results"] == nil {
		t.Errorf("_predict after a batch_predict body answered %v, want inference_results", res)
	}
	res = a.mustDo(t, http.MethodPost, modelsPath+model+"/_batch_predict", `{"action_type":"PREDICT","parameters":{"input":["x"]}}`)
	if _, ok := res["inference_results"]; !ok {
		t.Errorf("_batch_predict with action_type PREDICT answered %v, want inference_results", res)
	}
	if n := calls("/v1/embeddings"); n != 2 {
		t.Errorf("embeddings calls %d, want 2", n)
	}

	for _, route := range []string{"/_predict", "/_batch_predict"} {
		wantError(t, a.do(t, http.MethodPost, modelsPath+model+route, ``), 400, "parse_exception", "request body is required")
	}
	wantError(t, a.do(t, http.MethodPost, modelsPath+model+"/_predict", `{"action_type":"foo","parameters":{}}`),
		400, "illegal_argument_exception", "Wrong Action Type of foo")
	wantError(t, a.do(t, http.MethodPost, modelsPath+model+"/_predict", `{"action_type":"execute","parameters":{}}`),
		400, "illegal_argument_exception", "Wrong action type EXECUTE for a prediction: only predict and batch_predict can be asked for")
}

func TestBatchPredictDLQ(t *testing.T) {
	doer, calls := providerOf(t)
	a := newTestAPIWith(t, testOptions{remote: doer})
	model := a.registerModel(t, "m", a.createConnector(t, batchConnector()), "?deploy=true")
	path := modelsPath + model + "/_batch_predict"
	for _, tt := range []struct{ dlq, reason string }{
		{`{"bucket":"b1"}`, "DLQ bucketName or region cannot be null"},
		{`{"region":"us-east-1"}`, "DLQ bucketName or region cannot be null"},
		{`{}`, "DLQ bucketName or region cannot be null"},
		{`{"bucket":"Bad_Bucket","region":"us-east-1"}`, "DLQ bucket [Bad_Bucket] is not a valid S3 bucket name"},
		{`{"bucket":"my-dlq","region":"mars"}`, "DLQ region [mars] is not a valid AWS region"},
	} {
		wantError(t, a.do(t, http.MethodPost, path, `{"parameters":{"input_file_id":"f"},"dlq":`+tt.dlq+`}`),
			400, "illegal_argument_exception", tt.reason)
	}
	if n := calls("/v1/batches"); n != 0 {
		t.Fatalf("refused dlqs made %d batch calls, want 0", n)
	}
	res := a.mustDo(t, http.MethodPost, path, `{"parameters":{"input_file_id":"f"},"dlq":{"bucket":"my-dlq","region":"us-west-2"}}`)
	want := map[string]any{"bucket": "my-dlq", "region": "us-west-2"}
	if got := res["remote_job"].(map[string]any)["dlq"]; !jsonEqual(got, want) {
		t.Errorf("answered dlq %v, want %v", got, want)
	}
	stored := decodeRaw[indexstore.Task](t, "task", a.store.tasks.Raw(res["task_id"].(string)))
	if got := stored.RemoteJob["dlq"]; !jsonEqual(got, want) {
		t.Errorf("stored dlq %v, want %v", got, want)
	}
}
