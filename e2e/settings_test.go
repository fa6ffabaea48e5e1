package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mlsidecar/mlsidecar/e2e/providers/openai"
)

// inertSetting is a cluster setting the tests may change on the shared
// node: it only paces the cluster info refresh (default 30s).
const inertSetting = "cluster.info.update.interval"

// putSettings sends PUT _cluster/settings to base (a sidecar or the node)
// and decodes the answer.
func putSettings(t *testing.T, base, query, body string, header map[string]string) (int, map[string]any, string) {
	t.Helper()
	if header == nil {
		header = map[string]string{"Content-Type": "application/json"}
	}
	status, _, b := do(t, "PUT", base+"/_cluster/settings"+query, strings.NewReader(body), header)
	var v map[string]any
	_ = json.Unmarshal(b, &v)
	return status, v, string(b)
}

// getSettings is GET _cluster/settings with query on base.
func getSettings(t *testing.T, base, query string, header map[string]string) map[string]any {
	t.Helper()
	status, _, b := do(t, "GET", base+"/_cluster/settings"+query, nil, header)
	if status != 200 {
		t.Fatalf("GET %s/_cluster/settings%s: %d %s", base, query, status, b)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("GET _cluster/settings: %v: %s", err, b)
	}
	return v
}

// at walks nested JSON objects by keys.
func at(v any, keys ...string) any {
	for _, k := range keys {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	return v
}

// Given two sidecar replicas in front of one cluster without ML Commons,
// when a client sets ML Commons settings as opensearch-py-ml's
// set_trusted_endpoint and the tutorials do, through replica A, then
// replica B applies them within seconds (a connector to a local double is
// created and predicts through B), the other setting of the same request is
// on the cluster, GET shows them as the cluster would, and a reset through
// B applies on A.
func TestSettingsAppliedOnEveryReplica(t *testing.T) {
	double := openai.New(openai.Options{APIKey: openAIKey, Dim: 8})
	double.Start()
	t.Cleanup(double.Close)
	args := []string{"--index-prefix", ".e2e-settings-", "--ml-settings-refresh", "200ms"}
	a := startSidecar(t, args...)
	b := startSidecar(t, args...)
	t.Cleanup(func() { putSettings(t, node.url(), "", `{"persistent":{"`+inertSetting+`":null}}`, nil) })
	connector := openAIConnector(double.URL(), "file-unused", `{"max_retry_times": 0}`)

	// The shipped list does not trust the double.
	status, v := mlCall(t, b, "POST", "/_plugins/_ml/connectors/_create", connector)
	if status != 400 {
		t.Fatalf("connector to 127.0.0.1 before the update: %d %v, want 400", status, v)
	}

	status, v, raw := putSettings(t, a.url, "", `{"persistent":{
		"plugins.ml_commons.trusted_connector_endpoints_regex":["^http://127\\.0\\.0\\.1:[0-9]+/.*$"],
		"plugins":{"ml_commons":{"connector.private_ip_enabled":true,"only_run_on_ml_node":"false"}},
		"`+inertSetting+`":"29s"}}`, nil)
	if status != 200 || v["acknowledged"] != true {
		t.Fatalf("PUT through A: %d %s", status, raw)
	}
	if got := at(v, "persistent", "plugins", "ml_commons", "connector", "private_ip_enabled"); got != "true" {
		t.Errorf("the answer does not show the ML Commons settings: %s", raw)
	}
	if got := at(v, "persistent", "cluster", "info", "update", "interval"); got != "29s" {
		t.Errorf("the answer does not show the cluster's setting: %s", raw)
	}
	onNode := getSettings(t, node.url(), "?flat_settings=true", nil)
	if got := at(onNode, "persistent", inertSetting); got != "29s" {
		t.Errorf("the cluster's own setting is not on the node: %v", onNode)
	}
	if strings.Contains(toJSON(onNode), "ml_commons") {
		t.Errorf("ML Commons settings reached the node: %v", onNode)
	}

	var cid string
	eventually(t, 20*time.Second, "replica B to trust the double", func() bool {
		status, v := mlCall(t, b, "POST", "/_plugins/_ml/connectors/_create", connector)
		cid, _ = v["connector_id"].(string)
		return status == 200
	})
	model := mustML(t, b, 200, "POST", "/_plugins/_ml/models/_register?deploy=true",
		`{"name":"settings-model","function_name":"remote","connector_id":"`+cid+`"}`)["model_id"].(string)
	predict := "/_plugins/_ml/models/" + model + "/_predict"
	mustML(t, b, 200, "POST", predict, `{"parameters":{"input":["hello"]}}`)

	t.Run("GET merges", func(t *testing.T) {
		nested := getSettings(t, b.url, "", nil)
		if got := at(nested, "persistent", "plugins", "ml_commons", "trusted_connector_endpoints_regex"); toJSON(got) != `["^http://127\\.0\\.0\\.1:[0-9]+/.*$"]` {
			t.Errorf("nested: %v", nested)
		}
		if got := at(nested, "persistent", "cluster", "info", "update", "interval"); got != "29s" {
			t.Errorf("nested, the cluster's setting: %v", nested)
		}
		flat := getSettings(t, b.url, "?flat_settings=true&include_defaults=true", nil)
		if at(flat, "persistent", "plugins.ml_commons.only_run_on_ml_node") != "false" || at(flat, "persistent", inertSetting) != "29s" {
			t.Errorf("flat: %v", flat["persistent"])
		}
		if at(flat, "defaults", "plugins.ml_commons.max_batch_inference_tasks") != "100" ||
			at(flat, "defaults", "plugins.ml_commons.only_run_on_ml_node") != nil || at(flat, "defaults", "action.auto_create_index") != "true" {
			t.Errorf("defaults: the flag's value, not the stored ones, and the cluster's own expected")
		}
	})

	t.Run("refusals are OpenSearch's", func(t *testing.T) {
		unknown := `{"persistent":{"plugins.ml_commons.no_such_setting":1}}`
		_, _, want := putSettings(t, node.url(), "", unknown, nil)
		if status, _, got := putSettings(t, b.url, "", unknown, nil); status != 400 || got != strings.TrimSpace(want) {
			t.Errorf("unknown setting: %d %s\nthe node says %s", status, got, want)
		}
		status, v, raw := putSettings(t, b.url, "", `{"persistent":{"plugins.ml_commons.max_batch_inference_tasks":"lots"}}`, nil)
		if status != 400 || !strings.Contains(raw, "Failed to parse value [lots] for setting [plugins.ml_commons.max_batch_inference_tasks]") {
			t.Errorf("bad value: %d %v", status, v)
		}
		status, _, raw = putSettings(t, b.url, "", `{"persistent":{"plugins.ml_commons.allow_registering_model_via_url":true}}`, nil)
		if status != 400 || !strings.Contains(raw, "mlsidecar serves remote models only") {
			t.Errorf("local models: %d %s", status, raw)
		}
	})

	t.Run("batch inference off and on", func(t *testing.T) {
		if status, _, raw := putSettings(t, b.url, "", `{"transient":{"plugins.ml_commons.offline_batch_inference_enabled":false}}`, nil); status != 200 {
			t.Fatalf("%d %s", status, raw)
		}
		status, v := mlCall(t, b, "POST", "/_plugins/_ml/models/"+model+"/_batch_predict", `{"parameters":{"input_file_id":"file-x"}}`)
		wantError(t, v, 500, "illegal_state_exception", "Offline Batch Inference is currently disabled.")
		if status != 500 {
			t.Errorf("batch predict while disabled: %d", status)
		}
		if status, _, raw := putSettings(t, b.url, "", `{"transient":{"plugins.ml_commons.offline_batch_inference_enabled":null}}`, nil); status != 200 {
			t.Fatalf("%d %s", status, raw)
		}
	})

	// A reset through B: A stops reaching private addresses.
	if status, _, raw := putSettings(t, b.url, "", `{"persistent":{"plugins.ml_commons.connector.private_ip_enabled":null}}`, nil); status != 200 {
		t.Fatalf("reset through B: %d %s", status, raw)
	}
	eventually(t, 20*time.Second, "replica A to refuse private addresses again", func() bool {
		status, v := mlCall(t, a, "POST", predict, `{"parameters":{"input":["hello"]}}`)
		_, reason := errorOf(v)
		return status == 400 && strings.Contains(reason, "private ip address")
	})
	if got := at(getSettings(t, a.url, "", nil), "persistent", "plugins", "ml_commons", "connector"); got != nil {
		t.Errorf("the reset setting still shows: %v", got)
	}
}

// Given a sidecar whose operator locked the ML Commons settings to its
// flags, when a client updates one, then the update is refused and nothing
// reaches the cluster, while other settings still go through and GET shows
// the flags as defaults.
func TestSettingsLocked(t *testing.T) {
	sc := startSidecar(t, "--index-prefix", ".e2e-settings-locked-", "--ml-settings", "locked", "--max-batch-inference-tasks", "7")
	t.Cleanup(func() { putSettings(t, node.url(), "", `{"persistent":{"`+inertSetting+`":null}}`, nil) })
	status, v, raw := putSettings(t, sc.url, "", `{"persistent":{"plugins.ml_commons.max_batch_inference_tasks":8,"`+inertSetting+`":"28s"}}`, nil)
	wantError(t, v, 400, "illegal_argument_exception", "--ml-settings=locked")
	if status != 400 || !strings.Contains(raw, "[plugins.ml_commons.max_batch_inference_tasks]") {
		t.Errorf("locked: %d %s", status, raw)
	}
	if got := at(getSettings(t, node.url(), "?flat_settings=true", nil), "persistent", inertSetting); got != nil {
		t.Errorf("a refused update reached the cluster: %v", got)
	}
	if status, _, raw := putSettings(t, sc.url, "?flat_settings=true", `{"persistent":{"`+inertSetting+`":"28s"}}`, nil); status != 200 ||
		!strings.Contains(raw, `"`+inertSetting+`":"28s"`) {
		t.Errorf("other settings: %d %s", status, raw)
	}
	got := getSettings(t, sc.url, "?include_defaults=true&flat_settings=true", nil)
	if at(got, "defaults", "plugins.ml_commons.max_batch_inference_tasks") != "7" || at(got, "persistent", inertSetting) != "28s" {
		t.Errorf("GET with defaults: persistent %v, ML default %v", got["persistent"], at(got, "defaults", "plugins.ml_commons.max_batch_inference_tasks"))
	}
}

// Given a cluster with the security plugin, when a user who may not update
// cluster settings sets an ML Commons one through the sidecar, then the
// answer is the cluster's own 403 and nothing is stored; the admin may.
func TestSettingsNeedTheClustersPermission(t *testing.T) {
	sec := startSecurityNode(t)
	sc := startSidecar(t, "--upstream", sec.url(), "--authentication", "cluster", "--master-key-file", writeKeys(t, newKey(t, "k1")),
		"--upstream-username", "mlsidecar", "--upstream-password-file", passwordFile(t, "svc-E2e-pass1"),
		"--index-prefix", ".e2e-settings-sec-", "--ml-settings-refresh", "200ms")
	update := `{"persistent":{"plugins.ml_commons.model_access_control_enabled":true}}`

	_, _, want := putSettings(t, sec.url(), "", `{"persistent":{"`+inertSetting+`":"27s"}}`, asUser(t, "alice"))
	status, _, got := putSettings(t, sc.url, "", update, asUser(t, "alice"))
	if status != 403 || got != strings.TrimSpace(want) {
		t.Errorf("alice: %d %s\nthe cluster says %s", status, got, want)
	}
	if strings.Contains(toJSON(getSettings(t, sc.url, "", asUser(t, "admin"))), "ml_commons") {
		t.Error("alice's refused update was stored")
	}

	if status, _, raw := putSettings(t, sc.url, "", update, asUser(t, "admin")); status != 200 {
		t.Fatalf("admin: %d %s", status, raw)
	}
	if got := at(getSettings(t, sc.url, "", asUser(t, "admin")), "persistent", "plugins", "ml_commons", "model_access_control_enabled"); got != "true" {
		t.Errorf("admin's update does not show: %v", got)
	}
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
