package e2e

import (
	"slices"
	"strings"
	"testing"
)

// hitIDs are the _id of a search answer's hits.
func hitIDs(v map[string]any) []string {
	hits, _ := v["hits"].(map[string]any)
	list, _ := hits["hits"].([]any)
	var ids []string
	for _, h := range list {
		if m, ok := h.(map[string]any); ok {
			id, _ := m["_id"].(string)
			ids = append(ids, id)
		}
	}
	return ids
}

// Given a cluster with the security plugin and the sidecar with model and
// connector access control on, when carol (ml_full_access, backend role
// ml-admins) keeps a private model group and one restricted to ml-admins,
// then dave (ml-admins) sees and uses the restricted model only, erin (no
// shared backend role) gets ML Commons' refusals for both and finds neither
// in searches, admin (all_access) sees everything, and a batch task of the
// private model stays carol's even after the model is deleted.
func TestACLResourcesThroughGroupsAndOwners(t *testing.T) {
	sec := startSecurityNode(t)
	d, _ := batchDouble(t)
	input := uploadBatchInput(t, d, embeddingLine("x", "x"))
	sc := startSidecar(t, withArgs("--upstream", sec.url(), "--authentication", "cluster", "--master-key-file", writeKeys(t, newKey(t, "k1")),
		"--upstream-username", "mlsidecar", "--upstream-password-file", passwordFile(t, "svc-E2e-pass1"), "--index-prefix", ".e2e-acl-",
		"--model-access-control", "--connector-access-control")...)
	must := func(user, method, path, body string) map[string]any {
		t.Helper()
		status, v := mlAs(t, sc, user, method, path, body)
		if status != 200 {
			t.Fatalf("%s %s %s: %d %v", user, method, path, status, v)
		}
		return v
	}
	refused := func(user, method, path, body string, wantStatus int, wantReason string) {
		t.Helper()
		status, v := mlAs(t, sc, user, method, path, body)
		if _, reason := errorOf(v); status != wantStatus || reason != wantReason {
			t.Errorf("%s %s %s: %d %q, want %d %q", user, method, path, status, reason, wantStatus, wantReason)
		}
	}

	// Carol's connector is restricted to ml-admins.
	conn := strings.Replace(openAIConnector(d.URL(), input, ""), `"protocol": "http",`, `"protocol": "http", "backend_roles": ["ml-admins"],`, 1)
	cid := must("carol", "POST", "/_plugins/_ml/connectors/_create", conn)["connector_id"].(string)
	if v := must("dave", "GET", "/_plugins/_ml/connectors/"+cid, ""); v["access"] != "restricted" {
		t.Errorf("dave reads carol's connector: %v, want access restricted", v)
	}
	refused("erin", "GET", "/_plugins/_ml/connectors/"+cid, "", 403, "You don't have permission to access this connector")
	refused("erin", "POST", "/_plugins/_ml/models/_register", `{"name":"erin-model","function_name":"remote","connector_id":"`+cid+`"}`,
		400, "You don't have permission to use the connector provided, connector id: "+cid)

	// Carol's groups and models.
	private := must("carol", "POST", "/_plugins/_ml/model_groups/_register", `{"name":"carol-private","access_mode":"private"}`)["model_group_id"].(string)
	team := must("carol", "POST", "/_plugins/_ml/model_groups/_register",
		`{"name":"carol-team","access_mode":"restricted","backend_roles":["ml-admins"]}`)["model_group_id"].(string)
	refused("carol", "POST", "/_plugins/_ml/model_groups/_register", `{"name":"x","access_mode":"restricted","backend_roles":["admin"]}`,
		400, "You don't have the backend roles specified.")
	register := func(name, group string) string {
		return must("carol", "POST", "/_plugins/_ml/models/_register?deploy=true",
			`{"name":"`+name+`","function_name":"remote","connector_id":"`+cid+`","model_group_id":"`+group+`"}`)["model_id"].(string)
	}
	privModel, teamModel := register("private-model", private), register("team-model", team)
	predict := `{"parameters":{"input":["x"]}}`

	// Dave shares ml-admins: the restricted model is his to read and use.
	must("dave", "GET", "/_plugins/_ml/model_groups/"+team, "")
	must("dave", "GET", "/_plugins/_ml/models/"+teamModel, "")
	must("dave", "POST", "/_plugins/_ml/models/"+teamModel+"/_predict", predict)
	refused("dave", "GET", "/_plugins/_ml/model_groups/"+private, "", 403, "User doesn't have privilege to perform this operation on this model group")
	refused("dave", "GET", "/_plugins/_ml/models/"+privModel, "", 403, "User doesn't have privilege to perform this operation on this model")
	refused("dave", "POST", "/_plugins/_ml/models/"+privModel+"/_predict", predict, 403, "User Doesn't have privilege to perform this operation on this model")

	// Erin shares nothing: ML Commons' refusals, and empty searches.
	for _, m := range []string{privModel, teamModel} {
		refused("erin", "GET", "/_plugins/_ml/models/"+m, "", 403, "User doesn't have privilege to perform this operation on this model")
		refused("erin", "POST", "/_plugins/_ml/models/"+m+"/_predict", predict, 403, "User Doesn't have privilege to perform this operation on this model")
		refused("erin", "POST", "/_plugins/_ml/models/"+m+"/_undeploy", "", 400, "No permission to undeploy model "+m)
		refused("erin", "DELETE", "/_plugins/_ml/models/"+m, "", 403, "User doesn't have privilege to perform this operation on this model")
	}
	refused("erin", "POST", "/_plugins/_ml/models/_register", `{"name":"carol-team","function_name":"remote","connector":`+openAIConnector(d.URL(), input, "")+`}`,
		400, "The name {carol-team} you provided is unavailable because it is used by another model group with id {"+team+"} to which you do not have access. Please provide a different name.")

	search := func(user, what string) []string {
		return hitIDs(must(user, "POST", "/_plugins/_ml/"+what+"/_search", `{"query":{"match_all":{}},"size":100}`))
	}
	for _, tc := range []struct {
		user, what string
		want, not  []string
	}{
		{"erin", "model_groups", nil, []string{private, team}},
		{"erin", "models", nil, []string{privModel, teamModel}},
		{"erin", "connectors", nil, []string{cid}},
		{"dave", "model_groups", []string{team}, []string{private}},
		{"dave", "models", []string{teamModel}, []string{privModel}},
		{"admin", "model_groups", []string{private, team}, nil},
		{"admin", "models", []string{privModel, teamModel}, nil},
		{"carol", "models", []string{privModel, teamModel}, nil},
	} {
		got := search(tc.user, tc.what)
		for _, id := range tc.want {
			if !slices.Contains(got, id) {
				t.Errorf("%s searching %s: got %v, want %s among them", tc.user, tc.what, got, id)
			}
		}
		for _, id := range tc.not {
			if slices.Contains(got, id) {
				t.Errorf("%s searching %s: got %v, must not see %s", tc.user, tc.what, got, id)
			}
		}
	}
	// Admin reads everything.
	must("admin", "GET", "/_plugins/_ml/models/"+privModel, "")
	must("admin", "GET", "/_plugins/_ml/connectors/"+cid, "")

	// A batch task of the private model stays carol's after the model is
	// gone.
	tid := must("carol", "POST", "/_plugins/_ml/models/"+privModel+"/_batch_predict", `{"parameters":{}}`)["task_id"].(string)
	must("carol", "POST", "/_plugins/_ml/models/"+privModel+"/_undeploy", "")
	must("carol", "DELETE", "/_plugins/_ml/models/"+privModel, "")
	for _, user := range []string{"dave", "erin"} {
		refused(user, "GET", "/_plugins/_ml/tasks/"+tid, "", 403, "You don't have permission to access this batch job")
		refused(user, "POST", "/_plugins/_ml/tasks/"+tid+"/_cancel", "", 403, "You don't have permission to cancel this batch job")
	}
	must("admin", "GET", "/_plugins/_ml/tasks/"+tid, "")
	must("carol", "GET", "/_plugins/_ml/tasks/"+tid, "")
	must("carol", "POST", "/_plugins/_ml/tasks/"+tid+"/_cancel", "")
}
