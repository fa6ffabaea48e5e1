package batch_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/batch"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
	"github.com/mlsidecar/mlsidecar/mlcommons/remote"
)

// errLost is a submission whose answer never came: the provider may have
// made the job.
var errLost = fmt.Errorf("%w: %w", remote.ErrUnanswered, mlerr.Status(http.StatusGatewayTimeout, "Remote service did not answer in time"))

// answers answers the provider's calls in turn, the last one from then on.
func answers(fs ...doFunc) doFunc {
	i := 0
	return func(ctx context.Context, c remote.Call) (*remote.Response, error) {
		f := fs[min(i, len(fs)-1)]
		i++
		return f(ctx, c)
	}
}

// useProvider makes the test's connector a provider's batch connector.
func (e *env) useProvider(name, url, body string) {
	e.t.Helper()
	c := *e.connector
	c.Parameters = map[string]string{"mlsidecar.provider": name}
	c.Actions = append([]indexstore.ConnectorAction(nil), c.Actions...)
	c.Actions[1].URL, c.Actions[1].RequestBody = url, body
	e.connector = &c
	e.models.connectors.Put(connectorID, &c)
}

func TestSubmitWritesTheTaskFirst(t *testing.T) {
	e := newEnv(t, settings())
	var during *indexstore.Task
	var body string
	e.provider(func(ctx context.Context, c remote.Call) (*remote.Response, error) {
		hits := e.tasks.Docs()
		if len(hits) == 1 {
			during = hits[0].Doc
		}
		body = string(c.Body)
		return ok(e.submitBody)(ctx, c)
	})
	id := e.submit()

	if during == nil {
		t.Fatal("no task was stored when the provider was called")
	}
	if during.State != indexstore.TaskCreated || during.RemoteJob != nil || during.Batch.Submission == nil ||
		during.Batch.Submission.Key != id || during.Batch.Submission.Parameters["input_file_id"] != "file-abc" {
		t.Errorf("during the call got task %+v, submission %+v; want CREATED, no job, the caller's parameters and key %s",
			during, during.Batch.Submission, id)
	}
	if during.Batch.LeaseOwner != nodeID || during.Batch.LeaseUntil <= t0.Add(time.Minute).UnixMilli() {
		t.Errorf("during the call got lease %q until %d, want this node's outlasting the call", during.Batch.LeaseOwner, during.Batch.LeaseUntil)
	}
	if want := `"metadata":{"mlsidecar_task_id":"` + id + `"}`; !strings.Contains(body, want) {
		t.Errorf("submitted body %s, want %s in it", body, want)
	}
	got := e.task(id)
	if got.State != indexstore.TaskRunning || got.Batch.Submission != nil || got.Batch.LeaseOwner != "" || got.RemoteJob["id"] != jobID {
		t.Errorf("after the call got task %+v (batch %+v), want RUNNING with the job, no submission or lease", got, got.Batch)
	}
}

// An unanswered submission is CREATED for the caller; the worker then finds
// the job by its key in the provider's list, and submits nothing again.
func TestUnansweredSubmissionFoundByTheWorker(t *testing.T) {
	e := newEnv(t, settings())
	var sent string
	e.provider(func(_ context.Context, c remote.Call) (*remote.Response, error) {
		sent = string(c.Body)
		return nil, errLost
	})
	sub, err := e.svc.Submit(context.Background(), modelID, map[string]any{"input_file_id": "file-abc"}, nil, nil)
	if err != nil || sub.TaskID == "" || sub.RemoteJob != nil {
		t.Fatalf("got %+v, %v; want a task id and no job", sub, err)
	}
	id := sub.TaskID
	got := e.task(id)
	if got.State != indexstore.TaskCreated || got.Batch.Submission == nil || got.Batch.LeaseOwner != "" || got.Batch.NextPoll > t0.UnixMilli() {
		t.Fatalf("got task %+v (batch %+v), want CREATED, due now, no lease", got, got.Batch)
	}
	if sent == "" {
		t.Fatal("nothing was submitted")
	}

	// Its status cannot be asked yet, and it cannot be cancelled.
	n := len(e.Calls())
	if g, err := e.svc.Get(context.Background(), id); err != nil || g.State != indexstore.TaskCreated {
		t.Errorf("Get: %+v, %v", g, err)
	}
	assertMLError(t, e.svc.Cancel(context.Background(), id), http.StatusConflict, "exception", "The batch job is still being submitted. Try after some time.")
	if calls := e.callsSince(n); len(calls) != 0 {
		t.Errorf("Get and Cancel called the provider: %+v", calls)
	}

	listed := `{"object":"list","has_more":false,"last_id":"batch_1","data":[` +
		`{"id":"batch_0","object":"batch","status":"completed","created_at":1,"metadata":null},` +
		`{"id":"batch_1","object":"batch","status":"in_progress","created_at":` + fmt.Sprint(t0.Unix()) + `,"metadata":{"mlsidecar_task_id":"` + id + `"}}]}`
	e.provider(ok(listed))
	e.cycle(batch.NewWorker(e.svc, owner))

	calls := e.callsSince(n)
	if len(calls) != 1 || calls[0].Method != http.MethodGet || calls[0].URL != "https://api.openai.com/v1/batches?limit=100" ||
		calls[0].Headers["Authorization"] != "Bearer "+apiKey {
		t.Fatalf("got calls %+v, want one authorized GET of the batches", calls)
	}
	got = e.task(id)
	if got.State != indexstore.TaskRunning || got.RemoteJob["id"] != "batch_1" || got.Batch.Submission != nil || got.Batch.LeaseOwner != "" {
		t.Errorf("got task %+v (batch %+v), want RUNNING with batch_1", got, got.Batch)
	}
	if n := metricValue(t, e.reg, "mlsidecar_batch_submissions_total", map[string]string{"provider": "openai", "result": "resumed"}); n != 1 {
		t.Errorf("got %v resumed submissions counted, want 1", n)
	}
}

// A replica died after writing the task: when its lease ends, the worker
// lists two pages, finds no job and submits it under the same key.
func TestInterruptedSubmissionResubmitted(t *testing.T) {
	e := newEnv(t, settings())
	e.provider(func(_ context.Context, c remote.Call) (*remote.Response, error) { return nil, errLost })
	id := e.submitLost()
	first := e.Calls()[0]
	// As if the submitting replica had died holding the lease.
	dying := e.task(id)
	dying.Batch.LeaseOwner, dying.Batch.LeaseUntil = "dead-replica", e.clock.Now().Add(time.Minute).UnixMilli()
	e.tasks.Put(id, dying)
	w := batch.NewWorker(e.svc, owner)
	n := len(e.Calls())
	e.cycle(w)
	if calls := e.callsSince(n); len(calls) != 0 {
		t.Fatalf("a leased submission was resumed: %+v", calls)
	}

	e.clock.Advance(time.Minute)
	page1 := `{"object":"list","has_more":true,"last_id":"batch_9","data":[{"id":"batch_9","created_at":` + fmt.Sprint(t0.Unix()+5) + `,"metadata":{}}]}`
	page2 := `{"object":"list","has_more":false,"last_id":"batch_8","data":[{"id":"batch_8","created_at":` + fmt.Sprint(t0.Unix()) + `}]}`
	e.provider(answers(ok(page1), ok(page2), ok(e.submitBody)))
	e.cycle(w)

	calls := e.callsSince(n)
	if len(calls) != 3 {
		t.Fatalf("got %d calls %+v, want two list pages and one submission", len(calls), calls)
	}
	if calls[1].URL != "https://api.openai.com/v1/batches?limit=100&after=batch_9" {
		t.Errorf("second page URL %s", calls[1].URL)
	}
	if calls[2].Method != http.MethodPost || calls[2].URL != first.URL || string(calls[2].Body) != string(first.Body) {
		t.Errorf("resubmitted %s %s %s, want the first submission %s %s %s", calls[2].Method, calls[2].URL, calls[2].Body, first.Method, first.URL, first.Body)
	}
	got := e.task(id)
	if got.State != indexstore.TaskRunning || got.RemoteJob["id"] != jobID || got.Batch.Submission != nil {
		t.Errorf("got task %+v, want RUNNING with %s", got, jobID)
	}
	if n := metricValue(t, e.reg, "mlsidecar_batch_lease_takeovers_total", nil); n != 1 {
		t.Errorf("got %v takeovers counted, want 1", n)
	}
}

// submitLost submits with the provider's answer lost and answers the task.
func (e *env) submitLost() string {
	e.t.Helper()
	sub, err := e.svc.Submit(context.Background(), modelID, map[string]any{"input_file_id": "file-abc"}, nil, nil)
	if err != nil || sub.RemoteJob != nil {
		e.t.Fatalf("Submit: %+v, %v; want a task without a job", sub, err)
	}
	return sub.TaskID
}

func TestResumedBedrockSubmissionRepeatsItsToken(t *testing.T) {
	e := newEnv(t, settings())
	e.useProvider("bedrock", "https://bedrock.us-east-1.amazonaws.com/model-invocation-job",
		`{"jobName": "${parameters.job}", "modelId": "m"}`)
	arn := "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abc123def456"
	e.provider(answers(fail(errLost), ok(`{"jobArn":"`+arn+`"}`)))
	sub, err := e.svc.Submit(context.Background(), modelID, map[string]any{"job": "nightly"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.cycle(batch.NewWorker(e.svc, owner))
	calls := e.Calls()
	if len(calls) != 2 || string(calls[0].Body) != string(calls[1].Body) || !strings.Contains(string(calls[1].Body), `"clientRequestToken":"mlsidecar-`) {
		t.Fatalf("got calls %+v, want the same body with its clientRequestToken twice", calls)
	}
	got := e.task(sub.TaskID)
	if got.State != indexstore.TaskRunning || got.RemoteJob["jobArn"] != arn {
		t.Errorf("got task %+v, want RUNNING with %s", got, arn)
	}
}

func TestResumedSageMakerSubmissionAdoptsItsJob(t *testing.T) {
	e := newEnv(t, settings())
	e.useProvider("sagemaker", "https://api.sagemaker.us-east-1.amazonaws.com/CreateTransformJob",
		`{"TransformJobName": "${parameters.name}", "ModelName": "m"}`)
	arn := "arn:aws:sagemaker:us-east-1:123456789012:transform-job/nightly-7"
	inUse := mlerr.Provider(http.StatusBadRequest, "%s", `Error from remote service: {"__type":"ResourceInUse","message":"Job name must be unique within an AWS account and region, and a job with this name already exists (`+arn+`)"}`)
	e.provider(answers(fail(errLost), fail(inUse)))
	sub, err := e.svc.Submit(context.Background(), modelID, map[string]any{"name": "nightly-7"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if k := e.task(sub.TaskID).Batch.Submission.Key; k != "nightly-7" {
		t.Errorf("got key %q, want the job name", k)
	}
	e.cycle(batch.NewWorker(e.svc, owner))
	got := e.task(sub.TaskID)
	if got.State != indexstore.TaskRunning || got.RemoteJob["TransformJobArn"] != arn {
		t.Errorf("got task %+v, want RUNNING with %s", got, arn)
	}
}

// Cohere has no idempotency key: an unanswered submission fails its task
// saying why, and is never sent again.
func TestUnansweredSubmissionWithoutKey(t *testing.T) {
	e := newEnv(t, settings())
	e.useProvider("cohere", "https://api.cohere.com/v1/embed-jobs", `{"dataset_id": "${parameters.dataset}"}`)
	e.provider(fail(errLost))
	_, err := e.svc.Submit(context.Background(), modelID, map[string]any{"dataset": "d1"}, nil, nil)
	if !errors.Is(err, remote.ErrUnanswered) {
		t.Fatalf("got %v, want the lost answer", err)
	}
	hits := e.tasks.Docs()
	if len(hits) != 1 {
		t.Fatalf("got %d tasks, want 1", len(hits))
	}
	got := hits[0].Doc
	if got.State != indexstore.TaskFailed || !strings.Contains(got.Error, "cohere has no idempotency key") || got.Batch.Submission != nil {
		t.Errorf("got task %+v, want FAILED saying cohere has no key", got)
	}
	e.clock.Advance(time.Hour)
	e.cycle(batch.NewWorker(e.svc, owner))
	if n := len(e.Calls()); n != 1 {
		t.Errorf("got %d provider calls, want the one submission", n)
	}
}

func TestResumedSubmissionRefused(t *testing.T) {
	e := newEnv(t, settings())
	refused := mlerr.Provider(http.StatusBadRequest, "%s", `Error from remote service: {"error":{"message":"Invalid input_file_id"}}`)
	e.provider(answers(fail(errLost), ok(`{"object":"list","data":[],"has_more":false}`), fail(refused)))
	id := e.submitLost()
	e.cycle(batch.NewWorker(e.svc, owner))
	got := e.task(id)
	if got.State != indexstore.TaskFailed || !strings.Contains(got.Error, "Invalid input_file_id") || got.Batch.Submission != nil {
		t.Errorf("got task %+v, want FAILED with the provider's refusal", got)
	}
}

// A provider that keeps failing is asked again with backoff, and after
// MaxPollFailures in a row the task fails.
func TestResumedSubmissionRetried(t *testing.T) {
	e := newEnv(t, settings())
	e.provider(answers(fail(errLost), fail(errProvider)))
	id := e.submitLost()
	w := batch.NewWorker(e.svc, owner)
	for i := 1; i <= 3; i++ {
		e.cycle(w)
		got := e.task(id)
		if i < 3 && (got.State != indexstore.TaskCreated || got.Batch.Failures != i || got.Batch.NextPoll <= e.clock.Now().UnixMilli()) {
			t.Fatalf("after failure %d got task %+v (batch %+v), want CREATED, %d failures, polled later", i, got, got.Batch, i)
		}
		if i == 3 && (got.State != indexstore.TaskFailed || !strings.Contains(got.Error, "upstream is down")) {
			t.Fatalf("after failure 3 got task %+v, want FAILED with the provider's error", got)
		}
		e.clock.Advance(10 * time.Minute)
	}
}

// A submission the provider refuses leaves no task, as in ML Commons, and
// the refusal reaches the caller.
func TestRefusedSubmissionLeavesNoTask(t *testing.T) {
	e := newEnv(t, settings())
	refused := mlerr.Provider(http.StatusBadRequest, "%s", `Error from remote service: {"error":{"message":"Invalid input_file_id"}}`)
	e.provider(fail(refused))
	_, err := e.svc.Submit(context.Background(), modelID, map[string]any{"input_file_id": "file-abc"}, nil, nil)
	if !errors.Is(err, refused) {
		t.Fatalf("got %v, want the refusal", err)
	}
	if ids := e.tasks.IDs(); len(ids) != 0 {
		t.Errorf("got tasks %v, want none", ids)
	}
}
