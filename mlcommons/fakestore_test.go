package mlcommons

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gorilla/mux"
	"github.com/opensearch-project/opensearch-go/v4/opensearchapi"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mlsidecar/mlsidecar/config"
	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/indexstore/storetest"
	"github.com/mlsidecar/mlsidecar/mlcommons/auth"
	"github.com/mlsidecar/mlsidecar/mlcommons/batch"
	"github.com/mlsidecar/mlsidecar/mlcommons/outbound"
	"github.com/mlsidecar/mlsidecar/mlcommons/remote"
	"github.com/mlsidecar/mlsidecar/mlcommons/secrets"
)

// fakeStore is an in-memory Store: one storetest.Repo per collection, the
// named queries answered in Go with indexstore's rules, and Search
// recording what it was sent and answering every document of the
// collection, uninterpreted: the query language is OpenSearch's business,
// what the handlers send and do with the answer is these tests'.
type fakeStore struct {
	secured bool // SecurityEnabled

	connectors  *storetest.Repo[indexstore.Connector]
	models      *storetest.Repo[indexstore.Model]
	modelGroups *storetest.Repo[indexstore.ModelGroup]
	tasks       *storetest.Repo[indexstore.Task]
	masterKeys  *storetest.Repo[indexstore.MasterKey]
	controllers *storetest.Repo[indexstore.Controller]

	mu       sync.Mutex
	searches []searchCall
	// taskRefreshes counts RefreshTasks calls.
	taskRefreshes atomic.Int64
}

// searchCall is one Search the handlers made.
type searchCall struct {
	Collection indexstore.Collection
	Body       map[string]any
	Params     url.Values
}

var _ Store = (*fakeStore)(nil)

func newFakeStore() *fakeStore {
	s := &fakeStore{}
	s.reset()
	return s
}

// reset empties the store, so fuzz targets can reuse one API (building
// the router compiles every route) and still start each input clean. The
// master key survives: the API's keyring was built from it.
func (s *fakeStore) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.connectors = storetest.NewRepo[indexstore.Connector]()
	s.models = storetest.NewRepo[indexstore.Model]()
	s.modelGroups = storetest.NewRepo[indexstore.ModelGroup]()
	s.tasks = storetest.NewRepo[indexstore.Task]()
	s.controllers = storetest.NewRepo[indexstore.Controller]()
	if s.masterKeys == nil {
		s.masterKeys = storetest.NewRepo[indexstore.MasterKey]()
	}
	s.searches = nil
}

func (s *fakeStore) Connectors() indexstore.Repo[indexstore.Connector]   { return s.connectors }
func (s *fakeStore) Models() indexstore.Repo[indexstore.Model]           { return s.models }
func (s *fakeStore) ModelGroups() indexstore.Repo[indexstore.ModelGroup] { return s.modelGroups }
func (s *fakeStore) Tasks() indexstore.Repo[indexstore.Task]             { return s.tasks }
func (s *fakeStore) MasterKeys() indexstore.Repo[indexstore.MasterKey]   { return s.masterKeys }
func (s *fakeStore) Controllers() indexstore.Repo[indexstore.Controller] { return s.controllers }

// SecurityEnabled: the fake cluster has no security plugin unless a test
// says so.
func (s *fakeStore) SecurityEnabled(context.Context) (bool, error) { return s.secured, nil }

func (s *fakeStore) EnsureIndices(context.Context) error { return nil }

// modelIDs lists the ids of the models keep accepts, in creation order.
func (s *fakeStore) modelIDs(keep func(*indexstore.Model) bool) []string {
	out := []string{}
	for _, h := range s.models.Docs() {
		if keep(h.Doc) {
			out = append(out, h.ID)
		}
	}
	return out
}

func (s *fakeStore) ModelsUsingConnector(_ context.Context, id string, deployedOnly bool) ([]string, error) {
	return s.modelIDs(func(m *indexstore.Model) bool {
		return m.ConnectorID == id && (!deployedOnly || indexstore.IsDeployedState(m.ModelState))
	}), nil
}

func (s *fakeStore) ModelsInGroup(_ context.Context, groupID string) ([]string, error) {
	return s.modelIDs(func(m *indexstore.Model) bool { return m.ModelGroupID == groupID }), nil
}

func (s *fakeStore) ModelGroupsNamed(_ context.Context, name string) ([]string, error) {
	out := []string{}
	for _, h := range s.modelGroups.Docs() {
		if h.Doc.Name == name {
			out = append(out, h.ID)
		}
	}
	return out, nil
}

func (s *fakeStore) CountAll(context.Context) (indexstore.Counts, error) {
	var c indexstore.Counts
	for _, h := range s.models.Docs() {
		c.Models++
		if h.Doc.ModelState == indexstore.ModelDeployed {
			c.DeployedModels++
		}
	}
	c.Connectors = int64(len(s.connectors.Docs()))
	for _, h := range s.tasks.Docs() {
		if indexstore.IsOpenState(h.Doc.State) {
			c.OpenTasks++
		}
	}
	return c, nil
}

func (s *fakeStore) DeployedModels(_ context.Context, id string) ([]indexstore.DeployedModel, error) {
	out := []indexstore.DeployedModel{}
	for _, h := range s.models.Docs() {
		st := h.Doc.ModelState
		if (st == indexstore.ModelDeployed || st == indexstore.ModelPartiallyDeployed) && (id == "" || h.ID == id) {
			out = append(out, indexstore.DeployedModel{ID: h.ID, State: st})
		}
	}
	return out, nil
}

func isOpenBatchTask(t *indexstore.Task) bool {
	return t.TaskType == indexstore.TaskBatchPrediction && indexstore.IsOpenState(t.State)
}

func (s *fakeStore) CountOpenBatchTasks(context.Context) (int64, error) {
	var n int64
	for _, h := range s.tasks.Docs() {
		if isOpenBatchTask(h.Doc) {
			n++
		}
	}
	return n, nil
}

func (s *fakeStore) RefreshTasks(context.Context) error {
	s.taskRefreshes.Add(1)
	return nil
}

func (s *fakeStore) ScanDueBatchTasks(_ context.Context, now time.Time, pageSize int, visit func([]indexstore.Hit[indexstore.Task]) error) error {
	ms := now.UnixMilli()
	var due []indexstore.Hit[indexstore.Task]
	for _, h := range s.tasks.Docs() {
		b := h.Doc.Batch
		if isOpenBatchTask(h.Doc) && b != nil && b.NextPoll <= ms && b.LeaseUntil <= ms {
			due = append(due, h)
		}
	}
	for page := range slices.Chunk(due, max(pageSize, 1)) {
		if err := visit(page); err != nil {
			return err
		}
	}
	return nil
}

func (s *fakeStore) CountBatchTasks(context.Context) ([]indexstore.BatchTaskCount, error) {
	counts := map[[2]string]float64{}
	var keys [][2]string
	for _, h := range s.tasks.Docs() {
		if h.Doc.TaskType != indexstore.TaskBatchPrediction || h.Doc.Batch == nil {
			continue
		}
		k := [2]string{h.Doc.Batch.Provider, h.Doc.State}
		if _, ok := counts[k]; !ok {
			keys = append(keys, k)
		}
		counts[k]++
	}
	var out []indexstore.BatchTaskCount
	for _, k := range keys {
		out = append(out, indexstore.BatchTaskCount{Provider: k[0], State: k[1], Count: counts[k]})
	}
	return out, nil
}

// Search records the call and answers every document of c as a hit.
func (s *fakeStore) Search(_ context.Context, c indexstore.Collection, body []byte, params url.Values) (json.RawMessage, error) {
	var req map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&req); err != nil {
		return nil, err // the handler sends JSON it encoded: never a client's mistake
	}
	s.mu.Lock()
	s.searches = append(s.searches, searchCall{Collection: c, Body: req, Params: params})
	s.mu.Unlock()

	type hit struct {
		Index  string          `json:"_index"`
		ID     string          `json:"_id"`
		Source json.RawMessage `json:"_source"`
	}
	var hits []hit
	add := func(ids []string, raw func(string) json.RawMessage) {
		for _, id := range ids {
			hits = append(hits, hit{Index: ".plugins-ml-" + string(c), ID: id, Source: raw(id)})
		}
	}
	switch c {
	case indexstore.Connectors:
		add(creationOrder(s.connectors.Docs()), s.connectors.Raw)
	case indexstore.Models:
		add(creationOrder(s.models.Docs()), s.models.Raw)
	case indexstore.ModelGroups:
		add(creationOrder(s.modelGroups.Docs()), s.modelGroups.Raw)
	case indexstore.Tasks:
		add(creationOrder(s.tasks.Docs()), s.tasks.Raw)
	}
	var res struct {
		Hits struct {
			Total struct {
				Value    int    `json:"value"`
				Relation string `json:"relation"`
			} `json:"total"`
			Hits []hit `json:"hits"`
		} `json:"hits"`
	}
	res.Hits.Total.Value, res.Hits.Total.Relation, res.Hits.Hits = len(hits), "eq", hits
	if res.Hits.Hits == nil {
		res.Hits.Hits = []hit{}
	}
	return json.Marshal(res)
}

func creationOrder[T any](docs []indexstore.Hit[T]) []string {
	ids := make([]string, 0, len(docs))
	for _, h := range docs {
		ids = append(ids, h.ID)
	}
	return ids
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

func (s *fakeStore) searchCalls() []searchCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.searches)
}

// doerFunc is a connector.Doer made of a function.
type doerFunc func(ctx context.Context, c remote.Call) (*remote.Response, error)

func (f doerFunc) Do(ctx context.Context, c remote.Call) (*remote.Response, error) { return f(ctx, c) }

// noProvider is the Doer of tests that make no provider call.
func noProvider(t testing.TB) doerFunc {
	return func(_ context.Context, c remote.Call) (*remote.Response, error) {
		t.Errorf("unexpected provider call %s %s", c.Method, c.URL)
		return nil, io.ErrUnexpectedEOF
	}
}

// testNodeID names the sidecar in answers.
const testNodeID = "node-test-1"

// testNow is the fixed clock of the test API.
var testNow = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

// testAPI is the ML Commons API behind a router, with its store and keys.
type testAPI struct {
	http.Handler
	api   *API
	store *fakeStore
	keys  *secrets.Keyring
}

// testBatchSettings are explicit batch settings with ML Commons' default
// status rules.
func testBatchSettings(t testing.TB) batch.Settings {
	t.Helper()
	rules := batch.StatusRules{Fields: []string{"status", "Status", "TransformJobStatus"}}
	for _, r := range []struct{ state, expr string }{
		{indexstore.TaskCancelling, `(stopping|cancelling)`},
		{indexstore.TaskCancelled, `(stopped|cancelled)`},
		{indexstore.TaskCompleted, `(complete|completed|partiallyCompleted)`},
		{indexstore.TaskExpired, `(expired|timeout)`},
		{indexstore.TaskFailed, `(failed)`},
	} {
		rules.Rules = append(rules.Rules, batch.StatusRule{State: r.state, Regex: regexp.MustCompile("(?i)" + r.expr)})
	}
	return batch.Settings{PollInterval: time.Minute, MaxPollFailures: 3, MaxTasks: 10, Concurrency: 2,
		RatePerConnector: 5, LeaseTTL: time.Minute, Status: rules}
}

// testOptions configure newTestAPIWith.
type testOptions struct {
	// remote executes provider calls; nil fails the test on any call.
	remote doerFunc
	// keyFile is the --master-key-file contents; nil uses a stored key.
	keyFile []byte
	// authinfo is the cluster's authinfo endpoint; nil is a cluster without
	// the security plugin (every caller anonymous).
	authinfo http.HandlerFunc
	// perms are the cluster's role definitions; nil: the sidecar's account
	// cannot read them.
	perms *auth.Permissions
	// modelACL and connectorACL turn on model and connector access control.
	modelACL, connectorACL bool
}

// newTestAPI builds the API with the real outbound guard and ML Commons'
// default trusted endpoints, a fixed clock, an empty fake store and a key
// created by Bootstrap, as on a first start without a key file.
func newTestAPI(t testing.TB) *testAPI {
	t.Helper()
	return newTestAPIWith(t, testOptions{})
}

func newTestAPIWith(t testing.TB, o testOptions) *testAPI {
	t.Helper()
	var trusted []*regexp.Regexp
	for _, expr := range config.DefaultTrustedEndpoints() {
		re, err := config.TrustedRegexp(expr)
		if err != nil {
			t.Fatal(err)
		}
		trusted = append(trusted, re)
	}
	reg := prometheus.NewRegistry()
	guard, err := outbound.New(outbound.Options{TrustedEndpoints: trusted, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	doer := o.remote
	if doer == nil {
		doer = noProvider(t)
	}
	store := newFakeStore()
	// The real authentication middleware and authorizer, against a test
	// authinfo endpoint and test role definitions.
	authinfo := o.authinfo
	if authinfo == nil {
		authinfo = func(w http.ResponseWriter, _ *http.Request) { http.NotFound(w, nil) }
	}
	cluster := httptest.NewServer(authinfo)
	t.Cleanup(cluster.Close)
	upstream, _ := url.Parse(cluster.URL)
	// Without an authinfo, the cluster has no security plugin and the
	// sidecar serves ML callers unauthenticated by choice.
	authn := auth.New(auth.Options{Upstream: upstream, Unauthenticated: o.authinfo == nil})
	authz := auth.NewAuthorizer(auth.AuthorizerOptions{
		Source: func(context.Context) (*auth.Permissions, error) {
			if o.perms == nil {
				return nil, auth.ErrNoAccess
			}
			return o.perms, nil
		},
		Refresh: time.Minute, FullAccessRoles: []string{"ml_full_access"}, ReadOnlyRoles: []string{"ml_read_access"},
	})
	api := New(Options{
		Store: store, Guard: guard, Remote: doer, NodeID: testNodeID, MaxBodyBytes: 10 << 20, Authorizer: authz,
		ModelAccessControl: o.modelACL, ConnectorAccessControl: o.connectorACL,
		Batch: testBatchSettings(t), Logger: slog.New(slog.DiscardHandler), Registerer: reg,
		Now: func() time.Time { return testNow },
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := api.Bootstrap(ctx, o.keyFile); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	r := mux.NewRouter().SkipClean(true).UseEncodedPath()
	r.Use(authn.Middleware)
	api.Register(r)
	return &testAPI{Handler: r, api: api, store: store, keys: api.keyring()}
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
	wantErrorAt(t, rec, status, errType, reason, 0, 0)
}

// wantErrorAt is wantError for a parsing_exception found at line and col
// of the body (0: none shown).
func wantErrorAt(t testing.TB, rec *httptest.ResponseRecorder, status int, errType, reason string, line, col int) {
	t.Helper()
	if rec.Code != status {
		t.Errorf("got status %d, want %d; body %s", rec.Code, status, rec.Body)
	}
	c := map[string]any{"type": errType, "reason": reason}
	if line > 0 {
		c["line"], c["col"] = float64(line), float64(col)
	}
	top := maps.Clone(c)
	top["root_cause"] = []any{c}
	want := map[string]any{"error": top, "status": float64(status)}
	var got map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("answer is not JSON: %v; body %s", err, rec.Body)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("error answer mismatch (-want +got):\n%s", diff)
	}
}

// decodeRaw decodes stored JSON into a T; the test fails when there is none.
func decodeRaw[T any](t testing.TB, what string, raw json.RawMessage) T {
	t.Helper()
	var v T
	if raw == nil {
		t.Fatalf("no stored %s", what)
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("stored %s: %v", what, err)
	}
	return v
}

// The ingestion methods: the unit tests of this package start no
// ingestion worker; e2e runs ingestions against a real node.
func (s *fakeStore) CountOpenIngestTasks(context.Context) (int64, error) { return 0, nil }

func (s *fakeStore) ScanDueIngestTasks(context.Context, time.Time, int, func([]indexstore.Hit[indexstore.Task]) error) error {
	return nil
}

func (s *fakeStore) PutIngestFailures(context.Context, []indexstore.IngestFailure) error { return nil }

func (s *fakeStore) ScanIngestFailures(context.Context, string, int, func([]indexstore.IngestFailure) error) error {
	return nil
}

func (s *fakeStore) CallerClient(http.Header) (*opensearchapi.Client, error) {
	return nil, errors.New("fakeStore: no cluster")
}
