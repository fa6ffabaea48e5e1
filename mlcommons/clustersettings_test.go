package mlcommons

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/indexstore/storetest"
	"github.com/mlsidecar/mlsidecar/mlcommons/secrets"
	"github.com/mlsidecar/mlsidecar/mlcommons/settings"
)

// fakeCluster answers the cluster settings API as a cluster without ML
// Commons would, and records what it received.
type fakeCluster struct {
	mu       sync.Mutex
	received []received
	// status, when set, is the answer to every request (a refusal).
	status int
}

type received struct {
	method, query, body, acceptEncoding string
}

func (c *fakeCluster) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.received = append(c.received, received{r.Method, r.URL.RawQuery, string(b), r.Header.Get("Accept-Encoding")})
	status := c.status
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Header().Set("X-Cluster", "yes")
	if status != 0 {
		w.WriteHeader(status)
		io.WriteString(w, `{"error":{"root_cause":[{"type":"security_exception","reason":"no permissions"}],"type":"security_exception","reason":"no permissions"},"status":403}`)
		return
	}
	flat := r.URL.Query().Has("flat_settings")
	switch {
	case r.Method == http.MethodGet && flat:
		io.WriteString(w, `{"persistent":{"cluster.max_shards_per_node":"5"},"transient":{},"defaults":{"action.auto_create_index":"true"}}`)
	case r.Method == http.MethodGet:
		io.WriteString(w, `{"persistent":{"cluster":{"max_shards_per_node":"5"}},"transient":{}}`)
	case strings.Contains(string(b), "plugins.ml_commons"):
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"the cluster got an ML Commons setting"}`)
	case strings.Contains(string(b), "cluster.max_shards_per_node") && flat:
		io.WriteString(w, `{"acknowledged":true,"persistent":{"cluster.max_shards_per_node":"5"},"transient":{}}`)
	case strings.Contains(string(b), "cluster.max_shards_per_node"):
		io.WriteString(w, `{"acknowledged":true,"persistent":{"cluster":{"max_shards_per_node":"5"}},"transient":{}}`)
	default:
		io.WriteString(w, `{"acknowledged":true,"persistent":{},"transient":{}}`)
	}
}

func (c *fakeCluster) last(t *testing.T) received {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.received) == 0 {
		t.Fatal("the cluster received nothing")
	}
	return c.received[len(c.received)-1]
}

func (c *fakeCluster) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.received)
}

type settingsEnv struct {
	handler  http.Handler
	cluster  *fakeCluster
	repo     *storetest.Repo[indexstore.MLSettings]
	settings *settings.Service
	api      *API
}

func newSettingsEnv(t *testing.T, mode string, ready bool) *settingsEnv {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	e := &settingsEnv{cluster: &fakeCluster{}, repo: storetest.NewRepo[indexstore.MLSettings]()}
	e.api = New(Options{Logger: log, Now: time.Now})
	if ready {
		k, err := secrets.GenerateKey("k1")
		if err != nil {
			t.Fatal(err)
		}
		ring, err := secrets.NewKeyring(k)
		if err != nil {
			t.Fatal(err)
		}
		e.api.keys.Store(ring)
	}
	s, err := settings.New(settings.Options{Repo: e.repo, Mode: mode, Logger: log, Now: time.Now, Apply: e.api.ApplySettings,
		Flags: settings.Flags{TrustedEndpoints: []string{`^https://api\.openai\.com/.*$`}, MaxBatchInferenceTasks: 100,
			StatusFields: []string{"status"}, StatusRegex: map[string]string{"completed": "(completed)"}}})
	if err != nil {
		t.Fatal(err)
	}
	e.settings = s
	e.handler = e.api.ClusterSettings(s, e.cluster)
	return e
}

func (e *settingsEnv) do(t *testing.T, method, target, body string) (int, http.Header, string) {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept-Encoding", "gzip")
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	return rec.Code, rec.Header(), answerText(t, rec)
}

// answerText is the answer's body, gunzipped when it came compressed (the
// requests accept gzip, and the cluster was asked without).
func answerText(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	if rec.Header().Get("Content-Encoding") != "gzip" {
		return rec.Body.String()
	}
	zr, err := gzip.NewReader(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// opensearch-py's http_compress gzips the body of set_trusted_endpoint.
func TestClusterSettingsPutGzipped(t *testing.T) {
	e := newSettingsEnv(t, settings.ModeCluster, true)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(`{"persistent":{"plugins.ml_commons.trusted_connector_endpoints_regex":["^https://x\\.example/.*$"]}}`))
	zw.Close()
	req := httptest.NewRequest("PUT", "/_cluster/settings", &buf)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Accept-Encoding", "gzip")
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	body := answerText(t, rec)
	if rec.Code != 200 || rec.Header().Get("Content-Encoding") != "gzip" || !strings.Contains(body, "trusted_connector_endpoints_regex") {
		t.Fatalf("gzipped PUT: %d %v %s, want 200, a gzipped answer naming the setting", rec.Code, rec.Header(), body)
	}
	if doc := e.stored(t); doc == nil || len(doc.Persistent) != 1 {
		t.Errorf("stored %+v, want the regex", doc)
	}
}

func (e *settingsEnv) stored(t *testing.T) *indexstore.MLSettings {
	t.Helper()
	doc, _, err := e.repo.Get(context.Background(), indexstore.MLSettingsID)
	if err != nil {
		return nil
	}
	return doc
}

func TestClusterSettingsPut(t *testing.T) {
	t.Run("ML settings and others", func(t *testing.T) {
		e := newSettingsEnv(t, settings.ModeCluster, true)
		status, header, body := e.do(t, "PUT", "/_cluster/settings",
			`{"persistent":{"plugins.ml_commons.only_run_on_ml_node":false,"cluster.max_shards_per_node":5}}`)
		if status != 200 || header.Get("X-Cluster") != "yes" {
			t.Fatalf("%d %v %s", status, header, body)
		}
		jsonEqualT(t, body, `{"acknowledged":true,"persistent":{"cluster":{"max_shards_per_node":"5"},"plugins":{"ml_commons":{"only_run_on_ml_node":"false"}}},"transient":{}}`)
		got := e.cluster.last(t)
		if got.body != `{"persistent":{"cluster.max_shards_per_node":5}}` || got.acceptEncoding != "" {
			t.Errorf("the cluster received %+v", got)
		}
		if doc := e.stored(t); doc == nil || string(doc.Persistent["plugins.ml_commons.only_run_on_ml_node"]) != `"false"` {
			t.Errorf("stored %+v", doc)
		}
	})
	t.Run("only ML settings: the cluster authorizes a no-op", func(t *testing.T) {
		e := newSettingsEnv(t, settings.ModeCluster, true)
		status, _, body := e.do(t, "PUT", "/_cluster/settings?flat_settings=true",
			`{"persistent":{"plugins":{"ml_commons":{"model_access_control_enabled":true}}}}`)
		if status != 200 {
			t.Fatalf("%d %s", status, body)
		}
		jsonEqualT(t, body, `{"acknowledged":true,"persistent":{"plugins.ml_commons.model_access_control_enabled":"true"},"transient":{}}`)
		if got := e.cluster.last(t); got.body != string(settings.NoOp) || got.query != "flat_settings=true" {
			t.Errorf("the cluster received %+v", got)
		}
		if !e.api.modelAccessControl() {
			t.Error("model access control is not on after the update")
		}
	})
	t.Run("the cluster refuses the caller", func(t *testing.T) {
		e := newSettingsEnv(t, settings.ModeCluster, true)
		e.cluster.status = http.StatusForbidden
		status, header, body := e.do(t, "PUT", "/_cluster/settings", `{"persistent":{"plugins.ml_commons.connector.private_ip_enabled":true}}`)
		if status != 403 || !strings.Contains(body, "security_exception") || header.Get("X-Cluster") != "yes" {
			t.Errorf("%d %s, want the cluster's 403", status, body)
		}
		if doc := e.stored(t); doc != nil {
			t.Errorf("stored %+v after the cluster's refusal", doc)
		}
	})
	t.Run("a bad value never reaches the cluster", func(t *testing.T) {
		e := newSettingsEnv(t, settings.ModeCluster, true)
		status, _, body := e.do(t, "PUT", "/_cluster/settings", `{"persistent":{"plugins.ml_commons.max_batch_inference_tasks":-1,"a":1}}`)
		want := `{"error":{"root_cause":[{"type":"illegal_argument_exception","reason":"Failed to parse value [-1] for setting [plugins.ml_commons.max_batch_inference_tasks] must be >= 0"}],` +
			`"type":"illegal_argument_exception","reason":"Failed to parse value [-1] for setting [plugins.ml_commons.max_batch_inference_tasks] must be >= 0"},"status":400}`
		if status != 400 || body != want {
			t.Errorf("%d %s", status, body)
		}
		if n := e.cluster.count(); n != 0 {
			t.Errorf("the cluster received %d requests", n)
		}
	})
	t.Run("no ML settings: the body as it came", func(t *testing.T) {
		e := newSettingsEnv(t, settings.ModeCluster, false)
		in := `{ "persistent" : { "cluster.max_shards_per_node" : 5 } }`
		if status, _, body := e.do(t, "PUT", "/_cluster/settings", in); status != 200 {
			t.Fatalf("%d %s", status, body)
		}
		if got := e.cluster.last(t); got.body != in {
			t.Errorf("the cluster received %q, want %q", got.body, in)
		}
	})
	t.Run("not ready", func(t *testing.T) {
		e := newSettingsEnv(t, settings.ModeCluster, false)
		if status, _, body := e.do(t, "PUT", "/_cluster/settings", `{"persistent":{"plugins.ml_commons.only_run_on_ml_node":false}}`); status != 503 {
			t.Errorf("%d %s, want 503", status, body)
		}
	})
	t.Run("locked", func(t *testing.T) {
		e := newSettingsEnv(t, settings.ModeLocked, true)
		status, _, body := e.do(t, "PUT", "/_cluster/settings", `{"persistent":{"plugins.ml_commons.only_run_on_ml_node":false}}`)
		if status != 400 || !strings.Contains(body, "--ml-settings=locked") {
			t.Errorf("%d %s, want the locked refusal", status, body)
		}
		// A reset of everything is the cluster's alone then.
		in := `{"persistent":{"*":null}}`
		if status, _, body := e.do(t, "PUT", "/_cluster/settings", in); status != 200 || e.cluster.last(t).body != in {
			t.Errorf("%d %s; the cluster received %q", status, body, e.cluster.last(t).body)
		}
	})
}

func TestClusterSettingsGet(t *testing.T) {
	e := newSettingsEnv(t, settings.ModeCluster, true)
	if status, _, body := e.do(t, "PUT", "/_cluster/settings", `{"transient":{"plugins.ml_commons.max_batch_inference_tasks":7}}`); status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	status, header, body := e.do(t, "GET", "/_cluster/settings", "")
	if status != 200 || header.Get("X-Cluster") != "yes" {
		t.Fatalf("%d %s", status, body)
	}
	jsonEqualT(t, body, `{"persistent":{"cluster":{"max_shards_per_node":"5"}},"transient":{"plugins":{"ml_commons":{"max_batch_inference_tasks":"7"}}}}`)

	_, _, body = e.do(t, "GET", "/_cluster/settings?flat_settings=true&include_defaults=true&pretty", "")
	if !strings.Contains(body, "\n  \"persistent\" : {") {
		t.Errorf("not pretty: %s", body)
	}
	var v struct{ Transient, Defaults map[string]any }
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	if v.Transient["plugins.ml_commons.max_batch_inference_tasks"] != "7" || v.Defaults["action.auto_create_index"] != "true" ||
		v.Defaults["plugins.ml_commons.connector.private_ip_enabled"] != "false" || v.Defaults["plugins.ml_commons.max_batch_inference_tasks"] != nil {
		t.Errorf("flat with defaults: %s", body)
	}

	e.cluster.status = http.StatusForbidden
	status, _, body = e.do(t, "GET", "/_cluster/settings", "")
	if status != 403 || strings.Contains(body, "ml_commons") {
		t.Errorf("a refused GET: %d %s, want the cluster's answer as it is", status, body)
	}
}

func TestApplySettings(t *testing.T) {
	e := newSettingsEnv(t, settings.ModeCluster, true)
	if e.api.modelAccessControl() || e.api.connectorAccessControl() || e.api.remoteInference() != nil {
		t.Fatal("not the flags' values at start")
	}
	e.api.ApplySettings(&settings.Effective{ModelAccessControl: true, ConnectorAccessControl: true, RemoteInference: false})
	if !e.api.modelAccessControl() || !e.api.connectorAccessControl() {
		t.Error("access control is not on")
	}
	if err := e.api.remoteInference(); err == nil || !strings.Contains(err.Error(), "Remote Inference is currently disabled") {
		t.Errorf("remote inference: %v, want the refusal", err)
	}
}

func jsonEqualT(t *testing.T, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("%s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Errorf("got  %s\nwant %s", gb, wb)
	}
}

// plugins.ml_commons.remote_inference.enabled false refuses what ML
// Commons refuses: connector create and update, remote register, deploy,
// predict and batch predict.
func TestRemoteInferenceDisabledRefusesRemoteWork(t *testing.T) {
	a := newTestAPI(t)
	conn := a.createConnector(t, openAIConnector())
	model := a.registerModel(t, "m", conn, "")
	a.api.ApplySettings(&settings.Effective{RemoteInference: false, OfflineBatchInference: true, MaxBatchInferenceTasks: 10})
	reason := `Remote Inference is currently disabled. To enable it, update the setting "plugins.ml_commons.remote_inference_enabled" to true.`
	for _, tt := range []struct{ method, path, body string }{
		{http.MethodPost, connectorsPath + "_create", toJSON(t, openAIConnector())},
		{http.MethodPut, connectorsPath + conn, `{"description":"x"}`},
		{http.MethodPost, registerPath, toJSON(t, map[string]any{"name": "x", "function_name": "remote", "connector_id": conn})},
		{http.MethodPost, modelsPath + model + "/_deploy", ``},
		{http.MethodPost, modelsPath + model + "/_predict", `{"parameters":{"input":["x"]}}`},
		{http.MethodPost, modelsPath + model + "/_batch_predict", `{"parameters":{}}`},
	} {
		wantError(t, a.do(t, tt.method, tt.path, tt.body), 500, "illegal_state_exception", reason)
	}
	// Reads still work.
	a.mustDo(t, http.MethodGet, connectorsPath+conn, ``)
}
