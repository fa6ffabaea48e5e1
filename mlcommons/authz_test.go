package mlcommons

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/gorilla/mux"

	"github.com/mlsidecar/mlsidecar/mlcommons/auth"
)

// authinfoOf answers authinfo for the callers of the authorization tests:
// "Authorization: Test <user>" is user <user>, mapped to the role of the
// same name, backend roles b1 and b2.
func authinfoOf(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Test ")
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"user_name": name, "backend_roles": []string{"b1", "b2"},
		"roles": []string{name}, "user_requested_tenant": nil})
}

// routeActions are ML Commons 2.19's transport actions of each route.
var routeActions = []struct{ method, path, action string }{
	{"POST", "/_plugins/_ml/connectors/_create", "create_connector"},
	{"POST", "/_plugins/_ml/connectors/_search", "connectors/search"},
	{"GET", "/_plugins/_ml/connectors/c1", "connectors/get"},
	{"PUT", "/_plugins/_ml/connectors/c1", "connectors/update"},
	{"DELETE", "/_plugins/_ml/connectors/c1", "connectors/delete"},
	{"POST", "/_plugins/_ml/model_groups/_register", "register_model_group"},
	{"GET", "/_plugins/_ml/model_groups/_search", "model_groups/search"},
	{"GET", "/_plugins/_ml/model_groups/g1", "model_groups/get"},
	{"PUT", "/_plugins/_ml/model_groups/g1", "update_model_group"},
	{"DELETE", "/_plugins/_ml/model_groups/g1", "model_groups/delete"},
	{"POST", "/_plugins/_ml/models/_register", "register_model"},
	{"POST", "/_plugins/_ml/models/_upload", "register_model"},
	{"POST", "/_plugins/_ml/models/_search", "models/search"},
	{"POST", "/_plugins/_ml/models/_undeploy", "undeploy_models"},
	{"POST", "/_plugins/_ml/models/m1/_deploy", "deploy_model"},
	{"POST", "/_plugins/_ml/models/m1/_undeploy", "undeploy_models"},
	{"POST", "/_plugins/_ml/models/m1/_predict", "predict"},
	{"POST", "/_plugins/_ml/models/m1/_batch_predict", "predict"},
	{"POST", "/_plugins/_ml/_predict/text_embedding/m1", "predict"},
	{"GET", "/_plugins/_ml/models/m1", "models/get"},
	{"PUT", "/_plugins/_ml/models/m1", "models/update"},
	{"DELETE", "/_plugins/_ml/models/m1", "models/delete"},
	{"POST", "/_plugins/_ml/controllers/m1", "controllers/create"},
	{"GET", "/_plugins/_ml/controllers/m1", "controllers/get"},
	{"PUT", "/_plugins/_ml/controllers/m1", "controllers/update"},
	{"DELETE", "/_plugins/_ml/controllers/m1", "controllers/delete"},
	{"GET", "/_plugins/_ml/tasks/_search", "tasks/search"},
	{"POST", "/_plugins/_ml/tasks/t1/_cancel", "tasks/cancel"},
	{"POST", "/_plugins/_ml/tasks/t1/_cancel_batch", "tasks/cancel"},
	{"GET", "/_plugins/_ml/tasks/t1", "tasks/get"},
	{"DELETE", "/_plugins/_ml/tasks/t1", "tasks/delete"},
	{"GET", "/_plugins/_ml/stats", "stats/nodes"},
	{"GET", "/_plugins/_ml/n1/stats/ml_model_count", "stats/nodes"},
	{"GET", "/_plugins/_ml/profile/models", "profile/nodes"},
}

func (a *testAPI) doAs(t *testing.T, user, method, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Test "+user)
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, req)
	return rec
}

func deniedReason(user, action string) string {
	return "no permissions for [cluster:admin/opensearch/ml/" + action + "] and User [name=" + user +
		", backend_roles=[b1, b2], requestedTenant=null]"
}

// Each route runs only for a caller whose roles allow its action.
func TestRoutesAreAuthorized(t *testing.T) {
	perms := &auth.Permissions{Roles: map[string][]string{"health": {"cluster:monitor/health"}}}
	for _, ra := range routeActions {
		perms.Roles["only-"+ra.action] = []string{"cluster:admin/opensearch/ml/" + ra.action}
	}
	a := newTestAPIWith(t, testOptions{authinfo: authinfoOf, perms: perms})
	for _, ra := range routeActions {
		t.Run(ra.method+" "+ra.path, func(t *testing.T) {
			rec := a.doAs(t, "health", ra.method, ra.path, `{}`)
			wantError(t, rec, http.StatusForbidden, "security_exception", deniedReason("health", ra.action))

			rec = a.doAs(t, "only-"+ra.action, ra.method, ra.path, `{}`)
			if rec.Code == http.StatusForbidden && strings.Contains(rec.Body.String(), "security_exception") {
				t.Errorf("a caller allowed %s is refused: %s", ra.action, rec.Body)
			}
			for _, other := range []string{"connectors/get", "predict"} {
				if other == ra.action {
					continue
				}
				rec = a.doAs(t, "only-"+other, ra.method, ra.path, `{}`)
				wantError(t, rec, http.StatusForbidden, "security_exception", deniedReason("only-"+other, ra.action))
			}
		})
	}
}

// No route can be reached without an authorization: every route the router
// knows refuses a caller whose roles allow nothing of ML Commons.
func TestEveryRouteIsAuthorized(t *testing.T) {
	perms := &auth.Permissions{Roles: map[string][]string{"health": {"cluster:monitor/health"}}}
	a := newTestAPIWith(t, testOptions{authinfo: authinfoOf, perms: perms})
	r := a.Handler.(*mux.Router)
	vars := regexp.MustCompile(`\{[^}]+\}`)
	n := 0
	err := r.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tmpl, err := route.GetPathTemplate()
		if err != nil {
			return nil
		}
		methods, _ := route.GetMethods()
		for _, m := range methods {
			n++
			path := vars.ReplaceAllString(strings.TrimSuffix(tmpl, trailingSlash), "x1")
			for _, p := range []string{path, path + "/"} {
				rec := a.doAs(t, "health", m, p, `{}`)
				if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), `"security_exception"`) {
					t.Errorf("%s %s: got %d %s, want 403 security_exception", m, p, rec.Code, rec.Body)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < len(routeActions) {
		t.Errorf("walked %d routes, want at least %d", n, len(routeActions))
	}
}

// Where the sidecar's account cannot read the security configuration, the
// configured role lists decide: read-only roles read, full-access roles do
// everything, other roles nothing.
func TestAuthorizationByRoleNames(t *testing.T) {
	a := newTestAPIWith(t, testOptions{authinfo: authinfoOf})
	if rec := a.doAs(t, "ml_read_access", "GET", "/_plugins/_ml/connectors/c1", ``); rec.Code != http.StatusNotFound {
		t.Errorf("read-only caller reading: got %d %s, want 404 (authorized, not found)", rec.Code, rec.Body)
	}
	rec := a.doAs(t, "ml_read_access", "POST", "/_plugins/_ml/models/m1/_predict", `{}`)
	wantError(t, rec, http.StatusForbidden, "security_exception", deniedReason("ml_read_access", "predict"))
	if rec := a.doAs(t, "ml_full_access", "POST", "/_plugins/_ml/models/m1/_predict", `{"parameters":{}}`); rec.Code != http.StatusNotFound {
		t.Errorf("full-access caller predicting: got %d %s, want 404 (authorized, model not found)", rec.Code, rec.Body)
	}
	rec = a.doAs(t, "custom", "GET", "/_plugins/_ml/connectors/c1", ``)
	wantError(t, rec, http.StatusForbidden, "security_exception", deniedReason("custom", "connectors/get"))
}

// A cluster without the security plugin authorizes everyone, as the
// cluster itself does.
func TestNoSecurityNoAuthorization(t *testing.T) {
	a := newTestAPI(t)
	if rec := a.do(t, "GET", "/_plugins/_ml/connectors/c1", ``); rec.Code != http.StatusNotFound {
		t.Errorf("got %d %s, want 404", rec.Code, rec.Body)
	}
}
