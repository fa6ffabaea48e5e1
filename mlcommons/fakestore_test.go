package mlcommons

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gorilla/mux"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/outbound"
	"github.com/mlsidecar/mlsidecar/mlcommons/secrets"
)

// fakeStore is an in-memory Store with OpenSearch's optimistic concurrency
// (seq_no / primary_term per document) and just enough query DSL for the
// handlers: match_all, term, terms, ids and bool (filter, must, must_not),
// with size, from and _source. Anything else in a query answers 400
// parsing_exception, as OpenSearch does for a query it does not know.
type fakeStore struct {
	mu    sync.Mutex
	colls map[indexstore.Collection]*fakeCollection
	// conflicts are pending injected version conflicts on Replace.
	conflicts map[indexstore.Collection][]injectedConflict
	// searches records every Search call, so tests can check what the
	// handlers sent to the index.
	searches []searchCall
	replaces int
}

type fakeCollection struct {
	seqNo   int64
	nextID  int
	created int
	docs    map[string]*fakeDoc
}

type fakeDoc struct {
	id          string
	seqNo       int64
	primaryTerm int64
	version     int64
	order       int // creation order, for stable hit order
	source      json.RawMessage
}

type injectedConflict struct {
	// concurrent, if set, is the other writer: it changes the stored
	// source before the conflict is reported.
	concurrent func(src map[string]any)
}

type searchCall struct {
	Collection indexstore.Collection
	Body       map[string]any
	Params     url.Values
}

const fakePrimaryTerm = 1

func newFakeStore() *fakeStore {
	return &fakeStore{colls: map[indexstore.Collection]*fakeCollection{}, conflicts: map[indexstore.Collection][]injectedConflict{}}
}

func (s *fakeStore) coll(c indexstore.Collection) *fakeCollection {
	fc, ok := s.colls[c]
	if !ok {
		fc = &fakeCollection{docs: map[string]*fakeDoc{}}
		s.colls[c] = fc
	}
	return fc
}

func (s *fakeStore) Index(c indexstore.Collection) string { return ".mlsidecar-" + string(c) }

func (s *fakeStore) Get(_ context.Context, c indexstore.Collection, id string) (*indexstore.Doc, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.coll(c).docs[id]
	if !ok {
		return nil, indexstore.ErrNotFound
	}
	return &indexstore.Doc{ID: d.id, SeqNo: d.seqNo, PrimaryTerm: d.primaryTerm, Source: bytes.Clone(d.source)}, nil
}

func (s *fakeStore) Create(_ context.Context, c indexstore.Collection, id string, source any, _ bool) (*indexstore.WriteResult, error) {
	b, err := json.Marshal(source)
	if err != nil {
		return nil, fmt.Errorf("fake store: encoding source: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fc := s.coll(c)
	if id == "" {
		fc.nextID++
		id = string(c) + "-" + strconv.Itoa(fc.nextID)
	}
	if _, taken := fc.docs[id]; taken {
		return nil, indexstore.ErrConflict
	}
	fc.seqNo++
	fc.created++
	d := &fakeDoc{id: id, seqNo: fc.seqNo, primaryTerm: fakePrimaryTerm, version: 1, order: fc.created, source: b}
	fc.docs[id] = d
	return s.result(c, d, "created"), nil
}

func (s *fakeStore) Replace(_ context.Context, c indexstore.Collection, doc *indexstore.Doc, source any, _ bool) (*indexstore.WriteResult, error) {
	b, err := json.Marshal(source)
	if err != nil {
		return nil, fmt.Errorf("fake store: encoding source: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replaces++
	fc := s.coll(c)
	if pending := s.conflicts[c]; len(pending) > 0 {
		s.conflicts[c] = pending[1:]
		if d, ok := fc.docs[doc.ID]; ok && pending[0].concurrent != nil {
			var src map[string]any
			if err := json.Unmarshal(d.source, &src); err != nil {
				return nil, fmt.Errorf("fake store: %w", err)
			}
			pending[0].concurrent(src)
			nb, err := json.Marshal(src)
			if err != nil {
				return nil, fmt.Errorf("fake store: %w", err)
			}
			fc.seqNo++
			d.source, d.seqNo, d.version = nb, fc.seqNo, d.version+1
		}
		return nil, indexstore.ErrConflict
	}
	// With if_seq_no, OpenSearch answers a missing document with a version
	// conflict too.
	d, ok := fc.docs[doc.ID]
	if !ok || d.seqNo != doc.SeqNo || d.primaryTerm != doc.PrimaryTerm {
		return nil, indexstore.ErrConflict
	}
	fc.seqNo++
	d.source, d.seqNo, d.version = b, fc.seqNo, d.version+1
	return s.result(c, d, "updated"), nil
}

func (s *fakeStore) Delete(_ context.Context, c indexstore.Collection, doc *indexstore.Doc) (*indexstore.WriteResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fc := s.coll(c)
	d, ok := fc.docs[doc.ID]
	if !ok || d.seqNo != doc.SeqNo || d.primaryTerm != doc.PrimaryTerm {
		return nil, indexstore.ErrConflict
	}
	delete(fc.docs, doc.ID)
	fc.seqNo++
	d.seqNo, d.version = fc.seqNo, d.version+1
	return s.result(c, d, "deleted"), nil
}

func (s *fakeStore) result(c indexstore.Collection, d *fakeDoc, result string) *indexstore.WriteResult {
	return &indexstore.WriteResult{
		Index: s.Index(c), ID: d.id, Version: d.version, Result: result,
		Shards: json.RawMessage(`{"total":1,"successful":1,"failed":0}`), SeqNo: d.seqNo, PrimaryTerm: d.primaryTerm,
	}
}

func (s *fakeStore) Search(_ context.Context, c indexstore.Collection, body []byte, params url.Values) (json.RawMessage, error) {
	var req map[string]any
	if len(bytes.TrimSpace(body)) > 0 {
		if err := decodeNumbers(body, &req); err != nil {
			return nil, parsingErr("failed to parse search body: %v", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.searches = append(s.searches, searchCall{Collection: c, Body: req, Params: params})

	query := any(map[string]any{"match_all": map[string]any{}})
	if q, ok := req["query"]; ok {
		query = q
	}
	size, err := intField(req, "size", 10)
	if err != nil {
		return nil, err
	}
	from, err := intField(req, "from", 0)
	if err != nil {
		return nil, err
	}
	matched, err := s.match(c, query)
	if err != nil {
		return nil, err
	}
	type hit struct {
		Index  string         `json:"_index"`
		ID     string         `json:"_id"`
		Score  float64        `json:"_score"`
		Source map[string]any `json:"_source,omitempty"`
	}
	hits := []hit{}
	for i, d := range matched {
		if i < from || len(hits) >= size {
			continue
		}
		h := hit{Index: s.Index(c), ID: d.id, Score: 1}
		src, err := sourceOf(d)
		if err != nil {
			return nil, err
		}
		switch sf := req["_source"].(type) {
		case nil:
			h.Source = src
		case bool:
			if sf {
				h.Source = src
			}
		case []any:
			h.Source = map[string]any{}
			for _, f := range sf {
				if name, ok := f.(string); ok {
					if v, ok := src[name]; ok {
						h.Source[name] = v
					}
				}
			}
		default:
			return nil, parsingErr("[_source] of type %T is not supported by the fake store", sf)
		}
		hits = append(hits, h)
	}
	return json.Marshal(map[string]any{
		"took": 0, "timed_out": false,
		"hits": map[string]any{"total": map[string]any{"value": len(matched), "relation": "eq"}, "max_score": 1.0, "hits": hits},
	})
}

func (s *fakeStore) Count(_ context.Context, c indexstore.Collection, query any) (int64, error) {
	b, err := json.Marshal(query)
	if err != nil {
		return 0, err
	}
	var q any
	if err := decodeNumbers(b, &q); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	matched, err := s.match(c, q)
	return int64(len(matched)), err
}

// Scan visits the documents of c matching query, pageSize at a time, as
// they were when the scan started (a scroll's consistent view).
func (s *fakeStore) Scan(_ context.Context, c indexstore.Collection, query any, pageSize int, visit func([]indexstore.Doc) error) error {
	b, err := json.Marshal(query)
	if err != nil {
		return err
	}
	var q any
	if err := decodeNumbers(b, &q); err != nil {
		return err
	}
	if pageSize < 1 {
		return parsingErr("[size] must be positive")
	}
	s.mu.Lock()
	matched, err := s.match(c, q)
	docs := make([]indexstore.Doc, len(matched))
	for i, d := range matched {
		docs[i] = indexstore.Doc{ID: d.id, SeqNo: d.seqNo, PrimaryTerm: d.primaryTerm, Source: bytes.Clone(d.source)}
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	for len(docs) > 0 {
		n := min(pageSize, len(docs))
		if err := visit(docs[:n]); err != nil {
			return err
		}
		docs = docs[n:]
	}
	return nil
}

// match returns the documents of c that match query, in creation order.
func (s *fakeStore) match(c indexstore.Collection, query any) ([]*fakeDoc, error) {
	var out []*fakeDoc
	for _, d := range s.coll(c).docs {
		src, err := sourceOf(d)
		if err != nil {
			return nil, err
		}
		ok, err := matches(query, d.id, src)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b *fakeDoc) int { return a.order - b.order })
	return out, nil
}

func matches(query any, id string, src map[string]any) (bool, error) {
	q, ok := query.(map[string]any)
	if !ok || len(q) != 1 {
		return false, parsingErr("a query must be an object with one query type")
	}
	for kind, body := range q {
		switch kind {
		case "match_all":
			return true, nil
		case "term":
			field, want, err := termArgs(body)
			if err != nil {
				return false, err
			}
			return fieldHas(src, field, func(v string) bool { return v == want }), nil
		case "terms":
			m, ok := body.(map[string]any)
			if !ok || len(m) != 1 {
				return false, parsingErr("[terms] query malformed")
			}
			for field, vals := range m {
				list, ok := vals.([]any)
				if !ok {
					return false, parsingErr("[terms] query needs an array of values")
				}
				want := map[string]bool{}
				for _, v := range list {
					want[scalarText(v)] = true
				}
				return fieldHas(src, field, func(v string) bool { return want[v] }), nil
			}
		case "ids":
			m, ok := body.(map[string]any)
			if !ok {
				return false, parsingErr("[ids] query malformed")
			}
			list, _ := m["values"].([]any)
			for _, v := range list {
				if scalarText(v) == id {
					return true, nil
				}
			}
			return false, nil
		case "bool":
			return boolMatches(body, id, src)
		default:
			return false, parsingErr("unknown query [%s]", kind)
		}
	}
	return false, nil
}

func boolMatches(body any, id string, src map[string]any) (bool, error) {
	m, ok := body.(map[string]any)
	if !ok {
		return false, parsingErr("[bool] query malformed")
	}
	for clause, v := range m {
		var qs []any
		switch t := v.(type) {
		case []any:
			qs = t
		case map[string]any:
			qs = []any{t}
		default:
			return false, parsingErr("[bool] clause [%s] malformed", clause)
		}
		for _, q := range qs {
			ok, err := matches(q, id, src)
			if err != nil {
				return false, err
			}
			switch clause {
			case "filter", "must":
				if !ok {
					return false, nil
				}
			case "must_not":
				if ok {
					return false, nil
				}
			default:
				return false, parsingErr("[bool] clause [%s] is not supported by the fake store", clause)
			}
		}
	}
	return true, nil
}

// termArgs reads {"field": value} or {"field": {"value": value}}.
func termArgs(body any) (string, string, error) {
	m, ok := body.(map[string]any)
	if !ok || len(m) != 1 {
		return "", "", parsingErr("[term] query malformed")
	}
	for field, v := range m {
		if inner, ok := v.(map[string]any); ok {
			v = inner["value"]
		}
		if v == nil {
			return "", "", parsingErr("[term] query needs a value")
		}
		return field, scalarText(v), nil
	}
	return "", "", nil
}

// fieldHas reports whether the field (a dotted path; a ".keyword" suffix
// names the field itself) has a value for which ok is true.
func fieldHas(src map[string]any, field string, ok func(string) bool) bool {
	var cur any = src
	for _, part := range strings.Split(strings.TrimSuffix(field, ".keyword"), ".") {
		m, isMap := cur.(map[string]any)
		if !isMap {
			return false
		}
		cur = m[part]
	}
	if list, isList := cur.([]any); isList {
		for _, v := range list {
			if ok(scalarText(v)) {
				return true
			}
		}
		return false
	}
	return cur != nil && ok(scalarText(cur))
}

func scalarText(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case json.Number:
		return t.String()
	case bool:
		return strconv.FormatBool(t)
	case nil:
		return ""
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func intField(req map[string]any, name string, def int) (int, error) {
	v, ok := req[name]
	if !ok {
		return def, nil
	}
	n, isNum := v.(json.Number)
	if !isNum {
		return 0, parsingErr("[%s] must be a number", name)
	}
	i, err := strconv.Atoi(n.String())
	if err != nil || i < 0 {
		return 0, parsingErr("[%s] must be a non-negative integer", name)
	}
	return i, nil
}

func sourceOf(d *fakeDoc) (map[string]any, error) {
	var src map[string]any
	if err := decodeNumbers(d.source, &src); err != nil {
		return nil, fmt.Errorf("fake store: stored source: %w", err)
	}
	return src, nil
}

func decodeNumbers(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}

func parsingErr(format string, a ...any) error {
	return &indexstore.StatusError{Status: http.StatusBadRequest, Type: "parsing_exception", Reason: fmt.Sprintf(format, a...)}
}

// reset empties the store, so fuzz targets can reuse one API (building
// the router compiles every route) and still start each input clean.
func (s *fakeStore) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.colls = map[indexstore.Collection]*fakeCollection{}
	s.conflicts = map[indexstore.Collection][]injectedConflict{}
	s.searches, s.replaces = nil, 0
}

// conflictOnReplace makes the next n Replace calls in c fail with
// ErrConflict. concurrent, if not nil, plays the writer that got there
// first: it changes the stored source each time.
func (s *fakeStore) conflictOnReplace(c indexstore.Collection, n int, concurrent func(src map[string]any)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.conflicts[c] = append(s.conflicts[c], injectedConflict{concurrent: concurrent})
	}
}

// put stores source under id as it is, for states the API cannot produce.
func (s *fakeStore) put(t *testing.T, c indexstore.Collection, id string, source any) {
	t.Helper()
	if _, err := s.Create(context.Background(), c, id, source, true); err != nil {
		t.Fatalf("put %s/%s: %v", c, id, err)
	}
}

// raw returns the stored source of c/id, or "" when there is none.
func (s *fakeStore) raw(c indexstore.Collection, id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.coll(c).docs[id]; ok {
		return string(d.source)
	}
	return ""
}

// source returns the stored source of c/id decoded; the test fails when
// there is none.
func (s *fakeStore) source(t *testing.T, c indexstore.Collection, id string) map[string]any {
	t.Helper()
	raw := s.raw(c, id)
	if raw == "" {
		t.Fatalf("no stored %s/%s", c, id)
	}
	var src map[string]any
	if err := json.Unmarshal([]byte(raw), &src); err != nil {
		t.Fatalf("stored %s/%s: %v", c, id, err)
	}
	return src
}

// ids returns the ids stored in c, in creation order.
func (s *fakeStore) ids(c indexstore.Collection) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	docs, _ := s.match(c, map[string]any{"match_all": map[string]any{}})
	out := make([]string, 0, len(docs))
	for _, d := range docs {
		out = append(out, d.id)
	}
	return out
}

// lastSearch returns the last Search call in c.
func (s *fakeStore) lastSearch(t *testing.T, c indexstore.Collection) searchCall {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.searches) - 1; i >= 0; i-- {
		if s.searches[i].Collection == c {
			return s.searches[i]
		}
	}
	t.Fatalf("no search in %s", c)
	return searchCall{}
}

func (s *fakeStore) replaceCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.replaces
}

// testNodeID names the sidecar in answers.
const testNodeID = "node-test-1"

// testNow is the fixed clock of the test API.
var testNow = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

// testAPI is the ML Commons API behind a router, with its store and keys.
type testAPI struct {
	http.Handler
	store *fakeStore
	keys  *secrets.Keyring
}

// newTestAPI builds the API with a real keyring, the real outbound guard
// with ML Commons' default trusted endpoints, a fixed clock and an empty
// fake store.
func newTestAPI(t testing.TB) *testAPI {
	t.Helper()
	key, err := secrets.GenerateKey("test-1")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := secrets.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	guard, err := outbound.New(outbound.Options{TrustedEndpoints: outbound.DefaultTrustedEndpoints()})
	if err != nil {
		t.Fatal(err)
	}
	store := newFakeStore()
	api := New(Options{
		Store: store, Guard: guard, NodeID: testNodeID, Logger: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return testNow },
	})
	api.SetKeyring(keys)
	r := mux.NewRouter().SkipClean(true).UseEncodedPath()
	api.Register(r)
	return &testAPI{Handler: r, store: store, keys: keys}
}

// do sends one request to the API and returns the recorded answer.
func (a *testAPI) do(t testing.TB, method, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, req)
	return rec
}

// mustDo is do for a request that must answer 200; it returns the decoded
// answer.
func (a *testAPI) mustDo(t testing.TB, method, path, body string) map[string]any {
	t.Helper()
	rec := a.do(t, method, path, body)
	if rec.Code != http.StatusOK {
		t.Fatalf("%s %s: got status %d, want 200; body %s", method, path, rec.Code, rec.Body)
	}
	return decodeAnswer(t, rec)
}

func decodeAnswer(t testing.TB, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("answer is not a JSON object: %v; body %s", err, rec.Body)
	}
	return v
}

// wantError checks an answer in OpenSearch's error envelope.
func wantError(t testing.TB, rec *httptest.ResponseRecorder, status int, errType, reason string) {
	t.Helper()
	if rec.Code != status {
		t.Errorf("got status %d, want %d; body %s", rec.Code, status, rec.Body)
	}
	want := map[string]any{
		"error": map[string]any{
			"root_cause": []any{map[string]any{"type": errType, "reason": reason}},
			"type":       errType,
			"reason":     reason,
		},
		"status": float64(status),
	}
	var got map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("answer is not JSON: %v; body %s", err, rec.Body)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("error answer mismatch (-want +got):\n%s", diff)
	}
}

// TestFakeStore checks the fake's concurrency and query rules, which the
// handler tests rely on.
func TestFakeStore(t *testing.T) {
	ctx := context.Background()
	s := newFakeStore()
	c := indexstore.Models

	res, err := s.Create(ctx, c, "", map[string]any{"name": "a", "model_state": "DEPLOYED", "connector_id": "c1"}, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, c, res.ID, map[string]any{}, true); !errors.Is(err, indexstore.ErrConflict) {
		t.Errorf("Create with a taken id: got %v, want ErrConflict", err)
	}
	if _, err := s.Create(ctx, c, "m2", map[string]any{"name": "b", "model_state": "REGISTERED", "is_hidden": true}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, c, "nope"); !errors.Is(err, indexstore.ErrNotFound) {
		t.Errorf("Get of a missing id: got %v, want ErrNotFound", err)
	}

	doc, err := s.Get(ctx, c, res.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Replace(ctx, c, doc, map[string]any{"name": "a2"}, true); err != nil {
		t.Fatalf("Replace at the read version: %v", err)
	}
	if _, err := s.Replace(ctx, c, doc, map[string]any{"name": "a3"}, true); !errors.Is(err, indexstore.ErrConflict) {
		t.Errorf("Replace with a stale doc: got %v, want ErrConflict", err)
	}
	if _, err := s.Delete(ctx, c, doc); !errors.Is(err, indexstore.ErrConflict) {
		t.Errorf("Delete with a stale doc: got %v, want ErrConflict", err)
	}
	s.conflictOnReplace(c, 1, nil)
	fresh, _ := s.Get(ctx, c, res.ID)
	if _, err := s.Replace(ctx, c, fresh, map[string]any{"name": "a4"}, true); !errors.Is(err, indexstore.ErrConflict) {
		t.Errorf("Replace with an injected conflict: got %v, want ErrConflict", err)
	}
	if _, err := s.Replace(ctx, c, fresh, map[string]any{"name": "a4", "model_state": "DEPLOYED", "connector_id": "c1"}, true); err != nil {
		t.Errorf("Replace after the injected conflict: %v", err)
	}

	tests := []struct {
		name  string
		body  string
		want  []string
		total float64
	}{
		{"no body", ``, []string{res.ID, "m2"}, 2},
		{"match_all", `{"query":{"match_all":{}}}`, []string{res.ID, "m2"}, 2},
		{"term keyword", `{"query":{"term":{"connector_id.keyword":"c1"}}}`, []string{res.ID}, 1},
		{"term value object", `{"query":{"term":{"name":{"value":"b"}}}}`, []string{"m2"}, 1},
		{"term bool", `{"query":{"term":{"is_hidden":true}}}`, []string{"m2"}, 1},
		{"terms", `{"query":{"terms":{"model_state":["DEPLOYED","DEPLOYING"]}}}`, []string{res.ID}, 1},
		{"ids", `{"query":{"ids":{"values":["m2"]}}}`, []string{"m2"}, 1},
		{"bool filter", `{"query":{"bool":{"filter":[{"term":{"connector_id.keyword":"c1"}},{"terms":{"model_state":["DEPLOYED"]}}]}}}`, []string{res.ID}, 1},
		{"bool must_not", `{"query":{"bool":{"must":[{"match_all":{}}],"must_not":[{"term":{"is_hidden":true}}]}}}`, []string{res.ID}, 1},
		{"size", `{"size":1}`, []string{res.ID}, 2},
		{"from", `{"from":1}`, []string{"m2"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := s.Search(ctx, c, []byte(tt.body), nil)
			if err != nil {
				t.Fatal(err)
			}
			var got struct {
				Hits struct {
					Total struct{ Value float64 } `json:"total"`
					Hits  []struct {
						ID     string         `json:"_id"`
						Source map[string]any `json:"_source"`
					} `json:"hits"`
				} `json:"hits"`
			}
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, h := range got.Hits.Hits {
				ids = append(ids, h.ID)
				if h.Source == nil {
					t.Errorf("hit %s has no _source", h.ID)
				}
			}
			if diff := cmp.Diff(tt.want, ids); diff != "" {
				t.Errorf("hit ids mismatch (-want +got):\n%s", diff)
			}
			if got.Hits.Total.Value != tt.total {
				t.Errorf("got total %v, want %v", got.Hits.Total.Value, tt.total)
			}
		})
	}

	t.Run("_source false", func(t *testing.T) {
		raw, err := s.Search(ctx, c, []byte(`{"_source":false}`), nil)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(raw), "_source") {
			t.Errorf("got %s, want hits without _source", raw)
		}
	})
	t.Run("unknown query", func(t *testing.T) {
		_, err := s.Search(ctx, c, []byte(`{"query":{"wildcard":{"name":"a*"}}}`), nil)
		if se, ok := err.(*indexstore.StatusError); !ok || se.Status != http.StatusBadRequest {
			t.Errorf("got %v, want a 400 StatusError", err)
		}
	})
	t.Run("count", func(t *testing.T) {
		n, err := s.Count(ctx, c, map[string]any{"term": map[string]any{"model_state": "DEPLOYED"}})
		if err != nil || n != 1 {
			t.Errorf("got %d, %v; want 1, nil", n, err)
		}
	})
}

// Refresh is a no-op: the fake's searches always see every write.
func (s *fakeStore) Refresh(context.Context, indexstore.Collection) error { return nil }
