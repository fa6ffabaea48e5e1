package mlcommons

import (
	"net/http"
	"runtime"
	"strings"

	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

// stats answers GET /stats in ML Commons' shape: cluster-level counts, and
// this sidecar as the one node.
func (a *API) stats(r *http.Request) (any, error) {
	counts, err := a.store.CountAll(r.Context())
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
		"ml_model_count":             counts.Models,
		"ml_connector_count":         counts.Connectors,
	}
	node := map[string]any{
		"ml_jvm_heap_usage":                heapPercent,
		"ml_executing_task_count":          counts.OpenTasks,
		"ml_request_count":                 a.requests.Load(),
		"ml_failure_count":                 a.failures.Load(),
		"ml_deployed_model_count":          counts.DeployedModels,
		"ml_circuit_breaker_trigger_count": 0,
	}
	if pathVar(r, "stat") == "" {
		// Per replica, as ML Commons' are per node.
		node["algorithms"] = a.mlstats.actions(false)
		node["models"] = a.mlstats.actions(true)
	}
	if want := pathVar(r, "stat"); want != "" {
		// As ML Commons: each name is a node or else a cluster stat; the
		// node section is left out when no node stat is asked for, and the
		// model count comes with the connector count.
		keep := map[string]bool{}
		nodeAsked := false
		for _, s := range strings.Split(want, ",") {
			name := strings.ToLower(s)
			_, isNode := node[name]
			_, isCluster := cluster[name]
			if !isNode && !isCluster {
				return nil, mlerr.IllegalArgument("Wrong ML cluster level stat")
			}
			keep[name], nodeAsked = true, nodeAsked || isNode
		}
		if keep["ml_model_count"] {
			keep["ml_connector_count"] = true
		}
		for _, m := range []map[string]any{cluster, node} {
			for k := range m {
				if !keep[k] {
					delete(m, k)
				}
			}
		}
		if !nodeAsked {
			node = nil
		}
	}
	if n := pathVar(r, "node"); n != "" && n != "_all" && n != "_local" && !containsItem(n, a.nodeID) {
		node = nil
	}
	out := map[string]any{}
	for k, v := range cluster {
		out[k] = v
	}
	if node != nil {
		out["nodes"] = map[string]any{a.nodeID: node}
	}
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
		return nil, mlerr.IllegalArgument("Wrong view type: %s", view)
	}
	if strings.Contains(r.URL.Path, "/profile/tasks") {
		return map[string]any{}, nil
	}
	deployed, err := a.store.DeployedModels(r.Context(), pathVar(r, "id"))
	if err != nil {
		return nil, err
	}
	if len(deployed) == 0 {
		return map[string]any{}, nil
	}
	nodes := []string{a.nodeID}
	models := map[string]any{}
	for _, h := range deployed {
		perNode := map[string]any{"model_state": h.State, "predictor": "org.opensearch.ml.engine.algorithms.remote.RemoteModel"}
		a.mlstats.profileOf(h.ID, perNode)
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
