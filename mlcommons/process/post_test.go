package process

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"

	"github.com/google/go-cmp/cmp"
)

// Provider responses, trimmed to a few dimensions.
const (
	openAIResponse = `{
  "object": "list",
  "data": [
    {"object": "embedding", "index": 0, "embedding": [-0.006929283, -0.005336422, 1.0, 0]},
    {"object": "embedding", "index": 1, "embedding": [0.0123, -1.5E-7, 2, 0.024047505]}
  ],
  "model": "text-embedding-ada-002-v2",
  "usage": {"prompt_tokens": 8, "total_tokens": 8}
}`
	cohereV1Response = `{
  "id": "5807ee2e-0cda-445a-9ec8-864c60a06606",
  "texts": ["hello world", "goodbye"],
  "embeddings": [[0.016296387, -0.008354187, -0.04699707], [0.022064209, 0.0087890625, -0.03869629]],
  "meta": {"api_version": {"version": "1"}, "billed_units": {"input_tokens": 4}},
  "response_type": "embeddings_floats"
}`
	cohereV2Response = `{
  "id": "da6e531f-54c6-4a73-bf92-f60566d8d753",
  "embeddings": {"float": [[0.1, 0.2]], "int8": [[-12, 127]], "uint8": [[3, 255]], "binary": [[-54, 99]], "ubinary": [[202, 99]]},
  "texts": ["hello"],
  "meta": {"api_version": {"version": "2"}}
}`
	titanResponse   = `{"embedding": [0.8515625, -0.0546875, 0.2734375e-1], "inputTextTokenCount": 3}`
	defaultResponse = `[[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]`
	cohereRerank    = `{
  "id": "04a4a3b2-4b2a-4e7c-a6f5-e1cf0da8d2d3",
  "results": [
    {"index": 2, "relevance_score": 0.99873},
    {"index": 0, "relevance_score": 0.08781},
    {"index": 1, "relevance_score": 0.0012}
  ],
  "meta": {"api_version": {"version": "1"}, "billed_units": {"search_units": 1}}
}`
	bedrockRerank = `{
  "results": [
    {"index": 1, "relevanceScore": 0.7349015474319458},
    {"index": 0, "relevanceScore": 0.0009065699996426702}
  ]
}`
	bedrockBatch = `{"jobArn": "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abc123/def"}`
)

func nums(ss ...string) []json.Number {
	out := make([]json.Number, len(ss))
	for i, s := range ss {
		out[i] = json.Number(s)
	}
	return out
}

func vector(dataType string, ss ...string) Tensor {
	return Tensor{Name: "sentence_embedding", DataType: dataType, Shape: []int64{int64(len(ss))}, Data: nums(ss...)}
}

func similarity(s string) Tensor {
	return Tensor{Name: "similarity", DataType: "FLOAT32", Shape: []int64{1}, Data: nums(s)}
}

func TestPostProcess(t *testing.T) {
	tests := []struct {
		name     string
		function string
		filter   string
		body     string
		want     []Tensor
	}{
		{
			name:     "openai embedding",
			function: postOpenAIEmbedding,
			body:     openAIResponse,
			want: []Tensor{
				vector("FLOAT32", "-0.006929283", "-0.005336422", "1.0", "0"),
				vector("FLOAT32", "0.0123", "-1.5E-7", "2", "0.024047505"),
			},
		},
		{
			name:     "openai embedding with no data",
			function: postOpenAIEmbedding,
			body:     `{"object": "list", "data": []}`,
			want:     []Tensor{},
		},
		{
			name:     "openai embedding without data key",
			function: postOpenAIEmbedding,
			body:     `{"object": "list"}`,
			want:     []Tensor{},
		},
		{
			name:     "cohere v1 embedding",
			function: postCohereEmbedding,
			body:     cohereV1Response,
			want: []Tensor{
				vector("FLOAT32", "0.016296387", "-0.008354187", "-0.04699707"),
				vector("FLOAT32", "0.022064209", "0.0087890625", "-0.03869629"),
			},
		},
		{
			name:     "default embedding",
			function: postDefaultEmbedding,
			body:     defaultResponse,
			want:     []Tensor{vector("FLOAT32", "0.1", "0.2", "0.3"), vector("FLOAT32", "0.4", "0.5", "0.6")},
		},
		{
			name:     "default embedding over an object is in key order",
			function: postDefaultEmbedding,
			body:     `{"b": [2], "c": [3], "a": [1]}`,
			want:     []Tensor{vector("FLOAT32", "1"), vector("FLOAT32", "2"), vector("FLOAT32", "3")},
		},
		{
			name:     "bedrock titan embedding",
			function: postBedrockEmbedding,
			body:     titanResponse,
			want:     []Tensor{vector("FLOAT32", "0.8515625", "-0.0546875", "0.2734375e-1")},
		},
		{
			name:     "bedrock empty embedding",
			function: postBedrockEmbedding,
			body:     `{"embedding": []}`,
			want:     []Tensor{{Name: "sentence_embedding", DataType: "FLOAT32", Shape: []int64{0}, Data: []json.Number{}}},
		},
		{
			name:     "filter overrides the default path",
			function: postBedrockEmbedding,
			filter:   "$.data[0].embedding",
			body:     openAIResponse,
			want:     []Tensor{vector("FLOAT32", "-0.006929283", "-0.005336422", "1.0", "0")},
		},
		{
			name:     "filter with a wildcard",
			function: postOpenAIEmbedding,
			filter:   "$.data[*].embedding",
			body:     `{"data": [{"embedding": [1.5]}, {"embedding": [2.5]}]}`,
			want:     []Tensor{vector("FLOAT32", "1.5"), vector("FLOAT32", "2.5")},
		},
		{
			name:     "filter with a descendant segment",
			function: postOpenAIEmbedding,
			filter:   "$..embedding",
			body:     `{"data": [{"embedding": [1.5]}, {"embedding": [2.5]}]}`,
			want:     []Tensor{vector("FLOAT32", "1.5"), vector("FLOAT32", "2.5")},
		},
		{
			name:     "filter with an RFC 9535 filter selector",
			function: postOpenAIEmbedding,
			filter:   "$.data[?@.index == 1].embedding",
			body:     `{"data": [{"index": 0, "embedding": [1.5]}, {"index": 1, "embedding": [2.5]}]}`,
			want:     []Tensor{vector("FLOAT32", "2.5")},
		},
		{
			name:     "blank filter uses the default",
			function: postCohereEmbedding,
			filter:   "  ",
			body:     `{"embeddings": [[1, 2]]}`,
			want:     []Tensor{vector("FLOAT32", "1", "2")},
		},
		{
			name:     "filter without $ is relative to the root",
			function: postCohereEmbedding,
			filter:   "embeddings.float",
			body:     cohereV2Response,
			want:     []Tensor{vector("FLOAT32", "0.1", "0.2")},
		},
		{
			name:     "int8 data type from the filter",
			function: postCohereEmbedding,
			filter:   "$.embeddings.int8",
			body:     cohereV2Response,
			want:     []Tensor{vector("INT8", "-12", "127")},
		},
		{
			name:     "uint8 data type from the filter",
			function: postCohereEmbedding,
			filter:   "$.embeddings.uint8",
			body:     cohereV2Response,
			want:     []Tensor{vector("UINT8", "3", "255")},
		},
		{
			name:     "binary data type from the filter",
			function: postCohereEmbedding,
			filter:   "$.embeddings.binary",
			body:     cohereV2Response,
			want:     []Tensor{vector("BINARY", "-54", "99")},
		},
		{
			name:     "ubinary data type from the filter, any case",
			function: postCohereEmbedding,
			filter:   "$.embeddings.UBinary",
			body:     `{"embeddings": {"UBinary": [[202, 99]]}}`,
			want:     []Tensor{vector("UBINARY", "202", "99")},
		},
		{
			name:     "bedrock embedding by type",
			function: postBedrockEmbedding,
			filter:   "$.embeddingsByType.binary",
			body:     `{"embeddingsByType": {"binary": [1, 0, 1], "float": [0.5, 0.25, 0.125]}}`,
			want:     []Tensor{vector("BINARY", "1", "0", "1")},
		},
		{
			name:     "cohere rerank in document order",
			function: postCohereRerank,
			body:     cohereRerank,
			want:     []Tensor{similarity("0.08781"), similarity("0.0012"), similarity("0.99873")},
		},
		{
			name:     "cohere rerank accepts an integer score",
			function: postCohereRerank,
			body:     `{"results": [{"index": 0, "relevance_score": 1}]}`,
			want:     []Tensor{similarity("1")},
		},
		{
			name:     "cohere rerank with no results",
			function: postCohereRerank,
			body:     `{"results": []}`,
			want:     []Tensor{},
		},
		{
			name:     "default rerank",
			function: postDefaultRerank,
			body:     `[{"index": 1, "relevance_score": 0.25}, {"index": 0, "relevance_score": 0.75}]`,
			want:     []Tensor{similarity("0.75"), similarity("0.25")},
		},
		{
			name:     "rerank ignores the data type in the filter",
			function: postDefaultRerank,
			filter:   "$.int8",
			body:     `{"int8": [{"index": 0, "relevance_score": 0.5}]}`,
			want:     []Tensor{similarity("0.5")},
		},
		{
			name:     "bedrock rerank in document order",
			function: postBedrockRerank,
			body:     bedrockRerank,
			want:     []Tensor{similarity("0.0009065699996426702"), similarity("0.7349015474319458")},
		},
		{
			name:     "bedrock batch job arn",
			function: postBedrockBatchJobArn,
			body:     bedrockBatch,
			want: []Tensor{{Name: "response", DataAsMap: map[string]any{
				"jobArn":          "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abc123/def",
				"processedJobArn": "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job%2Fabc123%2Fdef",
			}}},
		},
		{
			name:     "bedrock batch job arn keeps other fields",
			function: postBedrockBatchJobArn,
			body:     `{"jobArn": "arn", "status": "Submitted", "n": 1.50}`,
			want: []Tensor{{Name: "response", DataAsMap: map[string]any{
				"jobArn": "arn", "processedJobArn": "arn", "status": "Submitted", "n": json.Number("1.50"),
			}}},
		},
		{
			name: "no function, object",
			body: `{"id": "chatcmpl-1", "choices": [{"message": {"content": "hi"}}], "usage": {"total_tokens": 12}}`,
			want: []Tensor{{Name: "response", DataAsMap: map[string]any{
				"id":      "chatcmpl-1",
				"choices": []any{map[string]any{"message": map[string]any{"content": "hi"}}},
				"usage":   map[string]any{"total_tokens": json.Number("12")},
			}}},
		},
		{
			name: "no function, array",
			body: `[[0.1, 0.2], "x"]`,
			want: []Tensor{{Name: "response", DataAsMap: map[string]any{
				"response": []any{[]any{json.Number("0.1"), json.Number("0.2")}, "x"},
			}}},
		},
		{
			name: "no function, empty object",
			body: `{}`,
			want: []Tensor{{Name: "response", DataAsMap: map[string]any{}}},
		},
		{
			name: "no function, text",
			body: "Hello, world",
			want: []Tensor{{Name: "response", DataAsMap: map[string]any{"response": "Hello, world"}}},
		},
		{
			name: "no function, JSON scalar is text",
			body: "42",
			want: []Tensor{{Name: "response", DataAsMap: map[string]any{"response": "42"}}},
		},
		{
			name: "no function, broken JSON is text",
			body: `{"a": 1`,
			want: []Tensor{{Name: "response", DataAsMap: map[string]any{"response": `{"a": 1`}}},
		},
		{
			name: "no function, empty body",
			body: "",
			want: []Tensor{{Name: "response", DataAsMap: map[string]any{"response": ""}}},
		},
		{
			name:   "no function, filter selects an object",
			filter: "$.choices[0].message",
			body:   `{"choices": [{"message": {"role": "assistant", "content": "hi"}}]}`,
			want: []Tensor{{Name: "response", DataAsMap: map[string]any{
				"response": map[string]any{"role": "assistant", "content": "hi"},
			}}},
		},
		{
			name:   "no function, filter selects a string",
			filter: "$.choices[0].message.content",
			body:   `{"choices": [{"message": {"content": "The answer is 42."}}]}`,
			want:   []Tensor{{Name: "response", DataAsMap: map[string]any{"response": "The answer is 42."}}},
		},
		{
			name:   "no function, filter selects a string holding a JSON object",
			filter: "$.choices[0].message.content",
			body:   `{"choices": [{"message": {"content": "{\"answer\": 42}"}}]}`,
			want:   []Tensor{{Name: "response", DataAsMap: map[string]any{"answer": json.Number("42")}}},
		},
		{
			name:   "no function, filter selects a string holding a JSON array",
			filter: "$.content",
			body:   `{"content": "[1, 2]"}`,
			want:   []Tensor{{Name: "response", DataAsMap: map[string]any{"response": []any{json.Number("1"), json.Number("2")}}}},
		},
		{
			name:   "no function, filter selects a string holding a JSON scalar",
			filter: "$.content",
			body:   `{"content": "42"}`,
			want:   []Tensor{{Name: "response", DataAsMap: map[string]any{"response": "42"}}},
		},
		{
			name:   "no function, filter selects a number",
			filter: "$.usage.total_tokens",
			body:   `{"usage": {"total_tokens": 12}}`,
			want:   []Tensor{{Name: "response", DataAsMap: map[string]any{"response": json.Number("12")}}},
		},
		{
			name:   "no function, filter selects null",
			filter: "$.result",
			body:   `{"result": null}`,
			want:   []Tensor{{Name: "response", DataAsMap: map[string]any{"response": nil}}},
		},
		{
			name:   "no function, filter selects the root",
			filter: "$",
			body:   `{"a": "b"}`,
			want:   []Tensor{{Name: "response", DataAsMap: map[string]any{"response": map[string]any{"a": "b"}}}},
		},
		{
			name:   "no function, indefinite filter selects a list",
			filter: "$.data[*].index",
			body:   `{"data": [{"index": 0}, {"index": 1}]}`,
			want:   []Tensor{{Name: "response", DataAsMap: map[string]any{"response": []any{json.Number("0"), json.Number("1")}}}},
		},
		{
			name:   "no function, indefinite filter selects nothing",
			filter: "$.data[*].missing",
			body:   `{"data": [{"index": 0}]}`,
			want:   []Tensor{{Name: "response", DataAsMap: map[string]any{"response": []any{}}}},
		},
		{
			name:   "no function, blank filter",
			filter: " ",
			body:   `{"a": "b"}`,
			want:   []Tensor{{Name: "response", DataAsMap: map[string]any{"a": "b"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PostProcess(tt.function, tt.filter, []byte(tt.body))
			if err != nil {
				t.Fatalf("PostProcess: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("PostProcess mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPostProcessErrors(t *testing.T) {
	tests := []struct {
		name     string
		function string
		filter   string
		body     string
		reason   string // "" for a plain (500) error
	}{
		{"null output", postBedrockEmbedding, "", `{"embedding": null}`, errNull},
		{"null output from filter", postOpenAIEmbedding, "$.data", `{"data": null}`, errNull},
		{"embeddings not a list", postCohereEmbedding, "", cohereV2Response, errNotList},
		{"embeddings of numbers", postDefaultEmbedding, "", `[0.1, 0.2]`, errNotListOfLists},
		{"definite filter for a list of vectors", postOpenAIEmbedding, "$.data[0].embedding", openAIResponse, errNotListOfLists},
		{"empty first vector", postCohereEmbedding, "", `{"embeddings": [[]]}`, errNotFloats},
		{"first vector of strings", postCohereEmbedding, "", `{"embeddings": [["0.1"]]}`, errNotFloats},
		{"bedrock embedding not a list", postBedrockEmbedding, "", `{"embedding": "0.1,0.2"}`, errNotList},
		{"bedrock embedding of strings", postBedrockEmbedding, "", `{"embedding": ["a"]}`, errNotFloats},
		{"bedrock embedding of lists", postBedrockEmbedding, "", `{"embedding": [[0.1]]}`, errNotFloats},
		{"cohere rerank not a list", postCohereRerank, "", `{"results": {"index": 0}}`, errNotList},
		{"cohere rerank not maps", postCohereRerank, "", `{"results": [0.5]}`, errNotListOfMaps},
		{"cohere rerank without score", postCohereRerank, "", `{"results": [{"index": 0}]}`, errCohereRerankKeys},
		{"cohere rerank empty result", postDefaultRerank, "", `[{}]`, errCohereRerankKeys},
		{"cohere rerank bedrock keys", postCohereRerank, "", bedrockRerank, errCohereRerankKeys},
		{"bedrock rerank not a list", postBedrockRerank, "", `{"results": "none"}`, errNotList},
		{"bedrock rerank empty", postBedrockRerank, "", `{"results": []}`, errEmptyInput},
		{"bedrock rerank not maps", postBedrockRerank, "", `{"results": [{"index": 0, "relevanceScore": 0.5}, 1]}`, errRerankNotMap},
		{"bedrock rerank empty result", postBedrockRerank, "", `{"results": [{}]}`, errRerankEmpty},
		{"bedrock rerank cohere keys", postBedrockRerank, "", cohereRerank, errBedrockRerankKeys},
		{"bedrock rerank later result without index", postBedrockRerank, "",
			`{"results": [{"index": 0, "relevanceScore": 0.5}, {"relevanceScore": 0.1}]}`, errBedrockRerankKeys},
		{"bedrock rerank string score", postBedrockRerank, "", `{"results": [{"index": 0, "relevanceScore": "0.5"}]}`, errBedrockRerankScore},
		{"bedrock rerank null score", postBedrockRerank, "", `{"results": [{"index": 0, "relevanceScore": null}]}`, errBedrockRerankScore},
		{"batch job not a map", postBedrockBatchJobArn, "", `["arn"]`, errNotMap},
		{"batch job without arn", postBedrockBatchJobArn, "", `{"status": "Submitted"}`, errNoJobArn},
		{"unknown function", "connector.post_process.cohere_v2.embedding.float", "", `{}`,
			"connector.post_process.cohere_v2.embedding.float is not a built-in post_process_function"},
		{"pre function as post", preOpenAIEmbedding, "", `{}`, preOpenAIEmbedding + " is not a built-in post_process_function"},

		{"body not JSON", postOpenAIEmbedding, "", `<html>Bad Gateway</html>`, ""},
		{"body with trailing data", postDefaultEmbedding, "", `[[1]] [[2]]`, ""},
		{"empty body", postBedrockEmbedding, "", ``, ""},
		{"definite path not found", postBedrockEmbedding, "", `{"message": "throttled"}`, ""},
		{"invalid filter", postOpenAIEmbedding, "$.data[", openAIResponse, ""},
		{"invalid filter without function", "", "$[?@.a ==]", `{}`, ""},
		{"no function, filter finds nothing", "", "$.output.message", `{"result": "ok"}`, ""},
		{"no function, filter on text", "", "$.result", "plain text", ""},
		{"later vector not a list", postDefaultEmbedding, "", `[[0.1], 0.2]`, ""},
		{"later vector element not a number", postDefaultEmbedding, "", `[[0.1, "x"]]`, ""},
		{"bedrock embedding later element", postBedrockEmbedding, "", `{"embedding": [0.1, null]}`, ""},
		{"rerank index out of range", postCohereRerank, "", `{"results": [{"index": 1, "relevance_score": 0.5}]}`, ""},
		{"rerank negative index", postCohereRerank, "", `{"results": [{"index": -1, "relevance_score": 0.5}]}`, ""},
		{"rerank fractional index", postCohereRerank, "", `{"results": [{"index": 0.0, "relevance_score": 0.5}]}`, ""},
		{"rerank duplicate index", postCohereRerank, "",
			`{"results": [{"index": 0, "relevance_score": 0.5}, {"index": 0, "relevance_score": 0.4}]}`, ""},
		{"rerank later result broken", postCohereRerank, "",
			`{"results": [{"index": 0, "relevance_score": 0.5}, {"index": 1}]}`, ""},
		{"rerank string score", postCohereRerank, "", `{"results": [{"index": 0, "relevance_score": "high"}]}`, ""},
		{"batch job arn not a string", postBedrockBatchJobArn, "", `{"jobArn": null}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PostProcess(tt.function, tt.filter, []byte(tt.body))
			if err == nil {
				t.Fatalf("PostProcess = %+v, want an error", got)
			}
			checkError(t, err, tt.reason)
		})
	}
}

// TestTensorJSON checks what the predict response carries: field names and
// order, omitted fields, and numbers exactly as the provider wrote them.
func TestTensorJSON(t *testing.T) {
	tests := []struct {
		name     string
		function string
		body     string
		want     string
	}{
		{
			name:     "embedding",
			function: postOpenAIEmbedding,
			body:     openAIResponse,
			want: `[{"name":"sentence_embedding","data_type":"FLOAT32","shape":[4],"data":[-0.006929283,-0.005336422,1.0,0]},` +
				`{"name":"sentence_embedding","data_type":"FLOAT32","shape":[4],"data":[0.0123,-1.5E-7,2,0.024047505]}]`,
		},
		{
			name:     "empty embedding",
			function: postBedrockEmbedding,
			body:     `{"embedding": []}`,
			want:     `[{"name":"sentence_embedding","data_type":"FLOAT32","shape":[0],"data":[]}]`,
		},
		{
			name:     "similarity",
			function: postBedrockRerank,
			body:     bedrockRerank,
			want: `[{"name":"similarity","data_type":"FLOAT32","shape":[1],"data":[0.0009065699996426702]},` +
				`{"name":"similarity","data_type":"FLOAT32","shape":[1],"data":[0.7349015474319458]}]`,
		},
		{
			name: "response",
			body: `{"big": 12345678901234567890123, "f": 1e400, "s": "a/b"}`,
			want: `[{"name":"response","dataAsMap":{"big":12345678901234567890123,"f":1e400,"s":"a/b"}}]`,
		},
		{
			name: "empty response object",
			body: `{}`,
			want: `[{"name":"response","dataAsMap":{}}]`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tensors, err := PostProcess(tt.function, "", []byte(tt.body))
			if err != nil {
				t.Fatalf("PostProcess: %v", err)
			}
			got, err := json.Marshal(tensors)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("JSON = %s\nwant   %s", got, tt.want)
			}
		})
	}
}

func TestDataType(t *testing.T) {
	tests := []struct {
		filter string
		want   string
	}{
		{"$.data[*].embedding", ""},
		{"$.embeddings.float", ""},
		{"$.embeddings.int8", "INT8"},
		{"$.embeddings.uint8", "UINT8"},
		{"$.embeddings.binary", "BINARY"},
		{"$.embeddings.ubinary", "UBINARY"},
		{"$.embeddings.INT8", "INT8"},
		{"$.embeddings.float64", "FLOAT64"},
		// ML Commons looks for every type name after any ".".
		{"$.string_values", "STRING"},
		{"$.int8s.float16", "FLOAT16"},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			if got := dataType(tt.filter); got != tt.want {
				t.Errorf("dataType(%q) = %q, want %q", tt.filter, got, tt.want)
			}
		})
	}
}

func TestErrorIs400(t *testing.T) {
	_, err := PostProcess(postBedrockBatchJobArn, "", []byte(`{}`))
	var e *mlerr.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not *mlerr.Error", err)
	}
	if e.Error() != errNoJobArn {
		t.Errorf("Error() = %q, want %q", e.Error(), errNoJobArn)
	}
}

func FuzzPostProcess(f *testing.F) {
	names := append(Names(), "")
	seeds := []string{openAIResponse, cohereV1Response, cohereV2Response, titanResponse, defaultResponse,
		cohereRerank, bedrockRerank, bedrockBatch, `[]`, `{}`, `null`, `"x"`, `[[]]`, `[{}]`, `{"results":[{"index":0,"relevance_score":1}]}`,
		`{"embedding":null}`, `{"jobArn":1}`, "plain text", ""}
	filters := []string{"", "$", "$.data[0].embedding", "$..*", "$[?@.index > 0]", "embeddings.int8", "$[", "[0]"}
	for i, s := range seeds {
		f.Add(uint8(i), filters[i%len(filters)], []byte(s))
	}
	f.Fuzz(func(t *testing.T, fn uint8, filter string, body []byte) {
		name := names[int(fn)%len(names)]
		tensors, err := PostProcess(name, filter, body)
		if err != nil {
			var e *mlerr.Error
			if errors.As(err, &e) && (e.Status != 400 || e.Reason == "") {
				t.Fatalf("bad *mlerr.Error %+v", e)
			}
			return
		}
		if _, err := json.Marshal(tensors); err != nil {
			t.Fatalf("Marshal(%+v): %v", tensors, err)
		}
	})
}

// FuzzGSON checks that a Gson string decodes back to the original.
func FuzzGSON(f *testing.F) {
	for _, s := range []string{"", "plain", `q"uo\te/`, "tab\tnl\n\u0000\u001f\u007f", "<a href='x'>&</a>", "ünï 😀 \u2028", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := string([]rune(s)) // invalid UTF-8 becomes U+FFFD, as in a decoded doc
		var got string
		if err := json.Unmarshal([]byte(gsonJSON(s)), &got); err != nil || got != want {
			t.Fatalf("gsonJSON(%q) = %q decodes to %q (%v)", s, gsonJSON(s), got, err)
		}
	})
}
