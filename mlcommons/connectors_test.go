package mlcommons

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/remote"
)

const (
	openAIKey      = "sk-test-plaintext-0123456789"
	connectorsPath = "/_plugins/_ml/connectors/"
	createPath     = connectorsPath + "_create"
	untrustedText  = "Connector URL is not matching the trusted connector endpoint regex, URL is: "
	accessCtrlText = "You cannot specify connector access control parameters because the Security plugin or connector access control is disabled on your cluster."
	// builtins is the list the painless refusal names, sorted.
	builtins = "connector.post_process.bedrock.batch_job_arn, connector.post_process.bedrock.embedding, " +
		"connector.post_process.bedrock.rerank, connector.post_process.cohere.embedding, " +
		"connector.post_process.cohere.rerank, connector.post_process.default.embedding, " +
		"connector.post_process.default.rerank, connector.post_process.openai.embedding, " +
		"connector.pre_process.bedrock.embedding, connector.pre_process.bedrock.multimodal_embedding, " +
		"connector.pre_process.bedrock.rerank, connector.pre_process.cohere.embedding, " +
		"connector.pre_process.cohere.rerank, connector.pre_process.default.embedding, " +
		"connector.pre_process.default.rerank, connector.pre_process.openai.embedding"
)

// openAIConnector is a valid http connector body, as ML Commons' blueprint
// writes it; rows change it.
func openAIConnector() map[string]any {
	return map[string]any{
		"name": "OpenAI embeddings", "description": "text-embedding-ada-002", "version": "1", "protocol": "http",
		"parameters": map[string]any{"model": "text-embedding-ada-002"},
		"credential": map[string]any{"openAI_key": openAIKey},
		"actions": []any{map[string]any{
			"action_type": "predict", "method": "POST", "url": "https://api.openai.com/v1/embeddings",
			"headers":               map[string]any{"Authorization": "Bearer ${credential.openAI_key}"},
			"request_body":          `{ "input": ${parameters.input}, "model": "${parameters.model}" }`,
			"pre_process_function":  "connector.pre_process.openai.embedding",
			"post_process_function": "connector.post_process.openai.embedding",
		}},
	}
}

// bedrockConnector is a valid aws_sigv4 connector body.
func bedrockConnector() map[string]any {
	return map[string]any{
		"name": "Bedrock titan", "version": "1", "protocol": "aws_sigv4",
		"parameters": map[string]any{"region": "us-east-1", "service_name": "bedrock"},
		"credential": map[string]any{"access_key": "AKIAEXAMPLE", "secret_key": "bedrock-secret-example"},
		"actions": []any{map[string]any{
			"action_type": "predict", "method": "POST",
			"url":          "https://bedrock-runtime.${parameters.region}.amazonaws.com/model/amazon.titan-embed-text-v1/invoke",
			"request_body": `{ "inputText": "${parameters.inputText}" }`,
		}},
	}
}

func action(m map[string]any) map[string]any { return m["actions"].([]any)[0].(map[string]any) }

// toJSON encodes v as a client would, <, > and & as they are.
func toJSON(t testing.TB, v any) string {
	t.Helper()
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// createConnector creates body and returns the new id.
func (a *testAPI) createConnector(t testing.TB, body map[string]any) string {
	t.Helper()
	res := a.mustDo(t, http.MethodPost, createPath, toJSON(t, body))
	id, _ := res["connector_id"].(string)
	if id == "" {
		t.Fatalf("create answered %v, want a connector_id", res)
	}
	return id
}

func TestCreateConnectorValidation(t *testing.T) {
	tests := []struct {
		name    string
		base    func() map[string]any
		change  func(m map[string]any)
		body    string // used instead of base+change when set
		status  int
		errType string
		reason  string
		col     int // of a parsing_exception, on line 1
	}{
		{name: "empty body", body: " ", status: 400, errType: "parse_exception", reason: "Create Connector request has empty body"},
		{name: "not an object", body: `[1]`, status: 400, errType: "parsing_exception",
			reason: "Failed to parse object: expecting token of type [START_OBJECT] but found [START_ARRAY]", col: 1},
		{name: "name of the wrong type", body: `{"name":1}`, status: 400, errType: "parse_exception",
			reason: "Failed to parse request body: field [name] cannot take a JSON number"},
		{name: "trailing data", body: `{} {}`, status: 400, errType: "parse_exception",
			reason: "Failed to parse request body: unexpected data after the JSON object"},
		{name: "name missing", change: func(m map[string]any) { delete(m, "name") },
			status: 400, errType: "illegal_argument_exception", reason: "Connector name is null"},
		{name: "name empty", change: func(m map[string]any) { m["name"] = "" },
			status: 400, errType: "illegal_argument_exception", reason: "Connector name is null"},
		{name: "version missing", change: func(m map[string]any) { delete(m, "version") },
			status: 400, errType: "illegal_argument_exception", reason: "Connector version is null"},
		{name: "version null", change: func(m map[string]any) { m["version"] = nil },
			status: 400, errType: "illegal_argument_exception", reason: "Connector version is null"},
		{name: "protocol missing", change: func(m map[string]any) { delete(m, "protocol") },
			status: 400, errType: "illegal_argument_exception", reason: "Connector protocol is null"},
		{name: "credential missing", change: func(m map[string]any) { delete(m, "credential") },
			status: 400, errType: "illegal_argument_exception", reason: "Connector credential is null or empty list"},
		{name: "credential empty", change: func(m map[string]any) { m["credential"] = map[string]any{} },
			status: 400, errType: "illegal_argument_exception", reason: "Connector credential is null or empty list"},
		{name: "unsupported protocol", change: func(m map[string]any) { m["protocol"] = "grpc" },
			status: 400, errType: "illegal_argument_exception", reason: "Unsupported connector protocol. Please use one of [aws_sigv4, http]"},
		{name: "sigv4 without access_key", base: bedrockConnector,
			change: func(m map[string]any) { delete(m["credential"].(map[string]any), "access_key") },
			status: 400, errType: "illegal_argument_exception", reason: "Missing credential"},
		{name: "sigv4 without secret_key", base: bedrockConnector,
			change: func(m map[string]any) { delete(m["credential"].(map[string]any), "secret_key") },
			status: 400, errType: "illegal_argument_exception", reason: "Missing credential"},
		{name: "sigv4 without region", base: bedrockConnector,
			change: func(m map[string]any) {
				delete(m["parameters"].(map[string]any), "region")
				action(m)["url"] = "https://bedrock-runtime.us-east-1.amazonaws.com/model/x/invoke"
			},
			status: 400, errType: "illegal_argument_exception", reason: "Missing region"},
		{name: "sigv4 without service name", base: bedrockConnector,
			change: func(m map[string]any) { delete(m["parameters"].(map[string]any), "service_name") },
			status: 400, errType: "illegal_argument_exception", reason: "Missing service name"},
		{name: "actions missing", change: func(m map[string]any) { delete(m, "actions") },
			status: 400, errType: "illegal_argument_exception", reason: "No actions configured for this connector"},
		{name: "actions empty", change: func(m map[string]any) { m["actions"] = []any{} },
			status: 400, errType: "illegal_argument_exception", reason: "No actions configured for this connector"},
		{name: "action type missing", change: func(m map[string]any) { delete(action(m), "action_type") },
			status: 400, errType: "illegal_argument_exception", reason: "action_type can't be null"},
		{name: "action type unknown", change: func(m map[string]any) { action(m)["action_type"] = "foo" },
			status: 400, errType: "illegal_argument_exception",
			reason: "No enum constant org.opensearch.ml.common.connector.ConnectorAction.ActionType.FOO"},
		{name: "method missing", change: func(m map[string]any) { delete(action(m), "method") },
			status: 400, errType: "illegal_argument_exception", reason: "method can't be null"},
		{name: "method unsupported", change: func(m map[string]any) { action(m)["method"] = "PATCH" },
			status: 400, errType: "illegal_argument_exception", reason: "unsupported http method: PATCH"},
		{name: "url missing", change: func(m map[string]any) { delete(action(m), "url") },
			status: 400, errType: "illegal_argument_exception", reason: "url can't be null"},
		{name: "url untrusted", change: func(m map[string]any) { action(m)["url"] = "https://evil.example.com/v1/embeddings" },
			status: 400, errType: "illegal_argument_exception", reason: untrustedText + "https://evil.example.com/v1/embeddings"},
		{name: "url with trusted prefix only", change: func(m map[string]any) { action(m)["url"] = "https://api.openai.com.evil.example.com/v1" },
			status: 400, errType: "illegal_argument_exception", reason: untrustedText + "https://api.openai.com.evil.example.com/v1"},
		{name: "url parameter not given", change: func(m map[string]any) { action(m)["url"] = "https://${parameters.host}/v1/x" },
			status: 400, errType: "illegal_argument_exception", reason: untrustedText + "https://${parameters.host}/v1/x"},
		{name: "url parameter untrusted",
			change: func(m map[string]any) {
				action(m)["url"] = "https://${parameters.host}/v1/x"
				m["parameters"].(map[string]any)["host"] = "evil.example.com"
			},
			status: 400, errType: "illegal_argument_exception", reason: untrustedText + "https://evil.example.com/v1/x"},
		{name: "url password masked", change: func(m map[string]any) { action(m)["url"] = "https://user:hunter2@evil.example.com/v1" },
			status: 400, errType: "illegal_argument_exception", reason: "Connector URL must not contain user info, URL is: https://xxxxx@evil.example.com/v1"},
		{name: "painless pre_process_function", change: func(m map[string]any) { action(m)["pre_process_function"] = "return params.text_docs;" },
			status: 400, errType: "illegal_argument_exception",
			reason: "Painless scripts in pre_process_function and post_process_function cannot run in mlsidecar; use one of the built-in functions: " + builtins},
		{name: "painless post_process_function", change: func(m map[string]any) { action(m)["post_process_function"] = "def x = params; return x;" },
			status: 400, errType: "illegal_argument_exception",
			reason: "Painless scripts in pre_process_function and post_process_function cannot run in mlsidecar; use one of the built-in functions: " + builtins},
		{name: "access_mode", change: func(m map[string]any) { m["access_mode"] = "public" },
			status: 400, errType: "illegal_argument_exception", reason: accessCtrlText},
		{name: "backend_roles", change: func(m map[string]any) { m["backend_roles"] = []any{"ml"} },
			status: 400, errType: "illegal_argument_exception", reason: accessCtrlText},
		{name: "add_all_backend_roles false", change: func(m map[string]any) { m["add_all_backend_roles"] = false },
			status: 400, errType: "illegal_argument_exception", reason: accessCtrlText},
		{name: "access control before required fields", change: func(m map[string]any) { delete(m, "name"); m["access_mode"] = "private" },
			status: 400, errType: "illegal_argument_exception", reason: accessCtrlText},
		{name: "client_config unknown policy", change: func(m map[string]any) { m["client_config"] = map[string]any{"retry_backoff_policy": "linear"} },
			status: 400, errType: "illegal_argument_exception", reason: "Unsupported retry backoff policy"},
		{name: "client_config max_connection 0", change: func(m map[string]any) { m["client_config"] = map[string]any{"max_connection": 0} },
			status: 400, errType: "illegal_argument_exception", reason: "max_connection must be at least 1"},
		{name: "client_config negative timeout", change: func(m map[string]any) { m["client_config"] = map[string]any{"read_timeout": -1} },
			status: 400, errType: "illegal_argument_exception", reason: "client_config timeouts must not be negative"},
		{name: "client_config negative backoff", change: func(m map[string]any) { m["client_config"] = map[string]any{"retry_backoff_millis": -5} },
			status: 400, errType: "illegal_argument_exception", reason: "client_config timeouts must not be negative"},
		{name: "client_config max_retry_times -2", change: func(m map[string]any) { m["client_config"] = map[string]any{"max_retry_times": -2} },
			status: 400, errType: "illegal_argument_exception", reason: "max_retry_times must be -1 (unlimited), 0 (no retry) or more"},
		{name: "client_config not an object", change: func(m map[string]any) { m["client_config"] = "fast" },
			status: 400, errType: "illegal_argument_exception", reason: "Invalid client_config: expected a JSON object, got a JSON string"},
		{name: "client_config field of the wrong type", change: func(m map[string]any) { m["client_config"] = map[string]any{"max_connection": "10"} },
			status: 400, errType: "illegal_argument_exception", reason: "Invalid client_config: field [max_connection] cannot take a JSON string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestAPI(t)
			body := tt.body
			if body == "" {
				base := openAIConnector
				if tt.base != nil {
					base = tt.base
				}
				m := base()
				tt.change(m)
				body = toJSON(t, m)
			}
			rec := a.do(t, http.MethodPost, createPath, body)
			line := 0
			if tt.col > 0 {
				line = 1
			}
			wantErrorAt(t, rec, tt.status, tt.errType, tt.reason, line, tt.col)
			if ids := a.store.connectors.IDs(); len(ids) != 0 {
				t.Errorf("got stored connectors %v, want none", ids)
			}
		})
	}
}

func TestCreateConnectorAccepted(t *testing.T) {
	tests := []struct {
		name   string
		base   func() map[string]any
		change func(m map[string]any)
		check  func(t *testing.T, stored indexstore.Connector)
	}{
		{name: "openai blueprint", change: func(map[string]any) {}},
		{name: "sigv4 region and service name in parameters", base: bedrockConnector, change: func(map[string]any) {}},
		{name: "sigv4 region and service name in credential", base: bedrockConnector,
			change: func(m map[string]any) {
				m["parameters"] = map[string]any{}
				cred := m["credential"].(map[string]any)
				cred["region"], cred["service_name"] = "us-east-1", "bedrock"
				action(m)["url"] = "https://bedrock-runtime.us-east-1.amazonaws.com/model/x/invoke"
			}},
		{name: "sigv4 with session token", base: bedrockConnector,
			change: func(m map[string]any) { m["credential"].(map[string]any)["session_token"] = "token" }},
		{name: "url trusted after substitution",
			change: func(m map[string]any) {
				action(m)["url"] = "https://${parameters.host}/v1/x"
				m["parameters"].(map[string]any)["host"] = "api.openai.com"
			},
			check: func(t *testing.T, c indexstore.Connector) {
				if got, want := c.Actions[0].URL, "https://${parameters.host}/v1/x"; got != want {
					t.Errorf("got stored url %q, want the template %q", got, want)
				}
			}},
		{name: "version as a number",
			change: func(m map[string]any) { m["version"] = 1 },
			check: func(t *testing.T, c indexstore.Connector) {
				if c.Version != "1" {
					t.Errorf("got version %q, want %q", c.Version, "1")
				}
			}},
		{name: "version as a decimal",
			change: func(m map[string]any) { m["version"] = json.Number("1.5") },
			check: func(t *testing.T, c indexstore.Connector) {
				if c.Version != "1.5" {
					t.Errorf("got version %q, want %q", c.Version, "1.5")
				}
			}},
		{name: "action types stored upper-case",
			change: func(m map[string]any) {
				m["actions"] = append(m["actions"].([]any),
					map[string]any{"action_type": "Batch_Predict", "method": "post", "url": "https://api.openai.com/v1/batches"},
					map[string]any{"action_type": "batch_predict_status", "method": "GET", "url": "https://api.openai.com/v1/batches/${parameters.id}"},
					map[string]any{"action_type": "cancel_batch_predict", "method": "POST", "url": "https://api.openai.com/v1/batches/${parameters.id}/cancel"},
					map[string]any{"action_type": "execute", "method": "delete", "url": "https://api.openai.com/v1/x"})
			},
			check: func(t *testing.T, c indexstore.Connector) {
				var got []string
				for _, a := range c.Actions {
					got = append(got, a.ActionType)
				}
				want := []string{"PREDICT", "BATCH_PREDICT", "BATCH_PREDICT_STATUS", "CANCEL_BATCH_PREDICT", "EXECUTE"}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("action types mismatch (-want +got):\n%s", diff)
				}
			}},
		{name: "request_body given as an object",
			change: func(m map[string]any) { action(m)["request_body"] = map[string]any{"input": "${parameters.input}"} },
			check: func(t *testing.T, c indexstore.Connector) {
				if got, want := c.Actions[0].RequestBody, `{"input":"${parameters.input}"}`; got != want {
					t.Errorf("got request_body %q, want %q", got, want)
				}
			}},
		{name: "unknown fields skipped",
			change: func(m map[string]any) { m["tenant_id"] = "x"; m["whatever"] = map[string]any{"a": 1} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestAPI(t)
			base := openAIConnector
			if tt.base != nil {
				base = tt.base
			}
			m := base()
			tt.change(m)
			id := a.createConnector(t, m)
			c := storedConnector(t, a, id)
			if c.CreatedTime != testNow.UnixMilli() || c.LastUpdatedTime != testNow.UnixMilli() {
				t.Errorf("got created_time %d, last_updated_time %d, want both %d", c.CreatedTime, c.LastUpdatedTime, testNow.UnixMilli())
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

func TestCreateConnectorDryRun(t *testing.T) {
	tests := []struct {
		name string
		body map[string]any
	}{
		{"complete connector", func() map[string]any { m := openAIConnector(); m["dry_run"] = true; return m }()},
		{"required fields skipped", map[string]any{"dry_run": true, "actions": openAIConnector()["actions"]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestAPI(t)
			got := a.mustDo(t, http.MethodPost, createPath, toJSON(t, tt.body))
			if diff := cmp.Diff(map[string]any{"connector_id": "dryRunConnector"}, got); diff != "" {
				t.Errorf("answer mismatch (-want +got):\n%s", diff)
			}
			if ids := a.store.connectors.IDs(); len(ids) != 0 {
				t.Errorf("got stored connectors %v, want none", ids)
			}
		})
	}
	t.Run("urls still checked", func(t *testing.T) {
		a := newTestAPI(t)
		m := openAIConnector()
		m["dry_run"] = true
		action(m)["url"] = "http://169.254.169.254/latest"
		wantError(t, a.do(t, http.MethodPost, createPath, toJSON(t, m)), 400, "illegal_argument_exception", untrustedText+"http://169.254.169.254/latest")
	})
}

func TestCreateConnectorClientConfig(t *testing.T) {
	tests := []struct {
		name   string
		config any // nil: left out
		want   *indexstore.ClientConfig
	}{
		{name: "left out", config: nil, want: nil},
		{name: "empty object", config: map[string]any{}, want: &indexstore.ClientConfig{MaxConnection: 30, ConnectionTimeout: 30, ReadTimeout: 30,
			RetryBackoffMillis: 200, RetryTimeoutSeconds: 30, MaxRetryTimes: 0, RetryBackoffPolicy: "constant"}},
		{name: "partial", config: map[string]any{"max_connection": 5, "max_retry_times": -1, "retry_backoff_policy": "EXPONENTIAL_FULL_JITTER"},
			want: &indexstore.ClientConfig{MaxConnection: 5, ConnectionTimeout: 30, ReadTimeout: 30,
				RetryBackoffMillis: 200, RetryTimeoutSeconds: 30, MaxRetryTimes: -1, RetryBackoffPolicy: "exponential_full_jitter"}},
		{name: "complete", config: map[string]any{"max_connection": 2, "connection_timeout": 5, "read_timeout": 60, "retry_backoff_millis": 0,
			"retry_timeout_seconds": 10, "max_retry_times": 3, "retry_backoff_policy": "exponential_equal_jitter", "skip_ssl_verification": true},
			want: &indexstore.ClientConfig{MaxConnection: 2, ConnectionTimeout: 5, ReadTimeout: 60, RetryBackoffMillis: 0, RetryTimeoutSeconds: 10,
				MaxRetryTimes: 3, RetryBackoffPolicy: "exponential_equal_jitter", SkipSSLVerification: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestAPI(t)
			m := openAIConnector()
			if tt.config != nil {
				m["client_config"] = tt.config
			}
			id := a.createConnector(t, m)
			src := decodeRaw[map[string]any](t, "connector "+id, a.store.connectors.Raw(id))
			raw, present := src["client_config"]
			if tt.want == nil {
				if present {
					t.Errorf("got stored client_config %v, want none", raw)
				}
				return
			}
			var got indexstore.ClientConfig
			if err := json.Unmarshal([]byte(toJSON(t, raw)), &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(*tt.want, got); diff != "" {
				t.Errorf("stored client_config mismatch (-want +got):\n%s", diff)
			}
			// Every field is written, defaults included.
			if n := len(raw.(map[string]any)); n != 8 {
				t.Errorf("got %d stored client_config fields, want 8: %v", n, raw)
			}
		})
	}
}

func TestCreateConnectorParameters(t *testing.T) {
	a := newTestAPI(t)
	m := openAIConnector()
	m["parameters"] = json.RawMessage(`{"model":"text-embedding-3-small","DataProcessing":{"a": 1, "b": [true, null]},
		"temperature":0.70,"big":1e3,"stream":true,"html":{"q":"<b>&</b>"},"list":["x", 2]}`)
	id := a.createConnector(t, m)

	want := map[string]string{
		"model":          "text-embedding-3-small",
		"DataProcessing": `{"a":1,"b":[true,null]}`,
		"temperature":    "0.70",
		"big":            "1e3",
		"stream":         "true",
		"html":           `{"q":"<b>&</b>"}`,
		"list":           `["x",2]`,
	}
	if diff := cmp.Diff(want, storedConnector(t, a, id).Parameters); diff != "" {
		t.Errorf("stored parameters mismatch (-want +got):\n%s", diff)
	}

	rec := a.do(t, http.MethodGet, connectorsPath+id, "")
	var got connectorJSON
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got.Parameters); diff != "" {
		t.Errorf("GET parameters mismatch (-want +got):\n%s", diff)
	}
	// OpenSearch writes <, > and & as they are.
	if !strings.Contains(rec.Body.String(), `<b>&</b>`) {
		t.Errorf("got GET body %s, want <b>&</b> unescaped", rec.Body)
	}
}

func TestConnectorCredentialEncrypted(t *testing.T) {
	tests := []struct {
		name  string
		body  func() map[string]any
		plain map[string]string
	}{
		{"http", openAIConnector, map[string]string{"openAI_key": openAIKey}},
		{"aws_sigv4", bedrockConnector, map[string]string{"access_key": "AKIAEXAMPLE", "secret_key": "bedrock-secret-example"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestAPI(t)
			id := a.createConnector(t, tt.body())
			raw := string(a.store.connectors.Raw(id))
			for k, v := range tt.plain {
				if strings.Contains(raw, v) {
					t.Errorf("stored connector %s holds the plaintext of %s", raw, k)
				}
			}
			var stored indexstore.Connector
			if err := json.Unmarshal([]byte(raw), &stored); err != nil {
				t.Fatal(err)
			}
			for k, v := range stored.Credential {
				if !strings.HasPrefix(v, "mlsc1:") {
					t.Errorf("got stored credential %s = %q, want an mlsc1: ciphertext", k, v)
				}
			}
			plain, err := a.keys.DecryptMap(stored.Credential)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.plain, plain); diff != "" {
				t.Errorf("decrypted credential mismatch (-want +got):\n%s", diff)
			}

			got := a.mustDo(t, http.MethodGet, connectorsPath+id, "")
			if _, ok := got["credential"]; ok {
				t.Errorf("GET answered a credential: %v", got)
			}
			for _, field := range []string{"connector_id", "_id"} {
				if _, ok := got[field]; ok {
					t.Errorf("GET answered %s; ML Commons has no id in the body", field)
				}
			}
			if got["name"] != tt.body()["name"] {
				t.Errorf("got name %v, want %v", got["name"], tt.body()["name"])
			}
		})
	}
}

func TestGetConnectorNotFound(t *testing.T) {
	tests := []struct {
		name, path, id string
	}{
		{"plain id", connectorsPath + "nope", "nope"},
		{"encoded id", connectorsPath + "a%2Fb%20c", "a/b c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestAPI(t)
			wantError(t, a.do(t, http.MethodGet, tt.path, ""), 404, "status_exception",
				"Failed to find connector with the provided connector id: "+tt.id)
			wantError(t, a.do(t, http.MethodPut, tt.path, `{"name":"x"}`), 404, "status_exception",
				"Failed to find connector with the provided connector id: "+tt.id)
		})
	}
}

func TestDeleteUnknownConnector(t *testing.T) {
	a := newTestAPI(t)
	// ML Commons 2.19.6 hands on the cluster's DeleteResponse.
	if res := a.mustDo(t, http.MethodDelete, connectorsPath+"nope", ""); res["result"] != "not_found" || res["_id"] != "nope" || res["forced_refresh"] != true {
		t.Errorf("got %v, want a DeleteResponse for nope with result not_found", res)
	}
	// An id no document can have is not asked for.
	wantError(t, a.do(t, http.MethodDelete, connectorsPath+"a%2Fb%20c", ""), 404, "status_exception",
		"Failed to find connector with the provided connector id: a/b c")
}

// storedConnector decodes the stored connector id.
func storedConnector(t testing.TB, a *testAPI, id string) indexstore.Connector {
	t.Helper()
	return decodeRaw[indexstore.Connector](t, "connector "+id, a.store.connectors.Raw(id))
}

func TestUpdateConnectorMerge(t *testing.T) {
	a := newTestAPI(t)
	m := openAIConnector()
	m["parameters"] = map[string]any{"model": "ada", "keep": "k"}
	m["client_config"] = map[string]any{"max_connection": 7}
	id := a.createConnector(t, m)
	before := storedConnector(t, a, id)

	res := a.mustDo(t, http.MethodPut, connectorsPath+id, `{
		"description": "new description",
		"parameters": {"model": "text-embedding-3-large", "dimensions": 256},
		"actions": [{"action_type": "execute", "method": "POST", "url": "https://api.openai.com/v1/other"},
		            {"action_type": "predict", "method": "POST", "url": "https://api.openai.com/v1/embeddings"}]}`)
	if res["_id"] != id || res["result"] != "updated" {
		t.Errorf("got answer %v, want an UpdateResponse for %s with result updated", res, id)
	}
	after := storedConnector(t, a, id)
	if diff := cmp.Diff(map[string]string{"model": "text-embedding-3-large", "keep": "k", "dimensions": "256"}, after.Parameters); diff != "" {
		t.Errorf("parameters not merged key by key (-want +got):\n%s", diff)
	}
	wantActions := []indexstore.ConnectorAction{
		{ActionType: "EXECUTE", Method: "POST", URL: "https://api.openai.com/v1/other"},
		{ActionType: "PREDICT", Method: "POST", URL: "https://api.openai.com/v1/embeddings"},
	}
	if diff := cmp.Diff(wantActions, after.Actions); diff != "" {
		t.Errorf("actions not replaced (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(before.Credential, after.Credential); diff != "" {
		t.Errorf("credential ciphertext changed although no credential was sent (-before +after):\n%s", diff)
	}
	if after.Name != before.Name || after.Version != before.Version || after.Protocol != before.Protocol {
		t.Errorf("got name/version/protocol %q/%q/%q, want them unchanged %q/%q/%q",
			after.Name, after.Version, after.Protocol, before.Name, before.Version, before.Protocol)
	}
	if after.Description != "new description" {
		t.Errorf("got description %q, want %q", after.Description, "new description")
	}
	if diff := cmp.Diff(before.ClientConfig, after.ClientConfig); diff != "" {
		t.Errorf("client_config changed although not sent (-before +after):\n%s", diff)
	}
	if after.CreatedTime != before.CreatedTime {
		t.Errorf("got created_time %d, want it unchanged %d", after.CreatedTime, before.CreatedTime)
	}

	t.Run("empty credential keeps the stored one", func(t *testing.T) {
		a.mustDo(t, http.MethodPut, connectorsPath+id, `{"credential":{}}`)
		if diff := cmp.Diff(before.Credential, storedConnector(t, a, id).Credential); diff != "" {
			t.Errorf("credential changed by an empty credential (-before +after):\n%s", diff)
		}
	})
	t.Run("credential re-encrypted when sent", func(t *testing.T) {
		a.mustDo(t, http.MethodPut, connectorsPath+id, `{"credential":{"openAI_key":"sk-rotated-key-987654321"}}`)
		raw := string(a.store.connectors.Raw(id))
		if strings.Contains(raw, "sk-rotated-key-987654321") {
			t.Errorf("stored connector holds the new plaintext: %s", raw)
		}
		got := storedConnector(t, a, id).Credential
		if got["openAI_key"] == before.Credential["openAI_key"] {
			t.Errorf("got the old ciphertext, want a new one")
		}
		plain, err := a.keys.DecryptMap(got)
		if err != nil {
			t.Fatal(err)
		}
		if plain["openAI_key"] != "sk-rotated-key-987654321" {
			t.Errorf("got decrypted key %q, want the new one", plain["openAI_key"])
		}
	})
	t.Run("client_config replaced with defaults", func(t *testing.T) {
		a.mustDo(t, http.MethodPut, connectorsPath+id, `{"client_config":{"read_timeout":9}}`)
		want := remote.DefaultConfig()
		want.ReadTimeout = 9
		if diff := cmp.Diff(&want, storedConnector(t, a, id).ClientConfig); diff != "" {
			t.Errorf("client_config mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("credential absent from the answer", func(t *testing.T) {
		rec := a.do(t, http.MethodPut, connectorsPath+id, `{"credential":{"openAI_key":"sk-another-key-555"}}`)
		if strings.Contains(rec.Body.String(), "sk-another-key-555") || strings.Contains(rec.Body.String(), "mlsc1:") {
			t.Errorf("update answer holds the credential: %s", rec.Body)
		}
	})
}

func TestUpdateConnectorValidation(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		status  int
		errType string
		reason  string
	}{
		{"empty body", "", 400, "parse_exception", "Failed to update connector: Request body is empty"},
		{"malformed", `{"name":`, 400, "parse_exception", "Failed to parse request body: unexpected EOF"},
		{"untrusted url", `{"actions":[{"action_type":"predict","method":"POST","url":"https://evil.example.com/x"}]}`,
			400, "illegal_argument_exception", untrustedText + "https://evil.example.com/x"},
		{"parameter makes the stored url untrusted", `{"parameters":{"host":"evil.example.com"}}`,
			400, "illegal_argument_exception", untrustedText + "https://evil.example.com/v1/embeddings"},
		{"empty name", `{"name":""}`, 400, "illegal_argument_exception", "Connector name is null"},
		{"no actions", `{"actions":[]}`, 400, "illegal_argument_exception", "No actions configured for this connector"},
		{"bad action type", `{"actions":[{"action_type":"train","method":"POST","url":"https://api.openai.com/v1/x"}]}`,
			400, "illegal_argument_exception", "No enum constant org.opensearch.ml.common.connector.ConnectorAction.ActionType.TRAIN"},
		{"painless", `{"actions":[{"action_type":"predict","method":"POST","url":"https://api.openai.com/v1/x","post_process_function":"return 1"}]}`,
			400, "illegal_argument_exception",
			"Painless scripts in pre_process_function and post_process_function cannot run in mlsidecar; use one of the built-in functions: " + builtins},
		{"protocol to sigv4 without keys", `{"protocol":"aws_sigv4"}`, 400, "illegal_argument_exception", "Missing credential"},
		{"bad client_config", `{"client_config":{"retry_backoff_policy":"never"}}`, 400, "illegal_argument_exception", "Unsupported retry backoff policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestAPI(t)
			m := openAIConnector()
			action(m)["url"] = "https://${parameters.host}/v1/embeddings"
			m["parameters"].(map[string]any)["host"] = "api.openai.com"
			id := a.createConnector(t, m)
			before := string(a.store.connectors.Raw(id))
			wantError(t, a.do(t, http.MethodPut, connectorsPath+id, tt.body), tt.status, tt.errType, tt.reason)
			if after := string(a.store.connectors.Raw(id)); after != before {
				t.Errorf("refused update changed the stored connector:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

func TestUpdateConnectorUsedByDeployedModel(t *testing.T) {
	a := newTestAPI(t)
	id := a.createConnector(t, openAIConnector())
	deployed := a.registerModel(t, "deployed-model", id, "?deploy=true")
	a.registerModel(t, "registered-model", id, "") // not deployed: does not block

	wantError(t, a.do(t, http.MethodPut, connectorsPath+id, `{"description":"x"}`), 400, "status_exception",
		"1 models are still using this connector, please undeploy the models first: ["+deployed+"]")

	a.mustDo(t, http.MethodPost, modelsPath+deployed+"/_undeploy", "")
	a.mustDo(t, http.MethodPut, connectorsPath+id, `{"description":"x"}`)
	if got := storedConnector(t, a, id).Description; got != "x" {
		t.Errorf("got description %q after undeploy, want %q", got, "x")
	}
}

func TestUpdateConnectorUsedByStates(t *testing.T) {
	tests := []struct {
		state   string
		refused bool
	}{
		{indexstore.ModelDeployed, true}, {indexstore.ModelDeploying, true}, {indexstore.ModelPartiallyDeployed, true},
		{indexstore.ModelRegistered, false}, {indexstore.ModelUndeployed, false}, {indexstore.ModelDeployFailed, false},
	}
	for _, tt := range tests {
		t.Run(tt.state, func(t *testing.T) {
			a := newTestAPI(t)
			id := a.createConnector(t, openAIConnector())
			a.store.models.Put("m1", &indexstore.Model{Name: "m", Algorithm: indexstore.AlgorithmRemote, ModelState: tt.state, ConnectorID: id})
			a.store.models.Put("m2", &indexstore.Model{Name: "m", Algorithm: indexstore.AlgorithmRemote, ModelState: tt.state, ConnectorID: "other"})
			rec := a.do(t, http.MethodPut, connectorsPath+id, `{"description":"x"}`)
			if !tt.refused {
				if rec.Code != http.StatusOK {
					t.Errorf("got status %d, want 200; body %s", rec.Code, rec.Body)
				}
				return
			}
			wantError(t, rec, 400, "status_exception", "1 models are still using this connector, please undeploy the models first: [m1]")
		})
	}
}

// writeAttempts is indexstore's maxWriteAttempts: how often Modify writes
// before it gives up on conflicts.
const writeAttempts = 30

func TestUpdateConnectorRetriesConflicts(t *testing.T) {
	tests := []struct {
		name      string
		conflicts int
		status    int
	}{
		{"one conflict", 1, 200},
		{"three conflicts", 3, 200},
		// modify pauses between attempts, so this row takes seconds.
		{"conflicts on every attempt", writeAttempts, 409},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := newTestAPI(t)
			m := openAIConnector()
			m["parameters"] = map[string]any{"model": "ada"}
			id := a.createConnector(t, m)
			// Another writer changes the description each time, just before
			// this update's write.
			n := 0
			a.store.connectors.BeforeReplace = func(id string) error {
				if n == tt.conflicts {
					return nil
				}
				n++
				c := storedConnector(t, a, id)
				c.Description = "concurrent"
				c.Parameters["other"] = "written concurrently"
				a.store.connectors.Put(id, &c) // the Replace now holds a stale version
				return nil
			}
			rec := a.do(t, http.MethodPut, connectorsPath+id, `{"parameters":{"dimensions":"256"},"name":"renamed"}`)
			if rec.Code != tt.status {
				t.Fatalf("got status %d, want %d; body %s", rec.Code, tt.status, rec.Body)
			}
			if n != tt.conflicts {
				t.Errorf("got %d conflicting writes, want %d", n, tt.conflicts)
			}
			got := storedConnector(t, a, id)
			if tt.status != 200 {
				wantError(t, rec, 409, "version_conflict_engine_exception", "the document was changed by another request; retry")
				if got.Name == "renamed" {
					t.Errorf("refused update was stored")
				}
				return
			}
			// Nothing is lost: the other writer's changes and this update's.
			if got.Description != "concurrent" || got.Name != "renamed" {
				t.Errorf("got description %q, name %q; want %q, %q", got.Description, got.Name, "concurrent", "renamed")
			}
			want := map[string]string{"model": "ada", "other": "written concurrently", "dimensions": "256"}
			if diff := cmp.Diff(want, got.Parameters); diff != "" {
				t.Errorf("parameters mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDeleteConnector(t *testing.T) {
	a := newTestAPI(t)
	id := a.createConnector(t, openAIConnector())
	m1 := a.registerModel(t, "model-one", id, "")
	m2 := a.registerModel(t, "model-two", id, "")

	wantError(t, a.do(t, http.MethodDelete, connectorsPath+id, ""), 409, "status_exception",
		"2 models are still using this connector, please delete or update the models first: ["+m1+", "+m2+"]")

	a.mustDo(t, http.MethodDelete, modelsPath+m1, "")
	a.mustDo(t, http.MethodDelete, modelsPath+m2, "")
	res := a.mustDo(t, http.MethodDelete, connectorsPath+id, "")
	if res["_id"] != id || res["result"] != "deleted" {
		t.Errorf("got answer %v, want a DeleteResponse for %s with result deleted", res, id)
	}
	wantError(t, a.do(t, http.MethodGet, connectorsPath+id, ""), 404, "status_exception",
		"Failed to find connector with the provided connector id: "+id)
}
