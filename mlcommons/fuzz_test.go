package mlcommons

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/connector"
)

// A client body must never make the API panic or answer 5xx: every client
// mistake is a 4xx. The fuzz targets check that, and that a credential is
// never stored or answered in clear.

// connectorSeeds are connector bodies as clients send them, valid and not.
func connectorSeeds(f *testing.F) []string {
	withClientConfig := openAIConnector()
	withClientConfig["client_config"] = map[string]any{"max_connection": 5, "retry_backoff_policy": "EXPONENTIAL_FULL_JITTER"}
	dryRun := openAIConnector()
	dryRun["dry_run"] = true
	templated := openAIConnector()
	action(templated)["url"] = "https://${parameters.host}/v1/embeddings"
	templated["parameters"] = map[string]any{"host": "api.openai.com", "dims": 256, "opts": map[string]any{"a": []any{1, true, nil}}}
	return []string{
		toJSON(f, openAIConnector()),
		toJSON(f, bedrockConnector()),
		toJSON(f, withClientConfig),
		toJSON(f, dryRun),
		toJSON(f, templated),
		`{"name":"n","version":1,"protocol":"http","credential":{"k":1},"actions":[{"action_type":"PREDICT","method":"post","url":"https://api.cohere.ai/v1/embed","request_body":{"texts":"${parameters.texts}"}}]}`,
		`{"name":"n","version":"1","protocol":"http","credential":{"k":"v"},"actions":[{"action_type":"foo","method":"POST","url":"https://api.openai.com/"}]}`,
		`{"name":"n","version":"1","protocol":"http","credential":{"k":"v"},"actions":[{"action_type":"predict","method":"POST","url":"https://api.openai.com/x","pre_process_function":"return 1"}]}`,
		`{"name":"n","version":"1","protocol":"http","credential":{"k":"v"},"actions":[{"action_type":"predict","method":"POST","url":"https://api.openai.com:99999/x"}]}`,
		`{"name":"n","version":"1","protocol":"http","credential":{"k":"v"},"actions":[{"action_type":"predict","method":"POST","url":"https://api.openai.com/%zz"}]}`,
		`{"client_config":{"max_connection":1e400}}`,
		`{"client_config":[]}`,
		`{"parameters":[],"credential":"x"}`,
		`{"actions":{}}`,
		`{"access_mode":"public"}`,
		`{"credential":{"a":"1"},"credential":{}}`,
		`null`, `[]`, `"x"`, `{}`, ``, `{"name":"n"} {}`, `{"name":"\u00e9\ud800"}`,
	}
}

// checkStoredCredential fails unless every stored credential value of c is
// a ciphertext that decrypts to want.
func checkStoredCredential(t *testing.T, a *testAPI, c *indexstore.Connector, want map[string]string) {
	t.Helper()
	for k, v := range c.Credential {
		if !strings.HasPrefix(v, "mlsc1:") {
			t.Fatalf("stored credential %q is not encrypted", k)
		}
	}
	got, err := a.keys.DecryptMap(c.Credential)
	if err != nil {
		t.Fatalf("stored credential does not decrypt: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("stored credential mismatch (-want +got):\n%s", diff)
	}
}

// inputCredential is the credential a body sends, as the handlers read it.
func inputCredential(t *testing.T, body string, inline bool) map[string]string {
	t.Helper()
	var in struct {
		Credential map[string]connector.FlexString `json:"credential"`
		Connector  *struct {
			Credential map[string]connector.FlexString `json:"credential"`
		} `json:"connector"`
	}
	// Decoded as decodeBody does: the first JSON value counts.
	if err := json.NewDecoder(strings.NewReader(body)).Decode(&in); err != nil {
		t.Fatalf("body the API accepted does not decode: %v", err)
	}
	if inline {
		if in.Connector == nil {
			return nil
		}
		return plainMap(in.Connector.Credential)
	}
	return plainMap(in.Credential)
}

// plainMap is a decoded credential as plain strings; nil stays nil.
func plainMap(m map[string]connector.FlexString) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = string(v)
	}
	return out
}

func no5xx(t *testing.T, rec *httptest.ResponseRecorder, body string) {
	t.Helper()
	if rec.Code >= 500 {
		t.Fatalf("client body %q answered %d: %s", body, rec.Code, rec.Body)
	}
}

func FuzzCreateConnector(f *testing.F) {
	for _, s := range connectorSeeds(f) {
		f.Add(s)
	}
	base := newTestAPI(f)
	f.Fuzz(func(t *testing.T, body string) {
		a := base
		a.store.reset()
		rec := a.do(t, http.MethodPost, createPath, body)
		no5xx(t, rec, body)
		if rec.Code != http.StatusOK {
			return
		}
		id, _ := decodeAnswer(t, rec)["connector_id"].(string)
		if id == "dryRunConnector" {
			if ids := a.store.connectors.IDs(); len(ids) != 0 {
				t.Fatalf("dry run stored %v", ids)
			}
			return
		}
		c := storedConnector(t, a, id)
		checkStoredCredential(t, a, &c, inputCredential(t, body, false))
		if got := a.mustDo(t, http.MethodGet, connectorsPath+id, ""); got["credential"] != nil {
			t.Fatalf("GET answered the credential")
		}
	})
}

func FuzzUpdateConnector(f *testing.F) {
	for _, s := range []string{
		`{"description":"x"}`,
		`{"parameters":{"model":"text-embedding-3-small","dims":256}}`,
		`{"credential":{"openAI_key":"sk-new"}}`,
		`{"credential":{}}`,
		`{"credential":{"openAI_key":{"nested":true}}}`,
		`{"actions":[{"action_type":"execute","method":"GET","url":"https://api.openai.com/v1/models"}]}`,
		`{"actions":[]}`,
		`{"actions":null,"parameters":null,"credential":null,"version":null}`,
		`{"protocol":"aws_sigv4","credential":{"access_key":"a","secret_key":"s","region":"r","service_name":"s"}}`,
		`{"client_config":{"read_timeout":-1}}`,
		`{"client_config":{"max_retry_times":-1,"retry_backoff_policy":"Constant"}}`,
		`{"parameters":{"host":"evil.example.com"}}`,
		`{"backend_roles":["x"]}`,
		`{"name":""}`, ``, `null`, `{`, `[]`,
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	base := newTestAPI(f)
	f.Fuzz(func(t *testing.T, body string, deployed bool) {
		a := base
		a.store.reset()
		m := openAIConnector()
		action(m)["url"] = "https://${parameters.host}/v1/embeddings"
		m["parameters"].(map[string]any)["host"] = "api.openai.com"
		id := a.createConnector(t, m)
		query := ""
		if deployed {
			query = "?deploy=true"
		}
		a.registerModel(t, "m", id, query)
		before := storedConnector(t, a, id)

		rec := a.do(t, http.MethodPut, connectorsPath+id, body)
		no5xx(t, rec, body)
		after := storedConnector(t, a, id)
		if rec.Code != http.StatusOK {
			if diff := cmp.Diff(before, after); diff != "" {
				t.Fatalf("refused update changed the connector (-before +after):\n%s", diff)
			}
			return
		}
		if deployed {
			t.Fatalf("update of a connector a deployed model uses answered 200")
		}
		if want := inputCredential(t, body, false); len(want) > 0 {
			checkStoredCredential(t, a, &after, want)
		} else if diff := cmp.Diff(before.Credential, after.Credential); diff != "" {
			t.Fatalf("credential changed although none was sent (-before +after):\n%s", diff)
		}
		if strings.Contains(rec.Body.String(), "mlsc1:") {
			t.Fatalf("update answered a ciphertext: %s", rec.Body)
		}
	})
}

func FuzzRegisterModel(f *testing.F) {
	// Each run creates a connector and a model group first; CONN and GROUP
	// in a body stand for their ids.
	inline := toJSON(f, map[string]any{"name": "inline", "function_name": "remote", "connector": openAIConnector()})
	inlineSigV4 := toJSON(f, map[string]any{"name": "bedrock", "function_name": "remote", "connector": bedrockConnector(),
		"interface": map[string]any{"input": "{}", "output": "{}"}})
	for _, s := range []string{
		`{"name":"m","function_name":"remote","connector_id":"CONN"}`,
		`{"name":"m","function_name":"REMOTE","connector_id":"CONN","description":"d","is_enabled":true,
			"rate_limiter":{"limit":"4","unit":"MINUTES"},"deploy_setting":{"is_auto_deploy_enabled":true},"guardrails":{"type":"local_regex"}}`,
		`{"name":"m","function_name":"remote","connector_id":"CONN","model_group_id":"GROUP"}`,
		`{"name":"m","function_name":"remote","connector_id":"nope"}`,
		`{"name":"m","function_name":"remote"}`,
		`{"name":"m","function_name":"text_embedding","connector_id":"CONN"}`,
		`{"name":"m","function_name":"remote","connector":{"actions":[]}}`,
		`{"name":"m","function_name":"remote","connector":null,"connector_id":""}`,
		`{"name":"m","function_name":"remote","connector":{"credential":{"k":"v"},"actions":[{"action_type":"execute","method":"POST","url":"https://api.openai.com/v1"}]}}`,
		`{"name":null}`, `{"name":"m","backend_roles":[]}`, ``, `null`, `{"name":1}`,
		inline, inlineSigV4,
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	base := newTestAPI(f)
	f.Fuzz(func(t *testing.T, body string, deploy bool) {
		a := base
		a.store.reset()
		conn := a.createConnector(t, openAIConnector())
		group := a.mustDo(t, http.MethodPost, groupsPath+"_register", `{"name":"fuzz-group"}`)["model_group_id"].(string)
		body = strings.NewReplacer(`"CONN"`, strconv.Quote(conn), `"GROUP"`, strconv.Quote(group)).Replace(body)
		path := registerPath
		if deploy {
			path += "?deploy=true"
		}
		rec := a.do(t, http.MethodPost, path, body)
		no5xx(t, rec, body)
		if rec.Code != http.StatusOK {
			if ids := a.store.models.IDs(); len(ids) != 0 {
				t.Fatalf("refused register stored models %v", ids)
			}
			return
		}
		id, _ := decodeAnswer(t, rec)["model_id"].(string)
		m := storedModel(t, a, id)
		if m.Connector != nil {
			checkStoredCredential(t, a, m.Connector, inputCredential(t, body, true))
		}
		if deploy && m.ModelState != indexstore.ModelDeployed {
			t.Fatalf("got state %q with ?deploy=true, want DEPLOYED", m.ModelState)
		}
		get := a.do(t, http.MethodGet, modelsPath+id, "")
		if strings.Contains(get.Body.String(), `"credential"`) || strings.Contains(get.Body.String(), "mlsc1:") {
			t.Fatalf("GET model answered the credential: %s", get.Body)
		}
	})
}

func FuzzSearchBody(f *testing.F) {
	for _, s := range []string{
		``, `{}`,
		`{"query":{"match_all":{}},"from":0,"size":50}`,
		`{"query":{"term":{"name.keyword":"OpenAI embeddings"}}}`,
		`{"query":{"bool":{"must":[{"terms":{"model_state":["DEPLOYED"]}}],"must_not":{"term":{"is_hidden":true}}}}}`,
		`{"query":{"ids":{"values":["connectors-1"]}},"_source":false}`,
		`{"_source":["credential","name"]}`,
		`{"query":{"wildcard":{"name.keyword":"*a*"}}}`,
		`{"aggs":{"n":{"terms":{"field":"connector.name.keyword"}}},"size":0}`,
		`{"script_fields":{"c":{"script":"params._source.credential"}}}`,
		`{"query":{"bool":{"filter":[{"script":{"script":"true"}}]}}}`,
		`{"size":-1}`, `{"size":"x"}`, `[]`, `"x"`, `{"query":`, `{} {}`,
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	base := newTestAPI(f)
	f.Fuzz(func(t *testing.T, body string, models bool) {
		a := base
		a.store.reset()
		a.createConnector(t, openAIConnector())
		a.mustDo(t, http.MethodPost, registerPath, toJSON(t, map[string]any{"name": "inline", "function_name": "remote", "connector": openAIConnector()}))
		path := connectorsPath + "_search"
		if models {
			path = modelsPath + "_search"
		}
		rec := a.do(t, http.MethodPost, path, body)
		no5xx(t, rec, body)
		if rec.Code != http.StatusOK {
			return
		}
		if out := rec.Body.String(); strings.Contains(out, "mlsc1:") || strings.Contains(out, openAIKey) {
			t.Fatalf("search answered a credential: %s", out)
		}
	})
}

func FuzzFlexString(f *testing.F) {
	for _, s := range []string{
		`"abc"`, `""`, `1`, `0.70`, `-1e3`, `{"a": 1}`, ` [true, null, {"b":"<&>"}] `, `null`, `true`, `false`,
		`"\u00e9\n\"q\""`, `"\ud800"`, "\"\xff\"", `"`, `{`, ``, `"a" "b"`, `1 2`, "\u00a01", `nul`, `{"a":}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var s connector.FlexString
		err := s.UnmarshalJSON(data)
		if !json.Valid(data) {
			return // an error or not: the JSON decoder only ever passes valid values
		}
		if err != nil {
			t.Fatalf("valid JSON %q: %v", data, err)
		}
		trimmed := bytes.TrimSpace(data)
		switch {
		case trimmed[0] == '"':
			var want string
			if err := json.Unmarshal(data, &want); err != nil {
				t.Fatal(err)
			}
			if string(s) != want {
				t.Fatalf("string %q: got %q, want %q", data, s, want)
			}
			// Round trip: the stored text encodes back to the same string.
			b, err := json.Marshal(string(s))
			if err != nil {
				t.Fatal(err)
			}
			var again connector.FlexString
			if err := again.UnmarshalJSON(b); err != nil || again != s {
				t.Fatalf("round trip of %q: got %q, %v", s, again, err)
			}
		case string(trimmed) == "null":
			if s != "" {
				t.Fatalf("null: got %q, want empty", s)
			}
		default:
			var want bytes.Buffer
			if err := json.Compact(&want, data); err != nil {
				t.Fatal(err)
			}
			if string(s) != want.String() {
				t.Fatalf("%q: got %q, want its compact text %q", data, s, want.String())
			}
			// Round trip: the text is JSON again and reads back unchanged.
			var again connector.FlexString
			if err := again.UnmarshalJSON([]byte(s)); err != nil || again != s {
				t.Fatalf("round trip of %q: got %q, %v", s, again, err)
			}
		}
		// Through the decoder, as in a request body.
		var v struct {
			V connector.FlexString `json:"v"`
		}
		doc := append(append([]byte(`{"v":`), data...), '}')
		if err := json.Unmarshal(doc, &v); err != nil || v.V != s {
			t.Fatalf("decoding %s: got %q, %v; want %q", doc, v.V, err, s)
		}
	})
}

// FuzzRoutes: any method, path and query under /_plugins/_ml is answered
// without a panic or a 5xx, and every 4xx is an OpenSearch error body.
func FuzzRoutes(f *testing.F) {
	for _, s := range []string{
		"/connectors/_create", "/models/m1/_predict/", "/models/_register?deploy=x", "/models/meta",
		"/tasks/t1/_cancel_batch?foo", "/stats/?pretty", "/profile/models/?view=x", "/agents//x",
		"/models/%2e%2e/_predict", "/_predict/remote/m1?prety", "/x?=&=", "/models/_search/_deploy",
	} {
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, "PATCH"} {
			f.Add(m, s)
		}
	}
	a := newTestAPI(f)
	f.Fuzz(func(t *testing.T, method, path string) {
		if !validMethod(method) {
			return
		}
		u, err := url.Parse("http://x/_plugins/_ml" + path)
		if err != nil {
			return
		}
		req := httptest.NewRequest(method, "/", strings.NewReader(`{}`))
		req.URL, req.RequestURI = u, u.RequestURI()
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, req)
		no5xx(t, rec, method+" "+path)
		if rec.Code >= 400 && !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s %s: %d with a body that is not JSON: %q", method, path, rec.Code, rec.Body)
		}
	})
}

func validMethod(m string) bool {
	if m == "" || m == http.MethodHead {
		return false
	}
	for _, c := range m {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}
