package batch

import (
	"context"
	"errors"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/provider"
	"github.com/mlsidecar/mlsidecar/mlcommons/remote"
)

// pollMargin is what one poll may take beyond its status call's own
// deadline (remote.Timeout): the lease and refresh writes, so a call that
// timed out is still recorded as a failure.
const pollMargin = 10 * time.Second

// Worker refreshes due batch tasks in the background. Every replica runs
// one; leases written with optimistic concurrency make each task refreshed
// by one replica per interval, and a dead replica's tasks are taken over
// once its leases expire.
type Worker struct {
	s *Service
	// owner names this replica in the leases it writes.
	owner string
	// margin is pollMargin; tests shorten it.
	margin time.Duration

	mu       sync.Mutex
	limiters map[string]*rate.Limiter // by connector version
	gauged   map[[2]string]float64    // the series of mlsidecar_batch_tasks last set
}

// NewWorker returns the worker of s; owner must be unique to the process.
func NewWorker(s *Service, owner string) *Worker {
	return &Worker{s: s, owner: owner, margin: pollMargin, limiters: map[string]*rate.Limiter{}}
}

// scanPage is how many due tasks one scroll page brings.
const scanPage = 500

// Run polls until ctx is done.
func (w *Worker) Run(ctx context.Context) {
	tick := min(w.s.set.PollInterval/4, 5*time.Second)
	t := time.NewTimer(jitter(tick))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		if err := w.Cycle(ctx); err != nil && ctx.Err() == nil {
			w.s.log.Warn("batch poll cycle failed", "err", err)
		}
		w.s.metrics.pollCycle.Observe(time.Since(start).Seconds())
		w.updateGauge(ctx)
		t.Reset(tick + jitter(tick/5))
	}
}

func (w *Worker) limiter(key string) *rate.Limiter {
	w.mu.Lock()
	defer w.mu.Unlock()
	l, ok := w.limiters[key]
	if !ok {
		l = rate.NewLimiter(rate.Limit(w.s.set.RatePerConnector), max(1, int(w.s.set.RatePerConnector)))
		w.limiters[key] = l
	}
	return l
}

// Cycle refreshes every task that is due and not leased by another replica,
// and returns when all of them are done. Each refresh has its own deadline
// (see pollTimeout), so a provider that stalls holds one worker for that
// long at most and never the whole cycle.
func (w *Worker) Cycle(ctx context.Context) error {
	work := make(chan indexstore.Hit[indexstore.Task])
	var wg sync.WaitGroup
	for range max(1, w.s.set.Concurrency) {
		wg.Go(func() {
			for h := range work {
				w.poll(ctx, h)
			}
		})
	}
	err := w.s.store.ScanDueBatchTasks(ctx, w.s.now(), scanPage, func(hits []indexstore.Hit[indexstore.Task]) error {
		for _, h := range hits {
			select {
			case work <- h:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	close(work)
	wg.Wait()
	return err
}

// poll takes the lease of one task and refreshes it.
func (w *Worker) poll(ctx context.Context, h indexstore.Hit[indexstore.Task]) {
	t := h.Doc
	if !t.IsOpenBatch() {
		return
	}
	if err := w.limiter(t.Batch.ClientKey).Wait(ctx); err != nil {
		return
	}
	timeout := w.pollTimeout(t)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	takeover := t.Batch.LeaseOwner != "" && t.Batch.LeaseOwner != w.owner
	// The lease outlasts the poll: nobody else may resubmit a job while
	// this replica may still be submitting it.
	t.Batch.LeaseOwner, t.Batch.LeaseUntil = w.owner, w.s.now().Add(max(w.s.set.LeaseTTL, timeout)).UnixMilli()
	leased, err := w.s.store.Tasks().Replace(ctx, h.ID, h.Version, t, indexstore.NoWait)
	if err != nil {
		if !errors.Is(err, indexstore.ErrConflict) && ctx.Err() == nil {
			w.s.log.Warn("cannot lease batch task", "task_id", h.ID, "err", err)
		}
		return // another replica has it, or it changed: the next cycle decides
	}
	if takeover {
		w.s.metrics.takeovers.Inc()
	}
	at := leased.At()
	if t.Batch.Submission != nil {
		result, err := w.s.resume(ctx, h.ID, t, at)
		if err != nil && ctx.Err() == nil {
			w.s.log.Warn("resuming a batch submission failed", "task_id", h.ID, "provider", t.Batch.Provider, "err", err)
		}
		w.s.metrics.refreshes.WithLabelValues(providerLabel(t.Batch.Provider), string(result)).Inc()
		return
	}
	_, result, err := w.s.refresh(ctx, h.ID, t, &at, true)
	w.s.metrics.refreshes.WithLabelValues(providerLabel(t.Batch.Provider), string(result)).Inc()
	if err != nil && ctx.Err() == nil {
		w.s.log.Debug("batch task refresh failed", "task_id", h.ID, "provider", t.Batch.Provider, "err", err)
	}
}

// pollTimeout bounds one poll of t: its status call's deadline, from the
// connector's client_config, plus the margin for the store writes around it.
func (w *Worker) pollTimeout(t *indexstore.Task) time.Duration {
	cfg := remote.DefaultConfig()
	if c := t.Batch.Connector; c != nil && c.ClientConfig != nil {
		cfg = *c.ClientConfig
	}
	if t.Batch.Submission != nil {
		// A resumed submission may list the provider's jobs, then submit.
		return 2*remote.Timeout(cfg) + w.margin
	}
	return remote.Timeout(cfg) + w.margin
}

// providerLabel is a stored provider name as a metric label: tasks stored
// before names were fixed may carry a caller's choice, which would make the
// label unbounded.
func providerLabel(name string) string { return provider.Named(name).Name() }

// updateGauge sets mlsidecar_batch_tasks from the tasks index.
func (w *Worker) updateGauge(ctx context.Context) {
	counts, err := w.s.store.CountBatchTasks(ctx)
	if err != nil {
		return
	}
	sums := map[[2]string]float64{}
	for _, c := range counts {
		sums[[2]string{c.State, providerLabel(c.Provider)}] += c.Count
	}
	// Set, then drop what is gone, rather than Reset: a scrape never sees
	// a series missing half-way.
	for k, n := range sums {
		w.s.metrics.batchTasks.WithLabelValues(k[0], k[1]).Set(n)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for k := range w.gauged {
		if _, ok := sums[k]; !ok {
			w.s.metrics.batchTasks.DeleteLabelValues(k[0], k[1])
		}
	}
	w.gauged = sums
}
