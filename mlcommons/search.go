package mlcommons

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/connector"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
	"github.com/mlsidecar/mlsidecar/mlcommons/searchdsl"
)

// search serves /<collection>/_search: a search body within the allow-list
// of searchbody.go, run against the sidecar's index with its own rights,
// with credentials removed from every _source in the answer whatever the
// caller's _source filter.
func (a *API) search(c indexstore.Collection) apiFunc {
	return func(r *http.Request) (any, error) {
		body, err := readBody(r)
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(body)) == 0 && !r.URL.Query().Has("source") {
			// ML Commons parses contentOrSourceParamParser before anything.
			return nil, mlerr.Parse("request body or source parameter is required")
		}
		params, err := searchdsl.CheckParams(r.URL.Path, r.URL.Query())
		if err != nil {
			return nil, err
		}
		// ML Commons searches with both, whatever the request says.
		params.Set("seq_no_primary_term", "true")
		params.Set("version", "true")
		if len(bytes.TrimSpace(body)) == 0 {
			// As in OpenSearch, a GET without a body may carry it in ?source=.
			body = []byte(r.URL.Query().Get("source"))
		}
		var req map[string]any
		if len(bytes.TrimSpace(body)) > 0 {
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.UseNumber()
			if err := dec.Decode(&req); err != nil {
				return nil, mlerr.Parse("Failed to parse search request body: %s", connector.JSONErrText(err))
			}
		}
		if req == nil { // no body, or a JSON null
			req = map[string]any{}
		}
		if hasScript(req) {
			// A script could read _source, credential included.
			return nil, mlerr.IllegalArgument("scripts and runtime fields are not allowed in ML searches")
		}
		if err := searchdsl.CheckBody(c, req); err != nil {
			return nil, err
		}
		if c == indexstore.Models {
			// ML Commons never shows hidden models.
			query, ok := req["query"]
			if !ok {
				query = map[string]any{"match_all": map[string]any{}}
			}
			req["query"] = map[string]any{"bool": map[string]any{
				"must":     []any{query},
				"must_not": []any{map[string]any{"term": map[string]any{"is_hidden": true}}},
			}}
		}
		filter, err := a.searchFilter(r.Context(), c)
		if err != nil {
			return nil, err
		}
		if filter != nil {
			query, ok := req["query"]
			if !ok {
				query = map[string]any{"match_all": map[string]any{}}
			}
			req["query"] = map[string]any{"bool": map[string]any{"must": []any{query}, "filter": []any{filter}}}
		}
		b, err := json.Marshal(req)
		if err != nil {
			return nil, err
		}
		if c == indexstore.Tasks {
			// Tasks are written without a refresh (submissions are many,
			// searches few): one refresh here makes every task written so
			// far, by any replica, searchable, as ML Commons' refresh on
			// each task write does.
			if err := a.store.RefreshTasks(r.Context()); err != nil {
				return nil, err
			}
		}
		raw, err := a.store.Search(r.Context(), c, b, params)
		if err != nil {
			return nil, err
		}
		if c == indexstore.ModelGroups {
			return raw, nil
		}
		var res any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&res); err != nil {
			return nil, err
		}
		stripCredentials(res)
		return res, nil
	}
}

// hasScript finds script, script_fields or runtime_mappings anywhere in a
// search body.
func hasScript(v any) bool {
	switch t := v.(type) {
	case map[string]any:
		for k, child := range t {
			if k == "script" || k == "script_fields" || k == "runtime_mappings" || k == "scripted_metric" || hasScript(child) {
				return true
			}
		}
	case []any:
		for _, child := range t {
			if hasScript(child) {
				return true
			}
		}
	}
	return false
}

// stripCredentials removes credential (and connector.credential) and the
// sidecar's batch bookkeeping from every _source in a search answer: hits,
// inner hits and top_hits aggregations; the ingestion bookkeeping too.
func stripCredentials(v any) {
	switch t := v.(type) {
	case map[string]any:
		if src, ok := t["_source"].(map[string]any); ok {
			delete(src, "credential")
			delete(src, "batch")
			delete(src, "ingest")
			if c, ok := src["connector"].(map[string]any); ok {
				delete(c, "credential")
			}
		}
		for _, child := range t {
			stripCredentials(child)
		}
	case []any:
		for _, child := range t {
			stripCredentials(child)
		}
	}
}
