package mlcommons

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/auth"
	"github.com/mlsidecar/mlsidecar/mlcommons/remote"
)

// aclUsers are the callers of the access-control tests: "owner" creates
// the resources; "peer" shares its backend role team-a; "other" has only
// team-b; "admin" is mapped to all_access; "loner" has no backend role.
var aclUsers = map[string]struct{ backendRoles, roles []string }{
	"owner": {[]string{"team-a", "team-o"}, []string{"ml"}},
	"peer":  {[]string{"team-a"}, []string{"ml"}},
	"other": {[]string{"team-b"}, []string{"ml"}},
	"admin": {[]string{"team-x"}, []string{"all_access"}},
	"loner": {nil, []string{"ml"}},
}

func aclAuthinfo(w http.ResponseWriter, r *http.Request) {
	name, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Test ")
	u, ok := aclUsers[name]
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"user_name": name, "backend_roles": u.backendRoles,
		"roles": u.roles, "user_requested_tenant": nil})
}

// aclPerms give every caller every ML action: what is left to refuse is
// resource access control's.
var aclPerms = &auth.Permissions{Roles: map[string][]string{
	"ml": {"cluster:admin/opensearch/ml/*"}, "all_access": {"*"},
}}

// okProvider answers every provider call with an OpenAI batch or an
// embedding.
func okProvider(_ context.Context, c remote.Call) (*remote.Response, error) {
	body := `{"data":[{"embedding":[0.1,0.2]}]}`
	if strings.Contains(c.URL, "batches") {
		body = `{"id":"batch_abc","object":"batch","status":"in_progress"}`
	}
	return &remote.Response{StatusCode: http.StatusOK, Body: []byte(body)}, nil
}

func newACLAPI(t *testing.T, modelACL, connectorACL bool) *testAPI {
	t.Helper()
	return newTestAPIWith(t, testOptions{authinfo: aclAuthinfo, perms: aclPerms, remote: okProvider,
		modelACL: modelACL, connectorACL: connectorACL})
}

// mustDoAs is doAs for a request that must answer 200.
func (a *testAPI) mustDoAs(t *testing.T, user, method, path, body string) map[string]any {
	t.Helper()
	rec := a.doAs(t, user, method, path, body)
	if rec.Code != http.StatusOK {
		t.Fatalf("%s %s %s: got %d, want 200; body %s", user, method, path, rec.Code, rec.Body)
	}
	return decodeAnswer(t, rec)
}

// ownerConnector has the owner create a connector and returns its id.
func ownerConnector(t *testing.T, a *testAPI, body map[string]any) string {
	t.Helper()
	return a.mustDoAs(t, "owner", http.MethodPost, createPath, toJSON(t, body))["connector_id"].(string)
}

// ownerModel has the owner register a group with access mode and a model
// in it; it returns their ids.
func ownerModel(t *testing.T, a *testAPI, mode, conn string) (group, model string) {
	t.Helper()
	body := map[string]any{"name": "group-" + mode, "access_mode": mode}
	if mode == accessRestricted {
		body["backend_roles"] = []string{"team-a"}
	}
	group = a.mustDoAs(t, "owner", http.MethodPost, groupsPath+"_register", toJSON(t, body))["model_group_id"].(string)
	model = a.mustDoAs(t, "owner", http.MethodPost, registerPath, toJSON(t, map[string]any{
		"name": "model-" + mode, "function_name": "remote", "connector_id": conn, "model_group_id": group}))["model_id"].(string)
	return group, model
}

// denial is an access-control refusal.
type denial struct {
	status  int
	errType string
	reason  string
}

// The models of a group are reached through it: each access mode × caller
// × operation either runs or gets ML Commons' refusal of that operation.
func TestModelAccessThroughGroup(t *testing.T) {
	a := newACLAPI(t, true, false)
	conn := ownerConnector(t, a, batchConnector())
	allowed := map[string]map[string]bool{
		accessPublic:     {"owner": true, "peer": true, "other": true, "admin": true},
		accessPrivate:    {"owner": true, "admin": true},
		accessRestricted: {"owner": true, "peer": true, "admin": true},
	}
	forbidden := func(reason string) denial { return denial{http.StatusForbidden, "status_exception", reason} }
	ops := []struct {
		name         string
		method, path string // {g} and {m} are the group and model ids
		body         string
		denied       denial
	}{
		{"get group", "GET", groupsPath + "{g}", "", forbidden("User doesn't have privilege to perform this operation on this model group")},
		{"update group", "PUT", groupsPath + "{g}", `{"description":"d"}`,
			denial{http.StatusBadRequest, "illegal_argument_exception", "You don't have permission to update this model group."}},
		{"get model", "GET", modelsPath + "{m}", "", forbidden("User doesn't have privilege to perform this operation on this model")},
		{"update model", "PUT", modelsPath + "{m}", `{"description":"d"}`,
			forbidden("User doesn't have privilege to perform this operation on this model, model ID {m}")},
		{"deploy", "POST", modelsPath + "{m}/_deploy", "", forbidden("User doesn't have privilege to perform this operation on this model")},
		{"predict", "POST", modelsPath + "{m}/_predict", `{"parameters":{"input":["x"]}}`,
			forbidden("User Doesn't have privilege to perform this operation on this model")},
		{"batch predict", "POST", modelsPath + "{m}/_batch_predict", `{"parameters":{"input_file_id":"f"}}`,
			forbidden("User Doesn't have privilege to perform this operation on this model")},
		{"undeploy", "POST", modelsPath + "{m}/_undeploy", "",
			denial{http.StatusBadRequest, "illegal_argument_exception", "No permission to undeploy model {m}"}},
		{"undeploy by list", "POST", modelsPath + "_undeploy", `{"model_ids":["{m}"]}`,
			denial{http.StatusBadRequest, "illegal_argument_exception", "No permission to undeploy model {m}"}},
	}
	for _, mode := range []string{accessPublic, accessPrivate, accessRestricted} {
		group, model := ownerModel(t, a, mode, conn)
		fill := strings.NewReplacer("{g}", group, "{m}", model)
		for _, caller := range []string{"owner", "peer", "other", "admin"} {
			for _, op := range ops {
				t.Run(mode+"/"+caller+"/"+op.name, func(t *testing.T) {
					rec := a.doAs(t, caller, op.method, fill.Replace(op.path), fill.Replace(op.body))
					if !allowed[mode][caller] {
						wantError(t, rec, op.denied.status, op.denied.errType, fill.Replace(op.denied.reason))
						return
					}
					if rec.Code != http.StatusOK {
						t.Errorf("got %d, want 200; body %s", rec.Code, rec.Body)
					}
				})
			}
		}
	}
}

// Deleting a model or a group takes the same access as using it.
func TestDeleteThroughGroup(t *testing.T) {
	a := newACLAPI(t, true, false)
	conn := ownerConnector(t, a, openAIConnector())
	group, model := ownerModel(t, a, accessPrivate, conn)
	wantError(t, a.doAs(t, "peer", "DELETE", modelsPath+model, ""), http.StatusForbidden, "status_exception",
		"User doesn't have privilege to perform this operation on this model")
	a.mustDoAs(t, "owner", "DELETE", modelsPath+model, "")
	wantError(t, a.doAs(t, "peer", "DELETE", groupsPath+group, ""), http.StatusForbidden, "status_exception",
		"User doesn't have privilege to delete this model group")
	a.mustDoAs(t, "admin", "DELETE", groupsPath+group, "")
}

func TestRegisterModelGroupAccess(t *testing.T) {
	tests := []struct {
		name, caller, body string
		wantAccess         string
		wantRoles          []string
		reason             string // "" registers
	}{
		{name: "default private", caller: "owner", body: `{}`, wantAccess: "private"},
		{name: "roles default restricted", caller: "owner", body: `{"backend_roles":["team-a"]}`, wantAccess: "restricted", wantRoles: []string{"team-a"}},
		{name: "add all", caller: "owner", body: `{"add_all_backend_roles":true}`, wantAccess: "restricted", wantRoles: []string{"team-a", "team-o"}},
		{name: "public", caller: "owner", body: `{"access_mode":"public"}`, wantAccess: "public"},
		{name: "admin any role", caller: "admin", body: `{"access_mode":"restricted","backend_roles":["team-z"]}`, wantAccess: "restricted", wantRoles: []string{"team-z"}},
		{name: "public with roles", caller: "owner", body: `{"access_mode":"public","backend_roles":["team-a"]}`,
			reason: "You can specify backend roles only for a model group with the restricted access mode."},
		{name: "private with add all", caller: "owner", body: `{"access_mode":"private","add_all_backend_roles":true}`,
			reason: "You can specify backend roles only for a model group with the restricted access mode."},
		{name: "admin add all", caller: "admin", body: `{"access_mode":"restricted","add_all_backend_roles":true}`,
			reason: "Admin users cannot add all backend roles to a model group."},
		{name: "caller without roles", caller: "loner", body: `{"access_mode":"restricted","backend_roles":["team-a"]}`,
			reason: "You must have at least one backend role to register a restricted model group."},
		{name: "restricted without roles", caller: "owner", body: `{"access_mode":"restricted"}`,
			reason: "You must specify one or more backend roles or add all backend roles to register a restricted model group."},
		{name: "both", caller: "owner", body: `{"backend_roles":["team-a"],"add_all_backend_roles":true}`,
			reason: "You cannot specify backend roles and add all backend roles at the same time."},
		{name: "roles not held", caller: "owner", body: `{"backend_roles":["team-b"]}`,
			reason: "You don't have the backend roles specified."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newACLAPI(t, true, false)
			var body map[string]any
			if err := json.Unmarshal([]byte(tt.body), &body); err != nil {
				t.Fatal(err)
			}
			body["name"] = "g"
			rec := a.doAs(t, tt.caller, http.MethodPost, groupsPath+"_register", toJSON(t, body))
			if tt.reason != "" {
				wantError(t, rec, http.StatusBadRequest, "illegal_argument_exception", tt.reason)
				return
			}
			if rec.Code != http.StatusOK {
				t.Fatalf("got %d %s, want 200", rec.Code, rec.Body)
			}
			g := decodeRaw[indexstore.ModelGroup](t, "group", a.store.modelGroups.Raw(decodeAnswer(t, rec)["model_group_id"].(string)))
			if g.Access != tt.wantAccess || strings.Join(g.BackendRoles, ",") != strings.Join(tt.wantRoles, ",") || g.Owner == nil || g.Owner.Name != tt.caller {
				t.Errorf("stored access %q roles %v owner %+v, want %q %v %s", g.Access, g.BackendRoles, g.Owner, tt.wantAccess, tt.wantRoles, tt.caller)
			}
		})
	}
}

func TestUpdateModelGroupAccess(t *testing.T) {
	tests := []struct {
		name, mode, caller, body string
		reason                   string // "" updates
		wantAccess               string
		wantRoles                []string
	}{
		{name: "owner to restricted", mode: "private", caller: "owner", body: `{"access_mode":"restricted","backend_roles":["team-o"]}`,
			wantAccess: "restricted", wantRoles: []string{"team-o"}},
		{name: "owner to public clears roles", mode: "restricted", caller: "owner", body: `{"access_mode":"public"}`, wantAccess: "public"},
		{name: "admin add all refused", mode: "private", caller: "admin", body: `{"access_mode":"restricted","add_all_backend_roles":true}`,
			reason: "Admin users cannot add all backend roles to a model group."},
		{name: "peer changes access", mode: "restricted", caller: "peer", body: `{"access_mode":"public"}`,
			reason: "Only owner or admin can update access control data."},
		{name: "peer edits description", mode: "restricted", caller: "peer", body: `{"description":"d"}`, wantAccess: "restricted", wantRoles: []string{"team-a"}},
		{name: "other edits private", mode: "private", caller: "other", body: `{"description":"d"}`,
			reason: "You don't have permission to update this model group."},
		{name: "add all false without roles", mode: "restricted", caller: "owner", body: `{"add_all_backend_roles":false}`,
			reason: "You have to specify backend roles when add all backend roles is set to false."},
		{name: "roles on private", mode: "restricted", caller: "owner", body: `{"access_mode":"private","backend_roles":["team-a"]}`,
			reason: "You can specify backend roles only for a model group with the restricted access mode."},
		{name: "roles not held", mode: "restricted", caller: "owner", body: `{"backend_roles":["team-b"]}`,
			reason: "You don't have the backend roles specified."},
		{name: "restricted without roles", mode: "private", caller: "owner", body: `{"access_mode":"restricted"}`,
			reason: "You must specify one or more backend roles or add all backend roles to register a restricted model group."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newACLAPI(t, true, false)
			body := map[string]any{"name": "g", "access_mode": tt.mode}
			if tt.mode == accessRestricted {
				body["backend_roles"] = []string{"team-a"}
			}
			id := a.mustDoAs(t, "owner", http.MethodPost, groupsPath+"_register", toJSON(t, body))["model_group_id"].(string)
			rec := a.doAs(t, tt.caller, http.MethodPut, groupsPath+id, tt.body)
			if tt.reason != "" {
				wantError(t, rec, http.StatusBadRequest, "illegal_argument_exception", tt.reason)
				return
			}
			if rec.Code != http.StatusOK {
				t.Fatalf("got %d %s, want 200", rec.Code, rec.Body)
			}
			g := decodeRaw[indexstore.ModelGroup](t, "group", a.store.modelGroups.Raw(id))
			if g.Access != tt.wantAccess || strings.Join(g.BackendRoles, ",") != strings.Join(tt.wantRoles, ",") {
				t.Errorf("stored access %q roles %v, want %q %v", g.Access, g.BackendRoles, tt.wantAccess, tt.wantRoles)
			}
		})
	}
}

// Registering into a group, or under a group's name, takes access to it;
// re-linking a model takes access to the target.
func TestRegisterAndRelinkThroughGroup(t *testing.T) {
	a := newACLAPI(t, true, false)
	conn := ownerConnector(t, a, openAIConnector())
	group, model := ownerModel(t, a, accessPrivate, conn)
	reg := func(body map[string]any) *httptest.ResponseRecorder {
		body["function_name"], body["connector_id"] = "remote", conn
		return a.doAs(t, "other", http.MethodPost, registerPath, toJSON(t, body))
	}
	wantError(t, reg(map[string]any{"name": "x", "model_group_id": group}), http.StatusBadRequest, "illegal_argument_exception",
		"You don't have permissions to perform this operation on this model.")
	wantError(t, reg(map[string]any{"name": "group-private"}), http.StatusBadRequest, "illegal_argument_exception",
		"The name {group-private} you provided is unavailable because it is used by another model group with id {"+group+"} to which you do not have access. Please provide a different name.")
	// A new group takes the register body's access.
	rec := reg(map[string]any{"name": "fresh", "access_mode": "restricted", "backend_roles": []string{"team-b"}})
	if rec.Code != http.StatusOK {
		t.Fatalf("register with a new group: got %d %s", rec.Code, rec.Body)
	}
	m := storedModel(t, a, decodeAnswer(t, rec)["model_id"].(string))
	g := decodeRaw[indexstore.ModelGroup](t, "group", a.store.modelGroups.Raw(m.ModelGroupID))
	if g.Access != accessRestricted || strings.Join(g.BackendRoles, ",") != "team-b" || g.Owner.Name != "other" {
		t.Errorf("new group %+v, want restricted to team-b, owned by other", g)
	}
	wantError(t, a.doAs(t, "owner", http.MethodPut, modelsPath+model, toJSON(t, map[string]any{"model_group_id": m.ModelGroupID})),
		http.StatusForbidden, "status_exception",
		"User Doesn't have privilege to re-link this model to the target model group due to no access to the target model group with model group ID "+m.ModelGroupID)
	wantError(t, a.doAs(t, "admin", http.MethodPost, modelsPath+"_undeploy", toJSON(t, map[string]any{"model_ids": []string{model, "m2"}})),
		http.StatusBadRequest, "illegal_argument_exception", "only support undeploy one model")
}

// Off, or for the anonymous caller of a cluster without security, the
// access-control fields are refused with ML Commons' text, as before.
func TestAccessControlOff(t *testing.T) {
	refused := "You cannot specify model access control parameters because the Security plugin or model access control is disabled on your cluster."
	a := newACLAPI(t, false, false)
	wantError(t, a.doAs(t, "owner", http.MethodPost, groupsPath+"_register", `{"name":"g","access_mode":"private"}`),
		http.StatusBadRequest, "illegal_argument_exception", refused)
	body := openAIConnector()
	body["access_mode"] = "private"
	wantError(t, a.doAs(t, "owner", http.MethodPost, createPath, toJSON(t, body)), http.StatusBadRequest, "illegal_argument_exception",
		"You cannot specify connector access control parameters because the Security plugin or connector access control is disabled on your cluster.")
	// Everyone reaches everything.
	g := a.mustDoAs(t, "owner", http.MethodPost, groupsPath+"_register", `{"name":"g"}`)["model_group_id"].(string)
	a.mustDoAs(t, "other", http.MethodGet, groupsPath+g, "")

	anon := newTestAPIWith(t, testOptions{modelACL: true, connectorACL: true})
	wantError(t, anon.do(t, http.MethodPost, groupsPath+"_register", `{"name":"g","access_mode":"private"}`),
		http.StatusBadRequest, "illegal_argument_exception", refused)
}

func TestConnectorAccess(t *testing.T) {
	create := func(a *testAPI, caller string, access map[string]any) *httptest.ResponseRecorder {
		body := openAIConnector()
		for k, v := range access {
			body[k] = v
		}
		return a.doAs(t, caller, http.MethodPost, createPath, toJSON(t, body))
	}
	t.Run("create validation", func(t *testing.T) {
		a := newACLAPI(t, false, true)
		for _, tt := range []struct {
			caller string
			access map[string]any
			reason string
		}{
			{"admin", map[string]any{"add_all_backend_roles": true}, "Admin can't add all backend roles"},
			{"owner", map[string]any{"access_mode": "public", "backend_roles": []string{"team-a"}}, "You can specify backend roles only for a connector with the restricted access mode."},
			{"owner", map[string]any{"add_all_backend_roles": true, "backend_roles": []string{"team-a"}}, "You can't specify backend roles and add all backend roles to true at same time."},
			{"loner", map[string]any{"add_all_backend_roles": true}, "You must have at least one backend role to create a connector."},
			{"owner", map[string]any{"access_mode": "restricted"}, "You must specify at least one backend role or make the connector public/private for registering it."},
			{"owner", map[string]any{"backend_roles": []string{"team-b"}}, "You don't have the backend roles specified."},
		} {
			wantError(t, create(a, tt.caller, tt.access), http.StatusBadRequest, "illegal_argument_exception", tt.reason)
		}
	})
	a := newACLAPI(t, false, true)
	ids := map[string]string{}
	for mode, access := range map[string]map[string]any{
		accessPublic: {"access_mode": "public"}, accessPrivate: {},
		accessRestricted: {"backend_roles": []string{"team-a"}},
	} {
		rec := create(a, "owner", access)
		if rec.Code != http.StatusOK {
			t.Fatalf("create %s: got %d %s", mode, rec.Code, rec.Body)
		}
		ids[mode] = decodeAnswer(t, rec)["connector_id"].(string)
		if c := storedConnector(t, a, ids[mode]); c.Access != mode || c.Owner == nil || c.Owner.Name != "owner" {
			t.Errorf("stored %s connector access %q owner %+v", mode, c.Access, c.Owner)
		}
	}
	allowed := map[string]map[string]bool{
		accessPublic:     {"owner": true, "peer": true, "other": true, "admin": true},
		accessPrivate:    {"owner": true, "admin": true},
		accessRestricted: {"owner": true, "peer": true, "admin": true},
	}
	for mode, id := range ids {
		for _, caller := range []string{"owner", "peer", "other", "admin"} {
			t.Run(mode+"/"+caller, func(t *testing.T) {
				get := a.doAs(t, caller, http.MethodGet, connectorsPath+id, "")
				update := a.doAs(t, caller, http.MethodPut, connectorsPath+id, `{"description":"d"}`)
				use := a.doAs(t, caller, http.MethodPost, registerPath, toJSON(t, map[string]any{"name": "m-" + caller + mode, "function_name": "remote", "connector_id": id}))
				if allowed[mode][caller] {
					for _, rec := range []*httptest.ResponseRecorder{get, update, use} {
						if rec.Code != http.StatusOK {
							t.Errorf("got %d %s, want 200", rec.Code, rec.Body)
						}
					}
					return
				}
				wantError(t, get, http.StatusForbidden, "status_exception", "You don't have permission to access this connector")
				wantError(t, update, http.StatusBadRequest, "illegal_argument_exception", "You don't have permission to update the connector, connector id: "+id)
				wantError(t, use, http.StatusBadRequest, "illegal_argument_exception", "You don't have permission to use the connector provided, connector id: "+id)
				wantError(t, a.doAs(t, caller, http.MethodDelete, connectorsPath+id, ""), http.StatusForbidden, "status_exception", "You are not allowed to delete this connector")
			})
		}
	}
}

// Searches of groups, connectors and models see only what the caller may
// access: the access filter goes to OpenSearch with the caller's query.
func TestSearchAccessFilters(t *testing.T) {
	a := newACLAPI(t, true, true)
	conn := ownerConnector(t, a, openAIConnector())
	group, _ := ownerModel(t, a, accessPrivate, conn)
	wantFilter := generic(t, `{"bool":{"minimum_should_match":1,"should":[
		{"term":{"access":"public"}},
		{"terms":{"backend_roles.keyword":["team-b"]}},
		{"bool":{"must":[{"term":{"owner.name.keyword":"other"}},{"term":{"access":"private"}}]}}]}}`)
	for c, path := range map[indexstore.Collection]string{indexstore.ModelGroups: groupsPath, indexstore.Connectors: connectorsPath} {
		a.mustDoAs(t, "other", http.MethodPost, path+"_search", `{"query":{"match_all":{}}}`)
		got := normalize(t, a.store.lastSearch(t, c).Body["query"])
		want := generic(t, `{"bool":{"must":[{"match_all":{}}],"filter":[`+toJSON(t, wantFilter)+`]}}`)
		if !jsonEqual(got, want) {
			t.Errorf("%s search query %s, want %s", c, toJSON(t, got), toJSON(t, want))
		}
	}
	// Models: first the caller's groups (the fake store answers every
	// group), then models of those groups or of none.
	a.mustDoAs(t, "other", http.MethodPost, modelsPath+"_search", `{"query":{"match_all":{}}}`)
	calls := a.store.searchCalls()
	groupsQuery := calls[len(calls)-2]
	if groupsQuery.Collection != indexstore.ModelGroups || !jsonEqual(normalize(t, groupsQuery.Body["query"]), wantFilter) {
		t.Errorf("group search before the model search: %+v", groupsQuery)
	}
	filter := normalize(t, a.store.lastSearch(t, indexstore.Models).Body["query"]).(map[string]any)["bool"].(map[string]any)["filter"]
	wantModels := generic(t, `[{"bool":{"minimum_should_match":1,"should":[{"terms":{"model_group_id":["`+group+`"]}},
		{"bool":{"must_not":[{"exists":{"field":"model_group_id"}}]}}]}}]`)
	if !jsonEqual(filter, wantModels) {
		t.Errorf("model search filter %s, want %s", toJSON(t, filter), toJSON(t, wantModels))
	}
	// An admin's search is not filtered.
	a.mustDoAs(t, "admin", http.MethodPost, "/_plugins/_ml/model_groups/_search", `{"query":{"match_all":{}}}`)
	if got := a.store.lastSearch(t, indexstore.ModelGroups).Body["query"]; !jsonEqual(normalize(t, got), generic(t, `{"match_all":{}}`)) {
		t.Errorf("admin search query %s, want the caller's own", toJSON(t, got))
	}
}

func jsonEqual(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// A batch task is checked through the group its model had at submission,
// even once the model is gone.
func TestBatchTaskAccess(t *testing.T) {
	a := newACLAPI(t, true, false)
	conn := ownerConnector(t, a, batchConnector())
	_, model := ownerModel(t, a, accessPrivate, conn)
	task := a.mustDoAs(t, "owner", http.MethodPost, modelsPath+model+"/_batch_predict", `{"parameters":{"input_file_id":"f"}}`)["task_id"].(string)
	if got := storedTask(t, a, task); got.Batch == nil || got.Batch.ModelGroupID != storedModel(t, a, model).ModelGroupID {
		t.Fatalf("stored task keeps group %+v, want the model's", got.Batch)
	}
	a.mustDoAs(t, "owner", http.MethodPost, modelsPath+model+"/_undeploy", "")
	a.mustDoAs(t, "owner", http.MethodDelete, modelsPath+model, "")
	for _, caller := range []string{"peer", "other"} {
		wantError(t, a.doAs(t, caller, http.MethodGet, tasksPath+task, ""), http.StatusForbidden, "status_exception",
			"You don't have permission to access this batch job")
		wantError(t, a.doAs(t, caller, http.MethodPost, tasksPath+task+"/_cancel", ""), http.StatusForbidden, "status_exception",
			"You don't have permission to cancel this batch job")
	}
	a.mustDoAs(t, "owner", http.MethodGet, tasksPath+task, "")
	a.mustDoAs(t, "admin", http.MethodGet, tasksPath+task, "")
	a.mustDoAs(t, "owner", http.MethodPost, tasksPath+task+"/_cancel", "")

	// The kept group, not the task's owner, decides: a peer of a
	// restricted group reads the task of its deleted model.
	_, model = ownerModel(t, a, accessRestricted, conn)
	task = a.mustDoAs(t, "owner", http.MethodPost, modelsPath+model+"/_batch_predict", `{"parameters":{"input_file_id":"f"}}`)["task_id"].(string)
	a.mustDoAs(t, "owner", http.MethodPost, modelsPath+model+"/_undeploy", "")
	a.mustDoAs(t, "owner", http.MethodDelete, modelsPath+model, "")
	a.mustDoAs(t, "peer", http.MethodGet, tasksPath+task, "")
	wantError(t, a.doAs(t, "other", http.MethodGet, tasksPath+task, ""), http.StatusForbidden, "status_exception",
		"You don't have permission to access this batch job")
}
