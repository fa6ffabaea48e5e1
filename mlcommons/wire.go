package mlcommons

import (
	"encoding/json"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/auth"
)

// The response types. A stored document becomes one of these in exactly one
// function per resource, and that function is the only place credentials
// and the sidecar's bookkeeping are left behind: the types have no field
// for them.

// connectorJSON is a connector as every response shows it: no credential.
type connectorJSON struct {
	Name            string                       `json:"name,omitempty"`
	Version         string                       `json:"version,omitempty"`
	Description     string                       `json:"description,omitempty"`
	Protocol        string                       `json:"protocol,omitempty"`
	Parameters      map[string]string            `json:"parameters,omitempty"`
	Actions         []indexstore.ConnectorAction `json:"actions,omitempty"`
	ClientConfig    *indexstore.ClientConfig     `json:"client_config,omitempty"`
	Owner           *indexstore.Owner            `json:"owner,omitempty"`
	Access          string                       `json:"access,omitempty"`
	BackendRoles    []string                     `json:"backend_roles,omitempty"`
	CreatedTime     int64                        `json:"created_time,omitempty"`
	LastUpdatedTime int64                        `json:"last_updated_time,omitempty"`
}

func connectorOut(c *indexstore.Connector) *connectorJSON {
	if c == nil {
		return nil
	}
	return &connectorJSON{Name: c.Name, Version: c.Version, Description: c.Description, Protocol: c.Protocol,
		Parameters: c.Parameters, Actions: c.Actions, ClientConfig: c.ClientConfig, Owner: c.Owner, Access: c.Access,
		BackendRoles: c.BackendRoles, CreatedTime: c.CreatedTime, LastUpdatedTime: c.LastUpdatedTime}
}

// modelJSON is a model as responses show it: its inline connector without
// credential.
type modelJSON struct {
	Name                    string            `json:"name"`
	ModelGroupID            string            `json:"model_group_id,omitempty"`
	Algorithm               string            `json:"algorithm"`
	ModelVersion            string            `json:"model_version,omitempty"`
	Description             string            `json:"description,omitempty"`
	ModelState              string            `json:"model_state"`
	IsHidden                bool              `json:"is_hidden"`
	IsEnabled               *bool             `json:"is_enabled,omitempty"`
	IsControllerEnabled     *bool             `json:"is_controller_enabled,omitempty"`
	ConnectorID             string            `json:"connector_id,omitempty"`
	Connector               *connectorJSON    `json:"connector,omitempty"`
	RateLimiter             json.RawMessage   `json:"rate_limiter,omitempty"`
	DeploySetting           json.RawMessage   `json:"deploy_setting,omitempty"`
	Interface               json.RawMessage   `json:"interface,omitempty"`
	Guardrails              json.RawMessage   `json:"guardrails,omitempty"`
	PlanningWorkerNodeCount *int              `json:"planning_worker_node_count,omitempty"`
	CurrentWorkerNodeCount  *int              `json:"current_worker_node_count,omitempty"`
	PlanningWorkerNodes     []string          `json:"planning_worker_nodes,omitempty"`
	DeployToAllNodes        *bool             `json:"deploy_to_all_nodes,omitempty"`
	Owner                   *indexstore.Owner `json:"owner,omitempty"`
	CreatedTime             int64             `json:"created_time,omitempty"`
	LastUpdatedTime         int64             `json:"last_updated_time,omitempty"`
	LastDeployedTime        int64             `json:"last_deployed_time,omitempty"`
	ModelID                 string            `json:"model_id,omitempty"`
	AutoRedeployRetryTimes  *int              `json:"auto_redeploy_retry_times,omitempty"`
}

func modelOut(m *indexstore.Model) *modelJSON {
	return &modelJSON{Name: m.Name, ModelGroupID: m.ModelGroupID, Algorithm: m.Algorithm, ModelVersion: m.ModelVersion,
		Description: m.Description, ModelState: m.ModelState, IsHidden: m.IsHidden, IsEnabled: m.IsEnabled,
		IsControllerEnabled: m.IsControllerEnabled, ConnectorID: m.ConnectorID, Connector: connectorOut(m.Connector),
		RateLimiter: m.RateLimiter, DeploySetting: m.DeploySetting, Interface: m.Interface, Guardrails: m.Guardrails,
		PlanningWorkerNodeCount: m.PlanningWorkerNodeCount, CurrentWorkerNodeCount: m.CurrentWorkerNodeCount,
		PlanningWorkerNodes: m.PlanningWorkerNodes, DeployToAllNodes: m.DeployToAllNodes, Owner: m.Owner,
		CreatedTime: m.CreatedTime, LastUpdatedTime: m.LastUpdatedTime, LastDeployedTime: m.LastDeployedTime,
		ModelID: m.ModelID, AutoRedeployRetryTimes: m.AutoRedeployRetryTimes}
}

// controllerJSON is a model controller as ML Commons shows it: the model's
// id and every user's limiter.
type controllerJSON struct {
	ModelID         string                            `json:"model_id"`
	UserRateLimiter map[string]indexstore.RateLimiter `json:"user_rate_limiter"`
}

func controllerOut(modelID string, c *indexstore.Controller) *controllerJSON {
	out := &controllerJSON{ModelID: modelID, UserRateLimiter: c.UserRateLimiter}
	if out.UserRateLimiter == nil {
		out.UserRateLimiter = map[string]indexstore.RateLimiter{}
	}
	return out
}

// modelGroupJSON is a model group as responses show it (it holds no secret;
// the type still keeps what is stored and what is shown apart).
type modelGroupJSON struct {
	Name            string            `json:"name"`
	Description     string            `json:"description,omitempty"`
	LatestVersion   int               `json:"latest_version"`
	Access          string            `json:"access,omitempty"`
	BackendRoles    []string          `json:"backend_roles,omitempty"`
	Owner           *indexstore.Owner `json:"owner,omitempty"`
	CreatedTime     int64             `json:"created_time,omitempty"`
	LastUpdatedTime int64             `json:"last_updated_time,omitempty"`
}

func modelGroupOut(g *indexstore.ModelGroup) *modelGroupJSON {
	return &modelGroupJSON{Name: g.Name, Description: g.Description, LatestVersion: g.LatestVersion, Access: g.Access,
		BackendRoles: g.BackendRoles, Owner: g.Owner, CreatedTime: g.CreatedTime, LastUpdatedTime: g.LastUpdatedTime}
}

// taskJSON is a task as responses show it: without the batch bookkeeping
// (the connector snapshot and its encrypted credential, leases).
type taskJSON struct {
	ModelID        string            `json:"model_id,omitempty"`
	TaskType       string            `json:"task_type"`
	FunctionName   string            `json:"function_name,omitempty"`
	State          string            `json:"state"`
	InputType      string            `json:"input_type,omitempty"`
	Progress       *float64          `json:"progress,omitempty"`
	OutputIndex    string            `json:"output_index,omitempty"`
	WorkerNode     []string          `json:"worker_node,omitempty"`
	CreateTime     int64             `json:"create_time"`
	LastUpdateTime int64             `json:"last_update_time"`
	Error          string            `json:"error,omitempty"`
	IsAsync        bool              `json:"is_async"`
	RemoteJob      map[string]any    `json:"remote_job,omitempty"`
	Owner          *indexstore.Owner `json:"owner,omitempty"`
	// The sidecar's own fields of ingestions (COMPATIBILITY.md).
	IngestTaskID   string                     `json:"ingest_task_id,omitempty"`
	IngestCounts   *indexstore.IngestCounts   `json:"ingest_counts,omitempty"`
	IngestFailures []indexstore.IngestFailure `json:"ingest_failures,omitempty"`
}

func taskOut(t *indexstore.Task) *taskJSON {
	return &taskJSON{ModelID: t.ModelID, TaskType: t.TaskType, FunctionName: t.FunctionName, State: t.State,
		InputType: t.InputType, Progress: t.Progress, OutputIndex: t.OutputIndex, WorkerNode: t.WorkerNode,
		CreateTime: t.CreateTime, LastUpdateTime: t.LastUpdateTime, Error: t.Error, IsAsync: t.IsAsync,
		RemoteJob: t.RemoteJob, Owner: t.Owner, IngestTaskID: t.IngestTaskID, IngestCounts: t.IngestCounts,
		IngestFailures: t.IngestFailures}
}

// ownerOf is the caller as the owner of what it creates; nil on clusters
// without security.
func ownerOf(u auth.User, ok bool) *indexstore.Owner {
	if !ok || u.Name == "" {
		return nil
	}
	return &indexstore.Owner{Name: u.Name, BackendRoles: u.BackendRoles, Roles: u.Roles}
}

// rawOrNil drops an explicit JSON null so it is not stored.
func rawOrNil(b json.RawMessage) json.RawMessage {
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	return b
}
