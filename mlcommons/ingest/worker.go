package ingest

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/mlsidecar/mlsidecar/indexstore"
)

// scanEvery is how often a worker looks for ingestions to run.
var scanEvery = time.Second

// Worker runs due ingestions in the background. Every replica runs one;
// leases written with optimistic concurrency give each ingestion to one
// replica at a time, and a dead replica's ingestions are taken over, from
// their last checkpoint, once its leases expire.
type Worker struct {
	s     *Service
	owner string

	mu      sync.Mutex
	running map[string]bool
	wg      sync.WaitGroup
}

// NewWorker returns a worker of s; owner must be unique to the process.
func (s *Service) NewWorker(owner string) *Worker {
	return &Worker{s: s, owner: owner, running: map[string]bool{}}
}

// Run runs ingestions until ctx is done, then waits for the runs it
// started to store their checkpoints.
func (w *Worker) Run(ctx context.Context) {
	defer w.wg.Wait()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.s.wake:
		}
		if err := w.Cycle(ctx); err != nil && ctx.Err() == nil {
			w.s.o.Logger.Warn("ingestion scan failed", "err", err)
		}
		t.Reset(scanEvery)
	}
}

// Cycle starts every due ingestion it can lease, up to the concurrency.
func (w *Worker) Cycle(ctx context.Context) error {
	errFull := errors.New("full")
	err := w.s.o.Store.ScanDueIngestTasks(ctx, w.s.o.Now(), 100, func(hits []indexstore.Hit[indexstore.Task]) error {
		for _, h := range hits {
			w.mu.Lock()
			busy, full := w.running[h.ID], len(w.running) >= w.s.o.Concurrency
			w.mu.Unlock()
			if full {
				return errFull
			}
			if !busy {
				w.start(ctx, h)
			}
		}
		return nil
	})
	if errors.Is(err, errFull) {
		return nil
	}
	return err
}

// start leases one ingestion and runs it.
func (w *Worker) start(ctx context.Context, h indexstore.Hit[indexstore.Task]) {
	t := h.Doc
	if !t.IsOpenIngest() {
		return
	}
	st := *t.Ingest
	t.Ingest = &st
	st.LeaseOwner, st.LeaseUntil = w.owner, w.s.o.Now().Add(w.s.o.LeaseTTL).UnixMilli()
	if t.State == indexstore.TaskCreated {
		t.State = indexstore.TaskRunning
	}
	t.LastUpdateTime = w.s.o.Now().UnixMilli()
	res, err := w.s.o.Store.Tasks().Replace(ctx, h.ID, h.Version, t, indexstore.NoWait)
	if err != nil {
		if !errors.Is(err, indexstore.ErrConflict) && ctx.Err() == nil {
			w.s.o.Logger.Warn("cannot lease an ingestion", "task_id", h.ID, "err", err)
		}
		return
	}
	r, err := w.s.newRun(h.ID, t, res.At())
	if err != nil {
		// The stored request no longer parses or decrypts: the task
		// cannot run anywhere.
		w.s.failUnrunnable(ctx, h.ID, t, res.At(), err)
		return
	}
	w.mu.Lock()
	w.running[h.ID] = true
	w.mu.Unlock()
	w.wg.Go(func() {
		defer func() {
			w.mu.Lock()
			delete(w.running, h.ID)
			w.mu.Unlock()
		}()
		r.execute(ctx)
	})
}

// failUnrunnable fails a task whose run cannot even start.
func (s *Service) failUnrunnable(ctx context.Context, id string, t *indexstore.Task, at indexstore.Version, cause error) {
	t.State, t.Error = indexstore.TaskFailed, "Failed to batch ingest: "+describe(cause)
	t.Ingest.LeaseOwner, t.Ingest.LeaseUntil, t.Ingest.Caller, t.Ingest.Credential = "", 0, "", nil
	t.LastUpdateTime = s.o.Now().UnixMilli()
	if _, err := s.o.Store.Tasks().Replace(ctx, id, at, t, indexstore.NoWait); err != nil {
		s.o.Logger.Warn("cannot fail an unrunnable ingestion", "task_id", id, "err", err)
	}
	s.metrics.tasks.WithLabelValues(indexstore.TaskFailed).Inc()
}
