package mlcommons

import (
	"net/http"
	"strings"
	"testing"
)

// OpenSearch routes /x/ as /x: opensearch-py-ml calls
// POST /models/<id>/_predict/ and GET /profile/models/.
func TestTrailingSlash(t *testing.T) {
	a := newTestAPI(t)
	for _, tt := range []struct {
		method, path string
		status       int
	}{
		{http.MethodPost, "/_plugins/_ml/models/nope/_predict/", 404},
		{http.MethodPost, "/_plugins/_ml/models/nope/_predict//", 404},
		{http.MethodGet, "/_plugins/_ml/profile/models/", 200},
		{http.MethodGet, "/_plugins/_ml/stats/", 200},
		{http.MethodGet, "/_plugins/_ml/connectors/nope/", 404},
		{http.MethodGet, "/_plugins/_ml/connectors/_search/", 200},
	} {
		body := `{"parameters":{}}`
		if tt.method == http.MethodGet {
			body = `{}`
		}
		rec := a.do(t, tt.method, tt.path, body)
		if rec.Code != tt.status {
			t.Errorf("%s %s: got %d %s, want %d", tt.method, tt.path, rec.Code, rec.Body, tt.status)
		}
	}
}

// A literal segment wins over its {id} sibling for every method, as in
// OpenSearch's path trie: the wrong method is a 405 naming the literal
// path's methods, not "Failed to find model _register".
func TestWrongMethodOnALiteralPath(t *testing.T) {
	a := newTestAPI(t)
	for _, tt := range []struct {
		method, path, allowed string
	}{
		{http.MethodPut, "/_plugins/_ml/models/_register", "POST"},
		{http.MethodGet, "/_plugins/_ml/connectors/_create", "POST"},
		{http.MethodDelete, "/_plugins/_ml/models/_search", "GET, POST"},
		{http.MethodGet, "/_plugins/_ml/models/_undeploy/", "POST"},
		{http.MethodPost, "/_plugins/_ml/models/abc", "DELETE, GET, PUT"},
	} {
		rec := a.do(t, tt.method, tt.path, `{}`)
		want := `{"error":"Incorrect HTTP method for uri [` + tt.path + `] and method [` + tt.method + `], allowed: [` + tt.allowed + `]","status":405}`
		if rec.Code != http.StatusMethodNotAllowed || rec.Body.String() != want {
			t.Errorf("%s %s: got %d %s, want 405 %s", tt.method, tt.path, rec.Code, rec.Body, want)
		}
		if got, want := rec.Header().Get("Allow"), strings.ReplaceAll(tt.allowed, ", ", ","); got != want {
			t.Errorf("%s %s: Allow %q, want %q", tt.method, tt.path, got, want)
		}
	}
}

func TestUnsupportedAPIs(t *testing.T) {
	a := newTestAPI(t)
	for _, tt := range []struct{ method, path, api string }{
		{http.MethodPost, "/_plugins/_ml/agents/_register", "agents"},
		{http.MethodGet, "/_plugins/_ml/agents/a1", "agents"},
		{http.MethodPost, "/_plugins/_ml/agents/a1/_execute", "agents"},
		{http.MethodPost, "/_plugins/_ml/memory", "memory"},
		{http.MethodGet, "/_plugins/_ml/memory/c1/messages", "memory"},
		{http.MethodPost, "/_plugins/_ml/memory_containers/_create", "memory containers"},
		{http.MethodGet, "/_plugins/_ml/tools", "tools"},
		{http.MethodGet, "/_plugins/_ml/tools/VectorDBTool", "tools"},
		{http.MethodPost, "/_plugins/_ml/_train/kmeans", "_train"},
		{http.MethodPost, "/_plugins/_ml/_train_predict/kmeans", "_train_predict"},
		{http.MethodPost, "/_plugins/_ml/_execute/anomaly_localization", "_execute"},
		{http.MethodPost, "/_plugins/_ml/models/m1/_predict/stream", "_predict/stream"},
		{http.MethodPost, "/_plugins/_ml/models/meta", "models/meta"},
		{http.MethodPost, "/_plugins/_ml/models/_register_meta", "models/meta"},
		{http.MethodPost, "/_plugins/_ml/models/m1/upload_chunk/0", "upload_chunk"},
		{http.MethodPost, "/_plugins/_ml/models/m1/chunk/3", "chunk"},
		{http.MethodPost, "/_plugins/_ml/models/m1/1/_register", "local and pretrained models"},
		{http.MethodGet, "/_plugins/_ml/config/c1", "config"},
	} {
		wantError(t, a.do(t, tt.method, tt.path, `{}`), 400, "unsupported_operation_exception",
			"mlsidecar serves remote models only: "+tt.api+" is not supported")
	}
}

func TestUnrecognizedParameters(t *testing.T) {
	a := newTestAPI(t)
	for _, tt := range []struct {
		method, path, body, reason string
	}{
		{http.MethodGet, "/_plugins/_ml/connectors/c1?foo=1", ``,
			"request [/_plugins/_ml/connectors/c1] contains unrecognized parameter: [foo]"},
		{http.MethodGet, "/_plugins/_ml/connectors/c1?connector=1", ``,
			"request [/_plugins/_ml/connectors/c1] contains unrecognized parameter: [connector] -> did you mean [connector_id]?"},
		{http.MethodGet, "/_plugins/_ml/models/m1?zz=1&prety=true", ``,
			"request [/_plugins/_ml/models/m1] contains unrecognized parameters: [prety] -> did you mean [pretty]?, [zz]"},
		{http.MethodPost, "/_plugins/_ml/connectors/_create?deploy=true", `{}`,
			"request [/_plugins/_ml/connectors/_create] contains unrecognized parameter: [deploy]"},
		{http.MethodPost, "/_plugins/_ml/models/m1/_predict?model=x", `{}`,
			"request [/_plugins/_ml/models/m1/_predict] contains unrecognized parameter: [model] -> did you mean [model_id]?"},
	} {
		wantError(t, a.do(t, tt.method, tt.path, tt.body), 400, "illegal_argument_exception", tt.reason)
	}
	// What ML Commons and OpenSearch read is accepted.
	for _, tt := range []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/_plugins/_ml/connectors/c1?return_content=true&pretty&human=true&error_trace=false&filter_path=name&format=json", 404},
		{http.MethodGet, "/_plugins/_ml/models/m1?return_content=false", 404},
		{http.MethodGet, "/_plugins/_ml/profile/models?view=model", 200},
		{http.MethodGet, "/_plugins/_ml/stats?pretty", 200},
	} {
		if rec := a.do(t, tt.method, tt.path, ``); rec.Code != tt.status {
			t.Errorf("%s %s: got %d %s, want %d", tt.method, tt.path, rec.Code, rec.Body, tt.status)
		}
	}
}

// A body that is JSON but not an object: ensureExpectedToken, with
// OpenSearch's XContentParser.Token names.
func TestBodyNotAnObject(t *testing.T) {
	a := newTestAPI(t)
	for body, tok := range map[string]string{`[]`: "START_ARRAY", `"x"`: "VALUE_STRING", ` 12`: "VALUE_NUMBER",
		`1.5`: "VALUE_NUMBER", `true`: "VALUE_BOOLEAN", `false`: "VALUE_BOOLEAN", `null`: "VALUE_NULL"} {
		col := 1 + len(body) - len(strings.TrimLeft(body, " "))
		wantErrorAt(t, a.do(t, http.MethodPost, connectorsPath+"_create", body), 400, "parsing_exception",
			"Failed to parse object: expecting token of type [START_OBJECT] but found ["+tok+"]", 1, col)
	}
}
