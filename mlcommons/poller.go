package mlcommons

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/mlsidecar/mlsidecar/indexstore"
)

// BatchOptions configure batch predict and its poller.
type BatchOptions struct {
	// PollInterval is how often each open batch task is refreshed.
	PollInterval time.Duration
	// MaxPollFailures consecutive failed refreshes make a task UNREACHABLE.
	MaxPollFailures int
	// MaxTasks bounds the open batch tasks (ML Commons'
	// max_batch_inference_tasks, counted for real).
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

// DefaultBatchOptions are mlsidecar's defaults.
func DefaultBatchOptions() BatchOptions {
	return BatchOptions{PollInterval: time.Minute, MaxPollFailures: 10, MaxTasks: 100, Concurrency: 16,
		RatePerConnector: 10, LeaseTTL: 2 * time.Minute, Status: DefaultStatusRules()}
}

func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d)))
}

// RunPoller refreshes due batch tasks until ctx is done. Every replica runs
// it; leases written with optimistic concurrency make each task refreshed by
// one replica per interval, and a dead replica's tasks are taken over once
// its leases expire.
func (a *API) RunPoller(ctx context.Context, owner string) {
	p := &poller{api: a, owner: owner, limiters: map[string]*rate.Limiter{}}
	tick := min(a.batch.PollInterval/4, 5*time.Second)
	t := time.NewTimer(jitter(tick))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if a.Ready() {
			start := time.Now()
			if err := p.cycle(ctx); err != nil && ctx.Err() == nil {
				a.log.Warn("batch poll cycle failed", "err", err)
			}
			a.metrics.pollCycle.Observe(time.Since(start).Seconds())
			a.updateBatchGauge(ctx)
		}
		t.Reset(tick + jitter(tick/5))
	}
}

type poller struct {
	api   *API
	owner string

	mu       sync.Mutex
	limiters map[string]*rate.Limiter
}

func (p *poller) limiter(key string) *rate.Limiter {
	p.mu.Lock()
	defer p.mu.Unlock()
	l, ok := p.limiters[key]
	if !ok {
		l = rate.NewLimiter(rate.Limit(p.api.batch.RatePerConnector), max(1, int(p.api.batch.RatePerConnector)))
		p.limiters[key] = l
	}
	return l
}

// cycle refreshes every task that is due and not leased by another replica.
func (p *poller) cycle(ctx context.Context) error {
	a := p.api
	now := a.now().UnixMilli()
	query := map[string]any{"bool": map[string]any{
		"filter": []any{
			map[string]any{"term": map[string]any{"task_type": taskBatchPrediction}},
			map[string]any{"terms": map[string]any{"state": []string{taskCreated, taskRunning, taskCancelling}}},
			map[string]any{"range": map[string]any{"batch.next_poll": map[string]any{"lte": now}}},
		},
		"must_not": []any{map[string]any{"range": map[string]any{"batch.lease_until": map[string]any{"gt": now}}}},
	}}
	work := make(chan indexstore.Doc)
	var wg sync.WaitGroup
	for range max(1, a.batch.Concurrency) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for doc := range work {
				p.poll(ctx, doc)
			}
		}()
	}
	err := a.store.Scan(ctx, indexstore.Tasks, query, 500, func(docs []indexstore.Doc) error {
		for _, d := range docs {
			select {
			case work <- d:
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
func (p *poller) poll(ctx context.Context, doc indexstore.Doc) {
	a := p.api
	var t Task
	if err := json.Unmarshal(doc.Source, &t); err != nil || !t.isOpenBatch() {
		return
	}
	if err := p.limiter(t.Batch.ClientKey).Wait(ctx); err != nil {
		return
	}
	now := a.now().UnixMilli()
	takeover := t.Batch.LeaseOwner != "" && t.Batch.LeaseOwner != p.owner
	t.Batch.LeaseOwner, t.Batch.LeaseUntil = p.owner, now+a.batch.LeaseTTL.Milliseconds()
	leased, err := a.store.Replace(ctx, indexstore.Tasks, &doc, t, false)
	if err != nil {
		if !errors.Is(err, indexstore.ErrConflict) && ctx.Err() == nil {
			a.log.Warn("cannot lease batch task", "task_id", doc.ID, "err", err)
		}
		return // another replica has it, or it changed: next cycle decides
	}
	if takeover {
		a.metrics.takeovers.Inc()
	}
	held := &indexstore.Doc{ID: doc.ID, SeqNo: leased.SeqNo, PrimaryTerm: leased.PrimaryTerm}
	_, outcome, err := a.refresh(ctx, doc.ID, &t, held, true)
	a.metrics.refreshes.WithLabelValues(t.Batch.Provider, string(outcome)).Inc()
	if err != nil && ctx.Err() == nil {
		a.log.Debug("batch task refresh failed", "task_id", doc.ID, "provider", t.Batch.Provider, "err", err)
	}
}

// updateBatchGauge sets mlsidecar_batch_tasks from the tasks index.
func (a *API) updateBatchGauge(ctx context.Context) {
	body, _ := json.Marshal(map[string]any{
		"size":  0,
		"query": map[string]any{"term": map[string]any{"task_type": taskBatchPrediction}},
		"aggs": map[string]any{"provider": map[string]any{
			"terms": map[string]any{"field": "batch.provider", "size": 100},
			"aggs":  map[string]any{"state": map[string]any{"terms": map[string]any{"field": "state", "size": 20}}},
		}},
	})
	raw, err := a.store.Search(ctx, indexstore.Tasks, body, nil)
	if err != nil {
		return
	}
	var res struct {
		Aggregations struct {
			Provider struct {
				Buckets []struct {
					Key   string `json:"key"`
					State struct {
						Buckets []struct {
							Key   string  `json:"key"`
							Count float64 `json:"doc_count"`
						} `json:"buckets"`
					} `json:"state"`
				} `json:"buckets"`
			} `json:"provider"`
		} `json:"aggregations"`
	}
	if json.Unmarshal(raw, &res) != nil {
		return
	}
	a.metrics.batchTasks.Reset()
	for _, pb := range res.Aggregations.Provider.Buckets {
		for _, sb := range pb.State.Buckets {
			a.metrics.batchTasks.WithLabelValues(sb.Key, pb.Key).Set(sb.Count)
		}
	}
}
