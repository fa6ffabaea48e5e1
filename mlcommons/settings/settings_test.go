package settings

import (
	"context"
	"encoding/json"
	"log/slog"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/indexstore/storetest"
)

// testFlags are config's defaults, trimmed.
func testFlags() Flags {
	return Flags{
		TrustedEndpoints:       []string{`^https://api\.openai\.com/.*$`},
		MaxBatchInferenceTasks: 100,
		StatusFields:           []string{"status", "Status", "TransformJobStatus"},
		StatusRegex: map[string]string{"cancelling": `(stopping|cancelling)`, "cancelled": `(stopped|cancelled)`,
			"completed": `(complete|completed|partiallyCompleted)`, "expired": `(expired|timeout)`, "failed": `(failed)`},
	}
}

// applied records what a Service put in force.
type recorder struct {
	mu   sync.Mutex
	last *Effective
	n    int
}

func (a *recorder) apply(e *Effective) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.last, a.n = e, a.n+1
}

func (a *recorder) get() (*Effective, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last, a.n
}

var testNow = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

// newTestService is a Service over repo (a new one when nil).
func newTestService(t *testing.T, mode string, repo *storetest.Repo[indexstore.MLSettings]) *Service {
	t.Helper()
	s, _ := newWatched(t, mode, repo)
	return s
}

func newWatched(t *testing.T, mode string, repo *storetest.Repo[indexstore.MLSettings]) (*Service, *recorder) {
	t.Helper()
	if repo == nil {
		repo = storetest.NewRepo[indexstore.MLSettings]()
	}
	a := &recorder{}
	s, err := New(Options{Repo: repo, Mode: mode, Flags: testFlags(), Apply: a.apply,
		Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	return s, a
}

// update splits, checks and stores body through s.
func update(t *testing.T, s *Service, body string) *Changes {
	t.Helper()
	sp, err := SplitBody([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	ch, err := s.Check(sp)
	if err != nil {
		t.Fatalf("Check(%s): %v", body, err)
	}
	if err := s.Store(context.Background(), ch); err != nil {
		t.Fatalf("Store(%s): %v", body, err)
	}
	return ch
}

func patterns(res []*regexp.Regexp) []string {
	var out []string
	for _, re := range res {
		out = append(out, re.String())
	}
	return out
}

func TestEffectiveFromFlags(t *testing.T) {
	s := newTestService(t, ModeCluster, nil)
	e := s.Effective()
	if got, want := patterns(e.TrustedEndpoints), []string{`^(?:^https://api\.openai\.com/.*$)$`}; !cmp.Equal(got, want) {
		t.Errorf("trusted endpoints %q, want %q", got, want)
	}
	if e.AllowPrivateEndpoints || e.ModelAccessControl || e.ConnectorAccessControl || !e.RemoteInference ||
		!e.OfflineBatchInference || !e.OfflineBatchIngestion || e.MaxBatchInferenceTasks != 100 ||
		e.MaxBatchIngestionTasks != 100 || e.BatchIngestionBulkSize != 500 || !e.ControllerEnabled {
		t.Errorf("effective from the flags: %+v", e)
	}
	var states []string
	for _, r := range e.StatusRules {
		states = append(states, r.State+" "+r.Regex.String())
	}
	want := []string{"CANCELLING (?i)(stopping|cancelling)", "CANCELLED (?i)(stopped|cancelled)",
		"COMPLETED (?i)(complete|completed|partiallyCompleted)", "EXPIRED (?i)(expired|timeout)", "FAILED (?i)(failed)"}
	if diff := cmp.Diff(want, states); diff != "" {
		t.Errorf("status rules (-want +got):\n%s", diff)
	}
	if s.Loaded() {
		t.Error("loaded before the first read")
	}
}

func TestStoreAndRefresh(t *testing.T) {
	ctx := context.Background()
	repo := storetest.NewRepo[indexstore.MLSettings]()
	a, appliedA := newWatched(t, ModeCluster, repo)
	b, appliedB := newWatched(t, ModeCluster, repo)

	// Through replica A: in force there at once.
	update(t, a, `{"persistent":{"plugins.ml_commons.trusted_connector_endpoints_regex":["^http://127\\.0\\.0\\.1:[0-9]+/.*$"],`+
		`"plugins.ml_commons.connector.private_ip_enabled":true,"plugins.ml_commons.max_batch_inference_tasks":3}}`)
	if e, n := appliedA.get(); n != 1 || !e.AllowPrivateEndpoints || e.MaxBatchInferenceTasks != 3 ||
		len(e.TrustedEndpoints) != 1 || !e.TrustedEndpoints[0].MatchString("http://127.0.0.1:80/x") {
		t.Fatalf("replica A after the update: %d applies, %+v", n, e)
	}
	// Replica B: once it has read the document.
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if e, n := appliedB.get(); n != 1 || !e.AllowPrivateEndpoints || !b.Loaded() {
		t.Fatalf("replica B after a refresh: %d applies, %+v", n, e)
	}
	// Nothing new: no apply.
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, n := appliedB.get(); n != 1 {
		t.Errorf("an unchanged document was applied again (%d applies)", n)
	}

	// Transient beats persistent; null goes back to the flag.
	update(t, b, `{"transient":{"plugins.ml_commons.max_batch_inference_tasks":"9"},"persistent":{"plugins.ml_commons.connector.private_ip_enabled":null}}`)
	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	e := a.Effective()
	if e.MaxBatchInferenceTasks != 9 || e.AllowPrivateEndpoints {
		t.Errorf("after transient 9 and a reset: max %d private %v, want 9 false", e.MaxBatchInferenceTasks, e.AllowPrivateEndpoints)
	}
	doc, _, _ := repo.Get(ctx, indexstore.MLSettingsID)
	want := &indexstore.MLSettings{
		Persistent: map[string]json.RawMessage{
			"plugins.ml_commons.trusted_connector_endpoints_regex": raw(`["^http://127\\.0\\.0\\.1:[0-9]+/.*$"]`),
			"plugins.ml_commons.max_batch_inference_tasks":         raw(`"3"`),
		},
		Transient:  map[string]json.RawMessage{"plugins.ml_commons.max_batch_inference_tasks": raw(`"9"`)},
		UpdateTime: testNow.UnixMilli(),
	}
	if diff := cmp.Diff(want, doc); diff != "" {
		t.Errorf("stored (-want +got):\n%s", diff)
	}

	// A wildcard resets the whole scope.
	update(t, a, `{"persistent":{"plugins.ml_commons.*":null}}`)
	if e := a.Effective(); len(e.TrustedEndpoints) != 1 || e.TrustedEndpoints[0].MatchString("http://127.0.0.1:80/x") || e.MaxBatchInferenceTasks != 9 {
		t.Errorf("after the persistent reset: %+v, want the flag's endpoints and the transient 9", e)
	}
	// Resetting what is not stored writes nothing.
	before := repo.Replaces
	update(t, a, `{"persistent":{"plugins.ml_commons.only_run_on_ml_node":null}}`)
	if repo.Replaces != before {
		t.Errorf("a reset of nothing wrote the document")
	}
}

// A write that loses a race is made again on top of the other one: both
// updates stay.
func TestStoreConflict(t *testing.T) {
	ctx := context.Background()
	repo := storetest.NewRepo[indexstore.MLSettings]()
	a := newTestService(t, ModeCluster, repo)
	b := newTestService(t, ModeCluster, repo)
	update(t, a, `{"persistent":{"plugins.ml_commons.only_run_on_ml_node":false}}`)
	raced := false
	repo.BeforeReplace = func(string) error {
		if !raced { // b's update lands between a's read and a's write
			raced = true
			update(t, b, `{"persistent":{"plugins.ml_commons.max_model_on_node":"3"}}`)
		}
		return nil
	}
	update(t, a, `{"persistent":{"plugins.ml_commons.allow_custom_deployment_plan":true}}`)
	doc, _, _ := repo.Get(ctx, indexstore.MLSettingsID)
	if len(doc.Persistent) != 3 {
		t.Errorf("stored %v, want all three updates", doc.Persistent)
	}
	if got := a.cur.Load().doc.Persistent; len(got) != 3 {
		t.Errorf("in force at A: %v, want all three", got)
	}
}

// A read older than what a write put in force does not replace it.
func TestInstallKeepsTheNewest(t *testing.T) {
	s, a := newWatched(t, ModeCluster, nil)
	newDoc := &indexstore.MLSettings{Persistent: map[string]json.RawMessage{keyBatchTasks: raw(`"5"`)}}
	oldDoc := &indexstore.MLSettings{Persistent: map[string]json.RawMessage{keyBatchTasks: raw(`"4"`)}}
	s.install(newDoc, indexstore.Version{SeqNo: 7, PrimaryTerm: 1})
	s.install(oldDoc, indexstore.Version{SeqNo: 6, PrimaryTerm: 1})
	if got := s.Effective().MaxBatchInferenceTasks; got != 5 {
		t.Errorf("after an older read: %d, want 5", got)
	}
	s.install(oldDoc, indexstore.Version{SeqNo: 1, PrimaryTerm: 2}) // a new primary
	if got := s.Effective().MaxBatchInferenceTasks; got != 4 {
		t.Errorf("after a read under a newer primary term: %d, want 4", got)
	}
	s.install(nil, indexstore.Version{}) // deleted
	if got := s.Effective().MaxBatchInferenceTasks; got != 100 {
		t.Errorf("after the document is gone: %d, want the flag's 100", got)
	}
	if _, n := a.get(); n != 3 {
		t.Errorf("%d applies, want 3", n)
	}
}

// A stored value mlsidecar cannot use leaves its setting at the default.
func TestEffectiveBadStoredValue(t *testing.T) {
	repo := storetest.NewRepo[indexstore.MLSettings]()
	repo.Put(indexstore.MLSettingsID, &indexstore.MLSettings{Persistent: map[string]json.RawMessage{
		keyBatchTasks: raw(`"many"`), keyTrusted: raw(`["(?=x)"]`), keyPrivate: raw(`"true"`)}})
	s := newTestService(t, ModeCluster, repo)
	if err := s.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	e := s.Effective()
	if e.MaxBatchInferenceTasks != 100 || len(e.TrustedEndpoints) != 1 || !e.AllowPrivateEndpoints {
		t.Errorf("got %+v, want defaults for the bad values and private on", e)
	}
}

func TestLockedIgnoresTheStore(t *testing.T) {
	repo := storetest.NewRepo[indexstore.MLSettings]()
	repo.Put(indexstore.MLSettingsID, &indexstore.MLSettings{Persistent: map[string]json.RawMessage{keyPrivate: raw(`"true"`)}})
	s, a := newWatched(t, ModeLocked, repo)
	if err := s.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.Effective().AllowPrivateEndpoints || !s.Loaded() {
		t.Errorf("locked: private %v loaded %v, want the flag's false, loaded", s.Effective().AllowPrivateEndpoints, s.Loaded())
	}
	if _, n := a.get(); n != 0 {
		t.Errorf("locked: %d applies, want none", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.Watch(ctx, time.Millisecond) // returns at once
}

// Watch puts an update made through another replica in force within an
// interval.
func TestWatch(t *testing.T) {
	repo := storetest.NewRepo[indexstore.MLSettings]()
	a := newTestService(t, ModeCluster, repo)
	b, appliedB := newWatched(t, ModeCluster, repo)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); b.Watch(ctx, 5*time.Millisecond) }()
	defer func() { cancel(); <-done }()

	update(t, a, `{"persistent":{"plugins.ml_commons.model_access_control_enabled":true}}`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if e, _ := appliedB.get(); e != nil && e.ModelAccessControl {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("replica B never applied the update")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestNewRefusesBadFlags(t *testing.T) {
	f := testFlags()
	f.TrustedEndpoints = []string{`(?<=x)`}
	f.StatusRegex["failed"] = `(`
	_, err := New(Options{Repo: storetest.NewRepo[indexstore.MLSettings](), Mode: ModeCluster, Flags: f,
		Logger: slog.New(slog.DiscardHandler), Now: time.Now})
	if err == nil {
		t.Fatal("no error for flags mlsidecar cannot use")
	}
	for _, flag := range []string{"--trusted-endpoint-regex", "--batch-status-regex-failed"} {
		if !regexp.MustCompile(regexp.QuoteMeta(flag)).MatchString(err.Error()) {
			t.Errorf("error %q does not name %s", err, flag)
		}
	}
	if _, err := New(Options{Mode: "open"}); err == nil {
		t.Error("no error for an unknown mode")
	}
}
