package ingest

import (
	"fmt"
	"sync"
)

// Progress is what a checkpoint claims: per source, the lines done and the
// offset to read on from, and the counts of those lines. A resumed run
// opens each source at its Offset and numbers lines from Line+1.
type Progress struct {
	Sources []SourceProgress `json:"sources"`
	Total   int64            `json:"total"`   // records committed: Indexed + Failed
	Indexed int64            `json:"indexed"` // records whose documents were all indexed
	Failed  int64            `json:"failed"`  // records that failed and whose failures are recorded
}

// SourceProgress is one source's committed position.
type SourceProgress struct {
	Offset int64 `json:"offset"` // byte offset of the first line not committed
	Line   int64 `json:"line"`   // number of the last line committed (0: none)
	Done   bool  `json:"done"`   // every line of the source is committed
}

// Tracker applies the commit rule: a line is committed only once every
// bulk item made from it has answered (indexed or rejected), its failure,
// if it failed, has been recorded, and every line before it in its source
// is committed. A line with an unwritten item is never committed: the run
// must stop there and a later one resume at it. It is safe for concurrent
// use; per source, lines must be registered in read order.
type Tracker struct {
	mu      sync.Mutex
	p       Progress
	sources []*lineQueue
	blocked *Result // the first unwritten item seen
}

type lineQueue struct {
	lines []*lineState // read, not committed, in order
	byNum map[int64]*lineState
	eof   int64 // offset past the last byte, -1 until known
}

type lineState struct {
	num         int64
	start       int64
	outstanding int  // items without an answer
	items       bool // the line made at least one item
	failed      bool
	unrecorded  bool // failed, its failure not yet recorded
	blocked     bool // an item is unwritten
}

// NewTracker starts from a checkpoint: the zero Progress for a new run,
// with one SourceProgress per source (more are added as zeros).
func NewTracker(from Progress, sources int) *Tracker {
	t := &Tracker{p: from}
	t.p.Sources = append([]SourceProgress(nil), from.Sources...)
	for len(t.p.Sources) < sources {
		t.p.Sources = append(t.p.Sources, SourceProgress{})
	}
	for range t.p.Sources {
		t.sources = append(t.sources, &lineQueue{byNum: map[int64]*lineState{}, eof: -1})
	}
	return t
}

// Line registers line num of source, starting at byte start, with the
// number of bulk items made from it (0 for a blank line or a line that
// failed before it became a document). Call it before adding the items.
func (t *Tracker) Line(source int, num, start int64, items int) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	q, err := t.queue(source)
	if err != nil {
		return err
	}
	last := t.p.Sources[source].Line
	if n := len(q.lines); n > 0 {
		last = q.lines[n-1].num
	}
	if num != last+1 {
		return fmt.Errorf("ingest: source %d: line %d registered after line %d", source, num, last)
	}
	l := &lineState{num: num, start: start, outstanding: items, items: items > 0}
	q.lines = append(q.lines, l)
	q.byNum[num] = l
	return nil
}

// Fail marks a line failed (it could not be mapped, was too long, or the
// provider failed it); it commits only after Recorded.
func (t *Tracker) Fail(source int, num int64) error {
	return t.with(source, num, func(l *lineState) {
		if !l.failed {
			l.failed, l.unrecorded = true, true
		}
	})
}

// Recorded says the line's failure is kept (written to the failures
// index); ok false means that write is unwritten, which blocks the line.
func (t *Tracker) Recorded(source int, num int64, ok bool) error {
	return t.with(source, num, func(l *lineState) {
		l.unrecorded = false
		if !ok {
			l.blocked = true
			if t.blocked == nil {
				t.blocked = &Result{Source: source, Line: num, Outcome: Unwritten, Reason: "its failure record was not written"}
			}
		}
	})
}

// Answer applies one item's Result: Rejected fails the line (a failure to
// record), Unwritten blocks it.
func (t *Tracker) Answer(r Result) error {
	return t.with(r.Source, r.Line, func(l *lineState) {
		if l.outstanding > 0 {
			l.outstanding--
		}
		switch r.Outcome {
		case Rejected:
			if !l.failed {
				l.failed, l.unrecorded = true, true
			}
		case Unwritten:
			l.blocked = true
			if t.blocked == nil {
				rr := r
				t.blocked = &rr
			}
		}
	})
}

// End says source has no more lines; offset is where it ended.
func (t *Tracker) End(source int, offset int64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	q, err := t.queue(source)
	if err != nil {
		return err
	}
	q.eof = offset
	return nil
}

// Blocked is the first unwritten item, nil while there is none. Once set,
// the run should stop reading, close its writer and store Progress.
func (t *Tracker) Blocked() *Result {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.blocked
}

// Progress commits what may be committed and returns the checkpoint.
func (t *Tracker) Progress() Progress {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, q := range t.sources {
		sp := &t.p.Sources[i]
		for len(q.lines) > 0 {
			l := q.lines[0]
			if l.outstanding > 0 || l.unrecorded || l.blocked {
				break
			}
			// The offset to resume at is where the next line starts, known
			// once it is read or the source ended.
			var next int64
			switch {
			case len(q.lines) > 1:
				next = q.lines[1].start
			case q.eof >= 0:
				next = q.eof
			default:
				next = -1
			}
			if next < 0 {
				break
			}
			sp.Offset, sp.Line = next, l.num
			switch {
			case l.failed:
				t.p.Failed++
				t.p.Total++
			case l.items:
				t.p.Indexed++
				t.p.Total++
			}
			delete(q.byNum, l.num)
			q.lines[0] = nil
			q.lines = q.lines[1:]
		}
		if len(q.lines) == 0 && q.eof >= 0 {
			sp.Offset, sp.Done = q.eof, true
		}
	}
	out := t.p
	out.Sources = append([]SourceProgress(nil), t.p.Sources...)
	return out
}

func (t *Tracker) queue(source int) (*lineQueue, error) {
	if source < 0 || source >= len(t.sources) {
		return nil, fmt.Errorf("ingest: no source %d", source)
	}
	return t.sources[source], nil
}

func (t *Tracker) with(source int, num int64, f func(*lineState)) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	q, err := t.queue(source)
	if err != nil {
		return err
	}
	l, ok := q.byNum[num]
	if !ok {
		return fmt.Errorf("ingest: source %d: line %d is not registered or already committed", source, num)
	}
	f(l)
	return nil
}
