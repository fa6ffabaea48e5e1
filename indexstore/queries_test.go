package indexstore

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// create stores doc under a new id and returns the id.
func create[T any](t *testing.T, r Repo[T], doc *T) string {
	t.Helper()
	res, err := r.Insert(t.Context(), doc, NoWait)
	if err != nil {
		t.Fatalf("Insert: %v", err)
	}
	return res.ID
}

func refresh(t *testing.T, s *Store, cs ...Collection) {
	t.Helper()
	for _, c := range cs {
		if err := s.Refresh(t.Context(), c); err != nil {
			t.Fatalf("Refresh %s: %v", c, err)
		}
	}
}

func sorted(ids []string) []string {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	if ids == nil {
		ids = []string{}
	}
	return ids
}

func model(state, connectorID, groupID string) *Model {
	return &Model{Name: "m", Algorithm: AlgorithmRemote, ModelState: state, ConnectorID: connectorID, ModelGroupID: groupID}
}

func TestModelQueries(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	// Ids of the shape the sidecar makes: mixed case, '-' and '_', which
	// an analysed text field would split and lowercase.
	conn, other := "Ab-cD_ef"+NewID()[8:], NewID()
	group, otherGroup := "Gr-oU_p"+NewID()[7:], NewID()
	ids := map[string]string{}
	for name, m := range map[string]*Model{
		"deployed":           model(ModelDeployed, conn, group),
		"deploying":          model(ModelDeploying, conn, group),
		"partially deployed": model(ModelPartiallyDeployed, conn, otherGroup),
		"registered":         model(ModelRegistered, conn, group),
		"undeployed":         model(ModelUndeployed, conn, ""),
		"deploy failed":      model(ModelDeployFailed, conn, ""),
		"other connector":    model(ModelDeployed, other, otherGroup),
		"connector prefix":   model(ModelDeployed, conn[:10], ""),
		"group prefix":       model(ModelRegistered, "", group[:10]),
		"no connector":       model(ModelDeployed, "", ""),
	} {
		ids[name] = create(t, s.Models(), m)
	}
	refresh(t, s, Models)
	pick := func(names ...string) []string {
		var out []string
		for _, n := range names {
			out = append(out, ids[n])
		}
		return sorted(out)
	}

	for _, tc := range []struct {
		name  string
		query func() ([]string, error)
		want  []string
	}{
		{"ModelsUsingConnector all", func() ([]string, error) { return s.ModelsUsingConnector(ctx, conn, false) },
			pick("deployed", "deploying", "partially deployed", "registered", "undeployed", "deploy failed")},
		{"ModelsUsingConnector deployed only", func() ([]string, error) { return s.ModelsUsingConnector(ctx, conn, true) },
			pick("deployed", "deploying", "partially deployed")},
		{"ModelsUsingConnector other", func() ([]string, error) { return s.ModelsUsingConnector(ctx, other, true) },
			pick("other connector")},
		{"ModelsUsingConnector lowercased id", func() ([]string, error) {
			return s.ModelsUsingConnector(ctx, "ab-cd_ef"+conn[8:], false)
		}, pick()},
		{"ModelsUsingConnector unknown", func() ([]string, error) { return s.ModelsUsingConnector(ctx, NewID(), false) }, pick()},
		{"ModelsInGroup", func() ([]string, error) { return s.ModelsInGroup(ctx, group) },
			pick("deployed", "deploying", "registered")},
		{"ModelsInGroup other", func() ([]string, error) { return s.ModelsInGroup(ctx, otherGroup) },
			pick("partially deployed", "other connector")},
		{"ModelsInGroup unknown", func() ([]string, error) { return s.ModelsInGroup(ctx, NewID()) }, pick()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.query()
			if err != nil {
				t.Fatalf("got error %v", err)
			}
			if diff := cmp.Diff(tc.want, sorted(got)); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("DeployedModels", func(t *testing.T) {
		want := []DeployedModel{
			{ids["deployed"], ModelDeployed}, {ids["partially deployed"], ModelPartiallyDeployed},
			{ids["other connector"], ModelDeployed}, {ids["connector prefix"], ModelDeployed},
			{ids["no connector"], ModelDeployed},
		}
		for _, tc := range []struct {
			name, id string
			want     []DeployedModel
		}{
			{"all", "", want},
			{"one deployed", ids["deployed"], []DeployedModel{{ids["deployed"], ModelDeployed}}},
			{"one partially deployed", ids["partially deployed"], []DeployedModel{{ids["partially deployed"], ModelPartiallyDeployed}}},
			{"one deploying", ids["deploying"], []DeployedModel{}},
			{"one registered", ids["registered"], []DeployedModel{}},
			{"unknown", NewID(), []DeployedModel{}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, err := s.DeployedModels(ctx, tc.id)
				if err != nil {
					t.Fatalf("got error %v", err)
				}
				byID := func(a, b DeployedModel) int { return strings.Compare(a.ID, b.ID) }
				slices.SortFunc(got, byID)
				wantSorted := slices.SortedFunc(slices.Values(tc.want), byID)
				if wantSorted == nil {
					wantSorted = []DeployedModel{}
				}
				if diff := cmp.Diff(wantSorted, got); diff != "" {
					t.Errorf("deployed models (-want +got):\n%s", diff)
				}
			})
		}
	})
}

func TestModelGroupsNamed(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	ids := map[string]string{}
	for _, name := range []string{"my group", "my group 2", "My Group", "my", "group", "my-group"} {
		ids[name] = create(t, s.ModelGroups(), &ModelGroup{Name: name})
	}
	twin := create(t, s.ModelGroups(), &ModelGroup{Name: "my group"})
	refresh(t, s, ModelGroups)
	for _, tc := range []struct {
		name string
		want []string
	}{
		{"my group", []string{ids["my group"], twin}},
		{"My Group", []string{ids["My Group"]}},
		{"my", []string{ids["my"]}},
		{"my-group", []string{ids["my-group"]}},
		{"my gr", nil},
		{"MY GROUP", nil},
		{"", nil}, // the empty name names nothing
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ModelGroupsNamed(ctx, tc.name)
			if err != nil {
				t.Fatalf("got error %v", err)
			}
			if diff := cmp.Diff(sorted(tc.want), sorted(got)); diff != "" {
				t.Errorf("groups named %q (-want +got):\n%s", tc.name, diff)
			}
		})
	}
}

func batchTask(provider, state string, nextPoll, leaseUntil int64) *Task {
	return &Task{
		TaskType: TaskBatchPrediction, FunctionName: AlgorithmRemote, State: state, InputType: InputRemote, IsAsync: true,
		Batch: &BatchState{Provider: provider, ClientKey: NewID(), NextPoll: nextPoll, LeaseUntil: leaseUntil,
			LeaseOwner: map[bool]string{true: "replica-b"}[leaseUntil != 0]},
	}
}

func TestTaskCounts(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	for _, task := range []*Task{
		batchTask("openai", TaskCreated, 0, 0),
		batchTask("openai", TaskRunning, 0, 0),
		batchTask("openai", TaskRunning, 0, 0),
		batchTask("openai", TaskCompleted, 0, 0),
		batchTask("bedrock", TaskCancelling, 0, 0),
		batchTask("bedrock", TaskCancelled, 0, 0),
		batchTask("bedrock", TaskFailed, 0, 0),
		batchTask("sagemaker", TaskExpired, 0, 0),
		batchTask("cohere", TaskUnreachable, 0, 0),
		{TaskType: TaskRegisterModel, State: TaskRunning},
		{TaskType: TaskDeployModel, State: TaskCreated},
		{TaskType: TaskDeployModel, State: TaskCompleted},
	} {
		create(t, s.Tasks(), task)
	}
	for range 3 {
		create(t, s.Connectors(), &Connector{Name: "c"})
	}
	for _, st := range []string{ModelDeployed, ModelDeployed, ModelPartiallyDeployed, ModelDeploying, ModelRegistered} {
		create(t, s.Models(), model(st, "", ""))
	}
	if err := s.RefreshTasks(ctx); err != nil {
		t.Fatalf("RefreshTasks: %v", err)
	}
	refresh(t, s, Models, Connectors)

	open, err := s.CountOpenBatchTasks(ctx)
	if err != nil {
		t.Fatalf("CountOpenBatchTasks: %v", err)
	}
	if open != 4 {
		t.Errorf("CountOpenBatchTasks = %d, want 4 (batch tasks created, running, cancelling)", open)
	}

	counts, err := s.CountBatchTasks(ctx)
	if err != nil {
		t.Fatalf("CountBatchTasks: %v", err)
	}
	sort.Slice(counts, func(i, j int) bool {
		return counts[i].Provider+"/"+counts[i].State < counts[j].Provider+"/"+counts[j].State
	})
	want := []BatchTaskCount{
		{"bedrock", TaskCancelled, 1}, {"bedrock", TaskCancelling, 1}, {"bedrock", TaskFailed, 1},
		{"cohere", TaskUnreachable, 1},
		{"openai", TaskCompleted, 1}, {"openai", TaskCreated, 1}, {"openai", TaskRunning, 2},
		{"sagemaker", TaskExpired, 1},
	}
	if diff := cmp.Diff(want, counts); diff != "" {
		t.Errorf("CountBatchTasks (-want +got):\n%s", diff)
	}

	all, err := s.CountAll(ctx)
	if err != nil {
		t.Fatalf("CountAll: %v", err)
	}
	// Open tasks are open tasks of any type; deployed models are DEPLOYED only.
	if diff := cmp.Diff(Counts{Models: 5, Connectors: 3, DeployedModels: 2, OpenTasks: 6}, all); diff != "" {
		t.Errorf("CountAll (-want +got):\n%s", diff)
	}
}

func TestCountsOfEmptyIndices(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	if n, err := s.CountOpenBatchTasks(ctx); err != nil || n != 0 {
		t.Errorf("CountOpenBatchTasks = %d, %v; want 0, nil", n, err)
	}
	if c, err := s.CountBatchTasks(ctx); err != nil || len(c) != 0 {
		t.Errorf("CountBatchTasks = %v, %v; want none", c, err)
	}
	if c, err := s.CountAll(ctx); err != nil || c != (Counts{}) {
		t.Errorf("CountAll = %+v, %v; want zeros", c, err)
	}
	if m, err := s.DeployedModels(ctx, ""); err != nil || len(m) != 0 {
		t.Errorf("DeployedModels = %v, %v; want none", m, err)
	}
}

func TestScanDueBatchTasks(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	now := time.Now()
	ms := now.UnixMilli()
	past, future := ms-60_000, ms+60_000

	due := map[string]string{} // id → row name
	for _, tc := range []struct {
		name string
		task *Task
		due  bool
	}{
		{"running, poll passed, no lease", batchTask("openai", TaskRunning, past, 0), true},
		{"created, poll passed", batchTask("openai", TaskCreated, past, 0), true},
		{"cancelling, poll passed", batchTask("bedrock", TaskCancelling, past, 0), true},
		{"poll exactly now", batchTask("openai", TaskRunning, ms, 0), true},
		{"poll in the future", batchTask("openai", TaskRunning, future, 0), false},
		{"lease expired", batchTask("openai", TaskRunning, past, ms-1), true},
		{"lease ends exactly now", batchTask("openai", TaskRunning, past, ms), true},
		{"leased", batchTask("openai", TaskRunning, past, future), false},
		{"completed", batchTask("openai", TaskCompleted, past, 0), false},
		{"failed", batchTask("openai", TaskFailed, past, 0), false},
		{"cancelled", batchTask("openai", TaskCancelled, past, 0), false},
		{"not a batch task", &Task{TaskType: TaskDeployModel, State: TaskRunning, Batch: &BatchState{NextPoll: past}}, false},
		{"batch task without batch state", &Task{TaskType: TaskBatchPrediction, State: TaskRunning}, false},
	} {
		id := create(t, s.Tasks(), tc.task)
		if tc.due {
			due[id] = tc.name
		}
	}
	// More due tasks than fit in a few pages.
	for i := range 17 {
		due[create(t, s.Tasks(), batchTask("cohere", TaskRunning, past-int64(i), 0))] = "bulk"
	}
	if err := s.RefreshTasks(ctx); err != nil {
		t.Fatalf("RefreshTasks: %v", err)
	}

	const pageSize = 4
	visited := map[string]int{}
	var pages []int
	var hits []Hit[Task]
	err := s.ScanDueBatchTasks(ctx, now, pageSize, func(page []Hit[Task]) error {
		pages = append(pages, len(page))
		for _, h := range page {
			visited[h.ID]++
			if h.Doc == nil || h.Doc.Batch == nil || !h.Doc.IsOpenBatch() {
				t.Errorf("hit %s: got document %+v, want an open batch task", h.ID, h.Doc)
			}
		}
		hits = append(hits, page...)
		return nil
	})
	if err != nil {
		t.Fatalf("ScanDueBatchTasks: %v", err)
	}
	for id, n := range visited {
		if n != 1 {
			t.Errorf("task %s (%s) visited %d times, want once", id, due[id], n)
		}
		if _, ok := due[id]; !ok {
			t.Errorf("task %s visited, want it left alone", id)
		}
	}
	for id, name := range due {
		if visited[id] == 0 {
			t.Errorf("due task %q (%s) not visited", name, id)
		}
	}
	for i, n := range pages {
		if n == 0 || n > pageSize {
			t.Errorf("page %d has %d hits, want 1 to %d", i, n, pageSize)
		}
	}
	if want := (len(due) + pageSize - 1) / pageSize; len(pages) != want {
		t.Errorf("got %d pages %v, want %d", len(pages), pages, want)
	}

	// A hit's version is the condition of a write, as the worker takes a lease.
	h := hits[0]
	h.Doc.Batch.LeaseOwner, h.Doc.Batch.LeaseUntil = "replica-a", future
	res, err := s.Tasks().Replace(ctx, h.ID, h.Version, h.Doc, WaitForSeen)
	if err != nil {
		t.Fatalf("Replace at the hit's version: %v", err)
	}
	if _, err := s.Tasks().Replace(ctx, h.ID, h.Version, h.Doc, NoWait); !errors.Is(err, ErrConflict) {
		t.Errorf("second Replace at the hit's version: got %v, want %v", err, ErrConflict)
	}
	// Now leased: the next scan passes it by.
	var again []string
	if err := s.ScanDueBatchTasks(ctx, now, 100, func(page []Hit[Task]) error {
		for _, h := range page {
			again = append(again, h.ID)
		}
		return nil
	}); err != nil {
		t.Fatalf("second ScanDueBatchTasks: %v", err)
	}
	if slices.Contains(again, h.ID) || len(again) != len(due)-1 {
		t.Errorf("second scan visited %d tasks (leased one included: %v), want %d without %s",
			len(again), slices.Contains(again, h.ID), len(due)-1, h.ID)
	}
	if _, v, err := s.Tasks().Get(ctx, h.ID); err != nil || v != res.At() {
		t.Errorf("Get leased task: got version %+v, %v; want %+v", v, err, res.At())
	}
}

// scrollsOpen is the number of scroll contexts open on the tasks index.
func scrollsOpen(t *testing.T, s *Store) int {
	t.Helper()
	var stats struct {
		All struct {
			Total struct {
				Search struct {
					ScrollCurrent int `json:"scroll_current"`
				} `json:"search"`
			} `json:"total"`
		} `json:"_all"`
	}
	nodeJSON(t, http.MethodGet, "/"+s.Index(Tasks)+"/_stats/search?expand_wildcards=all", nil, &stats)
	return stats.All.Total.Search.ScrollCurrent
}

// TestScanFreesScroll: however a scan ends, its scroll is cleared on the
// node rather than left open until it times out.
func TestScanFreesScroll(t *testing.T) {
	t.Parallel()
	errStop := errors.New("stop")
	for _, tc := range []struct {
		name string
		// visit is the caller's callback; cancel ends the scan's context.
		visit   func(cancel context.CancelFunc) func([]Hit[Task]) error
		wantErr error
	}{
		{"to the end", func(context.CancelFunc) func([]Hit[Task]) error {
			return func([]Hit[Task]) error { return nil }
		}, nil},
		{"caller stops", func(context.CancelFunc) func([]Hit[Task]) error {
			return func([]Hit[Task]) error { return errStop }
		}, errStop},
		{"context cancelled between pages", func(cancel context.CancelFunc) func([]Hit[Task]) error {
			return func([]Hit[Task]) error { cancel(); return nil }
		}, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			for range 5 {
				create(t, s.Tasks(), batchTask("openai", TaskRunning, 1, 0))
			}
			if err := s.RefreshTasks(t.Context()); err != nil {
				t.Fatalf("RefreshTasks: %v", err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			err := s.ScanDueBatchTasks(ctx, time.Now(), 2, tc.visit(cancel))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got error %v, want %v", err, tc.wantErr)
			}
			// Clearing is synchronous; a leaked scroll stays for its 1m keep-alive.
			deadline := time.Now().Add(5 * time.Second)
			for n := scrollsOpen(t, s); n != 0; n = scrollsOpen(t, s) {
				if time.Now().After(deadline) {
					t.Fatalf("%d scroll contexts still open on %s after the scan", n, s.Index(Tasks))
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}
