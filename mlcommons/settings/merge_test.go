package settings

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/indexstore/storetest"
)

// jsonEqual compares two JSON texts as values.
func jsonEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got %s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want %s: %v", want, err)
	}
	if diff := cmp.Diff(w, g); diff != "" {
		t.Errorf("(-want +got):\n%s\ngot %s", diff, got)
	}
}

func TestChangesMerge(t *testing.T) {
	s := newTestService(t, ModeCluster, nil)
	sp, err := SplitBody([]byte(`{"persistent":{"plugins.ml_commons.only_run_on_ml_node":false,` +
		`"plugins.ml_commons.connector.private_ip_enabled":null,"cluster.max_shards_per_node":5},` +
		`"transient":{"plugins":{"ml_commons":{"remote_job":{"status_field":["a","b"]}}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	ch, err := s.Check(sp)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("nested", func(t *testing.T) {
		got, err := ch.Merge([]byte(`{"acknowledged":true,"persistent":{"cluster":{"max_shards_per_node":"5"},"plugins":{"security":{"x":"1"}}},"transient":{}}`), false)
		if err != nil {
			t.Fatal(err)
		}
		jsonEqual(t, got, `{"acknowledged":true,
			"persistent":{"cluster":{"max_shards_per_node":"5"},"plugins":{"security":{"x":"1"},"ml_commons":{"only_run_on_ml_node":"false"}}},
			"transient":{"plugins":{"ml_commons":{"remote_job":{"status_field":["a","b"]}}}}}`)
		if !strings.HasPrefix(string(got), `{"acknowledged":true,"persistent":`) {
			t.Errorf("the answer's field order changed: %s", got)
		}
	})
	t.Run("flat", func(t *testing.T) {
		got, err := ch.Merge([]byte(`{"acknowledged":true,"persistent":{"cluster.max_shards_per_node":"5"},"transient":{}}`), true)
		if err != nil {
			t.Fatal(err)
		}
		jsonEqual(t, got, `{"acknowledged":true,
			"persistent":{"cluster.max_shards_per_node":"5","plugins.ml_commons.only_run_on_ml_node":"false"},
			"transient":{"plugins.ml_commons.remote_job.status_field":["a","b"]}}`)
	})
}

func TestServiceMerge(t *testing.T) {
	repo := storetest.NewRepo[indexstore.MLSettings]()
	cluster := newTestService(t, ModeCluster, repo)
	update(t, cluster, `{"persistent":{"plugins.ml_commons.max_batch_inference_tasks":7},"transient":{"plugins.ml_commons.connector.private_ip_enabled":true}}`)
	locked := newTestService(t, ModeLocked, repo) // the same store
	answer := `{"persistent":{"a":{"b":"1"}},"transient":{},"defaults":{"x":"y"}}`
	answerFlat := `{"persistent":{"a.b":"1"},"transient":{},"defaults":{"x":"y"}}`

	t.Run("stored", func(t *testing.T) {
		got, err := cluster.Merge([]byte(answer), false, false)
		if err != nil {
			t.Fatal(err)
		}
		jsonEqual(t, got, `{"persistent":{"a":{"b":"1"},"plugins":{"ml_commons":{"max_batch_inference_tasks":"7"}}},
			"transient":{"plugins":{"ml_commons":{"connector":{"private_ip_enabled":"true"}}}},"defaults":{"x":"y"}}`)
	})
	t.Run("flat with defaults", func(t *testing.T) {
		got, err := cluster.Merge([]byte(answerFlat), true, true)
		if err != nil {
			t.Fatal(err)
		}
		var v struct{ Persistent, Transient, Defaults map[string]any }
		if err := json.Unmarshal(got, &v); err != nil {
			t.Fatal(err)
		}
		if v.Persistent["plugins.ml_commons.max_batch_inference_tasks"] != "7" || v.Transient["plugins.ml_commons.connector.private_ip_enabled"] != "true" {
			t.Errorf("stored settings missing: %s", got)
		}
		if _, ok := v.Defaults[keyBatchTasks]; ok {
			t.Errorf("a stored setting shows in defaults too: %s", got)
		}
		if _, ok := v.Defaults[keyPrivate]; ok {
			t.Errorf("a transient setting shows in defaults too: %s", got)
		}
		if n := len(v.Defaults); n != len(table)-2+1 {
			t.Errorf("%d defaults, want every other ML Commons setting and the cluster's x", n)
		}
		if got := v.Defaults[keyTrusted]; !cmp.Equal(got, []any{`^https://api\.openai\.com/.*$`}) {
			t.Errorf("trusted endpoints default %v, want the flag's", got)
		}
		if v.Defaults[Prefix+"local_model.enabled"] != "false" || v.Defaults[Prefix+"only_run_on_ml_node"] != "true" {
			t.Errorf("defaults: %s", got)
		}
	})
	t.Run("locked shows the flags", func(t *testing.T) {
		if err := locked.Refresh(t.Context()); err != nil {
			t.Fatal(err)
		}
		got, err := locked.Merge([]byte(answerFlat), true, true)
		if err != nil {
			t.Fatal(err)
		}
		var v struct{ Persistent, Defaults map[string]any }
		if err := json.Unmarshal(got, &v); err != nil {
			t.Fatal(err)
		}
		if len(v.Persistent) != 1 || v.Defaults[keyBatchTasks] != "100" {
			t.Errorf("locked: %s", got)
		}
	})
	t.Run("objects the answer leaves out stay out", func(t *testing.T) {
		got, err := cluster.Merge([]byte(`{"transient":{}}`), false, true)
		if err != nil {
			t.Fatal(err)
		}
		jsonEqual(t, got, `{"transient":{"plugins":{"ml_commons":{"connector":{"private_ip_enabled":"true"}}}}}`)
	})
	t.Run("not an answer", func(t *testing.T) {
		if _, err := cluster.Merge([]byte(`{"persistent":[]}`), false, false); err == nil {
			t.Error("no error")
		}
	})
}

// With nothing stored and no defaults asked for, the cluster's answer
// stays byte for byte.
func TestServiceMergeNothing(t *testing.T) {
	s := newTestService(t, ModeCluster, nil)
	answer := "{\n  \"persistent\" : { },\n  \"transient\" : { }\n}\n"
	got, err := s.Merge([]byte(answer), false, false)
	if err != nil || string(got) != answer {
		t.Errorf("got %q, %v, want the answer unchanged", got, err)
	}
}
