// Package searchdsl is the allow-list of the ML _search routes' query DSL.
// Those searches run with the sidecar's own account, so a caller may use
// only query clauses, aggregations, options and parameters that cannot read
// another document or index, or the secret and bookkeeping fields of the
// sidecar's own: everything else is refused with a 400 naming the clause.
package searchdsl

import (
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

// The ML _search routes run the caller's search with the sidecar's own
// rights, so a search may only use what cannot read anything but the
// documents of the one index searched, and nothing of their secrets: the
// body is checked against an allow-list, never a deny-list, because
// OpenSearch keeps adding clauses (terms lookup, more_like_this with
// documents, indexed shapes, percolate by id, wrapper queries, suggesters,
// profile output) that fetch other documents or echo what they read.
// Anything not listed here is refused with a 400 naming it.

// secretFields are the stored fields no search may name: credentials and
// the sidecar's batch bookkeeping (lease owners, client keys). _source
// filtering cannot hide them from doc values, sorts, aggregations or
// queries that probe their values; only refusing the field name can.
var secretFields = []string{"credential", "connector.credential", "batch"}

// kind is how the value of an allowed key is checked.
type kind int

const (
	kScalar       kind = iota // a string, number, boolean or null
	kScalars                  // a scalar or an array of scalars
	kQuery                    // one query clause
	kQueries                  // a query clause or an array of them
	kQueryList                // an array of query clauses
	kNamedQueries             // the filters of a filters aggregation: an object or array of query clauses
	kField                    // a field name
	kFields                   // field names or {"field": name, "format": ...} objects
	kSort                     // a sort specification
	kSource                   // a _source filter (answers are stripped of secrets anyway)
	kAggs                     // named aggregations
	kOrder                    // a bucket order: {"key": "asc"} or an array of them
	kBounds                   // {"min": x, "max": y}
	kRanges                   // [{"from": x, "to": y, "key": k}]
	kInclude                  // terms include/exclude: a regex, values, or a partition
)

// shape lists the keys an object may have and how each value is checked.
type shape map[string]kind

// bodyShape is what a search body may hold. Not here, among others:
// profile and explain (they print what a query read), search_pipeline,
// suggest (suggesters ignore the query, hidden-model filter included),
// highlight, collapse, rescore, indices_boost, script_fields,
// runtime_mappings, stats, ext, pit, slice.
var bodyShape = shape{
	"query": kQuery, "post_filter": kQuery,
	"from": kScalar, "size": kScalar, "terminate_after": kScalar, "timeout": kScalar, "min_score": kScalar,
	"track_total_hits": kScalar, "track_scores": kScalar, "version": kScalar, "seq_no_primary_term": kScalar,
	"search_after": kScalars, "sort": kSort, "_source": kSource,
	"aggs": kAggs, "aggregations": kAggs,
	"docvalue_fields": kFields, "stored_fields": kFields, "fields": kFields,
}

// fieldClauseOptions are the options of clauses shaped
// {"<clause>": {"<field>": value or {options}}}; none names a document or
// an index.
var fieldClauseOptions = shape{
	"value": kScalar, "query": kScalar, "boost": kScalar, "_name": kScalar, "case_insensitive": kScalar,
	"operator": kScalar, "analyzer": kScalar, "minimum_should_match": kScalar, "fuzziness": kScalar,
	"prefix_length": kScalar, "max_expansions": kScalar, "transpositions": kScalar,
	"fuzzy_transpositions": kScalar, "fuzzy_rewrite": kScalar, "rewrite": kScalar, "flags": kScalar,
	"max_determinized_states": kScalar, "gt": kScalar, "gte": kScalar, "lt": kScalar, "lte": kScalar,
	"from": kScalar, "to": kScalar, "include_lower": kScalar, "include_upper": kScalar, "format": kScalar,
	"time_zone": kScalar, "relation": kScalar, "zero_terms_query": kScalar, "lenient": kScalar,
	"slop": kScalar, "auto_generate_synonyms_phrase_query": kScalar,
}

// fieldClauses are the clauses of that shape.
var fieldClauses = map[string]bool{
	"term": true, "match": true, "match_phrase": true, "match_phrase_prefix": true, "match_bool_prefix": true,
	"prefix": true, "wildcard": true, "regexp": true, "fuzzy": true, "range": true,
}

// queryShapes are the other allowed query clauses. query_string and the q
// parameter are not among them: a Lucene query string names fields inside
// free text, out of the checker's sight.
var queryShapes = map[string]shape{
	"match_all":  {"boost": kScalar, "_name": kScalar},
	"match_none": {"boost": kScalar, "_name": kScalar},
	"exists":     {"field": kField, "boost": kScalar, "_name": kScalar},
	"ids":        {"values": kScalars, "boost": kScalar, "_name": kScalar},
	"bool": {"must": kQueries, "filter": kQueries, "should": kQueries, "must_not": kQueries,
		"minimum_should_match": kScalar, "adjust_pure_negative": kScalar, "boost": kScalar, "_name": kScalar},
	"constant_score": {"filter": kQuery, "boost": kScalar, "_name": kScalar},
	"dis_max":        {"queries": kQueryList, "tie_breaker": kScalar, "boost": kScalar, "_name": kScalar},
	"boosting":       {"positive": kQuery, "negative": kQuery, "negative_boost": kScalar, "boost": kScalar, "_name": kScalar},
	"multi_match": {"query": kScalar, "fields": kFields, "type": kScalar, "operator": kScalar, "analyzer": kScalar,
		"minimum_should_match": kScalar, "fuzziness": kScalar, "prefix_length": kScalar, "max_expansions": kScalar,
		"tie_breaker": kScalar, "lenient": kScalar, "zero_terms_query": kScalar, "slop": kScalar,
		"fuzzy_transpositions": kScalar, "fuzzy_rewrite": kScalar, "rewrite": kScalar,
		"auto_generate_synonyms_phrase_query": kScalar, "boost": kScalar, "_name": kScalar},
}

// aggShapes are the allowed aggregations. global is allowed except on
// models (it ignores the query, and with it the hidden-model filter); top_hits
// has no explain, highlight or script_fields.
var aggShapes = map[string]shape{
	"terms": {"field": kField, "size": kScalar, "shard_size": kScalar, "min_doc_count": kScalar,
		"shard_min_doc_count": kScalar, "order": kOrder, "missing": kScalar, "include": kInclude,
		"exclude": kInclude, "execution_hint": kScalar, "collect_mode": kScalar,
		"show_term_doc_count_error": kScalar, "format": kScalar},
	"cardinality": {"field": kField, "precision_threshold": kScalar, "missing": kScalar},
	"value_count": {"field": kField, "missing": kScalar},
	"missing":     {"field": kField},
	"min":         {"field": kField, "missing": kScalar, "format": kScalar},
	"max":         {"field": kField, "missing": kScalar, "format": kScalar},
	"avg":         {"field": kField, "missing": kScalar, "format": kScalar},
	"sum":         {"field": kField, "missing": kScalar, "format": kScalar},
	"stats":       {"field": kField, "missing": kScalar, "format": kScalar},
	"date_histogram": {"field": kField, "calendar_interval": kScalar, "fixed_interval": kScalar, "interval": kScalar,
		"format": kScalar, "time_zone": kScalar, "offset": kScalar, "min_doc_count": kScalar, "order": kOrder,
		"keyed": kScalar, "missing": kScalar, "extended_bounds": kBounds, "hard_bounds": kBounds},
	"histogram": {"field": kField, "interval": kScalar, "offset": kScalar, "min_doc_count": kScalar, "order": kOrder,
		"keyed": kScalar, "missing": kScalar, "extended_bounds": kBounds, "hard_bounds": kBounds},
	"range":      {"field": kField, "ranges": kRanges, "keyed": kScalar, "format": kScalar, "missing": kScalar},
	"date_range": {"field": kField, "ranges": kRanges, "keyed": kScalar, "format": kScalar, "missing": kScalar, "time_zone": kScalar},
	"filters":    {"filters": kNamedQueries, "other_bucket": kScalar, "other_bucket_key": kScalar},
	"top_hits": {"from": kScalar, "size": kScalar, "sort": kSort, "_source": kSource, "version": kScalar,
		"seq_no_primary_term": kScalar, "track_scores": kScalar,
		"docvalue_fields": kFields, "stored_fields": kFields, "fields": kFields},
	"global": {},
	// "filter" takes a query clause itself; see agg.
}

var (
	sortOptions   = shape{"order": kScalar, "mode": kScalar, "missing": kScalar, "unmapped_type": kScalar, "numeric_type": kScalar, "format": kScalar}
	sourceOptions = shape{"includes": kScalars, "excludes": kScalars, "include": kScalars, "exclude": kScalars}
	fieldOptions  = shape{"field": kField, "format": kScalar}
	boundsOptions = shape{"min": kScalar, "max": kScalar}
	rangeOptions  = shape{"from": kScalar, "to": kScalar, "key": kScalar}
	includeParts  = shape{"partition": kScalar, "num_partitions": kScalar}
)

// searchChecker checks one search body of one collection.
type searchChecker struct {
	c indexstore.Collection
}

// CheckBody refuses a search body that uses anything not allowed.
func CheckBody(c indexstore.Collection, body map[string]any) error {
	return searchChecker{c: c}.object("", body, bodyShape, "option")
}

// notAllowed is the answer to anything off the allow-list: what, and
// where in the body.
func notAllowed(what, path string) error {
	if path == "" {
		return mlerr.IllegalArgument("%s is not allowed in ML searches", what)
	}
	return mlerr.IllegalArgument("%s is not allowed in ML searches (at [%s])", what, path)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// object checks that v is an object whose keys are all in s; noun names
// what a key is in an error ("option", "aggregation option", …).
func (sc searchChecker) object(path string, v any, s shape, noun string) error {
	m, ok := v.(map[string]any)
	if !ok {
		return notAllowed("a value other than an object", path)
	}
	for _, k := range sortedKeys(m) {
		kd, ok := s[k]
		if !ok {
			return notAllowed(noun+" ["+k+"]", path)
		}
		if err := sc.value(join(path, k), m[k], kd); err != nil {
			return err
		}
	}
	return nil
}

// value checks v as a value of kind kd.
func (sc searchChecker) value(path string, v any, kd kind) error {
	switch kd {
	case kScalar:
		if !isScalar(v) {
			return notAllowed("a value other than a string, number or boolean", path)
		}
	case kScalars:
		return eachOf(path, v, func(p string, e any) error {
			if !isScalar(e) {
				return notAllowed("a value other than a string, number or boolean", p)
			}
			return nil
		})
	case kQuery:
		return sc.query(path, v)
	case kQueries:
		return eachOf(path, v, sc.query)
	case kQueryList:
		if _, ok := v.([]any); !ok {
			return notAllowed("a value other than an array of queries", path)
		}
		return eachOf(path, v, sc.query)
	case kNamedQueries:
		if m, ok := v.(map[string]any); ok {
			for _, k := range sortedKeys(m) {
				if err := sc.query(join(path, k), m[k]); err != nil {
					return err
				}
			}
			return nil
		}
		if _, ok := v.([]any); !ok {
			return notAllowed("a value other than an object or array of queries", path)
		}
		return eachOf(path, v, sc.query)
	case kField:
		s, ok := v.(string)
		if !ok {
			return notAllowed("a field name other than a string", path)
		}
		return checkField(path, s)
	case kFields:
		return eachOf(path, v, func(p string, e any) error {
			if _, ok := e.(map[string]any); ok {
				return sc.object(p, e, fieldOptions, "field option")
			}
			return sc.value(p, e, kField)
		})
	case kSort:
		return eachOf(path, v, sc.sort)
	case kSource:
		if _, ok := v.(map[string]any); ok {
			return sc.object(path, v, sourceOptions, "_source option")
		}
		return sc.value(path, v, kScalars)
	case kAggs:
		m, ok := v.(map[string]any)
		if !ok {
			return notAllowed("a value other than an object of aggregations", path)
		}
		for _, k := range sortedKeys(m) {
			if err := sc.agg(join(path, k), m[k]); err != nil {
				return err
			}
		}
	case kOrder:
		return eachOf(path, v, func(p string, e any) error {
			m, ok := e.(map[string]any)
			if !ok {
				return notAllowed("an order other than {\"key\": \"asc\"}", p)
			}
			for _, k := range sortedKeys(m) {
				if !isScalar(m[k]) {
					return notAllowed("an order other than {\"key\": \"asc\"}", join(p, k))
				}
			}
			return nil
		})
	case kBounds:
		return sc.object(path, v, boundsOptions, "bounds option")
	case kRanges:
		if _, ok := v.([]any); !ok {
			return notAllowed("a value other than an array of ranges", path)
		}
		return eachOf(path, v, func(p string, e any) error { return sc.object(p, e, rangeOptions, "range option") })
	case kInclude:
		if _, ok := v.(map[string]any); ok {
			return sc.object(path, v, includeParts, "include option")
		}
		return sc.value(path, v, kScalars)
	}
	return nil
}

// query checks one query clause.
func (sc searchChecker) query(path string, v any) error {
	m, ok := v.(map[string]any)
	if !ok {
		return notAllowed("a query other than an object", path)
	}
	for _, name := range sortedKeys(m) {
		p := join(path, name)
		switch {
		case fieldClauses[name]:
			if err := sc.fieldClause(p, m[name], false); err != nil {
				return err
			}
		case name == "terms":
			if err := sc.fieldClause(p, m[name], true); err != nil {
				return err
			}
		case queryShapes[name] != nil:
			if err := sc.object(p, m[name], queryShapes[name], "option"); err != nil {
				return err
			}
		default:
			return notAllowed("query clause ["+name+"]", path)
		}
	}
	return nil
}

// fieldClause checks {"<field>": value or {options}, "boost": …}. For terms
// the value must be a list of values: an object there is a terms lookup,
// which reads another document, of any index.
func (sc searchChecker) fieldClause(path string, v any, terms bool) error {
	m, ok := v.(map[string]any)
	if !ok {
		return notAllowed("a query other than an object", path)
	}
	for _, k := range sortedKeys(m) {
		p, val := join(path, k), m[k]
		switch k {
		case "boost", "_name", "value_type":
			if !isScalar(val) {
				return notAllowed("a value other than a string, number or boolean", p)
			}
			continue
		}
		if err := checkField(p, k); err != nil {
			return err
		}
		switch {
		case terms:
			if _, ok := val.(map[string]any); ok {
				return notAllowed("terms lookup", p)
			}
			if err := sc.value(p, val, kScalars); err != nil {
				return err
			}
		case isScalar(val):
		default:
			if err := sc.object(p, val, fieldClauseOptions, "option"); err != nil {
				return err
			}
		}
	}
	return nil
}

// sort checks one sort entry: "field" or {"field": "asc" or {options}}.
func (sc searchChecker) sort(path string, v any) error {
	if s, ok := v.(string); ok {
		return checkField(path, s)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return notAllowed("a sort other than a field name or object", path)
	}
	for _, f := range sortedKeys(m) {
		p := join(path, f)
		if err := checkField(p, f); err != nil {
			return err
		}
		if isScalar(m[f]) {
			continue
		}
		if err := sc.object(p, m[f], sortOptions, "sort option"); err != nil {
			return err
		}
	}
	return nil
}

// agg checks one named aggregation: its type, its options, and its
// sub-aggregations.
func (sc searchChecker) agg(path string, v any) error {
	m, ok := v.(map[string]any)
	if !ok {
		return notAllowed("an aggregation other than an object", path)
	}
	for _, typ := range sortedKeys(m) {
		p := join(path, typ)
		switch {
		case typ == "aggs" || typ == "aggregations":
			if err := sc.value(p, m[typ], kAggs); err != nil {
				return err
			}
		case typ == "filter":
			if err := sc.query(p, m[typ]); err != nil {
				return err
			}
		case typ == "global" && sc.c == indexstore.Models:
			return notAllowed("aggregation [global] on models", path)
		case aggShapes[typ] != nil:
			if err := sc.object(p, m[typ], aggShapes[typ], "option"); err != nil {
				return err
			}
		default:
			return notAllowed("aggregation ["+typ+"]", path)
		}
	}
	return nil
}

// checkField refuses a field name, or a field pattern with *, that could
// reach a secret field or anything below it.
func checkField(path, pattern string) error {
	for _, s := range secretFields {
		if globMatch(pattern, s, false) || globMatch(pattern, s+".", true) {
			return notAllowed("field ["+pattern+"]", path)
		}
	}
	return nil
}

// globMatch reports whether pattern, where * stands for any run of
// characters as in OpenSearch's field patterns, matches s; with prefix,
// whether it matches some string that begins with s. Greedy with one
// backtrack point, so linear in practice whatever the pattern.
func globMatch(pattern, s string, prefix bool) bool {
	p, i, star, mark := 0, 0, -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case p < len(pattern) && pattern[p] == s[i]:
			p++
			i++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	if prefix {
		return true
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// eachOf applies check to v, or to each element of v if it is an array.
func eachOf(path string, v any, check func(string, any) error) error {
	a, ok := v.([]any)
	if !ok {
		return check(path, v)
	}
	for i, e := range a {
		if err := check(index(path, i), e); err != nil {
			return err
		}
	}
	return nil
}

func isScalar(v any) bool {
	switch v.(type) {
	case map[string]any, []any:
		return false
	}
	return true
}

// sortedKeys makes the first refused key of a body the same on every run.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Query parameters of the ML _search routes. ML Commons itself reads only
// the body (or the source parameter) and _source filters, and OpenSearch
// refuses every other parameter; the sidecar also takes these, none of
// which reads another index or a secret field (sort's fields are checked).
var (
	searchParamsKept = map[string]bool{
		"size": true, "from": true, "sort": true, "_source": true, "_source_includes": true, "_source_excludes": true,
		"track_total_hits": true, "track_scores": true, "timeout": true, "terminate_after": true,
		"version": true, "seq_no_primary_term": true, "allow_partial_search_results": true,
	}
	// Accepted but not passed on: they change what OpenSearch's answer looks
	// like before the sidecar strips secrets from it. source is the body.
	searchParamsDropped = map[string]bool{
		"filter_path": true, "pretty": true, "human": true, "error_trace": true, "format": true, "typed_keys": true,
		"source": true, "source_content_type": true,
	}
)

// CheckParams returns the parameters to pass on, or a 400 naming
// every parameter that is not allowed, in OpenSearch's words.
func CheckParams(path string, q url.Values) (url.Values, error) {
	out := url.Values{}
	var unknown []string
	for k, v := range q {
		switch {
		case searchParamsDropped[k]:
		case searchParamsKept[k]:
			out[k] = v
		default:
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		var known []string
		for _, m := range []map[string]bool{searchParamsKept, searchParamsDropped} {
			for k := range m {
				known = append(known, k)
			}
		}
		return nil, mlerr.UnrecognizedParams(path, unknown, known)
	}
	for _, v := range out["sort"] {
		for _, f := range strings.Split(v, ",") {
			name, _, _ := strings.Cut(f, ":")
			if err := checkField("sort", name); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}
