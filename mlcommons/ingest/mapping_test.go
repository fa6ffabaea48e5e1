package ingest

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Lines in the providers' output formats (provider-batch-apis.md §2.6,
// §4.4, §5.2) and ML Commons' own test lines (AbstractIngestionTests).
const (
	sageMakerLine = `{"SageMakerOutput":[[-0.017166402, 0.055771016],[-0.004301484,-0.042826906]],"content":["this is chapter 1","harry potter"],"id":1,"custom_field":"cf"}`
	openAIOutLine = `{"id": "batch_req_pgNqCfERGHOcMwAHGUWSO0nV", "custom_id": "request-1", "response": {"status_code": 200, "request_id": "fca3d548770f1f299d067c64c11a14fd", "body": {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.0044326545, -0.029703418]}, {"object": "embedding", "index": 1, "embedding": [0.002297497, -0.009297881]}], "model": "text-embedding-ada-002", "usage": {"prompt_tokens": 15, "total_tokens": 15}}}, "error": null}`
	openAIInLine  = `{"custom_id": "request-1", "method": "POST", "url": "/v1/embeddings", "body": {"model": "text-embedding-ada-002", "input": ["What is the meaning of life?", "The food was delicious"]}}`
	bedrockLine   = `{"recordId":"REC0000001","modelInput":{"inputText":"hello"},"modelOutput":{"embedding":[0.1,0.2],"inputTextTokenCount":2}}`
)

func mapper(t *testing.T, body string) *Mapper {
	t.Helper()
	in, err := ParseInput([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Validate(); err != nil {
		t.Fatal(err)
	}
	m, err := NewMapper(in, "task1")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// docJSON is a Doc with its body decoded, for comparison.
type docJSON struct {
	Source int
	Line   int64
	Index  string
	ID     string
	Update bool
	Body   any
}

func decoded(t *testing.T, d *Doc) *docJSON {
	t.Helper()
	if d == nil {
		return nil
	}
	var v any
	if err := json.Unmarshal(d.Body, &v); err != nil {
		t.Fatalf("body %s: %v", d.Body, err)
	}
	return &docJSON{Source: d.Source, Line: d.Line, Index: d.Index, ID: d.ID, Update: d.Update, Body: v}
}

func obj(s string) any {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		panic(err)
	}
	return v
}

func TestMapLine(t *testing.T) {
	const sageMakerIngestion = `{"index_name":"my-index",
		"field_map":{"chapter":"$.content[0]","title":"$.content[1]","chapter_embedding":"$.SageMakerOutput[0]","_id":"$.id"},
		"ingest_fields":["$.custom_field"],"credential":{},"data_source":{"type":"s3","source":["s3://b/out.json.out"]}}`
	const noID = `{"index_name":"my-index",
		"field_map":{"chapter":"$.content[0]","title":"$.content[1]","chapter_embedding":"$.SageMakerOutput[0]","title_embedding":"$.SageMakerOutput[1]"},
		"ingest_fields":["$.id"],"credential":{},"data_source":{"type":"s3","source":["s3://b/out.json.out"]}}`
	const twoOpenAI = `{"index_name":"my-nlp-index-openai",
		"field_map":{"question":"source[1].$.body.input[0]","answer":"source[1].$.body.input[1]",
			"question_embedding":"source[0].$.response.body.data[0].embedding","answer_embedding":"source[0].$.response.body.data[1].embedding",
			"_id":["source[0].$.custom_id","source[1].$.custom_id"]},
		"credential":{"openAI_key":"k"},"data_source":{"type":"openAI","source":["file-out","file-in"]}}`
	for _, tt := range []struct {
		name   string
		input  string
		source int
		line   string
		want   *docJSON
		reason string
	}{
		{
			name:  "SageMaker .out with _id: update with doc and upsert, _id removed, ingest field by last segment",
			input: sageMakerIngestion, line: sageMakerLine,
			want: &docJSON{Line: 7, Index: "my-index", ID: "1", Update: true, Body: obj(`{
				"doc":{"chapter":"this is chapter 1","title":"harry potter","chapter_embedding":[-0.017166402,0.055771016],"custom_field":"cf"},
				"upsert":{"chapter":"this is chapter 1","title":"harry potter","chapter_embedding":[-0.017166402,0.055771016],"custom_field":"cf"}}`)},
		},
		{
			name:  "one source without _id: plain index, derived id",
			input: noID, line: sageMakerLine,
			want: &docJSON{Line: 7, Index: "my-index", ID: DerivedID("task1", 0, 7), Body: obj(`{
				"chapter":"this is chapter 1","title":"harry potter","id":1,
				"chapter_embedding":[-0.017166402,0.055771016],"title_embedding":[-0.004301484,-0.042826906]}`)},
		},
		{
			name:  "two sources, output file: only source[0] entries",
			input: twoOpenAI, source: 0, line: openAIOutLine,
			want: &docJSON{Source: 0, Line: 7, Index: "my-nlp-index-openai", ID: "request-1", Update: true, Body: obj(`{
				"doc":{"question_embedding":[0.0044326545,-0.029703418],"answer_embedding":[0.002297497,-0.009297881]},
				"upsert":{"question_embedding":[0.0044326545,-0.029703418],"answer_embedding":[0.002297497,-0.009297881]}}`)},
		},
		{
			name:  "two sources, input file: the same document by custom_id",
			input: twoOpenAI, source: 1, line: openAIInLine,
			want: &docJSON{Source: 1, Line: 7, Index: "my-nlp-index-openai", ID: "request-1", Update: true, Body: obj(`{
				"doc":{"question":"What is the meaning of life?","answer":"The food was delicious"},
				"upsert":{"question":"What is the meaning of life?","answer":"The food was delicious"}}`)},
		},
		{
			name:  "Bedrock record by recordId; a wildcard path gives a list",
			input: `{"index_name":"b","field_map":{"_id":"$.recordId","v":"$.modelOutput.embedding","all":"$.modelInput.*"},"credential":{},"data_source":{"type":"s3","source":["s3://b/k.out"]}}`,
			line:  bedrockLine,
			want: &docJSON{Line: 7, Index: "b", ID: "REC0000001", Update: true, Body: obj(`{
				"doc":{"v":[0.1,0.2],"all":["hello"]},"upsert":{"v":[0.1,0.2],"all":["hello"]}}`)},
		},
		{
			name:  "a list value: every path read, the last one wins",
			input: `{"index_name":"i","field_map":{"x":["$.a","$.b"]},"credential":{},"data_source":{"type":"s3","source":["s3://b/k"]}}`,
			line:  `{"a":1,"b":2}`,
			want:  &docJSON{Line: 7, Index: "i", ID: DerivedID("task1", 0, 7), Body: obj(`{"x":2}`)},
		},
		{
			name:  "numbers keep their text; null values are kept",
			input: `{"index_name":"i","field_map":{"_id":"$.id","n":"$.n","z":"$.z"},"credential":{},"data_source":{"type":"s3","source":["s3://b/k"]}}`,
			line:  `{"id":12345678901234567890,"n":0.10000000000000000555,"z":null}`,
			want:  &docJSON{Line: 7, Index: "i", ID: "12345678901234567890", Update: true, Body: obj(`{"doc":{"n":0.1,"z":null},"upsert":{"n":0.1,"z":null}}`)},
		},
		{
			name:  "a boolean id",
			input: `{"index_name":"i","field_map":{"_id":"$.id","a":"$.a"},"credential":{},"data_source":{"type":"s3","source":["s3://b/k"]}}`,
			line:  `{"id":true,"a":"x"}`,
			want:  &docJSON{Line: 7, Index: "i", ID: "true", Update: true, Body: obj(`{"doc":{"a":"x"},"upsert":{"a":"x"}}`)},
		},
		{
			name:  "a path without $ is relative to the root, as in Jayway",
			input: `{"index_name":"i","field_map":{"a":"content[1]"},"credential":{},"data_source":{"type":"s3","source":["s3://b/k"]}}`,
			line:  sageMakerLine,
			want:  &docJSON{Line: 7, Index: "i", ID: DerivedID("task1", 0, 7), Body: obj(`{"a":"harry potter"}`)},
		},
		{name: "blank line", input: noID, line: " \t\r"},
		{name: "bad JSON", input: noID, line: `{"content":`, reason: "the line is not valid JSON: unexpected EOF"},
		{name: "two JSON values", input: noID, line: `{} {}`, reason: "the line is not valid JSON: unexpected data after the JSON value"},
		{name: "path that matches nothing", input: noID, line: `{"content":["only one"],"SageMakerOutput":[[1],[2]],"id":1}`,
			reason: "No results for path: $['content'][1]"},
		{name: "an array line", input: noID, line: `[1,2]`, reason: "No results for path: $['content'][0]"},
		{name: "_id that is an object", input: sageMakerIngestion, line: `{"content":["a","b"],"SageMakerOutput":[[1]],"id":{"x":1},"custom_field":1}`,
			reason: "the _id at $['id'] is an object; it must be a string, a number or a boolean"},
		{name: "_id that is null", input: sageMakerIngestion, line: `{"content":["a","b"],"SageMakerOutput":[[1]],"id":null,"custom_field":1}`,
			reason: "the _id at $['id'] is null; it must be a string, a number or a boolean"},
		{name: "_id that is empty", input: sageMakerIngestion, line: `{"content":["a","b"],"SageMakerOutput":[[1]],"id":"","custom_field":1}`,
			reason: "the _id at $['id'] is an empty string"},
		{name: "no such source", input: noID, source: 3, line: `{}`, reason: "no source 3: the ingestion has 1"},
		{name: "nested too deep", input: noID, line: strings.Repeat("[", 65) + strings.Repeat("]", 65), reason: "the line nests deeper than 64 levels"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := mapper(t, tt.input)
			d, f := m.MapLine(tt.source, 7, []byte(tt.line))
			if tt.reason != "" {
				if d != nil || f == nil {
					t.Fatalf("got %v, %v; want the failure %q", d, f, tt.reason)
				}
				if want := (Failure{Source: tt.source, Line: 7, Reason: tt.reason}); *f != want {
					t.Errorf("got %+v, want %+v", *f, want)
				}
				return
			}
			if f != nil {
				t.Fatalf("got the failure %q", f.Reason)
			}
			if diff := cmp.Diff(tt.want, decoded(t, d)); diff != "" {
				t.Errorf("-want +got:\n%s", diff)
			}
		})
	}
}

// ML Commons' filter tests (AbstractIngestionTests.testFilterFieldMapping*):
// which entries each source gets.
func TestPlans(t *testing.T) {
	fieldMap := map[string][]string{
		"question":           {"source[1].$.body.input[0]"},
		"question_embedding": {"source[0].$.response.body.data[0].embedding"},
		"answer":             {"source[1].$.body.input[1]"},
		"answer_embedding":   {"source[0].$.response.body.data[1].embedding"},
		"_id":                {"source[0].$.custom_id", "source[1].$.custom_id"},
	}
	names := func(p plan) map[string][]string {
		out := map[string][]string{}
		for _, f := range p.fields {
			for _, pa := range f.paths {
				out[f.name] = append(out[f.name], pa.p.String())
			}
		}
		return out
	}
	in := &Input{FieldMap: fieldMap, IngestFields: []string{"$.id"}, DataSource: DataSource{Source: []string{"a", "b"}}}
	plans, err := compilePlans(in)
	if err != nil {
		t.Fatal(err)
	}
	want0 := map[string][]string{
		"question_embedding": {`$["response"]["body"]["data"][0]["embedding"]`},
		"answer_embedding":   {`$["response"]["body"]["data"][1]["embedding"]`},
		"_id":                {`$["custom_id"]`},
	}
	if diff := cmp.Diff(want0, names(plans[0])); diff != "" {
		t.Errorf("source 0: -want +got:\n%s", diff)
	}

	sole := map[string][]string{
		"question":           {"source[0].$.body.input[0]"},
		"question_embedding": {"source[0].$.response.body.data[0].embedding"},
		"answer":             {"source[0].$.body.input[1]"},
		"answer_embedding":   {"$.response.body.data[1].embedding"},
		"_id":                {"$.custom_id", "source[1].$.custom_id"},
	}
	in = &Input{FieldMap: sole, IngestFields: []string{"$.id"}, DataSource: DataSource{Source: []string{"a"}}}
	plans, err = compilePlans(in)
	if err != nil {
		t.Fatal(err)
	}
	got := names(plans[0])
	if len(got) != 6 {
		t.Errorf("got %d entries, want 6: %v", len(got), got)
	}
	if diff := cmp.Diff([]string{`$["custom_id"]`}, got["_id"]); diff != "" {
		t.Errorf("_id: -want +got:\n%s", diff)
	}
	if !plans[0].update {
		t.Error("a mapped _id must make updates")
	}
}

// Numbers reach the index as the provider wrote them, and <, >, & are not
// escaped.
func TestMapLineBodyText(t *testing.T) {
	m := mapper(t, `{"index_name":"i","field_map":{"_id":"$.id","n":"$.n","s":"$.s"},"credential":{},"data_source":{"type":"s3","source":["s3://b/k"]}}`)
	d, f := m.MapLine(0, 1, []byte(`{"id":1e3,"n":0.10000000000000000555,"s":"<a&b>"}`))
	if f != nil {
		t.Fatal(f)
	}
	want := `{"doc":{"n":0.10000000000000000555,"s":"<a&b>"},"upsert":{"n":0.10000000000000000555,"s":"<a&b>"}}`
	if string(d.Body) != want || d.ID != "1e3" {
		t.Errorf("got %s id %s,\nwant %s id 1e3", d.Body, d.ID, want)
	}
}

func TestDeeperThan(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{`[[1]]`, false},
		{`[[[1]]]`, true},
		{`["[[[[", {"a":"\\\"[[["}]`, false},
		{`{"a":{"b":{"c":1}}}`, true},
	} {
		if got := deeperThan([]byte(tt.in), 2); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestDerivedID(t *testing.T) {
	a := DerivedID("t", 0, 1)
	if len(a) != 20 {
		t.Errorf("got %q (%d characters), want 20", a, len(a))
	}
	if a != DerivedID("t", 0, 1) {
		t.Error("not deterministic")
	}
	for _, other := range []string{DerivedID("t", 0, 2), DerivedID("t", 1, 1), DerivedID("u", 0, 1), DerivedID("t0", 0, 1)} {
		if other == a {
			t.Errorf("%q collides", other)
		}
	}
}

func TestFieldNameOf(t *testing.T) {
	for in, want := range map[string]string{
		"$.response.body.id": "id",
		"$.custom_field":     "custom_field",
		"$.a.b[0]":           "b[0]",
		"$.a.":               "a",
		"$":                  "$",
	} {
		if got, ok := fieldNameOf(in); !ok || got != want {
			t.Errorf("%s: got %q, want %q", in, got, want)
		}
	}
	if _, ok := fieldNameOf("..."); ok {
		t.Error("...: want no name")
	}
}
