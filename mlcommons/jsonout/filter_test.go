package jsonout

import (
	"errors"
	"strings"
	"testing"
)

// q turns the single quotes of OpenSearch's test samples into JSON quotes.
func q(s string) string { return strings.ReplaceAll(s, "'", `"`) }

func render(t *testing.T, filterPath, body string) string {
	t.Helper()
	f, err := ParseFilter(filterPath)
	if err != nil {
		t.Fatalf("ParseFilter(%q): %v", filterPath, err)
	}
	return string(Options{Filter: f}.Render([]byte(body)))
}

// sample is the document of OpenSearch's FilterPathGeneratorFilteringTests
// (libs/x-content/src/test/java/org/opensearch/common/xcontent/support/
// filtering/FilterPathGeneratorFilteringTests.java, from Elasticsearch 7.10).
var sample = q(`{'a':0,'b':true,'c':'c_value','d':[0,1,2],'e':[{'f1':'f1_value','f2':'f2_value'},{'g1':'g1_value','g2':'g2_value'}],'h':{'i':{'j':{'k':{'l':'l_value'}}}}}`)

// TestFilterInclusive is testInclusiveFilters. The Java test runs the
// filter on the root object too, so its "z" answers ""; OpenSearch writes
// the root past the filter (JsonXContentGenerator.writeStartObject), so the
// answer is {}.
func TestFilterInclusive(t *testing.T) {
	h := q(`{'h':{'i':{'j':{'k':{'l':'l_value'}}}}}`)
	tests := []struct{ filter, want string }{
		{"a", q(`{'a':0}`)},
		{"b", q(`{'b':true}`)},
		{"c", q(`{'c':'c_value'}`)},
		{"d", q(`{'d':[0,1,2]}`)},
		{"e", q(`{'e':[{'f1':'f1_value','f2':'f2_value'},{'g1':'g1_value','g2':'g2_value'}]}`)},
		{"h", h},
		{"z", `{}`},
		{"e.f1", q(`{'e':[{'f1':'f1_value'}]}`)},
		{"e.f2", q(`{'e':[{'f2':'f2_value'}]}`)},
		{"e.f*", q(`{'e':[{'f1':'f1_value','f2':'f2_value'}]}`)},
		{"e.*2", q(`{'e':[{'f2':'f2_value'},{'g2':'g2_value'}]}`)},
		{"h.i", h},
		{"h.i.j", h},
		{"h.i.j.k", h},
		{"h.i.j.k.l", h},
		{"h.*", h},
		{"*.i", h},
		{"*.i.j", h},
		{"h.*.j", h},
		{"h.i.*", h},
		{"*.i.j.k", h},
		{"h.*.j.k", h},
		{"h.i.*.k", h},
		{"h.i.j.*", h},
		{"*.i.j.k.l", h},
		{"h.*.j.k.l", h},
		{"h.i.*.k.l", h},
		{"h.i.j.*.l", h},
		{"h.i.j.k.*", h},
		{"h.*.j.*.l", h},
		{"**.l", h},
		{"**.*2", q(`{'e':[{'f2':'f2_value'},{'g2':'g2_value'}]}`)},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			if got := render(t, tt.filter, sample); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// TestFilterExclusive is testExclusiveFilters, the same expressions with a
// leading '-'.
func TestFilterExclusive(t *testing.T) {
	noH := q(`{'a':0,'b':true,'c':'c_value','d':[0,1,2],'e':[{'f1':'f1_value','f2':'f2_value'},{'g1':'g1_value','g2':'g2_value'}]}`)
	tests := []struct{ filter, want string }{
		{"a", q(`{'b':true,'c':'c_value','d':[0,1,2],'e':[{'f1':'f1_value','f2':'f2_value'},{'g1':'g1_value','g2':'g2_value'}],'h':{'i':{'j':{'k':{'l':'l_value'}}}}}`)},
		{"b", q(`{'a':0,'c':'c_value','d':[0,1,2],'e':[{'f1':'f1_value','f2':'f2_value'},{'g1':'g1_value','g2':'g2_value'}],'h':{'i':{'j':{'k':{'l':'l_value'}}}}}`)},
		{"c", q(`{'a':0,'b':true,'d':[0,1,2],'e':[{'f1':'f1_value','f2':'f2_value'},{'g1':'g1_value','g2':'g2_value'}],'h':{'i':{'j':{'k':{'l':'l_value'}}}}}`)},
		{"d", q(`{'a':0,'b':true,'c':'c_value','e':[{'f1':'f1_value','f2':'f2_value'},{'g1':'g1_value','g2':'g2_value'}],'h':{'i':{'j':{'k':{'l':'l_value'}}}}}`)},
		{"e", q(`{'a':0,'b':true,'c':'c_value','d':[0,1,2],'h':{'i':{'j':{'k':{'l':'l_value'}}}}}`)},
		{"h", noH},
		{"z", sample},
		{"e.f1", q(`{'a':0,'b':true,'c':'c_value','d':[0,1,2],'e':[{'f2':'f2_value'},{'g1':'g1_value','g2':'g2_value'}],'h':{'i':{'j':{'k':{'l':'l_value'}}}}}`)},
		{"e.f2", q(`{'a':0,'b':true,'c':'c_value','d':[0,1,2],'e':[{'f1':'f1_value'},{'g1':'g1_value','g2':'g2_value'}],'h':{'i':{'j':{'k':{'l':'l_value'}}}}}`)},
		// The first element loses both members and so disappears.
		{"e.f*", q(`{'a':0,'b':true,'c':'c_value','d':[0,1,2],'e':[{'g1':'g1_value','g2':'g2_value'}],'h':{'i':{'j':{'k':{'l':'l_value'}}}}}`)},
		{"e.*2", q(`{'a':0,'b':true,'c':'c_value','d':[0,1,2],'e':[{'f1':'f1_value'},{'g1':'g1_value'}],'h':{'i':{'j':{'k':{'l':'l_value'}}}}}`)},
		// Emptied objects on the way are dropped all the way up.
		{"h.i", noH},
		{"h.i.j", noH},
		{"h.i.j.k", noH},
		{"h.i.j.k.l", noH},
		{"h.*", noH},
		{"*.i", noH},
		{"*.i.j", noH},
		{"h.*.j", noH},
		{"h.i.*", noH},
		{"*.i.j.k", noH},
		{"h.*.j.k", noH},
		{"h.i.*.k", noH},
		{"h.i.j.*", noH},
		{"*.i.j.k.l", noH},
		{"h.*.j.k.l", noH},
		{"h.i.*.k.l", noH},
		{"h.i.j.*.l", noH},
		{"h.i.j.k.*", noH},
		{"h.*.j.*.l", noH},
		{"**.l", noH},
		{"**.*2", q(`{'a':0,'b':true,'c':'c_value','d':[0,1,2],'e':[{'f1':'f1_value'},{'g1':'g1_value'}],'h':{'i':{'j':{'k':{'l':'l_value'}}}}}`)},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			if got := render(t, "-"+tt.filter, sample); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// TestFilterDots is testInclusiveFiltersWithDots and
// testExclusiveFiltersWithDots: a dot always separates levels; only an
// escaped dot reaches a key with a dot in it.
func TestFilterDots(t *testing.T) {
	doc := q(`{'a':0,'b.c':'value','b':{'c':'c_value'}}`)
	tests := []struct{ filter, want string }{
		{`b.c`, q(`{'b':{'c':'c_value'}}`)},
		{`b\.c`, q(`{'b.c':'value'}`)},
		{`-b.c`, q(`{'a':0,'b.c':'value'}`)},
		{`-b\.c`, q(`{'a':0,'b':{'c':'c_value'}}`)},
		{`b*`, q(`{'b.c':'value','b':{'c':'c_value'}}`)}, // '*' matches a dot in a name
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			if got := render(t, tt.filter, doc); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// TestFilterSemantics covers what follows from FilterPathBasedFilter and
// Jackson's FilteringGeneratorDelegate beyond OpenSearch's own samples.
func TestFilterSemantics(t *testing.T) {
	tests := []struct{ name, filter, body, want string }{
		{"inclusions then exclusions", "e,-e.f1", sample, q(`{'e':[{'f2':'f2_value'},{'g1':'g1_value','g2':'g2_value'}]}`)},
		{"exclusion empties the inclusion", "h,-h.i.j.k.l", sample, `{}`},
		{"exclusion outside the inclusion", "a,-b", sample, q(`{'a':0}`)},
		{"exclusion of the inclusion", "a,-a", sample, `{}`},
		{"several inclusions", "a,c,h.i.j.k.z", sample, q(`{'a':0,'c':'c_value'}`)},
		{"document order, not filter order", "c,a", sample, q(`{'a':0,'c':'c_value'}`)},
		{"double wildcard alone keeps all", "**", sample, sample},
		{"double wildcard needs one level", "**.a", `{"a":1,"x":{"a":2}}`, `{"x":{"a":2}}`},
		{"double wildcard in the middle", "h.**.l", sample, q(`{'h':{'i':{'j':{'k':{'l':'l_value'}}}}}`)},
		{"trailing double wildcard", "x.**", `{"x":1,"y":{"x":{"z":1}}}`, `{}`},
		{"trailing double wildcard below", "y.**", `{"x":1,"y":{"x":{"z":1},"w":[1]}}`, `{"y":{"x":{"z":1},"w":[1]}}`},
		{"scalar on the way is dropped", "a.b", `{"a":1}`, `{}`},
		{"scalar on the way of an exclusion is kept", "-a.b", `{"a":1}`, `{"a":1}`},
		{"matched empty object kept", "a", `{"a":{},"b":[]}`, `{"a":{}}`},
		{"matched empty array kept", "b", `{"a":{},"b":[]}`, `{"b":[]}`},
		{"empty object on the way dropped", "a.b", `{"a":{}}`, `{}`},
		{"empty object on an exclusion's way dropped", "-a.b", `{"a":{},"c":1}`, `{"c":1}`},
		{"empty object off an exclusion's way kept", "-b", `{"a":{},"b":1}`, `{"a":{}}`},
		{"arrays of arrays are transparent", "a.b", `{"a":[[{"b":1,"c":2}],[3]]}`, `{"a":[[{"b":1}]]}`},
		{"scalars in an array on the way", "a.b", `{"a":[1,{"b":2},"x",null]}`, `{"a":[{"b":2}]}`},
		{"scalars in an array on an exclusion's way", "-a.b", `{"a":[1,{"b":2},"x",null]}`, `{"a":[1,"x",null]}`},
		{"search hits", "hits.hits._sour*", `{"took":1,"hits":{"total":{"value":1},"hits":[{"_id":"x","_source":{"name":"m"}}]}}`, `{"hits":{"hits":[{"_source":{"name":"m"}}]}}`},
		{"key escapes are decoded to match and kept", "ab", `{"a\u0062":1,"c":2}`, `{"a\u0062":1}`},
		{"escaped quote in a key", `a"b`, `{"a\"b":1,"c":2}`, `{"a\"b":1}`},
		{"numbers and order kept", "z,a,m", `{"z":1.0e+2,"m":-0.000,"a":12345678901234567890123}`, `{"z":1.0e+2,"m":-0.000,"a":12345678901234567890123}`},
		{"white space dropped", "a", "{ \"a\" : [ 1 , { \"b\" : \"x y\" } ] , \"c\" : 2 }\n", `{"a":[1,{"b":"x y"}]}`},
		{"blanks around expressions", "  a ,, -c ,", `{"a":1,"b":2,"c":3}`, `{"a":1}`},
		{"wildcard name", "*", `{"a":1,"b":{"c":2}}`, `{"a":1,"b":{"c":2}}`},
		{"glob backtracking", "a*b*c", `{"aXbYc":1,"abc":2,"aXcb":3,"ab":4}`, `{"aXbYc":1,"abc":2}`},
		{"empty name", "a.", `{"a":{"":1,"b":2}}`, `{"a":{"":1}}`},
		// FilterPath's replaceAll("\\\\.", ".") turns a backslash and the
		// character after it into a dot.
		{"backslash quirk", `a\b`, `{"a\\b":1,"a.":2,"ab":3}`, `{"a.":2}`},
		{"root array", "a", `[{"a":1,"b":2},{"b":3},4]`, `[{"a":1}]`},
		{"root array emptied", "z", `[{"a":1}]`, `[]`},
		{"root scalar", "a", `"x"`, `"x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := render(t, tt.filter, tt.body); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestParseFilter(t *testing.T) {
	tests := []struct {
		expr    string
		nilWant bool
		wantErr string
	}{
		{expr: "", nilWant: true},
		{expr: " , ,", nilWant: true},
		{expr: "a"},
		{expr: "-a"},
		{expr: "-", wantErr: "filters cannot be null or empty"},
		{expr: " - ", wantErr: "filters cannot be null or empty"},
		{expr: "a,-", wantErr: "filters cannot be null or empty"},
		{expr: "-,-a"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			f, err := ParseFilter(tt.expr)
			if tt.wantErr != "" {
				var pe *ParamError
				if !errors.As(err, &pe) || pe.Reason != tt.wantErr || pe.Param != "filter_path" {
					t.Fatalf("got error %v, want ParamError %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v", err)
			}
			if (f == nil) != tt.nilWant {
				t.Errorf("got filter %v, want nil %v", f, tt.nilWant)
			}
		})
	}
}

// TestParsePath is FilterPathTests
// (libs/core/src/test/java/org/opensearch/core/xcontent/filtering/FilterPathTests.java).
func TestParsePath(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{"test", []string{"test"}},
		{"foo.bar.quz", []string{"foo", "bar", "quz"}},
		{"w.0.0.t", []string{"w", "0", "0", "t"}},
		{`w\.0\.0\.t`, []string{"w.0.0.t"}},
		{`w\.0.0\.t`, []string{"w.0", "0.t"}},
		{"foo.**.bar.*", []string{"foo", "**", "bar", "*"}},
		{`test.dot\.ted`, []string{"test", "dot.ted"}},
		// The dot after the second backslash counts as escaped; then the
		// backslash pair becomes a dot.
		{`a\\.b`, []string{"a..b"}},
		{"a..b", []string{"a", "", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			var got []string
			for p := parsePath(tt.expr); p.next != nil; p = p.next {
				got = append(got, p.name)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"f*o", "foo", true},
		{"f*o", "flo", true},
		{"f*o", "foooo", true},
		{"f*o", "boo", false},
		{"*", "", true},
		{"", "", true},
		{"", "a", false},
		{"a**b", "ab", true},
		{"*a*b*", "xxaxxbxx", true},
		{"*ab", "aab", true},
		{"a*", "b", false},
		{"é*", "été", true},
	}
	for _, tt := range tests {
		if got := globMatch(tt.pattern, []byte(tt.s)); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}
