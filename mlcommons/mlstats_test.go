package mlcommons

import (
	"net/http"
	"testing"
)

// stats' algorithms and models maps and profile's duration summaries count
// what this replica served, as ML Commons' node stats do.
func TestActionStats(t *testing.T) {
	doer, _ := providerOf(t)
	a := newTestAPIWith(t, testOptions{remote: doer})
	model := a.registerModel(t, "m", a.createConnector(t, batchConnector()), "")
	a.mustDo(t, http.MethodPost, modelsPath+model+"/_deploy", ``)
	a.mustDo(t, http.MethodPost, modelsPath+model+"/_predict", `{"parameters":{"input":["x"]}}`)
	a.mustDo(t, http.MethodPost, modelsPath+model+"/_predict", `{"parameters":{"input":["y"]}}`)
	if rec := a.do(t, http.MethodPost, modelsPath+model+"/_predict", `{"action_type":"batch_predict","parameters":{"input_file_id":"f"}}`); rec.Code != 200 {
		t.Fatalf("batch predict: %d %s", rec.Code, rec.Body)
	}
	if rec := a.do(t, http.MethodPost, modelsPath+"nope/_predict", `{"parameters":{}}`); rec.Code != 404 {
		t.Fatalf("predict of an unknown model: %d %s", rec.Code, rec.Body)
	}

	stats := a.mustDo(t, http.MethodGet, "/_plugins/_ml/stats", ``)
	node := stats["nodes"].(map[string]any)[testNodeID].(map[string]any)
	want := map[string]any{
		"register":      map[string]any{"ml_action_request_count": 1},
		"deploy":        map[string]any{"ml_action_request_count": 1},
		"predict":       map[string]any{"ml_action_request_count": 3, "ml_action_failure_count": 1},
		"batch_predict": map[string]any{"ml_action_request_count": 1},
	}
	if got := node["algorithms"].(map[string]any)["remote"]; !jsonEqual(got, want) {
		t.Errorf("algorithms.remote = %v, want %v", got, want)
	}
	models := node["models"].(map[string]any)
	wantModel := map[string]any{
		"deploy":        map[string]any{"ml_action_request_count": 1},
		"predict":       map[string]any{"ml_action_request_count": 2},
		"batch_predict": map[string]any{"ml_action_request_count": 1},
	}
	if got := models[model]; !jsonEqual(got, wantModel) {
		t.Errorf("models[%s] = %v, want %v", model, got, wantModel)
	}
	// An unknown model is counted for the algorithm only, as in ML Commons.
	if got, ok := models["nope"]; ok {
		t.Errorf("models[nope] = %v, want no entry", got)
	}
	// A stat named in the path leaves the maps out, as ML Commons does.
	one := a.mustDo(t, http.MethodGet, "/_plugins/_ml/stats/ml_request_count", ``)
	if _, ok := one["nodes"].(map[string]any)[testNodeID].(map[string]any)["algorithms"]; ok {
		t.Errorf("stats/ml_request_count answered algorithms: %v", one)
	}

	prof := a.mustDo(t, http.MethodGet, "/_plugins/_ml/profile/models/"+model, ``)
	entry := prof["nodes"].(map[string]any)[testNodeID].(map[string]any)["models"].(map[string]any)[model].(map[string]any)
	for _, k := range []string{"model_inference_stats", "predict_request_stats"} {
		s, ok := entry[k].(map[string]any)
		if !ok || s["count"] != float64(2) {
			t.Errorf("profile %s = %v, want a summary of 2 predictions", k, entry[k])
			continue
		}
		for _, f := range []string{"max", "min", "average", "p50", "p90", "p99"} {
			if _, ok := s[f].(float64); !ok {
				t.Errorf("profile %s.%s = %v, want a number", k, f, s[f])
			}
		}
	}
}

// Guava's Quantiles.percentiles() interpolates at p×(n−1)/100.
func TestPercentile(t *testing.T) {
	sorted := []float64{1, 2, 3, 4, 10}
	for p, want := range map[int]float64{50: 3, 90: 7.6, 99: 9.76, 0: 1, 100: 10} {
		if got := percentile(sorted, p); got < want-1e-9 || got > want+1e-9 {
			t.Errorf("p%d = %v, want %v", p, got, want)
		}
	}
	if got := percentile([]float64{5}, 99); got != 5 {
		t.Errorf("p99 of one value = %v, want 5", got)
	}
}

// A stat named in the path: cluster stats alone answer without nodes, the
// model count with the connector count, an unknown name is a 400.
func TestStatsNamed(t *testing.T) {
	a := newTestAPI(t)
	a.createConnector(t, openAIConnector())
	got := a.mustDo(t, http.MethodGet, "/_plugins/_ml/stats/ml_model_count", ``)
	if len(got) != 2 || got["ml_model_count"] != float64(0) || got["ml_connector_count"] != float64(1) {
		t.Errorf("stats/ml_model_count = %v, want ml_model_count and ml_connector_count only", got)
	}
	got = a.mustDo(t, http.MethodGet, "/_plugins/_ml/stats/ML_REQUEST_COUNT,ml_connector_count", ``)
	node, _ := got["nodes"].(map[string]any)[testNodeID].(map[string]any)
	if len(got) != 2 || len(node) != 1 || node["ml_request_count"] != float64(0) {
		t.Errorf("stats/ML_REQUEST_COUNT,ml_connector_count = %v", got)
	}
	wantError(t, a.do(t, http.MethodGet, "/_plugins/_ml/stats/nope", ``), 400, "illegal_argument_exception", "Wrong ML cluster level stat")
}
