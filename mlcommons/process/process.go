// Package process runs ML Commons' built-in connector pre- and post-process
// functions: it turns a predict input into the parameters of each remote
// call, and a remote response body into model tensors.
//
// Only the built-ins named by Names exist here. Painless scripts cannot run
// outside the cluster, so connectors that name one are refused when they are
// created.
//
// Behaviour follows ML Commons 2.19 (ConnectorUtils.processInput and
// processOutput, RemoteConnectorExecutor, the functions under
// connector/functions), including the places where it is surprising; the
// comments say where, and where a later release is followed instead.
package process

import (
	"encoding/json"
	"slices"

	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

// Input kinds, as returned by Input.Kind.
const (
	KindRemote         = "remote"
	KindTextDocs       = "text_docs"
	KindTextSimilarity = "text_similarity"
)

// Input is the model input of a predict call. Exactly one shape applies, see
// Kind.
type Input struct {
	// Parameters is parameters-style (RemoteInferenceInputDataSet) input. It
	// may be nil.
	Parameters map[string]any
	// TextDocs is text_docs input; entries may be null (neural search sends
	// [null, image] for an image-only multimodal embedding).
	TextDocs []*string
	// QueryText, when set, makes the input text-similarity input with
	// TextDocs as the documents.
	QueryText *string
}

// Kind names the input shape: KindTextSimilarity when QueryText is set,
// otherwise KindTextDocs when TextDocs is non-nil, otherwise KindRemote.
func (in Input) Kind() string {
	switch {
	case in.QueryText != nil:
		return KindTextSimilarity
	case in.TextDocs != nil:
		return KindTextDocs
	default:
		return KindRemote
	}
}

// Tensor is ML Commons' ModelTensor. byte_buffer is never produced.
//
// Numbers are json.Number, the provider's own digits: an embedding passes
// through without a float round trip, integer vectors (int8, binary) stay
// integers, and nothing is lost to float32/float64 formatting differences.
// (ML Commons 2.19 reads a response without a post-process function with
// Gson, so it prints every number there as a double, 12 as 12.0; the digits
// here are the provider's.) omitzero, not omitempty, because ML Commons
// writes every field that is set: an empty vector is "data":[] and an empty
// object "dataAsMap":{}.
type Tensor struct {
	Name      string         `json:"name,omitzero"`
	DataType  string         `json:"data_type,omitzero"`
	Shape     []int64        `json:"shape,omitzero"`
	Data      []json.Number  `json:"data,omitzero"`
	Result    string         `json:"result,omitzero"`
	DataAsMap map[string]any `json:"dataAsMap,omitzero"`
}

func invalid(reason string) *mlerr.Error {
	return mlerr.IllegalArgument(reason)
}

// Names lists the supported built-in function names, sorted.
func Names() []string {
	names := make([]string, 0, len(preFuncs)+len(postFuncs))
	for n := range preFuncs {
		names = append(names, n)
	}
	for n := range postFuncs {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// IsBuiltin reports whether name is a supported built-in pre- or
// post-process function.
func IsBuiltin(name string) bool {
	_, pre := preFuncs[name]
	_, post := postFuncs[name]
	return pre || post
}
