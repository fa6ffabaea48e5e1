package mlcommons

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mlsidecar/mlsidecar/indexstore"
)

// generic decodes JSON text into maps, slices and float64s.
func generic(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%v: %s", err, s)
	}
	return v
}

// normalize re-encodes v so values decoded with UseNumber compare with
// literals.
func normalize(t *testing.T, v any) any {
	t.Helper()
	return generic(t, toJSON(t, v))
}

func TestStripCredentials(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{
			name: "hits",
			in:   `{"hits":{"hits":[{"_id":"a","_source":{"name":"n","credential":{"k":"mlsc1:x"}}},{"_id":"b","_source":{"name":"m"}}]}}`,
			want: `{"hits":{"hits":[{"_id":"a","_source":{"name":"n"}},{"_id":"b","_source":{"name":"m"}}]}}`,
		},
		{
			name: "inline connector of a model",
			in:   `{"hits":{"hits":[{"_id":"a","_source":{"name":"n","connector":{"name":"c","credential":{"k":"v"}}}}]}}`,
			want: `{"hits":{"hits":[{"_id":"a","_source":{"name":"n","connector":{"name":"c"}}}]}}`,
		},
		{
			name: "inner hits",
			in: `{"hits":{"hits":[{"_id":"a","_source":{"name":"n"},"inner_hits":{"same_name":{"hits":{"hits":[
				{"_id":"b","_source":{"credential":{"k":"v"},"connector":{"credential":{"k":"v"}}}}]}}}}]}}`,
			want: `{"hits":{"hits":[{"_id":"a","_source":{"name":"n"},"inner_hits":{"same_name":{"hits":{"hits":[
				{"_id":"b","_source":{"connector":{}}}]}}}}]}}`,
		},
		{
			name: "top_hits aggregation",
			in: `{"hits":{"hits":[]},"aggregations":{"by_name":{"buckets":[{"key":"x","top":{"hits":{"hits":[
				{"_id":"a","_source":{"name":"x","credential":{"k":"v"}}}]}}}]}}}`,
			want: `{"hits":{"hits":[]},"aggregations":{"by_name":{"buckets":[{"key":"x","top":{"hits":{"hits":[
				{"_id":"a","_source":{"name":"x"}}]}}}]}}}`,
		},
		{
			name: "no _source",
			in:   `{"hits":{"hits":[{"_id":"a"}]}}`,
			want: `{"hits":{"hits":[{"_id":"a"}]}}`,
		},
		{
			name: "credential outside _source is not a stored credential",
			in:   `{"hits":{"hits":[{"_id":"a","_source":{"parameters":{"credential":"kept"}}}]}}`,
			want: `{"hits":{"hits":[{"_id":"a","_source":{"parameters":{"credential":"kept"}}}]}}`,
		},
		{
			name: "not an object",
			in:   `[1,"x",null]`,
			want: `[1,"x",null]`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := generic(t, tt.in)
			stripCredentials(got)
			if diff := cmp.Diff(generic(t, tt.want), got); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHasScript(t *testing.T) {
	tests := []struct {
		name string
		body string
		want bool
	}{
		{"empty", `{}`, false},
		{"match_all", `{"query":{"match_all":{}},"size":10}`, false},
		{"script as a value", `{"query":{"match":{"description":"script"}}}`, false},
		{"field names that contain script", `{"query":{"term":{"scripts":"x"}},"sort":[{"description_script":"asc"}]}`, false},
		{"runtime_mappings as a value", `{"query":{"term":{"name.keyword":"runtime_mappings"}}}`, false},
		{"dashboards model search", `{"query":{"bool":{"must":[{"terms":{"model_state":["DEPLOYED"]}},{"wildcard":{"name.keyword":"*a*"}}],
			"must_not":{"exists":{"field":"chunk_number"}}}},"aggs":{"connector_names":{"terms":{"field":"connector.name.keyword"}}},"from":0,"size":50}`, false},
		{"script_fields", `{"script_fields":{"c":{"script":{"source":"params._source.credential"}}}}`, true},
		{"runtime_mappings", `{"runtime_mappings":{"c":{"type":"keyword"}}}`, true},
		{"script query", `{"query":{"bool":{"filter":[{"script":{"script":"true"}}]}}}`, true},
		{"script in an array", `{"query":{"bool":{"should":[{"match_all":{}},{"script":{"script":{"source":"x"}}}]}}}`, true},
		{"script_score", `{"query":{"function_score":{"query":{"match_all":{}},"script_score":{"script":"1"}}}}`, true},
		{"script sort", `{"sort":[{"_script":{"type":"string","script":"doc['x']"}}]}`, true},
		{"scripted_metric", `{"aggs":{"a":{"scripted_metric":{"map_script":"x"}}}}`, true},
		{"terms aggregation script", `{"aggs":{"a":{"terms":{"script":{"source":"x"}}}}}`, true},
		{"deep", `{"a":[{"b":[[{"c":{"d":[{"script_fields":{}}]}}]]}]}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hasScript(generic(t, tt.body)); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSearchScriptsRefused(t *testing.T) {
	body := `{"query":{"match_all":{}},"script_fields":{"c":{"script":{"source":"params._source.credential"}}}}`
	for _, path := range []string{connectorsPath, modelsPath, tasksPath, groupsPath} {
		t.Run(path, func(t *testing.T) {
			a := newTestAPI(t)
			rec := a.do(t, http.MethodPost, path+"_search", body)
			wantError(t, rec, 400, "illegal_argument_exception", "scripts and runtime fields are not allowed in ML searches")
			for _, s := range a.store.searchCalls() {
				t.Errorf("refused search reached the store: %+v", s)
			}
		})
	}
}

// TestModelSearchExcludesHidden checks the query sent to the index: the
// caller's, and never a hidden model. Which documents match is
// OpenSearch's business; the answer is handed on as the index gave it.
func TestModelSearchExcludesHidden(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		wantQuery string
	}{
		{
			name:      "empty object",
			body:      `{}`,
			wantQuery: `{"bool":{"must":[{"match_all":{}}],"must_not":[{"term":{"is_hidden":true}}]}}`,
		},
		{
			name:      "JSON null",
			body:      `null`,
			wantQuery: `{"bool":{"must":[{"match_all":{}}],"must_not":[{"term":{"is_hidden":true}}]}}`,
		},
		{
			name:      "no query",
			body:      `{"size":5}`,
			wantQuery: `{"bool":{"must":[{"match_all":{}}],"must_not":[{"term":{"is_hidden":true}}]}}`,
		},
		{
			name:      "caller's query",
			body:      `{"query":{"term":{"name.keyword":"same"}}}`,
			wantQuery: `{"bool":{"must":[{"term":{"name.keyword":"same"}}],"must_not":[{"term":{"is_hidden":true}}]}}`,
		},
		{
			name:      "caller asks for hidden models",
			body:      `{"query":{"term":{"is_hidden":true}}}`,
			wantQuery: `{"bool":{"must":[{"term":{"is_hidden":true}}],"must_not":[{"term":{"is_hidden":true}}]}}`,
		},
		{
			name:      "caller's bool query is wrapped, not merged",
			body:      `{"query":{"bool":{"must_not":[{"term":{"model_state":"DEPLOYED"}}]}}}`,
			wantQuery: `{"bool":{"must":[{"bool":{"must_not":[{"term":{"model_state":"DEPLOYED"}}]}}],"must_not":[{"term":{"is_hidden":true}}]}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestAPI(t)
			a.store.models.Put("visible", &indexstore.Model{Name: "same", Algorithm: indexstore.AlgorithmRemote, ModelState: indexstore.ModelRegistered})
			a.store.models.Put("other", &indexstore.Model{Name: "other", Algorithm: indexstore.AlgorithmRemote, ModelState: indexstore.ModelRegistered})

			res := a.mustDo(t, http.MethodPost, modelsPath+"_search", tt.body)
			sent := a.store.lastSearch(t, indexstore.Models).Body
			if diff := cmp.Diff(generic(t, tt.wantQuery), normalize(t, sent["query"])); diff != "" {
				t.Errorf("query sent to the store mismatch (-want +got):\n%s", diff)
			}
			if strings.Contains(tt.body, "size") && sent["size"] == nil {
				t.Errorf("store got %v, want the caller's size kept", sent)
			}
			got := []string{}
			for _, h := range res["hits"].(map[string]any)["hits"].([]any) {
				got = append(got, h.(map[string]any)["_id"].(string))
			}
			if diff := cmp.Diff([]string{"visible", "other"}, got); diff != "" {
				t.Errorf("hits mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSearchHidesCredentials(t *testing.T) {
	a := newTestAPI(t)
	a.createConnector(t, openAIConnector())
	a.mustDo(t, http.MethodPost, registerPath, toJSON(t, map[string]any{"name": "inline", "function_name": "remote", "connector": openAIConnector()}))

	tests := []struct {
		name, method, path, body string
	}{
		{"connectors GET", http.MethodGet, connectorsPath + "_search", "{}"},
		{"connectors POST", http.MethodPost, connectorsPath + "_search", `{"query":{"match_all":{}}}`},
		{"connectors _source asks for credential", http.MethodPost, connectorsPath + "_search?_source_includes=credential", `{"_source":["credential","name"]}`},
		{"models", http.MethodPost, modelsPath + "_search", `{}`},
		{"models filter_path", http.MethodPost, modelsPath + "_search?filter_path=**.credential", `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := a.do(t, tt.method, tt.path, tt.body)
			if rec.Code != http.StatusOK {
				t.Fatalf("got status %d, want 200; body %s", rec.Code, rec.Body)
			}
			if strings.Contains(rec.Body.String(), `"credential"`) || strings.Contains(rec.Body.String(), "mlsc1:") {
				t.Errorf("search answered a credential: %s", rec.Body)
			}
			res := decodeAnswer(t, rec)
			if strings.Contains(tt.path, "filter_path") {
				// Nothing but the stripped credential was asked for.
				if len(res) != 0 {
					t.Errorf("got %v, want {}", res)
				}
				return
			}
			if n := len(res["hits"].(map[string]any)["hits"].([]any)); n != 1 {
				t.Errorf("got %d hits, want 1", n)
			}
		})
	}
}

// As ML Commons' contentOrSourceParamParser: no body and no source is a
// 400, before the parameters are looked at.
func TestSearchWithoutBody(t *testing.T) {
	a := newTestAPI(t)
	for _, p := range []string{connectorsPath + "_search", modelsPath + "_search?foo=bar", tasksPath + "_search"} {
		wantError(t, a.do(t, http.MethodGet, p, ""), 400, "parse_exception", "request body or source parameter is required")
	}
}

// Tasks are written without a refresh; a tasks search refreshes the index
// first, so it finds every task written before it (ML Commons refreshes on
// each task write instead). Other searches do not.
func TestTaskSearchRefreshesFirst(t *testing.T) {
	a := newTestAPI(t)
	a.mustDo(t, http.MethodPost, connectorsPath+"_search", `{}`)
	if n := a.store.taskRefreshes.Load(); n != 0 {
		t.Fatalf("connector search refreshed the tasks index %d times", n)
	}
	a.mustDo(t, http.MethodPost, tasksPath+"_search", `{}`)
	if n := a.store.taskRefreshes.Load(); n != 1 {
		t.Errorf("tasks search refreshed the tasks index %d times, want 1", n)
	}
}

func TestSearchParams(t *testing.T) {
	tests := []struct {
		name  string
		query string
		want  url.Values
	}{
		{"none", "", url.Values{}},
		{"kept", "size=3&from=1&_source_includes=name", url.Values{"size": {"3"}, "from": {"1"}, "_source_includes": {"name"}}},
		{"answer shapers dropped", "filter_path=hits.hits._source&pretty&human=true&error_trace=true&format=yaml&typed_keys=true&size=2",
			url.Values{"size": {"2"}}},
		// ML Commons' hits always carry _seq_no, _primary_term and _version.
		{"versions forced", "version=false&seq_no_primary_term=false", url.Values{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestAPI(t)
			a.mustDo(t, http.MethodPost, connectorsPath+"_search?"+tt.query, `{}`)
			tt.want.Set("seq_no_primary_term", "true")
			tt.want.Set("version", "true")
			if diff := cmp.Diff(tt.want, a.store.lastSearch(t, indexstore.Connectors).Params); diff != "" {
				t.Errorf("params sent to the store mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSearchBodyErrors(t *testing.T) {
	tests := []struct {
		name, body, reason string
	}{
		{"array", `[]`, "Failed to parse search request body: expected a JSON object, got a JSON array"},
		{"string", `"x"`, "Failed to parse search request body: expected a JSON object, got a JSON string"},
		{"truncated", `{"query":`, "Failed to parse search request body: unexpected EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestAPI(t)
			for _, path := range []string{connectorsPath, modelsPath, groupsPath, tasksPath} {
				wantError(t, a.do(t, http.MethodPost, path+"_search", tt.body), 400, "parse_exception", tt.reason)
			}
		})
	}
}

func TestTaskSearch(t *testing.T) {
	a := newTestAPI(t)
	a.store.tasks.Put("t1", &indexstore.Task{TaskType: "REGISTER_MODEL", State: indexstore.TaskCompleted})
	a.store.tasks.Put("t2", &indexstore.Task{TaskType: "DEPLOY_MODEL", State: indexstore.TaskRunning})
	body := `{"query":{"term":{"state":"RUNNING"}},"size":3}`
	res := a.mustDo(t, http.MethodPost, tasksPath+"_search", body)
	// The caller's body goes to the index as it is: tasks have no hidden
	// filter.
	if diff := cmp.Diff(generic(t, body), normalize(t, a.store.lastSearch(t, indexstore.Tasks).Body)); diff != "" {
		t.Errorf("body sent to the store mismatch (-want +got):\n%s", diff)
	}
	var got []string
	for _, h := range res["hits"].(map[string]any)["hits"].([]any) {
		got = append(got, h.(map[string]any)["_id"].(string))
	}
	if diff := cmp.Diff([]string{"t1", "t2"}, got); diff != "" {
		t.Errorf("hits mismatch (-want +got):\n%s", diff)
	}
}
