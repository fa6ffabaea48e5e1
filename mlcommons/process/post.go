package process

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/theory/jsonpath"
	"github.com/theory/jsonpath/spec"

	"github.com/mlsidecar/mlsidecar/mlcommons/provider"
	"github.com/mlsidecar/mlsidecar/mlcommons/template"
)

// Post-process function names.
const (
	postOpenAIEmbedding    = "connector.post_process.openai.embedding"
	postCohereEmbedding    = "connector.post_process.cohere.embedding"
	postDefaultEmbedding   = "connector.post_process.default.embedding"
	postBedrockEmbedding   = "connector.post_process.bedrock.embedding"
	postCohereRerank       = "connector.post_process.cohere.rerank"
	postDefaultRerank      = "connector.post_process.default.rerank"
	postBedrockRerank      = "connector.post_process.bedrock.rerank"
	postBedrockBatchJobArn = "connector.post_process.bedrock.batch_job_arn"
)

// ML Commons' validation messages.
const (
	errNull               = "Can't run post process function as model output is null"
	errNotList            = "Post process function input is not a List."
	errNotListOfLists     = "The embedding should be a non-empty List containing List of Float values."
	errNotFloats          = "The embedding should be a non-empty List containing Float values."
	errNotListOfMaps      = "Post process function input is not a List of Map."
	errCohereRerankKeys   = "The rerank result should contain index and relevance_score."
	errEmptyInput         = "Post process function input is empty."
	errRerankNotMap       = "Rerank result is not a Map."
	errRerankEmpty        = "Rerank result is empty."
	errBedrockRerankKeys  = "Rerank result should have both index and relevanceScore."
	errBedrockRerankScore = "relevanceScore is not BigDecimal or Double."
	errNotMap             = "Post process function input is not a Map."
	errNoJobArn           = "job arn is missing."
)

// postFunc is one built-in post-process function: a default JSONPath and a
// converter for what it selects.
type postFunc struct {
	filter  string
	convert func(v any, dataType string) ([]Tensor, error)
}

var postFuncs = map[string]postFunc{
	postOpenAIEmbedding:    {"$.data[*].embedding", toEmbeddings},
	postCohereEmbedding:    {"$.embeddings", toEmbeddings},
	postDefaultEmbedding:   {"$[*]", toEmbeddings},
	postBedrockEmbedding:   {"$.embedding", toEmbedding},
	postCohereRerank:       {"$.results", toCohereRerank},
	postDefaultRerank:      {"$[*]", toCohereRerank},
	postBedrockRerank:      {"$.results", toBedrockRerank},
	postBedrockBatchJobArn: {"$", toBatchJobArn},
}

// dataTypes are MLResultDataType's constants in declaration order, the
// order in which ML Commons looks for them in a response filter.
var dataTypes = []string{"FLOAT32", "FLOAT64", "FLOAT16", "UINT8", "INT32", "INT8", "INT64",
	"BOOLEAN", "UNKNOWN", "STRING", "BINARY", "UBINARY"}

// PostProcess turns one remote response body into tensors.
//
// With no function the result is one tensor named "response" whose
// dataAsMap is the body: a JSON object as it is, a JSON array as
// {"response":[...]}, anything else as {"response":"<text>"}. A
// responseFilter narrows the body to what it selects first; then only a
// selected string holding a JSON object is used as it is, anything else is
// {"response": <selected>}, and selecting nothing is an error.
//
// A built-in function reads its default JSONPath, or responseFilter when
// that is not blank, and converts what it selects; the embedding data type
// is guessed from the filter text (".int8" gives INT8, and so on; FLOAT32
// otherwise) as ML Commons 3.0+ does, where 2.19 always says FLOAT32. Rerank functions return one "similarity" tensor per document
// in the original document order. Validation failures are *mlerr.Error (400);
// anything else, such as a filter that selects nothing, is a plain error.
//
// JSONPath is RFC 9535, not Jayway's dialect: Jayway's functions
// (.length() and friends) and extra filter operators (in, =~, ...) do not
// exist, while "$.a", "$['a']", "[*]", "..", slices and ?(@.x == 1) work.
// A definite (singular) path yields the selected value and fails when
// nothing matches; any other path yields the list of matches, as in Jayway.
// Wildcards over an object visit its members in key order, not document
// order.
func PostProcess(function, responseFilter string, body []byte) ([]Tensor, error) {
	if function == "" {
		t, err := responseTensor(responseFilter, body)
		if err != nil {
			return nil, err
		}
		return []Tensor{t}, nil
	}
	f, ok := postFuncs[function]
	if !ok {
		return nil, invalid(fmt.Sprintf("%s is not a built-in post_process_function", function))
	}
	filter := responseFilter
	if strings.TrimSpace(filter) == "" {
		filter = f.filter
	}
	p, err := compile(filter)
	if err != nil {
		return nil, err
	}
	doc, err := decode(body)
	if err != nil {
		return nil, fmt.Errorf("remote response is not JSON: %w", err)
	}
	v, err := read(p, doc)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, invalid(errNull)
	}
	return f.convert(v, dataType(filter))
}

// responseTensor is ConnectorUtils.processOutput without a post-process
// function, and AbstractConnector.parseResponse, as in ML Commons 2.19.
func responseTensor(filter string, body []byte) (Tensor, error) {
	if strings.TrimSpace(filter) == "" {
		return Tensor{Name: "response", DataAsMap: responseMap(string(body))}, nil
	}
	p, err := compile(filter)
	if err != nil {
		return Tensor{}, err
	}
	doc, err := decode(body)
	if err != nil {
		return Tensor{}, fmt.Errorf("remote response is not JSON: %w", err)
	}
	// 2.19 fails when the filter selects nothing; 3.9 falls back to the
	// whole response.
	v, err := read(p, doc)
	if err != nil {
		return Tensor{}, err
	}
	return Tensor{Name: "response", DataAsMap: responseMap(v)}, nil
}

// responseMap wraps a response, or what a filter selected from it, in the
// "response" tensor's map: a string holding a JSON object is that object and
// one holding an array is {"response":[...]}; anything else, an object a
// filter selected included, is {"response": value}. (ML Commons 3.4+ also
// passes a selected object through unwrapped.) So a filtered string that is
// itself JSON, say an LLM's message content, is parsed.
func responseMap(v any) map[string]any {
	if s, ok := v.(string); ok && template.IsJSON(s) {
		if doc, err := decode([]byte(s)); err == nil {
			if m, ok := doc.(map[string]any); ok {
				return m
			}
			v = doc
		}
	}
	return map[string]any{"response": v}
}

// compile parses a JSONPath. Like Jayway, it reads a path without the
// leading "$" as relative to the root.
func compile(filter string) (*jsonpath.Path, error) {
	path := strings.TrimSpace(filter)
	switch {
	case strings.HasPrefix(path, "$"):
	case strings.HasPrefix(path, "["):
		path = "$" + path
	default:
		path = "$." + path
	}
	p, err := jsonpath.Parse(path)
	if err != nil {
		return nil, fmt.Errorf("invalid response filter %q: %w", filter, err)
	}
	return p, nil
}

// read evaluates p as Jayway's JsonPath.read does: a definite path returns
// the one value it selects, or an error; any other path returns the list
// of matches, possibly empty.
func read(p *jsonpath.Path, doc any) (any, error) {
	q := p.Query()
	var nodes []any
	if iteratesObjects(q) {
		// Map iteration order is random; normalized-path order keeps the
		// output stable. Arrays still come in index order.
		located := p.SelectLocated(doc)
		located.Sort()
		nodes = make([]any, len(located))
		for i, n := range located {
			nodes[i] = n.Node
		}
	} else {
		nodes = p.Select(doc)
	}
	if q.Singular() != nil {
		if len(nodes) == 0 {
			return nil, fmt.Errorf("no results for path %s", p)
		}
		return nodes[0], nil
	}
	if nodes == nil {
		nodes = []any{}
	}
	return nodes, nil
}

// iteratesObjects reports whether q may select the members of an object in
// map order: a descendant segment, a wildcard or a filter.
func iteratesObjects(q *spec.PathQuery) bool {
	for _, seg := range q.Segments() {
		if seg.IsDescendant() {
			return true
		}
		for _, sel := range seg.Selectors() {
			switch sel.(type) {
			case spec.WildcardSelector, *spec.FilterSelector:
				return true
			}
		}
	}
	return false
}

// decode parses exactly one JSON value, keeping numbers as json.Number.
func decode(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("unexpected data after the JSON value")
	}
	return v, nil
}

// dataType is the first MLResultDataType whose name follows a "." in the
// filter, ignoring case, or "" for none.
func dataType(filter string) string {
	upper := strings.ToUpper(filter)
	for _, t := range dataTypes {
		if strings.Contains(upper, "."+t) {
			return t
		}
	}
	return ""
}

// toEmbeddings is EmbeddingPostProcessFunction: a list of vectors, one tensor
// each. ML Commons validates only the first vector; a later malformed one is
// a 500 there too.
func toEmbeddings(v any, dt string) ([]Tensor, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, invalid(errNotList)
	}
	if len(list) > 0 {
		first, ok := list[0].([]any)
		if !ok {
			return nil, invalid(errNotListOfLists)
		}
		if len(first) == 0 || !isNumber(first[0]) {
			return nil, invalid(errNotFloats)
		}
	}
	tensors := make([]Tensor, 0, len(list))
	for i, e := range list {
		vec, ok := e.([]any)
		if !ok {
			return nil, fmt.Errorf("embedding %d is not a list", i)
		}
		t, err := embeddingTensor(vec, dt)
		if err != nil {
			return nil, fmt.Errorf("embedding %d: %w", i, err)
		}
		tensors = append(tensors, t)
	}
	return tensors, nil
}

// toEmbedding is BedrockEmbeddingPostProcessFunction: a single vector.
func toEmbedding(v any, dt string) ([]Tensor, error) {
	vec, ok := v.([]any)
	if !ok {
		return nil, invalid(errNotList)
	}
	if len(vec) > 0 && !isNumber(vec[0]) {
		return nil, invalid(errNotFloats)
	}
	t, err := embeddingTensor(vec, dt)
	if err != nil {
		return nil, err
	}
	return []Tensor{t}, nil
}

func embeddingTensor(vec []any, dt string) (Tensor, error) {
	data := make([]json.Number, len(vec))
	for i, e := range vec {
		n, ok := e.(json.Number)
		if !ok {
			return Tensor{}, fmt.Errorf("element %d is not a number", i)
		}
		data[i] = n
	}
	if dt == "" {
		dt = "FLOAT32"
	}
	return Tensor{Name: "sentence_embedding", DataType: dt, Shape: []int64{int64(len(vec))}, Data: data}, nil
}

func isNumber(v any) bool {
	_, ok := v.(json.Number)
	return ok
}

// toCohereRerank is CohereRerankPostProcessFunction (also default.rerank),
// which validates only the first result.
func toCohereRerank(v any, _ string) ([]Tensor, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, invalid(errNotList)
	}
	if len(list) > 0 {
		m, ok := list[0].(map[string]any)
		if !ok {
			return nil, invalid(errNotListOfMaps)
		}
		_, hasIndex := m["index"]
		_, hasScore := m["relevance_score"]
		if !hasIndex || !hasScore {
			return nil, invalid(errCohereRerankKeys)
		}
	}
	return similarities(list, "relevance_score")
}

// toBedrockRerank is BedrockRerankPostProcessFunction, which validates every
// result. ML Commons also refuses a score written as an integer (1 rather
// than 1.0); this accepts any number.
func toBedrockRerank(v any, _ string) ([]Tensor, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, invalid(errNotList)
	}
	if len(list) == 0 {
		return nil, invalid(errEmptyInput)
	}
	for _, item := range list {
		m, ok := item.(map[string]any)
		switch {
		case !ok:
			return nil, invalid(errRerankNotMap)
		case len(m) == 0:
			return nil, invalid(errRerankEmpty)
		}
		_, hasIndex := m["index"]
		score, hasScore := m["relevanceScore"]
		if !hasIndex || !hasScore {
			return nil, invalid(errBedrockRerankKeys)
		}
		if !isNumber(score) {
			return nil, invalid(errBedrockRerankScore)
		}
	}
	return similarities(list, "relevanceScore")
}

// similarities puts each result's score at its "index": one tensor per
// document in the order the documents were sent. As in ML Commons there are
// as many documents as results; an index outside them, or a document left
// without a score (ML Commons would answer a null score), is an error.
func similarities(results []any, scoreKey string) ([]Tensor, error) {
	scores := make([]json.Number, len(results))
	for i, item := range results {
		m, ok := item.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("rerank result %d is not an object", i)
		}
		n, ok := m["index"].(json.Number)
		if !ok {
			return nil, fmt.Errorf("rerank result %d: index is not a number", i)
		}
		idx, err := strconv.ParseInt(string(n), 10, 32)
		if err != nil || idx < 0 || int(idx) >= len(results) {
			return nil, fmt.Errorf("rerank result %d: index %s is not one of the %d documents", i, n, len(results))
		}
		score, ok := m[scoreKey].(json.Number)
		if !ok {
			return nil, fmt.Errorf("rerank result %d: %s is not a number", i, scoreKey)
		}
		scores[idx] = score
	}
	tensors := make([]Tensor, len(scores))
	for i, s := range scores {
		if s == "" {
			return nil, fmt.Errorf("rerank results have no score for document %d", i)
		}
		tensors[i] = Tensor{Name: "similarity", DataType: "FLOAT32", Shape: []int64{1}, Data: []json.Number{s}}
	}
	return tensors, nil
}

// toBatchJobArn is BedrockBatchJobArnPostProcessFunction: the response with
// processedJobArn, the job ARN made usable as one URL path segment.
func toBatchJobArn(v any, _ string) ([]Tensor, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, invalid(errNotMap)
	}
	out, err := provider.BedrockProcessedJob(m)
	if errors.Is(err, provider.ErrNoJobArn) {
		return nil, invalid(errNoJobArn)
	}
	if err != nil {
		return nil, err
	}
	return []Tensor{{Name: "response", DataAsMap: out}}, nil
}
