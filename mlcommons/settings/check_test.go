package settings

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

// checkBody splits and checks a body with a Service in mode.
func checkBody(t *testing.T, mode, body string) (*Changes, error) {
	t.Helper()
	sp, err := SplitBody([]byte(body))
	if err != nil {
		t.Fatalf("SplitBody(%s): %v", body, err)
	}
	return newTestService(t, mode, nil).Check(sp)
}

func TestCheckRefuses(t *testing.T) {
	tests := []struct {
		name, body, reason string
	}{
		{"unknown persistent", `{"persistent":{"plugins.ml_commons.foo":1}}`,
			"persistent setting [plugins.ml_commons.foo], not recognized"},
		{"unknown transient", `{"transient":{"plugins":{"ml_commons":{"foo":null}}}}`,
			"transient setting [plugins.ml_commons.foo], not recognized"},
		{"transient checked first", `{"persistent":{"plugins.ml_commons.a":1},"transient":{"plugins.ml_commons.b":1}}`,
			"transient setting [plugins.ml_commons.b], not recognized"},
		{"keys in order", `{"persistent":{"plugins.ml_commons.foo":1,"plugins.ml_commons.bar":2}}`,
			"persistent setting [plugins.ml_commons.bar], not recognized"},
		{"wildcard with a value", `{"persistent":{"plugins.ml_commons.*":1}}`,
			"persistent setting [plugins.ml_commons.*], not recognized"},
		{"bool", `{"persistent":{"plugins.ml_commons.connector.private_ip_enabled":"yes"}}`,
			"Failed to parse value [yes] as only [true] or [false] are allowed."},
		{"bool case", `{"persistent":{"plugins.ml_commons.connector.private_ip_enabled":"TRUE"}}`,
			"Failed to parse value [TRUE] as only [true] or [false] are allowed."},
		{"bool number", `{"persistent":{"plugins.ml_commons.model_access_control_enabled":1}}`,
			"Failed to parse value [1] as only [true] or [false] are allowed."},
		{"bool list", `{"persistent":{"plugins.ml_commons.model_access_control_enabled":[true]}}`,
			"Failed to parse value [[true]] as only [true] or [false] are allowed."},
		{"int text", `{"persistent":{"plugins.ml_commons.max_batch_inference_tasks":"x"}}`,
			"Failed to parse value [x] for setting [plugins.ml_commons.max_batch_inference_tasks]"},
		{"int fraction", `{"persistent":{"plugins.ml_commons.max_batch_inference_tasks":1.5}}`,
			"Failed to parse value [1.5] for setting [plugins.ml_commons.max_batch_inference_tasks]"},
		{"int overflow", `{"persistent":{"plugins.ml_commons.max_batch_inference_tasks":99999999999}}`,
			"Failed to parse value [99999999999] for setting [plugins.ml_commons.max_batch_inference_tasks]"},
		{"int over the range", `{"persistent":{"plugins.ml_commons.max_batch_inference_tasks":10001}}`,
			"Failed to parse value [10001] for setting [plugins.ml_commons.max_batch_inference_tasks] must be <= 10000"},
		{"int under the range", `{"persistent":{"plugins.ml_commons.jvm_heap_memory_threshold":-1}}`,
			"Failed to parse value [-1] for setting [plugins.ml_commons.jvm_heap_memory_threshold] must be >= 0"},
		{"float over the range", `{"persistent":{"plugins.ml_commons.model_auto_redeploy_success_ratio":"1.5"}}`,
			"Failed to parse value [1.5] for setting [plugins.ml_commons.model_auto_redeploy_success_ratio] must be <= 1.0"},
		{"bytes", `{"persistent":{"plugins.ml_commons.disk_free_space_threshold":"5"}}`,
			"failed to parse setting [plugins.ml_commons.disk_free_space_threshold] with value [5] as a size in bytes: unit is missing or unrecognized"},
		{"negative bytes", `{"persistent":{"plugins.ml_commons.disk_free_space_threshold":"-5gb"}}`,
			"failed to parse setting [plugins.ml_commons.disk_free_space_threshold] with value [-5gb] as a size in bytes"},
		{"list of lists", `{"persistent":{"plugins.ml_commons.trusted_connector_endpoints_regex":[["a"]]}}`,
			"Failed to parse value [[[a]]] for setting [plugins.ml_commons.trusted_connector_endpoints_regex]"},
		{"list with null", `{"persistent":{"plugins.ml_commons.remote_job.status_field":["a",null]}}`,
			"Failed to parse value [[a, null]] for setting [plugins.ml_commons.remote_job.status_field]"},
		{"text setting given a list", `{"persistent":{"plugins.ml_commons.task_dispatch_policy":["a","b"]}}`,
			"Failed to parse value [[a, b]] for setting [plugins.ml_commons.task_dispatch_policy]"},
		{"trusted regex", `{"persistent":{"plugins.ml_commons.trusted_connector_endpoints_regex":["^https://(?=x)"]}}`,
			"Failed to parse value [^https://(?=x)] for setting [plugins.ml_commons.trusted_connector_endpoints_regex]: " +
				"not a regular expression mlsidecar can run (RE2 syntax): invalid or unsupported Perl syntax: `(?=`"},
		{"status regex", `{"persistent":{"plugins.ml_commons.remote_job.status_regex.completed":"(done"}}`,
			"Failed to parse value [(done] for setting [plugins.ml_commons.remote_job.status_regex.completed]: " +
				"not a regular expression mlsidecar can run (RE2 syntax): missing closing ): `(?i)(done`"},
		{"local models", `{"persistent":{"plugins.ml_commons.allow_registering_model_via_url":"true"}}`,
			"mlsidecar serves remote models only: [plugins.ml_commons.allow_registering_model_via_url] cannot be set to [true]"},
		{"local model switch", `{"transient":{"plugins.ml_commons.local_model.enabled":true}}`,
			"mlsidecar serves remote models only: [plugins.ml_commons.local_model.enabled] cannot be set to [true]"},
		{"static", `{"persistent":{"plugins.ml_commons.multi_tenancy_enabled":true}}`,
			"persistent setting [plugins.ml_commons.multi_tenancy_enabled], not dynamically updateable"},
		{"static reset", `{"persistent":{"plugins.ml_commons.multi_tenancy_enabled":null}}`,
			"persistent setting [plugins.ml_commons.multi_tenancy_enabled], not dynamically updateable"},
		{"final", `{"transient":{"plugins.ml_commons.remote_metadata_type":"x"}}`,
			"final transient setting [plugins.ml_commons.remote_metadata_type], not updateable"},
		{"the last value counts", `{"persistent":{"plugins.ml_commons.only_run_on_ml_node":true,"plugins":{"ml_commons":{"only_run_on_ml_node":"no"}}}}`,
			"Failed to parse value [no] as only [true] or [false] are allowed."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := checkBody(t, ModeCluster, tt.body)
			e, ok := mlerr.From(err)
			if !ok {
				t.Fatalf("got %v, want a 400", err)
			}
			if e.Status != 400 || e.Type != "illegal_argument_exception" || e.Reason != tt.reason {
				t.Errorf("got %d %s %q\nwant 400 illegal_argument_exception %q", e.Status, e.Type, e.Reason, tt.reason)
			}
		})
	}
}

func TestCheckNormalizes(t *testing.T) {
	tests := []struct {
		name, body string
		want       map[string]map[string]string // scope → key → stored JSON
		resets     map[string][]string
	}{
		{"texts as OpenSearch keeps them",
			`{"persistent":{"plugins.ml_commons":{"only_run_on_ml_node":false,"max_batch_inference_tasks":50,` +
				`"model_auto_redeploy_success_ratio":0.5,"disk_free_space_threshold":"10GB","task_dispatch_policy":"least_load"}}}`,
			map[string]map[string]string{Persistent: {
				"plugins.ml_commons.only_run_on_ml_node":               `"false"`,
				"plugins.ml_commons.max_batch_inference_tasks":         `"50"`,
				"plugins.ml_commons.model_auto_redeploy_success_ratio": `"0.5"`,
				"plugins.ml_commons.disk_free_space_threshold":         `"10GB"`,
				"plugins.ml_commons.task_dispatch_policy":              `"least_load"`,
			}}, nil},
		{"lists",
			`{"transient":{"plugins.ml_commons.trusted_connector_endpoints_regex":["^https://a\\.example/.*$",1],` +
				`"plugins.ml_commons.remote_job.status_field":"a, b"}}`,
			map[string]map[string]string{Transient: {
				"plugins.ml_commons.trusted_connector_endpoints_regex": `["^https://a\\.example/.*$","1"]`,
				"plugins.ml_commons.remote_job.status_field":           `"a, b"`,
			}}, nil},
		{"local-model switches may be off",
			`{"persistent":{"plugins.ml_commons.allow_registering_model_via_url":false,"plugins.ml_commons.local_model.enabled":null}}`,
			map[string]map[string]string{Persistent: {"plugins.ml_commons.allow_registering_model_via_url": `"false"`}},
			map[string][]string{Persistent: {"plugins.ml_commons.local_model.enabled"}}},
		{"resets and wildcards",
			`{"persistent":{"plugins.ml_commons.*":null,"plugins.ml_commons.connector.private_ip_enabled":true,"*":null}}`,
			map[string]map[string]string{Persistent: {"plugins.ml_commons.connector.private_ip_enabled": `"true"`}},
			map[string][]string{Persistent: {"plugins.ml_commons.*", "*"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch, err := checkBody(t, ModeCluster, tt.body)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]map[string]string{}
			resets := map[string][]string{}
			for scope, sc := range ch.scopes {
				for k, v := range sc.set {
					if got[scope] == nil {
						got[scope] = map[string]string{}
					}
					got[scope][k] = string(v)
				}
				if len(sc.resets) > 0 {
					resets[scope] = sc.resets
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("values (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.resets, resets, cmpEmpty); diff != "" {
				t.Errorf("resets (-want +got):\n%s", diff)
			}
		})
	}
}

var cmpEmpty = cmp.Transformer("empty", func(m map[string][]string) map[string][]string {
	if len(m) == 0 {
		return nil
	}
	return m
})

func TestCheckLocked(t *testing.T) {
	_, err := checkBody(t, ModeLocked, `{"persistent":{"plugins.ml_commons.connector.private_ip_enabled":true}}`)
	e, ok := mlerr.From(err)
	if !ok || e.Status != 400 || !strings.Contains(e.Reason, "--ml-settings=locked") ||
		!strings.Contains(e.Reason, "[plugins.ml_commons.connector.private_ip_enabled]") {
		t.Errorf("got %v, want a 400 naming the lock and the setting", err)
	}
	// A wildcard reset of other settings goes to the cluster and changes
	// nothing here.
	ch, err := checkBody(t, ModeLocked, `{"persistent":{"*":null}}`)
	if err != nil {
		t.Fatal(err)
	}
	if got := ch.scopes[Persistent].resets; len(got) != 0 {
		t.Errorf("locked mode keeps resets %v, want none", got)
	}
}

// Every table default is a value its own check accepts, keys are unique,
// and every setting Effective reads is in the table.
func TestTable(t *testing.T) {
	seen := map[string]bool{}
	for _, st := range table {
		if seen[st.key] {
			t.Errorf("%s twice", st.key)
		}
		seen[st.key] = true
		if st.use == applied && st.flag == "" && st.def == nil || st.use != applied && st.def == nil {
			t.Errorf("%s has no default", st.key)
		}
		if st.def == nil || st.use == static || st.use == final {
			continue
		}
		b, _ := json.Marshal(st.def)
		if _, err := st.normalize(b); err != nil {
			t.Errorf("%s: default %s: %v", st.key, b, err)
		}
	}
	keys := []string{keyTrusted, keyPrivate, keyModelACL, keyConnectorACL, keyRemote, keyBatch, keyBatchTasks,
		keyStatusField, keyIngestion, keyIngestionTasks, keyBulkSize, keyController}
	for _, st := range statusStates {
		keys = append(keys, keyStatusRegex+st.name)
	}
	for _, k := range keys {
		if st, ok := byKey[k]; !ok || st.use != applied {
			t.Errorf("%s: not an applied setting of the table", k)
		}
	}
	if n := len(table); n != 51 {
		t.Errorf("%d settings, want ML Commons 2.19's 51 (update this when the table changes)", n)
	}
}

// docs/settings.md has a row for every setting of the table.
func TestDocsListEverySetting(t *testing.T) {
	b, err := os.ReadFile("../../docs/settings.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range table {
		if !strings.Contains(string(b), "`"+st.key+"`") {
			t.Errorf("docs/settings.md does not list %s", st.key)
		}
	}
}
