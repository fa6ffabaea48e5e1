//go:build bench

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"
)

// TestBenchBatch measures what batch predict costs in mlsidecar: the
// _batch_predict submission path with the provider's own time taken out,
// and one poll cycle over every open task, each next to the same calls sent
// straight to the OpenAI double. It prints numbers and never asserts them;
// it fails only when something functionally breaks (tasks not created, not
// polled, not stored). Everything shares this machine's CPUs: compare the
// ratios, not the absolute numbers.
//
// Environment: BENCH_BATCH_TASKS (default 10000), BENCH_BATCH_CONCURRENCY
// (submitting clients, default 32), BENCH_BATCH_CPUPROFILE (a file: the
// sidecar's CPU profile over the poll cycle is written there) and
// BENCH_BATCH_CPUPROFILE_SECONDS (default 30).
func TestBenchBatch(t *testing.T) {
	const prefix, pollConcurrency = ".bench-batch-", 16
	tasks := benchEnvInt(t, "BENCH_BATCH_TASKS", 10000)
	submitters := benchEnvInt(t, "BENCH_BATCH_CONCURRENCY", 32)

	// Given an OpenAI double behind a timing wrapper, whose clock only the
	// test moves, and a sidecar that does not poll while tasks are created.
	// Info, not warn: startSidecar needs the "mlsidecar started" record, and
	// nothing on the batch paths logs at info.
	d, clock := batchDouble(t)
	prov := newBenchProvider(d.Handler())
	t.Cleanup(prov.srv.Close)
	submitter := startSidecar(t, withArgs("--index-prefix", prefix, "--max-batch-inference-tasks", "20000",
		"--batch-poll-interval", "1h", "--batch-poll-rate-per-connector", "100000", "--log-level", "info")...)
	input := uploadBatchInput(t, d, embeddingLine("x", "x"))
	model := deployModel(t, submitter, openAIConnector(prov.srv.URL, input, ""))

	// When N jobs are submitted by C clients at once.
	t.Logf("submitting %d batch jobs with %d clients", tasks, submitters)
	sub := benchSubmit(t, tasks, submitters, func(ctx context.Context, client *http.Client, i int) (string, error) {
		status, body, err := benchPost(ctx, client, submitter.url+"/_plugins/_ml/models/"+model+"/_batch_predict", `{"parameters":{}}`, nil)
		if err != nil {
			return "", err
		}
		var res struct {
			TaskID    string `json:"task_id"`
			RemoteJob struct {
				ID string `json:"id"`
			} `json:"remote_job"`
		}
		if status != http.StatusOK || json.Unmarshal(body, &res) != nil || res.TaskID == "" || res.RemoteJob.ID == "" {
			return "", fmt.Errorf("_batch_predict %d: %d %s", i, status, body)
		}
		return res.RemoteJob.ID, nil
	})
	if got := countTasks(t, prefix)["RUNNING"]; got != tasks {
		t.Fatalf("running tasks after the submissions = %d, want %d", got, tasks)
	}
	created := prov.createTimes()
	own := make([]time.Duration, 0, tasks)
	provider := make([]time.Duration, 0, tasks)
	for i, id := range sub.ids {
		p, ok := created[id]
		if !ok {
			t.Fatalf("the double never timed the creation of %s", id)
		}
		provider = append(provider, p)
		own = append(own, sub.latencies[i]-p)
	}

	// The yardstick: the same creations straight to a fresh double (the
	// double's cost grows with the batches it holds).
	direct, _ := batchDouble(t)
	directInput := uploadBatchInput(t, direct, embeddingLine("x", "x"))
	createBody := `{"input_file_id":"` + directInput + `","endpoint":"/v1/embeddings","completion_window":"24h"}`
	auth := map[string]string{"Authorization": "Bearer " + openAIKey}
	t.Logf("creating %d batches straight at the double with %d clients", tasks, submitters)
	directSub := benchSubmit(t, tasks, submitters, func(ctx context.Context, client *http.Client, i int) (string, error) {
		status, body, err := benchPost(ctx, client, direct.URL()+"/v1/batches", createBody, auth)
		if err != nil {
			return "", err
		}
		if status != http.StatusOK {
			return "", fmt.Errorf("direct create %d: %d %s", i, status, body)
		}
		return "", nil
	})

	// Every task due now, no leases; the first sidecar goes away so the
	// fresh one's first cycle finds them all.
	submitter.stop(t)
	clock.Advance(time.Minute) // validating -> in_progress, and it stays there
	status, _, body := do(t, "POST", node.url()+"/"+prefix+"tasks/_update_by_query?refresh=true",
		stringsReader(`{"query":{"term":{"task_type":"BATCH_PREDICTION"}},"script":{"lang":"painless",
		"source":"ctx._source.batch.next_poll = 0L; ctx._source.batch.remove('lease_owner'); ctx._source.batch.remove('lease_until');"}}`),
		map[string]string{"Content-Type": "application/json"})
	var ubq struct{ Updated int }
	_ = json.Unmarshal(body, &ubq)
	if status != 200 || ubq.Updated != tasks {
		t.Fatalf("making every task due: %d %s", status, body)
	}

	// When a fresh sidecar starts: its first cycle polls every task once.
	before := d.Requests("batches.retrieve")
	prov.resetRetrieves()
	start := time.Now()
	sc := startSidecar(t, withArgs("--index-prefix", prefix, "--max-batch-inference-tasks", "20000",
		"--batch-poll-interval", "10m", "--batch-poll-rate-per-connector", "100000", "--log-level", "info")...)
	readyAfter := time.Since(start)
	pid := sc.cmd.Process.Pid
	cpuBefore := benchCPUSeconds(t, pid)
	profiled := benchProfile(t, sc)

	var allPolled, cycleDone time.Duration
	deadline := time.Now().Add(30 * time.Minute)
	for cycleDone == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no poll cycle ended within 30m; %d of %d tasks polled", d.Requests("batches.retrieve")-before, tasks)
		}
		if allPolled == 0 && d.Requests("batches.retrieve")-before >= tasks {
			allPolled = time.Since(start)
		}
		if sc.metric(t, "mlsidecar_batch_poll_cycle_seconds_count", nil) >= 1 {
			cycleDone = time.Since(start)
		}
		time.Sleep(100 * time.Millisecond) // a sampling period, not synchronisation
	}
	cpu := benchCPUSeconds(t, pid) - cpuBefore
	rss := procStatusBytes(t, pid, "VmRSS:")
	hwm := procStatusBytes(t, pid, "VmHWM:")
	cycles := sc.metric(t, "mlsidecar_batch_poll_cycle_seconds_count", nil)
	cycleSum := sc.metric(t, "mlsidecar_batch_poll_cycle_seconds_sum", nil)
	retrieves := d.Requests("batches.retrieve") - before
	firstPoll, lastPoll, pollTimes := prov.retrieveWindow()
	if profiled != nil {
		if err := <-profiled; err != nil {
			t.Errorf("CPU profile: %v", err)
		}
	}

	// Then every task was asked about once and stored what the double said.
	if retrieves != tasks {
		t.Errorf("status calls in the first cycle = %d, want %d (one per task)", retrieves, tasks)
	}
	do(t, "POST", node.url()+"/"+prefix+"tasks/_refresh", nil, nil)
	_, _, body = do(t, "POST", node.url()+"/"+prefix+"tasks/_count",
		stringsReader(`{"query":{"term":{"remote_job.status":"in_progress"}}}`), map[string]string{"Content-Type": "application/json"})
	if got := jsonCount(body); got != tasks {
		t.Errorf("tasks storing the in_progress status = %d, want %d", got, tasks)
	}
	refreshErrors := sc.metric(t, "mlsidecar_batch_refreshes_total", map[string]string{"outcome": "error"})

	// The yardstick: the same status calls straight at the double, with the
	// poller's concurrency.
	t.Logf("asking the double about %d batches with %d clients", tasks, pollConcurrency)
	directPoll := benchSubmit(t, tasks, pollConcurrency, func(ctx context.Context, client *http.Client, i int) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.URL()+"/v1/batches/"+sub.ids[i], nil)
		if err != nil {
			return "", err
		}
		req.Header.Set("Authorization", "Bearer "+openAIKey)
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return "", err
		}
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("direct retrieve %d: %d %s", i, resp.StatusCode, b)
		}
		return "", nil
	})

	// The summary.
	window := lastPoll.Sub(firstPoll)
	var out bytes.Buffer
	fmt.Fprintf(&out, "\nbench-batch: tasks=%d submit-concurrency=%d poll-concurrency=%d\n\n", tasks, submitters, pollConcurrency)
	tw := tabwriter.NewWriter(&out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "submission\tcalls/s\tp50 ms\tp99 ms\t(sidecar − provider) p50/p99 ms\tprovider p50/p99 ms\tdirect-to-double calls/s\tdirect p50 ms\tratio calls/s\tratio p50\t")
	fmt.Fprintf(tw, "sidecar\t%.0f\t%s\t%s\t%s / %s\t%s / %s\t%.0f\t%s\t%.3f\t%.1f\t\n",
		sub.rate(), benchMS(benchPct(sub.latencies, .50)), benchMS(benchPct(sub.latencies, .99)),
		benchMS(benchPct(own, .50)), benchMS(benchPct(own, .99)),
		benchMS(benchPct(provider, .50)), benchMS(benchPct(provider, .99)),
		directSub.rate(), benchMS(benchPct(directSub.latencies, .50)),
		sub.rate()/directSub.rate(), float64(benchPct(sub.latencies, .50))/float64(benchPct(directSub.latencies, .50)))
	tw.Flush()
	fmt.Fprintln(&out)
	tw = tabwriter.NewWriter(&out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "poll cycle\twall s\tall polled s\tstatus calls/s\tsidecar cycle s (histogram)\tCPU s\tRSS MiB\tHWM MiB\tdirect wall s\tdirect calls/s\tratio cycle/direct\tratio wall/direct\t")
	fmt.Fprintf(tw, "sidecar\t%.2f\t%.2f\t%.0f\t%.2f\t%.2f\t%.1f\t%.1f\t%.2f\t%.0f\t%.1f\t%.1f\t\n",
		cycleDone.Seconds(), allPolled.Seconds(), float64(retrieves)/window.Seconds(), cycleSum, cpu,
		float64(rss)/(1<<20), float64(hwm)/(1<<20), directPoll.wall.Seconds(), directPoll.rate(),
		cycleSum/directPoll.wall.Seconds(), cycleDone.Seconds()/directPoll.wall.Seconds())
	tw.Flush()
	fmt.Fprintf(&out, "\nsubmission: sidecar wall %.1fs, direct wall %.2fs; provider handling counted in the wrapper in front of the double\n",
		sub.wall.Seconds(), directSub.wall.Seconds())
	fmt.Fprintf(&out, "poll cycle: sidecar ready %.2fs after start; status calls %d (first %.2fs, last %.2fs after start; provider p50/p99 %s/%s ms); cycles observed %.0f; refresh errors %.0f; CPU %.0f%% of one core over the wall\n",
		readyAfter.Seconds(), retrieves, firstPoll.Sub(start).Seconds(), lastPoll.Sub(start).Seconds(),
		benchMS(benchPct(pollTimes, .50)), benchMS(benchPct(pollTimes, .99)), cycles, refreshErrors, 100*cpu/cycleDone.Seconds())
	fmt.Fprintf(&out, "direct poll: p50/p99 %s/%s ms\n", benchMS(benchPct(directPoll.latencies, .50)), benchMS(benchPct(directPoll.latencies, .99)))
	fmt.Fprint(os.Stdout, out.String())
	benchLogSummary(t, "submitting", submitter)
	benchLogSummary(t, "polling", sc)
}

// benchProvider times the double's own handling of batch creations (by the
// batch id it answered) and status calls, so the sidecar's share of a call
// can be told apart from the provider's.
type benchProvider struct {
	srv *httptest.Server

	mu         sync.Mutex
	create     map[string]time.Duration
	retrieve   []time.Duration
	first, end time.Time
}

func newBenchProvider(h http.Handler) *benchProvider {
	p := &benchProvider{create: map[string]time.Duration{}}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/v1/batches":
			tw := &benchTee{ResponseWriter: w}
			h.ServeHTTP(tw, r)
			took := time.Since(start)
			var b struct{ ID string }
			if json.Unmarshal(tw.body.Bytes(), &b) == nil && b.ID != "" {
				p.mu.Lock()
				p.create[b.ID] = took
				p.mu.Unlock()
			}
		case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/batches/"):
			h.ServeHTTP(w, r)
			end := time.Now()
			p.mu.Lock()
			p.retrieve = append(p.retrieve, end.Sub(start))
			if p.first.IsZero() {
				p.first = start
			}
			p.end = end
			p.mu.Unlock()
		default:
			h.ServeHTTP(w, r)
		}
	}))
	return p
}

func (p *benchProvider) createTimes() map[string]time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.create)
}

func (p *benchProvider) resetRetrieves() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.retrieve, p.first, p.end = nil, time.Time{}, time.Time{}
}

// retrieveWindow is when the first status call arrived, when the last one
// was answered, and how long each took the double.
func (p *benchProvider) retrieveWindow() (first, last time.Time, took []time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.first, p.end, slices.Clone(p.retrieve)
}

// benchTee keeps a copy of the answer's body.
type benchTee struct {
	http.ResponseWriter
	body bytes.Buffer
}

func (w *benchTee) Write(b []byte) (int, error) {
	w.body.Write(b)
	return w.ResponseWriter.Write(b)
}

// benchRun is one load run: each call's latency and result, in call order.
type benchRun struct {
	latencies []time.Duration
	ids       []string
	wall      time.Duration
}

func (r benchRun) rate() float64 { return float64(len(r.latencies)) / r.wall.Seconds() }

// benchSubmit makes n calls with c clients sharing one keep-alive pool and
// fails the test if any call fails.
func benchSubmit(t *testing.T, n, c int, call func(ctx context.Context, client *http.Client, i int) (string, error)) benchRun {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 2 * c, MaxIdleConnsPerHost: c, DisableCompression: true}}
	defer client.CloseIdleConnections()
	run := benchRun{latencies: make([]time.Duration, n), ids: make([]string, n)}
	var (
		next   atomic.Int64
		failed atomic.Int64
		wg     sync.WaitGroup
		mu     sync.Mutex
		errs   []error
	)
	start := time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || failed.Load() > 10 {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				begin := time.Now()
				id, err := call(ctx, client, i)
				run.latencies[i] = time.Since(begin)
				cancel()
				run.ids[i] = id
				if err != nil {
					failed.Add(1)
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	run.wall = time.Since(start)
	if len(errs) > 0 {
		t.Fatalf("%d calls failed, the first: %v", len(errs), errs[0])
	}
	return run
}

func benchPost(ctx context.Context, client *http.Client, url, body string, header map[string]string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// benchPct is the nearest-rank percentile q of ds.
func benchPct(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return ds[max(0, int(math.Ceil(q*float64(len(ds))))-1)]
}

func benchMS(d time.Duration) string { return strconv.FormatFloat(d.Seconds()*1000, 'f', 1, 64) }

func benchEnvInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}

// benchCPUSeconds is the user plus system CPU time of a process.
func benchCPUSeconds(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The command name may hold spaces; the fields after it do not.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("parsing /proc/%d/stat: %q", pid, b)
	}
	return (utime + stime) / benchClockTicks()
}

var benchClockTicks = sync.OnceValue(func() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return 100
	}
	hz, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil || hz <= 0 {
		return 100
	}
	return hz
})

// benchProfile starts a CPU profile of the sidecar when
// BENCH_BATCH_CPUPROFILE names a file; the channel reports when it is
// written.
func benchProfile(t *testing.T, sc *sidecar) <-chan error {
	t.Helper()
	path := os.Getenv("BENCH_BATCH_CPUPROFILE")
	if path == "" {
		return nil
	}
	seconds := benchEnvInt(t, "BENCH_BATCH_CPUPROFILE_SECONDS", 30)
	url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", sc.internalURL, seconds)
	done := make(chan error, 1)
	go func() {
		resp, err := http.Get(url)
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s: %d %s", url, resp.StatusCode, b)
		}
		if err == nil {
			err = os.WriteFile(path, b, 0o644)
		}
		done <- err
	}()
	t.Logf("profiling the sidecar's CPU for %ds into %s", seconds, path)
	return done
}

// benchLogSummary prints how many warnings and errors the sidecar logged,
// and the distinct messages, since a fast run that failed quietly is not a
// result.
func benchLogSummary(t *testing.T, which string, sc *sidecar) {
	t.Helper()
	counts := map[string]int{}
	for _, line := range strings.Split(sc.logs.String(), "\n") {
		var rec struct{ Level, Msg, Err string }
		if json.Unmarshal([]byte(line), &rec) != nil || (rec.Level != "WARN" && rec.Level != "ERROR") {
			continue
		}
		counts[rec.Level+" "+rec.Msg+": "+rec.Err]++
	}
	if len(counts) == 0 {
		t.Logf("the %s sidecar logged no warnings or errors", which)
	}
	for msg, n := range counts {
		t.Logf("the %s sidecar logged %d× %s", which, n, msg)
	}
}
