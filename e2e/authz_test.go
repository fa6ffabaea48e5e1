package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startSecurityNode starts a node of the WITH_SECURITY=1 profile (its users
// and roles are in e2e/opensearch/security) for one test.
func startSecurityNode(t *testing.T) *openSearchNode {
	t.Helper()
	sec := &openSearchNode{home: filepath.Join(t.TempDir(), "os-security"), env: []string{"WITH_SECURITY=1", "OS_HEAP=512m"}}
	if err := sec.fetch(); err != nil {
		t.Fatalf("fetching the security profile: %v", err)
	}
	if err := sec.start(0); err != nil {
		sec.printLog()
		t.Fatalf("starting the security node: %v", err)
	}
	t.Cleanup(func() { sec.stop() })
	return sec
}

// passwordFile writes a service account's password for --upstream-password-file.
func passwordFile(t *testing.T, password string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(p, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// asUser is a request header of a security-profile user.
func asUser(t *testing.T, user string) map[string]string {
	t.Helper()
	h, err := basicAuthHeader(user, user+"-E2e-pass1")
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{"Authorization": h, "Content-Type": "application/json"}
}

// mlAs is one ML call as a user; it returns the status and decoded answer.
func mlAs(t *testing.T, sc *sidecar, user, method, path, body string) (int, map[string]any) {
	t.Helper()
	status, _, b := do(t, method, sc.url+path, strings.NewReader(body), asUser(t, user))
	var v map[string]any
	_ = json.Unmarshal(b, &v)
	return status, v
}

// errorOf is the type and reason of an OpenSearch error answer.
func errorOf(v map[string]any) (string, string) {
	e, _ := v["error"].(map[string]any)
	typ, _ := e["type"].(string)
	reason, _ := e["reason"].(string)
	return typ, reason
}

// Given a cluster with the security plugin whose users hold admin, a
// health-only role, ml_read_access, ml_full_access or a custom role made of
// action groups and patterns, when each calls the ML API through the
// sidecar, then each may do exactly what the cluster's roles allow, and a
// refusal is the cluster's own 403 text.
func TestMLCallersAreAuthorizedByTheCluster(t *testing.T) {
	sec := startSecurityNode(t)
	d, _ := batchDouble(t)
	input := uploadBatchInput(t, d, embeddingLine("x", "x"))
	sc := startSidecar(t, withArgs("--upstream", sec.url(), "--authentication", "cluster", "--master-key-file", writeKeys(t, newKey(t, "k1")), "--upstream-username", "mlsidecar",
		"--upstream-password-file", passwordFile(t, "svc-E2e-pass1"), "--index-prefix", ".e2e-authz-")...)

	// What the cluster itself says when alice's role does not allow an
	// action: the sidecar must say the same, with the ML action named.
	_, _, clusterBody := do(t, "GET", sec.url()+"/_nodes/stats", nil, asUser(t, "alice"))
	var clusterAnswer map[string]any
	_ = json.Unmarshal(clusterBody, &clusterAnswer)
	_, clusterReason := errorOf(clusterAnswer)
	if !strings.HasPrefix(clusterReason, "no permissions for [cluster:monitor/nodes/stats] and User [name=alice") {
		t.Fatalf("the cluster's own refusal: %s", clusterBody)
	}
	deniedAs := func(clusterAction, mlAction string) string {
		return strings.Replace(clusterReason, "["+clusterAction+"]", "[cluster:admin/opensearch/ml/"+mlAction+"]", 1)
	}

	// Admin's resources: a connector, a deployed model, a batch task.
	status, v := mlAs(t, sc, "admin", "POST", "/_plugins/_ml/connectors/_create", openAIConnector(d.URL(), input, ""))
	if status != 200 {
		t.Fatalf("admin creates a connector: %d %v", status, v)
	}
	cid := v["connector_id"].(string)
	status, v = mlAs(t, sc, "admin", "POST", "/_plugins/_ml/models/_register?deploy=true",
		`{"name":"admin-model","function_name":"remote","connector_id":"`+cid+`"}`)
	if status != 200 {
		t.Fatalf("admin registers a model: %d %v", status, v)
	}
	mid := v["model_id"].(string)
	status, v = mlAs(t, sc, "admin", "POST", "/_plugins/_ml/models/"+mid+"/_batch_predict", `{"parameters":{}}`)
	if status != 200 {
		t.Fatalf("admin submits a batch job: %d %v", status, v)
	}
	tid := v["task_id"].(string)

	// Alice holds cluster:monitor/health only: all twelve cross-user
	// operations are refused, each naming its ML Commons action.
	for _, op := range []struct{ method, path, body, action string }{
		{"GET", "/_plugins/_ml/connectors/" + cid, "", "connectors/get"},
		{"PUT", "/_plugins/_ml/connectors/" + cid, `{"description":"x"}`, "connectors/update"},
		{"DELETE", "/_plugins/_ml/connectors/" + cid, "", "connectors/delete"},
		{"GET", "/_plugins/_ml/models/" + mid, "", "models/get"},
		{"PUT", "/_plugins/_ml/models/" + mid, `{"description":"x"}`, "models/update"},
		{"DELETE", "/_plugins/_ml/models/" + mid, "", "models/delete"},
		{"POST", "/_plugins/_ml/models/" + mid + "/_predict", `{"parameters":{"input":["x"]}}`, "predict"},
		{"POST", "/_plugins/_ml/models/" + mid + "/_undeploy", "", "undeploy_models"},
		{"POST", "/_plugins/_ml/models/" + mid + "/_batch_predict", `{"parameters":{}}`, "predict"},
		{"GET", "/_plugins/_ml/tasks/" + tid, "", "tasks/get"},
		{"POST", "/_plugins/_ml/tasks/" + tid + "/_cancel_batch", "", "tasks/cancel"},
		{"POST", "/_plugins/_ml/tasks/" + tid + "/_cancel", "", "tasks/cancel"},
		{"POST", "/_plugins/_ml/connectors/_search", `{"query":{"match_all":{}}}`, "connectors/search"},
	} {
		status, v := mlAs(t, sc, "alice", op.method, op.path, op.body)
		typ, reason := errorOf(v)
		if status != 403 || typ != "security_exception" || reason != deniedAs("cluster:monitor/nodes/stats", op.action) {
			t.Errorf("alice %s %s: %d %s %q, want 403 security_exception %q", op.method, op.path, status, typ, reason,
				deniedAs("cluster:monitor/nodes/stats", op.action))
		}
	}
	// Nothing of admin's changed: the task is still open, the model deployed.
	if status, v := mlAs(t, sc, "admin", "GET", "/_plugins/_ml/models/"+mid, ""); status != 200 || v["model_state"] != "DEPLOYED" {
		t.Errorf("admin's model after alice: %d %v", status, v)
	}

	// Rita (ml_read_access) reads but does not create, predict or cancel.
	for _, path := range []string{"/_plugins/_ml/connectors/" + cid, "/_plugins/_ml/models/" + mid, "/_plugins/_ml/tasks/" + tid, "/_plugins/_ml/stats"} {
		if status, v := mlAs(t, sc, "rita", "GET", path, ""); status != 200 {
			t.Errorf("rita reads %s: %d %v", path, status, v)
		}
	}
	for _, op := range []struct{ method, path, body string }{
		{"POST", "/_plugins/_ml/connectors/_create", openAIConnector(d.URL(), input, "")},
		{"POST", "/_plugins/_ml/models/" + mid + "/_predict", `{"parameters":{"input":["x"]}}`},
		{"POST", "/_plugins/_ml/tasks/" + tid + "/_cancel", ""},
	} {
		if status, v := mlAs(t, sc, "rita", op.method, op.path, op.body); status != 403 {
			t.Errorf("rita %s %s: %d %v, want 403", op.method, op.path, status, v)
		}
	}

	// Carol (ml_full_access) does everything of ML Commons.
	if status, v := mlAs(t, sc, "carol", "POST", "/_plugins/_ml/connectors/_create", openAIConnector(d.URL(), input, "")); status != 200 {
		t.Errorf("carol creates a connector: %d %v", status, v)
	}
	if status, v := mlAs(t, sc, "carol", "POST", "/_plugins/_ml/models/"+mid+"/_predict", `{"parameters":{"input":["x"]}}`); status != 200 {
		t.Errorf("carol predicts: %d %v", status, v)
	}

	// Pat's role is made of nested action groups, a ? wildcard and a
	// /regex/: models/get and predict pass, connectors/get does not.
	if status, v := mlAs(t, sc, "pat", "GET", "/_plugins/_ml/models/"+mid, ""); status != 200 {
		t.Errorf("pat gets the model (nested groups, models/g?t): %d %v", status, v)
	}
	if status, v := mlAs(t, sc, "pat", "POST", "/_plugins/_ml/models/_search", `{}`); status != 200 {
		t.Errorf("pat searches models (models/sea*): %d %v", status, v)
	}
	if status, v := mlAs(t, sc, "pat", "POST", "/_plugins/_ml/models/"+mid+"/_predict", `{"parameters":{"input":["x"]}}`); status != 200 {
		t.Errorf("pat predicts (/regex/): %d %v", status, v)
	}
	if status, v := mlAs(t, sc, "pat", "GET", "/_plugins/_ml/connectors/"+cid, ""); status != 403 {
		t.Errorf("pat gets the connector: %d %v, want 403", status, v)
	}
	// Admin (all_access) still cancels its own job.
	if status, v := mlAs(t, sc, "admin", "POST", "/_plugins/_ml/tasks/"+tid+"/_cancel", ""); status != 200 {
		t.Errorf("admin cancels: %d %v", status, v)
	}
}

// Given a service account that may not read the cluster's security
// configuration, when ML callers come, then the sidecar says so at start-up
// and authorizes by the configured role names: ml_read_access reads,
// ml_full_access does everything, a custom role nothing.
func TestMLAuthorizationByRoleNamesWithoutSecurityAPIAccess(t *testing.T) {
	sec := startSecurityNode(t)
	sc := startSidecar(t, "--upstream", sec.url(), "--authentication", "cluster", "--allow-stored-master-key", "--upstream-username", "svc2",
		"--upstream-password-file", passwordFile(t, "svc2-E2e-pass1"), "--index-prefix", ".e2e-authz-names-")
	eventually(t, 30*time.Second, "the start-up warning about role names", func() bool {
		return strings.Contains(sc.logs.String(), "authorized by role name only")
	})
	status, v := mlAs(t, sc, "carol", "POST", "/_plugins/_ml/connectors/_create", docConnector)
	if status != 200 {
		t.Fatalf("carol (ml_full_access) creates a connector: %d %v", status, v)
	}
	cid := v["connector_id"].(string)
	if status, v := mlAs(t, sc, "rita", "GET", "/_plugins/_ml/connectors/"+cid, ""); status != 200 {
		t.Errorf("rita (ml_read_access) reads: %d %v", status, v)
	}
	if status, v := mlAs(t, sc, "rita", "DELETE", "/_plugins/_ml/connectors/"+cid, ""); status != 403 {
		t.Errorf("rita (ml_read_access) deletes: %d %v, want 403", status, v)
	}
	if status, v := mlAs(t, sc, "pat", "GET", "/_plugins/_ml/connectors/"+cid, ""); status != 403 {
		t.Errorf("pat (a custom role, not one of the configured names) reads: %d %v, want 403", status, v)
	}
	if status, v := mlAs(t, sc, "admin", "DELETE", "/_plugins/_ml/connectors/"+cid, ""); status != 200 {
		t.Errorf("admin (all_access) deletes: %d %v", status, v)
	}
}

// Given the shared node, which has no security plugin, and a sidecar that
// was not told to serve ML callers unauthenticated, when an ML caller comes,
// then the sidecar says at start-up that it cannot authenticate and refuses
// the call (502) instead of treating the caller as anonymous; the proxy path
// is the cluster's business and stays open.
func TestNoSecurityPluginIsNoAnonymousAccess(t *testing.T) {
	sc := startSidecar(t, "--authentication", "cluster", "--index-prefix", ".e2e-authn-fail-closed-")
	eventually(t, 30*time.Second, "the start-up error about authentication", func() bool {
		return strings.Contains(sc.logs.String(), "the cluster has no security plugin")
	})
	status, v := mlCall(t, sc, "POST", "/_plugins/_ml/connectors/_create", docConnector)
	if status != 502 {
		t.Errorf("an ML call without authentication: %d %v, want 502", status, v)
	}
	if status, _, b := do(t, "GET", sc.url+"/_cluster/health", nil, nil); status != 200 {
		t.Errorf("health through the proxy: %d %s", status, b)
	}
	if got := rawIndexDocs(t, ".e2e-authn-fail-closed-connectors"); strings.Contains(got, "OpenAI") {
		t.Errorf("a connector was stored: %s", got)
	}
}
