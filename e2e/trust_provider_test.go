package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mlsidecar/mlsidecar/e2e/providers/fault"
	"github.com/mlsidecar/mlsidecar/e2e/providers/openai"
)

// predictRaw calls _predict and returns the status and the answer's bytes.
func predictRaw(t *testing.T, sc *sidecar, model string) (int, string) {
	t.Helper()
	status, _, b := do(t, "POST", sc.url+"/_plugins/_ml/models/"+model+"/_predict",
		stringsReader(`{"parameters":{"input":["hello"]}}`), map[string]string{"Content-Type": "application/json"})
	return status, string(b)
}

// Given a provider that echoes the request headers in its error body, and a
// connector whose header has a parameter cycle, when _predict is called,
// then neither the answer nor any log line holds the key: the echoed key is
// [REDACTED] in "Error from remote service: ...", and the cycle's reason
// names the header, not its text.
func TestTrustProviderNoKeyInErrors(t *testing.T) {
	d := openai.New(openai.Options{APIKey: openAIKey, Dim: 8})
	d.Start()
	t.Cleanup(d.Close)
	sc := startSidecar(t, withArgs("--index-prefix", ".e2e-tprov-key-")...)

	model := deployModel(t, sc, openAIConnector(d.URL(), "file-unused", `{"max_retry_times": 0}`))
	d.Faults.Inject("embeddings", fault.Fault{Status: 401, EchoHeaders: true})
	status, body := predictRaw(t, sc, model)
	if status != 401 || !strings.Contains(body, "Error from remote service") || !strings.Contains(body, "[REDACTED]") {
		t.Errorf("echoing provider: %d %s, want its 401 with the key redacted", status, body)
	}
	if strings.Contains(body, openAIKey) {
		t.Errorf("the answer holds the key: %s", body)
	}

	cycle := strings.Replace(openAIConnector(d.URL(), "file-unused", ""),
		`"Authorization": "Bearer ${credential.openAI_key}"`, `"Authorization": "Bearer ${credential.openAI_key} ${parameters.a}"`, 1)
	cycle = strings.Replace(cycle, `"endpoint": "/v1/embeddings"`, `"endpoint": "/v1/embeddings", "a": "${parameters.b}", "b": "${parameters.a}"`, 1)
	model = deployModel(t, sc, cycle)
	status, body = predictRaw(t, sc, model)
	if status != 500 || !strings.Contains(body, "Infinite loop in property interpolation of header Authorization") {
		t.Errorf("header cycle: %d %s, want 500 naming the header", status, body)
	}
	if strings.Contains(body, openAIKey) || strings.Contains(body, "Bearer") {
		t.Errorf("the cycle's answer shows the header's text: %s", body)
	}
	if strings.Contains(sc.logs.String(), openAIKey) {
		t.Errorf("the logs hold the key:\n%s", sc.logs)
	}
}

// Given two batch tasks, one whose status endpoint sends half a body and
// stalls, when the clock of the provider moves on, then the only poll worker
// (--batch-poll-concurrency 1) keeps refreshing the healthy task through
// each of its states to COMPLETED, a user GET of the stalled task answers
// with the stored task and an error, and the stalled polls count as
// failures.
func TestTrustProviderStalledStatusDoesNotStopThePoller(t *testing.T) {
	const prefix = ".e2e-tprov-stall-"
	d, clock := batchDouble(t)
	sc := startSidecar(t, withArgs("--index-prefix", prefix, "--batch-poll-interval", "200ms", "--batch-poll-concurrency", "1")...)
	input := uploadBatchInput(t, d, embeddingLine("a", "a"))
	// Each attempt may take 2 s (connect + read), so a stall ends in 2 s.
	model := deployModel(t, sc, openAIConnector(d.URL(), input, `{"connection_timeout": 1, "read_timeout": 1, "max_retry_times": 0}`))

	submit := func() (task, job string) {
		sub := mustML(t, sc, 200, "POST", "/_plugins/_ml/models/"+model+"/_batch_predict", `{"parameters":{}}`)
		return sub["task_id"].(string), sub["remote_job"].(map[string]any)["id"].(string)
	}
	stalled, stalledJob := submit()
	healthy, _ := submit()
	d.Faults.Inject("batches.retrieve", fault.Fault{Stall: true, Times: -1, PathContains: stalledJob})

	// The healthy task is refreshed through every state while the stalled
	// one keeps failing.
	for _, want := range []string{"in_progress", "finalizing", "completed"} {
		clock.Advance(time.Minute)
		waitTask(t, prefix, healthy, "the healthy task to reach "+want, func(task map[string]any) bool { return remoteStatus(task) == want })
	}
	waitTask(t, prefix, healthy, "the healthy task COMPLETED", func(task map[string]any) bool { return task["state"] == "COMPLETED" })
	// A caller's GET of the stalled task answers (do gives up after a
	// minute): the stored task, with an error. It refreshes live while the
	// task is RUNNING; an UNREACHABLE one says why it is.
	got := mustML(t, sc, 200, "GET", "/_plugins/_ml/tasks/"+stalled, "")
	if (got["state"] != "RUNNING" && got["state"] != "UNREACHABLE") || !strings.Contains(fmt.Sprint(got["error"]), "did not answer in time") {
		t.Errorf("GET of the stalled task = %v, want the stored task with a timeout error", got)
	}
	task := waitTask(t, prefix, stalled, "a stalled poll counted as a failure", func(task map[string]any) bool {
		b, _ := task["batch"].(map[string]any)
		n, _ := b["poll_failures"].(float64)
		return n >= 1 || task["state"] == "UNREACHABLE"
	})
	if task["state"] == "COMPLETED" {
		t.Errorf("the stalled task completed: %v", task)
	}
}

// Given provider job ids that need escaping ("x?admin=1") or look like a
// template ("${parameters.id}"), when the tasks are read and cancelled, then
// the status and cancel calls reach exactly those batches (the ids are
// literals, path-escaped), with no 500 and no call to another path.
func TestTrustProviderJobIDsAreLiterals(t *testing.T) {
	const prefix = ".e2e-tprov-ids-"
	d, _ := batchDouble(t)
	sc := startSidecar(t, withArgs("--index-prefix", prefix, "--batch-poll-interval", "1h")...)
	input := uploadBatchInput(t, d, embeddingLine("a", "a"))
	model := deployModel(t, sc, openAIConnector(d.URL(), input, ""))

	for _, id := range []string{"x?admin=1", "${parameters.id}", "../../files"} {
		t.Run(id, func(t *testing.T) {
			d.SetNextBatchIDs(id)
			sub := mustML(t, sc, 200, "POST", "/_plugins/_ml/models/"+model+"/_batch_predict", `{"parameters":{}}`)
			task := sub["task_id"].(string)
			if got := sub["remote_job"].(map[string]any)["id"]; got != id {
				t.Fatalf("the double made job %v, want %q", got, id)
			}

			// The worker may refresh this or an earlier cancelled task at any
			// moment (a cancel asks it to look again soon): count what no
			// status or cancel call explains, which must be nothing.
			retrieves, cancels, all := d.Requests("batches.retrieve"), d.Requests("batches.cancel"), d.Requests("*")
			got := mustML(t, sc, 200, "GET", "/_plugins/_ml/tasks/"+task, "")
			if got["error"] != nil || d.Requests("batches.retrieve") == retrieves {
				t.Errorf("GET = %v after %d status calls, want a refresh from batch %q", got, d.Requests("batches.retrieve")-retrieves, id)
			}
			if ok := mustML(t, sc, 200, "POST", "/_plugins/_ml/tasks/"+task+"/_cancel", ""); ok["status"] != "OK" {
				t.Errorf("_cancel = %v", ok)
			}
			if n := d.Requests("batches.cancel") - cancels; n != 1 {
				t.Errorf("the double's cancel of %q was called %d times, want 1", id, n)
			}
			other := (d.Requests("*") - all) - (d.Requests("batches.retrieve") - retrieves) - (d.Requests("batches.cancel") - cancels)
			if other != 0 {
				t.Errorf("the double saw %d requests that were neither a status nor a cancel call", other)
			}
			got = mustML(t, sc, 200, "GET", "/_plugins/_ml/tasks/"+task, "")
			if remoteStatus(got) != "cancelling" {
				t.Errorf("after _cancel the job is %q, want cancelling", remoteStatus(got))
			}
		})
	}
}

// Given connectors whose mlsidecar.provider names are of the callers'
// choosing, when they are used, then /metrics labels them "other"; and
// given a provider that throttles with a Retry-After beyond the retry
// budget, the caller gets the provider's 429 and its body, not a 504.
func TestTrustProviderMetricLabelsAndRetryAfter(t *testing.T) {
	d := openai.New(openai.Options{APIKey: openAIKey, Dim: 8})
	d.Start()
	t.Cleanup(d.Close)
	sc := startSidecar(t, withArgs("--index-prefix", ".e2e-tprov-metrics-")...)

	for i := range 5 {
		c := strings.Replace(openAIConnector(d.URL(), "file-unused", ""), `"endpoint": "/v1/embeddings"`,
			fmt.Sprintf(`"endpoint": "/v1/embeddings", "mlsidecar.provider": "acme-%d"`, i), 1)
		if status, body := predictRaw(t, sc, deployModel(t, sc, c)); status != 200 {
			t.Fatalf("predict: %d %s", status, body)
		}
	}
	_, _, metrics := do(t, "GET", sc.internalURL+"/metrics", nil, nil)
	if strings.Contains(string(metrics), "acme-") {
		t.Errorf("/metrics has caller-chosen provider labels")
	}
	if n := sc.metric(t, "mlsidecar_remote_requests_total", map[string]string{"provider": "other", "action": "predict"}); n != 5 {
		t.Errorf("remote requests{provider=other} = %v, want 5", n)
	}

	model := deployModel(t, sc, openAIConnector(d.URL(), "file-unused",
		`{"max_retry_times": 3, "retry_timeout_seconds": 2, "retry_backoff_millis": 10}`))
	d.Faults.Inject("embeddings", fault.Fault{Status: 429, RetryAfter: 120 * time.Second, Times: -1,
		Body: `{"error":{"message":"Rate limit reached, try again in 2 minutes","type":"requests"}}`})
	status, body := predictRaw(t, sc, model)
	if status != 429 || !strings.Contains(body, "Rate limit reached") {
		t.Errorf("throttled beyond the budget: %d %s, want the provider's 429 and its body", status, body)
	}
}
