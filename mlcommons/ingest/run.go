package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

// A run is one replica's work on one ingestion while it holds the lease.
// The reading goroutine maps each line and adds its document to the
// Writer; the Tracker commits a line once its document is answered and its
// failure, if any, recorded; every checkpoint stores what is committed in
// the task and renews the lease. A run that stops — the replica killed,
// the cluster busy, the lease lost — leaves a checkpoint from which the
// next run reads on, and since every document's id is fixed by its line,
// a line written again overwrites its own document.

// Timings of a run; tests shorten them.
var (
	checkpointEvery = 2 * time.Second
	// closeTimeout bounds the flush of the last documents when a run ends.
	closeTimeout = 2 * time.Minute
)

const (
	// maxAttempts runs that stop on a transient failure fail the task.
	maxAttempts = 5
	// shownFailures are kept in the task; all are in the failures index.
	shownFailures = 10
	// flushFailuresAt pending failure records are written at once.
	flushFailuresAt = 200
	// maxRecordBytes of a failed line are kept with its failure.
	maxRecordBytes = 1 << 10
)

// errLeaseLost is a checkpoint refused because another replica took the
// task: this run stops and writes nothing more.
var errLeaseLost = errors.New("ingest: the lease was lost")

type run struct {
	s     *Service
	id    string
	label string // the metrics' source label

	mu   sync.Mutex // the task as last written, and its version
	task *indexstore.Task
	held indexstore.Version

	in      *Input
	kind    string
	mapper  *Mapper
	tracker *Tracker
	names   []string // the sources, the error files, the missing outputs
	mapped  int      // how many of names are mapped sources
	errEnd  int      // names[mapped:errEnd] are error files
	cred    map[string]string
	sizes   []int64

	fmu     sync.Mutex
	pending []indexstore.IngestFailure
	first   []indexstore.IngestFailure
	failed  int64 // failures seen in this run, for metrics
	indexed int64
}

// stop is why a run ended before its sources did.
type stop struct {
	err       error
	permanent bool // the task fails: trying again cannot help
}

func (s *Service) newRun(id string, t *indexstore.Task, held indexstore.Version) (*run, error) {
	st := t.Ingest
	in, err := ParseInput(st.Request)
	if err != nil {
		return nil, err
	}
	r := &run{s: s, id: id, task: t, held: held, in: in, kind: in.DataSource.Kind()}
	r.names = append(append(append([]string(nil), in.DataSource.Source...), st.ErrorFiles...), st.MissingOutputs...)
	r.mapped = len(in.DataSource.Source)
	r.errEnd = r.mapped + len(st.ErrorFiles)
	if r.mapped > 0 {
		if r.mapper, err = NewMapper(in, id); err != nil {
			return nil, err
		}
	}
	if r.cred, err = s.o.Keys().DecryptMap(st.Credential); err != nil {
		return nil, fmt.Errorf("the ingestion's credential does not decrypt: %w", err)
	}
	r.label = strings.ToLower(r.kind) // openai, s3
	if st.Provider != "" {
		r.label = st.Provider // the results of a batch job: its provider
	}
	r.tracker = NewTracker(fromCheckpoint(st.Checkpoint), len(r.names))
	r.sizes = make([]int64, len(r.names))
	for i := range r.sizes {
		r.sizes[i] = -1
		if i < len(st.Checkpoint.Sources) && st.Checkpoint.Sources[i].Size > 0 {
			r.sizes[i] = st.Checkpoint.Sources[i].Size
		}
	}
	r.first = append(r.first, t.IngestFailures...)
	return r, nil
}

// execute runs the ingestion until its sources end or it must stop, and
// writes the outcome.
func (r *run) execute(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	caller, err := r.s.openCaller(r.task.Ingest.Caller)
	if err != nil {
		r.end(ctx, &stop{err: fmt.Errorf("the caller's credentials do not decrypt: %w", err), permanent: true})
		return
	}
	client, err := r.s.o.Store.CallerClient(caller)
	if err != nil {
		r.end(ctx, &stop{err: err, permanent: true})
		return
	}
	wo := r.s.o.Writer
	wo.OnResult = r.answered
	wo.OnFlush = func(d time.Duration) { r.s.metrics.bulk.Observe(d.Seconds()) }
	w, err := NewWriter(ctx, client, wo)
	if err != nil {
		r.end(ctx, &stop{err: err, permanent: true})
		return
	}

	// Checkpoints run beside the reading; a lost lease stops the run.
	var lost error
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
		tick := time.NewTicker(min(checkpointEvery, r.s.o.LeaseTTL/3))
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if err := r.checkpoint(ctx); errors.Is(err, errLeaseLost) {
				lost = err
				cancel()
				return
			} else if err != nil && ctx.Err() == nil {
				r.s.o.Logger.Warn("ingestion checkpoint failed", "task_id", r.id, "err", err)
			}
		}
	})

	halt := r.read(ctx, w)
	// The last documents are flushed whatever stopped the reading, on a
	// context of their own: a shutdown must not lose what is in flight.
	closeCtx, closeCancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	defer closeCancel()
	if err := w.Close(closeCtx); err != nil && halt == nil {
		halt = &stop{err: err}
	}
	close(done)
	wg.Wait()
	if lost != nil {
		r.s.o.Logger.Info("ingestion taken over by another replica", "task_id", r.id)
		return
	}
	if halt == nil && ctx.Err() != nil {
		halt = &stop{err: ctx.Err()}
	}
	r.end(closeCtx, halt)
}

// read reads every source from its checkpoint, or until the run must stop.
func (r *run) read(ctx context.Context, w *Writer) *stop {
	cp := r.tracker.Progress()
	for i := range r.names {
		if cp.Sources[i].Done {
			continue
		}
		if i >= r.errEnd {
			// An input the job wrote no output for: one failed record.
			r.lineFailed(ctx, i, 1, 0, nil, "the batch job wrote no output for this input object; its records were not answered", 0)
			_ = r.tracker.End(i, 1)
			continue
		}
		if h := r.readSource(ctx, w, i, cp.Sources[i]); h != nil {
			return h
		}
	}
	return nil
}

func (r *run) readSource(ctx context.Context, w *Writer, i int, from SourceProgress) *stop {
	src, err := r.open(ctx, i, from.Offset)
	if err != nil {
		return &stop{err: err, permanent: permanentFailure(err)}
	}
	defer src.Close()
	if size := src.Size(); size >= 0 {
		r.mu.Lock()
		r.sizes[i] = size
		r.mu.Unlock()
	}
	line := from.Line
	for {
		if ctx.Err() != nil {
			return &stop{err: ctx.Err()}
		}
		if b := r.tracker.Blocked(); b != nil {
			return &stop{err: fmt.Errorf("a document of line %d of %s was not written: %s", b.Line, r.names[b.Source], b.Reason),
				permanent: b.Status == http.StatusUnauthorized || b.Status == http.StatusForbidden}
		}
		data, start, err := src.Next()
		var tooLong *LineTooLongError
		switch {
		case err == io.EOF:
			_ = r.tracker.End(i, start)
			return nil
		case errors.As(err, &tooLong):
			line++
			r.lineFailed(ctx, i, line, start, nil, err.Error(), 0)
			continue
		case err != nil:
			return &stop{err: err, permanent: permanentFailure(err)}
		}
		line++
		if i >= r.mapped {
			if len(strings.TrimSpace(string(data))) == 0 {
				_ = r.tracker.Line(i, line, start, 0)
				continue
			}
			r.lineFailed(ctx, i, line, start, data, providerFailure(data), 0)
			continue
		}
		if reason := r.providerFailed(data); reason != "" {
			r.lineFailed(ctx, i, line, start, data, reason, 0)
			continue
		}
		doc, f := r.mapper.MapLine(i, line, data)
		switch {
		case f != nil:
			r.lineFailed(ctx, i, line, start, data, f.Reason, 0)
		case doc == nil:
			_ = r.tracker.Line(i, line, start, 0)
		default:
			_ = r.tracker.Line(i, line, start, 1)
			doc.Record = bytes.Clone(data[:min(len(data), maxRecordBytes)])
			if err := w.Add(ctx, *doc); err != nil {
				return &stop{err: err}
			}
		}
	}
}

// open opens source i at offset.
func (r *run) open(ctx context.Context, i int, offset int64) (*Reader, error) {
	name := r.names[i]
	if i >= r.mapped || r.kind == TypeOpenAI {
		return OpenOpenAIFile(ctx, OpenAIOptions{Client: r.s.http, BaseURL: r.task.Ingest.BaseURL,
			APIKey: r.cred[CredentialOpenAIKey], FileID: name, CheckURL: r.s.o.Guard.CheckURL}, offset)
	}
	o := S3Options{URI: name}
	o.SetCredential(r.cred)
	return OpenS3(ctx, r.s.s3Options(o), offset)
}

// permanentFailure: a source the provider or the guard refuses (not
// found, denied, not allowed) will be refused again.
func permanentFailure(err error) bool {
	e, ok := mlerr.From(err)
	return ok && e.Status >= 400 && e.Status < 500 && e.Status != http.StatusTooManyRequests && e.Status != http.StatusRequestTimeout
}

// providerFailure is the reason of a line of an OpenAI error file.
func providerFailure(data []byte) string {
	var l struct {
		CustomID string `json:"custom_id"`
		Error    *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
		Response *struct {
			StatusCode int `json:"status_code"`
			Body       struct {
				Error *struct {
					Message string `json:"message"`
				} `json:"error"`
			} `json:"body"`
		} `json:"response"`
	}
	if err := json.Unmarshal(data, &l); err != nil {
		return "the provider failed this record (its error line is not valid JSON)"
	}
	msg := "the provider failed this record"
	switch {
	case l.Error != nil && l.Error.Message != "":
		msg += ": " + l.Error.Message
	case l.Response != nil && l.Response.Body.Error != nil:
		msg += fmt.Sprintf(": HTTP %d: %s", l.Response.StatusCode, l.Response.Body.Error.Message)
	}
	if l.CustomID != "" {
		msg += " (custom_id " + l.CustomID + ")"
	}
	return msg
}

// providerFailed is the reason of an output line in which the provider
// reports it failed the record, "" for any other line. Only a Bedrock job's
// output has such lines ({"recordId","modelInput","error":{...}}); OpenAI
// puts failed requests in the error file, and SageMaker fails whole
// objects.
func (r *run) providerFailed(data []byte) string {
	if r.task.Ingest.Provider != "bedrock" || !bytes.Contains(data, []byte(`"error"`)) {
		return ""
	}
	var l struct {
		RecordID    string          `json:"recordId"`
		ModelOutput json.RawMessage `json:"modelOutput"`
		Error       *struct {
			ErrorCode    json.RawMessage `json:"errorCode"`
			ErrorMessage string          `json:"errorMessage"`
		} `json:"error"`
	}
	if json.Unmarshal(data, &l) != nil || l.Error == nil || (l.ModelOutput != nil && string(l.ModelOutput) != "null") {
		return ""
	}
	msg := "the provider failed this record"
	if len(l.Error.ErrorCode) > 0 {
		msg += ": error " + strings.Trim(string(l.Error.ErrorCode), `"`)
	}
	if l.Error.ErrorMessage != "" {
		msg += ": " + l.Error.ErrorMessage
	}
	if l.RecordID != "" {
		msg += " (recordId " + l.RecordID + ")"
	}
	return msg
}

// lineFailed registers a line that failed before it became a document.
func (r *run) lineFailed(ctx context.Context, source int, line, start int64, data []byte, reason string, status int) {
	_ = r.tracker.Line(source, line, start, 0)
	_ = r.tracker.Fail(source, line)
	r.addFailure(ctx, source, line, data, reason, status)
}

func (r *run) addFailure(ctx context.Context, source int, line int64, data []byte, reason string, status int) {
	rec := data
	if len(rec) > maxRecordBytes {
		rec = rec[:maxRecordBytes]
	}
	f := indexstore.IngestFailure{TaskID: r.id, Source: source, SourceName: r.names[source], Line: line,
		Reason: reason, Status: status, Record: strings.ToValidUTF8(string(rec), "\uFFFD"), Time: r.s.o.Now().UnixMilli()}
	r.fmu.Lock()
	r.pending = append(r.pending, f)
	full := len(r.pending) >= flushFailuresAt
	r.fmu.Unlock()
	if full {
		r.flushFailures(ctx)
	}
}

// answered takes the Writer's Result for one document.
func (r *run) answered(res Result) {
	_ = r.tracker.Answer(res)
	switch res.Outcome {
	case Indexed:
		r.fmu.Lock()
		r.indexed++
		r.fmu.Unlock()
	case Rejected:
		r.addFailure(context.Background(), res.Source, res.Line, res.Record,
			fmt.Sprintf("the cluster rejected document %s: %s", res.ID, res.Reason), res.Status)
	}
}

// flushFailures writes the pending failure records; each line whose
// record is written may commit.
func (r *run) flushFailures(ctx context.Context) {
	r.fmu.Lock()
	batch := r.pending
	r.pending = nil
	r.fmu.Unlock()
	if len(batch) == 0 {
		return
	}
	err := r.s.o.Store.PutIngestFailures(ctx, batch)
	if err != nil {
		r.s.o.Logger.Warn("cannot record ingestion failures", "task_id", r.id, "count", len(batch), "err", err)
	}
	r.fmu.Lock()
	if err == nil {
		r.failed += int64(len(batch))
		for _, f := range batch {
			if len(r.first) < shownFailures {
				f.TaskID, f.Record, f.Time = "", "", 0
				r.first = append(r.first, f)
			}
		}
	}
	r.fmu.Unlock()
	for _, f := range batch {
		_ = r.tracker.Recorded(f.Source, f.Line, err == nil)
	}
}

// checkpoint stores what is committed and renews the lease.
func (r *run) checkpoint(ctx context.Context) error {
	r.flushFailures(ctx)
	return r.save(ctx, func(t *indexstore.Task) {
		t.Ingest.LeaseUntil = r.s.o.Now().Add(r.s.o.LeaseTTL).UnixMilli()
	})
}

// save writes the task with the committed progress, then mutate applied,
// from the version this run holds.
func (r *run) save(ctx context.Context, mutate func(*indexstore.Task)) error {
	p := r.tracker.Progress()
	r.mu.Lock()
	defer r.mu.Unlock()
	t := *r.task
	st := *t.Ingest
	t.Ingest = &st
	st.Checkpoint = r.toCheckpoint(p)
	t.IngestCounts = &indexstore.IngestCounts{Total: p.Total, Indexed: p.Indexed, Failed: p.Failed}
	r.fmu.Lock()
	t.IngestFailures = append([]indexstore.IngestFailure(nil), r.first...)
	r.fmu.Unlock()
	progress := r.fraction(p)
	t.Progress = &progress
	t.LastUpdateTime = r.s.o.Now().UnixMilli()
	mutate(&t)
	res, err := r.s.o.Store.Tasks().Replace(ctx, r.id, r.held, &t, indexstore.NoWait)
	if errors.Is(err, indexstore.ErrConflict) || errors.Is(err, indexstore.ErrNotFound) {
		return errLeaseLost
	}
	if err != nil {
		return err
	}
	for i, sp := range p.Sources {
		if prev := r.task.Ingest.Checkpoint; i < len(prev.Sources) {
			r.s.metrics.bytes.WithLabelValues(r.label).Add(float64(max(0, sp.Offset-prev.Sources[i].Offset)))
		} else {
			r.s.metrics.bytes.WithLabelValues(r.label).Add(float64(sp.Offset))
		}
	}
	r.task, r.held = &t, res.At()
	return nil
}

// fraction is the progress 0–1: per source, done, or the committed share
// of its bytes.
func (r *run) fraction(p Progress) float64 {
	if len(p.Sources) == 0 {
		return 1
	}
	var sum float64
	for i, sp := range p.Sources {
		switch {
		case sp.Done:
			sum++
		case r.sizes[i] > 0:
			sum += min(1, float64(sp.Offset)/float64(r.sizes[i]))
		}
	}
	return sum / float64(len(p.Sources))
}

// end writes how the run ended: the task's final state when its sources
// are done or it cannot go on, else the lease given back for a later run.
func (r *run) end(ctx context.Context, h *stop) {
	r.flushFailures(ctx)
	now := r.s.o.Now()
	final := ""
	reason := ""
	p := r.tracker.Progress()
	switch {
	case h == nil && allDone(p):
		switch {
		case p.Indexed == 0 && p.Failed == 0:
			final, reason = indexstore.TaskFailed, msgEmptyBulk
		case p.Indexed == 0:
			final, reason = indexstore.TaskFailed, fmt.Sprintf("No record was ingested: all %d failed (see ingest_failures and the failures index)", p.Failed)
		case p.Failed > 0:
			final = indexstore.TaskCompletedWithError
		default:
			final = indexstore.TaskCompleted
		}
	case h == nil:
		h = &stop{err: errors.New("the sources ended before every line was committed")}
		fallthrough
	default:
		reason = "Failed to batch ingest: " + describe(h.err)
		if h.permanent || r.task.Ingest.Attempts+1 >= maxAttempts {
			final = indexstore.TaskFailed
		}
	}
	if final != "" && p.Failed > 0 && r.task.Ingest.DLQ != nil {
		// Before the end is stored: a run that dies here writes it again.
		if err := r.s.deadLetterFailures(ctx, r.id, r.task.Ingest.DLQ, r.cred); err != nil {
			reason = strings.TrimPrefix(reason+"; ", "; ") + "the failed records were not written to the dead-letter queue: " + describe(err)
		}
	}
	err := r.save(ctx, func(t *indexstore.Task) {
		t.Ingest.LeaseOwner, t.Ingest.LeaseUntil = "", 0
		if final == "" {
			// Stopped for now: another run (on any replica) reads on. A
			// shutdown is no failed attempt.
			if !errors.Is(h.err, context.Canceled) {
				t.Ingest.Attempts++
				t.Error = reason
			}
			t.Ingest.NextRun = now.Add(retryDelay(t.Ingest.Attempts)).UnixMilli()
			return
		}
		t.State = final
		t.Error = reason
		// The credentials are needed no more.
		t.Ingest.Caller, t.Ingest.Credential = "", nil
	})
	if err != nil {
		r.s.o.Logger.Warn("cannot store the end of an ingestion run", "task_id", r.id, "err", err)
		return
	}
	r.fmu.Lock()
	r.s.metrics.documents.WithLabelValues(r.label).Add(float64(r.indexed))
	r.s.metrics.failures.WithLabelValues(r.label).Add(float64(r.failed))
	r.indexed, r.failed = 0, 0
	r.fmu.Unlock()
	if final != "" {
		r.s.metrics.tasks.WithLabelValues(final).Inc()
		r.s.o.Logger.Info("ingestion ended", "task_id", r.id, "state", final, "indexed", p.Indexed, "failed", p.Failed)
	}
}

func allDone(p Progress) bool {
	for _, sp := range p.Sources {
		if !sp.Done {
			return false
		}
	}
	return true
}

// describe is an error's text for the task: an *mlerr.Error's reason, or
// the error itself (the sidecar's own errors name no secret).
func describe(err error) string {
	if e, ok := mlerr.From(err); ok {
		return e.Reason
	}
	return err.Error()
}

// retryDelay backs off runs that stopped: 2 s doubling to at most 5 min.
func retryDelay(attempts int) time.Duration {
	return min(2*time.Second<<min(attempts, 8), 5*time.Minute)
}

func fromCheckpoint(c indexstore.IngestCheckpoint) Progress {
	p := Progress{Total: c.Total, Indexed: c.Indexed, Failed: c.Failed}
	for _, s := range c.Sources {
		p.Sources = append(p.Sources, SourceProgress{Offset: s.Offset, Line: s.Line, Done: s.Done})
	}
	return p
}

func (r *run) toCheckpoint(p Progress) indexstore.IngestCheckpoint {
	c := indexstore.IngestCheckpoint{Total: p.Total, Indexed: p.Indexed, Failed: p.Failed}
	for i, s := range p.Sources {
		c.Sources = append(c.Sources, indexstore.IngestSourceCheckpoint{Offset: s.Offset, Line: s.Line, Done: s.Done, Size: max(0, r.sizes[i])})
		c.Size += s.Offset
	}
	return c
}
