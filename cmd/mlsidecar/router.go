package main

import (
	"net/http"
	"path"
	"strings"

	"github.com/gorilla/mux"

	"github.com/mlsidecar/mlsidecar/mlcommons"
)

// mlPrefix is the path of every ML Commons route.
const mlPrefix = "/_plugins/_ml"

// newRouter sends ML Commons traffic to ml and everything else to fwd. The ML
// subrouter answers every request it receives, so none of it can fall through
// to the cluster.
// Every ML route runs behind authn.
func newRouter(ml *mlcommons.API, authn mux.MiddlewareFunc, fwd http.Handler) *mux.Router {
	r := mux.NewRouter().SkipClean(true).UseEncodedPath()
	sub := r.MatcherFunc(func(req *http.Request, _ *mux.RouteMatch) bool { return isML(req) }).Subrouter()
	sub.Use(authn)
	ml.Register(sub)
	r.NewRoute().Handler(fwd)
	return r
}

// isML reports whether OpenSearch would route req to the ML Commons plugin.
// OpenSearch decodes the whole path (%2F included) before matching routes, so
// the decoded path is what counts; cleaning it too only widens the net.
func isML(req *http.Request) bool {
	p := req.URL.Path
	if !strings.Contains(p, "_ml") {
		return false // fast path for the proxied majority
	}
	p = path.Clean("/" + p)
	return p == mlPrefix || strings.HasPrefix(p, mlPrefix+"/")
}
