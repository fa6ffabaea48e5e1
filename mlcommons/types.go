package mlcommons

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/mlsidecar/mlsidecar/mlcommons/auth"
)

// Owner is the user that created a resource, as the cluster's security
// plugin named it. Absent on clusters without security.
type Owner struct {
	Name         string   `json:"name"`
	BackendRoles []string `json:"backend_roles,omitempty"`
	Roles        []string `json:"roles,omitempty"`
}

func ownerOf(u auth.User, ok bool) *Owner {
	if !ok || u.Name == "" {
		return nil
	}
	return &Owner{Name: u.Name, BackendRoles: u.BackendRoles, Roles: u.Roles}
}

// Connector is the stored connector document. Its credential values are
// ciphertexts; responses never carry the credential.
type Connector struct {
	Name            string            `json:"name,omitempty"`
	Version         string            `json:"version,omitempty"`
	Description     string            `json:"description,omitempty"`
	Protocol        string            `json:"protocol,omitempty"`
	Parameters      map[string]string `json:"parameters,omitempty"`
	Credential      map[string]string `json:"credential,omitempty"`
	Actions         []ConnectorAction `json:"actions,omitempty"`
	ClientConfig    *ClientConfig     `json:"client_config,omitempty"`
	Owner           *Owner            `json:"owner,omitempty"`
	Access          string            `json:"access,omitempty"`
	BackendRoles    []string          `json:"backend_roles,omitempty"`
	CreatedTime     int64             `json:"created_time,omitempty"`
	LastUpdatedTime int64             `json:"last_updated_time,omitempty"`
}

// withoutCredential is the connector as every response shows it.
func (c Connector) withoutCredential() Connector {
	c.Credential = nil
	return c
}

// ConnectorAction is one provider call a connector can make.
type ConnectorAction struct {
	ActionType          string            `json:"action_type"`
	Method              string            `json:"method"`
	URL                 string            `json:"url"`
	Headers             map[string]string `json:"headers,omitempty"`
	RequestBody         string            `json:"request_body,omitempty"`
	PreProcessFunction  string            `json:"pre_process_function,omitempty"`
	PostProcessFunction string            `json:"post_process_function,omitempty"`
}

// ClientConfig tunes the HTTP client of a connector. Timeouts are seconds.
type ClientConfig struct {
	MaxConnection       int    `json:"max_connection"`
	ConnectionTimeout   int    `json:"connection_timeout"`
	ReadTimeout         int    `json:"read_timeout"`
	RetryBackoffMillis  int    `json:"retry_backoff_millis"`
	RetryTimeoutSeconds int    `json:"retry_timeout_seconds"`
	MaxRetryTimes       int    `json:"max_retry_times"`
	RetryBackoffPolicy  string `json:"retry_backoff_policy"`
	SkipSSLVerification bool   `json:"skip_ssl_verification"`
}

// defaultClientConfig is written into a connector whose client_config left
// fields out (ML Commons 3.6+ defaults; see COMPATIBILITY.md).
func defaultClientConfig() ClientConfig {
	return ClientConfig{MaxConnection: 30, ConnectionTimeout: 30, ReadTimeout: 30, RetryBackoffMillis: 200,
		RetryTimeoutSeconds: 30, MaxRetryTimes: 0, RetryBackoffPolicy: "constant"}
}

// Model is the stored model document (function_name remote).
type Model struct {
	Name                    string          `json:"name"`
	ModelGroupID            string          `json:"model_group_id,omitempty"`
	Algorithm               string          `json:"algorithm"`
	ModelVersion            string          `json:"model_version,omitempty"`
	Description             string          `json:"description,omitempty"`
	ModelState              string          `json:"model_state"`
	IsHidden                bool            `json:"is_hidden"`
	IsEnabled               *bool           `json:"is_enabled,omitempty"`
	ConnectorID             string          `json:"connector_id,omitempty"`
	Connector               *Connector      `json:"connector,omitempty"`
	RateLimiter             json.RawMessage `json:"rate_limiter,omitempty"`
	DeploySetting           json.RawMessage `json:"deploy_setting,omitempty"`
	Interface               json.RawMessage `json:"interface,omitempty"`
	Guardrails              json.RawMessage `json:"guardrails,omitempty"`
	PlanningWorkerNodeCount *int            `json:"planning_worker_node_count,omitempty"`
	CurrentWorkerNodeCount  *int            `json:"current_worker_node_count,omitempty"`
	PlanningWorkerNodes     []string        `json:"planning_worker_nodes,omitempty"`
	DeployToAllNodes        *bool           `json:"deploy_to_all_nodes,omitempty"`
	Owner                   *Owner          `json:"owner,omitempty"`
	CreatedTime             int64           `json:"created_time,omitempty"`
	LastUpdatedTime         int64           `json:"last_updated_time,omitempty"`
	LastRegisteredTime      int64           `json:"last_registered_time,omitempty"`
	LastDeployedTime        int64           `json:"last_deployed_time,omitempty"`
	LastUndeployedTime      int64           `json:"last_undeployed_time,omitempty"`
}

// Model states (ML Commons MLModelState).
const (
	stateRegistered       = "REGISTERED"
	stateDeploying        = "DEPLOYING"
	stateDeployed         = "DEPLOYED"
	statePartiallyDeploy  = "PARTIALLY_DEPLOYED"
	stateUndeployed       = "UNDEPLOYED"
	stateDeployFailed     = "DEPLOY_FAILED"
	algorithmRemote       = "REMOTE"
	functionNameRemoteLow = "remote"
)

// deployedStates are the states in which a model may not be deleted and its
// connector may not change.
func isDeployedState(s string) bool {
	return s == stateDeployed || s == stateDeploying || s == statePartiallyDeploy
}

// ModelGroup is the stored model group document.
type ModelGroup struct {
	Name            string   `json:"name"`
	Description     string   `json:"description,omitempty"`
	LatestVersion   int      `json:"latest_version"`
	Access          string   `json:"access,omitempty"`
	BackendRoles    []string `json:"backend_roles,omitempty"`
	Owner           *Owner   `json:"owner,omitempty"`
	CreatedTime     int64    `json:"created_time,omitempty"`
	LastUpdatedTime int64    `json:"last_updated_time,omitempty"`
}

// Task is the stored task document.
type Task struct {
	ModelID        string         `json:"model_id,omitempty"`
	TaskType       string         `json:"task_type"`
	FunctionName   string         `json:"function_name,omitempty"`
	State          string         `json:"state"`
	InputType      string         `json:"input_type,omitempty"`
	Progress       *float64       `json:"progress,omitempty"`
	OutputIndex    string         `json:"output_index,omitempty"`
	WorkerNode     []string       `json:"worker_node,omitempty"`
	CreateTime     int64          `json:"create_time"`
	LastUpdateTime int64          `json:"last_update_time"`
	Error          string         `json:"error,omitempty"`
	IsAsync        bool           `json:"is_async"`
	RemoteJob      map[string]any `json:"remote_job,omitempty"`
	Owner          *Owner         `json:"owner,omitempty"`
	// Batch is the sidecar's own bookkeeping of a batch job; never shown.
	Batch *batchState `json:"batch,omitempty"`
}

// Task types and states (ML Commons MLTaskType, MLTaskState).
const (
	taskRegisterModel = "REGISTER_MODEL"
	taskDeployModel   = "DEPLOY_MODEL"
	taskCreated       = "CREATED"
	taskRunning       = "RUNNING"
	taskCompleted     = "COMPLETED"
	taskFailed        = "FAILED"
	taskCancelling    = "CANCELLING"
)

// flexString accepts a JSON string, or any other JSON value as its JSON
// text (ML Commons turns non-string parameter values into their JSON text).
type flexString string

func (s *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = flexString(v)
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
	*s = flexString(compact.String())
	return nil
}

func flexMap(m map[string]flexString) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = string(v)
	}
	return out
}

// upper is strings.ToUpper for enum values ML Commons stores upper-case.
func upper(s string) string { return strings.ToUpper(strings.TrimSpace(s)) }
