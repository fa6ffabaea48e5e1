package jsonout

import (
	"bytes"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestPretty checks the layout of Jackson's DefaultPrettyPrinter with
// DefaultIndenter("  ", "\n") for objects and arrays, as
// JsonXContentGenerator.usePrettyPrint configures it, and the line feed
// AbstractRestChannel asks for with lfAtEnd.
func TestPretty(t *testing.T) {
	tests := []struct{ name, body, want string }{
		{"empty root", `{}`, "{ }\n"},
		{"scalars", `{"a":1,"b":"x","c":true,"d":null}`, "{\n  \"a\" : 1,\n  \"b\" : \"x\",\n  \"c\" : true,\n  \"d\" : null\n}\n"},
		{"empty containers", `{"a":{},"b":[]}`, "{\n  \"a\" : { },\n  \"b\" : [ ]\n}\n"},
		{"array elements on their own lines", `{"a":[1,"x",{"b":2},[]]}`,
			"{\n  \"a\" : [\n    1,\n    \"x\",\n    {\n      \"b\" : 2\n    },\n    [ ]\n  ]\n}\n"},
		{"nested", `{"hits":{"total":{"value":0},"hits":[]}}`,
			"{\n  \"hits\" : {\n    \"total\" : {\n      \"value\" : 0\n    },\n    \"hits\" : [ ]\n  }\n}\n"},
		{"string text kept", `{"a\"b":"c\\d \u00e9 <>&"}`, "{\n  \"a\\\"b\" : \"c\\\\d \\u00e9 <>&\"\n}\n"},
		{"input white space ignored", " { \"a\" : [ 1 ] }\n", "{\n  \"a\" : [\n    1\n  ]\n}\n"},
		{"root array", `[1,2]`, "[\n  1,\n  2\n]\n"},
		{"root scalar", `1.50`, "1.50\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(Options{Pretty: true}.Render([]byte(tt.body))); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRenderFilterAndPretty(t *testing.T) {
	f, err := ParseFilter("hits.total,-hits.total.relation")
	if err != nil {
		t.Fatal(err)
	}
	got := string(Options{Filter: f, Pretty: true}.Render([]byte(`{"took":2,"hits":{"total":{"value":3,"relation":"eq"},"hits":[]}}`)))
	want := "{\n  \"hits\" : {\n    \"total\" : {\n      \"value\" : 3\n    }\n  }\n}\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// Nothing kept and pretty: the root object, pretty.
	f, _ = ParseFilter("nope")
	if got := string(Options{Filter: f, Pretty: true}.Render([]byte(`{"a":1}`))); got != "{ }\n" {
		t.Errorf("got %q, want %q", got, "{ }\n")
	}
}

func TestRenderLeavesBodyAlone(t *testing.T) {
	f, _ := ParseFilter("a")
	tests := []struct {
		name string
		o    Options
		body string
	}{
		{"no options", Options{}, "{ \"a\" : 1 }\n"},
		{"invalid JSON", Options{Filter: f, Pretty: true}, `{"a":1`},
		{"trailing garbage", Options{Filter: f}, `{"a":1}x`},
		{"empty", Options{Pretty: true}, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(tt.o.Render([]byte(tt.body))); got != tt.body {
				t.Errorf("got %q, want the body %q", got, tt.body)
			}
		})
	}
}

// TestRenderError: AbstractRestChannel.newErrorBuilder turns filtering off
// for errors, while pretty still applies.
func TestRenderError(t *testing.T) {
	f, _ := ParseFilter("took")
	body := []byte(`{"error":{"type":"x","reason":"y"},"status":400}`)
	if got := (Options{Filter: f}).RenderError(body); !bytes.Equal(got, body) {
		t.Errorf("got %s, want the error unfiltered", got)
	}
	got := string(Options{Filter: f, Pretty: true}.RenderError(body))
	want := "{\n  \"error\" : {\n    \"type\" : \"x\",\n    \"reason\" : \"y\"\n  },\n  \"status\" : 400\n}\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestFromQuery(t *testing.T) {
	boolErr := func(v string) string {
		return "Failed to parse value [" + v + "] as only [true] or [false] are allowed."
	}
	tests := []struct {
		query      string
		wantPretty bool
		wantFilter bool
		wantErr    string
		wantParam  string
	}{
		{query: ""},
		{query: "pretty", wantPretty: true},
		{query: "pretty=", wantPretty: true},
		{query: "pretty=true", wantPretty: true},
		{query: "pretty=false"},
		{query: "pretty=%20", wantPretty: false}, // blank: the default
		{query: "pretty=%09%0A", wantPretty: false},
		{query: "pretty=TRUE", wantErr: boolErr("TRUE"), wantParam: "pretty"},
		{query: "pretty=1", wantErr: boolErr("1"), wantParam: "pretty"},
		{query: "pretty=yes", wantErr: boolErr("yes"), wantParam: "pretty"},
		{query: "pretty=%C2%A0", wantErr: boolErr("\u00a0"), wantParam: "pretty"}, // no-break space is text to Java
		{query: "pretty=false&pretty", wantPretty: true},                          // the last value counts
		{query: "pretty&pretty=false"},
		{query: "human=nope", wantErr: boolErr("nope"), wantParam: "human"},
		{query: "human&pretty", wantPretty: true},
		{query: "filter_path=a", wantFilter: true},
		{query: "filter_path="},
		{query: "filter_path=a&filter_path=", wantFilter: false},
		{query: "filter_path=-&pretty", wantPretty: true, wantErr: "filters cannot be null or empty", wantParam: "filter_path"},
		{query: "pretty=x&filter_path=-", wantErr: boolErr("x"), wantParam: "pretty"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			o, err := FromQuery(q)
			if tt.wantErr != "" {
				var pe *ParamError
				if !errors.As(err, &pe) {
					t.Fatalf("got error %v, want a ParamError", err)
				}
				if pe.Error() != tt.wantErr || pe.Param != tt.wantParam {
					t.Errorf("got %s %q, want %s %q", pe.Param, pe.Error(), tt.wantParam, tt.wantErr)
				}
			} else if err != nil {
				t.Fatalf("got error %v", err)
			}
			if o.Pretty != tt.wantPretty || (o.Filter != nil) != tt.wantFilter {
				t.Errorf("got pretty %v filter %v, want %v %v", o.Pretty, o.Filter != nil, tt.wantPretty, tt.wantFilter)
			}
		})
	}
}

// TestRenderKeepsText: key order, numbers and string escapes pass through
// byte for byte, which a round trip through map[string]any would not do.
func TestRenderKeepsText(t *testing.T) {
	body := `{"z":{"b":1E400,"a":0.10},"y":"\u2028\/\ud83d\ude00","x":[-0,1e-7]}`
	f, _ := ParseFilter("-w")
	if got := string(Options{Filter: f}.Render([]byte(body))); got != body {
		t.Errorf("got %s, want %s", got, body)
	}
	var lines []string
	for _, l := range strings.Split(string(Options{Pretty: true}.Render([]byte(body))), "\n") {
		lines = append(lines, strings.TrimSpace(l))
	}
	want := []string{"{", `"z" : {`, `"b" : 1E400,`, `"a" : 0.10`, "},", `"y" : "\u2028\/\ud83d\ude00",`, `"x" : [`, "-0,", "1e-7", "]", "}", ""}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("pretty lines mismatch (-want +got):\n%s", diff)
	}
}

// benchDoc is a search answer of about 2 KB, the shape the ML API's
// _search routes return.
func benchDoc() []byte {
	var b strings.Builder
	b.WriteString(`{"took":3,"timed_out":false,"_shards":{"total":1,"successful":1,"skipped":0,"failed":0},"hits":{"total":{"value":5,"relation":"eq"},"max_score":1.0,"hits":[`)
	for i := range 5 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"_index":".plugins-ml-model","_id":"bWd1cW0BAAAAxyz` + string(rune('0'+i)) + `","_version":1,"_seq_no":12,"_primary_term":1,"_score":1.0,` +
			`"_source":{"name":"openai/gpt-4o-mini","model_group_id":"l2XZQ5QBYQ","algorithm":"REMOTE","model_version":"1","model_state":"DEPLOYED",` +
			`"description":"Chat model behind the sidecar","created_time":1736429192831,"last_updated_time":1736429192831,"connector_id":"kWXZQ5QBYQ",` +
			`"is_hidden":false,"planning_worker_nodes":["n1","n2"],"deploy_to_all_nodes":true}}`)
	}
	b.WriteString(`]}}`)
	return []byte(b.String())
}

func BenchmarkRender(b *testing.B) {
	doc := benchDoc()
	f, err := ParseFilter("hits.total.value,hits.hits._id,hits.hits._source.name,hits.hits._source.model_*,-hits.hits._source.model_group_id")
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		o    Options
	}{
		{"filter", Options{Filter: f}},
		{"pretty", Options{Pretty: true}},
		{"filter+pretty", Options{Filter: f, Pretty: true}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(doc)))
			b.ReportAllocs()
			for b.Loop() {
				_ = bc.o.Render(doc)
			}
		})
	}
}
