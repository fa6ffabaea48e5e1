package mlcommons

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/process"
	"github.com/mlsidecar/mlsidecar/mlcommons/remote"
	"github.com/mlsidecar/mlsidecar/mlcommons/template"
)

// predictInput is the body of _predict: parameters-style input, or
// text_docs (the neural-search route), optionally naming the action.
type predictInput struct {
	Parameters map[string]any `json:"parameters"`
	TextDocs   []*string      `json:"text_docs"`
	QueryText  *string        `json:"query_text"`
	ActionType string         `json:"action_type"`
}

// inferenceResult is one element of inference_results: one remote call.
type inferenceResult struct {
	Output     []process.Tensor `json:"output"`
	StatusCode int              `json:"status_code"`
}

// bound is a model with its connector, credentials decrypted: what a call
// to the provider needs.
type bound struct {
	modelID   string
	model     *Model
	connector *Connector
	// clientKey names the connector version, so calls share a pooled client.
	clientKey  string
	credential map[string]string
}

// bindModel loads a model and its connector for a provider call, deploying
// the model first when it is not deployed (ML Commons' auto-deploy).
func (a *API) bindModel(r *http.Request, id string) (*bound, error) {
	ctx := r.Context()
	notFound := statusErr(http.StatusNotFound, "Failed to find model")
	m, _, err := load[Model](ctx, a.store, indexstore.Models, id, notFound)
	if err != nil {
		return nil, err
	}
	if m.IsEnabled != nil && !*m.IsEnabled {
		return nil, statusErr(http.StatusForbidden, "Model is disabled.")
	}
	if m.ModelState != stateDeployed {
		var ds struct {
			AutoDeploy *bool `json:"is_auto_deploy_enabled"`
		}
		_ = json.Unmarshal(m.DeploySetting, &ds)
		if ds.AutoDeploy != nil && !*ds.AutoDeploy {
			return nil, illegalArg("Auto deployment disabled for this model, please deploy model first Model ID: %s", id)
		}
		if _, err := a.deploy(r, id); err != nil {
			return nil, err
		}
	}
	b := &bound{modelID: id, model: m, connector: m.Connector, clientKey: "model:" + id + ":" + strconv.FormatInt(m.LastUpdatedTime, 10)}
	if m.ConnectorID != "" {
		c, _, err := load[Connector](ctx, a.store, indexstore.Connectors, m.ConnectorID, connectorNotFound(m.ConnectorID))
		if err != nil {
			return nil, err
		}
		b.connector = c
		b.clientKey = "connector:" + m.ConnectorID + ":" + strconv.FormatInt(c.LastUpdatedTime, 10)
	}
	if b.connector == nil {
		return nil, illegalArg("model has no connector")
	}
	if b.credential, err = a.keyring().DecryptMap(b.connector.Credential); err != nil {
		return nil, statusErr(http.StatusInternalServerError, "cannot decrypt the connector's credential: %v", err)
	}
	return b, nil
}

// action finds the first action of a type, as ML Commons does.
func (c *Connector) action(actionType string) *ConnectorAction {
	for i := range c.Actions {
		if c.Actions[i].ActionType == actionType {
			return &c.Actions[i]
		}
	}
	return nil
}

// providerOf names the provider for metrics and defaults: the connector
// parameter mlsidecar.provider wins, else the URL host tells.
func providerOf(c *Connector, rawURL string) string {
	if p := c.Parameters["mlsidecar.provider"]; p != "" {
		return strings.ToLower(p)
	}
	host := rawURL
	if u, err := url.Parse(rawURL); err == nil {
		host = u.Host
	}
	host = strings.ToLower(host)
	for _, p := range []string{"sagemaker", "openai", "bedrock", "cohere"} {
		if strings.Contains(host, p) {
			return p
		}
	}
	return "other"
}

// call builds the provider request of an action: url and body from the
// merged parameters, headers from the headers action (ML Commons sends the
// predict action's headers for predict, batch predict and status calls) with
// credentials and connector parameters filled in.
func (b *bound) call(act *ConnectorAction, headersFrom *ConnectorAction, params map[string]string, actionLabel string) (remote.Call, error) {
	u, err := template.URL(act.URL, params)
	if err != nil {
		return remote.Call{}, err
	}
	body, err := template.Payload(act.RequestBody, params)
	if err != nil {
		return remote.Call{}, err
	}
	headers := map[string]string{}
	if headersFrom != nil {
		for k, v := range headersFrom.Headers {
			v, err := template.SubstituteCredentials(v, b.credential)
			if err != nil {
				return remote.Call{}, err
			}
			if v, err = template.Substitute(v, b.connector.Parameters); err != nil {
				return remote.Call{}, err
			}
			headers[k] = v
		}
	}
	cfg := remote.DefaultConfig()
	if cc := b.connector.ClientConfig; cc != nil {
		cfg = remote.Config{MaxConnection: cc.MaxConnection, ConnectionTimeout: cc.ConnectionTimeout, ReadTimeout: cc.ReadTimeout,
			RetryBackoffMillis: cc.RetryBackoffMillis, RetryTimeoutSeconds: cc.RetryTimeoutSeconds, MaxRetryTimes: cc.MaxRetryTimes,
			RetryBackoffPolicy: cc.RetryBackoffPolicy, SkipSSLVerification: cc.SkipSSLVerification}
	}
	c := remote.Call{
		Provider: providerOf(b.connector, u), Action: strings.ToLower(actionLabel), Method: strings.ToUpper(act.Method),
		URL: u, Headers: headers, Body: []byte(body), Config: cfg, ClientKey: b.clientKey,
	}
	if b.connector.Protocol == "aws_sigv4" {
		// Region and service come from the stored connector, never from the
		// request, as in ML Commons.
		pick := func(k string) string {
			if v := b.connector.Parameters[k]; v != "" {
				return v
			}
			return b.credential[k]
		}
		c.SigV4 = &remote.SigV4{AccessKey: b.credential["access_key"], SecretKey: b.credential["secret_key"],
			SessionToken: b.credential["session_token"], Region: pick("region"), Service: pick("service_name")}
	}
	return c, nil
}

// predict serves POST /models/{id}/_predict and /_predict/{algorithm}/{id}.
func (a *API) predict(r *http.Request) (any, error) {
	var in predictInput
	if err := decodeBody(r, &in, true); err != nil {
		return nil, err
	}
	actionType := actionPredict
	if in.ActionType != "" {
		actionType = upper(in.ActionType)
	}
	if actionType != actionPredict {
		return nil, illegalArg("Wrong action type in the rest request path!")
	}
	b, err := a.bindModel(r, pathVar(r, "id"))
	if err != nil {
		return nil, err
	}
	if err := a.limiters.allow(b.modelID, b.model.RateLimiter); err != nil {
		return nil, err
	}
	act := b.connector.action(actionPredict)
	if act == nil {
		return nil, illegalArg("no PREDICT action found")
	}
	request := template.RequestParameters(in.Parameters)
	preParams := template.Merge(b.connector.Parameters, request, nil)
	input := process.Input{Parameters: in.Parameters, TextDocs: in.TextDocs, QueryText: in.QueryText}
	fn := act.PreProcessFunction
	calls, err := process.PreProcess(fn, input, preParams)
	if err != nil {
		return nil, err
	}
	results := make([]inferenceResult, 0, len(calls))
	for _, pre := range calls {
		params := template.Merge(b.connector.Parameters, request, pre)
		c, err := b.call(act, act, params, actionPredict)
		if err != nil {
			return nil, err
		}
		resp, err := a.remote.Do(r.Context(), c)
		if err != nil {
			return nil, err
		}
		out, err := postProcess(act.PostProcessFunction, params["response_filter"], resp.Body)
		if err != nil {
			return nil, err
		}
		results = append(results, inferenceResult{Output: out, StatusCode: resp.Status})
	}
	return map[string]any{"inference_results": results}, nil
}

// postProcess runs a post-process function. An answer it cannot read is the
// provider's fault, not the caller's or the sidecar's: 502.
func postProcess(function, filter string, body []byte) ([]process.Tensor, error) {
	out, err := process.PostProcess(function, filter, body)
	var pe *process.Error
	if err != nil && !errors.As(err, &pe) {
		return nil, &Error{Status: http.StatusBadGateway, Type: "status_exception",
			Reason: "Remote service answered with something the post-process function cannot read: " + err.Error()}
	}
	return out, err
}
