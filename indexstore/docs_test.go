package indexstore

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var idShape = regexp.MustCompile(`^[A-Za-z0-9_-]{20}$`)

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for range 10000 {
		id := NewID()
		if !idShape.MatchString(id) {
			t.Fatalf("NewID() = %q, want 20 URL-safe base64 characters", id)
		}
		if seen[id] {
			t.Fatalf("NewID() = %q twice", id)
		}
		seen[id] = true
	}
}

func TestInsertMakesDistinctIDs(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	var ids []string
	for i := range 10 {
		res, err := s.ModelGroups().Insert(t.Context(), &ModelGroup{Name: "g", LatestVersion: i}, NoWait)
		if err != nil {
			t.Fatalf("Insert %d: %v", i, err)
		}
		if !idShape.MatchString(res.ID) {
			t.Errorf("Insert %d: got id %q, want 20 URL-safe base64 characters", i, res.ID)
		}
		if res.Result != "created" || res.Index != s.Index(ModelGroups) || res.Version != 1 {
			t.Errorf("Insert %d: got result %q index %q version %d, want created %q 1", i, res.Result, res.Index, res.Version, s.Index(ModelGroups))
		}
		got, v, err := s.ModelGroups().Get(t.Context(), res.ID)
		if err != nil {
			t.Fatalf("Get %d: %v", i, err)
		}
		if got.LatestVersion != i {
			t.Errorf("Get %d: got latest_version %d, want %d", i, got.LatestVersion, i)
		}
		if v != res.At() {
			t.Errorf("Get %d: got version %+v, want the insert's %+v", i, v, res.At())
		}
		ids = append(ids, res.ID)
	}
	got := searchIDs(t, s, ModelGroups)
	slices.Sort(got)
	slices.Sort(ids)
	if diff := cmp.Diff(ids, slices.Compact(slices.Clone(ids))); diff != "" {
		t.Errorf("Insert made an id twice (-all +distinct):\n%s", diff)
	}
	if diff := cmp.Diff(ids, got); diff != "" {
		t.Errorf("ids in the index (-inserted +found):\n%s", diff)
	}
}

func fullConnector() *Connector {
	return &Connector{
		Name:        "OpenAI embeddings",
		Version:     "1",
		Description: `text-embedding-3 <small> & "quoted"`,
		Protocol:    "http",
		Parameters:  map[string]string{"model": "text-embedding-3-small", "endpoint": "api.openai.com"},
		Credential:  map[string]string{"openAI_key": "ciphertext=="},
		Actions: []ConnectorAction{{
			ActionType:          ActionPredict,
			Method:              "POST",
			URL:                 "https://api.openai.com/v1/embeddings",
			Headers:             map[string]string{"Authorization": "Bearer ${credential.openAI_key}"},
			RequestBody:         `{ "input": ${parameters.input}, "model": "${parameters.model}" }`,
			PreProcessFunction:  "connector.pre_process.openai.embedding",
			PostProcessFunction: "connector.post_process.openai.embedding",
		}, {
			ActionType:  ActionBatchPredict,
			Method:      "POST",
			URL:         "https://api.openai.com/v1/batches",
			RequestBody: `{"input_file_id": "${parameters.input_file_id}"}`,
		}},
		ClientConfig: &ClientConfig{
			MaxConnection: 30, ConnectionTimeout: 10, ReadTimeout: 20, RetryBackoffMillis: 200,
			RetryTimeoutSeconds: 30, MaxRetryTimes: 3, RetryBackoffPolicy: "exponential_full_jitter",
			SkipSSLVerification: true,
		},
		Owner:           &Owner{Name: "alice", BackendRoles: []string{"ml-users"}, Roles: []string{"ml_full_access"}},
		Access:          "restricted",
		BackendRoles:    []string{"ml-users"},
		CreatedTime:     1700000000000,
		LastUpdatedTime: 1700000001000,
	}
}

func fullModel() *Model {
	return &Model{
		Name:                    "embedder",
		ModelGroupID:            NewID(),
		Algorithm:               AlgorithmRemote,
		ModelVersion:            "3",
		Description:             "remote",
		ModelState:              ModelPartiallyDeployed,
		IsHidden:                true,
		IsEnabled:               ptr(false),
		IsControllerEnabled:     ptr(true),
		ConnectorID:             NewID(),
		Connector:               fullConnector(),
		RateLimiter:             json.RawMessage(`{"limit":"4","unit":"MINUTES"}`),
		DeploySetting:           json.RawMessage(`{"is_auto_deploy_enabled":true,"model_ttl_minutes":-1}`),
		Interface:               json.RawMessage(`{"input":"{\"type\":\"object\"}","output":"{}"}`),
		Guardrails:              json.RawMessage(`{"type":"local_regex","input_guardrail":{"regex":["^a.*"]}}`),
		PlanningWorkerNodeCount: ptr(2),
		CurrentWorkerNodeCount:  ptr(1),
		PlanningWorkerNodes:     []string{"n1", "n2"},
		DeployToAllNodes:        ptr(true),
		Owner:                   &Owner{Name: "bob"},
		CreatedTime:             1700000000000,
		LastUpdatedTime:         1700000000001,
		LastRegisteredTime:      1700000000002,
		LastDeployedTime:        1700000000003,
		LastUndeployedTime:      1700000000004,
	}
}

func fullTask() *Task {
	return &Task{
		ModelID:        NewID(),
		TaskType:       TaskBatchPrediction,
		FunctionName:   AlgorithmRemote,
		State:          TaskRunning,
		InputType:      InputRemote,
		Progress:       ptr(0.25),
		OutputIndex:    "out",
		WorkerNode:     []string{"node-0"},
		CreateTime:     1700000000000,
		LastUpdateTime: 1700000005000,
		Error:          "partial: 3 lines failed",
		IsAsync:        true,
		// Whatever the provider said, numbers as JSON decodes them.
		RemoteJob: map[string]any{
			"id": "batch_abc", "status": "in_progress", "output_file_id": nil,
			"request_counts": map[string]any{"total": 10.0, "completed": 3.0},
			"errors":         []any{map[string]any{"code": "x", "line": 2.0}},
		},
		Owner: &Owner{Name: "carol", BackendRoles: []string{"b"}},
		Batch: &BatchState{
			Provider:   "openai",
			Connector:  fullConnector(),
			ClientKey:  "client-key-1",
			NextPoll:   1700000060000,
			LeaseOwner: "replica-a",
			LeaseUntil: 1700000030000,
			Failures:   2,
		},
	}
}

// roundTrip creates doc, reads it back and compares.
func roundTrip[T any](t *testing.T, r Repo[T], doc *T) {
	t.Helper()
	id := NewID()
	res, err := r.Create(t.Context(), id, doc, NoWait)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if res.ID != id || res.Result != "created" {
		t.Errorf("Create: got id %q result %q, want %q created", res.ID, res.Result, id)
	}
	got, v, err := r.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if v != res.At() {
		t.Errorf("Get: got version %+v, want %+v", v, res.At())
	}
	if diff := cmp.Diff(doc, got); diff != "" {
		t.Errorf("stored document (-written +read):\n%s", diff)
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	t.Run("connector", func(t *testing.T) { roundTrip(t, s.Connectors(), fullConnector()) })
	t.Run("model", func(t *testing.T) { roundTrip(t, s.Models(), fullModel()) })
	t.Run("model group", func(t *testing.T) {
		roundTrip(t, s.ModelGroups(), &ModelGroup{Name: "g", Description: "d", LatestVersion: 7, Access: "private",
			BackendRoles: []string{"r"}, Owner: &Owner{Name: "o"}, CreatedTime: 1, LastUpdatedTime: 2})
	})
	t.Run("task", func(t *testing.T) { roundTrip(t, s.Tasks(), fullTask()) })
	t.Run("minimal task", func(t *testing.T) {
		roundTrip(t, s.Tasks(), &Task{TaskType: TaskRegisterModel, State: TaskCompleted})
	})
	t.Run("controller", func(t *testing.T) {
		// User names of any shape are keys, dots and all.
		roundTrip(t, s.Controllers(), &Controller{UserRateLimiter: map[string]RateLimiter{
			"alice": {Limit: "4", Unit: "MINUTES"}, "bob.smith@example.com": {Limit: "0.5"}, "CN=x,O=y": {Unit: "DAYS"},
		}})
	})
	t.Run("empty controller", func(t *testing.T) {
		roundTrip(t, s.Controllers(), &Controller{UserRateLimiter: map[string]RateLimiter{}})
	})
	t.Run("master key", func(t *testing.T) {
		roundTrip(t, s.MasterKeys(), &MasterKey{MasterKey: "c2VjcmV0", KeyID: "k1", CreateTime: 1700000000000})
	})
	t.Run("ml settings", func(t *testing.T) {
		roundTrip(t, s.MLSettings(), &MLSettings{
			Persistent: map[string]json.RawMessage{"plugins.ml_commons.trusted_connector_endpoints_regex": json.RawMessage(`["^https://a\\.example/.*$"]`)},
			Transient:  map[string]json.RawMessage{"plugins.ml_commons.connector.private_ip_enabled": json.RawMessage(`"true"`)},
			UpdateTime: 1700000000000,
		})
	})
}

func TestRepoVersions(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	r := s.ModelGroups()

	id := NewID()
	first, err := r.Create(ctx, id, &ModelGroup{Name: "first"}, NoWait)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	second, err := r.Replace(ctx, id, first.At(), &ModelGroup{Name: "second"}, NoWait)
	if err != nil {
		t.Fatalf("Replace at the current version: %v", err)
	}
	if second.Result != "updated" || second.SeqNo <= first.SeqNo {
		t.Errorf("Replace: got result %q seq_no %d, want updated and past %d", second.Result, second.SeqNo, first.SeqNo)
	}

	for _, tc := range []struct {
		name string
		op   func() error
		want error
	}{
		{"Get missing", func() error { _, _, err := r.Get(ctx, NewID()); return err }, ErrNotFound},
		{"Get from a missing index", func() error {
			_, _, err := newStoreAt(t, nodeURL(t), newPrefix(t)).ModelGroups().Get(ctx, id)
			return err
		}, ErrNotFound},
		{"Create on a taken id", func() error {
			_, err := r.Create(ctx, id, &ModelGroup{Name: "second"}, NoWait)
			return err
		}, ErrConflict},
		{"Replace at a stale version", func() error {
			_, err := r.Replace(ctx, id, first.At(), &ModelGroup{Name: "stale"}, NoWait)
			return err
		}, ErrConflict},
		{"Replace a missing document", func() error {
			_, err := r.Replace(ctx, NewID(), second.At(), &ModelGroup{Name: "new"}, NoWait)
			return err
		}, ErrConflict},
		{"Delete at a stale version", func() error { _, err := r.Delete(ctx, id, first.At()); return err }, ErrConflict},
		// OpenSearch answers a conditional delete of nothing with 409, not 404.
		{"Delete a missing document", func() error { _, err := r.Delete(ctx, NewID(), second.At()); return err }, ErrConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.op(); !errors.Is(err, tc.want) {
				t.Errorf("got error %v, want %v", err, tc.want)
			}
		})
	}

	// None of the refused writes changed the document.
	got, v, err := r.Get(ctx, id)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.Name != "second" || v != second.At() {
		t.Errorf("after refused writes: got %q at %+v, want %q at %+v", got.Name, v, "second", second.At())
	}

	del, err := r.Delete(ctx, id, v)
	if err != nil {
		t.Fatalf("Delete at the current version: %v", err)
	}
	if del.Result != "deleted" || !del.ForcedRefresh {
		t.Errorf("Delete: got result %q forced_refresh %v, want deleted, true", del.Result, del.ForcedRefresh)
	}
	if _, _, err := r.Get(ctx, id); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete: got error %v, want %v", err, ErrNotFound)
	}

	// At Missing, the cluster's not_found DeleteResponse is the answer.
	gone, err := r.Delete(ctx, id, Missing)
	if err != nil {
		t.Fatalf("Delete at Missing: %v", err)
	}
	if gone.Result != "not_found" || gone.ID != id || gone.Index == "" || !gone.ForcedRefresh {
		t.Errorf("Delete at Missing: got %+v, want a not_found DeleteResponse for %s", gone, id)
	}
	if _, err := r.Delete(ctx, "a/b", Missing); !errors.Is(err, ErrNotFound) {
		t.Errorf("Delete at Missing of an invalid id: got %v, want ErrNotFound", err)
	}
}

// TestWritesSeenBySearches: WaitForSeen and Immediate writes and deletes
// are visible to a search at once, without a refresh.
func TestWritesSeenBySearches(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	name := "seen-" + NewID()
	res, err := s.ModelGroups().Insert(ctx, &ModelGroup{Name: name}, WaitForSeen)
	if err != nil {
		t.Fatalf("Insert: %v", err)
	}
	if got, err := s.ModelGroupsNamed(ctx, name); err != nil || !slices.Equal(got, []string{res.ID}) {
		t.Fatalf("after Insert(WaitForSeen): ModelGroupsNamed = %v, %v; want [%s]", got, err, res.ID)
	}
	renamed := name + "-2"
	res, err = s.ModelGroups().Replace(ctx, res.ID, res.At(), &ModelGroup{Name: renamed}, WaitForSeen)
	if err != nil {
		t.Fatalf("Replace: %v", err)
	}
	if got, err := s.ModelGroupsNamed(ctx, renamed); err != nil || !slices.Equal(got, []string{res.ID}) {
		t.Fatalf("after Replace(WaitForSeen): ModelGroupsNamed = %v, %v; want [%s]", got, err, res.ID)
	}
	renamed = name + "-3"
	res, err = s.ModelGroups().Replace(ctx, res.ID, res.At(), &ModelGroup{Name: renamed}, Immediate)
	if err != nil {
		t.Fatalf("Replace: %v", err)
	}
	if got, err := s.ModelGroupsNamed(ctx, renamed); err != nil || !slices.Equal(got, []string{res.ID}) {
		t.Fatalf("after Replace(Immediate): ModelGroupsNamed = %v, %v; want [%s]", got, err, res.ID)
	}
	if _, err := s.ModelGroups().Delete(ctx, res.ID, res.At()); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if got, err := s.ModelGroupsNamed(ctx, renamed); err != nil || len(got) != 0 {
		t.Fatalf("after Delete: ModelGroupsNamed = %v, %v; want none", got, err)
	}
}

func TestModifyConcurrent(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	r := s.ModelGroups()
	res, err := r.Insert(ctx, &ModelGroup{Name: "g"}, NoWait)
	if err != nil {
		t.Fatalf("Insert: %v", err)
	}
	const writers = 20
	var (
		wg      sync.WaitGroup
		mutates atomic.Int64
		mu      sync.Mutex
		written []int // latest_version each writer left
	)
	for range writers {
		wg.Go(func() {
			_, g, err := Modify(ctx, r, res.ID, NoWait, func(g *ModelGroup) error {
				mutates.Add(1)
				g.LatestVersion++
				return nil
			})
			if err != nil {
				t.Errorf("Modify: %v", err)
				return
			}
			mu.Lock()
			written = append(written, g.LatestVersion)
			mu.Unlock()
		})
	}
	wg.Wait()
	got, _, err := r.Get(ctx, res.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.LatestVersion != writers {
		t.Errorf("got latest_version %d after %d increments, want %d", got.LatestVersion, writers, writers)
	}
	// Each writer's own result is one step of the sequence 1..20.
	slices.Sort(written)
	var want []int
	for i := 1; i <= writers; i++ {
		want = append(want, i)
	}
	if diff := cmp.Diff(want, written); diff != "" {
		t.Errorf("latest_version each Modify returned (-want +got):\n%s", diff)
	}
	t.Logf("%d mutations for %d writes", mutates.Load(), writers)
}

// countingRepo counts the reads and writes that reach the Repo under it;
// replace, if set, answers Replace instead.
type countingRepo[T any] struct {
	Repo[T]
	gets, replaces atomic.Int64
	replace        func(ctx context.Context, id string, v Version, doc *T, refresh Refresh) (*WriteResult, error)
}

func (c *countingRepo[T]) Get(ctx context.Context, id string) (*T, Version, error) {
	c.gets.Add(1)
	return c.Repo.Get(ctx, id)
}

func (c *countingRepo[T]) Replace(ctx context.Context, id string, v Version, doc *T, refresh Refresh) (*WriteResult, error) {
	c.replaces.Add(1)
	if c.replace != nil {
		return c.replace(ctx, id, v, doc, refresh)
	}
	return c.Repo.Replace(ctx, id, v, doc, refresh)
}

func TestModify(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	errBoom := errors.New("boom")
	increment := func(g *ModelGroup) error { g.LatestVersion++; return nil }
	for _, tc := range []struct {
		name string
		// modify runs the loop on a group at latest_version 1, read at v.
		modify            func(ctx context.Context, r Repo[ModelGroup], id string, v Version) (*WriteResult, *ModelGroup, error)
		wantErr           error
		wantLatest        int // stored afterwards
		wantGets, wantPut int64
	}{
		{
			name: "Modify",
			modify: func(ctx context.Context, r Repo[ModelGroup], id string, _ Version) (*WriteResult, *ModelGroup, error) {
				return Modify(ctx, r, id, NoWait, increment)
			},
			wantLatest: 2, wantGets: 1, wantPut: 1,
		},
		{
			name: "ErrUnchanged writes nothing",
			modify: func(ctx context.Context, r Repo[ModelGroup], id string, _ Version) (*WriteResult, *ModelGroup, error) {
				return Modify(ctx, r, id, NoWait, func(g *ModelGroup) error { g.LatestVersion = 99; return ErrUnchanged })
			},
			wantErr: ErrUnchanged, wantLatest: 1, wantGets: 1, wantPut: 0,
		},
		{
			name: "a mutation's error writes nothing",
			modify: func(ctx context.Context, r Repo[ModelGroup], id string, _ Version) (*WriteResult, *ModelGroup, error) {
				return Modify(ctx, r, id, NoWait, func(g *ModelGroup) error { g.LatestVersion = 99; return errBoom })
			},
			wantErr: errBoom, wantLatest: 1, wantGets: 1, wantPut: 0,
		},
		{
			name: "missing document",
			modify: func(ctx context.Context, r Repo[ModelGroup], _ string, _ Version) (*WriteResult, *ModelGroup, error) {
				return Modify(ctx, r, NewID(), NoWait, increment)
			},
			wantErr: ErrNotFound, wantLatest: 1, wantGets: 1, wantPut: 0,
		},
		{
			name: "ModifyFrom a current copy reads nothing",
			modify: func(ctx context.Context, r Repo[ModelGroup], id string, v Version) (*WriteResult, *ModelGroup, error) {
				return ModifyFrom(ctx, r, id, &ModelGroup{Name: "g", LatestVersion: 1}, v, NoWait, increment)
			},
			wantLatest: 2, wantGets: 0, wantPut: 1,
		},
		{
			name: "ModifyFrom a stale copy retries on the current one",
			modify: func(ctx context.Context, r Repo[ModelGroup], id string, v Version) (*WriteResult, *ModelGroup, error) {
				// Another writer moves the group to 5 after our read.
				if _, err := s.ModelGroups().Replace(ctx, id, v, &ModelGroup{Name: "g", LatestVersion: 5}, NoWait); err != nil {
					return nil, nil, err
				}
				return ModifyFrom(ctx, r, id, &ModelGroup{Name: "g", LatestVersion: 1}, v, NoWait, increment)
			},
			wantLatest: 6, wantGets: 1, wantPut: 2,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			res, err := s.ModelGroups().Insert(ctx, &ModelGroup{Name: "g", LatestVersion: 1}, NoWait)
			if err != nil {
				t.Fatalf("Insert: %v", err)
			}
			r := &countingRepo[ModelGroup]{Repo: s.ModelGroups()}
			wres, doc, err := tc.modify(ctx, r, res.ID, res.At())
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got error %v, want %v", err, tc.wantErr)
			}
			got, v, gerr := s.ModelGroups().Get(ctx, res.ID)
			if gerr != nil {
				t.Fatalf("Get: %v", gerr)
			}
			if got.LatestVersion != tc.wantLatest {
				t.Errorf("stored latest_version %d, want %d", got.LatestVersion, tc.wantLatest)
			}
			if g, p := r.gets.Load(), r.replaces.Load(); g != tc.wantGets || p != tc.wantPut {
				t.Errorf("got %d reads and %d writes, want %d and %d", g, p, tc.wantGets, tc.wantPut)
			}
			if err != nil {
				if wres != nil {
					t.Errorf("got a write result %+v with error %v", wres, err)
				}
				if v != res.At() {
					t.Errorf("version moved from %+v to %+v without a write", res.At(), v)
				}
				return
			}
			if wres.At() != v {
				t.Errorf("write result at %+v, stored document at %+v", wres.At(), v)
			}
			if diff := cmp.Diff(got, doc); diff != "" {
				t.Errorf("returned document (-stored +returned):\n%s", diff)
			}
		})
	}
}

// TestModifyStopsWhenCancelled: a context ended while Modify waits to retry
// a conflict ends the loop with the context's error.
func TestModifyStopsWhenCancelled(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	res, err := s.ModelGroups().Insert(t.Context(), &ModelGroup{Name: "g"}, NoWait)
	if err != nil {
		t.Fatalf("Insert: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	r := &countingRepo[ModelGroup]{Repo: s.ModelGroups()}
	r.replace = func(context.Context, string, Version, *ModelGroup, Refresh) (*WriteResult, error) {
		cancel() // always beaten, and then the caller gives up
		return nil, ErrConflict
	}
	_, _, err = Modify(ctx, r, res.ID, NoWait, func(g *ModelGroup) error { g.LatestVersion++; return nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got error %v, want %v", err, context.Canceled)
	}
	if n := r.replaces.Load(); n != 1 {
		t.Errorf("got %d writes, want 1", n)
	}
}
