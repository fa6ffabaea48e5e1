package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/opensearch-project/opensearch-go/v4"
	"github.com/opensearch-project/opensearch-go/v4/opensearchapi"
	"github.com/opensearch-project/opensearch-go/v4/opensearchutil"
)

// Outcome is what became of one document.
type Outcome int

const (
	// Indexed: the cluster wrote it.
	Indexed Outcome = iota + 1
	// Rejected: the cluster refused the item for good (a mapping
	// conflict, a bad id); a record failure.
	Rejected
	// Unwritten: nothing is known of it (the bulk request failed, the
	// cluster stayed busy through every retry, the run was stopped). Not
	// a record failure: its line must not be committed, and a resumed run
	// writes it again.
	Unwritten
)

func (o Outcome) String() string {
	switch o {
	case Indexed:
		return "indexed"
	case Rejected:
		return "rejected"
	case Unwritten:
		return "unwritten"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Result answers for one document added to a Writer.
type Result struct {
	Source  int
	Line    int64
	ID      string
	Outcome Outcome
	Status  int    // the item's HTTP status, 0 when the request got none
	Reason  string // why it was not indexed
	Record  []byte // the Doc's Record
}

// WriterOptions configure a Writer. Zero values take the defaults shown.
type WriterOptions struct {
	Workers       int           // bulk requests in flight (2)
	FlushBytes    int           // bulk body size that triggers a request (5 MiB)
	FlushInterval time.Duration // longest a document waits in a buffer (1s)
	Timeout       time.Duration // the bulk timeout parameter (1m)
	// RetryOnConflict lets the cluster retry an update that raced another
	// (two sources filling one document) (3).
	RetryOnConflict int
	// MaxRetries bounds the resends of an item answered 429 or 503 (5).
	MaxRetries int
	// Backoff is the wait before resend n (from 1): 500 ms doubling to at
	// most 10 s, with up to half again as jitter.
	Backoff func(attempt int) time.Duration
	// OnFlush, when set, receives the duration of each bulk request.
	OnFlush func(time.Duration)
	// OnResult receives exactly one Result per document added, from the
	// writer's goroutines, concurrently; it must not call the Writer.
	// Required.
	OnResult func(Result)
}

// Writer writes Docs through opensearch-go's BulkIndexer and answers for
// each: indexed, rejected with the cluster's reason, or unwritten. Items the
// cluster answers 429 or 503 are resent, alone of their bulk, with backoff;
// nothing else is retried (the client's transport already retries a
// request that fails whole with 502, 503 or 504). Every write is by id, so
// a resend or a replay cannot duplicate a document.
type Writer struct {
	bi     opensearchutil.BulkIndexer
	client *opensearchapi.Client
	o      WriterOptions
	cancel context.CancelFunc

	addMu     sync.RWMutex // Add holds it shared; Close takes it to stop adds
	addClosed bool

	sendMu     sync.RWMutex // held shared to send on retries; Close takes it to close it
	sendClosed bool
	retries    chan resend
	retried    chan struct{} // closed when the resend loop has returned

	mu      sync.Mutex
	seq     uint64
	pending map[uint64]ref // added, not answered
}

type ref struct {
	source int
	line   int64
	id     string
	record []byte
}

// resend is an item waiting to be sent again.
type resend struct {
	seq     uint64
	doc     Doc
	attempt int // resends so far, counting this one
	due     time.Time
	status  int
	reason  string
}

// flushStarted keys the start of a bulk request in its context.
type flushStarted struct{}

// ErrWriterClosed is Add after Close.
var ErrWriterClosed = errors.New("ingest: the writer is closed")

// NewWriter starts a Writer on client. ctx bounds its goroutines; Close
// must be called to flush and stop them.
func NewWriter(ctx context.Context, client *opensearchapi.Client, o WriterOptions) (*Writer, error) {
	if client == nil || o.OnResult == nil {
		return nil, errors.New("ingest: a writer needs a client and OnResult")
	}
	o = o.withDefaults()
	ctx, cancel := context.WithCancel(ctx)
	bi, err := opensearchutil.NewBulkIndexer(opensearchutil.BulkIndexerConfig{
		NumWorkers:    o.Workers,
		FlushBytes:    o.FlushBytes,
		FlushInterval: o.FlushInterval,
		Timeout:       o.Timeout,
		Client:        client,
		Context:       ctx,
		OnFlushStart: func(ctx context.Context) context.Context {
			return context.WithValue(ctx, flushStarted{}, time.Now())
		},
		OnFlushEnd: func(ctx context.Context) {
			if start, ok := ctx.Value(flushStarted{}).(time.Time); ok && o.OnFlush != nil {
				o.OnFlush(time.Since(start))
			}
		},
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("ingest: bulk indexer: %w", err)
	}
	w := &Writer{
		bi:      bi,
		client:  client,
		o:       o,
		cancel:  cancel,
		retries: make(chan resend, 256),
		retried: make(chan struct{}),
		pending: map[uint64]ref{},
	}
	go w.resendLoop(ctx)
	return w, nil
}

func (o WriterOptions) withDefaults() WriterOptions {
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if o.FlushBytes <= 0 {
		o.FlushBytes = 5 << 20
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Minute
	}
	if o.RetryOnConflict <= 0 {
		o.RetryOnConflict = 3
	}
	if o.MaxRetries <= 0 {
		o.MaxRetries = 5
	}
	if o.Backoff == nil {
		o.Backoff = defaultBackoff
	}
	return o
}

func defaultBackoff(attempt int) time.Duration {
	d := 500 * time.Millisecond << min(attempt-1, 5)
	d = min(d, 10*time.Second)
	return d + time.Duration(rand.Int64N(int64(d/2)+1))
}

// Add queues d. It blocks while every worker is busy; pass the context
// the Writer was made with, or one that ends no later. When it fails, d
// was not added and gets no Result.
func (w *Writer) Add(ctx context.Context, d Doc) error {
	w.addMu.RLock()
	defer w.addMu.RUnlock()
	if w.addClosed {
		return ErrWriterClosed
	}
	w.mu.Lock()
	w.seq++
	seq := w.seq
	w.pending[seq] = ref{source: d.Source, line: d.Line, id: d.ID, record: d.Record}
	w.mu.Unlock()
	if err := w.bi.Add(ctx, w.item(seq, d)); err != nil {
		w.mu.Lock()
		delete(w.pending, seq)
		w.mu.Unlock()
		return err
	}
	return nil
}

func (w *Writer) item(seq uint64, d Doc) opensearchutil.BulkIndexerItem {
	it := opensearchutil.BulkIndexerItem{
		Index:      d.Index,
		Action:     "index",
		DocumentID: d.ID,
		Body:       bytes.NewReader(d.Body),
		OnSuccess: func(_ context.Context, _ opensearchutil.BulkIndexerItem, info opensearchapi.BulkRespItem) {
			w.finish(seq, Indexed, info.Status, "")
		},
		OnFailure: func(_ context.Context, _ opensearchutil.BulkIndexerItem, info opensearchapi.BulkRespItem, err error) {
			status, reason, transient := classify(info, err)
			if !transient {
				w.finish(seq, rejectedOrUnwritten(err), status, reason)
				return
			}
			w.sendMu.RLock()
			defer w.sendMu.RUnlock()
			if w.sendClosed {
				w.finish(seq, Unwritten, status, reason)
				return
			}
			w.retries <- resend{seq: seq, doc: d, attempt: 1, status: status, reason: reason}
		},
	}
	if d.Update {
		it.Action = "update"
		rc := w.o.RetryOnConflict
		it.RetryOnConflict = &rc
	}
	return it
}

// rejectedOrUnwritten: an item's own error is the cluster's verdict on it;
// a request's error says nothing about the item.
func rejectedOrUnwritten(requestErr error) Outcome {
	if requestErr != nil {
		return Unwritten
	}
	return Rejected
}

// classify reads a failed item: its status and reason, and whether to
// send it again (429 and 503 only).
func classify(info opensearchapi.BulkRespItem, requestErr error) (status int, reason string, transient bool) {
	if requestErr != nil {
		status = statusOf(requestErr)
		return status, "the bulk request failed: " + requestErr.Error(), transientStatus(status)
	}
	status = info.Status
	reason = fmt.Sprintf("status %d", status)
	if e := info.Error; e != nil {
		reason = e.Type + ": " + e.Reason
		if c := e.Cause; c.Type != "" {
			reason += " (caused by " + c.Type + ": " + c.Reason + ")"
		}
	}
	return status, reason, transientStatus(status)
}

func transientStatus(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable
}

// statusOf is the HTTP status of an opensearch-go error answer, 0 for
// anything else (no answer at all).
func statusOf(err error) int {
	var se *opensearch.StructError
	if errors.As(err, &se) {
		return se.Status
	}
	var st *opensearch.StringError
	if errors.As(err, &st) {
		return st.Status
	}
	return 0
}

// finish reports seq's Result once; later answers for it are ignored.
func (w *Writer) finish(seq uint64, out Outcome, status int, reason string) {
	w.mu.Lock()
	r, ok := w.pending[seq]
	delete(w.pending, seq)
	w.mu.Unlock()
	if ok {
		w.o.OnResult(Result{Source: r.source, Line: r.line, ID: r.id, Outcome: out, Status: status, Reason: reason, Record: r.record})
	}
}

// resendLoop sends transient failures again, each after its backoff, as
// bulks of what is due. It returns once retries is closed and drained, or
// at once when ctx ends, answering what it holds as unwritten.
func (w *Writer) resendLoop(ctx context.Context) {
	defer close(w.retried)
	in := w.retries
	var queue []resend // by due time
	for in != nil || len(queue) > 0 {
		var due <-chan time.Time
		var timer *time.Timer
		if len(queue) > 0 {
			timer = time.NewTimer(time.Until(queue[0].due))
			due = timer.C
		}
		select {
		case r, ok := <-in:
			if !ok {
				in = nil
				break
			}
			r.due = time.Now().Add(w.o.Backoff(r.attempt))
			queue = enqueue(queue, r)
		case <-due:
			n := 0
			size := 0
			now := time.Now()
			for n < len(queue) && !queue[n].due.After(now) && (n == 0 || size+len(queue[n].doc.Body) <= w.o.FlushBytes) {
				size += len(queue[n].doc.Body)
				n++
			}
			batch := append([]resend(nil), queue[:n]...)
			queue = queue[n:]
			for _, r := range w.send(ctx, batch) {
				queue = enqueue(queue, r)
			}
		case <-ctx.Done():
			for _, r := range queue {
				w.finish(r.seq, Unwritten, r.status, r.reason+"; not resent: "+ctx.Err().Error())
			}
			if in != nil {
				for r := range in {
					w.finish(r.seq, Unwritten, r.status, r.reason+"; not resent: "+ctx.Err().Error())
				}
			}
			if timer != nil {
				timer.Stop()
			}
			return
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

func enqueue(queue []resend, r resend) []resend {
	i := sort.Search(len(queue), func(i int) bool { return queue[i].due.After(r.due) })
	queue = append(queue, resend{})
	copy(queue[i+1:], queue[i:])
	queue[i] = r
	return queue
}

// send makes one bulk of batch and answers each item, returning those to
// send again.
func (w *Writer) send(ctx context.Context, batch []resend) []resend {
	var again []resend
	retry := func(r resend, status int, reason string) {
		if r.attempt >= w.o.MaxRetries {
			w.finish(r.seq, Unwritten, status, fmt.Sprintf("%s, still after %d resends", reason, r.attempt))
			return
		}
		r.attempt++
		r.status, r.reason = status, reason
		r.due = time.Now().Add(w.o.Backoff(r.attempt))
		again = append(again, r)
	}
	var body bytes.Buffer
	for _, r := range batch {
		writeAction(&body, r.doc, w.o.RetryOnConflict)
	}
	resp, err := w.client.Bulk(ctx, opensearchapi.BulkReq{Body: &body, Params: opensearchapi.BulkParams{Timeout: w.o.Timeout}})
	var partial *opensearchapi.PartialBulkError
	if err != nil && !errors.As(err, &partial) {
		status, reason, transient := classify(opensearchapi.BulkRespItem{}, err)
		for _, r := range batch {
			if transient {
				retry(r, status, reason)
			} else {
				w.finish(r.seq, Unwritten, status, reason)
			}
		}
		return again
	}
	if len(resp.Items) > len(batch) {
		for _, r := range batch {
			w.finish(r.seq, Unwritten, 0, fmt.Sprintf("the bulk response has %d items for %d documents", len(resp.Items), len(batch)))
		}
		return again
	}
	for i, r := range batch {
		if i >= len(resp.Items) {
			break // unanswered: Close reports it
		}
		var info opensearchapi.BulkRespItem
		for _, v := range resp.Items[i] {
			info = v
		}
		if info.Error == nil && info.Status < http.StatusMultipleChoices {
			w.finish(r.seq, Indexed, info.Status, "")
			continue
		}
		status, reason, transient := classify(info, nil)
		if transient {
			retry(r, status, reason)
		} else {
			w.finish(r.seq, Rejected, status, reason)
		}
	}
	return again
}

// writeAction appends d's action line and body to a bulk body.
func writeAction(b *bytes.Buffer, d Doc, retryOnConflict int) {
	type meta struct {
		Index           string `json:"_index"`
		ID              string `json:"_id,omitempty"`
		RetryOnConflict int    `json:"retry_on_conflict,omitempty"`
	}
	action := "index"
	m := meta{Index: d.Index, ID: d.ID}
	if d.Update {
		action = "update"
		m.RetryOnConflict = retryOnConflict
	}
	line, _ := json.Marshal(map[string]meta{action: m}) // strings and ints always encode
	b.Write(line)
	b.WriteByte('\n')
	b.Write(d.Body)
	b.WriteByte('\n')
}

// Close flushes what is buffered, waits for the resends and answers every
// document still without a Result as unwritten. When ctx ends first it
// stops waiting, and what is left is unwritten.
func (w *Writer) Close(ctx context.Context) error {
	w.addMu.Lock()
	if w.addClosed {
		w.addMu.Unlock()
		return ErrWriterClosed
	}
	w.addClosed = true
	w.addMu.Unlock()

	// BulkIndexer.Close waits for a periodic flush in progress, and that
	// flush runs on the writer's own context: a cluster that does not
	// answer would hold Close for ever. When ctx ends, ending the writer's
	// context ends that flush.
	closed := make(chan error, 1)
	go func() { closed <- w.bi.Close(ctx) }()
	var err error
	select {
	case err = <-closed:
	case <-ctx.Done():
		w.cancel()
		err = <-closed
	}

	w.sendMu.Lock()
	w.sendClosed = true
	close(w.retries)
	w.sendMu.Unlock()

	select {
	case <-w.retried:
	case <-ctx.Done():
		w.cancel()
		<-w.retried
	}
	w.cancel()

	w.mu.Lock()
	left := w.pending
	w.pending = map[uint64]ref{}
	w.mu.Unlock()
	seqs := make([]uint64, 0, len(left))
	for s := range left {
		seqs = append(seqs, s)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	for _, s := range seqs {
		r := left[s]
		w.o.OnResult(Result{Source: r.source, Line: r.line, ID: r.id, Outcome: Unwritten, Reason: "the bulk request gave no answer for this document"})
	}
	return err
}
