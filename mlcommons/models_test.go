package mlcommons

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

const (
	modelsPath   = "/_plugins/_ml/models/"
	registerPath = modelsPath + "_register"
	groupsPath   = "/_plugins/_ml/model_groups/"
	tasksPath    = "/_plugins/_ml/tasks/"
)

// registerModel registers a remote model that uses connectorID; query is
// "" or "?deploy=true". It returns the model id.
func (a *testAPI) registerModel(t testing.TB, name, connectorID, query string) string {
	t.Helper()
	res := a.mustDo(t, http.MethodPost, registerPath+query,
		toJSON(t, map[string]any{"name": name, "function_name": "remote", "connector_id": connectorID}))
	id, _ := res["model_id"].(string)
	if id == "" {
		t.Fatalf("register answered %v, want a model_id", res)
	}
	return id
}

func storedModel(t testing.TB, a *testAPI, id string) indexstore.Model {
	t.Helper()
	return decodeRaw[indexstore.Model](t, "model "+id, a.store.models.Raw(id))
}

func storedTask(t testing.TB, a *testAPI, id string) indexstore.Task {
	t.Helper()
	return decodeRaw[indexstore.Task](t, "task "+id, a.store.tasks.Raw(id))
}

// storedIDs are the ids stored in every collection but the config.
func storedIDs(a *testAPI) map[indexstore.Collection][]string {
	return map[indexstore.Collection][]string{
		indexstore.Connectors: a.store.connectors.IDs(), indexstore.Models: a.store.models.IDs(),
		indexstore.ModelGroups: a.store.modelGroups.IDs(), indexstore.Tasks: a.store.tasks.IDs(),
	}
}

func TestRegisterModelValidation(t *testing.T) {
	inlineExecuteOnly := openAIConnector()
	action(inlineExecuteOnly)["action_type"] = "execute"
	inlineUntrusted := openAIConnector()
	action(inlineUntrusted)["url"] = "https://evil.example.com/v1"
	inlineNoCredential := openAIConnector()
	delete(inlineNoCredential, "credential")
	inlineAccess := openAIConnector()
	inlineAccess["backend_roles"] = []any{"ml"}

	tests := []struct {
		name    string
		query   string
		body    any
		status  int
		errType string
		reason  string
	}{
		{name: "empty body", body: "", status: 400, errType: "parse_exception", reason: "request body is required"},
		{name: "name missing", body: map[string]any{"function_name": "remote", "connector_id": "CONN"},
			status: 400, errType: "illegal_argument_exception", reason: "model name is null"},
		{name: "name empty", body: map[string]any{"name": "", "function_name": "remote", "connector_id": "CONN"},
			status: 400, errType: "illegal_argument_exception", reason: "model name is null"},
		{name: "function_name missing", body: map[string]any{"name": "m", "connector_id": "CONN"},
			status: 400, errType: "illegal_argument_exception", reason: `mlsidecar registers remote models only: function_name must be "remote"`},
		{name: "function_name not remote", body: map[string]any{"name": "m", "function_name": "TEXT_EMBEDDING", "connector_id": "CONN"},
			status: 400, errType: "illegal_argument_exception", reason: `mlsidecar registers remote models only: function_name must be "remote"`},
		{name: "access control", body: map[string]any{"name": "m", "function_name": "remote", "connector_id": "CONN", "access_mode": "public"},
			status: 400, errType: "illegal_argument_exception",
			reason: "You cannot specify model access control parameters because the Security plugin or model access control is disabled on your cluster."},
		{name: "connector_id unknown", body: map[string]any{"name": "m", "function_name": "remote", "connector_id": "nope"},
			status: 404, errType: "status_exception", reason: "Failed to find connector:nope"},
		{name: "neither connector", body: map[string]any{"name": "m", "function_name": "remote"},
			status: 400, errType: "illegal_argument_exception", reason: "You must provide connector content when creating a remote model without connector id!"},
		{name: "inline connector without predict", body: map[string]any{"name": "m", "function_name": "remote", "connector": inlineExecuteOnly},
			status: 400, errType: "illegal_argument_exception", reason: "Connector endpoint is required when creating a remote model without connector id!"},
		{name: "inline connector untrusted", body: map[string]any{"name": "m", "function_name": "remote", "connector": inlineUntrusted},
			status: 400, errType: "illegal_argument_exception", reason: untrustedText + "https://evil.example.com/v1"},
		{name: "inline connector without credential", body: map[string]any{"name": "m", "function_name": "remote", "connector": inlineNoCredential},
			status: 400, errType: "illegal_argument_exception", reason: "Connector credential is null or empty list"},
		{name: "inline connector access control", body: map[string]any{"name": "m", "function_name": "remote", "connector": inlineAccess},
			status: 400, errType: "illegal_argument_exception", reason: accessCtrlText},
		{name: "model group unknown", body: map[string]any{"name": "m", "function_name": "remote", "connector_id": "CONN", "model_group_id": "g"},
			status: 404, errType: "status_exception", reason: "Failed to find model group with the provided model group id: g"},
		{name: "deploy not a boolean", query: "?deploy=yes", body: map[string]any{"name": "m", "function_name": "remote", "connector_id": "CONN"},
			status: 400, errType: "illegal_argument_exception", reason: "Failed to parse value [yes] as only [true] or [false] are allowed."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestAPI(t)
			conn := a.createConnector(t, openAIConnector())
			body := ""
			if s, ok := tt.body.(string); ok {
				body = s
			} else {
				body = strings.ReplaceAll(toJSON(t, tt.body), `"CONN"`, `"`+conn+`"`)
			}
			wantError(t, a.do(t, http.MethodPost, registerPath+tt.query, body), tt.status, tt.errType, tt.reason)
			for c, ids := range storedIDs(a) {
				if c != indexstore.Connectors && len(ids) != 0 {
					t.Errorf("got stored %s %v, want none", c, ids)
				}
			}
		})
	}
}

func TestRegisterModel(t *testing.T) {
	a := newTestAPI(t)
	conn := a.createConnector(t, openAIConnector())
	res := a.mustDo(t, http.MethodPost, registerPath, toJSON(t, map[string]any{
		"name": "embedder", "function_name": "REMOTE", "description": "d", "connector_id": conn,
		"rate_limiter": map[string]any{"limit": "4", "unit": "MINUTES"}, "interface": nil,
	}))
	modelID, taskID := res["model_id"].(string), res["task_id"].(string)
	if diff := cmp.Diff(map[string]any{"task_id": taskID, "status": "CREATED", "model_id": modelID}, res); diff != "" || modelID == "" || taskID == "" {
		t.Errorf("answer mismatch (-want +got):\n%s", diff)
	}

	groups := a.store.modelGroups.IDs()
	if len(groups) != 1 {
		t.Fatalf("got model groups %v, want one", groups)
	}
	now := testNow.UnixMilli()
	wantModel := indexstore.Model{
		Name: "embedder", ModelGroupID: groups[0], Algorithm: "REMOTE", ModelVersion: "1", Description: "d",
		ModelState: "REGISTERED", ConnectorID: conn, RateLimiter: json.RawMessage(`{"limit":"4","unit":"MINUTES"}`),
		CreatedTime: now, LastUpdatedTime: now,
	}
	if diff := cmp.Diff(wantModel, storedModel(t, a, modelID)); diff != "" {
		t.Errorf("stored model mismatch (-want +got):\n%s", diff)
	}
	if src := decodeRaw[map[string]any](t, "model", a.store.models.Raw(modelID)); src["is_hidden"] != false {
		t.Errorf("got is_hidden %v, want false written", src["is_hidden"])
	}
	wantGroup := indexstore.ModelGroup{Name: "embedder", LatestVersion: 1, Access: "public", CreatedTime: now, LastUpdatedTime: now}
	group := decodeRaw[indexstore.ModelGroup](t, "model group", a.store.modelGroups.Raw(groups[0]))
	if diff := cmp.Diff(wantGroup, group); diff != "" {
		t.Errorf("stored model group mismatch (-want +got):\n%s", diff)
	}
	wantTask := indexstore.Task{ModelID: modelID, TaskType: "REGISTER_MODEL", FunctionName: "REMOTE", State: "COMPLETED",
		WorkerNode: []string{testNodeID}, CreateTime: now, LastUpdateTime: now}
	if diff := cmp.Diff(wantTask, storedTask(t, a, taskID)); diff != "" {
		t.Errorf("stored task mismatch (-want +got):\n%s", diff)
	}

	t.Run("same name reuses the group", func(t *testing.T) {
		res := a.mustDo(t, http.MethodPost, registerPath, toJSON(t, map[string]any{"name": "embedder", "function_name": "remote", "connector_id": conn}))
		m := storedModel(t, a, res["model_id"].(string))
		if m.ModelGroupID != groups[0] || m.ModelVersion != "2" {
			t.Errorf("got group %q version %q, want %q version %q", m.ModelGroupID, m.ModelVersion, groups[0], "2")
		}
		if got := a.store.modelGroups.IDs(); len(got) != 1 {
			t.Errorf("got model groups %v, want still one", got)
		}
		if v := decodeRaw[map[string]any](t, "model group", a.store.modelGroups.Raw(groups[0]))["latest_version"]; v != float64(2) {
			t.Errorf("got latest_version %v, want 2", v)
		}
	})
	t.Run("other name gets its own group", func(t *testing.T) {
		res := a.mustDo(t, http.MethodPost, registerPath, toJSON(t, map[string]any{"name": "other", "function_name": "remote", "connector_id": conn}))
		m := storedModel(t, a, res["model_id"].(string))
		if m.ModelGroupID == groups[0] || m.ModelVersion != "1" {
			t.Errorf("got group %q version %q, want a new group and version 1", m.ModelGroupID, m.ModelVersion)
		}
	})
	t.Run("explicit model group", func(t *testing.T) {
		g := a.mustDo(t, http.MethodPost, groupsPath+"_register", `{"name":"my-group"}`)["model_group_id"].(string)
		for i, want := range []string{"1", "2"} {
			res := a.mustDo(t, http.MethodPost, registerPath, toJSON(t, map[string]any{
				"name": "embedder", "function_name": "remote", "connector_id": conn, "model_group_id": g}))
			m := storedModel(t, a, res["model_id"].(string))
			if m.ModelGroupID != g || m.ModelVersion != want {
				t.Errorf("register %d: got group %q version %q, want %q version %q", i, m.ModelGroupID, m.ModelVersion, g, want)
			}
		}
	})
	t.Run("GET", func(t *testing.T) {
		got := a.mustDo(t, http.MethodGet, modelsPath+modelID, "")
		if got["model_state"] != "REGISTERED" || got["connector_id"] != conn || got["model_version"] != "1" {
			t.Errorf("got %v", got)
		}
		for _, field := range []string{"model_id", "_id"} {
			if _, ok := got[field]; ok {
				t.Errorf("GET answered %s; ML Commons has no id in the body", field)
			}
		}
	})
}

func TestRegisterModelInlineConnector(t *testing.T) {
	a := newTestAPI(t)
	res := a.mustDo(t, http.MethodPost, registerPath, toJSON(t, map[string]any{
		"name": "inline", "function_name": "remote", "connector": openAIConnector()}))
	id := res["model_id"].(string)

	raw := string(a.store.models.Raw(id))
	if strings.Contains(raw, openAIKey) {
		t.Errorf("stored model holds the plaintext credential: %s", raw)
	}
	m := storedModel(t, a, id)
	if m.Connector == nil {
		t.Fatalf("stored model has no inline connector: %s", raw)
	}
	plain, err := a.keys.DecryptMap(m.Connector.Credential)
	if err != nil {
		t.Fatal(err)
	}
	if plain["openAI_key"] != openAIKey {
		t.Errorf("got decrypted credential %v, want the registered key", plain)
	}
	if got := m.Connector.Actions[0].ActionType; got != "PREDICT" {
		t.Errorf("got action type %q, want PREDICT", got)
	}
	if m.ConnectorID != "" {
		t.Errorf("got connector_id %q, want none", m.ConnectorID)
	}

	rec := a.do(t, http.MethodGet, modelsPath+id, "")
	if strings.Contains(rec.Body.String(), `"credential"`) || strings.Contains(rec.Body.String(), "mlsc1:") {
		t.Errorf("GET model answered the credential: %s", rec.Body)
	}
	var got modelJSON
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Connector == nil || got.Connector.Name != "OpenAI embeddings" {
		t.Errorf("got connector %+v, want the inline connector without credential", got.Connector)
	}
}

func TestRegisterModelDeploy(t *testing.T) {
	for _, query := range []string{"?deploy=true", "?deploy"} {
		t.Run(query, func(t *testing.T) {
			a := newTestAPI(t)
			conn := a.createConnector(t, openAIConnector())
			id := a.registerModel(t, "m", conn, query)
			m := storedModel(t, a, id)
			one, all := 1, true
			want := indexstore.Model{ModelState: "DEPLOYED", PlanningWorkerNodes: []string{testNodeID}, PlanningWorkerNodeCount: &one,
				CurrentWorkerNodeCount: &one, DeployToAllNodes: &all, LastDeployedTime: testNow.UnixMilli()}
			got := indexstore.Model{ModelState: m.ModelState, PlanningWorkerNodes: m.PlanningWorkerNodes, PlanningWorkerNodeCount: m.PlanningWorkerNodeCount,
				CurrentWorkerNodeCount: m.CurrentWorkerNodeCount, DeployToAllNodes: m.DeployToAllNodes, LastDeployedTime: m.LastDeployedTime}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("deployed model mismatch (-want +got):\n%s", diff)
			}
			if tasks := a.store.tasks.IDs(); len(tasks) != 2 {
				t.Errorf("got tasks %v, want a register and a deploy task", tasks)
			}
		})
	}
	t.Run("?deploy=false", func(t *testing.T) {
		a := newTestAPI(t)
		id := a.registerModel(t, "m", a.createConnector(t, openAIConnector()), "?deploy=false")
		if got := storedModel(t, a, id).ModelState; got != "REGISTERED" {
			t.Errorf("got state %q, want REGISTERED", got)
		}
	})
}

func TestBoolParam(t *testing.T) {
	tests := []struct {
		name    string
		query   string
		want    bool
		wantErr string
	}{
		{"absent", "", false, ""},
		{"empty", "?deploy=", true, ""},
		{"bare", "?deploy", true, ""},
		{"true", "?deploy=true", true, ""},
		{"false", "?deploy=false", false, ""},
		{"other parameter", "?other=true", false, ""},
		{"upper case", "?deploy=TRUE", false, "Failed to parse value [TRUE] as only [true] or [false] are allowed."},
		{"number", "?deploy=1", false, "Failed to parse value [1] as only [true] or [false] are allowed."},
		{"first of several", "?deploy=false&deploy=true", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := boolParam(httptest.NewRequest(http.MethodPost, "/x"+tt.query, nil), "deploy")
			if tt.wantErr != "" {
				e, ok := mlerr.From(err)
				if !ok || e.Status != 400 || e.Reason != tt.wantErr {
					t.Errorf("got error %v, want 400 %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %v, %v; want %v, nil", got, err, tt.want)
			}
		})
	}
}

func TestDeployUndeploy(t *testing.T) {
	a := newTestAPI(t)
	conn := a.createConnector(t, openAIConnector())
	id := a.registerModel(t, "m", conn, "")

	for _, path := range []string{"/_deploy", "/_load"} {
		t.Run(path, func(t *testing.T) {
			res := a.mustDo(t, http.MethodPost, modelsPath+id+path, "")
			taskID, _ := res["task_id"].(string)
			if diff := cmp.Diff(map[string]any{"task_id": taskID, "task_type": "DEPLOY_MODEL", "status": "COMPLETED"}, res); diff != "" || taskID == "" {
				t.Errorf("answer mismatch (-want +got):\n%s", diff)
			}
			task := storedTask(t, a, taskID)
			if task.State != "COMPLETED" || task.TaskType != "DEPLOY_MODEL" || task.ModelID != id || !task.IsAsync {
				t.Errorf("got task %+v, want a completed async DEPLOY_MODEL task of %s", task, id)
			}
			if got := storedModel(t, a, id).ModelState; got != "DEPLOYED" {
				t.Errorf("got state %q, want DEPLOYED", got)
			}
		})
	}

	t.Run("node_ids refused", func(t *testing.T) {
		wantError(t, a.do(t, http.MethodPost, modelsPath+id+"/_deploy", `{"node_ids":["n1"]}`), 400,
			"illegal_argument_exception", "Don't allow custom deployment plan")
	})
	t.Run("delete refused while deployed", func(t *testing.T) {
		wantError(t, a.do(t, http.MethodDelete, modelsPath+id, ""), 400, "status_exception",
			"Model cannot be deleted in deploying or deployed state. Try undeploy model first then delete")
	})
	t.Run("undeploy", func(t *testing.T) {
		res := a.mustDo(t, http.MethodPost, modelsPath+id+"/_undeploy", "")
		want := map[string]any{testNodeID: map[string]any{"stats": map[string]any{id: "undeployed"}}}
		if diff := cmp.Diff(want, res); diff != "" {
			t.Errorf("answer mismatch (-want +got):\n%s", diff)
		}
		m := storedModel(t, a, id)
		if m.ModelState != "UNDEPLOYED" || *m.PlanningWorkerNodeCount != 0 || *m.CurrentWorkerNodeCount != 0 || m.PlanningWorkerNodes != nil {
			t.Errorf("got model %+v, want UNDEPLOYED with zero worker nodes", m)
		}
	})
	t.Run("undeploy again", func(t *testing.T) {
		res := a.mustDo(t, http.MethodPost, modelsPath+id+"/_unload", "")
		if len(res) != 0 {
			t.Errorf("got %v, want {} when no node had the model", res)
		}
	})
	t.Run("delete", func(t *testing.T) {
		res := a.mustDo(t, http.MethodDelete, modelsPath+id, "")
		if res["result"] != "deleted" || res["_id"] != id {
			t.Errorf("got %v, want a DeleteResponse", res)
		}
		wantError(t, a.do(t, http.MethodDelete, modelsPath+id, ""), 404, "status_exception", "Failed to find model")
		wantError(t, a.do(t, http.MethodGet, modelsPath+id, ""), 404, "status_exception", "Failed to find model with the provided model id: "+id)
	})
}

func TestDeployErrors(t *testing.T) {
	a := newTestAPI(t)
	// ML Commons 2.19.6 names no id here.
	for _, p := range []string{"nope/_deploy", "nope/_undeploy", "nope/_load"} {
		wantError(t, a.do(t, http.MethodPost, modelsPath+p, ""), 404, "status_exception", "Failed to find model")
	}

	a.store.models.Put("orphan", &indexstore.Model{Name: "o", Algorithm: indexstore.AlgorithmRemote, ModelState: indexstore.ModelRegistered, ConnectorID: "gone"})
	wantError(t, a.do(t, http.MethodPost, modelsPath+"orphan/_deploy", ""), 404, "status_exception",
		"Failed to find connector with the provided connector id: gone")
	if got := storedModel(t, a, "orphan").ModelState; got != "DEPLOY_FAILED" {
		t.Errorf("got state %q, want DEPLOY_FAILED", got)
	}
	tasks := a.store.tasks.IDs()
	if len(tasks) != 1 {
		t.Fatalf("got tasks %v, want one", tasks)
	}
	if task := storedTask(t, a, tasks[0]); task.State != "FAILED" || task.Error == "" {
		t.Errorf("got task %+v, want FAILED with an error", task)
	}
}

func TestUndeployModels(t *testing.T) {
	a := newTestAPI(t)
	conn := a.createConnector(t, openAIConnector())
	m1 := a.registerModel(t, "one", conn, "?deploy=true")
	m2 := a.registerModel(t, "two", conn, "?deploy=true")
	m3 := a.registerModel(t, "three", conn, "")

	wantError(t, a.do(t, http.MethodPost, modelsPath+"_undeploy", `{"node_ids":["x"]}`), 400,
		"illegal_argument_exception", "Must set specific model ids to undeploy")
	wantError(t, a.do(t, http.MethodPost, modelsPath+"_undeploy", ""), 400,
		"illegal_argument_exception", "Must set specific model ids to undeploy")

	res := a.mustDo(t, http.MethodPost, modelsPath+"_undeploy", toJSON(t, map[string]any{"model_ids": []string{m1, m2, m3}}))
	want := map[string]any{testNodeID: map[string]any{"stats": map[string]any{m1: "undeployed", m2: "undeployed"}}}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("answer mismatch (-want +got):\n%s", diff)
	}
	for _, id := range []string{m1, m2, m3} {
		if got := storedModel(t, a, id).ModelState; got != "UNDEPLOYED" {
			t.Errorf("model %s: got state %q, want UNDEPLOYED", id, got)
		}
	}
}

func TestDeleteModelStates(t *testing.T) {
	tests := []struct {
		state   string
		refused bool
	}{
		{indexstore.ModelDeployed, true}, {indexstore.ModelDeploying, true}, {indexstore.ModelPartiallyDeployed, true},
		{indexstore.ModelRegistered, false}, {indexstore.ModelUndeployed, false}, {indexstore.ModelDeployFailed, false},
	}
	for _, tt := range tests {
		t.Run(tt.state, func(t *testing.T) {
			a := newTestAPI(t)
			a.store.models.Put("m", &indexstore.Model{Name: "m", Algorithm: indexstore.AlgorithmRemote, ModelState: tt.state})
			rec := a.do(t, http.MethodDelete, modelsPath+"m", "")
			if tt.refused {
				wantError(t, rec, 400, "status_exception", "Model cannot be deleted in deploying or deployed state. Try undeploy model first then delete")
				return
			}
			if rec.Code != 200 || a.store.models.Raw("m") != nil {
				t.Errorf("got status %d and the model still stored, want it deleted; body %s", rec.Code, rec.Body)
			}
		})
	}
}

func TestUpdateModel(t *testing.T) {
	setup := func(t *testing.T) (a *testAPI, byID, inline, conn string) {
		a = newTestAPI(t)
		conn = a.createConnector(t, openAIConnector())
		byID = a.registerModel(t, "by-id", conn, "")
		res := a.mustDo(t, http.MethodPost, registerPath, toJSON(t, map[string]any{"name": "inline", "function_name": "remote", "connector": openAIConnector()}))
		return a, byID, res["model_id"].(string), conn
	}

	errTests := []struct {
		name    string
		inline  bool
		body    string
		status  int
		errType string
		reason  string
	}{
		{"empty body", false, "", 400, "parse_exception", "Update model request has empty body"},
		{"connector on a connector_id model", false, `{"connector":{"description":"x"}}`, 400, "illegal_argument_exception",
			"Cannot update connector settings for this model. The model was created with a connector_id and does not have an inline connector."},
		{"unknown connector_id", false, `{"connector_id":"nope"}`, 404, "status_exception", "Failed to find connector with the provided connector id: nope"},
		{"unknown model group", false, `{"model_group_id":"nope"}`, 404, "status_exception", "Failed to find model group with the provided model group id: nope"},
		{"inline connector untrusted url", true, `{"connector":{"actions":[{"action_type":"predict","method":"POST","url":"https://evil.example.com/x"}]}}`,
			400, "illegal_argument_exception", untrustedText + "https://evil.example.com/x"},
		{"inline connector access control", true, `{"connector":{"access_mode":"public"}}`, 400, "illegal_argument_exception", accessCtrlText},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			a, byID, inline, _ := setup(t)
			id := byID
			if tt.inline {
				id = inline
			}
			before := string(a.store.models.Raw(id))
			wantError(t, a.do(t, http.MethodPut, modelsPath+id, tt.body), tt.status, tt.errType, tt.reason)
			if after := string(a.store.models.Raw(id)); after != before {
				t.Errorf("refused update changed the model:\nbefore %s\nafter  %s", before, after)
			}
		})
	}

	t.Run("unknown model", func(t *testing.T) {
		a, _, _, _ := setup(t)
		wantError(t, a.do(t, http.MethodPut, modelsPath+"nope", `{"name":"x"}`), 404, "status_exception",
			"Failed to find model to update with the provided model id: nope")
	})
	t.Run("deploying", func(t *testing.T) {
		a, _, _, _ := setup(t)
		a.store.models.Put("busy", &indexstore.Model{Name: "b", Algorithm: indexstore.AlgorithmRemote, ModelState: indexstore.ModelDeploying})
		wantError(t, a.do(t, http.MethodPut, modelsPath+"busy", `{"name":"x"}`), 400, "illegal_argument_exception",
			"Model is deploying. Please wait for the model to complete deployment. model ID busy")
	})
	t.Run("fields", func(t *testing.T) {
		a, byID, _, _ := setup(t)
		res := a.mustDo(t, http.MethodPut, modelsPath+byID, `{"name":"renamed","description":"d2","is_enabled":false,
			"rate_limiter":{"limit":"2","unit":"SECONDS"},"interface":null}`)
		if res["result"] != "updated" || res["_id"] != byID {
			t.Errorf("got %v, want an UpdateResponse", res)
		}
		m := storedModel(t, a, byID)
		if m.Name != "renamed" || m.Description != "d2" || m.IsEnabled == nil || *m.IsEnabled || string(m.RateLimiter) != `{"limit":"2","unit":"SECONDS"}` {
			t.Errorf("got model %+v", m)
		}
	})
	t.Run("switch to another connector_id", func(t *testing.T) {
		a, _, inline, conn := setup(t)
		a.mustDo(t, http.MethodPut, modelsPath+inline, toJSON(t, map[string]any{"connector_id": conn}))
		m := storedModel(t, a, inline)
		if m.ConnectorID != conn || m.Connector != nil {
			t.Errorf("got connector_id %q, connector %+v; want %q and no inline connector", m.ConnectorID, m.Connector, conn)
		}
	})
	t.Run("inline connector merged", func(t *testing.T) {
		a, _, inline, _ := setup(t)
		before := storedModel(t, a, inline).Connector
		a.mustDo(t, http.MethodPut, modelsPath+inline, `{"connector":{"parameters":{"dimensions":"64"}}}`)
		after := storedModel(t, a, inline).Connector
		want := map[string]string{"model": "text-embedding-ada-002", "dimensions": "64"}
		if diff := cmp.Diff(want, after.Parameters); diff != "" {
			t.Errorf("parameters mismatch (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(before.Credential, after.Credential); diff != "" {
			t.Errorf("credential ciphertext changed although not sent (-before +after):\n%s", diff)
		}
	})
}

func TestModelGroups(t *testing.T) {
	a := newTestAPI(t)
	res := a.mustDo(t, http.MethodPost, groupsPath+"_register", `{"name":"g1","description":"first"}`)
	g1, _ := res["model_group_id"].(string)
	if diff := cmp.Diff(map[string]any{"model_group_id": g1, "status": "CREATED"}, res); diff != "" || g1 == "" {
		t.Errorf("answer mismatch (-want +got):\n%s", diff)
	}
	got := a.mustDo(t, http.MethodGet, groupsPath+g1, "")
	now := float64(testNow.UnixMilli())
	want := map[string]any{"name": "g1", "description": "first", "latest_version": float64(0), "access": "public", "created_time": now, "last_updated_time": now}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GET mismatch (-want +got):\n%s", diff)
	}
	g2 := a.mustDo(t, http.MethodPost, groupsPath+"_register", `{"name":"g2"}`)["model_group_id"].(string)

	tests := []struct {
		name, method, path, body string
		status                   int
		errType, reason          string
	}{
		{"register duplicate name", http.MethodPost, groupsPath + "_register", `{"name":"g1"}`,
			400, "illegal_argument_exception", "The name you provided is already being used by a model group with ID: " + g1 + "."},
		{"register empty body", http.MethodPost, groupsPath + "_register", ``,
			400, "parse_exception", "Model group request has empty body"},
		{"update empty body", http.MethodPut, groupsPath + g2, ``,
			400, "parse_exception", "Model group request has empty body"},
		{"register without name", http.MethodPost, groupsPath + "_register", `{"description":"x"}`,
			400, "illegal_argument_exception", "model group name is null"},
		{"register access control", http.MethodPost, groupsPath + "_register", `{"name":"g3","access_mode":"private"}`,
			400, "illegal_argument_exception", "You cannot specify model access control parameters because the Security plugin or model access control is disabled on your cluster."},
		{"rename to a taken name", http.MethodPut, groupsPath + g2, `{"name":"g1"}`,
			400, "illegal_argument_exception", "The name you provided is already being used by a model group with ID: " + g1 + "."},
		{"rename to empty", http.MethodPut, groupsPath + g2, `{"name":""}`,
			400, "illegal_argument_exception", "model group name is null"},
		{"update unknown", http.MethodPut, groupsPath + "nope", `{"description":"x"}`,
			404, "status_exception", "Failed to find model group with the provided model group id: nope"},
		{"get unknown", http.MethodGet, groupsPath + "nope", ``,
			404, "status_exception", "Failed to find model group with the provided model group id: nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, a.do(t, tt.method, tt.path, tt.body), tt.status, tt.errType, tt.reason)
		})
	}

	t.Run("delete unknown", func(t *testing.T) {
		// ML Commons 2.19.6 hands on the cluster's DeleteResponse.
		if res := a.mustDo(t, http.MethodDelete, groupsPath+"nope", ""); res["result"] != "not_found" || res["_id"] != "nope" || res["forced_refresh"] != true {
			t.Errorf("got %v, want a DeleteResponse for nope with result not_found", res)
		}
	})
	t.Run("rename to its own name", func(t *testing.T) {
		if res := a.mustDo(t, http.MethodPut, groupsPath+g1, `{"name":"g1","description":"again"}`); res["status"] != "Updated" {
			t.Errorf("got %v, want status Updated", res)
		}
	})
	t.Run("delete with models", func(t *testing.T) {
		conn := a.createConnector(t, openAIConnector())
		m := a.mustDo(t, http.MethodPost, registerPath, toJSON(t, map[string]any{
			"name": "x", "function_name": "remote", "connector_id": conn, "model_group_id": g2}))["model_id"].(string)
		wantError(t, a.do(t, http.MethodDelete, groupsPath+g2, ""), 409, "status_exception",
			"Cannot delete the model group when it has associated model versions")
		a.mustDo(t, http.MethodDelete, modelsPath+m, "")
		if res := a.mustDo(t, http.MethodDelete, groupsPath+g2, ""); res["result"] != "deleted" {
			t.Errorf("got %v, want a DeleteResponse", res)
		}
	})
}

func TestDeleteTask(t *testing.T) {
	tests := []struct {
		state   string
		refused bool
	}{
		{indexstore.TaskCreated, true}, {indexstore.TaskRunning, true}, {indexstore.TaskCancelling, true},
		{indexstore.TaskCompleted, false}, {indexstore.TaskFailed, false}, {indexstore.TaskCancelled, false}, {indexstore.TaskExpired, false},
	}
	for _, tt := range tests {
		t.Run(tt.state, func(t *testing.T) {
			a := newTestAPI(t)
			a.store.tasks.Put("t1", &indexstore.Task{TaskType: "BATCH_PREDICTION", State: tt.state})
			rec := a.do(t, http.MethodDelete, tasksPath+"t1", "")
			if tt.refused {
				wantError(t, rec, 409, "exception", "Task cannot be deleted in running state. Try after some time.")
				if a.store.tasks.Raw("t1") == nil {
					t.Errorf("refused delete removed the task")
				}
				return
			}
			res := decodeAnswer(t, rec)
			if rec.Code != 200 || res["result"] != "deleted" {
				t.Errorf("got %d %v, want 200 and a DeleteResponse", rec.Code, res)
			}
			wantError(t, a.do(t, http.MethodGet, tasksPath+"t1", ""), 404, "status_exception", "Failed to find task")
		})
	}
	t.Run("unknown", func(t *testing.T) {
		a := newTestAPI(t)
		wantError(t, a.do(t, http.MethodDelete, tasksPath+"nope", ""), 404, "status_exception", "Failed to find task")
	})
}

func TestGetTask(t *testing.T) {
	a := newTestAPI(t)
	conn := a.createConnector(t, openAIConnector())
	res := a.mustDo(t, http.MethodPost, registerPath, toJSON(t, map[string]any{"name": "m", "function_name": "remote", "connector_id": conn}))
	got := a.mustDo(t, http.MethodGet, tasksPath+res["task_id"].(string), "")
	now := float64(testNow.UnixMilli())
	want := map[string]any{
		"model_id": res["model_id"], "task_type": "REGISTER_MODEL", "function_name": "REMOTE", "state": "COMPLETED",
		"worker_node": []any{testNodeID}, "create_time": now, "last_update_time": now, "is_async": false,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GET task mismatch (-want +got):\n%s", diff)
	}
}
