package batch_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/batch"
	"github.com/mlsidecar/mlsidecar/mlcommons/remote"
)

const owner = "replica-1"

func (e *env) cycle(w *batch.Worker) {
	e.t.Helper()
	if err := w.Cycle(context.Background()); err != nil {
		e.t.Fatalf("Cycle: %v", err)
	}
}

func TestCycleLeaseWon(t *testing.T) {
	e := newEnv(t, settings())
	id := e.submit()
	e.clock.Advance(time.Minute)
	now := e.clock.Now()

	// While the provider is asked, the task is leased to this replica.
	var leased indexstore.BatchState
	e.provider(func(ctx context.Context, c remote.Call) (*remote.Response, error) {
		cur, _, err := e.tasks.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		leased = *cur.Batch
		return ok(statusAnswer("in_progress"))(ctx, c)
	})
	n, replaces := len(e.Calls()), e.tasks.Replaces
	e.cycle(batch.NewWorker(e.svc, owner))

	calls := e.callsSince(n)
	if len(calls) != 1 || calls[0].Action != "batch_predict_status" || calls[0].URL != "https://api.openai.com/v1/batches/batch_1" {
		t.Fatalf("got calls %+v, want one status call", calls)
	}
	if leased.LeaseOwner != owner || leased.LeaseUntil != now.Add(2*time.Minute).UnixMilli() {
		t.Errorf("during the call got lease %q until %d, want %q until %d", leased.LeaseOwner, leased.LeaseUntil, owner, now.Add(2*time.Minute).UnixMilli())
	}
	got := e.task(id)
	if got.Batch.LeaseOwner != "" || got.Batch.LeaseUntil != 0 {
		t.Errorf("got lease %q until %d after the refresh, want it cleared", got.Batch.LeaseOwner, got.Batch.LeaseUntil)
	}
	if d := time.Duration(got.Batch.NextPoll-now.UnixMilli()) * time.Millisecond; d < time.Minute || d > time.Minute+6*time.Second {
		t.Errorf("got next poll in %v, want the interval (1m) plus at most 10%% jitter", d)
	}
	if got.State != indexstore.TaskRunning || got.RemoteJob["status"] != "in_progress" || got.Progress == nil || *got.Progress != 0.75 ||
		got.LastUpdateTime != now.UnixMilli() {
		t.Errorf("got state %s, job %v, progress %v, last update %d; want the refreshed task", got.State, got.RemoteJob, got.Progress, got.LastUpdateTime)
	}
	if r := e.tasks.Replaces - replaces; r != 2 {
		t.Errorf("got %d writes, want 2 (lease, refresh)", r)
	}
	if v := metricValue(t, e.reg, "mlsidecar_batch_refreshes_total", map[string]string{"provider": "openai", "result": "unchanged"}); v != 1 {
		t.Errorf("got %v unchanged refreshes counted, want 1", v)
	}

	// Refreshed: not due again until next_poll.
	n = len(e.Calls())
	e.cycle(batch.NewWorker(e.svc, owner))
	if calls := e.callsSince(n); len(calls) != 0 {
		t.Errorf("got %d calls for a task not due, want 0", len(calls))
	}
}

func TestCycleSkips(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*indexstore.Task)
	}{
		{"not due", func(t *indexstore.Task) { t.Batch.NextPoll = t0.Add(time.Millisecond).UnixMilli() }},
		{"leased by another replica", func(t *indexstore.Task) {
			t.Batch.LeaseOwner, t.Batch.LeaseUntil = "replica-2", t0.Add(time.Millisecond).UnixMilli()
		}},
		{"final", func(t *indexstore.Task) { t.State = indexstore.TaskCompleted }},
		{"unreachable", func(t *indexstore.Task) { t.State = indexstore.TaskUnreachable }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, settings())
			e.putTask("t1", tt.mutate)
			before := string(e.tasks.Raw("t1"))
			e.cycle(batch.NewWorker(e.svc, owner))
			if n := len(e.Calls()); n != 0 {
				t.Errorf("got %d provider calls, want 0", n)
			}
			if after := string(e.tasks.Raw("t1")); after != before {
				t.Errorf("the task was written:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

func TestCycleLeaseLostToAConflict(t *testing.T) {
	e := newEnv(t, settings())
	e.putTask("t1", nil)
	before := string(e.tasks.Raw("t1"))
	var replaces atomic.Int32
	e.tasks.BeforeReplace = func(string) error {
		replaces.Add(1)
		return indexstore.ErrConflict // another replica wrote first
	}
	e.cycle(batch.NewWorker(e.svc, owner))
	if n := len(e.Calls()); n != 0 {
		t.Errorf("got %d provider calls, want 0", n)
	}
	if n := replaces.Load(); n != 1 {
		t.Errorf("got %d lease writes, want 1 (a lost lease is not retried)", n)
	}
	if after := string(e.tasks.Raw("t1")); after != before {
		t.Errorf("the task was written:\nbefore %s\nafter  %s", before, after)
	}
}

func TestCycleTakeover(t *testing.T) {
	tests := []struct {
		name          string
		leaseOwner    string
		wantTakeovers string
	}{
		{"a dead replica's lease", "replica-dead", "1"},
		{"this replica's own lease", owner, "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, settings())
			until := t0.Add(2 * time.Minute)
			e.putTask("t1", func(t *indexstore.Task) { t.Batch.LeaseOwner, t.Batch.LeaseUntil = tt.leaseOwner, until.UnixMilli() })
			e.provider(ok(statusAnswer("in_progress")))
			w := batch.NewWorker(e.svc, owner)

			e.clock.Advance(2*time.Minute - time.Millisecond) // lease_until > now: still held
			e.cycle(w)
			if n := len(e.Calls()); n != 0 {
				t.Fatalf("got %d provider calls before the lease expired, want 0", n)
			}

			e.clock.Advance(time.Millisecond) // lease_until == now: expired
			e.cycle(w)
			if n := len(e.Calls()); n != 1 {
				t.Fatalf("got %d provider calls after the lease expired, want 1", n)
			}
			got := e.task("t1")
			if got.Batch.LeaseOwner != "" || got.LastUpdateTime != e.clock.Now().UnixMilli() {
				t.Errorf("got lease %q, last update %d; want a refreshed task with no lease", got.Batch.LeaseOwner, got.LastUpdateTime)
			}
			want := `
# HELP mlsidecar_batch_lease_takeovers_total Batch tasks taken over from a replica whose lease had expired.
# TYPE mlsidecar_batch_lease_takeovers_total counter
mlsidecar_batch_lease_takeovers_total ` + tt.wantTakeovers + "\n"
			if err := testutil.GatherAndCompare(e.reg, strings.NewReader(want), "mlsidecar_batch_lease_takeovers_total"); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestCycleUnreachable(t *testing.T) {
	e := newEnv(t, settings())
	id := e.submit()
	w := batch.NewWorker(e.svc, owner)
	ctx := context.Background()

	// poll fails once in the background and once on a caller's GET, which
	// never counts.
	poll := func(want int) {
		t.Helper()
		e.clock.Advance(time.Hour)
		e.cycle(w)
		if _, err := e.svc.Get(ctx, id); err != nil {
			t.Fatalf("Get: %v", err)
		}
		got := e.task(id)
		if got.Batch.Failures != want {
			t.Errorf("got %d failures, want %d", got.Batch.Failures, want)
		}
	}

	e.provider(fail(errProvider))
	poll(1)
	poll(2)
	// A success resets the count: failures must be consecutive.
	e.provider(ok(statusAnswer("in_progress")))
	poll(0)
	e.provider(fail(errProvider))
	poll(1)
	poll(2)
	if got := e.task(id); got.State != indexstore.TaskRunning {
		t.Fatalf("after %d failures got state %s, want RUNNING", got.Batch.Failures, got.State)
	}

	e.clock.Advance(time.Hour)
	e.cycle(w)
	got := e.task(id)
	if got.State != indexstore.TaskUnreachable || got.Batch.Failures != 3 {
		t.Errorf("got state %s with %d failures, want UNREACHABLE with 3", got.State, got.Batch.Failures)
	}
	if want := "Unable to reach the batch job: upstream is down"; got.Error != want {
		t.Errorf("got error %q, want %q", got.Error, want)
	}

	// Final: neither the worker nor a GET asks the provider again.
	n := len(e.Calls())
	e.clock.Advance(time.Hour)
	e.cycle(w)
	if _, err := e.svc.Get(ctx, id); err != nil {
		t.Fatal(err)
	}
	if calls := e.callsSince(n); len(calls) != 0 {
		t.Errorf("got %d provider calls for an UNREACHABLE task, want 0", len(calls))
	}
}

func TestCycleBackoff(t *testing.T) {
	set := settings()
	set.MaxPollFailures = 10
	e := newEnv(t, set)
	id := e.submit()
	w := batch.NewWorker(e.svc, owner)
	e.provider(fail(errProvider))
	for _, tt := range []struct {
		failures int
		base     time.Duration
	}{
		{1, 2 * time.Minute},
		{2, 4 * time.Minute},
		{3, 8 * time.Minute},
		{4, 8 * time.Minute}, // at most 8 times the interval
		{5, 8 * time.Minute},
	} {
		e.clock.Advance(time.Hour)
		e.cycle(w)
		got := e.task(id)
		if got.Batch.Failures != tt.failures {
			t.Fatalf("got %d failures, want %d", got.Batch.Failures, tt.failures)
		}
		d := time.Duration(got.Batch.NextPoll-e.clock.Now().UnixMilli()) * time.Millisecond
		if d < tt.base || d > tt.base+tt.base/10 {
			t.Errorf("after %d failures got next poll in %v, want %v plus at most 10%% jitter", tt.failures, d, tt.base)
		}
	}
	// A success goes back to the interval.
	e.provider(ok(statusAnswer("in_progress")))
	e.clock.Advance(time.Hour)
	e.cycle(w)
	got := e.task(id)
	if d := time.Duration(got.Batch.NextPoll-e.clock.Now().UnixMilli()) * time.Millisecond; got.Batch.Failures != 0 || d < time.Minute || d > time.Minute+6*time.Second {
		t.Errorf("after a success got %d failures, next poll in %v; want 0, the interval", got.Batch.Failures, d)
	}
}

func TestCycleDoesNotOverwriteAFinishedTask(t *testing.T) {
	// The task is finished (cancelled by a request, say) between the
	// worker's lease and its refresh write.
	e := newEnv(t, settings())
	id := e.submit()
	e.clock.Advance(time.Minute)
	e.provider(func(ctx context.Context, c remote.Call) (*remote.Response, error) {
		_, _, err := indexstore.Modify(ctx, e.tasks.Tasks(), id, indexstore.NoWait, func(cur *indexstore.Task) error {
			cur.State = indexstore.TaskCancelled
			cur.RemoteJob["status"] = "cancelled"
			return nil
		})
		if err != nil {
			t.Errorf("cancelling the task: %v", err)
		}
		return ok(statusAnswer("in_progress"))(ctx, c)
	})
	e.cycle(batch.NewWorker(e.svc, owner))
	got := e.task(id)
	if got.State != indexstore.TaskCancelled || got.RemoteJob["status"] != "cancelled" {
		t.Errorf("got state %s, status %v; want CANCELLED, cancelled (not overwritten)", got.State, got.RemoteJob["status"])
	}
	if _, ok := got.RemoteJob["request_counts"]; ok {
		t.Errorf("the worker's answer was merged into a finished task: %v", got.RemoteJob)
	}
}

func TestCycleKeepsAConcurrentChange(t *testing.T) {
	// Another writer changes the still open task between the lease and the
	// refresh write: the refresh is applied on top, nothing is lost.
	e := newEnv(t, settings())
	id := e.submit()
	e.clock.Advance(time.Minute)
	e.provider(func(ctx context.Context, c remote.Call) (*remote.Response, error) {
		_, _, err := indexstore.Modify(ctx, e.tasks.Tasks(), id, indexstore.NoWait, func(cur *indexstore.Task) error {
			cur.RemoteJob["note"] = "written meanwhile"
			return nil
		})
		if err != nil {
			t.Errorf("changing the task: %v", err)
		}
		return ok(statusAnswer("completed"))(ctx, c)
	})
	e.cycle(batch.NewWorker(e.svc, owner))
	got := e.task(id)
	if got.State != indexstore.TaskCompleted || got.RemoteJob["note"] != "written meanwhile" || got.Batch.LeaseOwner != "" {
		t.Errorf("got state %s, job %v, lease %q; want COMPLETED with both changes and no lease", got.State, got.RemoteJob, got.Batch.LeaseOwner)
	}
}

func TestCycleRefreshesEveryDueTaskOnce(t *testing.T) {
	set := settings()
	set.MaxTasks = 100
	e := newEnv(t, set)
	const tasks = 9
	for i := range tasks {
		e.putTask("t"+string(rune('a'+i)), func(t *indexstore.Task) { t.RemoteJob["id"] = "batch_" + string(rune('a'+i)) })
	}
	var mu sync.Mutex
	seen := map[string]int{}
	e.provider(func(ctx context.Context, c remote.Call) (*remote.Response, error) {
		mu.Lock()
		seen[c.URL]++
		mu.Unlock()
		return ok(statusAnswer("in_progress"))(ctx, c)
	})
	e.cycle(batch.NewWorker(e.svc, owner))
	if len(seen) != tasks {
		t.Errorf("got %d jobs asked about, want %d: %v", len(seen), tasks, seen)
	}
	for u, n := range seen {
		if n != 1 {
			t.Errorf("%s asked %d times, want once", u, n)
		}
	}
	for _, h := range e.tasks.Docs() {
		if h.Doc.Batch.LeaseOwner != "" || h.Doc.LastUpdateTime != e.clock.Now().UnixMilli() {
			t.Errorf("task %s: lease %q, last update %d; want refreshed", h.ID, h.Doc.Batch.LeaseOwner, h.Doc.LastUpdateTime)
		}
	}
}

func TestCycleTwoReplicas(t *testing.T) {
	// Two replicas scanning the same due task: one lease wins, the task is
	// refreshed once.
	e := newEnv(t, settings())
	e.putTask("t1", nil)
	e.provider(ok(statusAnswer("in_progress")))
	a, b := batch.NewWorker(e.svc, "replica-a"), batch.NewWorker(e.svc, "replica-b")
	var wg sync.WaitGroup
	for _, w := range []*batch.Worker{a, b} {
		wg.Go(func() {
			if err := w.Cycle(context.Background()); err != nil {
				t.Errorf("Cycle: %v", err)
			}
		})
	}
	wg.Wait()
	// Either both scanned before a lease (one wins), or one finished first
	// (the task is no longer due for the other).
	if n := len(e.Calls()); n != 1 {
		t.Errorf("got %d provider calls, want 1", n)
	}
}

func TestCycleContextCancelled(t *testing.T) {
	e := newEnv(t, settings())
	e.putTask("t1", nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// Its error is ctx's or nil, depending on whether the scan or a poller
	// saw the cancellation first; either way nothing is called.
	_ = batch.NewWorker(e.svc, owner).Cycle(ctx)
	if n := len(e.Calls()); n != 0 {
		t.Errorf("got %d provider calls, want 0", n)
	}
}

func TestRun(t *testing.T) {
	set := settings()
	set.PollInterval = 4 * time.Millisecond // Run ticks every millisecond
	e := newEnv(t, set)
	e.putTask("t1", nil)
	e.putTask("t2", func(t *indexstore.Task) { t.State = indexstore.TaskFailed })
	e.provider(ok(statusAnswer("completed")))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		batch.NewWorker(e.svc, owner).Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()

	// The gauge follows the tasks index once a cycle has refreshed t1.
	completed := map[string]string{"state": indexstore.TaskCompleted, "provider": "openai"}
	deadline := time.Now().Add(10 * time.Second)
	for metricValue(t, e.reg, "mlsidecar_batch_tasks", completed) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("no poll cycle counted the completed task: state %s", e.task("t1").State)
		}
		time.Sleep(time.Millisecond)
	}
	if got := e.task("t1").State; got != indexstore.TaskCompleted {
		t.Errorf("got state %s, want COMPLETED", got)
	}
	if v := metricValue(t, e.reg, "mlsidecar_batch_tasks", map[string]string{"state": indexstore.TaskFailed, "provider": "openai"}); v != 1 {
		t.Errorf("got %v FAILED tasks in the gauge, want 1", v)
	}
	if n := metricValue(t, e.reg, "mlsidecar_batch_poll_cycle_seconds", nil); n < 1 {
		t.Errorf("got %v poll cycles observed, want at least 1", n)
	}
	cancel()
	<-done // Run returns once ctx is done
}

// Given a provider that never answers about one job (it sends half a body
// and stalls), when a cycle runs, then the other task is refreshed, the
// cycle ends once the stalled poll's deadline (its client_config's
// connection and read timeouts plus a margin) has passed, and the stalled
// poll counts as a failure.
func TestCycleDoesNotWaitForAStalledProvider(t *testing.T) {
	set := settings()
	set.Concurrency = 1 // the stalled poll holds the only worker
	e := newEnv(t, set)
	fast := remote.DefaultConfig()
	fast.ConnectionTimeout, fast.ReadTimeout = 1, 1
	for _, id := range []string{"a-stalled", "b-healthy"} {
		e.putTask(id, func(t *indexstore.Task) {
			t.RemoteJob["id"] = id
			cc := fast
			t.Batch.Connector.ClientConfig = &cc
		})
	}
	e.provider(func(ctx context.Context, c remote.Call) (*remote.Response, error) {
		if strings.HasSuffix(c.URL, "/a-stalled") {
			<-ctx.Done() // what a stalled body read does without a deadline of its own
			return nil, ctx.Err()
		}
		return ok(statusAnswer("completed"))(ctx, c)
	})
	w := batch.NewWorker(e.svc, owner)
	batch.SetPollMargin(w, 100*time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- w.Cycle(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the cycle is still waiting for the stalled poll after 30s")
	}
	if got := e.task("b-healthy"); got.State != indexstore.TaskCompleted {
		t.Errorf("healthy task state %s, want COMPLETED", got.State)
	}
	if got := e.task("a-stalled"); got.Batch.Failures != 1 || got.Batch.LeaseOwner != "" {
		t.Errorf("stalled task: %d failures, lease %q; want 1 failure and the lease given back", got.Batch.Failures, got.Batch.LeaseOwner)
	}
}

// A provider name stored with an old task (a caller's choice) is "other" in
// the metrics: labels stay bounded.
func TestCycleLabelsUnknownProvidersOther(t *testing.T) {
	e := newEnv(t, settings())
	for i := range 5 {
		e.putTask("t"+string(rune('a'+i)), func(t *indexstore.Task) { t.Batch.Provider = "acme-" + string(rune('a'+i)) })
	}
	w := batch.NewWorker(e.svc, owner)
	e.cycle(w)
	// Nothing is known of "other": no status action is derived, each refresh fails.
	if v := metricValue(t, e.reg, "mlsidecar_batch_refreshes_total", map[string]string{"provider": "other", "result": "error"}); v != 5 {
		t.Errorf("refreshes{provider=other} = %v, want 5", v)
	}
	if n := testutil.CollectAndCount(e.reg, "mlsidecar_batch_refreshes_total"); n != 1 {
		t.Errorf("refreshes has %d series, want 1", n)
	}
}
