package mlcommons

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/connector"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
	"github.com/mlsidecar/mlsidecar/mlcommons/process"
	"github.com/mlsidecar/mlsidecar/mlcommons/template"
)

// predictInput is the body of _predict and _batch_predict: parameters-style
// input, or text_docs (the neural-search route), optionally naming the
// action (it wins over the path's, as in ML Commons) and, for a batch job,
// the dead-letter queue of its failures.
type predictInput struct {
	Parameters map[string]any `json:"parameters"`
	TextDocs   []*string      `json:"text_docs"`
	QueryText  *string        `json:"query_text"`
	ActionType *string        `json:"action_type"`
	DLQ        map[string]any `json:"dlq"`
	// Ingest asks a batch job's results to be ingested when it completes.
	Ingest json.RawMessage `json:"ingest"`
}

// predictAs serves a prediction route whose path means action:
// /models/{id}/_predict and /_predict/{algorithm}/{id} PREDICT,
// /models/{id}/_batch_predict BATCH_PREDICT.
func (a *API) predictAs(pathAction string) apiFunc {
	return func(r *http.Request) (any, error) {
		if err := a.remoteInference(); err != nil {
			return nil, err
		}
		action := pathAction
		var in predictInput
		if err := decodeBody(r, &in, errBodyRequired); err != nil {
			return nil, err
		}
		if in.ActionType != nil {
			// ML Commons' ActionType.from, Java's toUpperCase.
			t := strings.ToUpper(*in.ActionType)
			if !slices.Contains(actionTypes, t) {
				return nil, mlerr.IllegalArgument("Wrong Action Type of %s", *in.ActionType)
			}
			action = t
		}
		id := pathVar(r, "id")
		switch action {
		case indexstore.ActionPredict:
			start := time.Now()
			v, inference, err := a.predict(r, &in)
			a.mlstats.recordOutcome(id, statsAction(action), err)
			if err == nil {
				a.mlstats.observe(id, inference, time.Since(start))
			}
			return v, err
		case indexstore.ActionBatchPredict:
			v, err := a.batchPredict(r, &in)
			a.mlstats.recordOutcome(id, statsAction(action), err)
			return v, err
		}
		// ML Commons would run the connector's action of that type as a
		// prediction; the sidecar runs status and cancel calls itself.
		return nil, mlerr.IllegalArgument("Wrong action type %s for a prediction: only predict and batch_predict can be asked for", action)
	}
}

// actionTypes are ML Commons' connector action types.
var actionTypes = []string{indexstore.ActionPredict, indexstore.ActionExecute, indexstore.ActionBatchPredict,
	indexstore.ActionCancelBatchPredict, indexstore.ActionBatchPredictStatus}

// predict runs a synchronous prediction; inference is how long the model's
// part took (the provider call with its processing).
func (a *API) predict(r *http.Request, in *predictInput) (_ any, inference time.Duration, _ error) {
	ctx := r.Context()
	if err := a.checkModel(ctx, pathVar(r, "id"), errPredictDenied); err != nil {
		return nil, 0, err
	}
	b, err := a.connectors.Bind(ctx, pathVar(r, "id"))
	if err != nil {
		return nil, 0, err
	}
	if err := a.throttle(ctx, b.ModelID, b.Model); err != nil {
		return nil, 0, err
	}
	input := process.Input{Parameters: in.Parameters, TextDocs: in.TextDocs, QueryText: in.QueryText}
	start := time.Now()
	results, err := connector.Predict(ctx, a.remote, b, input, template.RequestParameters(in.Parameters))
	if err != nil {
		return nil, 0, err
	}
	return map[string]any{"inference_results": results}, time.Since(start), nil
}
