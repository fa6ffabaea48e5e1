package e2e

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

// rawDoc reads one document's _source straight from the node.
func rawDoc(t *testing.T, index, id string) map[string]any {
	t.Helper()
	status, _, b := do(t, "GET", node.url()+"/"+index+"/_doc/"+id, nil, nil)
	if status != 200 {
		t.Fatalf("reading %s/%s from the node: %d %s", index, id, status, b)
	}
	var d struct {
		Source map[string]any `json:"_source"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	return d.Source
}

// putRaw writes a document straight to the node, visible to searches.
func putRaw(t *testing.T, index, id, doc string) {
	t.Helper()
	status, _, b := do(t, "PUT", node.url()+"/"+index+"/_doc/"+id+"?refresh=true", stringsReader(doc), map[string]string{"Content-Type": "application/json"})
	if status != 200 && status != 201 {
		t.Fatalf("writing %s/%s: %d %s", index, id, status, b)
	}
}

// searchAnswer sends a search to the sidecar and returns status and body,
// failing the test if the answer holds any of secrets.
func searchAnswer(t *testing.T, sc *sidecar, method, path, body string, secrets ...string) (int, map[string]any, string) {
	t.Helper()
	status, _, b := do(t, method, sc.url+path, stringsReader(body), map[string]string{"Content-Type": "application/json"})
	for _, s := range secrets {
		if s != "" && strings.Contains(string(b), s) {
			t.Errorf("%s %s %s: answer holds a secret (%.12s…): %s", method, path, body, s, b)
		}
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s %s: answer is not a JSON object: %v: %s", method, path, err, b)
	}
	return status, v, string(b)
}

// Given a sidecar with a connector, its master key in the config index, a
// batch task with bookkeeping and another index on the node, when a caller
// searches the ML indices with clauses that read other documents or
// secret fields (the attacks of issue 9), then each is a 400 naming the
// clause and no answer holds the master key, the credential ciphertext,
// the other index's data or the bookkeeping; and the searches OpenSearch
// Dashboards sends still answer 200 with their hits.
func TestTrustSearchConfusedDeputy(t *testing.T) {
	const prefix = ".e2e-tsearch-"
	const victim = "e2e-tsearch-victim"
	sc := startSidecar(t, "--index-prefix", prefix)

	connectorID := mustML(t, sc, 200, "POST", "/_plugins/_ml/connectors/_create", docConnector)["connector_id"].(string)
	masterKey, _ := rawDoc(t, prefix+"config", "master_key")["master_key"].(string)
	if len(masterKey) < 16 {
		t.Fatalf("master key document = %q, want the key the sidecar created", masterKey)
	}
	cipher, _ := rawDoc(t, prefix+"connectors", connectorID)["credential"].(map[string]any)["openAI_key"].(string)
	if !strings.HasPrefix(cipher, "mlsc1:") {
		t.Fatalf("stored credential = %q, want a ciphertext", cipher)
	}
	const victimSecret = "victim-secret-7f3a9c"
	putRaw(t, victim, "v1", `{"secret":"`+victimSecret+`"}`)
	// A batch task as the worker keeps it: the bookkeeping has doc values.
	const leaseOwner = "replica-lease-owner-5b1e"
	putRaw(t, prefix+"tasks", "tsearchtask00000001", `{"task_type":"BATCH_PREDICTION","function_name":"REMOTE","state":"COMPLETED",
		"is_async":true,"create_time":1700000000000,"last_update_time":1700000000000,"batch":{"provider":"openai","client_key":"client-key-9d2c","lease_owner":"`+leaseOwner+`","next_poll":1}}`) // not open: the worker leaves it alone
	secrets := []string{masterKey, cipher, strings.TrimPrefix(cipher, "mlsc1:"), victimSecret, leaseOwner, "client-key-9d2c", `"batch`}

	attacks := []struct{ name, route, body, reason string }{
		{"master key by terms lookup and profile", "connectors",
			`{"query":{"terms":{"name.keyword":{"index":"` + prefix + `config","id":"master_key","path":"master_key"}}},"profile":true}`, "[profile]"},
		{"master key by terms lookup from tasks", "tasks",
			`{"query":{"terms":{"task_type":{"index":"` + prefix + `config","id":"master_key","path":"master_key"}}},"profile":true}`, "[profile]"},
		{"master key by terms lookup alone", "model_groups",
			`{"query":{"terms":{"name.keyword":{"index":"` + prefix + `config","id":"master_key","path":"master_key"}}}}`, "terms lookup"},
		{"credential ciphertext by terms lookup and profile", "models",
			`{"query":{"bool":{"should":[{"terms":{"name.keyword":{"index":"` + prefix + `connectors","id":"` + connectorID + `","path":"credential.openAI_key"}}}]}},"profile":true}`, "[profile]"},
		{"credential ciphertext by terms lookup", "connectors",
			`{"query":{"terms":{"name.keyword":{"index":"` + prefix + `connectors","id":"` + connectorID + `","path":"credential.openAI_key"}}}}`, "terms lookup"},
		{"another index by terms lookup", "connectors",
			`{"query":{"terms":{"name.keyword":{"index":"` + victim + `","id":"v1","path":"secret"}}}}`, "terms lookup"},
		{"bookkeeping by docvalue_fields", "tasks", `{"docvalue_fields":["batch.*"]}`, "field [batch.*]"},
		{"bookkeeping by fields", "tasks", `{"fields":["*"]}`, "field [*]"},
		{"bookkeeping by an aggregation", "tasks", `{"size":0,"aggs":{"o":{"terms":{"field":"batch.lease_owner"}}}}`, "field [batch.lease_owner]"},
		{"explain", "connectors", `{"explain":true,"query":{"match_all":{}}}`, "[explain]"},
		{"hidden models by a global aggregation", "models", `{"size":0,"aggs":{"all":{"global":{},"aggs":{"t":{"top_hits":{}}}}}}`, "[global]"},
	}
	for _, tt := range attacks {
		t.Run(tt.name, func(t *testing.T) {
			status, v, raw := searchAnswer(t, sc, "POST", "/_plugins/_ml/"+tt.route+"/_search", tt.body, secrets...)
			if status != 400 {
				t.Fatalf("status %d, want 400: %s", status, raw)
			}
			wantError(t, v, 400, "illegal_argument_exception", tt.reason)
		})
	}

	// Parameters: the body in ?source= is checked like a body; q is a
	// query string the checker cannot read, refused as ML Commons does.
	lookup := url.QueryEscape(`{"query":{"terms":{"name.keyword":{"index":"` + prefix + `config","id":"master_key","path":"master_key"}}},"profile":true}`)
	for _, tt := range []struct{ name, path, reason string }{
		{"body in source", "/_plugins/_ml/connectors/_search?source_content_type=application/json&source=" + lookup, "[profile]"},
		{"q", "/_plugins/_ml/tasks/_search?q=batch.lease_owner:" + leaseOwner, "contains unrecognized parameter: [q]"},
		{"docvalue_fields", "/_plugins/_ml/tasks/_search?docvalue_fields=batch.provider", "contains unrecognized parameter: [docvalue_fields]"},
		{"search_pipeline", "/_plugins/_ml/connectors/_search?search_pipeline=p", "contains unrecognized parameter: [search_pipeline]"},
	} {
		t.Run("parameter "+tt.name, func(t *testing.T) {
			body := "{}" // a search needs a body or ?source= before its parameters are looked at
			if strings.Contains(tt.path, "source=") {
				body = ""
			}
			status, v, raw := searchAnswer(t, sc, "GET", tt.path, body, secrets...)
			if status != 400 {
				t.Fatalf("status %d, want 400: %s", status, raw)
			}
			wantError(t, v, 400, "illegal_argument_exception", tt.reason)
		})
	}

	// What Dashboards and clients send keeps working.
	modelID := mustML(t, sc, 200, "POST", "/_plugins/_ml/models/_register?deploy=true",
		`{"name":"tsearch OpenAI model","function_name":"remote","connector_id":"`+connectorID+`"}`)["model_id"].(string)
	allowed := []struct {
		route, body string
		hits        int
	}{
		{"connectors", `{"query":{"match_all":{}},"from":0,"size":50}`, 1},
		{"connectors", `{"_source":["credential","name"],"version":true,"seq_no_primary_term":true}`, 1},
		{"models", `{"query":{"bool":{"must":[{"terms":{"model_state":["DEPLOYED","PARTIALLY_DEPLOYED","DEPLOY_FAILED"]}},
			{"wildcard":{"name.keyword":{"value":"*OpenAI*","case_insensitive":true}}}],"must_not":{"exists":{"field":"chunk_number"}}}},
			"from":0,"size":50,"sort":[{"name.keyword":{"order":"asc"}}]}`, 1},
		{"models", `{"query":{"bool":{"must":[{"ids":{"values":["` + modelID + `"]}},{"term":{"algorithm":{"value":"REMOTE"}}},
			{"terms":{"connector_id.keyword":["` + connectorID + `"]}}],"must_not":[{"exists":{"field":"chunk_number"}}]}},
			"sort":[{"model_state":{"order":"desc"}}],"aggs":{"connector_names":{"terms":{"field":"connector.name.keyword","size":10000}}}}`, 1},
		{"models", `{"size":0,"query":{"bool":{"must":[{"match":{"name":"tsearch"}}],"must_not":{"exists":{"field":"chunk_number"}}}},
			"aggs":{"models":{"terms":{"field":"name.keyword","size":10000},"aggs":{"latest_version_hits":{"top_hits":{
			"sort":[{"created_time":{"order":"desc"}}],"size":1,"_source":["model_version","model_state","description","created_time"]}}}}}}`, 0},
		{"models", `{"size":0,"aggs":{"unique_connector_names":{"terms":{"field":"connector.name.keyword","size":100}}}}`, 0},
		{"model_groups", `{"query":{"match":{"name":"tsearch"}}}`, 1},
		{"tasks", `{"query":{"bool":{"filter":[{"term":{"task_type":"BATCH_PREDICTION"}},{"range":{"last_update_time":{"lte":"now"}}}]}},"size":100}`, 1},
		{"tasks", `{"query":{"bool":{"filter":[{"term":{"state":"COMPLETED"}},{"term":{"task_type":"BATCH_PREDICTION"}}]}},"docvalue_fields":["task_type"],"sort":[{"_id":"asc"}],"track_total_hits":true}`, 1},
	}
	for _, tt := range allowed {
		status, v, raw := searchAnswer(t, sc, "POST", "/_plugins/_ml/"+tt.route+"/_search?size=50&_source_excludes=description", tt.body, secrets...)
		if status != 200 {
			t.Errorf("%s %s: status %d, want 200: %s", tt.route, tt.body, status, raw)
			continue
		}
		if n := len(v["hits"].(map[string]any)["hits"].([]any)); tt.hits > 0 && n != tt.hits {
			t.Errorf("%s %s: %d hits, want %d: %s", tt.route, tt.body, n, tt.hits, raw)
		}
	}
}
