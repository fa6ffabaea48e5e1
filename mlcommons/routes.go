package mlcommons

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/mlsidecar/mlsidecar/indexstore"
)

// actionPrefix starts the name of every ML Commons transport action.
const actionPrefix = "cluster:admin/opensearch/ml/"

// Register adds the API's routes to r, a router that receives every request
// under /_plugins/_ml. Each route names the ML Commons transport action it
// stands for (the action ML Commons' REST handler executes first); the
// caller's roles must allow it before the handler runs. Literal routes come
// before {id} routes.
func (a *API) Register(r *mux.Router) {
	route := func(path, action string, f apiFunc, methods ...string) {
		r.Handle("/_plugins/_ml"+path, a.wrap(actionPrefix+action, f)).Methods(methods...)
	}
	route("/connectors/_create", "create_connector", a.createConnector, http.MethodPost)
	route("/connectors/_search", "connectors/search", a.search(indexstore.Connectors), http.MethodGet, http.MethodPost)
	route("/connectors/{id}", "connectors/get", a.getConnector, http.MethodGet)
	route("/connectors/{id}", "connectors/update", a.updateConnector, http.MethodPut)
	route("/connectors/{id}", "connectors/delete", a.deleteConnector, http.MethodDelete)

	route("/model_groups/_register", "register_model_group", a.registerModelGroup, http.MethodPost)
	route("/model_groups/_search", "model_groups/search", a.search(indexstore.ModelGroups), http.MethodGet, http.MethodPost)
	route("/model_groups/{id}", "model_groups/get", a.getModelGroup, http.MethodGet)
	route("/model_groups/{id}", "update_model_group", a.updateModelGroup, http.MethodPut)
	route("/model_groups/{id}", "model_groups/delete", a.deleteModelGroup, http.MethodDelete)

	for _, p := range []string{"/models/_register", "/models/_upload"} {
		route(p, "register_model", a.registerModel, http.MethodPost)
	}
	route("/models/_search", "models/search", a.search(indexstore.Models), http.MethodGet, http.MethodPost)
	for _, p := range []string{"/models/_undeploy", "/models/_unload"} {
		route(p, "undeploy_models", a.undeployModels, http.MethodPost)
	}
	for _, p := range []string{"/models/{id}/_deploy", "/models/{id}/_load"} {
		route(p, "deploy_model", a.deployModel, http.MethodPost)
	}
	for _, p := range []string{"/models/{id}/_undeploy", "/models/{id}/_unload"} {
		route(p, "undeploy_models", a.undeployModel, http.MethodPost)
	}
	route("/models/{id}/_predict", "predict", a.counted(a.predict), http.MethodPost)
	route("/models/{id}/_batch_predict", "predict", a.counted(a.batchPredict), http.MethodPost)
	route("/_predict/{algorithm}/{id}", "predict", a.counted(a.predict), http.MethodPost)
	route("/models/{id}", "models/get", a.getModel, http.MethodGet)
	route("/models/{id}", "models/update", a.updateModel, http.MethodPut)
	route("/models/{id}", "models/delete", a.deleteModel, http.MethodDelete)

	route("/tasks/_search", "tasks/search", a.search(indexstore.Tasks), http.MethodGet, http.MethodPost)
	route("/tasks/{id}/_cancel", "tasks/cancel", a.cancelBatch, http.MethodPost)
	route("/tasks/{id}/_cancel_batch", "tasks/cancel", a.cancelBatch, http.MethodPost)
	route("/tasks/{id}", "tasks/get", a.getTask, http.MethodGet)
	route("/tasks/{id}", "tasks/delete", a.deleteTask, http.MethodDelete)

	for _, p := range []string{"/stats", "/stats/{stat}", "/{node}/stats", "/{node}/stats/{stat}"} {
		route(p, "stats/nodes", a.stats, http.MethodGet)
	}
	for _, p := range []string{"/profile", "/profile/models", "/profile/models/{id}", "/profile/tasks", "/profile/tasks/{id}"} {
		route(p, "profile/nodes", a.profile, http.MethodGet)
	}

	r.NotFoundHandler = unmatched(r)
	r.MethodNotAllowedHandler = unmatched(r)
}

// counted counts a prediction route's requests and failures for stats.
func (a *API) counted(f apiFunc) apiFunc {
	return func(r *http.Request) (any, error) {
		a.requests.Add(1)
		v, err := f(r)
		if err != nil {
			a.failures.Add(1)
		}
		return v, err
	}
}
