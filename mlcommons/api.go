// Package mlcommons serves the OpenSearch ML Commons REST API
// (/_plugins/_ml/...) inside the sidecar: connectors, remote models, model
// groups and tasks, stored through indexstore. Routes it does not serve
// answer the way OpenSearch answers a route it does not know, so nothing
// under /_plugins/_ml ever reaches the cluster by accident.
package mlcommons

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/crypto"
	"github.com/mlsidecar/mlsidecar/mlcommons/outbound"
	"github.com/mlsidecar/mlsidecar/mlcommons/remote"
)

// Store is what the API needs of indexstore.
type Store interface {
	Index(c indexstore.Collection) string
	Get(ctx context.Context, c indexstore.Collection, id string) (*indexstore.Doc, error)
	Create(ctx context.Context, c indexstore.Collection, id string, source any, refresh bool) (*indexstore.WriteResult, error)
	Replace(ctx context.Context, c indexstore.Collection, doc *indexstore.Doc, source any, refresh bool) (*indexstore.WriteResult, error)
	Delete(ctx context.Context, c indexstore.Collection, doc *indexstore.Doc) (*indexstore.WriteResult, error)
	Search(ctx context.Context, c indexstore.Collection, body []byte, params url.Values) (json.RawMessage, error)
	Count(ctx context.Context, c indexstore.Collection, query any) (int64, error)
	Refresh(ctx context.Context, c indexstore.Collection) error
	Scan(ctx context.Context, c indexstore.Collection, query any, pageSize int, visit func([]indexstore.Doc) error) error
}

// Options configure the API.
type Options struct {
	Store Store
	Guard *outbound.Guard
	// Remote executes every provider call.
	Remote *remote.Engine
	// NodeID names this sidecar where ML Commons names an OpenSearch node
	// (worker_node, planning_worker_nodes, stats).
	NodeID string
	// MaxBodyBytes bounds request bodies; larger ones get 413.
	MaxBodyBytes int64
	Batch        BatchOptions
	Logger       *slog.Logger
	Registerer   prometheus.Registerer
	Now          func() time.Time
}

// API is the ML Commons REST API.
type API struct {
	store    Store
	guard    *outbound.Guard
	remote   *remote.Engine
	nodeID   string
	maxBody  int64
	batch    BatchOptions
	metrics  *metrics
	log      *slog.Logger
	now      func() time.Time
	limiters modelLimiters
	// requests and failures count this replica's predictions (_predict and
	// _batch_predict), as ML Commons' ml_request_count and ml_failure_count.
	requests, failures atomic.Int64
	// keys is set once start-up has found or created the master key; until
	// then ML requests answer 503.
	keys atomic.Pointer[crypto.Keyring]
}

// New returns the ML Commons API. It serves requests once SetKeyring has
// been called.
func New(o Options) *API {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = 10 << 20
	}
	if o.Batch.PollInterval == 0 {
		o.Batch = DefaultBatchOptions()
	}
	return &API{store: o.Store, guard: o.Guard, remote: o.Remote, nodeID: o.NodeID, maxBody: o.MaxBodyBytes,
		batch: o.Batch, metrics: newMetrics(o.Registerer), log: o.Logger, now: o.Now}
}

// SetKeyring installs the credential keys; the API is ready from then on.
func (a *API) SetKeyring(k *crypto.Keyring) { a.keys.Store(k) }

// Ready reports whether the API can serve requests.
func (a *API) Ready() bool { return a.keys.Load() != nil }

func (a *API) keyring() *crypto.Keyring { return a.keys.Load() }

// apiFunc handles one request and returns the value to answer with.
type apiFunc func(r *http.Request) (any, error)

// withStatus answers with a status other than 200.
type withStatus struct {
	status int
	body   any
}

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

// wrap adapts an apiFunc: readiness, the JSON answer, and the one place
// where errors become statuses.
func (a *API) wrap(f apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.Ready() {
			writeError(w, &Error{Status: http.StatusServiceUnavailable, Type: "status_exception",
				Reason: "mlsidecar is starting: its indices or master key are not ready yet; retry shortly"})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, a.maxBody)
		v, err := f(r)
		if err != nil {
			if r.Context().Err() != nil {
				return // the client went away: nobody to answer, nothing failed
			}
			e, clientErr := toError(err)
			if !clientErr {
				a.log.ErrorContext(r.Context(), "ML request failed", "path", r.URL.Path, "err", err)
			}
			writeError(w, e)
			return
		}
		status := http.StatusOK
		if ws, ok := v.(withStatus); ok {
			status, v = ws.status, ws.body
		}
		writeJSON(w, status, v)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // OpenSearch writes <, > and & as they are
	if raw, ok := v.(json.RawMessage); ok {
		buf.Write(raw)
	} else if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":{"root_cause":[{"type":"exception","reason":"cannot encode answer"}],"type":"exception","reason":"cannot encode answer"},"status":500}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Header().Set("Content-Length", fmt.Sprint(len(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))))
	w.WriteHeader(status)
	_, _ = w.Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

type errorCause struct {
	Type   string `json:"type"`
	Reason string `json:"reason"`
}

func writeError(w http.ResponseWriter, e *Error) {
	cause := errorCause{Type: e.Type, Reason: e.Reason}
	writeJSON(w, e.Status, map[string]any{
		"error": map[string]any{
			"root_cause": []errorCause{cause},
			"type":       e.Type,
			"reason":     e.Reason,
		},
		"status": e.Status,
	})
}

// decodeBody decodes a JSON object body into v. Unknown fields are
// tolerated, as in ML Commons; an empty body is an error when required.
func decodeBody(r *http.Request, v any, required bool) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return decodeBodyErr(err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		if required {
			return errEmptyBody
		}
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return parseErr("Failed to parse request body: %s", jsonErrText(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return parseErr("Failed to parse request body: unexpected data after the JSON object")
	}
	return nil
}

// errEmptyBody is the answer to a required body that is missing.
var errEmptyBody = parseErr("Request body is empty")

// decodeBodyErr turns a body read error into the answer for it.
func decodeBodyErr(err error) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return &Error{Status: http.StatusRequestEntityTooLarge, Type: "content_too_long_exception",
			Reason: fmt.Sprintf("request body is larger than the limit of [%d] bytes", tooBig.Limit)}
	}
	return err
}

// jsonErrText describes a decoding error without Go type names.
func jsonErrText(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field != "" {
			return fmt.Sprintf("field [%s] cannot take a JSON %s", te.Field, te.Value)
		}
		return fmt.Sprintf("expected a JSON object, got a JSON %s", te.Value)
	}
	return err.Error()
}

// pathVar returns a decoded path variable (the router keeps paths encoded).
func pathVar(r *http.Request, name string) string {
	v := mux.Vars(r)[name]
	if u, err := url.PathUnescape(v); err == nil {
		return u
	}
	return v
}

// unmatched answers a request no route took as OpenSearch's RestController
// does: 405 listing the allowed methods when the path exists for other
// methods, else 400 "no handler found" with the decoded path and no query.
func unmatched(router *mux.Router) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var allowed []string
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
			probe := r.Clone(r.Context())
			probe.Method = m
			var match mux.RouteMatch
			if router.Match(probe, &match) && match.MatchErr == nil {
				allowed = append(allowed, m)
			}
		}
		if len(allowed) == 0 {
			writeRaw(w, r, http.StatusBadRequest, map[string]any{
				"error": fmt.Sprintf("no handler found for uri [%s] and method [%s]", r.URL.Path, r.Method),
			})
			return
		}
		sort.Strings(allowed)
		writeRaw(w, r, http.StatusMethodNotAllowed, map[string]any{
			"error":  fmt.Sprintf("Incorrect HTTP method for uri [%s] and method [%s], allowed: [%s]", r.URL.Path, r.Method, strings.Join(allowed, ", ")),
			"status": http.StatusMethodNotAllowed,
		})
	})
}

func writeRaw(w http.ResponseWriter, r *http.Request, status int, v any) {
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, v)
}
