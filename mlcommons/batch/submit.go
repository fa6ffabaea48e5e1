package batch

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/connector"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
	"github.com/mlsidecar/mlsidecar/mlcommons/provider"
	"github.com/mlsidecar/mlsidecar/mlcommons/remote"
	"github.com/mlsidecar/mlsidecar/mlcommons/template"
)

// A submission is written in three steps, so that no replica can die
// leaving a provider job without a task:
//
//  1. the task, CREATED, with the connector snapshot, the caller's
//     parameters and the provider's idempotency key (provider.WithKey),
//     leased to this replica for as long as the call may take;
//  2. the provider's batch_predict call;
//  3. the job into the task (RUNNING, or the state its first answer maps
//     to), the lease given back.
//
// A task left in step 2 — its replica killed, or the provider's answer
// lost — is resumed by the worker once its lease ends: it finds the job by
// its key or submits it again under the same key (resume).

// Submitted is the answer to a submission. RemoteJob is nil when the
// provider's answer was lost: the task is CREATED and the worker finds out.
type Submitted struct {
	TaskID    string
	RemoteJob map[string]any
}

// Submit sends a batch job through the model's batch_predict action and
// records the task that follows it. parameters are the caller's.
// ingest, when not nil, ingests the job's results once it completes.
func (s *Service) Submit(ctx context.Context, modelID string, parameters map[string]any, dlq map[string]string, ingest *indexstore.IngestSpec) (*Submitted, error) {
	b, err := s.binder.Bind(ctx, modelID)
	if err != nil {
		return nil, err
	}
	act := b.Connector.Action(indexstore.ActionBatchPredict)
	if act == nil {
		return nil, mlerr.IllegalArgument("no BATCH_PREDICT action found")
	}
	if err := s.checkLimit(ctx); err != nil {
		return nil, err
	}
	id := indexstore.NewID()
	c, key, err := submitCall(b, act, parameters, id)
	if err != nil {
		return nil, err
	}
	if ingest != nil {
		if s.ingester == nil {
			return nil, mlerr.IllegalArgument("ingesting batch results is not configured")
		}
		if err := s.ingester.Ingestible(c.Provider); err != nil {
			return nil, err
		}
	}
	now := s.now()
	// The lease covers the provider call and then LeaseTTL for the writes
	// after it; a replica that dies loses the submission after that.
	leased := now.Add(remote.Timeout(c.Config) + s.set.LeaseTTL).UnixMilli()
	snapshot := *b.Connector
	t := indexstore.Task{
		ModelID: modelID, TaskType: indexstore.TaskBatchPrediction, FunctionName: indexstore.AlgorithmRemote,
		State: indexstore.TaskCreated, InputType: indexstore.InputRemote, WorkerNode: []string{s.nodeID},
		CreateTime: now.UnixMilli(), LastUpdateTime: now.UnixMilli(), Owner: b.Model.Owner,
		Batch: &indexstore.BatchState{Provider: c.Provider, Connector: &snapshot, ClientKey: b.ClientKey,
			ModelGroupID: b.Model.ModelGroupID, NextPoll: leased, LeaseOwner: s.nodeID, LeaseUntil: leased,
			Submission: &indexstore.Submission{Parameters: parameters, Key: key, DLQ: dlq}, Ingest: ingest},
	}
	// From here the submission runs to its end whatever the caller does:
	// its outcome must be written. Every call below has its own deadline.
	ctx = context.WithoutCancel(ctx)
	// No refresh wait: a task is read by id in real time, and the limit
	// check refreshes the index itself when it matters.
	res, err := s.store.Tasks().InsertAs(ctx, id, &t, indexstore.NoWait)
	if err != nil {
		return nil, err
	}
	held := res.At()
	job, callErr := s.callJob(ctx, c, act)
	switch {
	case errors.Is(callErr, remote.ErrUnanswered) && key == "":
		// The provider may have the job and nothing can find it: the task
		// fails saying so, and the caller hears the failure.
		s.metrics.submissions.WithLabelValues(c.Provider, "error").Inc()
		if err := s.fail(ctx, id, &t, held, unknownJob(c.Provider)); err != nil {
			s.log.Error("an unanswered batch submission left its task CREATED", "task_id", id, "err", err)
		}
		return nil, callErr
	case errors.Is(callErr, remote.ErrUnanswered):
		// The provider may have the job: the task stays CREATED and the
		// worker resumes it at once, finding the job by its key.
		s.metrics.submissions.WithLabelValues(c.Provider, "unanswered").Inc()
		s.log.Warn("batch submission unanswered; the worker resumes it", "task_id", id, "provider", c.Provider, "err", callErr)
		_, _, err := indexstore.ModifyFrom(ctx, s.store.Tasks(), id, &t, held, indexstore.NoWait, func(cur *indexstore.Task) error {
			cur.Batch.LeaseOwner, cur.Batch.LeaseUntil, cur.Batch.NextPoll = "", 0, s.now().UnixMilli()
			return nil
		})
		if err != nil {
			// The lease ends on its own; the worker resumes it then.
			s.log.Warn("cannot give back the lease of an unanswered batch submission", "task_id", id, "err", err)
		}
		return &Submitted{TaskID: id}, nil
	case callErr != nil:
		s.metrics.submissions.WithLabelValues(c.Provider, "error").Inc()
		s.abandon(ctx, id, &t, held, callErr)
		return nil, callErr
	}
	if err := s.finish(ctx, id, &t, held, job); err != nil {
		if key == "" {
			// Nothing can find this job again: say which it is, so it can
			// be found and cancelled. %v, not %w: whatever the store said,
			// this is the sidecar's failure, not the caller's.
			return nil, fmt.Errorf("batch job submitted but its task could not be stored: provider %s, model_id %s, remote_job_id %s: %v",
				c.Provider, modelID, provider.JobID(job), err)
		}
		// The task is CREATED and leased; when the lease ends the worker
		// finds the job by its key and records it.
		s.log.Warn("batch job submitted, task not yet updated; the worker finishes it", "task_id", id, "err", err)
	}
	s.metrics.submissions.WithLabelValues(c.Provider, "ok").Inc()
	return &Submitted{TaskID: id, RemoteJob: job}, nil
}

// submitCall is task taskID's batch_predict call: the caller's parameters
// over the connector's, and the provider's idempotency key in the body.
func submitCall(b *connector.Bound, act *indexstore.ConnectorAction, parameters map[string]any, taskID string) (remote.Call, string, error) {
	params := template.Merge(b.Connector.Parameters, template.RequestParameters(parameters), nil)
	c, err := b.Call(act, connector.HeadersAction(b.Connector, act), params)
	if err != nil {
		return c, "", err
	}
	var key string
	c.Body, key = provider.WithKey(provider.Named(c.Provider), c.Body, taskID)
	return c, key, nil
}

// modifySubmission changes a task still being submitted, from the version
// held; a task another replica has finished already is left alone.
func (s *Service) modifySubmission(ctx context.Context, id string, t *indexstore.Task, held indexstore.Version, mutate func(*indexstore.Task)) error {
	// No refresh: a tasks search refreshes the index first (ML Commons
	// refreshes on every task write, which costs submissions 6×).
	_, _, err := indexstore.ModifyFrom(ctx, s.store.Tasks(), id, t, held, indexstore.NoWait, func(cur *indexstore.Task) error {
		if cur.Batch == nil || cur.Batch.Submission == nil {
			return indexstore.ErrUnchanged
		}
		mutate(cur)
		return nil
	})
	if errors.Is(err, indexstore.ErrUnchanged) {
		return nil
	}
	return err
}

// finish records the job of a submitted task: its state from the job,
// progress, the submission and lease cleared.
func (s *Service) finish(ctx context.Context, id string, t *indexstore.Task, held indexstore.Version, job map[string]any) error {
	return s.modifySubmission(ctx, id, t, held, func(cur *indexstore.Task) {
		now := s.now()
		// ML Commons 2.19 keeps the dead-letter queue in remote_job, null
		// when none was given.
		job["dlq"] = cur.Batch.Submission.DLQ
		cur.RemoteJob, cur.State = job, indexstore.TaskRunning
		if st := s.set.Status.State(job); st != "" {
			cur.State = st
		}
		cur.Progress = Progress(job)
		cur.LastUpdateTime = now.UnixMilli()
		cur.Batch.Submission, cur.Batch.Failures = nil, 0
		cur.Batch.LeaseOwner, cur.Batch.LeaseUntil = "", 0
		cur.Batch.NextPoll = now.Add(s.set.PollInterval).UnixMilli()
	})
}

// fail ends a submission that cannot be finished: FAILED, with why.
func (s *Service) fail(ctx context.Context, id string, t *indexstore.Task, held indexstore.Version, reason string) error {
	return s.modifySubmission(ctx, id, t, held, func(cur *indexstore.Task) {
		cur.State, cur.Error, cur.LastUpdateTime = indexstore.TaskFailed, reason, s.now().UnixMilli()
		cur.Batch.Submission, cur.Batch.LeaseOwner, cur.Batch.LeaseUntil = nil, "", 0
	})
}

// abandon removes the task of a submission the provider refused, as ML
// Commons keeps no task of one; if it cannot, the task is marked FAILED so
// that nobody submits it again.
func (s *Service) abandon(ctx context.Context, id string, t *indexstore.Task, held indexstore.Version, refusal error) {
	if _, err := s.store.Tasks().Delete(ctx, id, held); err == nil {
		return
	}
	if err := s.fail(ctx, id, t, held, "The batch job could not be submitted: "+mlerr.Reason(refusal)); err != nil {
		s.log.Error("a refused batch submission left its task CREATED", "task_id", id, "err", err)
	}
}

// unknownJob is the error of a task whose submission was interrupted where
// nothing can tell whether the provider created the job.
func unknownJob(provider string) string {
	return fmt.Sprintf("The batch job submission was interrupted and %s has no idempotency key for it: "+
		"whether the provider created the job is unknown. Check the provider's jobs before submitting it again.", provider)
}

// maxListPages bounds how many pages of a provider's jobs a resumed
// submission reads to find its job.
const maxListPages = 20

// resume finishes a submission whose replica died or whose answer was lost.
// held is the worker's lease of t.
func (s *Service) resume(ctx context.Context, id string, t *indexstore.Task, held indexstore.Version) (outcome, error) {
	p := provider.Named(t.Batch.Provider)
	sub := t.Batch.Submission
	if sub.Key == "" {
		return changed, s.fail(ctx, id, t, held, unknownJob(p.Name()))
	}
	b, err := s.binder.FromTask(t)
	if err != nil {
		return failed, s.fail(ctx, id, t, held, "The batch job submission was interrupted and cannot be resumed: "+mlerr.Reason(err))
	}
	act := b.Connector.Action(indexstore.ActionBatchPredict)
	if act == nil {
		return failed, s.fail(ctx, id, t, held, "The batch job submission was interrupted and cannot be resumed: no BATCH_PREDICT action found")
	}
	c, key, err := submitCall(b, act, sub.Parameters, id)
	if err == nil && key != sub.Key {
		err = mlerr.IllegalState("the connector no longer gives the job the same idempotency key")
	}
	if err != nil {
		return failed, s.fail(ctx, id, t, held, "The batch job submission was interrupted and cannot be resumed: "+mlerr.Reason(err))
	}
	var job map[string]any
	if l, ok := provider.AsLister(p); ok {
		job, err = s.find(ctx, l, c, act, key, t.CreateTime)
	}
	if err == nil && job == nil {
		job, err = s.callJob(ctx, c, act)
		if raw, ok := provider.Adopt(p, err, key); ok {
			job, err = remoteJob(act.PostProcessFunction, raw)
		}
	}
	switch {
	case err == nil:
		s.metrics.submissions.WithLabelValues(c.Provider, "resumed").Inc()
		return changed, s.finish(ctx, id, t, held, job)
	case retryable(err):
		return failed, s.retryLater(ctx, id, t, held, err)
	default:
		s.metrics.submissions.WithLabelValues(c.Provider, "error").Inc()
		return changed, s.fail(ctx, id, t, held, "The batch job could not be submitted: "+mlerr.Reason(err))
	}
}

// retryable is a failure after which the job may exist or the provider may
// take it later: no answer, a throttling or server error.
func retryable(err error) bool {
	if errors.Is(err, remote.ErrUnanswered) {
		return true
	}
	me, ok := mlerr.From(err)
	return !ok || me.Status == http.StatusTooManyRequests || me.Status >= 500
}

// retryLater gives a resumed submission's lease back with its failure
// counted; MaxPollFailures of them in a row fail the task.
func (s *Service) retryLater(ctx context.Context, id string, t *indexstore.Task, held indexstore.Version, cause error) error {
	err := s.modifySubmission(ctx, id, t, held, func(cur *indexstore.Task) {
		now := s.now()
		cur.Batch.Failures++
		if cur.Batch.Failures >= s.set.MaxPollFailures {
			cur.State, cur.Error = indexstore.TaskFailed, "Unable to submit the batch job: "+mlerr.Reason(cause)
			cur.Batch.Submission = nil
		}
		cur.LastUpdateTime = now.UnixMilli()
		cur.Batch.LeaseOwner, cur.Batch.LeaseUntil = "", 0
		cur.Batch.NextPoll = now.Add(s.nextPollDelay(cur.Batch.Failures)).UnixMilli()
	})
	return errors.Join(cause, err)
}

// find looks for the job carrying key among the provider's jobs created
// since the task (a minute's clock skew allowed).
func (s *Service) find(ctx context.Context, l provider.Lister, submit remote.Call, act *indexstore.ConnectorAction, key string, created int64) (map[string]any, error) {
	list := submit
	list.Method, list.Body = http.MethodGet, nil
	since := created/1000 - 60
	after := ""
	for range maxListPages {
		list.URL = l.ListURL(submit.URL, after)
		resp, err := s.remote.Do(ctx, list)
		if err != nil {
			return nil, err
		}
		raw, next, err := l.Find(resp.Body, key, since)
		switch {
		case err != nil:
			return nil, err
		case raw != nil:
			return remoteJob(act.PostProcessFunction, raw)
		case next == "":
			return nil, nil
		}
		after = next
	}
	return nil, mlerr.BadGateway("The provider lists more batch jobs since this task than can be searched for its job")
}
