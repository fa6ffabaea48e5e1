package mlcommons

import (
	"net/http"
	"testing"
)

// The model document carries the fields ML Commons 2.19.6 writes for a
// remote model, as observed side by side (e2e/differential):
// auto_redeploy_retry_times from the first deploy on, model_id after an
// update, no last_registered_time or last_undeployed_time, and an inline
// connector without timestamps.
func TestModelDocumentAs219(t *testing.T) {
	a := newTestAPI(t)
	model := a.registerModel(t, "m", a.createConnector(t, openAIConnector()), "")
	inline := a.mustDo(t, http.MethodPost, registerPath, toJSON(t, map[string]any{
		"name": "inline", "function_name": "remote", "connector": openAIConnector()}))["model_id"].(string)
	get := func(id string) map[string]any { return a.mustDo(t, http.MethodGet, modelsPath+id, "") }
	has := func(doc map[string]any, key string) bool { _, ok := doc[key]; return ok }

	doc := get(model)
	for _, k := range []string{"last_registered_time", "auto_redeploy_retry_times", "model_id"} {
		if has(doc, k) {
			t.Errorf("registered model has %s: %v", k, doc)
		}
	}
	a.mustDo(t, http.MethodPost, modelsPath+model+"/_deploy", "")
	if doc = get(model); doc["auto_redeploy_retry_times"] != float64(0) {
		t.Errorf("deployed model: auto_redeploy_retry_times %v, want 0", doc["auto_redeploy_retry_times"])
	}
	a.mustDo(t, http.MethodPut, modelsPath+model, `{"description":"updated"}`)
	if doc = get(model); doc["model_id"] != model {
		t.Errorf("updated model: model_id %v, want %s", doc["model_id"], model)
	}
	a.mustDo(t, http.MethodPost, modelsPath+model+"/_undeploy", "")
	if doc = get(model); has(doc, "last_undeployed_time") || doc["auto_redeploy_retry_times"] != float64(0) {
		t.Errorf("undeployed model %v: want auto_redeploy_retry_times 0 and no last_undeployed_time", doc)
	}
	a.mustDo(t, http.MethodPut, modelsPath+inline, `{"connector":{"description":"new"}}`)
	c, _ := get(inline)["connector"].(map[string]any)
	if c == nil || has(c, "created_time") || has(c, "last_updated_time") {
		t.Errorf("inline connector %v: want one without timestamps", c)
	}
}
