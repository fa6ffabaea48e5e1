package ingest

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestTracker(t *testing.T) {
	// Source 0: five lines of 10 bytes from offset 0; source 1: two lines.
	type step struct {
		name string
		do   func(t *testing.T, tr *Tracker)
		want Progress
	}
	ans := func(src int, line int64, o Outcome) func(*testing.T, *Tracker) {
		return func(t *testing.T, tr *Tracker) { must(t, tr.Answer(Result{Source: src, Line: line, Outcome: o})) }
	}
	tr := NewTracker(Progress{}, 2)
	steps := []step{
		{"lines read, nothing answered", func(t *testing.T, tr *Tracker) {
			must(t, tr.Line(0, 1, 0, 1))
			must(t, tr.Line(0, 2, 10, 1))
			must(t, tr.Line(0, 3, 20, 0)) // blank
			must(t, tr.Line(0, 4, 30, 0)) // a mapping failure
			must(t, tr.Fail(0, 4))
			must(t, tr.Line(0, 5, 40, 2)) // two items
			must(t, tr.Line(1, 1, 0, 1))
		}, Progress{Sources: []SourceProgress{{}, {}}}},
		{"line 2 answered before line 1: nothing yet", ans(0, 2, Indexed),
			Progress{Sources: []SourceProgress{{}, {}}}},
		{"line 1 answered: lines 1-3 commit, line 4 waits for its record", ans(0, 1, Indexed),
			Progress{Sources: []SourceProgress{{Offset: 30, Line: 3}, {}}, Total: 2, Indexed: 2}},
		{"line 4 recorded", func(t *testing.T, tr *Tracker) { must(t, tr.Recorded(0, 4, true)) },
			Progress{Sources: []SourceProgress{{Offset: 40, Line: 4}, {}}, Total: 3, Indexed: 2, Failed: 1}},
		{"line 5: one of two items rejected", ans(0, 5, Rejected),
			Progress{Sources: []SourceProgress{{Offset: 40, Line: 4}, {}}, Total: 3, Indexed: 2, Failed: 1}},
		{"line 5: the other indexed, failure recorded, but the next start is unknown", func(t *testing.T, tr *Tracker) {
			ans(0, 5, Indexed)(t, tr)
			must(t, tr.Recorded(0, 5, true))
		}, Progress{Sources: []SourceProgress{{Offset: 40, Line: 4}, {}}, Total: 3, Indexed: 2, Failed: 1}},
		{"source 0 ends", func(t *testing.T, tr *Tracker) { must(t, tr.End(0, 50)) },
			Progress{Sources: []SourceProgress{{Offset: 50, Line: 5, Done: true}, {}}, Total: 4, Indexed: 2, Failed: 2}},
		{"source 1: line 1 unwritten blocks it and what follows", func(t *testing.T, tr *Tracker) {
			must(t, tr.Line(1, 2, 7, 1))
			ans(1, 1, Unwritten)(t, tr)
			ans(1, 2, Indexed)(t, tr)
			must(t, tr.End(1, 9))
		}, Progress{Sources: []SourceProgress{{Offset: 50, Line: 5, Done: true}, {}}, Total: 4, Indexed: 2, Failed: 2}},
	}
	for _, s := range steps {
		s.do(t, tr)
		if diff := cmp.Diff(s.want, tr.Progress()); diff != "" {
			t.Fatalf("%s: -want +got:\n%s", s.name, diff)
		}
	}
	if b := tr.Blocked(); b == nil || b.Source != 1 || b.Line != 1 {
		t.Errorf("blocked: got %+v", b)
	}
}

func TestTrackerResume(t *testing.T) {
	from := Progress{Sources: []SourceProgress{{Offset: 40, Line: 4}}, Total: 4, Indexed: 3, Failed: 1}
	tr := NewTracker(from, 1)
	if err := tr.Line(0, 4, 40, 1); err == nil {
		t.Error("line 4 again: got no error")
	}
	must(t, tr.Line(0, 5, 40, 1))
	if err := tr.Line(0, 7, 50, 1); err == nil {
		t.Error("line 7 after 5: got no error")
	}
	must(t, tr.Answer(Result{Line: 5, Outcome: Indexed}))
	must(t, tr.End(0, 50))
	want := Progress{Sources: []SourceProgress{{Offset: 50, Line: 5, Done: true}}, Total: 5, Indexed: 4, Failed: 1}
	if diff := cmp.Diff(want, tr.Progress()); diff != "" {
		t.Errorf("-want +got:\n%s", diff)
	}
	if err := tr.Answer(Result{Line: 5, Outcome: Indexed}); err == nil {
		t.Error("an answer for a committed line: got no error")
	}
	if err := tr.Line(3, 1, 0, 0); err == nil {
		t.Error("no such source: got no error")
	}
	// The checkpoint is a copy.
	p := tr.Progress()
	p.Sources[0].Line = 99
	if tr.Progress().Sources[0].Line != 5 {
		t.Error("Progress shares its slice")
	}
}

func TestTrackerUnrecordedFailure(t *testing.T) {
	tr := NewTracker(Progress{}, 1)
	must(t, tr.Line(0, 1, 0, 0))
	must(t, tr.Fail(0, 1))
	must(t, tr.Recorded(0, 1, false)) // the failure record itself was not written
	must(t, tr.End(0, 5))
	want := Progress{Sources: []SourceProgress{{}}}
	if diff := cmp.Diff(want, tr.Progress()); diff != "" {
		t.Errorf("-want +got:\n%s", diff)
	}
	if b := tr.Blocked(); b == nil || b.Line != 1 || b.Outcome != Unwritten {
		t.Errorf("blocked: got %+v", b)
	}
}
