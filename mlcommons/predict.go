package mlcommons

import (
	"net/http"
	"strings"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/connector"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
	"github.com/mlsidecar/mlsidecar/mlcommons/process"
	"github.com/mlsidecar/mlsidecar/mlcommons/template"
)

// predictInput is the body of _predict and _batch_predict: parameters-style
// input, or text_docs (the neural-search route), optionally naming the
// action.
type predictInput struct {
	Parameters map[string]any `json:"parameters"`
	TextDocs   []*string      `json:"text_docs"`
	QueryText  *string        `json:"query_text"`
	ActionType string         `json:"action_type"`
}

// predict serves POST /models/{id}/_predict and /_predict/{algorithm}/{id}.
func (a *API) predict(r *http.Request) (any, error) {
	var in predictInput
	if err := decodeBody(r, &in, true); err != nil {
		return nil, err
	}
	if in.ActionType != "" && strings.ToUpper(strings.TrimSpace(in.ActionType)) != indexstore.ActionPredict {
		return nil, mlerr.IllegalArgument("Wrong action type in the rest request path!")
	}
	ctx := r.Context()
	if err := a.checkModel(ctx, pathVar(r, "id"), errPredictDenied); err != nil {
		return nil, err
	}
	b, err := a.connectors.Bind(ctx, pathVar(r, "id"))
	if err != nil {
		return nil, err
	}
	if err := a.limiters.allow(b.ModelID, b.Model.RateLimiter); err != nil {
		return nil, err
	}
	input := process.Input{Parameters: in.Parameters, TextDocs: in.TextDocs, QueryText: in.QueryText}
	results, err := connector.Predict(ctx, a.remote, b, input, template.RequestParameters(in.Parameters))
	if err != nil {
		return nil, err
	}
	return map[string]any{"inference_results": results}, nil
}
