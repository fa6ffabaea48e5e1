package mlcommons

import (
	"encoding/json"
	"net/http"
	"runtime"
	"strings"

	"github.com/mlsidecar/mlsidecar/indexstore"
)

// stats answers GET /stats in ML Commons' shape: cluster-level counts, and
// this sidecar as the one node.
func (a *API) stats(r *http.Request) (any, error) {
	ctx := r.Context()
	models, err := a.store.Count(ctx, indexstore.Models, map[string]any{"match_all": map[string]any{}})
	if err != nil {
		return nil, err
	}
	connectors, err := a.store.Count(ctx, indexstore.Connectors, map[string]any{"match_all": map[string]any{}})
	if err != nil {
		return nil, err
	}
	deployed, err := a.store.Count(ctx, indexstore.Models, map[string]any{"term": map[string]any{"model_state": stateDeployed}})
	if err != nil {
		return nil, err
	}
	running, err := a.store.Count(ctx, indexstore.Tasks, map[string]any{"terms": map[string]any{"state": []string{taskCreated, taskRunning, taskCancelling}}})
	if err != nil {
		return nil, err
	}
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	heapPercent := 0
	if mem.Sys > 0 {
		heapPercent = int(mem.HeapAlloc * 100 / mem.Sys)
	}
	cluster := map[string]any{
		"ml_model_index_status":      "green",
		"ml_connector_index_status":  "green",
		"ml_config_index_status":     "green",
		"ml_task_index_status":       "green",
		"ml_controller_index_status": "non-existent",
		"ml_model_count":             models,
		"ml_connector_count":         connectors,
	}
	node := map[string]any{
		"ml_jvm_heap_usage":                heapPercent,
		"ml_executing_task_count":          running,
		"ml_request_count":                 a.requests.Load(),
		"ml_failure_count":                 a.failures.Load(),
		"ml_deployed_model_count":          deployed,
		"ml_circuit_breaker_trigger_count": 0,
	}
	if want := pathVar(r, "stat"); want != "" {
		keep := map[string]bool{}
		for _, s := range strings.Split(want, ",") {
			keep[strings.TrimSpace(s)] = true
		}
		for _, m := range []map[string]any{cluster, node} {
			for k := range m {
				if !keep[k] {
					delete(m, k)
				}
			}
		}
	}
	if n := pathVar(r, "node"); n != "" && n != "_all" && n != "_local" && !containsItem(n, a.nodeID) {
		node = nil
	}
	out := map[string]any{}
	for k, v := range cluster {
		out[k] = v
	}
	nodes := map[string]any{}
	if node != nil {
		nodes[a.nodeID] = node
	}
	out["nodes"] = nodes
	return out, nil
}

func containsItem(list, item string) bool {
	for _, s := range strings.Split(list, ",") {
		if strings.TrimSpace(s) == item {
			return true
		}
	}
	return false
}

// profile answers GET /profile[/models[/{id}]]: the deployed remote models,
// each served by this sidecar. view=model groups by model (what Dashboards
// reads), view=node (default) by node.
func (a *API) profile(r *http.Request) (any, error) {
	view := r.URL.Query().Get("view")
	if view != "" && view != "model" && view != "node" {
		return nil, illegalArg("Wrong view type: %s", view)
	}
	if strings.Contains(r.URL.Path, "/profile/tasks") {
		return map[string]any{}, nil
	}
	query := map[string]any{"terms": map[string]any{"model_state": []string{stateDeployed, statePartiallyDeploy}}}
	if id := pathVar(r, "id"); id != "" {
		query = map[string]any{"bool": map[string]any{"filter": []any{query, map[string]any{"ids": map[string]any{"values": []string{id}}}}}}
	}
	body, _ := json.Marshal(map[string]any{"query": query, "size": 1000, "_source": []string{"model_state"}})
	raw, err := a.store.Search(r.Context(), indexstore.Models, body, nil)
	if err != nil {
		return nil, err
	}
	var res struct {
		Hits struct {
			Hits []struct {
				ID     string `json:"_id"`
				Source struct {
					ModelState string `json:"model_state"`
				} `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, err
	}
	if len(res.Hits.Hits) == 0 {
		return map[string]any{}, nil
	}
	nodes := []string{a.nodeID}
	models := map[string]any{}
	for _, h := range res.Hits.Hits {
		perNode := map[string]any{"model_state": h.Source.ModelState, "predictor": "org.opensearch.ml.engine.algorithms.remote.RemoteModel"}
		if view == "model" {
			models[h.ID] = map[string]any{"target_worker_nodes": nodes, "worker_nodes": nodes, "nodes": map[string]any{a.nodeID: perNode}}
			continue
		}
		perNode["target_worker_nodes"], perNode["worker_nodes"] = nodes, nodes
		models[h.ID] = perNode
	}
	if view == "model" {
		return map[string]any{"models": models}, nil
	}
	return map[string]any{"nodes": map[string]any{a.nodeID: map[string]any{"models": models}}}, nil
}
