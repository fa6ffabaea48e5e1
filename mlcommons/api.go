// Package mlcommons serves the OpenSearch ML Commons REST API
// (/_plugins/_ml/...) inside the sidecar. Routes it does not serve answer the
// way OpenSearch answers a route it does not know, so nothing under
// /_plugins/_ml ever reaches the cluster by accident.
package mlcommons

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/gorilla/mux"
)

// API is the ML Commons REST API.
type API struct {
	log *slog.Logger
}

// New returns the ML Commons API.
func New(log *slog.Logger) *API {
	return &API{log: log}
}

// Register adds the API's routes to r, a router that receives every request
// under /_plugins/_ml. Requests no route takes get OpenSearch's answer for an
// unknown route.
func (a *API) Register(r *mux.Router) {
	r.NotFoundHandler = http.HandlerFunc(noHandler)
	r.MethodNotAllowedHandler = http.HandlerFunc(noHandler)
}

// noHandler answers exactly as OpenSearch's RestController does for a path
// and method it has no handler for.
func noHandler(w http.ResponseWriter, r *http.Request) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // OpenSearch writes <, > and & as they are
	_ = enc.Encode(map[string]string{
		"error": fmt.Sprintf("no handler found for uri [%s] and method [%s]", r.URL.Path, r.Method),
	})
	body := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(http.StatusBadRequest)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}
