package process

import (
	"fmt"
	"strconv"
)

// Pre-process function names.
const (
	preOpenAIEmbedding    = "connector.pre_process.openai.embedding"
	preDefaultEmbedding   = "connector.pre_process.default.embedding"
	preCohereEmbedding    = "connector.pre_process.cohere.embedding"
	preBedrockEmbedding   = "connector.pre_process.bedrock.embedding"
	preBedrockMultimodal  = "connector.pre_process.bedrock.multimodal_embedding"
	preCohereRerank       = "connector.pre_process.cohere.rerank"
	preDefaultRerank      = "connector.pre_process.default.rerank"
	preBedrockRerank      = "connector.pre_process.bedrock.rerank"
	stepSizeParameter     = "input_docs_processed_step_size"
	errTextDocsOnly       = "This pre_process_function can only support TextDocsInputDataSet which including a list of string with key 'text_docs'"
	errTextSimilarityOnly = "This pre_process_function can only support TextSimilarityInputDataSet"
	errStepSize           = "Invalid parameter: input_docs_processed_step_size. It must be positive integer."
	errNoPreProcess       = "pre_process_function not defined in connector"
	errNoTextOrImage      = "No input text or image provided"
	errEmptyDocs          = "empty docs"
	errNoSimilarityDocs   = "No text documents were provided"
)

// preFunc is one built-in pre-process function. build returns the raw
// parameter values (see gsonJSON for the types it may use); PreProcess
// stringifies and escapes them.
type preFunc struct {
	similarity bool // takes text-similarity input, otherwise text_docs
	build      func(docs []*string, query *string) (map[string]any, error)
}

var preFuncs = map[string]preFunc{
	preOpenAIEmbedding:   {build: buildDocs("input")},
	preDefaultEmbedding:  {build: buildDocs("input")},
	preCohereEmbedding:   {build: buildDocs("texts")},
	preBedrockEmbedding:  {build: buildBedrockEmbedding},
	preBedrockMultimodal: {build: buildBedrockMultimodal},
	preCohereRerank:      {similarity: true, build: buildCohereRerank},
	preDefaultRerank:     {similarity: true, build: buildCohereRerank},
	preBedrockRerank:     {similarity: true, build: buildBedrockRerank},
}

// PreProcess returns the parameters of each remote call, in order: one map
// per call. The caller merges each map over the connector and request
// parameters (and the request parameters over it again, as ML Commons does).
//
// Parameters-style input is one call with no parameters of its own: the
// built-ins pass it through unchanged. text_docs input with no function uses
// connector.pre_process.default.embedding. text_docs are split into calls of
// input_docs_processed_step_size docs when params has it; otherwise
// connector.pre_process.bedrock.embedding makes one call per doc and every
// other function one call for all docs. Text-similarity input is one call.
//
// The values are final, exactly as ML Commons leaves them after
// processInput: lists and objects are JSON text (Gson formatting, so
// ${parameters.input} goes into a template unquoted), single strings are
// JSON-string escaped without quotes (so "${parameters.inputText}" needs the
// quotes in the template), numbers are their digits. Do not escape them
// again.
func PreProcess(function string, in Input, params map[string]string) ([]map[string]string, error) {
	if function != "" {
		if _, ok := preFuncs[function]; !ok {
			return nil, invalid(fmt.Sprintf("%s is not a built-in pre_process_function", function))
		}
	}
	kind := in.Kind()
	switch kind {
	case KindRemote:
		return []map[string]string{{}}, nil
	case KindTextSimilarity:
		if len(in.TextDocs) == 0 {
			return nil, invalid(errNoSimilarityDocs)
		}
		if function == "" {
			return nil, invalid(errNoPreProcess)
		}
		p, err := preFuncs[function].apply(kind, in.TextDocs, in.QueryText)
		if err != nil {
			return nil, err
		}
		return []map[string]string{p}, nil
	}

	if len(in.TextDocs) == 0 {
		return nil, invalid(errEmptyDocs)
	}
	step, err := stepSize(function, len(in.TextDocs), params)
	if err != nil {
		return nil, err
	}
	f := preFuncs[function]
	if function == "" {
		f = preFuncs[preDefaultEmbedding]
	}
	calls := make([]map[string]string, 0, (len(in.TextDocs)+step-1)/step)
	for start := 0; start < len(in.TextDocs); start += step {
		// Each chunk goes through the function on its own, so a function
		// that reads only docs[0] (bedrock.embedding) sees only the first
		// doc of each chunk, as in ML Commons.
		p, err := f.apply(kind, in.TextDocs[start:min(start+step, len(in.TextDocs))], nil)
		if err != nil {
			return nil, err
		}
		calls = append(calls, p)
	}
	return calls, nil
}

// stepSize is how many docs go into each call (RemoteConnectorExecutor's
// calculateChunkSize). function is the connector's, before the default is
// applied.
func stepSize(function string, docs int, params map[string]string) (int, error) {
	if s, ok := params[stepSizeParameter]; ok {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			// ML Commons gives NumberFormatException's message for
			// non-numbers; one message for both is clearer.
			return 0, invalid(errStepSize)
		}
		return n, nil
	}
	if function == preBedrockEmbedding {
		return 1, nil
	}
	return docs, nil
}

func (f preFunc) apply(kind string, docs []*string, query *string) (map[string]string, error) {
	switch {
	case f.similarity && kind != KindTextSimilarity:
		return nil, invalid(errTextSimilarityOnly)
	case !f.similarity && kind != KindTextDocs:
		return nil, invalid(errTextDocsOnly)
	}
	raw, err := f.build(docs, query)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		// StringUtils.convertScriptStringToJsonString: strings as they
		// are, anything else (including null) as Gson JSON.
		s, ok := v.(string)
		if !ok {
			s = gsonJSON(v)
		}
		out[k] = escapeParameter(s)
	}
	return out, nil
}

func buildDocs(key string) func([]*string, *string) (map[string]any, error) {
	return func(docs []*string, _ *string) (map[string]any, error) {
		return map[string]any{key: docs}, nil
	}
}

func buildBedrockEmbedding(docs []*string, _ *string) (map[string]any, error) {
	if docs[0] == nil {
		// ML Commons fails with a NullPointerException (500).
		return nil, fmt.Errorf("%s: text doc is null", preBedrockEmbedding)
	}
	return map[string]any{"inputText": *docs[0]}, nil
}

func buildBedrockMultimodal(docs []*string, _ *string) (map[string]any, error) {
	if len(docs) == 0 || (len(docs) == 1 && docs[0] == nil) {
		return nil, invalid(errNoTextOrImage)
	}
	// A null text doc (an image-only request) becomes the four characters
	// null, not a missing parameter: Gson serialises the null. So a
	// "${parameters.inputText:-null}" template sends the text "null".
	// That is ML Commons' behaviour, kept so both send the same request.
	p := map[string]any{"inputText": gsonNullable(docs[0])}
	if len(docs) > 1 {
		p["inputImage"] = gsonNullable(docs[1])
	}
	return p, nil
}

func buildCohereRerank(docs []*string, query *string) (map[string]any, error) {
	return map[string]any{"query": *query, "documents": docs, "top_n": len(docs)}, nil
}

func buildBedrockRerank(docs []*string, query *string) (map[string]any, error) {
	sources := make([]any, len(docs))
	for i, d := range docs {
		if d == nil {
			// ML Commons fails with a NullPointerException (500).
			return nil, fmt.Errorf("%s: text doc %d is null", preBedrockRerank, i)
		}
		sources[i] = map[string]any{
			"inlineDocumentSource": map[string]any{"textDocument": map[string]any{"text": *d}, "type": "TEXT"},
			"type":                 "INLINE",
		}
	}
	queries := []any{map[string]any{"textQuery": map[string]any{"text": *query}, "type": "TEXT"}}
	return map[string]any{"queries": queries, "sources": sources, "numberOfResults": len(docs)}, nil
}

// gsonNullable keeps a null doc null (serialised as null) and turns a
// present one into a string (passed as is).
func gsonNullable(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}
