package mlcommons

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/mlsidecar/mlsidecar/indexstore"
)

// Register adds the API's routes to r, a router that receives every request
// under /_plugins/_ml. Literal routes come before {id} routes.
func (a *API) Register(r *mux.Router) {
	route := func(path string, f apiFunc, methods ...string) {
		r.Handle("/_plugins/_ml"+path, a.wrap(f)).Methods(methods...)
	}
	route("/connectors/_create", a.createConnector, http.MethodPost)
	route("/connectors/_search", a.search(indexstore.Connectors), http.MethodGet, http.MethodPost)
	route("/connectors/{id}", a.getConnector, http.MethodGet)
	route("/connectors/{id}", a.updateConnector, http.MethodPut)
	route("/connectors/{id}", a.deleteConnector, http.MethodDelete)

	route("/model_groups/_register", a.registerModelGroup, http.MethodPost)
	route("/model_groups/_search", a.search(indexstore.ModelGroups), http.MethodGet, http.MethodPost)
	route("/model_groups/{id}", a.getModelGroup, http.MethodGet)
	route("/model_groups/{id}", a.updateModelGroup, http.MethodPut)
	route("/model_groups/{id}", a.deleteModelGroup, http.MethodDelete)

	for _, p := range []string{"/models/_register", "/models/_upload"} {
		route(p, a.registerModel, http.MethodPost)
	}
	route("/models/_search", a.search(indexstore.Models), http.MethodGet, http.MethodPost)
	for _, p := range []string{"/models/_undeploy", "/models/_unload"} {
		route(p, a.undeployModels, http.MethodPost)
	}
	for _, p := range []string{"/models/{id}/_deploy", "/models/{id}/_load"} {
		route(p, a.deployModel, http.MethodPost)
	}
	for _, p := range []string{"/models/{id}/_undeploy", "/models/{id}/_unload"} {
		route(p, a.undeployModel, http.MethodPost)
	}
	route("/models/{id}/_predict", a.counted(a.predict), http.MethodPost)
	route("/models/{id}/_batch_predict", a.counted(a.batchPredict), http.MethodPost)
	route("/_predict/{algorithm}/{id}", a.counted(a.predict), http.MethodPost)
	route("/models/{id}", a.getModel, http.MethodGet)
	route("/models/{id}", a.updateModel, http.MethodPut)
	route("/models/{id}", a.deleteModel, http.MethodDelete)

	route("/tasks/_search", a.search(indexstore.Tasks), http.MethodGet, http.MethodPost)
	route("/tasks/{id}/_cancel", a.cancelBatch, http.MethodPost)
	route("/tasks/{id}/_cancel_batch", a.cancelBatch, http.MethodPost)
	route("/tasks/{id}", a.getTask, http.MethodGet)
	route("/tasks/{id}", a.deleteTask, http.MethodDelete)

	for _, p := range []string{"/stats", "/stats/{stat}", "/{node}/stats", "/{node}/stats/{stat}"} {
		route(p, a.stats, http.MethodGet)
	}
	for _, p := range []string{"/profile", "/profile/models", "/profile/models/{id}", "/profile/tasks", "/profile/tasks/{id}"} {
		route(p, a.profile, http.MethodGet)
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
