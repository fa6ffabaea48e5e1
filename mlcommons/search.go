package mlcommons

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/connector"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

// search serves /<collection>/_search: any query DSL body, run against the
// sidecar's index, with credentials removed from every _source in the answer
// whatever the caller's _source filter.
func (a *API) search(c indexstore.Collection) apiFunc {
	return func(r *http.Request) (any, error) {
		body, err := readBody(r)
		if err != nil {
			return nil, err
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
		if c != indexstore.ModelGroups && hasScript(req) {
			// A script could read _source, credential included.
			return nil, mlerr.IllegalArgument("scripts and runtime fields are not allowed in searches of connectors, models and tasks")
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
		b, err := json.Marshal(req)
		if err != nil {
			return nil, err
		}
		raw, err := a.store.Search(r.Context(), c, b, searchParams(r.URL.Query()))
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

// searchParams passes the caller's query parameters on, except those that
// change what OpenSearch's answer looks like before the sidecar filters it.
func searchParams(q url.Values) url.Values {
	out := url.Values{}
	for k, v := range q {
		switch k {
		case "filter_path", "pretty", "human", "error_trace", "format", "typed_keys":
			continue
		}
		out[k] = v
	}
	return out
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
// inner hits and top_hits aggregations.
func stripCredentials(v any) {
	switch t := v.(type) {
	case map[string]any:
		if src, ok := t["_source"].(map[string]any); ok {
			delete(src, "credential")
			delete(src, "batch")
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
