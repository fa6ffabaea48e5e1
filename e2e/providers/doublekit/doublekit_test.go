package doublekit

import (
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestClockStandsStillUntilAdvance(t *testing.T) {
	var c Clock
	if got, want := c.Now(), time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("zero clock: got %v, want %v", got, want)
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() { defer wg.Done(); c.Advance(time.Second); _ = c.Now() }()
	}
	wg.Wait()
	if got, want := c.Now(), time.Date(2025, 1, 1, 0, 0, 10, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("after 10 advances: got %v, want %v", got, want)
	}
	if now := NewClockOrNow(time.Time{}).Now(); now.Nanosecond() != 0 || time.Since(now) > time.Minute {
		t.Fatalf("NewClockOrNow(zero): got %v", now)
	}
	start := time.Unix(1725491753, 0)
	if got := NewClockOrNow(start).Now(); !got.Equal(start) || got.Location() != time.UTC {
		t.Fatalf("NewClockOrNow(start): got %v", got)
	}
}

func TestRecorderKeepsRequestsAsSent(t *testing.T) {
	var rec Recorder
	r := httptest.NewRequest("POST", "/model/a%3Ab/invoke?x=1", strings.NewReader("body"))
	r.Header.Set("X-Test", "1")
	if body, err := rec.Record(r); err != nil || string(body) != "body" {
		t.Fatalf("Record: %q, %v", body, err)
	}
	got := rec.Requests()
	if len(got) != 1 || got[0].Method != "POST" || got[0].Path != "/model/a%3Ab/invoke" || got[0].RawQuery != "x=1" || string(got[0].Body) != "body" {
		t.Fatalf("recorded: %+v", got)
	}
	got[0].Header.Set("X-Test", "changed")
	got[0].Body[0] = 'B'
	if again := rec.Requests()[0]; again.Header.Get("X-Test") != "1" || string(again.Body) != "body" {
		t.Fatalf("Requests shares memory with the recorder: %+v", again)
	}
	r.Header.Set("X-Test", "after")
	if again := rec.Requests()[0]; again.Header.Get("X-Test") != "1" {
		t.Fatal("Record kept the request's own header")
	}
}
