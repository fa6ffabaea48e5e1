package e2e

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The connector of the ML Commons batch predict documentation, literally.
const docConnector = `{
  "name": "OpenAI Embedding model",
  "description": "OpenAI embedding model for testing offline batch",
  "version": "1",
  "protocol": "http",
  "parameters": {
    "model": "text-embedding-ada-002",
    "input_file_id": "<your input file id in OpenAI>",
    "endpoint": "/v1/embeddings"
  },
  "credential": {
    "openAI_key": "sk-e2e-SECRET-api-key-0123456789"
  },
  "actions": [
    {
      "action_type": "predict",
      "method": "POST",
      "url": "https://api.openai.com/v1/embeddings",
      "headers": {
        "Authorization": "Bearer ${credential.openAI_key}"
      },
      "request_body": "{ \"input\": ${parameters.input}, \"model\": \"${parameters.model}\" }",
      "pre_process_function": "connector.pre_process.openai.embedding",
      "post_process_function": "connector.post_process.openai.embedding"
    },
    {
      "action_type": "batch_predict",
      "method": "POST",
      "url": "https://api.openai.com/v1/batches",
      "headers": {
        "Authorization": "Bearer ${credential.openAI_key}"
      },
      "request_body": "{ \"input_file_id\": \"${parameters.input_file_id}\", \"endpoint\": \"${parameters.endpoint}\", \"completion_window\": \"24h\" }"
    },
    {
      "action_type": "batch_predict_status",
      "method": "GET",
      "url": "https://api.openai.com/v1/batches/${parameters.id}",
      "headers": {
        "Authorization": "Bearer ${credential.openAI_key}"
      }
    },
    {
      "action_type": "cancel_batch_predict",
      "method": "POST",
      "url": "https://api.openai.com/v1/batches/${parameters.id}/cancel",
      "headers": {
        "Authorization": "Bearer ${credential.openAI_key}"
      }
    }
  ]
}`

const docAPIKey = "sk-e2e-SECRET-api-key-0123456789"

// mlCall sends a JSON request to the sidecar and decodes the answer.
func mlCall(t *testing.T, sc *sidecar, method, path, body string) (int, map[string]any) {
	t.Helper()
	var rd *strings.Reader
	if body != "" {
		rd = strings.NewReader(body)
	} else {
		rd = strings.NewReader("")
	}
	status, _, b := do(t, method, sc.url+path, rd, map[string]string{"Content-Type": "application/json"})
	if strings.Contains(string(b), docAPIKey) {
		t.Fatalf("%s %s: answer contains the API key: %s", method, path, b)
	}
	var v map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s %s: answer is not a JSON object: %v: %s", method, path, err, b)
		}
	}
	return status, v
}

// mustML is mlCall that insists on wantStatus.
func mustML(t *testing.T, sc *sidecar, wantStatus int, method, path, body string) map[string]any {
	t.Helper()
	status, v := mlCall(t, sc, method, path, body)
	if status != wantStatus {
		t.Fatalf("%s %s: status %d, want %d: %v", method, path, status, wantStatus, v)
	}
	return v
}

// wantError checks an OpenSearch error envelope.
func wantError(t *testing.T, v map[string]any, status int, typ, reasonPart string) {
	t.Helper()
	e, _ := v["error"].(map[string]any)
	if e == nil || int(v["status"].(float64)) != status || e["type"] != typ || !strings.Contains(fmt.Sprint(e["reason"]), reasonPart) {
		t.Errorf("error = %v, want status %d type %s reason containing %q", v, status, typ, reasonPart)
	}
	if rc, _ := e["root_cause"].([]any); len(rc) != 1 {
		t.Errorf("root_cause = %v, want one cause", e["root_cause"])
	}
}

// rawIndexDocs reads a sidecar index directly from the node.
func rawIndexDocs(t *testing.T, index string) string {
	t.Helper()
	status, _, b := do(t, "GET", node.url()+"/"+index+"/_search?size=100&expand_wildcards=all", nil, nil)
	if status != 200 {
		t.Fatalf("reading %s from the node: %d %s", index, status, b)
	}
	return string(b)
}

// Given a sidecar, when the documentation's connector is created, read,
// searched and used for a model registered with ?deploy=true, then every
// answer has ML Commons' shape, the model is DEPLOYED, the API key is stored
// only encrypted and never shown.
func TestMLCommonsControlPlane(t *testing.T) {
	const prefix = ".e2e-cp-"
	sc := startSidecar(t, "--index-prefix", prefix)

	created := mustML(t, sc, 200, "POST", "/_plugins/_ml/connectors/_create", docConnector)
	connectorID, _ := created["connector_id"].(string)
	if len(connectorID) < 10 || len(created) != 1 {
		t.Fatalf("create answer = %v, want {connector_id}", created)
	}

	got := mustML(t, sc, 200, "GET", "/_plugins/_ml/connectors/"+connectorID, "")
	if _, ok := got["credential"]; ok {
		t.Errorf("GET connector shows credential: %v", got)
	}
	if got["name"] != "OpenAI Embedding model" || got["protocol"] != "http" || got["version"] != "1" {
		t.Errorf("GET connector = %v", got)
	}
	actions, _ := got["actions"].([]any)
	if len(actions) != 4 || actions[0].(map[string]any)["action_type"] != "PREDICT" ||
		actions[3].(map[string]any)["action_type"] != "CANCEL_BATCH_PREDICT" {
		t.Errorf("actions = %v, want 4 with upper-case types", actions)
	}
	if h := actions[0].(map[string]any)["headers"].(map[string]any)["Authorization"]; h != "Bearer ${credential.openAI_key}" {
		t.Errorf("header template = %v, want it unresolved", h)
	}
	if _, ok := got["connector_id"]; ok {
		t.Errorf("GET connector has connector_id in the body")
	}

	// Found by _search, whatever _source filter asks for.
	for _, body := range []string{`{"query":{"match_all":{}},"from":0,"size":50}`, `{"_source":["credential","name"]}`, `{"_source":{"includes":["credential.*"]}}`} {
		res := mustML(t, sc, 200, "POST", "/_plugins/_ml/connectors/_search", body)
		hits := res["hits"].(map[string]any)["hits"].([]any)
		if len(hits) != 1 || hits[0].(map[string]any)["_id"] != connectorID {
			t.Errorf("search %s: hits %v", body, hits)
		}
		if src, ok := hits[0].(map[string]any)["_source"].(map[string]any); ok {
			if _, has := src["credential"]; has {
				t.Errorf("search %s shows credential", body)
			}
		}
	}
	res := mustML(t, sc, 400, "POST", "/_plugins/_ml/connectors/_search", `{"script_fields":{"k":{"script":"params._source.credential"}}}`)
	wantError(t, res, 400, "illegal_argument_exception", "scripts")

	// The API key is stored only as ciphertext.
	raw := rawIndexDocs(t, prefix+"connectors")
	if strings.Contains(raw, docAPIKey) || !strings.Contains(raw, `"openAI_key":"mlsc1:`) {
		t.Errorf("stored connector does not hold the key encrypted: %s", raw)
	}

	reg := mustML(t, sc, 200, "POST", "/_plugins/_ml/models/_register?deploy=true", `{
	  "name": "OpenAI model for realtime embedding and offline batch inference",
	  "function_name": "remote",
	  "description": "OpenAI text embedding model",
	  "connector_id": "`+connectorID+`"}`)
	modelID, _ := reg["model_id"].(string)
	taskID, _ := reg["task_id"].(string)
	if modelID == "" || taskID == "" || reg["status"] != "CREATED" || len(reg) != 3 {
		t.Fatalf("register answer = %v, want {task_id, status CREATED, model_id}", reg)
	}
	model := mustML(t, sc, 200, "GET", "/_plugins/_ml/models/"+modelID, "")
	if model["model_state"] != "DEPLOYED" || model["algorithm"] != "REMOTE" || model["connector_id"] != connectorID || model["model_version"] != "1" {
		t.Errorf("model = %v, want DEPLOYED REMOTE version 1", model)
	}
	task := mustML(t, sc, 200, "GET", "/_plugins/_ml/tasks/"+taskID, "")
	if task["state"] != "COMPLETED" || task["task_type"] != "REGISTER_MODEL" || task["model_id"] != modelID || task["function_name"] != "REMOTE" {
		t.Errorf("register task = %v", task)
	}
	groupID, _ := model["model_group_id"].(string)
	group := mustML(t, sc, 200, "GET", "/_plugins/_ml/model_groups/"+groupID, "")
	if group["name"] != model["name"] || group["latest_version"].(float64) != 1 || group["access"] != "public" {
		t.Errorf("auto-created group = %v", group)
	}

	// The queries OpenSearch Dashboards' Machine Learning page sends.
	dashboards := []string{
		`{"query":{"bool":{"must":[{"terms":{"model_state":["DEPLOYED","PARTIALLY_DEPLOYED","DEPLOY_FAILED"]}},
		  {"wildcard":{"name.keyword":{"value":"*OpenAI*","case_insensitive":true}}}],
		  "must_not":{"exists":{"field":"chunk_number"}}}},"from":0,"size":50,"sort":[{"name.keyword":{"order":"asc"}}]}`,
		`{"query":{"bool":{"must":[{"term":{"_id":"` + modelID + `"}},{"term":{"algorithm":"REMOTE"}},
		  {"terms":{"connector_id.keyword":["` + connectorID + `"]}}],"must_not":[{"exists":{"field":"chunk_number"}}]}},
		  "sort":[{"model_state":{"order":"desc"}}],"aggs":{"connector_names":{"terms":{"field":"connector.name.keyword","size":10000}}}}`,
	}
	for _, q := range dashboards {
		res := mustML(t, sc, 200, "POST", "/_plugins/_ml/models/_search", q)
		hits := res["hits"].(map[string]any)["hits"].([]any)
		if len(hits) != 1 || hits[0].(map[string]any)["_id"] != modelID {
			t.Errorf("Dashboards query %s: hits %v", q, hits)
		}
	}
	profile := mustML(t, sc, 200, "GET", "/_plugins/_ml/profile/models/"+modelID+"?view=model", "")
	if _, ok := profile["models"].(map[string]any)[modelID]; !ok {
		t.Errorf("profile = %v, want the deployed model", profile)
	}
	stats := mustML(t, sc, 200, "GET", "/_plugins/_ml/stats", "")
	if stats["ml_model_count"].(float64) != 1 || stats["ml_connector_count"].(float64) != 1 {
		t.Errorf("stats = %v", stats)
	}

	// Guards while the model is deployed and references the connector.
	wantError(t, mustML(t, sc, 400, "PUT", "/_plugins/_ml/connectors/"+connectorID, `{"description":"x"}`),
		400, "status_exception", "1 models are still using this connector, please undeploy the models first: ["+modelID+"]")
	wantError(t, mustML(t, sc, 409, "DELETE", "/_plugins/_ml/connectors/"+connectorID, ""),
		409, "status_exception", "1 models are still using this connector, please delete or update the models first")
	wantError(t, mustML(t, sc, 400, "DELETE", "/_plugins/_ml/models/"+modelID, ""),
		400, "status_exception", "Model cannot be deleted in deploying or deployed state")
	wantError(t, mustML(t, sc, 409, "DELETE", "/_plugins/_ml/model_groups/"+groupID, ""),
		409, "status_exception", "Cannot delete the model group when it has associated model versions")

	undeploy := mustML(t, sc, 200, "POST", "/_plugins/_ml/models/"+modelID+"/_undeploy", "")
	if fmt.Sprint(undeploy) == "map[]" {
		t.Errorf("undeploy answer = %v, want the node's stats", undeploy)
	}
	// Update merges parameters key by key and replaces actions.
	upd := mustML(t, sc, 200, "PUT", "/_plugins/_ml/connectors/"+connectorID,
		`{"parameters":{"model":"text-embedding-3-large","extra":{"a":1}},"description":"updated"}`)
	if upd["result"] != "updated" || upd["_id"] != connectorID {
		t.Errorf("update answer = %v", upd)
	}
	got = mustML(t, sc, 200, "GET", "/_plugins/_ml/connectors/"+connectorID, "")
	params := got["parameters"].(map[string]any)
	if params["model"] != "text-embedding-3-large" || params["endpoint"] != "/v1/embeddings" || params["extra"] != `{"a":1}` || got["description"] != "updated" {
		t.Errorf("after update: %v", got)
	}

	mustML(t, sc, 200, "DELETE", "/_plugins/_ml/models/"+modelID, "")
	mustML(t, sc, 200, "DELETE", "/_plugins/_ml/tasks/"+taskID, "")
	mustML(t, sc, 200, "DELETE", "/_plugins/_ml/connectors/"+connectorID, "")
	mustML(t, sc, 200, "DELETE", "/_plugins/_ml/model_groups/"+groupID, "")
	wantError(t, mustML(t, sc, 404, "GET", "/_plugins/_ml/connectors/"+connectorID, ""),
		404, "status_exception", "Failed to find connector with the provided connector id: "+connectorID)
}

// Given a sidecar, when clients make the usual mistakes, then each gets an
// OpenSearch error with ML Commons' type and reason and a 4xx status.
func TestMLCommonsErrors(t *testing.T) {
	sc := startSidecar(t, "--index-prefix", ".e2e-err-", "--max-request-body-bytes", "4096")
	untrusted := strings.Replace(docConnector, "https://api.openai.com/v1/batches\"", "https://evil.example.com/v1/batches\"", 1)
	metadata := strings.Replace(docConnector, "https://api.openai.com/v1/embeddings", "http://169.254.169.254/latest/meta-data", 1)
	tests := []struct {
		name, method, path, body string
		status                   int
		typ, reason              string
	}{
		{"untrusted URL", "POST", "/_plugins/_ml/connectors/_create", untrusted, 400, "illegal_argument_exception",
			"Connector URL is not matching the trusted connector endpoint regex, URL is: https://evil.example.com/v1/batches"},
		{"metadata address URL", "POST", "/_plugins/_ml/connectors/_create", metadata, 400, "illegal_argument_exception",
			"Connector URL is not matching the trusted connector endpoint regex"},
		{"bad action type", "POST", "/_plugins/_ml/connectors/_create",
			strings.Replace(docConnector, `"action_type": "batch_predict_status"`, `"action_type": "foo"`, 1), 400,
			"illegal_argument_exception", "No enum constant org.opensearch.ml.common.connector.ConnectorAction.ActionType.FOO"},
		{"bad protocol", "POST", "/_plugins/_ml/connectors/_create", strings.Replace(docConnector, `"protocol": "http"`, `"protocol": "ftp"`, 1),
			400, "illegal_argument_exception", "Unsupported connector protocol"},
		{"sigv4 without region", "POST", "/_plugins/_ml/connectors/_create", `{"name":"b","version":"1","protocol":"aws_sigv4",
			"credential":{"access_key":"a","secret_key":"s"},"parameters":{"service_name":"bedrock"},
			"actions":[{"action_type":"predict","method":"POST","url":"https://bedrock-runtime.us-east-1.amazonaws.com/model/x/invoke"}]}`,
			400, "illegal_argument_exception", "Missing region"},
		{"no credential", "POST", "/_plugins/_ml/connectors/_create", `{"name":"n","version":"1","protocol":"http","actions":[]}`,
			400, "illegal_argument_exception", "Connector credential is null or empty list"},
		{"painless script", "POST", "/_plugins/_ml/connectors/_create",
			strings.Replace(docConnector, `"connector.pre_process.openai.embedding"`, `"return params.text_docs;"`, 1),
			400, "illegal_argument_exception", "connector.pre_process.openai.embedding"},
		{"malformed JSON", "POST", "/_plugins/_ml/connectors/_create", `{"name": `, 400, "parse_exception", "Failed to parse request body"},
		{"body too large", "POST", "/_plugins/_ml/connectors/_create", `{"name":"` + strings.Repeat("x", 5000) + `"}`, 413, "content_too_long_exception", "4096"},
		{"unknown connector", "GET", "/_plugins/_ml/connectors/nope", "", 404, "status_exception", "Failed to find connector with the provided connector id: nope"},
		{"unknown model", "GET", "/_plugins/_ml/models/nope", "", 404, "status_exception", "Failed to find model with the provided model id: nope"},
		{"unknown task", "GET", "/_plugins/_ml/tasks/nope", "", 404, "status_exception", "Failed to find task"},
		{"unknown group", "GET", "/_plugins/_ml/model_groups/nope", "", 404, "status_exception", "Failed to find model group with the provided model group id: nope"},
		{"register without connector", "POST", "/_plugins/_ml/models/_register", `{"name":"m","function_name":"remote"}`,
			400, "illegal_argument_exception", "You must provide connector content when creating a remote model without connector id!"},
		{"register with unknown connector", "POST", "/_plugins/_ml/models/_register", `{"name":"m","function_name":"remote","connector_id":"nope"}`,
			404, "status_exception", "Failed to find connector:nope"},
		{"register without name", "POST", "/_plugins/_ml/models/_register", `{"function_name":"remote","connector_id":"x"}`,
			400, "illegal_argument_exception", "model name is null"},
		{"update connector with empty body", "PUT", "/_plugins/_ml/connectors/x", "", 400, "parse_exception", "Failed to update connector: Request body is empty"},
		{"deploy with node ids", "POST", "/_plugins/_ml/models/x/_deploy", `{"node_ids":["n"]}`, 400, "illegal_argument_exception", "Don't allow custom deployment plan"},
		{"undeploy without ids", "POST", "/_plugins/_ml/models/_undeploy", `{}`, 400, "illegal_argument_exception", "Must set specific model ids to undeploy"},
		{"access control on a cluster without it", "POST", "/_plugins/_ml/model_groups/_register", `{"name":"g","access_mode":"private"}`,
			400, "illegal_argument_exception", "You cannot specify model access control parameters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, v := mlCall(t, sc, tt.method, tt.path, tt.body)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %v", status, tt.status, v)
			}
			wantError(t, v, tt.status, tt.typ, tt.reason)
		})
	}

	// A model group name is unique.
	g := mustML(t, sc, 200, "POST", "/_plugins/_ml/model_groups/_register", `{"name":"unique-group","description":"d"}`)
	wantError(t, mustML(t, sc, 400, "POST", "/_plugins/_ml/model_groups/_register", `{"name":"unique-group"}`),
		400, "illegal_argument_exception", "The name you provided is already being used by a model group with ID: "+g["model_group_id"].(string))
	if u := mustML(t, sc, 200, "PUT", "/_plugins/_ml/model_groups/"+g["model_group_id"].(string), `{"description":"new"}`); u["status"] != "Updated" {
		t.Errorf("group update = %v", u)
	}
	// Wrong method on a known path: 405 as OpenSearch answers.
	status, v := mlCall(t, sc, "DELETE", "/_plugins/_ml/stats", ``)
	if status != http.StatusMethodNotAllowed || v["error"] != "Incorrect HTTP method for uri [/_plugins/_ml/stats] and method [DELETE], allowed: [GET]" {
		t.Errorf("DELETE stats: %d %v, want 405 allowed: [GET]", status, v)
	}
}

func newKey(t *testing.T, id string) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return id + ":" + base64.StdEncoding.EncodeToString(b)
}

func writeKeys(t *testing.T, lines ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Given connectors encrypted with an old key, when the key file gains a new
// key, then old connectors still deploy, new credentials use the new key,
// and a sidecar that lost the old key cannot use the old ones.
func TestMasterKeyRotation(t *testing.T) {
	const prefix = ".e2e-rot-"
	k1, k2 := newKey(t, "k1"), newKey(t, "k2")

	old := startSidecar(t, "--index-prefix", prefix, "--master-key-file", writeKeys(t, k1))
	oldConn := mustML(t, old, 200, "POST", "/_plugins/_ml/connectors/_create", docConnector)["connector_id"].(string)
	old.stop(t)

	rotated := startSidecar(t, "--index-prefix", prefix, "--master-key-file", writeKeys(t, k1, k2))
	reg := mustML(t, rotated, 200, "POST", "/_plugins/_ml/models/_register?deploy=true",
		`{"name":"rotation","function_name":"remote","connector_id":"`+oldConn+`"}`)
	if m := mustML(t, rotated, 200, "GET", "/_plugins/_ml/models/"+reg["model_id"].(string), ""); m["model_state"] != "DEPLOYED" {
		t.Errorf("model on an old-key connector = %v, want DEPLOYED", m["model_state"])
	}
	newConn := mustML(t, rotated, 200, "POST", "/_plugins/_ml/connectors/_create", docConnector)["connector_id"].(string)
	raw := rawIndexDocs(t, prefix+"connectors")
	if !strings.Contains(raw, `"openAI_key":"mlsc1:k1:`) || !strings.Contains(raw, `"openAI_key":"mlsc1:k2:`) {
		t.Errorf("want one credential under k1 and one under k2: %s", raw)
	}
	rotated.stop(t)

	onlyNew := startSidecar(t, "--index-prefix", prefix, "--master-key-file", writeKeys(t, k2))
	reg2 := mustML(t, onlyNew, 200, "POST", "/_plugins/_ml/models/_register",
		`{"name":"rotation-new","function_name":"remote","connector_id":"`+newConn+`"}`)
	mustML(t, onlyNew, 200, "POST", "/_plugins/_ml/models/"+reg2["model_id"].(string)+"/_deploy", "")
	regOld := mustML(t, onlyNew, 200, "POST", "/_plugins/_ml/models/_register",
		`{"name":"rotation-old","function_name":"remote","connector_id":"`+oldConn+`"}`)
	status, v := mlCall(t, onlyNew, "POST", "/_plugins/_ml/models/"+regOld["model_id"].(string)+"/_deploy", "")
	if status < 400 || !strings.Contains(fmt.Sprint(v), "cannot decrypt") {
		t.Errorf("deploy without the old key: %d %v, want a decrypt failure", status, v)
	}
	if strings.Contains(onlyNew.logs.String(), docAPIKey) {
		t.Error("logs contain the API key")
	}
}

// Given one connector, when 20 clients update different parameters at once,
// then optimistic concurrency retries and no update is lost.
func TestConcurrentConnectorUpdatesLoseNothing(t *testing.T) {
	sc := startSidecar(t, "--index-prefix", ".e2e-occ-")
	id := mustML(t, sc, 200, "POST", "/_plugins/_ml/connectors/_create", docConnector)["connector_id"].(string)
	const n = 20
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			status, _, b := do(t, "PUT", sc.url+"/_plugins/_ml/connectors/"+id,
				strings.NewReader(fmt.Sprintf(`{"parameters":{"k%d":"v%d"}}`, i, i)), map[string]string{"Content-Type": "application/json"})
			if status != 200 {
				errs <- fmt.Errorf("update %d: %d %s", i, status, b)
				return
			}
			errs <- nil
		}()
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	params := mustML(t, sc, 200, "GET", "/_plugins/_ml/connectors/"+id, "")["parameters"].(map[string]any)
	for i := 0; i < n; i++ {
		if params[fmt.Sprintf("k%d", i)] != fmt.Sprintf("v%d", i) {
			t.Errorf("parameter k%d lost: %v", i, params)
		}
	}
}
