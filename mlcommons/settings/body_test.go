package settings

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSplitBody(t *testing.T) {
	tests := []struct {
		name        string
		body        string
		wantForward string // "" means the body itself
		wantML      []Entry
		wantWild    []Entry
	}{
		{
			name: "no ML settings: the body as it is",
			body: `{"persistent":{"cluster.routing.allocation.enable":"all"}, "transient" : {}}`,
		},
		{
			name:        "flat",
			body:        `{"persistent":{"plugins.ml_commons.only_run_on_ml_node":false,"cluster.max_shards_per_node":5}}`,
			wantForward: `{"persistent":{"cluster.max_shards_per_node":5}}`,
			wantML:      []Entry{{Persistent, "plugins.ml_commons.only_run_on_ml_node", raw(`false`)}},
		},
		{
			name:        "nested",
			body:        `{"persistent":{"plugins":{"ml_commons":{"connector":{"private_ip_enabled":true}}},"cluster":{"max_shards_per_node":5}}}`,
			wantForward: `{"persistent":{"cluster":{"max_shards_per_node":5}}}`,
			wantML:      []Entry{{Persistent, "plugins.ml_commons.connector.private_ip_enabled", raw(`true`)}},
		},
		{
			name: "mixed forms, other plugins kept",
			body: `{"persistent":{"plugins.ml_commons":{"remote_job.status_field":["a"]},` +
				`"plugins":{"ml_commons.max_batch_inference_tasks":"7","index_state_management":{"enabled":true}}}}`,
			wantForward: `{"persistent":{"plugins":{"index_state_management":{"enabled":true}}}}`,
			wantML: []Entry{
				{Persistent, "plugins.ml_commons.remote_job.status_field", raw(`["a"]`)},
				{Persistent, "plugins.ml_commons.max_batch_inference_tasks", raw(`"7"`)},
			},
		},
		{
			name:        "nothing else: the no-op",
			body:        `{"persistent":{"plugins.ml_commons.trusted_connector_endpoints_regex":["^https://x/.*$"]},"transient":{}}`,
			wantForward: string(NoOp),
			wantML:      []Entry{{Persistent, "plugins.ml_commons.trusted_connector_endpoints_regex", raw(`["^https://x/.*$"]`)}},
		},
		{
			name:        "nothing else but empty objects: the no-op",
			body:        `{"persistent":{"plugins":{"ml_commons":{"x":1},"other":{}}}}`,
			wantForward: string(NoOp),
			wantML:      []Entry{{Persistent, "plugins.ml_commons.x", raw(`1`)}},
		},
		{
			name:        "transient and null",
			body:        `{"transient":{"plugins.ml_commons.connector.private_ip_enabled":null,"a.b":"c"}}`,
			wantForward: `{"transient":{"a.b":"c"}}`,
			wantML:      []Entry{{Transient, "plugins.ml_commons.connector.private_ip_enabled", raw(`null`)}},
		},
		{
			name:        "other top-level fields go on",
			body:        `{"x":1,"persistent":{"plugins.ml_commons.a":"1","b":2}}`,
			wantForward: `{"x":1,"persistent":{"b":2}}`,
			wantML:      []Entry{{Persistent, "plugins.ml_commons.a", raw(`"1"`)}},
		},
		{
			name:     "a wildcard reset that reaches ML settings goes to both",
			body:     `{"persistent":{"plugins.*":null}}`,
			wantWild: []Entry{{Persistent, "plugins.*", raw(`null`)}},
		},
		{
			name: "a wildcard reset of other settings is the cluster's",
			body: `{"persistent":{"cluster.*":null}}`,
		},
		{
			name:        "ML wildcard reset is kept",
			body:        `{"persistent":{"plugins.ml_commons.*":null,"a":1}}`,
			wantForward: `{"persistent":{"a":1}}`,
			wantML:      []Entry{{Persistent, "plugins.ml_commons.*", raw(`null`)}},
		},
		{
			name: "a null scope",
			body: `{"persistent":null,"transient":{"plugins.ml_commons.a":true}}`, wantForward: string(NoOp),
			wantML: []Entry{{Transient, "plugins.ml_commons.a", raw(`true`)}},
		},
		{
			name: "plugins.ml_commons itself is no ML setting",
			body: `{"persistent":{"plugins.ml_commons":1}}`,
		},
		{
			name: "a look-alike name is no ML setting",
			body: `{"persistent":{"plugins":{"ml_commons_x":1},"plugins.ml":{"_commons.y":1}}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sp, err := SplitBody([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			want := tt.wantForward
			if want == "" {
				want = tt.body
			}
			if string(sp.Forward) != want {
				t.Errorf("forward:\n got %s\nwant %s", sp.Forward, want)
			}
			if diff := cmp.Diff(tt.wantML, sp.ML); diff != "" {
				t.Errorf("ML settings (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantWild, sp.Wildcards); diff != "" {
				t.Errorf("wildcards (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSplitBodyNotSettings(t *testing.T) {
	for _, body := range []string{``, `not json`, `[]`, `{"persistent":"x"}`, `{"persistent":[]}`, `{"a":1}{}`, `{"persistent":{"a":}}`} {
		if _, err := SplitBody([]byte(body)); !errors.Is(err, ErrNotSettings) && err == nil {
			t.Errorf("SplitBody(%q): no error, want one", body)
		}
	}
}

func TestSimpleMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"plugins.*", "plugins.ml_commons.x", true},
		{"*", "", true},
		{"*", "a", true},
		{"a*c", "abc", true},
		{"a*c", "abd", false},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "aXcYb", false},
		{"*.ml_commons.*", "plugins.ml_commons.x", true},
		{"plugins.ml_commons.*", "plugins.ml_commons", false},
		{"abc", "abc", true},
		{"abc", "abcd", false},
	}
	for _, tt := range tests {
		if got := simpleMatch(tt.pattern, tt.s); got != tt.want {
			t.Errorf("simpleMatch(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}

func raw(s string) json.RawMessage { return json.RawMessage(s) }

// A body nested deeper than any settings body goes to the cluster as it is.
func TestSplitBodyTooDeep(t *testing.T) {
	body := `{"persistent":` + strings.Repeat(`{"a":`, maxDepth) + `{"plugins.ml_commons.x":1}` + strings.Repeat(`}`, maxDepth+1)
	if _, err := SplitBody([]byte(body)); !errors.Is(err, ErrNotSettings) {
		t.Errorf("got %v, want ErrNotSettings", err)
	}
}
