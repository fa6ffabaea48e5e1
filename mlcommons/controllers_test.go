package mlcommons

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/auth"
	"github.com/mlsidecar/mlsidecar/mlcommons/settings"
)

const controllersPath = "/_plugins/_ml/controllers/"

// newControllerAPI is the API on a secured cluster whose callers alice and
// bob (authinfoOf) may run every ML action, with a provider that answers
// every call.
func newControllerAPI(t *testing.T) *testAPI {
	t.Helper()
	ml := []string{"cluster:admin/opensearch/ml/*"}
	return newTestAPIWith(t, testOptions{authinfo: authinfoOf, remote: okProvider,
		perms: &auth.Permissions{Roles: map[string][]string{"alice": ml, "bob": ml}}})
}

// deployedModel registers and deploys a model of an OpenAI connector that
// also has a batch action, as alice.
func deployedModel(t *testing.T, a *testAPI) string {
	t.Helper()
	conn := a.mustDoAs(t, "alice", http.MethodPost, createPath, toJSON(t, batchConnector()))["connector_id"].(string)
	return a.mustDoAs(t, "alice", http.MethodPost, registerPath+"?deploy=true",
		toJSON(t, map[string]any{"name": "m", "function_name": "remote", "connector_id": conn}))["model_id"].(string)
}

func TestControllerRoutes(t *testing.T) {
	a := newControllerAPI(t)
	model := deployedModel(t, a)
	path := controllersPath + model

	// Create: the body's users, limiters without limit and unit dropped;
	// the model says it has a controller.
	res := a.mustDoAs(t, "alice", http.MethodPost, path,
		`{"model_id":"ignored","other":1,"user_rate_limiter":{"alice":{"limit":4,"unit":"MINUTES"},"bob":{},"carol":{"limit":"2"},`+
			`"dan":"{\"unit\":\"SECONDS\"}","eve":{"limit":null,"unit":"HOURS"}}}`)
	if diff := cmp.Diff(map[string]any{"model_id": model, "status": "CREATED"}, res); diff != "" {
		t.Errorf("create answer (-want +got):\n%s", diff)
	}
	want := map[string]any{"model_id": model, "user_rate_limiter": map[string]any{
		"alice": map[string]any{"limit": "4", "unit": "MINUTES"}, "carol": map[string]any{"limit": "2"},
		"dan": map[string]any{"unit": "SECONDS"}, "eve": map[string]any{"unit": "HOURS"},
	}}
	if diff := cmp.Diff(want, a.mustDoAs(t, "alice", http.MethodGet, path+"?return_content=true", ``)); diff != "" {
		t.Errorf("controller (-want +got):\n%s", diff)
	}
	if m := storedModel(t, a, model); m.IsControllerEnabled == nil || !*m.IsControllerEnabled || m.LastUpdatedTime != testNow.UnixMilli() {
		t.Errorf("model after create: is_controller_enabled %v, last_updated_time %d", m.IsControllerEnabled, m.LastUpdatedTime)
	}
	if got := a.mustDoAs(t, "alice", http.MethodGet, modelsPath+model, ``)["is_controller_enabled"]; got != true {
		t.Errorf("GET model: is_controller_enabled %v, want true", got)
	}

	// Create again: the controller is replaced.
	res = a.mustDoAs(t, "alice", http.MethodPost, path, `{"user_rate_limiter":{"alice":{"limit":"5","unit":"MINUTES"}}}`)
	if res["status"] != "UPDATED" {
		t.Errorf("second create answered %v, want status UPDATED", res)
	}

	// Update: merged, user by user and field by field.
	res = a.mustDoAs(t, "alice", http.MethodPut, path, `{"user_rate_limiter":{"alice":{"limit":"6"},"zed":{"unit":"SECONDS"}}}`)
	if res["result"] != "updated" || res["_id"] != model {
		t.Errorf("update answered %v, want an UpdateResponse of %s", res, model)
	}
	want = map[string]any{"model_id": model, "user_rate_limiter": map[string]any{
		"alice": map[string]any{"limit": "6", "unit": "MINUTES"}, "zed": map[string]any{"unit": "SECONDS"},
	}}
	if diff := cmp.Diff(want, a.mustDoAs(t, "alice", http.MethodGet, path, ``)); diff != "" {
		t.Errorf("controller after update (-want +got):\n%s", diff)
	}

	// Delete: gone, and the model says so.
	res = a.mustDoAs(t, "alice", http.MethodDelete, path, ``)
	if res["result"] != "deleted" || res["forced_refresh"] != true {
		t.Errorf("delete answered %v, want a DeleteResponse, deleted, forced_refresh", res)
	}
	if m := storedModel(t, a, model); m.IsControllerEnabled == nil || *m.IsControllerEnabled {
		t.Errorf("model after delete: is_controller_enabled %v, want false", m.IsControllerEnabled)
	}
	wantError(t, a.doAs(t, "alice", http.MethodGet, path, ``), 404, "status_exception", "Failed to find model controller with the provided model ID")
	wantError(t, a.doAs(t, "alice", http.MethodDelete, path, ``), 404, "status_exception", "Failed to find model controller")
	wantError(t, a.doAs(t, "alice", http.MethodPut, path, `{"user_rate_limiter":{}}`), 409, "status_exception",
		"Model controller haven't been created for the model. Consider calling create model controller api instead. Model ID: "+model)

	// An empty controller is one.
	a.mustDoAs(t, "alice", http.MethodPost, path, `{}`)
	if diff := cmp.Diff(map[string]any{"model_id": model, "user_rate_limiter": map[string]any{}},
		a.mustDoAs(t, "alice", http.MethodGet, path, ``)); diff != "" {
		t.Errorf("empty controller (-want +got):\n%s", diff)
	}
}

func TestControllerValidation(t *testing.T) {
	a := newControllerAPI(t)
	model := deployedModel(t, a)
	path := controllersPath + model
	type answer struct{ errType, reason string } // all 400
	parsing := func(found string) answer {
		return answer{"parsing_exception", "Failed to parse object: expecting token of type [START_OBJECT] but found [" + found + "]"}
	}
	limit := answer{"parse_exception", "Limit field must be a positive number."}
	for _, tt := range []struct {
		name, method, query, body string
		want                      answer // reason "": any parse_exception
	}{
		{"create, empty body", "POST", "", ``, answer{"parse_exception", "Create model controller request has empty body"}},
		{"update, empty body", "PUT", "", ` `, answer{"parse_exception", "Update model controller request has empty body"}},
		{"negative limit", "POST", "", `{"user_rate_limiter":{"alice":{"limit":"-1","unit":"MINUTES"}}}`, limit},
		{"limit not a number", "POST", "", `{"user_rate_limiter":{"alice":{"limit":"abc","unit":"MINUTES"}}}`, limit},
		{"empty limit", "PUT", "", `{"user_rate_limiter":{"alice":{"limit":""}}}`, limit},
		{"limit an object", "POST", "", `{"user_rate_limiter":{"alice":{"limit":{"n":1}}}}`, limit},
		{"unit in lower case", "POST", "", `{"user_rate_limiter":{"alice":{"limit":"4","unit":"minutes"}}}`,
			answer{"illegal_argument_exception", "No enum constant java.util.concurrent.TimeUnit.minutes"}},
		{"unknown unit", "PUT", "", `{"user_rate_limiter":{"alice":{"unit":"WEEKS"}}}`,
			answer{"illegal_argument_exception", "No enum constant java.util.concurrent.TimeUnit.WEEKS"}},
		{"limiter a number in a string", "POST", "", `{"user_rate_limiter":{"alice":"4"}}`, parsing("VALUE_NUMBER")},
		{"limiter a number", "POST", "", `{"user_rate_limiter":{"alice":4}}`, parsing("VALUE_NUMBER")},
		{"limiter null", "POST", "", `{"user_rate_limiter":{"alice":null}}`, parsing("VALUE_NULL")},
		{"limiter a list", "POST", "", `{"user_rate_limiter":{"alice":[]}}`, parsing("START_ARRAY")},
		{"limiter not JSON", "POST", "", `{"user_rate_limiter":{"alice":"abc"}}`, parsing("VALUE_STRING")},
		{"user_rate_limiter a list", "POST", "", `{"user_rate_limiter":[]}`, parsing("START_ARRAY")},
		{"body not JSON", "POST", "", `{"user_rate_limiter":`, answer{"parse_exception", ""}},
		{"return_content not a boolean", "GET", "?return_content=x", ``,
			answer{"illegal_argument_exception", "Failed to parse value [x] as only [true] or [false] are allowed."}},
		{"unknown parameter", "POST", "?model=x", `{}`, answer{"illegal_argument_exception",
			"request [" + path + "] contains unrecognized parameter: [model] -> did you mean [model_id]?"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := a.doAs(t, "alice", tt.method, path+tt.query, tt.body)
			if tt.want.reason == "" {
				if rec.Code != 400 || !strings.Contains(rec.Body.String(), `"parse_exception"`) {
					t.Errorf("got %d %s, want 400 parse_exception", rec.Code, rec.Body)
				}
				return
			}
			wantError(t, rec, http.StatusBadRequest, tt.want.errType, tt.want.reason)
		})
	}
	if ids := a.store.controllers.IDs(); len(ids) != 0 {
		t.Errorf("refused bodies stored controllers %v", ids)
	}
	// A scalar user_rate_limiter is an empty one (XContentParser.map()).
	a.mustDoAs(t, "alice", http.MethodPost, path, `{"user_rate_limiter":"alice"}`)
	if got := decodeRaw[indexstore.Controller](t, "controller", a.store.controllers.Raw(model)); len(got.UserRateLimiter) != 0 {
		t.Errorf("stored %v, want no users", got)
	}
}

func TestControllerUnknownModel(t *testing.T) {
	a := newControllerAPI(t)
	const body = `{"user_rate_limiter":{"alice":{"limit":"1","unit":"SECONDS"}}}`
	wantError(t, a.doAs(t, "alice", http.MethodPost, controllersPath+"nope", body), 404, "status_exception",
		"Failed to find model to create the corresponding model controller with the provided model ID")
	wantError(t, a.doAs(t, "alice", http.MethodPut, controllersPath+"nope", body), 404, "status_exception",
		"Failed to find model to create the corresponding model controller with the provided model ID")
	wantError(t, a.doAs(t, "alice", http.MethodGet, controllersPath+"nope", ``), 404, "status_exception",
		"Failed to find model controller with the provided model ID")
	wantError(t, a.doAs(t, "alice", http.MethodDelete, controllersPath+"nope", ``), 404, "status_exception",
		"Failed to find model controller")
	wantError(t, a.doAs(t, "alice", http.MethodGet, controllersPath+"..%2F_cluster", ``), 404, "status_exception",
		"Failed to find model controller with the provided model ID")
	if ids := a.store.controllers.IDs(); len(ids) != 0 {
		t.Errorf("stored controllers %v, want none", ids)
	}

	// A controller whose model is gone: not shown, but deleted alone.
	a.store.controllers.Put("orphan", &indexstore.Controller{UserRateLimiter: map[string]indexstore.RateLimiter{}})
	wantError(t, a.doAs(t, "alice", http.MethodGet, controllersPath+"orphan", ``), 404, "status_exception",
		"Failed to find model to get the corresponding model controller with the provided model ID")
	if res := a.mustDoAs(t, "alice", http.MethodDelete, controllersPath+"orphan", ``); res["result"] != "deleted" {
		t.Errorf("delete of an orphan answered %v", res)
	}

	// A model that is deploying takes no new controller.
	model := deployedModel(t, a)
	m := storedModel(t, a, model)
	m.ModelState = indexstore.ModelDeploying
	a.store.models.Put(model, &m)
	wantError(t, a.doAs(t, "alice", http.MethodPost, controllersPath+model, body), 409, "status_exception",
		"Creating a model controller during its corresponding model in DEPLOYING state is not allowed, please either create the model controller after it is deployed or before deploying it. Model ID: "+model)
	// A hidden model's answers do not name it.
	m.IsHidden = true
	a.store.models.Put(model, &m)
	wantError(t, a.doAs(t, "alice", http.MethodPost, controllersPath+model, body), 409, "status_exception",
		"Creating a model controller during its corresponding model in DEPLOYING state is not allowed, please either create the model controller after it is deployed or before deploying it.")
	wantError(t, a.doAs(t, "alice", http.MethodPut, controllersPath+model, body), 409, "status_exception",
		"Model controller haven't been created for the model. Consider calling create model controller api instead.")
	// A model that says it has a controller it has not: getController's 404.
	m.IsControllerEnabled = ptrTo(true)
	a.store.models.Put(model, &m)
	wantError(t, a.doAs(t, "alice", http.MethodPut, controllersPath+model, body), 404, "status_exception", "Failed to find model controller")
}

// Deleting a model deletes its controller, as ML Commons does; a retry of
// a delete that left one behind finds no model and deletes it.
func TestDeleteModelDeletesController(t *testing.T) {
	a := newControllerAPI(t)
	model := deployedModel(t, a)
	a.mustDoAs(t, "alice", http.MethodPost, controllersPath+model, `{"user_rate_limiter":{"bob":{"limit":"1","unit":"DAYS"}}}`)
	a.mustDoAs(t, "alice", http.MethodPost, modelsPath+model+"/_undeploy", ``)
	a.mustDoAs(t, "alice", http.MethodDelete, modelsPath+model, ``)
	if ids := a.store.controllers.IDs(); len(ids) != 0 {
		t.Errorf("controllers after the model's delete: %v, want none", ids)
	}
	a.store.controllers.Put(model, &indexstore.Controller{})
	wantError(t, a.doAs(t, "alice", http.MethodDelete, modelsPath+model, ``), 404, "status_exception", "Failed to find model")
	if ids := a.store.controllers.IDs(); len(ids) != 0 {
		t.Errorf("controllers after deleting a missing model: %v, want none", ids)
	}
}

// Model access control covers a model's controller through its group.
func TestControllerAccess(t *testing.T) {
	a := newACLAPI(t, true, false)
	conn := ownerConnector(t, a, batchConnector())
	_, model := ownerModel(t, a, accessPrivate, conn)
	path := controllersPath + model
	const body = `{"user_rate_limiter":{"peer":{"limit":"1","unit":"SECONDS"}}}`
	denied := "User doesn't have privilege to perform this operation on this model controller. Model ID: " + model
	wantError(t, a.doAs(t, "other", http.MethodPost, path, body), 403, "status_exception", denied)
	a.mustDoAs(t, "owner", http.MethodPost, path, body)
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		wantError(t, a.doAs(t, "other", method, path, body), 403, "status_exception", denied)
	}
	a.mustDoAs(t, "admin", http.MethodGet, path, ``)
	a.mustDoAs(t, "owner", http.MethodDelete, path, ``)
}

// predictOK predicts as user and reports whether the model answered; any
// answer but a 200 or the user-level 429 fails the test.
func predictOK(t *testing.T, a *testAPI, user, path, body string) bool {
	t.Helper()
	rec := a.doAs(t, user, http.MethodPost, path, body)
	switch {
	case rec.Code == http.StatusOK:
		return true
	case rec.Code == http.StatusTooManyRequests:
		wantError(t, rec, 429, "status_exception", "Request is throttled at user level. If you think there's an issue, please contact your cluster admin.")
		return false
	}
	t.Fatalf("%s %s: got %d %s", user, path, rec.Code, rec.Body)
	return false
}

// passes counts how many of n predictions as user pass.
func passes(t *testing.T, a *testAPI, user, path, body string, n int) int {
	t.Helper()
	ok := 0
	for range n {
		if predictOK(t, a, user, path, body) {
			ok++
		}
	}
	return ok
}

// The controller's limiters apply per user to _predict and _batch_predict,
// and an update or delete applies to the next prediction.
func TestControllerEnforcement(t *testing.T) {
	a := newControllerAPI(t)
	model := deployedModel(t, a)
	path := controllersPath + model
	predict, predictBody := modelsPath+model+"/_predict", `{"parameters":{"input":["x"]}}`
	batch, batchBody := modelsPath+model+"/_batch_predict", `{"parameters":{"input_file_id":"f"}}`

	if n := passes(t, a, "alice", predict, predictBody, 5); n != 5 {
		t.Fatalf("without a controller %d of 5 predictions passed", n)
	}
	// Hours, not minutes: no token comes back while the test runs.
	a.mustDoAs(t, "alice", http.MethodPost, path, `{"user_rate_limiter":{"alice":{"limit":"2","unit":"HOURS"}}}`)
	if n := passes(t, a, "alice", predict, predictBody, 4); n != 2 {
		t.Errorf("alice at 2 an hour: %d of 4 predictions passed, want 2", n)
	}
	if n := passes(t, a, "alice", batch, batchBody, 1); n != 0 {
		t.Errorf("alice's batch predict over her limit passed")
	}
	if n := passes(t, a, "bob", predict, predictBody, 5); n != 5 {
		t.Errorf("bob, not in the controller: %d of 5 predictions passed", n)
	}

	// A changed limit is a new, full bucket; bob gets one of his own.
	a.mustDoAs(t, "alice", http.MethodPut, path, `{"user_rate_limiter":{"alice":{"limit":"3"},"bob":{"limit":"1","unit":"HOURS"}}}`)
	if n := passes(t, a, "alice", batch, batchBody, 1) + passes(t, a, "alice", predict, predictBody, 3); n != 3 {
		t.Errorf("alice at 3 an hour: %d of 4 predictions passed, want 3", n)
	}
	if n := passes(t, a, "bob", batch, batchBody, 2); n != 1 {
		t.Errorf("bob at 1 an hour: %d of 2 batch predictions passed, want 1", n)
	}
	// A limiter without a unit limits nothing.
	a.mustDoAs(t, "alice", http.MethodPost, path, `{"user_rate_limiter":{"alice":{"limit":"1"}}}`)
	if n := passes(t, a, "alice", predict, predictBody, 3); n != 3 {
		t.Errorf("alice with a limit and no unit: %d of 3 predictions passed", n)
	}

	a.mustDoAs(t, "alice", http.MethodPost, path, `{"user_rate_limiter":{"alice":{"limit":"0","unit":"DAYS"}}}`)
	if n := passes(t, a, "alice", predict, predictBody, 2); n != 1 {
		t.Errorf("alice at 0: %d of 2 predictions passed, want 1 (ML Commons' bucket starts with a token)", n)
	}
	a.mustDoAs(t, "alice", http.MethodDelete, path, ``)
	if n := passes(t, a, "alice", predict, predictBody, 3); n != 3 {
		t.Errorf("after the delete %d of 3 predictions passed", n)
	}
}

// While controller_enabled is false the controller APIs answer ML Commons'
// 500, and the controllers there are still enforced (ML Commons deploys a
// model's controller whatever the setting).
func TestControllersDisabled(t *testing.T) {
	a := newControllerAPI(t)
	model := deployedModel(t, a)
	path := controllersPath + model
	a.mustDoAs(t, "alice", http.MethodPost, path, `{"user_rate_limiter":{"alice":{"limit":"1","unit":"HOURS"}}}`)
	a.api.ApplySettings(&settings.Effective{RemoteInference: true, OfflineBatchInference: true, MaxBatchInferenceTasks: 10})
	for _, method := range []string{http.MethodPost, http.MethodGet, http.MethodPut, http.MethodDelete} {
		wantError(t, a.doAs(t, "alice", method, path, ``), 500, "illegal_state_exception",
			`Controller is currently disabled. To enable it, update the setting "plugins.ml_commons.controller_enabled" to true.`)
	}
	if n := passes(t, a, "alice", modelsPath+model+"/_predict", `{"parameters":{"input":["x"]}}`, 2); n != 1 {
		t.Errorf("alice at 1 an hour, controllers disabled: %d of 2 predictions passed, want 1", n)
	}
}

// On a cluster without security nobody is a user, and ML Commons limits
// no one.
func TestControllerWithoutSecurity(t *testing.T) {
	a := newTestAPIWith(t, testOptions{remote: okProvider})
	model := a.registerModel(t, "m", a.createConnector(t, openAIConnector()), "?deploy=true")
	a.mustDo(t, http.MethodPost, controllersPath+model, `{"user_rate_limiter":{"":{"limit":"1","unit":"DAYS"}}}`)
	for range 3 {
		a.mustDo(t, http.MethodPost, modelsPath+model+"/_predict", `{"parameters":{"input":["x"]}}`)
	}
}

func ptrTo[T any](v T) *T { return &v }

// A controller body never makes the API answer 5xx, and what is stored is
// what ML Commons would keep: limits that are numbers of at least 0, units
// that are TimeUnit names, no limiter without either.
func FuzzControllerBody(f *testing.F) {
	for _, s := range []string{
		`{"user_rate_limiter":{"alice":{"limit":"4","unit":"MINUTES"}}}`,
		`{"user_rate_limiter":{"alice":{"limit":4.5},"bob":{"unit":"DAYS"},"c.d":{},"e":"{\"limit\":\"1\"}"}}`,
		`{"user_rate_limiter":{"alice":{"limit":"-1"}}}`, `{"user_rate_limiter":{"alice":{"limit":" 1e400 "}}}`,
		`{"user_rate_limiter":{"alice":{"unit":"minutes"}}}`, `{"user_rate_limiter":{"alice":{"unit":7}}}`,
		`{"user_rate_limiter":{"alice":"x"}}`, `{"user_rate_limiter":{"alice":""}}`, `{"user_rate_limiter":{"alice":"[1]"}}`,
		`{"user_rate_limiter":{"alice":null,"alice":{"limit":"1"}}}`, `{"user_rate_limiter":[]}`, `{"user_rate_limiter":1}`,
		`{"model_id":"x"}`, `{}`, ``, `null`, `[]`, `"x"`, `{"user_rate_limiter":{"\u00e9\ud800":{"limit":"NaN","unit":"SECONDS"}}}`,
	} {
		f.Add(s, http.MethodPost)
		f.Add(s, http.MethodPut)
	}
	base := newTestAPIWith(f, testOptions{remote: okProvider})
	f.Fuzz(func(t *testing.T, body, method string) {
		if method != http.MethodPost && method != http.MethodPut {
			return
		}
		a := base
		a.store.reset()
		model := a.registerModel(t, "m", a.createConnector(t, openAIConnector()), "")
		a.store.controllers.Put(model, &indexstore.Controller{UserRateLimiter: map[string]indexstore.RateLimiter{"u": {Limit: "1", Unit: "HOURS"}}})
		rec := a.do(t, method, controllersPath+model, body)
		no5xx(t, rec, method+" "+body)
		if rec.Code != http.StatusOK {
			return
		}
		c := decodeRaw[indexstore.Controller](t, "controller", a.store.controllers.Raw(model))
		for user, rl := range c.UserRateLimiter {
			n, ok := javaDouble(rl.Limit)
			_, unit := timeUnits[rl.Unit]
			if rl.Limit == "" && rl.Unit == "" || rl.Limit != "" && (!ok || n < 0) || rl.Unit != "" && !unit {
				t.Fatalf("stored limiter of %q: %+v", user, rl)
			}
		}
		get := decodeAnswer(t, a.do(t, http.MethodGet, controllersPath+model, ``))
		if got := get["user_rate_limiter"].(map[string]any); len(got) != len(c.UserRateLimiter) {
			t.Fatalf("GET shows %v, stored %v", got, c.UserRateLimiter)
		}
	})
}
