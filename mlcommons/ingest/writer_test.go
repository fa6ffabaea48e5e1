package ingest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/opensearch-project/opensearch-go/v4"
	"github.com/opensearch-project/opensearch-go/v4/opensearchapi"
)

// bulkItem is one action of a _bulk request as the server received it.
type bulkItem struct {
	Action string
	Meta   map[string]any
	Body   string
}

// bulkServer answers POST /_bulk item by item with answer, which sees
// how many times it has been asked about the id so far (from 1).
type bulkServer struct {
	t      *testing.T
	answer func(it bulkItem, attempt int) (status int, errType string)
	whole  func(request int) int // status for the whole request; 0: answer items

	mu       sync.Mutex
	requests int
	seen     map[string]int
	got      []bulkItem
}

func (b *bulkServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/_bulk" {
		http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusNotFound)
		return
	}
	if r.URL.Query().Get("timeout") == "" {
		b.t.Errorf("bulk request without a timeout: %s", r.URL)
	}
	body, _ := io.ReadAll(r.Body)
	b.mu.Lock()
	b.requests++
	n := b.requests
	b.mu.Unlock()
	if b.whole != nil {
		if status := b.whole(n); status != 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"error":{"root_cause":[{"type":"x","reason":"busy"}],"type":"x","reason":"busy"},"status":%d}`, status)
			return
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	var items []map[string]any
	for sc.Scan() {
		var action map[string]map[string]any
		if err := json.Unmarshal(sc.Bytes(), &action); err != nil {
			b.t.Errorf("action line %q: %v", sc.Text(), err)
			return
		}
		if !sc.Scan() {
			b.t.Error("action without a body")
			return
		}
		var it bulkItem
		for k, v := range action {
			it.Action, it.Meta = k, v
		}
		it.Body = sc.Text()
		id, _ := it.Meta["_id"].(string)
		b.mu.Lock()
		if b.seen == nil {
			b.seen = map[string]int{}
		}
		b.seen[id]++
		attempt := b.seen[id]
		b.got = append(b.got, it)
		b.mu.Unlock()
		status, errType := b.answer(it, attempt)
		res := map[string]any{"_index": it.Meta["_index"], "_id": id, "status": status}
		if errType != "" {
			res["error"] = map[string]any{"type": errType, "reason": "refused " + id,
				"caused_by": map[string]any{"type": "illegal_argument_exception", "reason": "because"}}
		} else {
			res["result"] = "created"
		}
		items = append(items, map[string]any{it.Action: res})
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"took": 1, "errors": false, "items": items})
}

func client(t *testing.T, url string) *opensearchapi.Client {
	t.Helper()
	c, err := opensearchapi.NewClient(opensearchapi.Config{Client: opensearch.Config{Addresses: []string{url}, MaxRetries: 1}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// results collects a Writer's Results.
type results struct {
	mu  sync.Mutex
	got []Result
}

func (r *results) add(res Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, res)
}

func (r *results) sorted() []Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]Result(nil), r.got...)
	sort.Slice(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	return out
}

func doc(line int64, update bool) Doc {
	return Doc{Source: 0, Line: line, Index: "idx", ID: fmt.Sprintf("id%d", line), Update: update, Body: []byte(fmt.Sprintf(`{"n":%d}`, line))}
}

func write(t *testing.T, srv *httptest.Server, o WriterOptions, docs ...Doc) []Result {
	t.Helper()
	var res results
	o.OnResult = res.add
	if o.Backoff == nil {
		o.Backoff = func(int) time.Duration { return time.Millisecond }
	}
	ctx := context.Background()
	w, err := NewWriter(ctx, client(t, srv.URL), o)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		if err := w.Add(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Add(ctx, doc(99, false)); !errors.Is(err, ErrWriterClosed) {
		t.Errorf("Add after Close: got %v", err)
	}
	return res.sorted()
}

func TestWriterIndexesAndUpdates(t *testing.T) {
	bs := &bulkServer{t: t, answer: func(bulkItem, int) (int, string) { return 201, "" }}
	srv := httptest.NewServer(bs)
	defer srv.Close()
	got := write(t, srv, WriterOptions{}, doc(1, false), doc(2, true))
	want := []Result{
		{Line: 1, ID: "id1", Outcome: Indexed, Status: 201},
		{Line: 2, ID: "id2", Outcome: Indexed, Status: 201},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("-want +got:\n%s", diff)
	}
	sort.Slice(bs.got, func(i, j int) bool { return bs.got[i].Body < bs.got[j].Body })
	wantItems := []bulkItem{
		{Action: "index", Meta: map[string]any{"_index": "idx", "_id": "id1"}, Body: `{"n":1}`},
		{Action: "update", Meta: map[string]any{"_index": "idx", "_id": "id2", "retry_on_conflict": float64(3)}, Body: `{"n":2}`},
	}
	if diff := cmp.Diff(wantItems, bs.got); diff != "" {
		t.Errorf("items received: -want +got:\n%s", diff)
	}
}

func TestWriterItemFailures(t *testing.T) {
	bs := &bulkServer{t: t, answer: func(it bulkItem, attempt int) (int, string) {
		switch it.Meta["_id"] {
		case "id1":
			return 400, "mapper_parsing_exception"
		case "id2": // busy twice, then written
			if attempt <= 2 {
				return 429, "rejected_execution_exception"
			}
		case "id3": // busy for good
			return 503, "unavailable_shards_exception"
		}
		return 201, ""
	}}
	srv := httptest.NewServer(bs)
	defer srv.Close()
	got := write(t, srv, WriterOptions{MaxRetries: 3}, doc(1, false), doc(2, true), doc(3, false), doc(4, false))
	want := []Result{
		{Line: 1, ID: "id1", Outcome: Rejected, Status: 400, Reason: "mapper_parsing_exception: refused id1 (caused by illegal_argument_exception: because)"},
		{Line: 2, ID: "id2", Outcome: Indexed, Status: 201},
		{Line: 3, ID: "id3", Outcome: Unwritten, Status: 503, Reason: "unavailable_shards_exception: refused id3 (caused by illegal_argument_exception: because), still after 3 resends"},
		{Line: 4, ID: "id4", Outcome: Indexed, Status: 201},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("-want +got:\n%s", diff)
	}
	if n := bs.seen["id1"]; n != 1 {
		t.Errorf("a rejected item was sent %d times, want once", n)
	}
	if n := bs.seen["id3"]; n != 4 {
		t.Errorf("a busy item was sent %d times, want 1 + 3 resends", n)
	}
}

func TestWriterRequestFailures(t *testing.T) {
	t.Run("a whole 429 is resent", func(t *testing.T) {
		bs := &bulkServer{t: t, answer: func(bulkItem, int) (int, string) { return 200, "" },
			whole: func(n int) int {
				if n == 1 {
					return 429
				}
				return 0
			}}
		srv := httptest.NewServer(bs)
		defer srv.Close()
		got := write(t, srv, WriterOptions{}, doc(1, false), doc(2, false))
		for _, r := range got {
			if r.Outcome != Indexed {
				t.Errorf("got %+v, want indexed", r)
			}
		}
		if len(got) != 2 {
			t.Errorf("got %d results, want 2", len(got))
		}
	})
	t.Run("a whole 500 is unwritten, not a record failure", func(t *testing.T) {
		bs := &bulkServer{t: t, answer: func(bulkItem, int) (int, string) { return 200, "" }, whole: func(int) int { return 500 }}
		srv := httptest.NewServer(bs)
		defer srv.Close()
		got := write(t, srv, WriterOptions{}, doc(1, false))
		if len(got) != 1 || got[0].Outcome != Unwritten || got[0].Status != 500 || !strings.HasPrefix(got[0].Reason, "the bulk request failed: ") {
			t.Errorf("got %+v", got)
		}
	})
	t.Run("items the response does not answer are unwritten", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"took":1,"errors":false,"items":[{"index":{"_index":"idx","_id":"id1","status":201}}]}`)
		}))
		defer srv.Close()
		got := write(t, srv, WriterOptions{Workers: 1}, doc(1, false), doc(2, false))
		want := []Result{
			{Line: 1, ID: "id1", Outcome: Indexed, Status: 201},
			{Line: 2, ID: "id2", Outcome: Unwritten, Reason: "the bulk request gave no answer for this document"},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("-want +got:\n%s", diff)
		}
	})
}

// Close with an ended context stops waiting on a cluster that does not
// answer; every document still gets its one Result.
func TestWriterCloseCancelled(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	var res results
	w, err := NewWriter(context.Background(), client(t, srv.URL), WriterOptions{OnResult: res.add, Workers: 1, FlushInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := range int64(3) {
		if err := w.Add(context.Background(), doc(i+1, false)); err != nil {
			t.Fatal(err)
		}
	}
	// A periodic flush is stuck in the cluster: BulkIndexer.Close alone
	// would wait for it for ever.
	<-arrived
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	w.Close(ctx)
	got := res.sorted()
	if len(got) != 3 {
		t.Fatalf("got %d results, want 3: %+v", len(got), got)
	}
	for _, r := range got {
		if r.Outcome != Unwritten {
			t.Errorf("got %+v, want unwritten", r)
		}
	}
}
