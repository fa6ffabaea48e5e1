package mlcommons

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/remote"
)

// secretKeys finds, anywhere in a JSON value, the keys no answer may hold:
// the stored credential and the sidecar's batch bookkeeping.
func secretKeys(v any, path string, found *[]string) {
	switch t := v.(type) {
	case map[string]any:
		for k, child := range t {
			if k == "credential" || k == "batch" {
				*found = append(*found, path+"."+k)
			}
			secretKeys(child, path+"."+k, found)
		}
	case []any:
		for _, child := range t {
			secretKeys(child, path+"[]", found)
		}
	}
}

// batchConnector is openAIConnector with OpenAI's batch action.
func batchConnector() map[string]any {
	m := openAIConnector()
	m["actions"] = append(m["actions"].([]any), map[string]any{
		"action_type": "batch_predict", "method": "POST", "url": "https://api.openai.com/v1/batches",
		"request_body": `{ "input_file_id": "${parameters.input_file_id}", "endpoint": "/v1/embeddings", "completion_window": "24h" }`,
	})
	return m
}

// TestAnswersHoldNoSecrets checks the wire types: what GET and _search
// answer never holds a credential — in clear or encrypted — nor batch
// bookkeeping, while what is stored holds the ciphertext.
func TestAnswersHoldNoSecrets(t *testing.T) {
	var mu sync.Mutex
	var calls []remote.Call
	provider := func(_ context.Context, c remote.Call) (*remote.Response, error) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, c)
		status := "validating"
		if c.Method == http.MethodGet {
			status = "in_progress"
		}
		body, err := json.Marshal(map[string]any{"id": "batch_abc", "object": "batch", "status": status})
		return &remote.Response{StatusCode: http.StatusOK, Body: body}, err
	}
	a := newTestAPIWith(t, testOptions{remote: provider})
	conn := a.createConnector(t, batchConnector())
	byID := a.registerModel(t, "by-id", conn, "?deploy=true")
	inline := a.mustDo(t, http.MethodPost, registerPath, toJSON(t, map[string]any{
		"name": "inline", "function_name": "remote", "connector": batchConnector()}))["model_id"].(string)
	sub := a.mustDo(t, http.MethodPost, modelsPath+byID+"/_batch_predict", `{"parameters":{"input_file_id":"file-1"}}`)
	taskID, _ := sub["task_id"].(string)
	if taskID == "" {
		t.Fatalf("batch predict answered %v, want a task_id", sub)
	}

	// The provider got the key; the store only its ciphertext.
	mu.Lock()
	if len(calls) != 1 || calls[0].Headers["Authorization"] != "Bearer "+openAIKey {
		t.Errorf("got provider calls %+v, want one batch call with the decrypted key", calls)
	}
	mu.Unlock()
	stored := []struct {
		name       string
		raw        json.RawMessage
		credential func(json.RawMessage) map[string]string
	}{
		{"connector", a.store.connectors.Raw(conn), func(raw json.RawMessage) map[string]string {
			return decodeRaw[indexstore.Connector](t, "connector", raw).Credential
		}},
		{"inline model", a.store.models.Raw(inline), func(raw json.RawMessage) map[string]string {
			if m := decodeRaw[indexstore.Model](t, "model", raw); m.Connector != nil {
				return m.Connector.Credential
			}
			return nil
		}},
		{"batch task", a.store.tasks.Raw(taskID), func(raw json.RawMessage) map[string]string {
			if task := decodeRaw[indexstore.Task](t, "task", raw); task.Batch != nil && task.Batch.Connector != nil {
				return task.Batch.Connector.Credential
			}
			return nil
		}},
	}
	for _, s := range stored {
		t.Run("stored "+s.name, func(t *testing.T) {
			if strings.Contains(string(s.raw), openAIKey) {
				t.Errorf("stored %s holds the plaintext: %s", s.name, s.raw)
			}
			cred := s.credential(s.raw)
			if !strings.HasPrefix(cred["openAI_key"], "mlsc1:") {
				t.Fatalf("got stored credential %v, want an mlsc1: ciphertext; document %s", cred, s.raw)
			}
			plain, err := a.keys.DecryptMap(cred)
			if err != nil || plain["openAI_key"] != openAIKey {
				t.Errorf("stored credential decrypts to %v, %v; want the key", plain, err)
			}
		})
	}

	answers := []struct {
		name, method, path, body string
	}{
		{"GET connector", http.MethodGet, connectorsPath + conn, ""},
		{"GET model by connector id", http.MethodGet, modelsPath + byID, ""},
		{"GET model with an inline connector", http.MethodGet, modelsPath + inline, ""},
		{"GET batch task", http.MethodGet, tasksPath + taskID, ""},
		{"search connectors", http.MethodPost, connectorsPath + "_search", `{"_source":["credential","name"]}`},
		{"search models", http.MethodGet, modelsPath + "_search", "{}"},
		{"search tasks", http.MethodPost, tasksPath + "_search", `{"query":{"term":{"task_type":"BATCH_PREDICTION"}}}`},
		{"update connector", http.MethodPut, connectorsPath + conn, `{"credential":{"openAI_key":"` + openAIKey + `"}}`},
	}
	for _, tt := range answers {
		t.Run(tt.name, func(t *testing.T) {
			if tt.method == http.MethodPut {
				a.mustDo(t, http.MethodPost, modelsPath+byID+"/_undeploy", "")
			}
			rec := a.do(t, tt.method, tt.path, tt.body)
			if rec.Code != http.StatusOK {
				t.Fatalf("got status %d, want 200; body %s", rec.Code, rec.Body)
			}
			if out := rec.Body.String(); strings.Contains(out, openAIKey) || strings.Contains(out, "mlsc1:") {
				t.Errorf("answer holds the credential: %s", out)
			}
			var found []string
			secretKeys(decodeAnswer(t, rec), "", &found)
			if len(found) > 0 {
				t.Errorf("answer has keys %v; body %s", found, rec.Body)
			}
		})
	}

	t.Run("searches saw the stored secrets", func(t *testing.T) {
		// The fake answers every stored document: the strip above was
		// the handler's doing, not the query's.
		for _, raw := range []json.RawMessage{a.store.connectors.Raw(conn), a.store.tasks.Raw(taskID)} {
			var found []string
			var doc any
			if err := json.Unmarshal(raw, &doc); err != nil {
				t.Fatal(err)
			}
			secretKeys(doc, "", &found)
			if len(found) == 0 {
				t.Errorf("stored document %s has no credential or batch key", raw)
			}
		}
	})
	t.Run("GET task refreshed from the provider", func(t *testing.T) {
		got := a.mustDo(t, http.MethodGet, tasksPath+taskID, "")
		job, _ := got["remote_job"].(map[string]any)
		if got["state"] != indexstore.TaskRunning || job["status"] != "in_progress" {
			t.Errorf("got task %v, want RUNNING with the provider's in_progress status", got)
		}
	})
}
