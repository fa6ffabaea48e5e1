package process

import (
	"errors"
	"slices"
	"testing"

	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func str(s string) *string { return &s }

func docs(ss ...string) []*string {
	out := make([]*string, len(ss))
	for i := range ss {
		out[i] = &ss[i]
	}
	return out
}

func TestKind(t *testing.T) {
	tests := []struct {
		name string
		in   Input
		want string
	}{
		{"zero", Input{}, KindRemote},
		{"parameters", Input{Parameters: map[string]any{"input": "x"}}, KindRemote},
		{"text docs", Input{TextDocs: docs("a")}, KindTextDocs},
		{"empty text docs", Input{TextDocs: []*string{}}, KindTextDocs},
		{"text similarity", Input{QueryText: str("q"), TextDocs: docs("a")}, KindTextSimilarity},
		{"query without docs", Input{QueryText: str("q")}, KindTextSimilarity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.Kind(); got != tt.want {
				t.Errorf("Kind() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNames(t *testing.T) {
	want := []string{
		"connector.post_process.bedrock.batch_job_arn",
		"connector.post_process.bedrock.embedding",
		"connector.post_process.bedrock.rerank",
		"connector.post_process.cohere.embedding",
		"connector.post_process.cohere.rerank",
		"connector.post_process.default.embedding",
		"connector.post_process.default.rerank",
		"connector.post_process.openai.embedding",
		"connector.pre_process.bedrock.embedding",
		"connector.pre_process.bedrock.multimodal_embedding",
		"connector.pre_process.bedrock.rerank",
		"connector.pre_process.cohere.embedding",
		"connector.pre_process.cohere.rerank",
		"connector.pre_process.default.embedding",
		"connector.pre_process.default.rerank",
		"connector.pre_process.openai.embedding",
	}
	if diff := cmp.Diff(want, Names()); diff != "" {
		t.Errorf("Names() mismatch (-want +got):\n%s", diff)
	}
	for _, n := range want {
		if !IsBuiltin(n) {
			t.Errorf("IsBuiltin(%q) = false, want true", n)
		}
	}
	for _, n := range []string{"", "connector.pre_process.cohere.multimodal_embedding",
		"connector.post_process.cohere_v2.embedding.float", "connector.post_process.mlcommons.passthrough",
		"return params.text_docs;"} {
		if IsBuiltin(n) {
			t.Errorf("IsBuiltin(%q) = true, want false", n)
		}
	}
}

func TestPreProcess(t *testing.T) {
	threeDocs := Input{TextDocs: docs("a", "b", "c")}
	rerankInput := Input{QueryText: str(`what is "OpenSearch"?`), TextDocs: docs("OpenSearch is a search engine", `it's "fast"/scalable`)}
	tests := []struct {
		name     string
		function string
		in       Input
		params   map[string]string
		want     []map[string]string
	}{
		{
			name:     "parameters input passes through built-ins",
			function: preOpenAIEmbedding,
			in:       Input{Parameters: map[string]any{"input": []any{"x"}}},
			want:     []map[string]string{{}},
		},
		{
			name: "parameters input without function",
			in:   Input{Parameters: map[string]any{"prompt": "hi"}},
			want: []map[string]string{{}},
		},
		{
			name:     "parameters input ignores a bad step size",
			function: preBedrockEmbedding,
			in:       Input{},
			params:   map[string]string{stepSizeParameter: "0"},
			want:     []map[string]string{{}},
		},
		{
			name:     "parameters input to a rerank function",
			function: preBedrockRerank,
			in:       Input{Parameters: map[string]any{}},
			want:     []map[string]string{{}},
		},
		{
			name: "text docs without function use default.embedding",
			in:   Input{TextDocs: docs("hello", "world")},
			want: []map[string]string{{"input": `["hello","world"]`}},
		},
		{
			name:     "openai embedding is Gson JSON",
			function: preOpenAIEmbedding,
			in:       Input{TextDocs: []*string{str(`say "hi" / é`), str("line\nbreak\ttab\u0001"), nil, str("<b>&amp;</b> \u2028")}},
			want:     []map[string]string{{"input": `["say \"hi\" / é","line\nbreak\ttab\u0001",null,"\u003cb\u003e\u0026amp;\u003c/b\u003e \u2028"]`}},
		},
		{
			name:     "default embedding",
			function: preDefaultEmbedding,
			in:       Input{TextDocs: docs("a", "b")},
			want:     []map[string]string{{"input": `["a","b"]`}},
		},
		{
			name:     "cohere embedding",
			function: preCohereEmbedding,
			in:       Input{TextDocs: docs("a", "b")},
			want:     []map[string]string{{"texts": `["a","b"]`}},
		},
		{
			name:     "bedrock embedding is one call per doc",
			function: preBedrockEmbedding,
			in:       Input{TextDocs: docs("plain", `say "hi" / ünï`, "tab\there 😀\u007f")},
			want: []map[string]string{
				{"inputText": "plain"},
				{"inputText": `say \"hi\" \/ \u00FCn\u00EF`},
				{"inputText": `tab\there \uD83D\uDE00\u007F`},
			},
		},
		{
			// ML Commons does not escape a value that parses as a JSON
			// object or array, even a doc that has to go between quotes.
			name:     "bedrock embedding leaves JSON text unescaped",
			function: preBedrockEmbedding,
			in:       Input{TextDocs: docs(`{"k": "v"}`, `[1, 2]`, `{not json}`)},
			want: []map[string]string{
				{"inputText": `{"k": "v"}`},
				{"inputText": `[1, 2]`},
				{"inputText": `{not json}`},
			},
		},
		{
			name:     "step size splits docs",
			function: preOpenAIEmbedding,
			in:       threeDocs,
			params:   map[string]string{stepSizeParameter: "2"},
			want:     []map[string]string{{"input": `["a","b"]`}, {"input": `["c"]`}},
		},
		{
			name:   "step size without function",
			in:     threeDocs,
			params: map[string]string{stepSizeParameter: "1"},
			want:   []map[string]string{{"input": `["a"]`}, {"input": `["b"]`}, {"input": `["c"]`}},
		},
		{
			name:     "step size larger than docs",
			function: preCohereEmbedding,
			in:       threeDocs,
			params:   map[string]string{stepSizeParameter: "10"},
			want:     []map[string]string{{"texts": `["a","b","c"]`}},
		},
		{
			// bedrock.embedding reads docs[0] of each chunk; the others
			// are dropped, as in ML Commons.
			name:     "step size overrides bedrock one per doc",
			function: preBedrockEmbedding,
			in:       threeDocs,
			params:   map[string]string{stepSizeParameter: "2"},
			want:     []map[string]string{{"inputText": "a"}, {"inputText": "c"}},
		},
		{
			name:     "multimodal text and image",
			function: preBedrockMultimodal,
			in:       Input{TextDocs: docs("a red car", "iVBORw0KGgo=")},
			want:     []map[string]string{{"inputText": "a red car", "inputImage": "iVBORw0KGgo="}},
		},
		{
			name:     "multimodal text only",
			function: preBedrockMultimodal,
			in:       Input{TextDocs: docs(`a "red" car`)},
			want:     []map[string]string{{"inputText": `a \"red\" car`}},
		},
		{
			name:     "multimodal image only sends the text null",
			function: preBedrockMultimodal,
			in:       Input{TextDocs: []*string{nil, str("iVBORw0KGgo/+=")}},
			want:     []map[string]string{{"inputText": "null", "inputImage": `iVBORw0KGgo\/+=`}},
		},
		{
			name:     "multimodal null image",
			function: preBedrockMultimodal,
			in:       Input{TextDocs: []*string{str("text"), nil}},
			want:     []map[string]string{{"inputText": "text", "inputImage": "null"}},
		},
		{
			name:     "multimodal extra docs are ignored",
			function: preBedrockMultimodal,
			in:       threeDocs,
			want:     []map[string]string{{"inputText": "a", "inputImage": "b"}},
		},
		{
			name:     "cohere rerank",
			function: preCohereRerank,
			in:       rerankInput,
			want: []map[string]string{{
				"query":     `what is \"OpenSearch\"?`,
				"documents": `["OpenSearch is a search engine","it\u0027s \"fast\"/scalable"]`,
				"top_n":     "2",
			}},
		},
		{
			name:     "default rerank",
			function: preDefaultRerank,
			in:       Input{QueryText: str("q"), TextDocs: []*string{str("d"), nil}},
			want:     []map[string]string{{"query": "q", "documents": `["d",null]`, "top_n": "2"}},
		},
		{
			name:     "rerank ignores step size",
			function: preDefaultRerank,
			in:       Input{QueryText: str("q"), TextDocs: docs("a", "b")},
			params:   map[string]string{stepSizeParameter: "1"},
			want:     []map[string]string{{"query": "q", "documents": `["a","b"]`, "top_n": "2"}},
		},
		{
			name:     "bedrock rerank",
			function: preBedrockRerank,
			in:       rerankInput,
			want: []map[string]string{{
				"queries": `[{"textQuery":{"text":"what is \"OpenSearch\"?"},"type":"TEXT"}]`,
				"sources": `[{"inlineDocumentSource":{"textDocument":{"text":"OpenSearch is a search engine"},"type":"TEXT"},"type":"INLINE"},` +
					`{"inlineDocumentSource":{"textDocument":{"text":"it\u0027s \"fast\"/scalable"},"type":"TEXT"},"type":"INLINE"}]`,
				"numberOfResults": "2",
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PreProcess(tt.function, tt.in, tt.params)
			if err != nil {
				t.Fatalf("PreProcess: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("PreProcess mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPreProcessErrors(t *testing.T) {
	similarity := Input{QueryText: str("q"), TextDocs: docs("a")}
	tests := []struct {
		name     string
		function string
		in       Input
		params   map[string]string
		reason   string // "" for a plain (500) error
	}{
		{"openai on similarity", preOpenAIEmbedding, similarity, nil, errTextDocsOnly},
		{"default embedding on similarity", preDefaultEmbedding, similarity, nil, errTextDocsOnly},
		{"cohere embedding on similarity", preCohereEmbedding, similarity, nil, errTextDocsOnly},
		{"bedrock embedding on similarity", preBedrockEmbedding, similarity, nil, errTextDocsOnly},
		{"multimodal on similarity", preBedrockMultimodal, similarity, nil, errTextDocsOnly},
		{"cohere rerank on text docs", preCohereRerank, Input{TextDocs: docs("a")}, nil, errTextSimilarityOnly},
		{"default rerank on text docs", preDefaultRerank, Input{TextDocs: docs("a")}, nil, errTextSimilarityOnly},
		{"bedrock rerank on text docs", preBedrockRerank, Input{TextDocs: docs("a")}, nil, errTextSimilarityOnly},
		{"similarity without function", "", similarity, nil, errNoPreProcess},
		{"empty text docs", preOpenAIEmbedding, Input{TextDocs: []*string{}}, nil, errEmptyDocs},
		{"similarity without docs", preCohereRerank, Input{QueryText: str("q")}, nil, errNoSimilarityDocs},
		{"multimodal only null doc", preBedrockMultimodal, Input{TextDocs: []*string{nil}}, nil, errNoTextOrImage},
		{"multimodal chunk with only a null doc", preBedrockMultimodal, Input{TextDocs: []*string{nil, str("img")}},
			map[string]string{stepSizeParameter: "1"}, errNoTextOrImage},
		{"step size zero", preOpenAIEmbedding, Input{TextDocs: docs("a")}, map[string]string{stepSizeParameter: "0"}, errStepSize},
		{"step size negative", "", Input{TextDocs: docs("a")}, map[string]string{stepSizeParameter: "-2"}, errStepSize},
		{"step size not a number", preBedrockEmbedding, Input{TextDocs: docs("a")}, map[string]string{stepSizeParameter: "two"}, errStepSize},
		{"step size empty", preCohereEmbedding, Input{TextDocs: docs("a")}, map[string]string{stepSizeParameter: ""}, errStepSize},
		{"step size checked before input type", preCohereRerank, Input{TextDocs: docs("a")}, map[string]string{stepSizeParameter: "1.5"}, errStepSize},
		{"unknown function", "return params;", Input{TextDocs: docs("a")}, nil, "return params; is not a built-in pre_process_function"},
		{"post function as pre", postOpenAIEmbedding, Input{}, nil, postOpenAIEmbedding + " is not a built-in pre_process_function"},
		{"bedrock embedding null doc", preBedrockEmbedding, Input{TextDocs: []*string{str("a"), nil}}, nil, ""},
		{"bedrock rerank null doc", preBedrockRerank, Input{QueryText: str("q"), TextDocs: []*string{nil}}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PreProcess(tt.function, tt.in, tt.params)
			if err == nil {
				t.Fatalf("PreProcess = %v, want an error", got)
			}
			checkError(t, err, tt.reason)
		})
	}
}

// checkError checks that err is a 400 *mlerr.Error with reason, or a plain error
// when reason is "".
func checkError(t *testing.T, err error, reason string) {
	t.Helper()
	var e *mlerr.Error
	if !errors.As(err, &e) {
		if reason != "" {
			t.Fatalf("got plain error %q, want *mlerr.Error %q", err, reason)
		}
		return
	}
	if reason == "" {
		t.Fatalf("got *mlerr.Error %q, want a plain error", e.Reason)
	}
	want := &mlerr.Error{Status: 400, Type: "illegal_argument_exception", Reason: reason}
	if diff := cmp.Diff(want, e, cmpopts.IgnoreUnexported(mlerr.Error{})); diff != "" {
		t.Errorf("error mismatch (-want +got):\n%s", diff)
	}
}

func TestPreProcessDoesNotModifyInput(t *testing.T) {
	d := docs("a", "b", "c")
	orig := slices.Clone(d)
	if _, err := PreProcess(preBedrockEmbedding, Input{TextDocs: d}, nil); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d, orig) {
		t.Errorf("text docs changed")
	}
}
