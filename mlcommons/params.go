package mlcommons

import (
	"net/http"
	"strings"

	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

// responseParams are the query parameters OpenSearch itself reads on every
// route (the REST channel and controller), whatever the handler.
var responseParams = []string{"error_trace", "filter_path", "format", "human", "pretty"}

// pathParamNames are ML Commons' names of the routes' path variables: a
// query parameter of that name is consumed by the handler, and "did you
// mean" suggests them.
var pathParamNames = map[string]map[string]string{
	"connectors":   {"id": "connector_id"},
	"model_groups": {"id": "model_group_id"},
	"models":       {"id": "model_id"},
	"tasks":        {"id": "task_id"},
	"_predict":     {"id": "model_id", "algorithm": "algorithm"},
	"profile":      {"id": "model_id"},
	"controllers":  {"id": "model_id"},
}

// paramCheck refuses the query parameters a route does not read, with
// OpenSearch's BaseRestHandler text: "request [<path>] contains
// unrecognized parameter: [x] -> did you mean [y]?".
type paramCheck struct {
	anything bool // the _search routes check their own (searchdsl)
	known    map[string]bool
}

func newParamCheck(path string, params []string) *paramCheck {
	c := &paramCheck{known: map[string]bool{}}
	for _, p := range params {
		if p == "*" {
			c.anything = true
		}
		c.known[p] = true
	}
	for _, p := range responseParams {
		c.known[p] = true
	}
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	names := pathParamNames[segs[0]]
	if segs[0] == "profile" && strings.HasPrefix(path, "/profile/tasks/") {
		names = map[string]string{"id": "task_id"}
	}
	for _, s := range segs {
		if v, ok := strings.CutPrefix(s, "{"); ok {
			v = strings.TrimSuffix(v, "}")
			switch {
			case names[v] != "":
				c.known[names[v]] = true
			case v == "node":
				c.known["nodeId"] = true
			default:
				c.known[v] = true
			}
		}
	}
	return c
}

func (c *paramCheck) check(r *http.Request) error {
	if c == nil || c.anything || r.URL.RawQuery == "" {
		return nil
	}
	var unknown []string
	for k := range r.URL.Query() {
		if !c.known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	candidates := make([]string, 0, len(c.known))
	for k := range c.known {
		candidates = append(candidates, k)
	}
	return mlerr.UnrecognizedParams(r.URL.Path, unknown, candidates)
}
