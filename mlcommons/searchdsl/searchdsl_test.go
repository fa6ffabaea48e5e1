package searchdsl

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

var allCollections = []indexstore.Collection{indexstore.Connectors, indexstore.Models, indexstore.ModelGroups, indexstore.Tasks}

// decodeSearch decodes a body as the handler does.
func decodeSearch(t testing.TB, s string) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("%v: %s", err, s)
	}
	return m
}

// The bodies OpenSearch Dashboards' Machine Learning pages and ML Commons
// clients send, and the rest of the allow-list.
func TestSearchBodyAllowed(t *testing.T) {
	tests := []struct{ name, body string }{
		{"empty", `{}`},
		{"dashboards connectors", `{"query":{"match_all":{}},"from":0,"size":50}`},
		{"dashboards models", `{"query":{"bool":{"must":[{"terms":{"model_state":["DEPLOYED","PARTIALLY_DEPLOYED"]}},
			{"wildcard":{"name.keyword":{"value":"*OpenAI*","case_insensitive":true}}}],
			"must_not":{"exists":{"field":"chunk_number"}}}},"from":0,"size":50,"sort":[{"name.keyword":{"order":"asc"}}]}`},
		{"dashboards model by id", `{"query":{"bool":{"must":[{"term":{"_id":"abc"}},{"term":{"algorithm":{"value":"REMOTE"}}},
			{"terms":{"connector_id.keyword":["c1"]}}],"must_not":[{"exists":{"field":"chunk_number"}}]}},
			"sort":[{"model_state":{"order":"desc"}}],"aggs":{"connector_names":{"terms":{"field":"connector.name.keyword","size":10000}}}}`},
		{"dashboards ids and name or id", `{"query":{"bool":{"must":[{"ids":{"values":["a","b"]}},{"bool":{"should":[
			{"wildcard":{"name.keyword":{"value":"*x*","case_insensitive":true}}},{"term":{"_id":{"value":"x"}}}]}}]}},"sort":[{"model_version":"desc"},{"_id":"asc"}]}`},
		{"dashboards aggregate models", `{"size":0,"query":{"bool":{"must":[{"match":{"name":"x"}}],"must_not":{"exists":{"field":"chunk_number"}}}},
			"aggs":{"models":{"terms":{"field":"name.keyword","size":10000},"aggs":{"latest_version_hits":{"top_hits":{
			"sort":[{"created_time":{"order":"desc"}}],"size":1,"_source":["model_version","model_state","description","created_time"]}}}}}}`},
		{"dashboards versions", `{"size":3,"query":{"bool":{"should":[{"term":{"name.keyword":"a"}}],"must_not":{"exists":{"field":"chunk_number"}}}},
			"_source":["name","model_version","model_state","model_id"]}`},
		{"dashboards connector names", `{"size":0,"aggs":{"unique_connector_names":{"terms":{"field":"connector.name.keyword","size":100}}}}`},
		{"task search", `{"query":{"bool":{"filter":[{"term":{"task_type":"BATCH_PREDICTION"}},{"range":{"create_time":{"gte":"now-1d"}}}]}},"size":100,"track_total_hits":true}`},
		{"match variants", `{"query":{"dis_max":{"queries":[{"match_phrase":{"description":"a b"}},{"match_phrase_prefix":{"description":{"query":"a","max_expansions":5}}},
			{"multi_match":{"query":"x","fields":["name^2","description"]}},{"prefix":{"name.keyword":"O"}},{"regexp":{"name.keyword":"O.*"}},
			{"fuzzy":{"name":{"value":"opnai","fuzziness":"AUTO"}}},{"match_none":{}},{"constant_score":{"filter":{"term":{"is_enabled":true}},"boost":2}}]}}}`},
		{"boosting and post_filter", `{"query":{"boosting":{"positive":{"match_all":{}},"negative":{"term":{"model_state":"UNDEPLOYED"}},"negative_boost":0.5}},
			"post_filter":{"term":{"algorithm":"REMOTE"}}}`},
		{"source filters", `{"_source":{"includes":["name","credential.*"],"excludes":"description"},"version":true,"seq_no_primary_term":true}`},
		{"source false", `{"_source":false}`},
		{"fields of ordinary fields", `{"docvalue_fields":["name.keyword",{"field":"created_time","format":"epoch_millis"}],"fields":["state"],"stored_fields":"_none_"}`},
		{"search_after", `{"sort":[{"created_time":"desc"},"_id"],"search_after":[1700000000000,"abc"]}`},
		{"metric and bucket aggregations", `{"aggs":{"s":{"stats":{"field":"progress"}},"c":{"cardinality":{"field":"model_id"}},
			"h":{"date_histogram":{"field":"create_time","calendar_interval":"day","min_doc_count":0,"extended_bounds":{"min":0,"max":1}}},
			"r":{"range":{"field":"progress","ranges":[{"to":0.5},{"from":0.5,"key":"half"}]}},
			"f":{"filter":{"term":{"state":"FAILED"}},"aggs":{"n":{"value_count":{"field":"model_id"}}}},
			"fs":{"filters":{"filters":{"a":{"term":{"state":"A"}},"b":{"match_all":{}}}}},
			"t":{"terms":{"field":"state","order":[{"_count":"desc"},{"_key":"asc"}],"include":["A","B"],"exclude":{"partition":0,"num_partitions":2}}}}}`},
		{"field named like a forbidden option", `{"query":{"term":{"index":"x"}},"sort":[{"profile":"asc"}]}`},
		{"credentials is not credential", `{"query":{"exists":{"field":"credentials"}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, c := range allCollections {
				if err := CheckBody(c, decodeSearch(t, tt.body)); err != nil {
					t.Errorf("%s: got %v, want allowed", c, err)
				}
			}
		})
	}
}

func TestSearchBodyRefused(t *testing.T) {
	tests := []struct {
		name, body string
		only       indexstore.Collection // refused only there; "" = everywhere
		reason     string
	}{
		{name: "terms lookup of the master key", body: `{"query":{"terms":{"name.keyword":{"index":".mlsidecar-config","id":"master_key","path":"master_key"}}},"profile":true}`,
			reason: "option [profile] is not allowed in ML searches"},
		{name: "terms lookup", body: `{"query":{"bool":{"must":[{"terms":{"name.keyword":{"index":"victim","id":"v1","path":"secret"}}}]}}}`,
			reason: "terms lookup is not allowed in ML searches (at [query.bool.must[0].terms.name.keyword])"},
		{name: "profile", body: `{"profile":true}`, reason: "option [profile] is not allowed in ML searches"},
		{name: "profile false", body: `{"profile":false}`, reason: "option [profile]"},
		{name: "explain", body: `{"explain":true}`, reason: "option [explain] is not allowed in ML searches"},
		{name: "search_pipeline", body: `{"search_pipeline":{"request_processors":[]}}`, reason: "option [search_pipeline]"},
		{name: "suggest", body: `{"suggest":{"s":{"text":"x","term":{"field":"name"}}}}`, reason: "option [suggest]"},
		{name: "highlight", body: `{"highlight":{"fields":{"batch.provider":{}}}}`, reason: "option [highlight]"},
		{name: "collapse with inner hits", body: `{"collapse":{"field":"name.keyword","inner_hits":{"name":"x","docvalue_fields":["batch.provider"]}}}`, reason: "option [collapse]"},
		{name: "rescore", body: `{"rescore":{"query":{"rescore_query":{"match_all":{}}}}}`, reason: "option [rescore]"},
		{name: "indices_boost", body: `{"indices_boost":[{"victim":2}]}`, reason: "option [indices_boost]"},
		{name: "ext", body: `{"ext":{}}`, reason: "option [ext]"},
		{name: "more_like_this with documents", body: `{"query":{"more_like_this":{"fields":["name"],"like":[{"_index":"victim","_id":"v1"}]}}}`,
			reason: "query clause [more_like_this] is not allowed in ML searches (at [query])"},
		{name: "geo_shape indexed_shape", body: `{"query":{"geo_shape":{"loc":{"indexed_shape":{"index":"victim","id":"v1","path":"shape"}}}}}`, reason: "query clause [geo_shape]"},
		{name: "percolate by id", body: `{"query":{"percolate":{"field":"q","index":"victim","id":"v1"}}}`, reason: "query clause [percolate]"},
		{name: "wrapper", body: `{"query":{"wrapper":{"query":"eyJ0ZXJtcyI6e319"}}}`, reason: "query clause [wrapper]"},
		{name: "query_string", body: `{"query":{"query_string":{"query":"batch.provider:openai"}}}`, reason: "query clause [query_string]"},
		{name: "has_child", body: `{"query":{"has_child":{"type":"x","query":{"match_all":{}}}}}`, reason: "query clause [has_child]"},
		{name: "nested", body: `{"query":{"nested":{"path":"x","query":{"match_all":{}},"inner_hits":{}}}}`, reason: "query clause [nested]"},
		{name: "function_score", body: `{"query":{"function_score":{"query":{"match_all":{}}}}}`, reason: "query clause [function_score]"},
		{name: "unknown clause deep", body: `{"query":{"bool":{"filter":{"bool":{"should":[{"match_all":{}},{"terms_set":{"x":{}}}]}}}}}`,
			reason: "query clause [terms_set] is not allowed in ML searches (at [query.bool.filter.bool.should[1]])"},
		{name: "unknown option of a field clause", body: `{"query":{"match":{"name":{"query":"x","like":"y"}}}}`, reason: "option [like] is not allowed in ML searches (at [query.match.name])"},
		{name: "object as an option value", body: `{"query":{"term":{"name":{"value":{"index":"victim"}}}}}`, reason: "a value other than a string, number or boolean"},
		{name: "query not an object", body: `{"query":"x"}`, reason: "a query other than an object"},
		{name: "docvalue_fields batch", body: `{"docvalue_fields":["batch.*"]}`, reason: "field [batch.*] is not allowed in ML searches (at [docvalue_fields[0]])"},
		{name: "fields batch.provider", body: `{"fields":["batch.provider"]}`, reason: "field [batch.provider]"},
		{name: "fields star", body: `{"fields":["*"]}`, reason: "field [*]"},
		{name: "fields pattern reaching batch", body: `{"fields":[{"field":"*.lease_owner"}]}`, reason: "field [*.lease_owner]"},
		{name: "stored_fields credential", body: `{"stored_fields":["credential"]}`, reason: "field [credential]"},
		{name: "docvalue_fields connector.credential", body: `{"docvalue_fields":["connector.cred*"]}`, reason: "field [connector.cred*]"},
		{name: "top_hits docvalue batch", body: `{"aggs":{"a":{"top_hits":{"docvalue_fields":["batch.client_key"]}}}}`, reason: "field [batch.client_key]"},
		{name: "top_hits explain", body: `{"aggs":{"a":{"top_hits":{"explain":true}}}}`, reason: "option [explain] is not allowed in ML searches (at [aggs.a.top_hits])"},
		{name: "terms aggregation on a bookkeeping field", body: `{"aggs":{"p":{"terms":{"field":"batch.lease_owner"}}}}`, reason: "field [batch.lease_owner]"},
		{name: "sort on a bookkeeping field", body: `{"sort":[{"batch.next_poll":"asc"}]}`, reason: "field [batch.next_poll]"},
		{name: "query on a bookkeeping field", body: `{"query":{"prefix":{"batch.provider":"o"}}}`, reason: "field [batch.provider]"},
		{name: "exists on credential", body: `{"query":{"exists":{"field":"credential"}}}`, reason: "field [credential]"},
		{name: "multi_match over every field", body: `{"query":{"multi_match":{"query":"x","fields":["*"]}}}`, reason: "field [*]"},
		{name: "global aggregation on models", body: `{"aggs":{"all":{"global":{},"aggs":{"m":{"top_hits":{}}}}}}`, only: indexstore.Models,
			reason: "aggregation [global] on models is not allowed in ML searches (at [aggs.all])"},
		{name: "unknown aggregation", body: `{"aggs":{"x":{"significant_text":{"field":"name"}}}}`, reason: "aggregation [significant_text]"},
		{name: "aggregation meta", body: `{"aggs":{"x":{"terms":{"field":"name.keyword"},"meta":{}}}}`, reason: "aggregation [meta]"},
		{name: "geo_distance sort", body: `{"sort":[{"_geo_distance":{"loc":[0,0]}}]}`, reason: "sort option [loc]"},
		{name: "sort nested filter", body: `{"sort":[{"name.keyword":{"order":"asc","nested":{"path":"x","filter":{}}}}]}`, reason: "sort option [nested]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, c := range allCollections {
				err := CheckBody(c, decodeSearch(t, tt.body))
				if tt.only != "" && c != tt.only {
					if err != nil {
						t.Errorf("%s: got %v, want allowed", c, err)
					}
					continue
				}
				e, ok := mlerr.From(err)
				if !ok || e.Status != http.StatusBadRequest || e.Type != "illegal_argument_exception" || !strings.Contains(e.Reason, tt.reason) {
					t.Errorf("%s: got %v, want a 400 illegal_argument_exception containing %q", c, err, tt.reason)
				}
			}
		})
	}
}

func TestCheckSearchParams(t *testing.T) {
	tests := []struct {
		name, query string
		want        url.Values
		reason      string
	}{
		{name: "none", query: "", want: url.Values{}},
		{name: "kept", query: "size=3&from=1&sort=name.keyword:asc,_id&_source_includes=name&_source_excludes=x&_source=true&track_total_hits=true&timeout=1s&version=true&seq_no_primary_term=true",
			want: url.Values{"size": {"3"}, "from": {"1"}, "sort": {"name.keyword:asc,_id"}, "_source_includes": {"name"}, "_source_excludes": {"x"},
				"_source": {"true"}, "track_total_hits": {"true"}, "timeout": {"1s"}, "version": {"true"}, "seq_no_primary_term": {"true"}}},
		{name: "answer shapers and source dropped", query: "filter_path=hits.hits._source&pretty&human=true&error_trace=true&format=yaml&typed_keys=true&source={}&source_content_type=application/json&size=2",
			want: url.Values{"size": {"2"}}},
		{name: "q", query: "q=name:x", reason: "request [/p] contains unrecognized parameter: [q]"},
		{name: "several", query: "search_pipeline=x&size=1&explain=true&stored_fields=credential",
			reason: "request [/p] contains unrecognized parameters: [explain], [search_pipeline], [stored_fields]"},
		{name: "index options", query: "expand_wildcards=all&ignore_unavailable=true", reason: "contains unrecognized parameters: [expand_wildcards], [ignore_unavailable]"},
		{name: "scroll", query: "scroll=1m", reason: "contains unrecognized parameter: [scroll]"},
		{name: "sort on credential", query: "sort=_id,credential.k:desc", reason: "field [credential.k] is not allowed in ML searches (at [sort])"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := CheckParams("/p", q)
			if tt.reason != "" {
				e, ok := mlerr.From(err)
				if !ok || e.Status != http.StatusBadRequest || e.Type != "illegal_argument_exception" || !strings.Contains(e.Reason, tt.reason) {
					t.Errorf("got %v, %v; want a 400 containing %q", got, err, tt.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckField(t *testing.T) {
	tests := []struct {
		field   string
		refused bool
	}{
		{"name", false}, {"name.keyword", false}, {"connector.name.keyword", false}, {"credentials", false},
		{"batched", false}, {"connector_id", false}, {"m*_id", false}, {"n*", false}, {"connector.n*", false},
		{"credential", true}, {"credential.openAI_key", true}, {"cred*", true}, {"*", true}, {"**", true},
		{"connector.credential", true}, {"connector.*", true}, {"*.credential.x", true},
		{"batch", true}, {"batch.provider", true}, {"batch.provider.keyword", true}, {"b*", true},
		{"b*.provider", true}, {"*.lease_owner", true}, {"*_key", true}, {"ba*h.x", true},
		{"c*_id", true}, // connector.credential.x_id
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			if got := checkField("f", tt.field) != nil; got != tt.refused {
				t.Errorf("refused = %v, want %v", got, tt.refused)
			}
		})
	}
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		prefix     bool
		want       bool
	}{
		{"", "", false, true}, {"*", "", false, true}, {"a", "a", false, true}, {"a", "b", false, false},
		{"a*c", "abbc", false, true}, {"a*c", "abbd", false, false}, {"*a*b*", "xxaxxbxx", false, true},
		{"a*b", "a", true, true}, {"ab", "abc", true, false}, {"abc", "ab", true, true}, {"x*", "abc", true, false},
		{"*z", "abc.", true, true}, {"a*z", "abc.", true, true}, {"a.b", "a.", true, true}, {"b.b", "a.", true, false},
	}
	for _, tt := range tests {
		if got := globMatch(tt.pattern, tt.s, tt.prefix); got != tt.want {
			t.Errorf("globMatch(%q, %q, %v) = %v, want %v", tt.pattern, tt.s, tt.prefix, got, tt.want)
		}
	}
}

// FuzzSearchAllowList: the checker never panics, answers only its own 400, and
// whatever it lets through, re-encoded as the handler sends it, passes
// again and holds no key that can read another document, index or secret
// field — found by a walk of its own that knows only where OpenSearch puts
// field and aggregation names.
func FuzzSearchAllowList(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"query":{"match_all":{}},"from":0,"size":50}`,
		`{"query":{"terms":{"name.keyword":{"index":".mlsidecar-config","id":"master_key","path":"master_key"}}},"profile":true}`,
		`{"query":{"bool":{"must":[{"terms":{"model_state":["DEPLOYED"]}},{"wildcard":{"name.keyword":{"value":"*a*","case_insensitive":true}}}],
			"must_not":{"exists":{"field":"chunk_number"}}}},"sort":[{"name.keyword":{"order":"asc"}}],
			"aggs":{"m":{"terms":{"field":"name.keyword","order":{"_key":"asc"}},"aggs":{"t":{"top_hits":{"size":1,"_source":["name"]}}}}}}`,
		`{"docvalue_fields":["batch.*"],"fields":[{"field":"name"}]}`,
		`{"query":{"more_like_this":{"like":[{"_index":"v","_id":"1"}]}}}`,
		`{"aggs":{"g":{"global":{},"aggs":{"f":{"filters":{"filters":{"index":{"term":{"id":"x"}}}}}}}}}`,
		`{"query":{"term":{"index":{"value":"x","boost":1}}},"sort":["path",{"id":"asc"}]}`,
		`{"query":{"dis_max":{"queries":[{"ids":{"values":["a"]}}]}},"post_filter":{"range":{"x":{"gte":1}}}}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var req map[string]any
		dec := json.NewDecoder(strings.NewReader(body))
		dec.UseNumber()
		if dec.Decode(&req) != nil || req == nil {
			return
		}
		for _, c := range allCollections {
			err := CheckBody(c, req)
			if err != nil {
				if e, ok := mlerr.From(err); !ok || e.Status != http.StatusBadRequest {
					t.Fatalf("%s: got %v, want a 400", c, err)
				}
				continue
			}
			b, err := json.Marshal(req)
			if err != nil {
				t.Fatalf("%s: re-encoding an allowed body: %v", c, err)
			}
			again := decodeSearch(t, string(b))
			if err := CheckBody(c, again); err != nil {
				t.Fatalf("%s: %s passed, its re-encoding %s does not: %v", c, body, b, err)
			}
			if bad := forbiddenKey(again, inOptions, c == indexstore.Models); bad != "" {
				t.Fatalf("%s: allowed body %s holds %s", c, b, bad)
			}
		}
	})
}

// forbiddenKeys are keys that read another document or index, print what
// a query read, or run code, wherever they appear outside a name position.
var forbiddenKeys = map[string]bool{
	"index": true, "id": true, "path": true, "routing": true, "like": true, "unlike": true, "_index": true, "_id": true,
	"indexed_shape": true, "percolate": true, "more_like_this": true, "geo_shape": true, "wrapper": true,
	"profile": true, "explain": true, "search_pipeline": true, "suggest": true, "script": true, "script_fields": true,
	"runtime_mappings": true, "highlight": true, "inner_hits": true, "query_string": true, "has_child": true,
	"has_parent": true, "nested": true, "collapse": true, "rescore": true, "ext": true, "indices_boost": true,
	"documents": true, "document": true,
}

// Where the oracle is in a search body.
type where int

const (
	inOptions      where = iota // an object of options: the body, a clause's or an aggregation's options
	inQuery                     // a query: keys are clause names
	inFieldClause               // a term-like clause: keys are field names
	inSort                      // a sort: strings and keys are field names
	inAggs                      // named aggregations
	inAgg                       // one aggregation: keys are its type and sub-aggregations
	inNames                     // keys are names (a bucket order)
	inNamedFilters              // the filters of a filters aggregation
)

// forbiddenKey walks v and returns the first forbidden key, secret field
// or global aggregation (on models) it finds. It knows only where
// OpenSearch puts field and aggregation names, not the allow-list.
func forbiddenKey(v any, at where, models bool) string {
	if a, ok := v.([]any); ok {
		for _, e := range a {
			if bad := forbiddenKey(e, at, models); bad != "" {
				return bad
			}
		}
		return ""
	}
	if s, ok := v.(string); ok && at == inSort && checkField("", s) != nil {
		return "secret field " + s
	}
	m, ok := v.(map[string]any)
	if !ok {
		return ""
	}
	for k, child := range m {
		next := inOptions
		switch at {
		case inNames:
		case inNamedFilters:
			next = inQuery
		case inAggs:
			next = inAgg
		case inSort, inFieldClause:
			if k == "boost" || k == "_name" || k == "value_type" {
				continue
			}
			if checkField("", k) != nil {
				return "secret field " + k
			}
		case inQuery:
			if forbiddenKeys[k] {
				return "query clause " + k
			}
			if fieldClauses[k] || k == "terms" {
				next = inFieldClause
			}
		case inAgg:
			switch {
			case k == "aggs" || k == "aggregations":
				next = inAggs
			case k == "filter":
				next = inQuery
			case k == "global" && models:
				return "global aggregation"
			case forbiddenKeys[k]:
				return "aggregation " + k
			}
		case inOptions:
			if forbiddenKeys[k] {
				return "key " + k
			}
			switch k {
			case "field", "fields", "docvalue_fields", "stored_fields":
				for _, f := range strs(child) {
					if checkField("", f) != nil {
						return "secret field " + f
					}
				}
			case "query", "post_filter", "filter", "positive", "negative", "must", "should", "must_not", "queries":
				next = inQuery
			case "sort":
				next = inSort
			case "aggs", "aggregations":
				next = inAggs
			case "order":
				next = inNames
			case "filters":
				next = inNamedFilters
			}
		}
		if bad := forbiddenKey(child, next, models); bad != "" {
			return bad
		}
	}
	return ""
}

// strs finds the field names in a field option: a string, a list, or
// {"field": name} objects.
func strs(v any) []string {
	switch t := v.(type) {
	case string:
		return []string{t}
	case []any:
		var out []string
		for _, e := range t {
			out = append(out, strs(e)...)
		}
		return out
	case map[string]any:
		return strs(t["field"])
	}
	return nil
}
