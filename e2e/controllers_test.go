package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mlsidecar/mlsidecar/e2e/providers/openai"
)

const controllersPath = "/_plugins/_ml/controllers/"

// Given a cluster without the security plugin, when a model's controller is
// created, read, updated and deleted through the sidecar, then the answers
// and the model's is_controller_enabled are ML Commons 2.19's, the
// controller lives in the sidecar's own index under the model's id, and
// deleting the model deletes it. Such a cluster has no users, so ML Commons
// limits nobody: no prediction is throttled at user level.
func TestControllersWithoutSecurity(t *testing.T) {
	double := openai.New(openai.Options{APIKey: openAIKey, Dim: 8})
	double.Start()
	t.Cleanup(double.Close)
	const prefix = ".e2e-ctrl-"
	sc := startSidecar(t, withArgs("--index-prefix", prefix)...)
	model := deployModel(t, sc, openAIConnector(double.URL(), "f", ""))
	path := controllersPath + model

	status, v := mlCall(t, sc, "GET", path, "")
	if status != 404 {
		t.Fatalf("GET before create: %d %v", status, v)
	}
	wantError(t, v, 404, "status_exception", "Failed to find model controller with the provided model ID")
	status, v = mlCall(t, sc, "PUT", path, `{"user_rate_limiter":{}}`)
	if status != 409 {
		t.Fatalf("PUT before create: %d %v", status, v)
	}
	wantError(t, v, 409, "status_exception", "Model controller haven't been created for the model. Consider calling create model controller api instead. Model ID: "+model)
	status, v = mlCall(t, sc, "POST", path, `{"user_rate_limiter":{"alice":{"limit":"-1","unit":"MINUTES"}}}`)
	if status != 400 {
		t.Fatalf("negative limit: %d %v", status, v)
	}
	wantError(t, v, 400, "parse_exception", "Limit field must be a positive number.")

	created := mustML(t, sc, 200, "POST", path, `{"user_rate_limiter":{"alice":{"limit":1,"unit":"DAYS"},"":{"limit":"1","unit":"DAYS"}}}`)
	if diff := cmp.Diff(map[string]any{"model_id": model, "status": "CREATED"}, created); diff != "" {
		t.Errorf("create (-want +got):\n%s", diff)
	}
	if m := mustML(t, sc, 200, "GET", "/_plugins/_ml/models/"+model, ""); m["is_controller_enabled"] != true {
		t.Errorf("model after create: is_controller_enabled %v, want true", m["is_controller_enabled"])
	}
	var stored struct {
		Source map[string]any `json:"_source"`
	}
	_, _, raw := do(t, "GET", node.url()+"/"+prefix+"controllers/_doc/"+model, nil, nil)
	if err := json.Unmarshal(raw, &stored); err != nil || stored.Source["user_rate_limiter"] == nil || stored.Source["model_id"] != nil {
		t.Errorf("stored controller %s, want user_rate_limiter and no model_id in _source", raw)
	}

	// Nobody is a user here: three predictions at one a day all pass.
	for range 3 {
		mustML(t, sc, 200, "POST", "/_plugins/_ml/models/"+model+"/_predict", `{"parameters":{"input":["x"]}}`)
	}

	updated := mustML(t, sc, 200, "PUT", path, `{"user_rate_limiter":{"alice":{"unit":"HOURS"},"bob":{"limit":"2","unit":"SECONDS"}}}`)
	if updated["result"] != "updated" || updated["_id"] != model || updated["_index"] != prefix+"controllers" {
		t.Errorf("update: %v, want an UpdateResponse of %s in %scontrollers", updated, model, prefix)
	}
	want := map[string]any{"model_id": model, "user_rate_limiter": map[string]any{
		"alice": map[string]any{"limit": "1", "unit": "HOURS"}, "": map[string]any{"limit": "1", "unit": "DAYS"},
		"bob": map[string]any{"limit": "2", "unit": "SECONDS"},
	}}
	if diff := cmp.Diff(want, mustML(t, sc, 200, "GET", path, "")); diff != "" {
		t.Errorf("controller after update (-want +got):\n%s", diff)
	}

	deleted := mustML(t, sc, 200, "DELETE", path, "")
	if deleted["result"] != "deleted" || deleted["forced_refresh"] != true {
		t.Errorf("delete: %v", deleted)
	}
	if m := mustML(t, sc, 200, "GET", "/_plugins/_ml/models/"+model, ""); m["is_controller_enabled"] != false {
		t.Errorf("model after delete: is_controller_enabled %v, want false", m["is_controller_enabled"])
	}
	status, v = mlCall(t, sc, "DELETE", path, "")
	if status != 404 {
		t.Fatalf("second delete: %d %v", status, v)
	}
	wantError(t, v, 404, "status_exception", "Failed to find model controller")

	// The model's delete takes its controller along.
	mustML(t, sc, 200, "POST", path, `{"user_rate_limiter":{"alice":{"limit":"1","unit":"DAYS"}}}`)
	mustML(t, sc, 200, "POST", "/_plugins/_ml/models/"+model+"/_undeploy", "")
	mustML(t, sc, 200, "DELETE", "/_plugins/_ml/models/"+model, "")
	if status, _, b := do(t, "GET", node.url()+"/"+prefix+"controllers/_doc/"+model, nil, nil); status != 404 {
		t.Errorf("controller after the model's delete: %d %s, want 404", status, b)
	}
}

// Given a secured cluster and two sidecar replicas sharing its indices,
// when carol gives dave a limit in her model's controller, then dave's
// predictions and batch predictions beyond it answer ML Commons' 429 on
// each replica (each counts its own) while erin's pass, and an update or
// delete made through one replica applies to the next prediction on the
// other.
func TestControllersPerUser(t *testing.T) {
	sec := startSecurityNode(t)
	d, _ := batchDouble(t)
	input := uploadBatchInput(t, d, embeddingLine("x", "x"))
	args := withArgs("--upstream", sec.url(), "--authentication", "cluster", "--master-key-file", writeKeys(t, newKey(t, "k1")),
		"--upstream-username", "mlsidecar", "--upstream-password-file", passwordFile(t, "svc-E2e-pass1"), "--index-prefix", ".e2e-ctrl-sec-")
	sc1, sc2 := startSidecar(t, args...), startSidecar(t, args...)
	must := func(sc *sidecar, user, method, path, body string) map[string]any {
		t.Helper()
		status, v := mlAs(t, sc, user, method, path, body)
		if status != 200 {
			t.Fatalf("%s %s %s: %d %v", user, method, path, status, v)
		}
		return v
	}
	cid := must(sc1, "carol", "POST", "/_plugins/_ml/connectors/_create", openAIConnector(d.URL(), input, ""))["connector_id"].(string)
	model := must(sc1, "carol", "POST", "/_plugins/_ml/models/_register?deploy=true",
		`{"name":"limited","function_name":"remote","connector_id":"`+cid+`"}`)["model_id"].(string)
	path := controllersPath + model
	predict := "/_plugins/_ml/models/" + model + "/_predict"
	// passes counts how many of n predictions (or batch predictions) pass;
	// every other answer must be the user-level 429.
	passes := func(sc *sidecar, user, path, body string, n int) int {
		t.Helper()
		ok := 0
		for range n {
			status, v := mlAs(t, sc, user, "POST", path, body)
			switch {
			case status == 200:
				ok++
			case status == 429:
				wantError(t, v, 429, "status_exception",
					"Request is throttled at user level. If you think there's an issue, please contact your cluster admin.")
			default:
				t.Fatalf("%s %s: %d %v", user, path, status, v)
			}
		}
		return ok
	}
	const predictBody = `{"parameters":{"input":["x"]}}`

	// Hours: no token comes back while the test runs.
	must(sc1, "carol", "POST", path, `{"user_rate_limiter":{"dave":{"limit":"2","unit":"HOURS"}}}`)
	if v := must(sc2, "dave", "GET", path, ""); !strings.Contains(jsonString(v), `"dave":{"limit":"2","unit":"HOURS"}`) {
		t.Errorf("the controller as dave reads it on the other replica: %v", v)
	}
	if n := passes(sc1, "dave", predict, predictBody, 3); n != 2 {
		t.Errorf("dave on replica 1 at 2 an hour: %d of 3 predictions passed, want 2", n)
	}
	if n := passes(sc1, "dave", "/_plugins/_ml/models/"+model+"/_batch_predict", `{"parameters":{}}`, 1); n != 0 {
		t.Error("dave's batch predict over his limit passed")
	}
	if n := passes(sc2, "dave", predict, predictBody, 3); n != 2 {
		t.Errorf("dave on replica 2 at 2 an hour: %d of 3 predictions passed, want 2 (its own bucket)", n)
	}
	if n := passes(sc1, "erin", predict, predictBody, 4); n != 4 {
		t.Errorf("erin, not in the controller: %d of 4 predictions passed", n)
	}

	// An update through replica 2 is a new, full bucket on replica 1.
	must(sc2, "carol", "PUT", path, `{"user_rate_limiter":{"dave":{"limit":"3"}}}`)
	if n := passes(sc1, "dave", predict, predictBody, 4); n != 3 {
		t.Errorf("dave on replica 1 at 3 an hour: %d of 4 predictions passed, want 3", n)
	}
	// A delete through replica 1 frees him on replica 2 at once.
	must(sc1, "carol", "DELETE", path, "")
	if n := passes(sc2, "dave", predict, predictBody, 3); n != 3 {
		t.Errorf("dave on replica 2 after the delete: %d of 3 predictions passed", n)
	}
}
