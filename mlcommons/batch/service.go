// Package batch is the lifecycle of ML Commons batch prediction tasks:
// submitting a job to its provider, refreshing its status (on a caller's GET
// and in the background), cancelling it, and the limit on open tasks. The
// Worker refreshes due tasks in every replica, which share the work through
// leases written with optimistic concurrency in the tasks index.
package batch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/connector"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
	"github.com/mlsidecar/mlsidecar/mlcommons/provider"
	"github.com/mlsidecar/mlsidecar/mlcommons/remote"
	"github.com/mlsidecar/mlsidecar/mlcommons/template"
)

// Store is what the batch lifecycle needs of indexstore.
type Store interface {
	Tasks() indexstore.Repo[indexstore.Task]
	CountOpenBatchTasks(ctx context.Context) (int64, error)
	RefreshTasks(ctx context.Context) error
	ScanDueBatchTasks(ctx context.Context, now time.Time, pageSize int, visit func([]indexstore.Hit[indexstore.Task]) error) error
	CountBatchTasks(ctx context.Context) ([]indexstore.BatchTaskCount, error)
}

// Binder binds a model, or a task's snapshot, to its connector
// (*connector.Service).
type Binder interface {
	Bind(ctx context.Context, modelID string) (*connector.Bound, error)
	FromTask(t *indexstore.Task) (*connector.Bound, error)
}

// Ingester starts the ingestion of a completed job's results
// (*ingest.Service).
type Ingester interface {
	// Ingestible refuses, at submission, a job whose results it cannot
	// ingest.
	Ingestible(provider string) error
	// FromJob creates, once, the ingestion of batch task id's results.
	FromJob(ctx context.Context, id string, t *indexstore.Task) (string, error)
	// DeadLetter writes a failed or unreachable job's summary to its dlq;
	// unreachable is why it could not be reached, "" when it failed.
	DeadLetter(ctx context.Context, t *indexstore.Task, unreachable string) error
}

// Settings are the batch limits and polling rules, complete (see config).
type Settings struct {
	// PollInterval is how often each open batch task is refreshed.
	PollInterval time.Duration
	// MaxPollFailures consecutive failed refreshes make a task UNREACHABLE.
	MaxPollFailures int
	// MaxTasks bounds the open batch tasks (ML Commons'
	// max_batch_inference_tasks, counted for real). It and Status are the
	// Dynamic settings the Service starts with; SetDynamic replaces them.
	MaxTasks int
	// Concurrency bounds the refreshes one replica runs at once.
	Concurrency int
	// RatePerConnector bounds status calls per second per connector.
	RatePerConnector float64
	// LeaseTTL is how long a replica holds a task it refreshes; a replica
	// that dies loses its tasks to the others after this.
	LeaseTTL time.Duration
	Status   StatusRules
}

// Dynamic are the batch settings a cluster may change while the sidecar
// runs (ML Commons' dynamic plugins.ml_commons.* settings).
type Dynamic struct {
	// Enabled is offline_batch_inference_enabled: false refuses batch
	// predictions, and gets and cancels of batch tasks, as ML Commons does.
	// The worker keeps refreshing tasks already submitted.
	Enabled bool
	// MaxTasks is max_batch_inference_tasks (see Settings).
	MaxTasks int
	// Status are the remote_job.status_field and status_regex.* rules.
	Status StatusRules
}

// Options configure a Service.
type Options struct {
	Store    Store
	Binder   Binder
	Remote   connector.Doer
	Settings Settings
	// Ingester ingests results of jobs asked to (nil: none can ask).
	Ingester Ingester
	// NodeID names this sidecar in worker_node.
	NodeID     string
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// Service is the batch lifecycle.
type Service struct {
	store    Store
	binder   Binder
	remote   connector.Doer
	ingester Ingester
	set      running
	dynamic  *atomic.Pointer[Dynamic]
	nodeID   string
	log      *slog.Logger
	now      func() time.Time
	metrics  *metrics
}

// running is the Settings a Service runs with. Its Status shadows
// Settings.Status, so every status mapping, wherever it is made, uses the
// rules in force at that moment.
type running struct {
	Settings
	Status liveRules
}

// liveRules map with the status rules of the Dynamic settings in force.
type liveRules struct{ dynamic *atomic.Pointer[Dynamic] }

// State is StatusRules.State with the rules in force.
func (l liveRules) State(job map[string]any) string { return l.dynamic.Load().Status.State(job) }

// New returns a Service.
func New(o Options) *Service {
	dynamic := &atomic.Pointer[Dynamic]{}
	dynamic.Store(&Dynamic{Enabled: true, MaxTasks: o.Settings.MaxTasks, Status: o.Settings.Status})
	return &Service{store: o.Store, binder: o.Binder, remote: o.Remote, ingester: o.Ingester,
		set: running{Settings: o.Settings, Status: liveRules{dynamic}}, dynamic: dynamic, nodeID: o.NodeID,
		log: o.Logger, now: o.Now, metrics: newMetrics(o.Registerer)}
}

// SetDynamic replaces the Dynamic settings; calls that start after it
// returns use the new ones.
func (s *Service) SetDynamic(d Dynamic) { s.dynamic.Store(&d) }

// errDisabled is ML Commons' answer while offline batch inference is off:
// an IllegalStateException, which OpenSearch answers with 500.
var errDisabled = mlerr.IllegalState("Offline Batch Inference is currently disabled. " +
	"To enable it, update the setting \"plugins.ml_commons.offline_batch_inference_enabled\" to true.")

// callJob makes a batch, status or cancel call and reads its remote_job.
func (s *Service) callJob(ctx context.Context, c remote.Call, act *indexstore.ConnectorAction) (map[string]any, error) {
	resp, err := s.remote.Do(ctx, c)
	if err != nil {
		return nil, err
	}
	return remoteJob(act.PostProcessFunction, resp.Body)
}

// limitMargin is how close to the limit the count must come before the
// tasks index is refreshed to count the newest tasks too.
const limitMargin = 64

// checkLimit admits a submission: batch inference must be enabled, and it
// is refused once MaxTasks tasks are open. Recent tasks may not be
// searchable yet; near the limit the index is refreshed so they count.
func (s *Service) checkLimit(ctx context.Context) error {
	d := s.dynamic.Load()
	if !d.Enabled {
		return errDisabled
	}
	open, err := s.store.CountOpenBatchTasks(ctx)
	if err != nil {
		return err
	}
	if open+limitMargin >= int64(d.MaxTasks) {
		if err := s.store.RefreshTasks(ctx); err != nil {
			return err
		}
		if open, err = s.store.CountOpenBatchTasks(ctx); err != nil {
			return err
		}
	}
	if open >= int64(d.MaxTasks) {
		return mlerr.Status(http.StatusTooManyRequests,
			"Exceeded maximum limit for BATCH_PREDICTION tasks. To increase the limit, update the plugins.ml_commons.max_batch_inference_tasks setting.")
	}
	return nil
}

// TaskNotFound is the answer for a task id that does not exist.
func TaskNotFound() error { return mlerr.Status(http.StatusNotFound, "Failed to find task") }

func (s *Service) load(ctx context.Context, id string) (*indexstore.Task, indexstore.Version, error) {
	t, v, err := s.store.Tasks().Get(ctx, id)
	if errors.Is(err, indexstore.ErrNotFound) {
		return nil, v, TaskNotFound()
	}
	return t, v, err
}

// Get reads a task. An open batch task is refreshed from its provider
// first; when the provider fails, the stored task comes back with an error
// saying so instead of a failure.
func (s *Service) Get(ctx context.Context, id string) (*indexstore.Task, error) {
	t, _, err := s.load(ctx, id)
	if err == nil && t.TaskType == indexstore.TaskBatchPrediction && !s.dynamic.Load().Enabled {
		return nil, errDisabled
	}
	if err != nil || !t.IsOpenBatch() || t.Batch.Submission != nil {
		return t, err // a task being submitted has no job to ask about yet
	}
	fresh, outcome, err := s.refresh(ctx, id, t, nil, false)
	s.metrics.refreshes.WithLabelValues(t.Batch.Provider, string(outcome)).Inc()
	if fresh == nil {
		return nil, err
	}
	if err != nil {
		fresh.Error = "Could not refresh the batch job from the provider: " + mlerr.Reason(err)
	}
	return fresh, nil
}

// outcome is how one refresh ended, for metrics and the worker.
type outcome string

const (
	unchanged outcome = "unchanged"
	changed   outcome = "changed"
	failed    outcome = "error"
)

// statusCall asks the provider for the job's status.
func (s *Service) statusCall(ctx context.Context, t *indexstore.Task) (map[string]any, error) {
	b, err := s.binder.FromTask(t)
	if err != nil {
		return nil, err
	}
	act, err := b.JobAction(provider.Named(t.Batch.Provider), indexstore.ActionBatchPredictStatus)
	if err != nil {
		return nil, err
	}
	params := template.Merge(b.Connector.Parameters, template.RequestParameters(provider.JobParameters(t.RemoteJob)), nil)
	c, err := b.Call(act, connector.HeadersAction(b.Connector, act), params)
	if err != nil {
		return nil, err
	}
	return s.callJob(ctx, c, act)
}

// apply merges a status answer into the task: remote_job merged key by key,
// state mapped, progress derived.
func (s *Service) apply(t *indexstore.Task, status map[string]any) {
	if t.RemoteJob == nil {
		t.RemoteJob = map[string]any{}
	}
	for k, v := range status {
		t.RemoteJob[k] = v
	}
	if st := s.set.Status.State(t.RemoteJob); st != "" {
		t.State = st
	}
	if p := Progress(t.RemoteJob); p != nil {
		t.Progress = p
	}
}

// refresh asks the provider about an open batch task and stores what it
// says. background marks the worker's refreshes: their failures count
// towards UNREACHABLE and they give the lease back; a caller's GET never
// does either. held, when not nil, is the version of t the caller just
// wrote (the worker's lease), so the update needs no read first.
func (s *Service) refresh(ctx context.Context, id string, t *indexstore.Task, held *indexstore.Version, background bool) (*indexstore.Task, outcome, error) {
	status, callErr := s.statusCall(ctx, t)
	now := s.now()
	result := unchanged
	var known *indexstore.Task
	var at indexstore.Version
	if held != nil {
		copied := *t
		known, at = &copied, *held
	}
	// No refresh wait: readers of one task read it by id, in real time.
	_, stored, err := indexstore.ModifyFrom(ctx, s.store.Tasks(), id, known, at, indexstore.NoWait, func(cur *indexstore.Task) error {
		result = unchanged
		if !cur.IsOpenBatch() {
			return indexstore.ErrUnchanged // another replica or request finished it
		}
		before := cur.State
		if callErr != nil {
			if background {
				cur.Batch.Failures++
				if cur.Batch.Failures >= s.set.MaxPollFailures {
					cur.State = indexstore.TaskUnreachable
					cur.Error = "Unable to reach the batch job: " + mlerr.Reason(callErr)
					s.deadLetter(ctx, id, cur, mlerr.Reason(callErr))
				}
			}
		} else {
			s.apply(cur, status)
			cur.Batch.Failures = 0
			cur.Error = ""
			if err := s.startIngestion(ctx, id, cur); err != nil {
				return err
			}
			if background && cur.State == indexstore.TaskFailed && before != indexstore.TaskFailed {
				s.deadLetter(ctx, id, cur, "")
			}
		}
		cur.LastUpdateTime = now.UnixMilli()
		if background {
			cur.Batch.LeaseOwner, cur.Batch.LeaseUntil = "", 0
			cur.Batch.NextPoll = now.Add(s.nextPollDelay(cur.Batch.Failures)).UnixMilli()
		}
		if cur.State != before {
			result = changed
		}
		return nil
	})
	switch {
	case errors.Is(err, indexstore.ErrUnchanged):
		return stored, unchanged, nil
	case errors.Is(err, indexstore.ErrNotFound):
		return nil, failed, TaskNotFound()
	case err != nil:
		return nil, failed, err
	case callErr != nil:
		return stored, failed, callErr
	}
	return stored, result, nil
}

// startIngestion creates, when a job asked to ingest its results has just
// completed, the ingestion of those results, before the task says
// COMPLETED: a replica that dies in between leaves the job RUNNING, the
// next refresh sees it completed again, and the ingestion, whose id is
// fixed by the task, is not created twice.
func (s *Service) startIngestion(ctx context.Context, id string, t *indexstore.Task) error {
	if t.State != indexstore.TaskCompleted || t.Batch.Ingest == nil || t.IngestTaskID != "" || s.ingester == nil {
		return nil
	}
	ingestID, err := s.ingester.FromJob(ctx, id, t)
	if e, ok := mlerr.From(err); ok && e.Status >= 400 && e.Status < 500 {
		// It would fail again: the job is done, and says why its results
		// are not ingested.
		s.log.Warn("cannot ingest the results of a completed batch job", "task_id", id, "err", err)
		t.Error = "The batch job completed; its results cannot be ingested: " + e.Reason
		return nil
	}
	if err != nil {
		// The task stays as it was; the next refresh tries again.
		return fmt.Errorf("starting the ingestion of batch task %s: %w", id, err)
	}
	t.IngestTaskID = ingestID
	return nil
}

// deadLetter writes the job's DLQ object, as ML Commons does when a
// background refresh finds a job failed or unreachable, before the task
// says so: a replica that dies in between writes the same object again.
// A write that fails is told in the task's error, and never holds the
// state back.
func (s *Service) deadLetter(ctx context.Context, id string, t *indexstore.Task, unreachable string) {
	if s.ingester == nil {
		return
	}
	if err := s.ingester.DeadLetter(ctx, t, unreachable); err != nil {
		s.log.Warn("cannot write a batch job's dead-letter object", "task_id", id, "err", err)
		if t.Error != "" {
			t.Error += "; "
		}
		t.Error += "the DLQ object could not be written: " + mlerr.Reason(err)
	}
}

// nextPollDelay backs off a failing provider: the interval doubles with each
// consecutive failure, up to 8 times, with jitter so replicas spread out.
func (s *Service) nextPollDelay(failures int) time.Duration {
	d := s.set.PollInterval << min(failures, 3)
	return d + jitter(d/10)
}

func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d)))
}

// Cancel asks the provider to cancel a task's batch job. Better than ML
// Commons, the task shows CANCELLING at once and the worker looks at it
// again soon.
func (s *Service) Cancel(ctx context.Context, id string) error {
	t, _, err := s.load(ctx, id)
	if err != nil {
		return err
	}
	if t.TaskType == indexstore.TaskBatchPrediction && !s.dynamic.Load().Enabled {
		return errDisabled
	}
	if t.TaskType != indexstore.TaskBatchPrediction || t.Batch == nil {
		return mlerr.IllegalArgument("The task ID you provided does not have any associated batch job")
	}
	if t.Batch.Submission != nil {
		return mlerr.Exception(http.StatusConflict, "The batch job is still being submitted. Try after some time.")
	}
	b, err := s.binder.FromTask(t)
	if err != nil {
		return err
	}
	act, err := b.JobAction(provider.Named(t.Batch.Provider), indexstore.ActionCancelBatchPredict)
	if err != nil {
		return err
	}
	params := template.Merge(b.Connector.Parameters, template.RequestParameters(provider.JobParameters(t.RemoteJob)), nil)
	c, err := b.Call(act, act, params)
	if err != nil {
		return err
	}
	c.AllowEmpty = true
	resp, err := s.remote.Do(ctx, c)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return mlerr.BadGateway("Couldn't cancel the transform job. Please try again")
	}
	_, _, err = indexstore.Modify(ctx, s.store.Tasks(), id, indexstore.WaitForSeen, func(cur *indexstore.Task) error {
		if !cur.IsOpenBatch() {
			return indexstore.ErrUnchanged
		}
		now := s.now().UnixMilli()
		cur.State, cur.LastUpdateTime, cur.Batch.NextPoll = indexstore.TaskCancelling, now, now
		return nil
	})
	if errors.Is(err, indexstore.ErrNotFound) {
		return TaskNotFound()
	}
	if err != nil && !errors.Is(err, indexstore.ErrUnchanged) {
		return err
	}
	return nil
}
