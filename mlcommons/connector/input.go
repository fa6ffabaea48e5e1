package connector

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
	"github.com/mlsidecar/mlsidecar/mlcommons/process"
	"github.com/mlsidecar/mlsidecar/mlcommons/remote"
	"github.com/mlsidecar/mlsidecar/mlcommons/template"
)

// Input is the body of connector create and update, and of an inline
// connector at model register. Pointers tell "left out" from "empty".
type Input struct {
	Name               *string               `json:"name"`
	Description        *string               `json:"description"`
	Version            *FlexString           `json:"version"`
	Protocol           *string               `json:"protocol"`
	Parameters         map[string]FlexString `json:"parameters"`
	Credential         map[string]FlexString `json:"credential"`
	Actions            *[]ActionInput        `json:"actions"`
	ClientConfig       json.RawMessage       `json:"client_config"`
	BackendRoles       []string              `json:"backend_roles"`
	AddAllBackendRoles *bool                 `json:"add_all_backend_roles"`
	AccessMode         *string               `json:"access_mode"`
	DryRun             bool                  `json:"dry_run"`
}

// ActionInput is one action of an Input.
type ActionInput struct {
	ActionType          string                `json:"action_type"`
	Method              string                `json:"method"`
	URL                 string                `json:"url"`
	Headers             map[string]FlexString `json:"headers"`
	RequestBody         *FlexString           `json:"request_body"`
	PreProcessFunction  string                `json:"pre_process_function"`
	PostProcessFunction string                `json:"post_process_function"`
}

// FlexString accepts a JSON string, or any other JSON value as its JSON
// text (ML Commons turns non-string parameter values into their JSON text).
type FlexString string

// UnmarshalJSON implements json.Unmarshaler.
func (s *FlexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = FlexString(v)
		return nil
	}
	if bytes.Equal(b, []byte("null")) {
		*s = ""
		return nil
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, b); err != nil {
		return err
	}
	*s = FlexString(compact.String())
	return nil
}

func flexMap(m map[string]FlexString) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = string(v)
	}
	return out
}

var actionTypes = map[string]bool{indexstore.ActionPredict: true, indexstore.ActionExecute: true, indexstore.ActionBatchPredict: true,
	indexstore.ActionBatchPredictStatus: true, indexstore.ActionCancelBatchPredict: true}

var httpMethods = map[string]bool{"POST": true, "GET": true, "PUT": true, "DELETE": true}

var backoffPolicies = map[string]bool{"constant": true, "exponential_equal_jitter": true, "exponential_full_jitter": true}

// upper is strings.ToUpper for enum values ML Commons stores upper-case.
func upper(s string) string { return strings.ToUpper(strings.TrimSpace(s)) }

// Apply merges in into c with ML Commons' rules: scalar fields and the
// action list are replaced when given, parameters merged key by key, the
// credential replaced only when given and non-empty (encrypted here).
func (s *Service) Apply(c *indexstore.Connector, in *Input) error {
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
		enc, err := s.keys().EncryptMap(flexMap(in.Credential))
		if err != nil {
			return fmt.Errorf("encrypting credential: %w", err)
		}
		c.Credential = enc
	}
	if in.Actions != nil {
		c.Actions = make([]indexstore.ConnectorAction, 0, len(*in.Actions))
		for _, ai := range *in.Actions {
			act := indexstore.ConnectorAction{
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
		// Fields left out get ML Commons 3.6+ defaults (see COMPATIBILITY.md).
		cc := remote.DefaultConfig()
		if err := json.Unmarshal(in.ClientConfig, &cc); err != nil {
			return mlerr.IllegalArgument("Invalid client_config: %s", JSONErrText(err))
		}
		cc.RetryBackoffPolicy = strings.ToLower(cc.RetryBackoffPolicy)
		c.ClientConfig = &cc
	}
	return nil
}

// JSONErrText describes a decoding error without Go type names.
func JSONErrText(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field != "" {
			return fmt.Sprintf("field [%s] cannot take a JSON %s", te.Field, te.Value)
		}
		return fmt.Sprintf("expected a JSON object, got a JSON %s", te.Value)
	}
	return err.Error()
}

// AccessControlRefused is the answer to access-control fields while access
// control is off (what ML Commons says on a cluster without it).
func AccessControlRefused(in *Input) error {
	if in != nil && (in.AccessMode != nil || len(in.BackendRoles) > 0 || in.AddAllBackendRoles != nil) {
		return mlerr.IllegalArgument("You cannot specify connector access control parameters because the Security plugin or connector access control is disabled on your cluster.")
	}
	return nil
}

// Validate checks a complete connector as ML Commons does at create,
// update and inline register; dryRun skips the required fields.
func (s *Service) Validate(c *indexstore.Connector, in *Input, dryRun bool) error {
	if err := AccessControlRefused(in); err != nil {
		return err
	}
	if !dryRun {
		switch {
		case c.Name == "":
			return mlerr.IllegalArgument("Connector name is null")
		case c.Version == "":
			return mlerr.IllegalArgument("Connector version is null")
		case c.Protocol == "":
			return mlerr.IllegalArgument("Connector protocol is null")
		case len(c.Credential) == 0:
			return mlerr.IllegalArgument("Connector credential is null or empty list")
		}
	}
	switch c.Protocol {
	case "http", "":
	case protocolSigV4:
		if err := s.validateSigV4(c); err != nil {
			return err
		}
	default:
		return mlerr.IllegalArgument("Unsupported connector protocol. Please use one of [aws_sigv4, http]")
	}
	if len(c.Actions) == 0 {
		return mlerr.IllegalArgument("No actions configured for this connector")
	}
	for _, act := range c.Actions {
		if err := s.validateAction(c, act); err != nil {
			return err
		}
	}
	if cc := c.ClientConfig; cc != nil {
		switch {
		case !backoffPolicies[cc.RetryBackoffPolicy]:
			return mlerr.IllegalArgument("Unsupported retry backoff policy")
		case cc.MaxConnection < 1:
			return mlerr.IllegalArgument("max_connection must be at least 1")
		case cc.ConnectionTimeout < 0 || cc.ReadTimeout < 0 || cc.RetryBackoffMillis < 0 || cc.RetryTimeoutSeconds < 0:
			return mlerr.IllegalArgument("client_config timeouts must not be negative")
		case cc.MaxRetryTimes < -1:
			return mlerr.IllegalArgument("max_retry_times must be -1 (unlimited), 0 (no retry) or more")
		}
	}
	return nil
}

func (s *Service) validateAction(c *indexstore.Connector, act indexstore.ConnectorAction) error {
	switch {
	case act.ActionType == "":
		return mlerr.IllegalArgument("action_type can't be null")
	case !actionTypes[act.ActionType]:
		return mlerr.IllegalArgument("No enum constant org.opensearch.ml.common.connector.ConnectorAction.ActionType.%s", act.ActionType)
	case act.Method == "":
		return mlerr.IllegalArgument("method can't be null")
	case !httpMethods[strings.ToUpper(act.Method)]:
		return mlerr.IllegalArgument("unsupported http method: %s", act.Method)
	case act.URL == "":
		return mlerr.IllegalArgument("url can't be null")
	}
	for _, f := range []string{act.PreProcessFunction, act.PostProcessFunction} {
		if f != "" && !process.IsBuiltin(f) {
			return mlerr.IllegalArgument("Painless scripts in pre_process_function and post_process_function cannot run in mlsidecar; use one of the built-in functions: %s",
				strings.Join(process.Names(), ", "))
		}
	}
	// ML Commons checks the URL with the connector's own parameters filled.
	u, err := template.Substitute(act.URL, c.Parameters)
	if err != nil {
		return err
	}
	return s.guard.CheckURL(u)
}

func (s *Service) validateSigV4(c *indexstore.Connector) error {
	keys, err := s.keys().DecryptMap(c.Credential)
	if err != nil {
		return fmt.Errorf("decrypting credential: %w", err)
	}
	if keys["access_key"] == "" || keys["secret_key"] == "" {
		return mlerr.IllegalArgument("Missing credential")
	}
	if c.Parameters["region"] == "" && keys["region"] == "" {
		return mlerr.IllegalArgument("Missing region")
	}
	if c.Parameters["service_name"] == "" && keys["service_name"] == "" {
		return mlerr.IllegalArgument("Missing service name")
	}
	return nil
}
