package mlcommons

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mlsidecar/mlsidecar/indexstore"
)

// TestSearchAttacksRefused sends the attacks of the issue to the search
// routes: each is a 400 naming the clause, and nothing reaches the index.
func TestSearchAttacksRefused(t *testing.T) {
	attacks := []struct{ name, path, body, reason string }{
		{"master key by terms lookup and profile", "_search",
			`{"query":{"terms":{"name.keyword":{"index":".mlsidecar-config","id":"master_key","path":"master_key"}}},"profile":true}`, "option [profile]"},
		{"another index by terms lookup", "_search",
			`{"query":{"terms":{"name.keyword":{"index":"victim","id":"v1","path":"secret"}}}}`, "terms lookup"},
		{"bookkeeping by docvalue_fields", "_search", `{"docvalue_fields":["batch.*"]}`, "field [batch.*]"},
		{"body in the source parameter", "_search?source=" + url.QueryEscape(`{"query":{"terms":{"name.keyword":{"index":"victim","id":"v1","path":"p"}}}}`) +
			"&source_content_type=application/json", "", "terms lookup"},
		{"q parameter", "_search?q=batch.provider:openai", "", "contains unrecognized parameter: [q]"},
		{"docvalue_fields parameter", "_search?docvalue_fields=batch.provider", "", "contains unrecognized parameter: [docvalue_fields]"},
		{"sort parameter on a bookkeeping field", "_search?sort=batch.lease_owner:asc", "", "field [batch.lease_owner]"},
	}
	for _, tt := range attacks {
		for _, base := range []string{connectorsPath, modelsPath, groupsPath, tasksPath} {
			t.Run(tt.name+" "+base, func(t *testing.T) {
				a := newTestAPI(t)
				body := tt.body
				if body == "" && !strings.Contains(tt.path, "source=") {
					body = `{}` // a search needs a body or source first
				}
				for _, method := range []string{http.MethodGet, http.MethodPost} {
					rec := a.do(t, method, base+tt.path, body)
					if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), tt.reason) ||
						!strings.Contains(rec.Body.String(), `"type":"illegal_argument_exception"`) {
						t.Errorf("%s: got %d %s, want 400 naming %q", method, rec.Code, rec.Body, tt.reason)
					}
				}
				for _, s := range a.store.searchCalls() {
					t.Errorf("refused search reached the store: %+v", s)
				}
			})
		}
	}
}

func TestSearchSourceParameter(t *testing.T) {
	a := newTestAPI(t)
	a.mustDo(t, http.MethodGet, tasksPath+"_search?source="+url.QueryEscape(`{"query":{"term":{"state":"RUNNING"}},"size":3}`)+"&source_content_type=application/json", "")
	got := a.store.lastSearch(t, indexstore.Tasks)
	if diff := cmp.Diff(generic(t, `{"query":{"term":{"state":"RUNNING"}},"size":3}`), normalize(t, got.Body)); diff != "" {
		t.Errorf("body sent to the store mismatch (-want +got):\n%s", diff)
	}
	if got.Params.Has("source") || got.Params.Has("source_content_type") {
		t.Errorf("params sent to the store = %v, want no source", got.Params)
	}
}
