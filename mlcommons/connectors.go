package mlcommons

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/auth"
	"github.com/mlsidecar/mlsidecar/mlcommons/process"
	"github.com/mlsidecar/mlsidecar/mlcommons/template"
)

// connectorInput is the body of connector create and update, and of an
// inline connector at model register. Pointers tell "left out" from "empty".
type connectorInput struct {
	Name               *string               `json:"name"`
	Description        *string               `json:"description"`
	Version            *flexString           `json:"version"`
	Protocol           *string               `json:"protocol"`
	Parameters         map[string]flexString `json:"parameters"`
	Credential         map[string]flexString `json:"credential"`
	Actions            *[]actionInput        `json:"actions"`
	ClientConfig       json.RawMessage       `json:"client_config"`
	BackendRoles       []string              `json:"backend_roles"`
	AddAllBackendRoles *bool                 `json:"add_all_backend_roles"`
	AccessMode         *string               `json:"access_mode"`
	DryRun             bool                  `json:"dry_run"`
}

type actionInput struct {
	ActionType          string                `json:"action_type"`
	Method              string                `json:"method"`
	URL                 string                `json:"url"`
	Headers             map[string]flexString `json:"headers"`
	RequestBody         *flexString           `json:"request_body"`
	PreProcessFunction  string                `json:"pre_process_function"`
	PostProcessFunction string                `json:"post_process_function"`
}

// Connector action types (ML Commons ConnectorAction.ActionType).
const (
	actionPredict            = "PREDICT"
	actionExecute            = "EXECUTE"
	actionBatchPredict       = "BATCH_PREDICT"
	actionBatchPredictStatus = "BATCH_PREDICT_STATUS"
	actionCancelBatchPredict = "CANCEL_BATCH_PREDICT"
)

var actionTypes = map[string]bool{actionPredict: true, actionExecute: true, actionBatchPredict: true,
	actionBatchPredictStatus: true, actionCancelBatchPredict: true}

var httpMethods = map[string]bool{"POST": true, "GET": true, "PUT": true, "DELETE": true}

var backoffPolicies = map[string]bool{"constant": true, "exponential_equal_jitter": true, "exponential_full_jitter": true}

// parseConnectorInput decodes and validates a connector body. In update mode
// no field is required.
func parseConnectorInput(r *http.Request, update bool) (*connectorInput, error) {
	var in connectorInput
	if err := decodeBody(r, &in, true); err != nil {
		if update && errors.Is(err, errEmptyBody) {
			return nil, parseErr("Failed to update connector: Request body is empty")
		}
		return nil, err
	}
	return &in, nil
}

// apply merges the input into c with ML Commons' rules: scalar fields and
// the action list are replaced when given, parameters merged key by key,
// credential replaced only when given and non-empty (encrypted here).
func (a *API) apply(c *Connector, in *connectorInput) error {
	if in.Name != nil {
		c.Name = *in.Name
	}
	if in.Description != nil {
		c.Description = *in.Description
	}
	if in.Version != nil {
		c.Version = string(*in.Version)
	}
	if in.Protocol != nil {
		c.Protocol = *in.Protocol
	}
	if len(in.Parameters) > 0 && c.Parameters == nil {
		c.Parameters = map[string]string{}
	}
	for k, v := range in.Parameters {
		c.Parameters[k] = string(v)
	}
	if len(in.Credential) > 0 {
		enc, err := a.keyring().EncryptMap(flexMap(in.Credential))
		if err != nil {
			return fmt.Errorf("encrypting credential: %w", err)
		}
		c.Credential = enc
	}
	if in.Actions != nil {
		c.Actions = make([]ConnectorAction, 0, len(*in.Actions))
		for _, ai := range *in.Actions {
			act := ConnectorAction{
				ActionType: upper(ai.ActionType), Method: ai.Method, URL: ai.URL,
				Headers: flexMap(ai.Headers), PreProcessFunction: ai.PreProcessFunction, PostProcessFunction: ai.PostProcessFunction,
			}
			if ai.RequestBody != nil {
				act.RequestBody = string(*ai.RequestBody)
			}
			c.Actions = append(c.Actions, act)
		}
	}
	if len(in.ClientConfig) > 0 && string(in.ClientConfig) != "null" {
		cc := defaultClientConfig()
		if err := json.Unmarshal(in.ClientConfig, &cc); err != nil {
			return illegalArg("Invalid client_config: %s", jsonErrText(err))
		}
		cc.RetryBackoffPolicy = strings.ToLower(cc.RetryBackoffPolicy)
		c.ClientConfig = &cc
	}
	return nil
}

// validateConnector checks a complete connector as ML Commons does at
// create, update and inline register.
func (a *API) validateConnector(c *Connector, in *connectorInput, dryRun bool) error {
	if in != nil && (in.AccessMode != nil || len(in.BackendRoles) > 0 || in.AddAllBackendRoles != nil) {
		return illegalArg("You cannot specify connector access control parameters because the Security plugin or connector access control is disabled on your cluster.")
	}
	if !dryRun {
		switch {
		case c.Name == "":
			return illegalArg("Connector name is null")
		case c.Version == "":
			return illegalArg("Connector version is null")
		case c.Protocol == "":
			return illegalArg("Connector protocol is null")
		case len(c.Credential) == 0:
			return illegalArg("Connector credential is null or empty list")
		}
	}
	switch c.Protocol {
	case "http", "":
	case "aws_sigv4":
		if err := a.validateSigV4(c); err != nil {
			return err
		}
	default:
		return illegalArg("Unsupported connector protocol. Please use one of [aws_sigv4, http]")
	}
	if len(c.Actions) == 0 {
		return illegalArg("No actions configured for this connector")
	}
	for _, act := range c.Actions {
		if act.ActionType == "" {
			return illegalArg("action_type can't be null")
		}
		if !actionTypes[act.ActionType] {
			return illegalArg("No enum constant org.opensearch.ml.common.connector.ConnectorAction.ActionType.%s", act.ActionType)
		}
		if act.Method == "" {
			return illegalArg("method can't be null")
		}
		if !httpMethods[strings.ToUpper(act.Method)] {
			return illegalArg("unsupported http method: %s", act.Method)
		}
		if act.URL == "" {
			return illegalArg("url can't be null")
		}
		for _, f := range []string{act.PreProcessFunction, act.PostProcessFunction} {
			if f != "" && !process.IsBuiltin(f) {
				return illegalArg("Painless scripts in pre_process_function and post_process_function cannot run in mlsidecar; use one of the built-in functions: %s",
					strings.Join(process.Names(), ", "))
			}
		}
		// ML Commons checks the URL with the connector's own parameters filled.
		u, err := template.Substitute(act.URL, c.Parameters)
		if err != nil {
			return err
		}
		if err := a.guard.CheckURL(u); err != nil {
			return err
		}
	}
	if cc := c.ClientConfig; cc != nil {
		switch {
		case !backoffPolicies[cc.RetryBackoffPolicy]:
			return illegalArg("Unsupported retry backoff policy")
		case cc.MaxConnection < 1:
			return illegalArg("max_connection must be at least 1")
		case cc.ConnectionTimeout < 0 || cc.ReadTimeout < 0 || cc.RetryBackoffMillis < 0 || cc.RetryTimeoutSeconds < 0:
			return illegalArg("client_config timeouts must not be negative")
		case cc.MaxRetryTimes < -1:
			return illegalArg("max_retry_times must be -1 (unlimited), 0 (no retry) or more")
		}
	}
	return nil
}

func (a *API) validateSigV4(c *Connector) error {
	keys, err := a.keyring().DecryptMap(c.Credential)
	if err != nil {
		return fmt.Errorf("decrypting credential: %w", err)
	}
	if keys["access_key"] == "" || keys["secret_key"] == "" {
		return illegalArg("Missing credential")
	}
	if c.Parameters["region"] == "" && keys["region"] == "" {
		return illegalArg("Missing region")
	}
	if c.Parameters["service_name"] == "" && keys["service_name"] == "" {
		return illegalArg("Missing service name")
	}
	return nil
}

func (a *API) createConnector(r *http.Request) (any, error) {
	in, err := parseConnectorInput(r, false)
	if err != nil {
		return nil, err
	}
	var c Connector
	if err := a.apply(&c, in); err != nil {
		return nil, err
	}
	if err := a.validateConnector(&c, in, in.DryRun); err != nil {
		return nil, err
	}
	if in.DryRun {
		return map[string]string{"connector_id": "dryRunConnector"}, nil
	}
	now := a.now().UnixMilli()
	c.CreatedTime, c.LastUpdatedTime = now, now
	c.Owner = ownerOf(auth.UserFrom(r.Context()))
	res, err := a.store.Create(r.Context(), indexstore.Connectors, "", c, true)
	if err != nil {
		return nil, err
	}
	return map[string]string{"connector_id": res.ID}, nil
}

func connectorNotFound(id string) error {
	return statusErr(http.StatusNotFound, "Failed to find connector with the provided connector id: %s", id)
}

func (a *API) getConnector(r *http.Request) (any, error) {
	id := pathVar(r, "id")
	c, _, err := load[Connector](r.Context(), a.store, indexstore.Connectors, id, connectorNotFound(id))
	if err != nil {
		return nil, err
	}
	return c.withoutCredential(), nil
}

func (a *API) updateConnector(r *http.Request) (any, error) {
	id := pathVar(r, "id")
	in, err := parseConnectorInput(r, true)
	if err != nil {
		return nil, err
	}
	deployed, err := a.ids(r, indexstore.Models, map[string]any{"bool": map[string]any{"filter": []any{
		map[string]any{"term": map[string]any{"connector_id.keyword": id}},
		map[string]any{"terms": map[string]any{"model_state": []string{stateDeployed, stateDeploying, statePartiallyDeploy}}},
	}}})
	if err != nil {
		return nil, err
	}
	if len(deployed) > 0 {
		return nil, statusErr(http.StatusBadRequest, "%d models are still using this connector, please undeploy the models first: [%s]",
			len(deployed), strings.Join(deployed, ", "))
	}
	res, _, err := modify(r.Context(), a.store, indexstore.Connectors, id, connectorNotFound(id), func(c *Connector) error {
		if err := a.apply(c, in); err != nil {
			return err
		}
		c.LastUpdatedTime = a.now().UnixMilli()
		return a.validateConnector(c, in, false)
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

func (a *API) deleteConnector(r *http.Request) (any, error) {
	id := pathVar(r, "id")
	_, doc, err := load[Connector](r.Context(), a.store, indexstore.Connectors, id, connectorNotFound(id))
	if err != nil {
		return nil, err
	}
	users, err := a.ids(r, indexstore.Models, map[string]any{"term": map[string]any{"connector_id.keyword": id}})
	if err != nil {
		return nil, err
	}
	if len(users) > 0 {
		return nil, statusErr(http.StatusConflict, "%d models are still using this connector, please delete or update the models first: [%s]",
			len(users), strings.Join(users, ", "))
	}
	return a.store.Delete(r.Context(), indexstore.Connectors, doc)
}
