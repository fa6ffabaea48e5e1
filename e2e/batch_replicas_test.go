package e2e

import (
	"encoding/json"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mlsidecar/mlsidecar/e2e/providers/fault"
)

// countTasks counts a prefix's batch tasks by state, straight from the node.
func countTasks(t *testing.T, prefix string) map[string]int {
	t.Helper()
	do(t, "POST", node.url()+"/"+prefix+"tasks/_refresh", nil, nil)
	_, _, b := do(t, "POST", node.url()+"/"+prefix+"tasks/_search",
		stringsReader(`{"size":0,"query":{"term":{"task_type":"BATCH_PREDICTION"}},"aggs":{"s":{"terms":{"field":"state"}}}}`),
		map[string]string{"Content-Type": "application/json"})
	var res struct {
		Aggregations struct {
			S struct {
				Buckets []struct {
					Key   string `json:"key"`
					Count int    `json:"doc_count"`
				} `json:"buckets"`
			} `json:"s"`
		} `json:"aggregations"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("counting tasks: %v: %s", err, b)
	}
	out := map[string]int{}
	for _, bk := range res.Aggregations.S.Buckets {
		out[bk.Key] = bk.Count
	}
	return out
}

// taskVersions maps every batch task of a prefix to its document version.
func taskVersions(t *testing.T, prefix string) map[string]float64 {
	t.Helper()
	_, _, b := do(t, "POST", node.url()+"/"+prefix+"tasks/_search?version=true",
		stringsReader(`{"size":1000,"_source":false,"query":{"term":{"task_type":"BATCH_PREDICTION"}}}`),
		map[string]string{"Content-Type": "application/json"})
	var res struct {
		Hits struct {
			Hits []struct {
				ID      string  `json:"_id"`
				Version float64 `json:"_version"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, h := range res.Hits.Hits {
		out[h.ID] = h.Version
	}
	return out
}

// Given two replicas against one node and 200 open batch jobs, when the jobs
// progress and one replica is killed with SIGKILL mid-run, then the other
// finishes every task and each task reaches its final state exactly once.
// With -tags bench (make bench-batch) it also measures that the provider is
// not polled more than once per task per interval: a wall-clock window, so
// not an assertion of the default suite (mlcommons/batch proves the leases
// deterministically).
func TestBatchTwoReplicasShareAndTakeOver(t *testing.T) {
	const prefix, tasks = ".e2e-batch-rep-", 200
	interval := 500 * time.Millisecond
	d, clock := batchDouble(t)
	args := withArgs("--index-prefix", prefix, "--batch-poll-interval", interval.String(), "--batch-lease-ttl", "5s",
		"--max-batch-inference-tasks", "1000", "--batch-poll-rate-per-connector", "10000", "--log-level", "info")
	a := startSidecar(t, append(args, "--node-id", "replica-a")...)
	b := startSidecar(t, append(args, "--node-id", "replica-b")...)
	input := uploadBatchInput(t, d, embeddingLine("x", "x"))
	model := deployModel(t, a, openAIConnector(d.URL(), input, ""))

	var wg sync.WaitGroup
	errs := make(chan error, tasks)
	sem := make(chan struct{}, 16)
	for i := 0; i < tasks; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			sc := a
			if i%2 == 1 {
				sc = b
			}
			status, _, body := do(t, "POST", sc.url+"/_plugins/_ml/models/"+model+"/_batch_predict", stringsReader(`{"parameters":{}}`),
				map[string]string{"Content-Type": "application/json"})
			if status != 200 {
				errs <- fmt.Errorf("submission %d: %d %s", i, status, body)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := countTasks(t, prefix)["RUNNING"]; got != tasks {
		t.Fatalf("running tasks = %d, want %d", got, tasks)
	}

	// Validating -> in progress: both replicas share the polling.
	clock.Advance(time.Minute)
	before, start := d.Requests("batches.retrieve"), time.Now()
	eventually(t, 60*time.Second, "all tasks in progress", func() bool {
		n, _, body := do(t, "POST", node.url()+"/"+prefix+"tasks/_count",
			stringsReader(`{"query":{"term":{"remote_job.status":"in_progress"}}}`), map[string]string{"Content-Type": "application/json"})
		return n == 200 && jsonCount(body) == tasks
	})
	if measurePollWindows {
		checkPollWindows(t, d.Requests, tasks, interval, before, start)
	}
	if pa, pb := a.metric(t, "mlsidecar_batch_refreshes_total", nil), b.metric(t, "mlsidecar_batch_refreshes_total", nil); pa == 0 || pb == 0 {
		t.Errorf("refreshes by replica: %v and %v, want both to share the work", pa, pb)
	}

	// One replica dies while it holds leases (its status calls are slow);
	// the other takes them over once they expire, and finishes.
	d.Faults.Inject("batches.retrieve", fault.Fault{Delay: 3 * time.Second, Times: -1})
	slowFrom := d.Requests("batches.retrieve")
	clock.Advance(2 * time.Minute)
	// Both replicas are now stuck in slow status calls, each holding the
	// leases of the tasks it asked about.
	eventually(t, 10*time.Second, "slow status calls in flight", func() bool {
		return d.Requests("batches.retrieve")-slowFrom >= 24
	})
	eventually(t, 2*time.Second, "replica a holds leases", func() bool {
		do(t, "POST", node.url()+"/"+prefix+"tasks/_refresh", nil, nil)
		_, _, body := do(t, "POST", node.url()+"/"+prefix+"tasks/_count", stringsReader(`{"query":{"prefix":{"batch.lease_owner":"replica-a/"}}}`),
			map[string]string{"Content-Type": "application/json"})
		return jsonCount(body) > 0
	})
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-a.exited
	a.exited <- nil
	d.Faults.Reset()
	eventually(t, 90*time.Second, "all tasks completed by the surviving replica", func() bool {
		return countTasks(t, prefix)["COMPLETED"] == tasks
	})
	if got := b.metric(t, "mlsidecar_batch_lease_takeovers_total", nil); got < 1 {
		t.Errorf("lease takeovers by the survivor = %v, want at least one", got)
	} else {
		t.Logf("lease takeovers by the survivor: %v", got)
	}

	// Final means final: no task is written again afterwards.
	first := taskVersions(t, prefix)
	time.Sleep(4 * interval) // a measurement window, not synchronisation
	for id, v := range taskVersions(t, prefix) {
		if first[id] != v {
			t.Errorf("task %s was written after it completed (version %v -> %v)", id, first[id], v)
		}
	}
}

// Given open batch jobs, when the provider answers every status call with
// 429 for a while, then the sidecar backs off instead of amplifying the
// storm, and the tasks complete once it is over; a provider that stays
// down makes a task UNREACHABLE after --batch-max-poll-failures.
func TestBatchBacksOffA429Storm(t *testing.T) {
	const prefix, tasks = ".e2e-batch-storm-", 20
	interval := 300 * time.Millisecond
	d, clock := batchDouble(t)
	sc := startSidecar(t, withArgs("--index-prefix", prefix, "--batch-poll-interval", interval.String(),
		"--batch-max-poll-failures", "1000", "--batch-poll-rate-per-connector", "10000")...)
	input := uploadBatchInput(t, d, embeddingLine("x", "x"))
	model := deployModel(t, sc, openAIConnector(d.URL(), input, ""))
	for i := 0; i < tasks; i++ {
		mustML(t, sc, 200, "POST", "/_plugins/_ml/models/"+model+"/_batch_predict", `{"parameters":{}}`)
	}

	d.Faults.Inject("batches.retrieve", fault.Fault{Status: 429, RetryAfter: time.Second, Times: -1})
	before, start := d.Requests("batches.retrieve"), time.Now()
	time.Sleep(4 * time.Second) // the storm lasts this long
	storm := d.Requests("batches.retrieve") - before
	elapsed := time.Since(start)
	withoutBackoff := int(float64(tasks) * elapsed.Seconds() / interval.Seconds())
	t.Logf("%d status calls during a %s storm for %d tasks; one per task per interval would be %d", storm, elapsed.Round(time.Millisecond), tasks, withoutBackoff)
	if storm == 0 || storm > withoutBackoff/2 {
		t.Errorf("%d status calls during the storm, want some but at most half of %d (no backoff)", storm, withoutBackoff)
	}
	d.Faults.Reset()
	clock.Advance(3 * time.Minute)
	eventually(t, 60*time.Second, "tasks complete after the storm", func() bool { return countTasks(t, prefix)["COMPLETED"] == tasks })
}

// Given a provider that stays down, when the poller keeps failing, then the
// task becomes UNREACHABLE with the reason.
func TestBatchUnreachable(t *testing.T) {
	const prefix = ".e2e-batch-unreach-"
	d, _ := batchDouble(t)
	sc := startSidecar(t, withArgs("--index-prefix", prefix, "--batch-poll-interval", "100ms", "--batch-max-poll-failures", "3")...)
	model := deployModel(t, sc, openAIConnector(d.URL(), uploadBatchInput(t, d, embeddingLine("x", "x")), ""))
	id := mustML(t, sc, 200, "POST", "/_plugins/_ml/models/"+model+"/_batch_predict", `{"parameters":{}}`)["task_id"].(string)
	d.Faults.Inject("batches.retrieve", fault.Fault{Status: 500, Times: -1})
	task := waitTask(t, prefix, id, "UNREACHABLE", func(task map[string]any) bool { return task["state"] == "UNREACHABLE" })
	if fmt.Sprint(task["error"]) == "" || fmt.Sprint(task["error"]) == "<nil>" {
		t.Errorf("unreachable task has no error: %v", task)
	}
}

func jsonCount(b []byte) int {
	var r struct{ Count int }
	_ = json.Unmarshal(b, &r)
	return r.Count
}

// checkPollWindows measures the status calls of the transition that just
// happened (since before, at start) and of a steady 3 s window against the
// ceiling of one call per task per interval.
func checkPollWindows(t *testing.T, requests func(op string) int, tasks int, interval time.Duration, before int, start time.Time) {
	t.Helper()
	window := time.Since(start)
	// With leases and next-poll times, each task is asked about at most once
	// per interval, however many replicas poll.
	polls := requests("batches.retrieve") - before
	ceiling := int(float64(tasks) * (window.Seconds()/interval.Seconds() + 2))
	t.Logf("%d status calls for %d tasks in %s (ceiling for one call per task per interval: %d)", polls, tasks, window.Round(time.Millisecond), ceiling)
	if polls > ceiling {
		t.Errorf("%d status calls in %s, more than one per task per interval (%d)", polls, window, ceiling)
	}
	// A steady window: nothing changes, both replicas poll; together they
	// must not ask about a task more than once per interval.
	before, start = requests("batches.retrieve"), time.Now()
	time.Sleep(3 * time.Second) // a measurement window, not synchronisation
	window = time.Since(start)
	polls = requests("batches.retrieve") - before
	ceiling = int(float64(tasks) * (window.Seconds()/interval.Seconds() + 1))
	t.Logf("steady state: %d status calls for %d tasks in %s (one per task per interval: at most %d)", polls, tasks, window.Round(time.Millisecond), ceiling)
	if polls > ceiling || polls < tasks {
		t.Errorf("%d status calls in %s, want between %d and %d", polls, window, tasks, ceiling)
	}
}
