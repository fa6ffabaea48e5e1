package e2e

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path"
	"testing"
)

// decodingHop stands in for a path-prefixed upstream behind nginx: it
// decodes the path and removes dot segments before the node sees it, as
// nginx does with a URI in proxy_pass.
func decodingHop(t *testing.T) string {
	t.Helper()
	target, err := url.Parse(node.url())
	if err != nil {
		t.Fatal(err)
	}
	hop := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.URL.Path = path.Clean(pr.In.URL.Path)
		pr.Out.URL.RawPath = ""
		pr.Out.URL.RawQuery = pr.In.URL.RawQuery
	}})
	t.Cleanup(hop.Close)
	return hop.URL
}

// Given a sidecar whose upstream decodes paths, when a caller sends an ML
// path id that is a path to another index's document, then GET, PUT and
// DELETE answer 404 and that document is neither read, overwritten nor
// deleted.
func TestTrustSearchPathIDsStayInTheirIndex(t *testing.T) {
	const prefix = ".e2e-tsearch8-"
	const victim = "e2e-tsearch-victim8"
	sc := startSidecar(t, "--index-prefix", prefix, "--upstream", decodingHop(t))
	putRaw(t, victim, "v1", `{"name":"victim","description":"untouched"}`)

	evil := "..%2F..%2F" + victim + "%2F_doc%2Fv1"
	for _, tt := range []struct{ method, path, body string }{
		{"GET", "/_plugins/_ml/connectors/" + evil, ""},
		{"PUT", "/_plugins/_ml/connectors/" + evil, `{"description":"overwritten"}`},
		{"DELETE", "/_plugins/_ml/connectors/" + evil, ""},
		{"GET", "/_plugins/_ml/models/" + evil, ""},
		{"PUT", "/_plugins/_ml/models/" + evil, `{"description":"overwritten"}`},
		{"DELETE", "/_plugins/_ml/models/" + evil, ""},
		{"GET", "/_plugins/_ml/model_groups/" + evil, ""},
		{"PUT", "/_plugins/_ml/model_groups/" + evil, `{"description":"overwritten"}`},
		{"DELETE", "/_plugins/_ml/model_groups/" + evil, ""},
		{"GET", "/_plugins/_ml/tasks/" + evil, ""},
		{"DELETE", "/_plugins/_ml/tasks/" + evil, ""},
	} {
		status, _, b := do(t, tt.method, sc.url+tt.path, stringsReader(tt.body), map[string]string{"Content-Type": "application/json"})
		// 404 is the handlers' answer to an id that names nothing; a router
		// that refuses encoded dot segments under /_plugins/_ml answers 400
		// before any handler runs. Either way nothing reaches the node.
		if status != http.StatusNotFound && status != http.StatusBadRequest {
			t.Errorf("%s %s: status %d, want 404: %s", tt.method, tt.path, status, b)
		}
		if json.Valid(b) && string(b) != "" {
			var v map[string]any
			_ = json.Unmarshal(b, &v)
			if v["_source"] != nil || v["name"] == "victim" || v["description"] == "untouched" {
				t.Errorf("%s %s answered the other index's document: %s", tt.method, tt.path, b)
			}
		}
	}

	status, _, b := do(t, "GET", node.url()+"/"+victim+"/_doc/v1", nil, nil)
	var got struct {
		Version int64          `json:"_version"`
		Source  map[string]any `json:"_source"`
	}
	if status != 200 || json.Unmarshal(b, &got) != nil || got.Version != 1 || got.Source["description"] != "untouched" || len(got.Source) != 2 {
		t.Errorf("the other index's document after the requests: %d %s, want version 1 untouched", status, b)
	}
}
