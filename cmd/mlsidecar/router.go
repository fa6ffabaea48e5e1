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

// newRouter sends ML Commons traffic to ml, reads and updates of the cluster
// settings to settings (which hold ML Commons settings too) and everything
// else to fwd. The ML subrouter answers every request it receives, so none
// of it can fall through to the cluster.
// Every ML route runs behind authn; the cluster settings API is the
// cluster's, which authenticates and authorizes it.
func newRouter(ml *mlcommons.API, authn mux.MiddlewareFunc, settings, fwd http.Handler) *mux.Router {
	r := mux.NewRouter().SkipClean(true).UseEncodedPath()
	sub := r.MatcherFunc(func(req *http.Request, _ *mux.RouteMatch) bool { return isML(req) }).Subrouter()
	sub.Use(authn)
	ml.Register(sub)
	r.MatcherFunc(func(req *http.Request, _ *mux.RouteMatch) bool { return isClusterSettings(req) }).Handler(settings)
	r.NewRoute().Handler(fwd)
	return r
}

// isClusterSettings reports whether req reads or updates the cluster
// settings; a path comparison first, so the proxied majority pays nothing
// more.
func isClusterSettings(req *http.Request) bool {
	p := req.URL.Path
	return (p == mlcommons.ClusterSettingsPath || p == mlcommons.ClusterSettingsPath+"/") &&
		(req.Method == http.MethodGet || req.Method == http.MethodPut)
}

// isML reports whether req is ML Commons traffic, which must never reach
// the cluster's own /_plugins/_ml routes. OpenSearch decodes the whole path
// (%2F included) before matching and does not remove dot segments, while a
// hop in between may: so the path counts as ML when its raw form, its
// decoded form or its cleaned form is under /_plugins/_ml. Checking only the
// cleaned form let /_plugins/_ml/x/..%2F..%2F..%2Fy (cleaned: /y) through.
func isML(req *http.Request) bool {
	decoded := req.URL.Path
	if !strings.Contains(decoded, "_ml") {
		return false // fast path for the proxied majority; "_ml" survives decoding
	}
	return underML(req.URL.EscapedPath()) || underML(decoded) || underML(path.Clean("/"+decoded))
}

func underML(p string) bool {
	return p == mlPrefix || strings.HasPrefix(p, mlPrefix+"/")
}
