package batch_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/indexstore/storetest"
	"github.com/mlsidecar/mlsidecar/mlcommons/batch"
	"github.com/mlsidecar/mlsidecar/mlcommons/connector"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
	"github.com/mlsidecar/mlsidecar/mlcommons/remote"
	"github.com/mlsidecar/mlsidecar/mlcommons/secrets"
)

// clock is a fake clock the test advances.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// taskStore is an in-memory batch.Store answering the named queries the way
// indexstore/queries.go asks them. With lag set, counts see the tasks as of
// the last RefreshTasks, as OpenSearch's searches do.
type taskStore struct {
	*storetest.Repo[indexstore.Task]

	mu        sync.Mutex
	lag       bool
	snapshot  []indexstore.Hit[indexstore.Task]
	refreshes int
}

func newTaskStore() *taskStore { return &taskStore{Repo: storetest.NewRepo[indexstore.Task]()} }

func (s *taskStore) Tasks() indexstore.Repo[indexstore.Task] { return s.Repo }

func (s *taskStore) searchable() []indexstore.Hit[indexstore.Task] {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lag {
		return s.snapshot
	}
	return s.Docs()
}

func (s *taskStore) CountOpenBatchTasks(context.Context) (int64, error) {
	var n int64
	for _, h := range s.searchable() {
		if h.Doc.TaskType == indexstore.TaskBatchPrediction && indexstore.IsOpenState(h.Doc.State) {
			n++
		}
	}
	return n, nil
}

func (s *taskStore) RefreshTasks(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refreshes++
	s.snapshot = s.Docs()
	return nil
}

func (s *taskStore) Refreshes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshes
}

// ScanDueBatchTasks: task_type BATCH_PREDICTION, an open state,
// batch.next_poll <= now and not batch.lease_until > now.
func (s *taskStore) ScanDueBatchTasks(_ context.Context, now time.Time, pageSize int, visit func([]indexstore.Hit[indexstore.Task]) error) error {
	ms := now.UnixMilli()
	var due []indexstore.Hit[indexstore.Task]
	for _, h := range s.Docs() {
		t := h.Doc
		if t.TaskType != indexstore.TaskBatchPrediction || !indexstore.IsOpenState(t.State) || t.Batch == nil ||
			t.Batch.NextPoll > ms || t.Batch.LeaseUntil > ms {
			continue
		}
		due = append(due, h)
	}
	for page := range slices.Chunk(due, pageSize) {
		if err := visit(page); err != nil {
			return err
		}
	}
	return nil
}

func (s *taskStore) CountBatchTasks(context.Context) ([]indexstore.BatchTaskCount, error) {
	counts := map[[2]string]float64{}
	for _, h := range s.Docs() {
		if h.Doc.TaskType == indexstore.TaskBatchPrediction && h.Doc.Batch != nil {
			counts[[2]string{h.Doc.Batch.Provider, h.Doc.State}]++
		}
	}
	var out []indexstore.BatchTaskCount
	for k, n := range counts {
		out = append(out, indexstore.BatchTaskCount{Provider: k[0], State: k[1], Count: n})
	}
	return out, nil
}

// modelStore is connector.Store in memory.
type modelStore struct {
	models     *storetest.Repo[indexstore.Model]
	connectors *storetest.Repo[indexstore.Connector]
}

func (s modelStore) Models() indexstore.Repo[indexstore.Model]         { return s.models }
func (s modelStore) Connectors() indexstore.Repo[indexstore.Connector] { return s.connectors }

// doFunc is a function-type fake of the provider.
type doFunc func(ctx context.Context, c remote.Call) (*remote.Response, error)

func (f doFunc) Do(ctx context.Context, c remote.Call) (*remote.Response, error) { return f(ctx, c) }

func ok(body string) doFunc {
	return func(context.Context, remote.Call) (*remote.Response, error) {
		return &remote.Response{StatusCode: http.StatusOK, Body: []byte(body)}, nil
	}
}

func fail(err error) doFunc {
	return func(context.Context, remote.Call) (*remote.Response, error) { return nil, err }
}

// errProvider is how a provider failure reaches the batch code.
var errProvider = mlerr.Provider(http.StatusServiceUnavailable, "upstream is down")

const (
	modelID     = "model-1"
	connectorID = "conn-1"
	nodeID      = "node-a"
	apiKey      = "sk-test"
	jobID       = "batch_1"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func settings() batch.Settings {
	return batch.Settings{PollInterval: time.Minute, MaxPollFailures: 3, MaxTasks: 5, Concurrency: 2,
		RatePerConnector: 1000, LeaseTTL: 2 * time.Minute, Status: statusRules()}
}

// env is one Service over in-memory stores, a fake clock and a fake
// provider.
type env struct {
	t          *testing.T
	clock      *clock
	tasks      *taskStore
	models     modelStore
	keys       *secrets.Keyring
	connector  *indexstore.Connector // as stored, credential encrypted
	reg        *prometheus.Registry
	svc        *batch.Service
	set        batch.Settings
	submitBody string // what the provider answers to a submission

	mu      sync.Mutex
	answer  doFunc
	calls   []remote.Call
	deploys []string
}

func newEnv(t *testing.T, set batch.Settings) *env {
	t.Helper()
	key, err := secrets.GenerateKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := secrets.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := keys.EncryptMap(map[string]string{"openAI_key": apiKey})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, clock: &clock{t: t0}, tasks: newTaskStore(), keys: keys, reg: prometheus.NewRegistry(), set: set,
		models:     modelStore{models: storetest.NewRepo[indexstore.Model](), connectors: storetest.NewRepo[indexstore.Connector]()},
		submitBody: `{"id":"batch_1","object":"batch","status":"validating","input_file_id":"file-abc"}`}
	headers := map[string]string{"Authorization": "Bearer ${credential.openAI_key}", "Content-Type": "application/json"}
	e.connector = &indexstore.Connector{
		Name: "OpenAI batch", Version: "1", Protocol: "http", Credential: cred, LastUpdatedTime: 123,
		Parameters: map[string]string{"model": "text-embedding-ada-002"},
		Actions: []indexstore.ConnectorAction{
			{ActionType: indexstore.ActionPredict, Method: "POST", URL: "https://api.openai.com/v1/embeddings", Headers: headers,
				RequestBody: `{"input": ${parameters.input}, "model": "${parameters.model}"}`},
			{ActionType: indexstore.ActionBatchPredict, Method: "POST", URL: "https://api.openai.com/v1/batches", Headers: headers,
				RequestBody: `{"input_file_id": "${parameters.input_file_id}", "endpoint": "/v1/embeddings", "completion_window": "24h"}`},
		},
	}
	e.models.connectors.Put(connectorID, e.connector)
	e.models.models.Put(modelID, &indexstore.Model{Name: "batch model", Algorithm: indexstore.AlgorithmRemote,
		ModelState: indexstore.ModelDeployed, ConnectorID: connectorID, Owner: &indexstore.Owner{Name: "alice", BackendRoles: []string{"ml"}}})
	binder := connector.New(connector.Options{Store: e.models, Keys: func() *secrets.Keyring { return keys },
		Deploy: func(_ context.Context, id string) error {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.deploys = append(e.deploys, id)
			return nil
		}})
	e.answer = ok(e.submitBody)
	e.svc = batch.New(batch.Options{Store: e.tasks, Binder: binder, Remote: doFunc(e.do), Settings: set, NodeID: nodeID,
		Logger: slog.New(slog.DiscardHandler), Registerer: e.reg, Now: e.clock.Now})
	return e
}

func (e *env) do(ctx context.Context, c remote.Call) (*remote.Response, error) {
	e.mu.Lock()
	e.calls = append(e.calls, c)
	answer := e.answer
	e.mu.Unlock()
	return answer(ctx, c)
}

// provider sets how the provider answers from now on.
func (e *env) provider(f doFunc) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.answer = f
}

// Calls are the provider calls made so far.
func (e *env) Calls() []remote.Call {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.calls)
}

// callsSince are the calls made after the first n.
func (e *env) callsSince(n int) []remote.Call { return e.Calls()[n:] }

// submit submits a job for the test's model and answers the task id.
func (e *env) submit() string {
	e.t.Helper()
	s, err := e.svc.Submit(context.Background(), modelID, map[string]any{"input_file_id": "file-abc"}, nil, nil)
	if err != nil {
		e.t.Fatalf("Submit: %v", err)
	}
	return s.TaskID
}

func (e *env) task(id string) *indexstore.Task {
	e.t.Helper()
	got, _, err := e.tasks.Get(context.Background(), id)
	if err != nil {
		e.t.Fatalf("stored task %s: %v", id, err)
	}
	return got
}

// putTask stores an open batch task of the test's connector (as Submit
// would have) under id.
func (e *env) putTask(id string, mutate func(*indexstore.Task)) {
	e.t.Helper()
	snapshot := *e.connector
	t := &indexstore.Task{ModelID: modelID, TaskType: indexstore.TaskBatchPrediction, FunctionName: indexstore.AlgorithmRemote,
		State: indexstore.TaskRunning, InputType: indexstore.InputRemote, CreateTime: t0.UnixMilli(), LastUpdateTime: t0.UnixMilli(),
		RemoteJob: map[string]any{"id": jobID, "status": "in_progress"},
		Batch: &indexstore.BatchState{Provider: "openai", Connector: &snapshot, ClientKey: "connector:conn-1:123",
			NextPoll: e.clock.Now().UnixMilli()}}
	if mutate != nil {
		mutate(t)
	}
	e.tasks.Put(id, t)
}

func statusAnswer(status string) string {
	return `{"id":"batch_1","object":"batch","status":"` + status + `","request_counts":{"total":4,"completed":2,"failed":1}}`
}

// assertMLError checks err is an *mlerr.Error with status, type and reason
// (reason "" is not checked).
func assertMLError(t *testing.T, err error, status int, typ, reason string) {
	t.Helper()
	e, ok := mlerr.From(err)
	if !ok {
		t.Fatalf("got error %v, want an *mlerr.Error %d %s", err, status, typ)
	}
	if e.Status != status || e.Type != typ || (reason != "" && e.Reason != reason) {
		t.Errorf("got %d %s %q, want %d %s %q", e.Status, e.Type, e.Reason, status, typ, reason)
	}
}

// metricValue is the value of a counter or gauge with labels (a
// histogram's sample count), 0 if absent.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

func TestSubmitStoresRunningTask(t *testing.T) {
	e := newEnv(t, settings())
	got, err := e.svc.Submit(context.Background(), modelID, map[string]any{"input_file_id": "file-abc"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.TaskID == "" || got.RemoteJob["id"] != jobID {
		t.Errorf("got task id %q, remote job %v, want an id and job %s", got.TaskID, got.RemoteJob, jobID)
	}
	ids := e.tasks.IDs()
	if len(ids) != 1 || ids[0] != got.TaskID {
		t.Fatalf("stored tasks %v, want only %s", ids, got.TaskID)
	}

	snapshot := *e.connector
	want := &indexstore.Task{ModelID: modelID, TaskType: indexstore.TaskBatchPrediction, FunctionName: indexstore.AlgorithmRemote,
		State: indexstore.TaskRunning, InputType: indexstore.InputRemote, WorkerNode: []string{nodeID},
		CreateTime: t0.UnixMilli(), LastUpdateTime: t0.UnixMilli(),
		RemoteJob: map[string]any{"id": jobID, "object": "batch", "status": "validating", "input_file_id": "file-abc", "dlq": nil},
		Owner:     &indexstore.Owner{Name: "alice", BackendRoles: []string{"ml"}},
		Batch: &indexstore.BatchState{Provider: "openai", Connector: &snapshot, ClientKey: "connector:conn-1:123",
			NextPoll: t0.Add(time.Minute).UnixMilli()}}
	if diff := cmp.Diff(want, e.task(got.TaskID)); diff != "" {
		t.Errorf("stored task (-want +got):\n%s", diff)
	}
	if _, ok := got.RemoteJob["dlq"]; !ok {
		t.Errorf("answered remote_job %v has no dlq key, want \"dlq\": null as ML Commons 2.19", got.RemoteJob)
	}
	if strings.Contains(string(e.tasks.Raw(got.TaskID)), apiKey) {
		t.Errorf("the stored task holds the API key in clear: %s", e.tasks.Raw(got.TaskID))
	}

	calls := e.Calls()
	if len(calls) != 1 {
		t.Fatalf("got %d provider calls, want 1", len(calls))
	}
	c := calls[0]
	if c.Method != "POST" || c.URL != "https://api.openai.com/v1/batches" || c.Action != "batch_predict" || c.Provider != "openai" {
		t.Errorf("got call %s %s (%s, %s), want POST https://api.openai.com/v1/batches (batch_predict, openai)", c.Method, c.URL, c.Action, c.Provider)
	}
	if got, want := c.Headers["Authorization"], "Bearer "+apiKey; got != want {
		t.Errorf("got Authorization %q, want %q", got, want)
	}
	if !strings.Contains(string(c.Body), `"input_file_id": "file-abc"`) {
		t.Errorf("got body %s, want the caller's input_file_id", c.Body)
	}
	if n := metricValue(t, e.reg, "mlsidecar_batch_submissions_total", map[string]string{"provider": "openai", "result": "ok"}); n != 1 {
		t.Errorf("got %v ok submissions counted, want 1", n)
	}
	if len(e.deploys) != 0 {
		t.Errorf("a deployed model was deployed again: %v", e.deploys)
	}
}

func TestSubmitMapsTheFirstAnswer(t *testing.T) {
	e := newEnv(t, settings())
	e.provider(ok(`{"id":"batch_1","status":"failed","request_counts":{"total":2,"completed":1,"failed":0}}`))
	id := e.submit()
	got := e.task(id)
	if got.State != indexstore.TaskFailed {
		t.Errorf("got state %s, want FAILED", got.State)
	}
	if got.Progress == nil || *got.Progress != 0.5 {
		t.Errorf("got progress %v, want 0.5", got.Progress)
	}
}

func TestSubmitLimit(t *testing.T) {
	tests := []struct {
		name    string
		stored  []string // states of the batch tasks already stored
		other   int      // non-batch tasks stored
		wantErr bool
	}{
		{"at the limit", []string{"RUNNING", "RUNNING", "CREATED", "CANCELLING", "RUNNING"}, 0, true},
		{"one below", []string{"RUNNING", "RUNNING", "CREATED", "CANCELLING"}, 0, false},
		{"final tasks do not count", []string{"COMPLETED", "FAILED", "CANCELLED", "EXPIRED", "UNREACHABLE", "RUNNING"}, 0, false},
		{"other task types do not count", []string{"RUNNING"}, 6, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, settings())
			for i, st := range tt.stored {
				e.putTask("t"+string(rune('a'+i)), func(t *indexstore.Task) { t.State = st })
			}
			for i := range tt.other {
				e.tasks.Put("o"+string(rune('a'+i)), &indexstore.Task{TaskType: indexstore.TaskDeployModel, State: indexstore.TaskRunning})
			}
			before := len(e.tasks.IDs())
			_, err := e.svc.Submit(context.Background(), modelID, map[string]any{"input_file_id": "file-abc"}, nil, nil)
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("got %v, want a submission", err)
				}
				return
			}
			assertMLError(t, err, http.StatusTooManyRequests, "status_exception",
				"Exceeded maximum limit for BATCH_PREDICTION tasks. To increase the limit, update the plugins.ml_commons.max_batch_inference_tasks setting.")
			if n := len(e.Calls()); n != 0 {
				t.Errorf("got %d provider calls, want 0", n)
			}
			if n := len(e.tasks.IDs()); n != before {
				t.Errorf("got %d tasks stored, want %d", n, before)
			}
		})
	}
}

func TestSubmitRefreshesNearTheLimit(t *testing.T) {
	tests := []struct {
		name        string
		maxTasks    int
		open        int
		wantRefresh bool
	}{
		{"far from the limit", 65, 0, false},
		{"far from the limit with open tasks", 100, 2, false},
		{"64 below the limit", 64, 0, true},
		{"within 64 of the limit", 66, 2, true},
		{"small limit", 5, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := settings()
			set.MaxTasks = tt.maxTasks
			e := newEnv(t, set)
			for i := range tt.open {
				e.putTask("t"+string(rune('a'+i)), nil)
			}
			e.submit()
			if got := e.tasks.Refreshes() > 0; got != tt.wantRefresh {
				t.Errorf("got %d refreshes of the tasks index, want refresh %v", e.tasks.Refreshes(), tt.wantRefresh)
			}
		})
	}
}

func TestSubmitCountsUnsearchableTasksNearTheLimit(t *testing.T) {
	// Tasks written since the last refresh are not searchable; near the
	// limit the count must see them.
	e := newEnv(t, settings())
	e.tasks.lag = true
	for range settings().MaxTasks {
		e.submit()
	}
	_, err := e.svc.Submit(context.Background(), modelID, map[string]any{"input_file_id": "file-abc"}, nil, nil)
	assertMLError(t, err, http.StatusTooManyRequests, "status_exception", "")
	if n, want := len(e.tasks.IDs()), settings().MaxTasks; n != want {
		t.Errorf("got %d tasks, want %d", n, want)
	}
}

func TestSubmitProviderFails(t *testing.T) {
	e := newEnv(t, settings())
	e.provider(fail(errProvider))
	_, err := e.svc.Submit(context.Background(), modelID, map[string]any{"input_file_id": "file-abc"}, nil, nil)
	if !errors.Is(err, errProvider) {
		t.Errorf("got %v, want the provider's error", err)
	}
	if ids := e.tasks.IDs(); len(ids) != 0 {
		t.Errorf("got tasks %v stored, want none", ids)
	}
	if n := metricValue(t, e.reg, "mlsidecar_batch_submissions_total", map[string]string{"provider": "openai", "result": "error"}); n != 1 {
		t.Errorf("got %v failed submissions counted, want 1", n)
	}
}

func TestSubmitAnswerNotAJob(t *testing.T) {
	for _, body := range []string{`"just text"`, `[1,2]`, `{"id":"b1"} trailing`, `{"a":1,"a":2}`} {
		t.Run(body, func(t *testing.T) {
			e := newEnv(t, settings())
			e.provider(ok(body))
			_, err := e.svc.Submit(context.Background(), modelID, map[string]any{"input_file_id": "file-abc"}, nil, nil)
			assertMLError(t, err, http.StatusBadGateway, "status_exception", "")
			if ids := e.tasks.IDs(); len(ids) != 0 {
				t.Errorf("got tasks %v stored, want none", ids)
			}
		})
	}
}

// A job object whose only field is "response" is still a job.
func TestSubmitAnswerWithOnlyAResponseField(t *testing.T) {
	e := newEnv(t, settings())
	e.provider(ok(`{"response":"accepted"}`))
	sub, err := e.svc.Submit(context.Background(), modelID, map[string]any{"input_file_id": "file-abc"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := sub.RemoteJob["response"]; got != "accepted" {
		t.Errorf("got remote_job %v, want {response: accepted}", sub.RemoteJob)
	}
}

func TestSubmitRefusals(t *testing.T) {
	tests := []struct {
		name   string
		model  string
		mutate func(e *env)
		status int
		reason string
	}{
		{"unknown model", "nope", nil, http.StatusNotFound, "Failed to find model"},
		{"no batch action", modelID, func(e *env) {
			c := *e.connector
			c.Actions = c.Actions[:1]
			e.models.connectors.Put(connectorID, &c)
		}, http.StatusBadRequest, "no BATCH_PREDICT action found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, settings())
			if tt.mutate != nil {
				tt.mutate(e)
			}
			_, err := e.svc.Submit(context.Background(), tt.model, map[string]any{"input_file_id": "file-abc"}, nil, nil)
			if e, ok := mlerr.From(err); !ok || e.Status != tt.status || e.Reason != tt.reason {
				t.Errorf("got %v, want %d %q", err, tt.status, tt.reason)
			}
			if n := len(e.Calls()); n != 0 {
				t.Errorf("got %d provider calls, want 0", n)
			}
		})
	}
}

func TestSubmitDeploysAnUndeployedModel(t *testing.T) {
	e := newEnv(t, settings())
	m, _, _ := e.models.models.Get(context.Background(), modelID)
	m.ModelState = indexstore.ModelUndeployed
	e.models.models.Put(modelID, m)
	e.submit()
	if diff := cmp.Diff([]string{modelID}, e.deploys); diff != "" {
		t.Errorf("deploys (-want +got):\n%s", diff)
	}
}

func TestGetRefreshesAnOpenTask(t *testing.T) {
	e := newEnv(t, settings())
	id := e.submit()
	e.clock.Advance(10 * time.Second)
	e.provider(ok(statusAnswer("completed")))
	n := len(e.Calls())

	got, err := e.svc.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	calls := e.callsSince(n)
	if len(calls) != 1 {
		t.Fatalf("got %d provider calls, want 1", len(calls))
	}
	c := calls[0]
	if c.Method != "GET" || c.URL != "https://api.openai.com/v1/batches/batch_1" || c.Action != "batch_predict_status" {
		t.Errorf("got call %s %s (%s), want GET https://api.openai.com/v1/batches/batch_1 (batch_predict_status)", c.Method, c.URL, c.Action)
	}
	if got, want := c.Headers["Authorization"], "Bearer "+apiKey; got != want {
		t.Errorf("got Authorization %q, want %q", got, want)
	}
	if got.State != indexstore.TaskCompleted {
		t.Errorf("got state %s, want COMPLETED", got.State)
	}
	if got.Progress == nil || *got.Progress != 0.75 {
		t.Errorf("got progress %v, want 0.75", got.Progress)
	}
	if got.Error != "" {
		t.Errorf("got error %q, want none", got.Error)
	}
	stored := e.task(id)
	if stored.State != indexstore.TaskCompleted || stored.RemoteJob["status"] != "completed" ||
		stored.RemoteJob["input_file_id"] != "file-abc" || stored.LastUpdateTime != e.clock.Now().UnixMilli() {
		t.Errorf("stored state %s, remote job %v, last update %d; want COMPLETED, merged job, %d",
			stored.State, stored.RemoteJob, stored.LastUpdateTime, e.clock.Now().UnixMilli())
	}
	if stored.Batch.LeaseOwner != "" || stored.Batch.NextPoll != t0.Add(time.Minute).UnixMilli() {
		t.Errorf("a GET changed the worker's bookkeeping: lease %q, next poll %d", stored.Batch.LeaseOwner, stored.Batch.NextPoll)
	}
	if v := metricValue(t, e.reg, "mlsidecar_batch_refreshes_total", map[string]string{"provider": "openai", "result": "changed"}); v != 1 {
		t.Errorf("got %v changed refreshes counted, want 1", v)
	}

	// Final now: no more provider calls.
	n = len(e.Calls())
	again, err := e.svc.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if calls := e.callsSince(n); len(calls) != 0 {
		t.Errorf("got %d provider calls for a final task, want 0", len(calls))
	}
	if again.State != indexstore.TaskCompleted {
		t.Errorf("got state %s, want COMPLETED", again.State)
	}
}

func TestGetFinalOrForeignTasks(t *testing.T) {
	tests := []struct {
		name string
		task *indexstore.Task
	}{
		{"completed batch", nil},
		{"deploy task", &indexstore.Task{TaskType: indexstore.TaskDeployModel, State: indexstore.TaskRunning}},
		{"batch task of ML Commons", &indexstore.Task{TaskType: indexstore.TaskBatchPrediction, State: indexstore.TaskRunning}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, settings())
			if tt.task == nil {
				e.putTask("t1", func(t *indexstore.Task) { t.State = indexstore.TaskCompleted })
			} else {
				e.tasks.Put("t1", tt.task)
			}
			before := string(e.tasks.Raw("t1"))
			got, err := e.svc.Get(context.Background(), "t1")
			if err != nil {
				t.Fatal(err)
			}
			if got == nil {
				t.Fatal("got no task")
			}
			if n := len(e.Calls()); n != 0 {
				t.Errorf("got %d provider calls, want 0", n)
			}
			if after := string(e.tasks.Raw("t1")); after != before {
				t.Errorf("the task was written:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

func TestGetNotFound(t *testing.T) {
	e := newEnv(t, settings())
	_, err := e.svc.Get(context.Background(), "nope")
	assertMLError(t, err, http.StatusNotFound, "status_exception", "Failed to find task")
}

func TestGetProviderFails(t *testing.T) {
	e := newEnv(t, settings())
	id := e.submit()
	e.provider(fail(errProvider))
	for i := range settings().MaxPollFailures + 1 {
		got, err := e.svc.Get(context.Background(), id)
		if err != nil {
			t.Fatalf("Get %d: got %v, want the stored task", i, err)
		}
		if want := "Could not refresh the batch job from the provider: upstream is down"; got.Error != want {
			t.Errorf("Get %d: got error %q, want %q", i, got.Error, want)
		}
		if got.State != indexstore.TaskRunning {
			t.Errorf("Get %d: got state %s, want RUNNING", i, got.State)
		}
	}
	stored := e.task(id)
	if stored.Batch.Failures != 0 || stored.State != indexstore.TaskRunning || stored.Error != "" {
		t.Errorf("stored failures %d, state %s, error %q; want 0, RUNNING, none (a GET never counts)",
			stored.Batch.Failures, stored.State, stored.Error)
	}
	if v := metricValue(t, e.reg, "mlsidecar_batch_refreshes_total", map[string]string{"provider": "openai", "result": "error"}); v != float64(settings().MaxPollFailures+1) {
		t.Errorf("got %v failed refreshes counted, want %d", v, settings().MaxPollFailures+1)
	}
}

func TestCancel(t *testing.T) {
	e := newEnv(t, settings())
	id := e.submit()
	e.clock.Advance(10 * time.Second)
	e.provider(ok(`{"id":"batch_1","status":"cancelling"}`))
	n := len(e.Calls())
	if err := e.svc.Cancel(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	calls := e.callsSince(n)
	if len(calls) != 1 {
		t.Fatalf("got %d provider calls, want 1", len(calls))
	}
	c := calls[0]
	if c.Method != "POST" || c.URL != "https://api.openai.com/v1/batches/batch_1/cancel" || c.Action != "cancel_batch_predict" || !c.AllowEmpty {
		t.Errorf("got call %s %s (%s, allow empty %v), want POST https://api.openai.com/v1/batches/batch_1/cancel (cancel_batch_predict, allow empty)",
			c.Method, c.URL, c.Action, c.AllowEmpty)
	}
	if got, want := c.Headers["Authorization"], "Bearer "+apiKey; got != want {
		t.Errorf("got Authorization %q, want %q", got, want)
	}
	got := e.task(id)
	now := e.clock.Now().UnixMilli()
	if got.State != indexstore.TaskCancelling || got.Batch.NextPoll != now || got.LastUpdateTime != now {
		t.Errorf("got state %s, next poll %d, last update %d; want CANCELLING, %d, %d", got.State, got.Batch.NextPoll, got.LastUpdateTime, now, now)
	}

	// Due at once: the worker looks again in its next cycle.
	e.provider(ok(`{"id":"batch_1","status":"cancelled"}`))
	if err := batch.NewWorker(e.svc, "replica-1").Cycle(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := e.task(id); got.State != indexstore.TaskCancelled {
		t.Errorf("after a cycle got state %s, want CANCELLED", got.State)
	}
}

func TestCancelProviderRefuses(t *testing.T) {
	tests := []struct {
		name   string
		answer doFunc
		check  func(t *testing.T, err error)
	}{
		{"provider error", fail(errProvider), func(t *testing.T, err error) {
			if !errors.Is(err, errProvider) {
				t.Errorf("got %v, want the provider's error", err)
			}
		}},
		{"not 200", func(context.Context, remote.Call) (*remote.Response, error) {
			return &remote.Response{StatusCode: http.StatusAccepted}, nil
		}, func(t *testing.T, err error) {
			assertMLError(t, err, http.StatusBadGateway, "status_exception", "Couldn't cancel the transform job. Please try again")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, settings())
			id := e.submit()
			e.provider(tt.answer)
			tt.check(t, e.svc.Cancel(context.Background(), id))
			if got := e.task(id); got.State != indexstore.TaskRunning {
				t.Errorf("got state %s, want RUNNING", got.State)
			}
		})
	}
}

func TestCancelNotABatchTask(t *testing.T) {
	tests := []struct {
		name string
		task *indexstore.Task
	}{
		{"deploy task", &indexstore.Task{TaskType: indexstore.TaskDeployModel, State: indexstore.TaskRunning}},
		{"batch task without sidecar state", &indexstore.Task{TaskType: indexstore.TaskBatchPrediction, State: indexstore.TaskRunning}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, settings())
			e.tasks.Put("t1", tt.task)
			err := e.svc.Cancel(context.Background(), "t1")
			assertMLError(t, err, http.StatusBadRequest, "illegal_argument_exception", "The task ID you provided does not have any associated batch job")
			if n := len(e.Calls()); n != 0 {
				t.Errorf("got %d provider calls, want 0", n)
			}
		})
	}
	e := newEnv(t, settings())
	assertMLError(t, e.svc.Cancel(context.Background(), "nope"), http.StatusNotFound, "status_exception", "Failed to find task")
}

func TestCancelOfAFinishedTask(t *testing.T) {
	t.Run("already final", func(t *testing.T) {
		e := newEnv(t, settings())
		e.putTask("t1", func(t *indexstore.Task) { t.State = indexstore.TaskCompleted })
		e.provider(ok(`{}`))
		if err := e.svc.Cancel(context.Background(), "t1"); err != nil {
			t.Fatalf("got %v, want OK", err)
		}
		if got := e.task("t1"); got.State != indexstore.TaskCompleted {
			t.Errorf("got state %s, want COMPLETED", got.State)
		}
	})
	t.Run("completed by another request during the cancel call", func(t *testing.T) {
		e := newEnv(t, settings())
		id := e.submit()
		e.provider(func(ctx context.Context, c remote.Call) (*remote.Response, error) {
			completeTask(t, e, id)
			return &remote.Response{StatusCode: http.StatusOK}, nil
		})
		if err := e.svc.Cancel(context.Background(), id); err != nil {
			t.Fatalf("got %v, want OK", err)
		}
		if got := e.task(id); got.State != indexstore.TaskCompleted {
			t.Errorf("got state %s, want COMPLETED", got.State)
		}
	})
}

// completeTask is another request finishing the task.
func completeTask(t *testing.T, e *env, id string) {
	t.Helper()
	_, _, err := indexstore.Modify(context.Background(), e.tasks.Tasks(), id, indexstore.NoWait, func(cur *indexstore.Task) error {
		cur.State = indexstore.TaskCompleted
		cur.RemoteJob["status"] = "completed"
		return nil
	})
	if err != nil {
		t.Errorf("completing the task: %v", err)
	}
}

func TestTaskOutlivesItsModel(t *testing.T) {
	e := newEnv(t, settings())
	id := e.submit()
	ctx := context.Background()
	_, mv, _ := e.models.models.Get(ctx, modelID)
	if _, err := e.models.models.Delete(ctx, modelID, mv); err != nil {
		t.Fatal(err)
	}
	_, cv, _ := e.models.connectors.Get(ctx, connectorID)
	if _, err := e.models.connectors.Delete(ctx, connectorID, cv); err != nil {
		t.Fatal(err)
	}

	e.provider(ok(statusAnswer("in_progress")))
	n := len(e.Calls())
	got, err := e.svc.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if got.Error != "" || got.RemoteJob["request_counts"] == nil {
		t.Errorf("got error %q, remote job %v; want a refreshed task", got.Error, got.RemoteJob)
	}
	e.provider(ok(`{"id":"batch_1","status":"cancelling"}`))
	if err := e.svc.Cancel(ctx, id); err != nil {
		t.Fatal(err)
	}
	calls := e.callsSince(n)
	if len(calls) != 2 {
		t.Fatalf("got %d provider calls, want 2 (status and cancel)", len(calls))
	}
	for _, c := range calls {
		if got, want := c.Headers["Authorization"], "Bearer "+apiKey; got != want {
			t.Errorf("%s: got Authorization %q, want %q (from the snapshot)", c.Action, got, want)
		}
	}
	if got := e.task(id); got.State != indexstore.TaskCancelling {
		t.Errorf("got state %s, want CANCELLING", got.State)
	}
	// The model is gone for new submissions.
	_, err = e.svc.Submit(ctx, modelID, map[string]any{"input_file_id": "file-abc"}, nil, nil)
	assertMLError(t, err, http.StatusNotFound, "status_exception", "Failed to find model")
}
