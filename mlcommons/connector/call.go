package connector

import (
	"context"
	"strings"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
	"github.com/mlsidecar/mlsidecar/mlcommons/process"
	"github.com/mlsidecar/mlsidecar/mlcommons/provider"
	"github.com/mlsidecar/mlsidecar/mlcommons/remote"
	"github.com/mlsidecar/mlsidecar/mlcommons/template"
)

const protocolSigV4 = "aws_sigv4"

// HeadersAction is the action whose headers a batch call sends: ML Commons
// sends the predict action's; a connector without one uses the action's own.
func HeadersAction(c *indexstore.Connector, act *indexstore.ConnectorAction) *indexstore.ConnectorAction {
	if p := c.Action(indexstore.ActionPredict); p != nil {
		return p
	}
	return act
}

// Call builds the provider request of an action: url and body from the
// merged parameters, headers from headersFrom (ML Commons sends the predict
// action's headers for predict, batch predict and status calls) with
// credentials and connector parameters filled in.
func (b *Bound) Call(act, headersFrom *indexstore.ConnectorAction, params map[string]string) (remote.Call, error) {
	u, err := template.URL(act.URL, params)
	if err != nil {
		return remote.Call{}, err
	}
	if err := checkAuthority(act.URL, b.Connector.Parameters, u); err != nil {
		return remote.Call{}, err
	}
	body, err := template.Payload(act.RequestBody, params)
	if err != nil {
		return remote.Call{}, remote.RedactError(err, b.secrets())
	}
	headers := map[string]string{}
	if headersFrom != nil {
		for k, v := range headersFrom.Headers {
			v, err := template.Header(k, v, b.Connector.Parameters, b.credential)
			if err != nil {
				// Template errors name no substituted text; this is the last
				// line of defence.
				return remote.Call{}, remote.RedactError(err, b.secrets())
			}
			headers[k] = v
		}
	}
	cfg := remote.DefaultConfig()
	if cc := b.Connector.ClientConfig; cc != nil {
		cfg = *cc
	}
	c := remote.Call{
		Provider: provider.Of(b.Connector, u).Name(), Action: strings.ToLower(act.ActionType), Method: strings.ToUpper(act.Method),
		URL: u, Headers: headers, Body: []byte(body), Config: cfg, ClientKey: b.ClientKey, Throttled: provider.Throttled,
		Secrets: b.secrets(),
	}
	if b.Connector.Protocol == protocolSigV4 {
		// Region and service come from the stored connector, never from the
		// request, as in ML Commons.
		pick := func(k string) string {
			if v := b.Connector.Parameters[k]; v != "" {
				return v
			}
			return b.credential[k]
		}
		c.SigV4 = &remote.SigV4{AccessKey: b.credential["access_key"], SecretKey: b.credential["secret_key"],
			SessionToken: b.credential["session_token"], Region: pick("region"), Service: pick("service_name")}
	}
	return c, nil
}

// notSecret are credential keys that hold configuration, not secrets: an
// aws_sigv4 connector may keep its region and service there. Redacting
// "us-east-1" from answers would mangle every ARN.
var notSecret = map[string]bool{"region": true, "service_name": true}

// secrets are the decrypted credential values, redacted from whatever a call
// gives back.
func (b *Bound) secrets() []string {
	var out []string
	for k, v := range b.credential {
		if !notSecret[k] && v != "" {
			out = append(out, v)
		}
	}
	return out
}

// JobAction is the connector's own status or cancel action, or the one ML
// Commons derives for its provider. A user action without a request body
// still wins, as in ML Commons.
func (b *Bound) JobAction(p provider.Provider, actionType string) (*indexstore.ConnectorAction, error) {
	if act := b.Connector.Action(actionType); act != nil {
		return act, nil
	}
	batch := b.Connector.Action(indexstore.ActionBatchPredict)
	if batch == nil {
		return nil, mlerr.IllegalArgument("no BATCH_PREDICT action found")
	}
	base, err := template.URL(batch.URL, b.Connector.Parameters)
	if err != nil {
		return nil, err
	}
	return provider.DerivedAction(p, b.Connector, actionType, base)
}

// PostProcess runs a post-process function. An answer it cannot read is the
// provider's fault, not the caller's or the sidecar's: 502.
func PostProcess(function, filter string, body []byte) ([]process.Tensor, error) {
	out, err := process.PostProcess(function, filter, body)
	if _, ok := mlerr.From(err); err != nil && !ok {
		return nil, mlerr.BadGateway("%s", "Remote service answered with something the post-process function cannot read: "+err.Error())
	}
	return out, err
}

// Doer executes provider calls (*remote.Engine).
type Doer interface {
	Do(ctx context.Context, c remote.Call) (*remote.Response, error)
}

// InferenceResult is one element of inference_results: one remote call.
type InferenceResult struct {
	Output     []process.Tensor `json:"output"`
	StatusCode int              `json:"status_code"`
}

// Predict runs the bound connector's predict action on input, one call per
// pre-processed chunk, as _predict does. request are the caller's
// parameters.
func Predict(ctx context.Context, do Doer, b *Bound, input process.Input, request map[string]string) ([]InferenceResult, error) {
	act := b.Connector.Action(indexstore.ActionPredict)
	if act == nil {
		return nil, mlerr.IllegalArgument("no PREDICT action found")
	}
	preParams := template.Merge(b.Connector.Parameters, request, nil)
	calls, err := process.PreProcess(act.PreProcessFunction, input, preParams)
	if err != nil {
		return nil, err
	}
	results := make([]InferenceResult, 0, len(calls))
	for _, pre := range calls {
		params := template.Merge(b.Connector.Parameters, request, pre)
		c, err := b.Call(act, act, params)
		if err != nil {
			return nil, err
		}
		resp, err := do.Do(ctx, c)
		if err != nil {
			return nil, err
		}
		out, err := PostProcess(act.PostProcessFunction, params["response_filter"], resp.Body)
		if err != nil {
			return nil, err
		}
		results = append(results, InferenceResult{Output: out, StatusCode: resp.StatusCode})
	}
	return results, nil
}
