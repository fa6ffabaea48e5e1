package mlcommons

import (
	"net/http"
	"strings"

	"github.com/gorilla/mux"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

// actionPrefix starts the name of every ML Commons transport action.
const actionPrefix = "cluster:admin/opensearch/ml/"

// trailingSlash ends every route's path: OpenSearch routes /x/ as /x.
const trailingSlash = "{trailing_slash:/*}"

// routeSpec is one ML Commons REST route: its path under /_plugins/_ml, the
// transport action the caller's roles must allow, the handler, its
// methods, and the query parameters ML Commons' REST handler reads there.
// OpenSearch refuses any other parameter.
type routeSpec struct {
	path    string
	action  string
	f       apiFunc
	methods []string
	params  []string
}

// Register adds the API's routes to r, a router that receives every request
// under /_plugins/_ml. Each route names the ML Commons transport action it
// stands for (the action ML Commons' REST handler executes first); the
// caller's roles must allow it before the handler runs. Literal routes come
// before {id} routes, and a literal path answers 405 for the methods it does
// not have rather than passing them to its {id} sibling, as OpenSearch's
// path trie prefers an explicit segment.
func (a *API) Register(r *mux.Router) {
	a.registerUnsupported(r)
	specs := a.routes()
	methodsOf := map[string][]string{}
	last := map[string]int{}
	for i, s := range specs {
		methodsOf[s.path] = append(methodsOf[s.path], s.methods...)
		last[s.path] = i
	}
	for i, s := range specs {
		p := "/_plugins/_ml" + s.path + trailingSlash
		r.Handle(p, a.wrap(actionPrefix+s.action, newParamCheck(s.path, s.params), s.f)).Methods(s.methods...)
		if last[s.path] == i && !strings.Contains(s.path, "{") {
			r.Handle(p, methodNotAllowed(methodsOf[s.path]))
		}
	}
	r.NotFoundHandler = unmatched(r)
	r.MethodNotAllowedHandler = unmatched(r)
}

func (a *API) routes() []routeSpec {
	var specs []routeSpec
	route := func(path, action string, f apiFunc, methods []string, params ...string) {
		specs = append(specs, routeSpec{path: path, action: action, f: f, methods: methods, params: params})
	}
	get, post, put, del := []string{http.MethodGet}, []string{http.MethodPost}, []string{http.MethodPut}, []string{http.MethodDelete}
	getOrPost := []string{http.MethodGet, http.MethodPost}

	route("/connectors/_create", "create_connector", a.createConnector, post)
	route("/connectors/_search", "connectors/search", a.search(indexstore.Connectors), getOrPost, searchParams...)
	route("/connectors/{id}", "connectors/get", a.getConnector, get, "return_content")
	route("/connectors/{id}", "connectors/update", a.updateConnector, put)
	route("/connectors/{id}", "connectors/delete", a.deleteConnector, del)

	route("/model_groups/_register", "register_model_group", a.registerModelGroup, post)
	route("/model_groups/_search", "model_groups/search", a.search(indexstore.ModelGroups), getOrPost, searchParams...)
	route("/model_groups/{id}", "model_groups/get", a.getModelGroup, get)
	route("/model_groups/{id}", "update_model_group", a.updateModelGroup, put)
	route("/model_groups/{id}", "model_groups/delete", a.deleteModelGroup, del)

	for _, p := range []string{"/models/_register", "/models/_upload"} {
		route(p, "register_model", a.statsCounted("register", a.registerModel), post, "deploy")
	}
	route("/models/_search", "models/search", a.search(indexstore.Models), getOrPost, searchParams...)
	for _, p := range []string{"/models/_undeploy", "/models/_unload"} {
		route(p, "undeploy_models", a.statsCounted("undeploy", a.undeployModels), post)
	}
	for _, p := range []string{"/models/{id}/_deploy", "/models/{id}/_load"} {
		route(p, "deploy_model", a.statsCounted("deploy", a.deployModel), post)
	}
	for _, p := range []string{"/models/{id}/_undeploy", "/models/{id}/_unload"} {
		route(p, "undeploy_models", a.statsCounted("undeploy", a.undeployModel), post)
	}
	route("/models/{id}/_predict", "predict", a.counted(a.predictAs(indexstore.ActionPredict)), post)
	route("/models/{id}/_batch_predict", "predict", a.counted(a.predictAs(indexstore.ActionBatchPredict)), post)
	route("/_predict/{algorithm}/{id}", "predict", a.counted(a.predictAs(indexstore.ActionPredict)), post)
	route("/models/{id}", "models/get", a.getModel, get, "return_content")
	route("/models/{id}", "models/update", a.updateModel, put)
	route("/models/{id}", "models/delete", a.deleteModel, del)

	route("/controllers/{id}", "controllers/create", a.createController, post)
	route("/controllers/{id}", "controllers/get", a.getController, get, "return_content")
	route("/controllers/{id}", "controllers/update", a.updateController, put)
	route("/controllers/{id}", "controllers/delete", a.deleteController, del)

	route("/_batch_ingestion", "batch_ingestion", a.batchIngestion, post)

	route("/tasks/_search", "tasks/search", a.search(indexstore.Tasks), getOrPost, searchParams...)
	route("/tasks/{id}/_cancel", "tasks/cancel", a.cancelBatch, post)
	route("/tasks/{id}/_cancel_batch", "tasks/cancel", a.cancelBatch, post)
	route("/tasks/{id}", "tasks/get", a.getTask, get)
	route("/tasks/{id}", "tasks/delete", a.deleteTask, del)

	for _, p := range []string{"/stats", "/stats/{stat}", "/{node}/stats", "/{node}/stats/{stat}"} {
		route(p, "stats/nodes", a.stats, get)
	}
	for _, p := range []string{"/profile", "/profile/models", "/profile/models/{id}", "/profile/tasks", "/profile/tasks/{id}"} {
		route(p, "profile/nodes", a.profile, get, "view")
	}
	return specs
}

// searchParams are the query parameters of the _search routes: ML Commons
// reads source and source_content_type; searchdsl.CheckParams keeps the
// rest of what the sidecar takes there (COMPATIBILITY.md).
var searchParams = []string{"*"}

// registerUnsupported answers the ML Commons APIs of local models, agents,
// memory and tools with one clear 400 (mlsidecar serves remote models
// only), whatever the method. They come first: models/meta must not reach
// models/{id}.
func (a *API) registerUnsupported(r *mux.Router) {
	const anyTail = "{rest:(?:/.*)?}"
	unsupported := map[string][]string{
		"agents":                      {"/agents" + anyTail},
		"memory":                      {"/memory" + anyTail},
		"memory containers":           {"/memory_containers" + anyTail},
		"tools":                       {"/tools" + anyTail},
		"_train":                      {"/_train" + anyTail},
		"_train_predict":              {"/_train_predict" + anyTail},
		"_execute":                    {"/_execute" + anyTail},
		"config":                      {"/config" + anyTail},
		"_predict/stream":             {"/models/{id}/_predict/stream" + trailingSlash},
		"models/meta":                 {"/models/meta" + trailingSlash, "/models/_register_meta" + trailingSlash},
		"upload_chunk":                {"/models/{id}/upload_chunk" + anyTail},
		"chunk":                       {"/models/{id}/chunk" + anyTail},
		"local and pretrained models": {"/models/{id}/{version}/_register" + trailingSlash, "/models/{id}/{version}/_upload" + trailingSlash},
	}
	for api, paths := range unsupported {
		err := mlerr.UnsupportedOperation("mlsidecar serves remote models only: %s is not supported", api)
		for _, p := range paths {
			r.Handle("/_plugins/_ml"+p, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				writeError(w, r, err)
			}))
		}
	}
}

// statsCounted counts a route's requests and failures in the action-level
// stats (the model's too when the path names one).
func (a *API) statsCounted(action string, f apiFunc) apiFunc {
	return func(r *http.Request) (any, error) {
		v, err := f(r)
		a.mlstats.recordOutcome(pathVar(r, "id"), action, err)
		return v, err
	}
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
