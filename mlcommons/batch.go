package mlcommons

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/template"
)

const (
	taskBatchPrediction = "BATCH_PREDICTION"
	taskCancelled       = "CANCELLED"
	taskExpired         = "EXPIRED"
	taskUnreachable     = "UNREACHABLE"
	inputTypeRemote     = "REMOTE"
)

// batchState is what the sidecar keeps with a batch task to refresh and
// cancel it — even after its model or connector is deleted — and to share
// polling between replicas. It is never shown to callers.
type batchState struct {
	Provider string `json:"provider"`
	// Connector is a snapshot taken at submission (credential encrypted).
	Connector *Connector `json:"connector"`
	ClientKey string     `json:"client_key"`
	// NextPoll is when the poller should refresh the task next (epoch ms).
	NextPoll int64 `json:"next_poll"`
	// LeaseOwner holds the task until LeaseUntil while it refreshes it.
	LeaseOwner string `json:"lease_owner,omitempty"`
	LeaseUntil int64  `json:"lease_until,omitempty"`
	// Failures counts consecutive failed background refreshes.
	Failures int `json:"poll_failures"`
}

// StatusRules map a provider's job status to a task state (ML Commons'
// plugins.ml_commons.remote_job.* settings).
type StatusRules struct {
	Fields []string
	// Rules are tried in order; the first regex that finds a match decides.
	Rules []StatusRule
}

// StatusRule is one regex and the state it means.
type StatusRule struct {
	State string
	Regex *regexp.Regexp
}

// DefaultStatusRules are ML Commons 2.19's defaults.
func DefaultStatusRules() StatusRules {
	rule := func(state, re string) StatusRule {
		return StatusRule{State: state, Regex: regexp.MustCompile("(?i)" + re)}
	}
	return StatusRules{
		Fields: []string{"status", "Status", "TransformJobStatus"},
		Rules: []StatusRule{
			rule(taskCancelling, `(stopping|cancelling)`),
			rule(taskCancelled, `(stopped|cancelled)`),
			rule(taskCompleted, `(complete|completed|partiallyCompleted)`),
			rule(taskExpired, `(expired|timeout)`),
			rule(taskFailed, `(failed)`),
		},
	}
}

// state maps a remote job to a task state; "" when no rule matches. Each
// status field present is applied in turn, so the last matching one wins.
func (s StatusRules) state(job map[string]any) string {
	state := ""
	for _, f := range s.Fields {
		v, ok := job[f]
		if !ok || v == nil {
			continue
		}
		text := fmt.Sprint(v)
		for _, r := range s.Rules {
			if r.Regex.MatchString(text) {
				state = r.State
				break
			}
		}
	}
	return state
}

// isFinal reports whether a task state will not change any more.
func isFinal(state string) bool {
	switch state {
	case taskCompleted, taskFailed, taskCancelled, "COMPLETED_WITH_ERROR", taskExpired, taskUnreachable:
		return true
	}
	return false
}

// isOpenBatch reports whether a task is a batch job the sidecar still
// follows.
func (t *Task) isOpenBatch() bool {
	return t.TaskType == taskBatchPrediction && t.Batch != nil && isOpen(t.State)
}

// public is the task as callers see it.
func (t Task) public() Task {
	t.Batch = nil
	return t
}

func (a *API) batchPredict(r *http.Request) (any, error) {
	var in predictInput
	if err := decodeBody(r, &in, true); err != nil {
		return nil, err
	}
	b, err := a.bindModel(r, pathVar(r, "id"))
	if err != nil {
		return nil, err
	}
	act := b.connector.action(actionBatchPredict)
	if act == nil {
		return nil, illegalArg("no BATCH_PREDICT action found")
	}
	ctx := r.Context()
	if err := a.checkBatchLimit(ctx); err != nil {
		return nil, err
	}
	params := template.Merge(b.connector.Parameters, template.RequestParameters(in.Parameters), nil)
	c, err := b.call(act, headersAction(b.connector, act), params, actionBatchPredict)
	if err != nil {
		return nil, err
	}
	resp, err := a.remote.Do(ctx, c)
	if err != nil {
		a.metrics.submissions.WithLabelValues(c.Provider, "error").Inc()
		return nil, err
	}
	job, err := remoteJob(act.PostProcessFunction, resp.Body)
	if err != nil {
		a.metrics.submissions.WithLabelValues(c.Provider, "error").Inc()
		return nil, err
	}
	now := a.now().UnixMilli()
	snapshot := *b.connector
	t := Task{
		ModelID: b.modelID, TaskType: taskBatchPrediction, FunctionName: algorithmRemote, State: taskRunning,
		InputType: inputTypeRemote, WorkerNode: []string{a.nodeID}, CreateTime: now, LastUpdateTime: now,
		RemoteJob: job, Owner: b.model.Owner,
		Batch: &batchState{Provider: c.Provider, Connector: &snapshot, ClientKey: b.clientKey,
			NextPoll: now + a.batch.PollInterval.Milliseconds()},
	}
	if s := a.batch.Status.state(job); s != "" {
		t.State = s
	}
	t.Progress = progressOf(job)
	// Not refresh=wait_for: a task is read by id in real time, and the limit
	// check refreshes the index itself when it matters.
	res, err := a.store.Create(ctx, indexstore.Tasks, "", t, false)
	if err != nil {
		// The provider runs the job but no task follows it: say which, so it
		// can be found and cancelled.
		a.log.ErrorContext(ctx, "batch job submitted but its task could not be stored", "provider", c.Provider,
			"model_id", b.modelID, "remote_job_id", firstString(job, "id", "job_id", "jobArn", "TransformJobArn"), "err", err)
		return nil, err
	}
	a.metrics.submissions.WithLabelValues(c.Provider, "ok").Inc()
	return map[string]any{"task_id": res.ID, "status": taskCreated, "remote_job": job}, nil
}

// limitMargin is how close to the limit the count must come before the
// tasks index is refreshed to count the newest tasks too.
const limitMargin = 64

// checkBatchLimit refuses a submission once --max-batch-inference-tasks
// tasks are open. Recent tasks may not be searchable yet; near the limit the
// index is refreshed so they count.
func (a *API) checkBatchLimit(ctx context.Context) error {
	open, err := a.store.Count(ctx, indexstore.Tasks, openBatchQuery())
	if err != nil {
		return err
	}
	if open+limitMargin >= int64(a.batch.MaxTasks) {
		if err := a.store.Refresh(ctx, indexstore.Tasks); err != nil {
			return err
		}
		if open, err = a.store.Count(ctx, indexstore.Tasks, openBatchQuery()); err != nil {
			return err
		}
	}
	if open >= int64(a.batch.MaxTasks) {
		return statusErr(http.StatusTooManyRequests,
			"Exceeded maximum limit for BATCH_PREDICTION tasks. To increase the limit, update the plugins.ml_commons.max_batch_inference_tasks setting.")
	}
	return nil
}

// headersAction is the action whose headers a batch call sends: ML Commons
// sends the predict action's; a connector without one uses the action's own.
func headersAction(c *Connector, act *ConnectorAction) *ConnectorAction {
	if p := c.action(actionPredict); p != nil {
		return p
	}
	return act
}

// remoteJob turns a provider's answer into the remote_job map.
func remoteJob(function string, body []byte) (map[string]any, error) {
	out, err := postProcess(function, "", body)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 || out[0].DataAsMap == nil {
		return nil, &Error{Status: http.StatusBadGateway, Type: "status_exception",
			Reason: "Remote service answered the batch job call with something that is not a JSON object"}
	}
	job := out[0].DataAsMap
	if r, ok := job["response"]; ok && len(job) == 1 {
		if _, isText := r.(string); isText {
			return nil, &Error{Status: http.StatusBadGateway, Type: "status_exception",
				Reason: "Remote service answered the batch job call with something that is not a JSON object"}
		}
	}
	return job, nil
}

// progressOf derives 0..1 from a provider's request counts, when it has them.
func progressOf(job map[string]any) *float64 {
	rc, ok := job["request_counts"].(map[string]any)
	if !ok {
		return nil
	}
	num := func(v any) float64 {
		switch n := v.(type) {
		case float64:
			return n
		case json.Number:
			f, _ := n.Float64()
			return f
		}
		return 0
	}
	total := num(rc["total"])
	if total <= 0 {
		return nil
	}
	p := (num(rc["completed"]) + num(rc["failed"])) / total
	p = min(max(p, 0), 1)
	return &p
}

func openBatchQuery() map[string]any {
	return map[string]any{"bool": map[string]any{"filter": []any{
		map[string]any{"term": map[string]any{"task_type": taskBatchPrediction}},
		map[string]any{"terms": map[string]any{"state": []string{taskCreated, taskRunning, taskCancelling}}},
	}}}
}

// jobParameters are the status and cancel parameters: the string fields of
// remote_job (as request parameters), TransformJobName derived from the
// ARN, and processedJobArn derived from jobArn when no post-process made it.
func jobParameters(job map[string]any) map[string]string {
	raw := map[string]any{}
	for k, v := range job {
		if s, ok := v.(string); ok {
			raw[k] = s
		}
	}
	if _, ok := raw["TransformJobName"]; !ok {
		if arn, ok := raw["TransformJobArn"].(string); ok {
			raw["TransformJobName"] = arn[strings.LastIndex(arn, "/")+1:]
		}
	}
	if _, ok := raw["processedJobArn"]; !ok {
		if arn, ok := raw["jobArn"].(string); ok {
			raw["processedJobArn"] = strings.ReplaceAll(arn, "/", "%2F")
		}
	}
	return template.RequestParameters(raw)
}

// derivedAction is ML Commons' default status or cancel action for a
// provider, built from the batch_predict URL (connector parameters filled).
func derivedAction(c *Connector, provider, actionType string) (*ConnectorAction, error) {
	batch := c.action(actionBatchPredict)
	if batch == nil {
		return nil, illegalArg("no BATCH_PREDICT action found")
	}
	base, err := template.URL(batch.URL, c.Parameters)
	if err != nil {
		return nil, err
	}
	base = strings.TrimRight(base, "/")
	status := actionType == actionBatchPredictStatus
	act := &ConnectorAction{ActionType: actionType, Headers: batch.Headers}
	switch provider {
	case "sagemaker":
		act.Method = "POST"
		act.RequestBody = `{ "TransformJobName" : "${parameters.TransformJobName}"}`
		if status {
			act.URL = strings.Replace(base, "CreateTransformJob", "DescribeTransformJob", 1)
		} else {
			act.URL = strings.Replace(base, "CreateTransformJob", "StopTransformJob", 1)
		}
	case "openai", "cohere":
		// Cohere's embed-jobs API names its job job_id (ML Commons uses id,
		// which never resolves there).
		idParam := "${parameters.id}"
		if provider == "cohere" {
			idParam = "${parameters.job_id}"
		}
		if status {
			act.Method, act.URL = "GET", base+"/"+idParam
		} else {
			act.Method, act.URL = "POST", base+"/"+idParam+"/cancel"
		}
	case "bedrock":
		if status {
			act.Method, act.URL = "GET", base+"/${parameters.processedJobArn}"
		} else {
			act.Method, act.URL = "POST", base+"/${parameters.processedJobArn}/stop"
		}
	default:
		what := "get the batch job details"
		if !status {
			what = "cancel the batch job"
		}
		return nil, &Error{Status: http.StatusBadRequest, Type: "unsupported_operation_exception",
			Reason: fmt.Sprintf("Please configure the action type to %s in the connector", what)}
	}
	return act, nil
}

// jobAction is the connector's own status or cancel action, or the derived
// default. A user action without a request body still wins, as in ML Commons.
func jobAction(c *Connector, provider, actionType string) (*ConnectorAction, error) {
	if act := c.action(actionType); act != nil {
		return act, nil
	}
	return derivedAction(c, provider, actionType)
}

// boundFromTask rebuilds what a provider call needs from the task's
// snapshot, so a task outlives its model and connector.
func (a *API) boundFromTask(t *Task) (*bound, error) {
	cred, err := a.keyring().DecryptMap(t.Batch.Connector.Credential)
	if err != nil {
		return nil, fmt.Errorf("cannot decrypt the batch task's credential: %w", err)
	}
	return &bound{modelID: t.ModelID, connector: t.Batch.Connector, clientKey: t.Batch.ClientKey, credential: cred}, nil
}

// refreshOutcome is how one refresh ended, for metrics and the poller.
type refreshOutcome string

const (
	refreshUnchanged refreshOutcome = "unchanged"
	refreshChanged   refreshOutcome = "changed"
	refreshFailed    refreshOutcome = "error"
)

// statusCall asks the provider for the job's status and returns the
// answer's map.
func (a *API) statusCall(ctx context.Context, t *Task) (map[string]any, error) {
	b, err := a.boundFromTask(t)
	if err != nil {
		return nil, err
	}
	act, err := jobAction(b.connector, t.Batch.Provider, actionBatchPredictStatus)
	if err != nil {
		return nil, err
	}
	params := template.Merge(b.connector.Parameters, jobParameters(t.RemoteJob), nil)
	c, err := b.call(act, headersAction(b.connector, act), params, actionBatchPredictStatus)
	if err != nil {
		return nil, err
	}
	resp, err := a.remote.Do(ctx, c)
	if err != nil {
		return nil, err
	}
	return remoteJob(act.PostProcessFunction, resp.Body)
}

// applyStatus merges a status answer into the task: remote_job merged key
// by key, state mapped, progress derived.
func (a *API) applyStatus(t *Task, status map[string]any) {
	if t.RemoteJob == nil {
		t.RemoteJob = map[string]any{}
	}
	for k, v := range status {
		t.RemoteJob[k] = v
	}
	if s := a.batch.Status.state(t.RemoteJob); s != "" {
		t.State = s
	}
	if p := progressOf(t.RemoteJob); p != nil {
		t.Progress = p
	}
}

// refresh asks the provider about an open batch task and stores what it
// says. background marks poller refreshes: their failures count towards
// UNREACHABLE; a user's GET never does.
// held, when not nil, is the version of t the caller just wrote (the
// poller's lease), so the update needs no read first.
func (a *API) refresh(ctx context.Context, id string, t *Task, held *indexstore.Doc, background bool) (*Task, refreshOutcome, error) {
	status, callErr := a.statusCall(ctx, t)
	now := a.now()
	outcome := refreshUnchanged
	var known *Task
	if held != nil {
		copied := *t
		known = &copied
	}
	// No refresh=wait_for: readers of one task read it by id, in real time.
	_, stored, err := modifyFrom(ctx, a.store, indexstore.Tasks, id, taskNotFound(), false, known, held, func(cur *Task) error {
		outcome = refreshUnchanged
		if !cur.isOpenBatch() {
			return errNothingToDo // another replica or request finished it
		}
		before := cur.State
		if callErr != nil {
			if background {
				cur.Batch.Failures++
				if cur.Batch.Failures >= a.batch.MaxPollFailures {
					cur.State = taskUnreachable
					cur.Error = "Unable to reach the batch job: " + errorText(callErr)
				}
			}
		} else {
			a.applyStatus(cur, status)
			cur.Batch.Failures = 0
			cur.Error = ""
		}
		cur.LastUpdateTime = now.UnixMilli()
		if background {
			cur.Batch.LeaseOwner, cur.Batch.LeaseUntil = "", 0
			cur.Batch.NextPoll = now.Add(a.nextPollDelay(cur.Batch.Failures)).UnixMilli()
		}
		if cur.State != before {
			outcome = refreshChanged
		}
		return nil
	})
	if errors.Is(err, errNothingToDo) {
		cur, _, lerr := load[Task](ctx, a.store, indexstore.Tasks, id, taskNotFound())
		return cur, refreshUnchanged, lerr
	}
	if err != nil {
		return nil, refreshFailed, err
	}
	if callErr != nil {
		return stored, refreshFailed, callErr
	}
	return stored, outcome, nil
}

var errNothingToDo = errors.New("nothing to do")

// nextPollDelay backs off a failing provider: the interval doubles with each
// consecutive failure, up to 8 times, with jitter so replicas spread out.
func (a *API) nextPollDelay(failures int) time.Duration {
	d := a.batch.PollInterval << min(failures, 3)
	return d + jitter(d/10)
}

func errorText(err error) string {
	if e, ok := toError(err); ok {
		return e.Reason
	}
	return "internal error"
}

// getBatchTask answers GET /tasks/{id} for a batch task: an open task is
// refreshed from the provider first; when the provider fails, the stored
// task comes back with an error field instead of a failure.
func (a *API) getBatchTask(r *http.Request, id string, t *Task) (any, error) {
	if !t.isOpenBatch() {
		return t.public(), nil
	}
	fresh, outcome, err := a.refresh(r.Context(), id, t, nil, false)
	a.metrics.refreshes.WithLabelValues(t.Batch.Provider, string(outcome)).Inc()
	if fresh == nil {
		return nil, err
	}
	pub := fresh.public()
	if err != nil {
		pub.Error = "Could not refresh the batch job from the provider: " + errorText(err)
	}
	return pub, nil
}

// cancelBatch serves POST /tasks/{id}/_cancel and /_cancel_batch.
func (a *API) cancelBatch(r *http.Request) (any, error) {
	ctx := r.Context()
	id := pathVar(r, "id")
	t, _, err := load[Task](ctx, a.store, indexstore.Tasks, id, taskNotFound())
	if err != nil {
		return nil, err
	}
	if t.TaskType != taskBatchPrediction || t.Batch == nil {
		return nil, illegalArg("The task ID you provided does not have any associated batch job")
	}
	b, err := a.boundFromTask(t)
	if err != nil {
		return nil, err
	}
	act, err := jobAction(b.connector, t.Batch.Provider, actionCancelBatchPredict)
	if err != nil {
		return nil, err
	}
	params := template.Merge(b.connector.Parameters, jobParameters(t.RemoteJob), nil)
	c, err := b.call(act, act, params, actionCancelBatchPredict)
	if err != nil {
		return nil, err
	}
	c.AllowEmpty = true
	resp, err := a.remote.Do(ctx, c)
	if err != nil {
		return nil, err
	}
	if resp.Status != http.StatusOK {
		return nil, &Error{Status: http.StatusBadGateway, Type: "status_exception", Reason: "Couldn't cancel the transform job. Please try again"}
	}
	// Better than ML Commons: the task shows the cancellation at once, and
	// the poller looks at it again soon.
	_, _, err = modify(ctx, a.store, indexstore.Tasks, id, taskNotFound(), func(cur *Task) error {
		if !cur.isOpenBatch() {
			return errNothingToDo
		}
		cur.State, cur.LastUpdateTime = taskCancelling, a.now().UnixMilli()
		cur.Batch.NextPoll = a.now().UnixMilli()
		return nil
	})
	if err != nil && !errors.Is(err, errNothingToDo) {
		return nil, err
	}
	return map[string]string{"status": "OK"}, nil
}

// firstString is the first of keys that holds a string in m.
func firstString(m map[string]any, keys ...string) string {
	for _, k := range keys {
		if s, ok := m[k].(string); ok {
			return s
		}
	}
	return ""
}
