package indexstore

import "encoding/json"

// The stored document types, next to their mappings (mappings.go). They are
// what the indices hold, secrets included: the ML API turns them into its
// own response types, which is the one place credentials and bookkeeping are
// dropped.

// Owner is the user that created a resource, as the cluster's security
// plugin named it. Absent on clusters without security.
type Owner struct {
	Name         string   `json:"name"`
	BackendRoles []string `json:"backend_roles,omitempty"`
	Roles        []string `json:"roles,omitempty"`
}

// Connector is the stored connector document. Its credential values are
// ciphertexts.
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

// Action finds the first action of a type, as ML Commons does.
func (c *Connector) Action(actionType string) *ConnectorAction {
	for i := range c.Actions {
		if c.Actions[i].ActionType == actionType {
			return &c.Actions[i]
		}
	}
	return nil
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

// Connector action types (ML Commons ConnectorAction.ActionType).
const (
	ActionPredict            = "PREDICT"
	ActionExecute            = "EXECUTE"
	ActionBatchPredict       = "BATCH_PREDICT"
	ActionBatchPredictStatus = "BATCH_PREDICT_STATUS"
	ActionCancelBatchPredict = "CANCEL_BATCH_PREDICT"
)

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
	IsControllerEnabled     *bool           `json:"is_controller_enabled,omitempty"` // has a Controller: true once created, false once deleted
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
	// LastRegisteredTime and LastUndeployedTime are read from documents
	// older sidecars wrote; ML Commons 2.19 writes neither for remote models.
	LastRegisteredTime int64 `json:"last_registered_time,omitempty"`
	LastDeployedTime   int64 `json:"last_deployed_time,omitempty"`
	LastUndeployedTime int64 `json:"last_undeployed_time,omitempty"`
	// AutoRedeployRetryTimes is 0 from the first deploy on, as 2.19 writes it.
	AutoRedeployRetryTimes *int `json:"auto_redeploy_retry_times,omitempty"`
	// ModelID is written by the first update, as 2.19's update writes its
	// input (which holds the id) into the document.
	ModelID string `json:"model_id,omitempty"`
}

// Model states (ML Commons MLModelState) and the one algorithm stored.
const (
	ModelRegistered        = "REGISTERED"
	ModelDeploying         = "DEPLOYING"
	ModelDeployed          = "DEPLOYED"
	ModelPartiallyDeployed = "PARTIALLY_DEPLOYED"
	ModelUndeployed        = "UNDEPLOYED"
	ModelDeployFailed      = "DEPLOY_FAILED"
	AlgorithmRemote        = "REMOTE"
)

// IsDeployedState reports whether a model in state s may not be deleted and
// its connector may not change.
func IsDeployedState(s string) bool {
	return s == ModelDeployed || s == ModelDeploying || s == ModelPartiallyDeployed
}

// Controller is the stored model controller (ML Commons MLController) of
// the model whose id it has: per-user rate limiters of that model's
// predictions, by user name.
type Controller struct {
	UserRateLimiter map[string]RateLimiter `json:"user_rate_limiter"`
}

// RateLimiter is a rate limit as ML Commons' MLRateLimiter keeps it: limit
// requests per unit (a java.util.concurrent.TimeUnit name). Either may be
// missing; a limiter without both limits nothing.
type RateLimiter struct {
	Limit string `json:"limit,omitempty"`
	Unit  string `json:"unit,omitempty"`
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
	// IngestCounts are a BATCH_INGEST task's records so far; IngestFailures
	// the first of its failed records (all are in the failures index).
	IngestCounts   *IngestCounts   `json:"ingest_counts,omitempty"`
	IngestFailures []IngestFailure `json:"ingest_failures,omitempty"`
	// IngestTaskID is, on a batch task asked to ingest its results, the
	// BATCH_INGEST task that does.
	IngestTaskID string `json:"ingest_task_id,omitempty"`
	// Batch is the sidecar's own bookkeeping of a batch job; never shown.
	Batch *BatchState `json:"batch,omitempty"`
	// Ingest is the sidecar's own bookkeeping of an ingestion; never shown.
	Ingest *IngestState `json:"ingest,omitempty"`
}

// IsOpenBatch reports whether a task is a batch job the sidecar still
// follows.
func (t *Task) IsOpenBatch() bool {
	return t.TaskType == TaskBatchPrediction && t.Batch != nil && IsOpenState(t.State)
}

// Task types, states and input types (ML Commons MLTaskType, MLTaskState,
// MLInputDataType).
const (
	TaskRegisterModel   = "REGISTER_MODEL"
	TaskDeployModel     = "DEPLOY_MODEL"
	TaskBatchPrediction = "BATCH_PREDICTION"
	TaskBatchIngest     = "BATCH_INGEST"

	TaskCreated     = "CREATED"
	TaskRunning     = "RUNNING"
	TaskCompleted   = "COMPLETED"
	TaskFailed      = "FAILED"
	TaskCancelling  = "CANCELLING"
	TaskCancelled   = "CANCELLED"
	TaskExpired     = "EXPIRED"
	TaskUnreachable = "UNREACHABLE"
	// TaskCompletedWithError is ML Commons' state of a task that ended with
	// some of its work failed: an ingestion with failed records.
	TaskCompletedWithError = "COMPLETED_WITH_ERROR"

	InputRemote = "REMOTE"
)

// openStates are the task states in which a task is still in progress.
var openStates = [...]string{TaskCreated, TaskRunning, TaskCancelling}

// IsOpenState reports whether a task in state s is still in progress.
func IsOpenState(s string) bool {
	for _, o := range openStates {
		if s == o {
			return true
		}
	}
	return false
}

// BatchState is what the sidecar keeps with a batch task to refresh and
// cancel it — even after its model or connector is deleted — and to share
// polling between replicas. It is never shown to callers.
type BatchState struct {
	Provider string `json:"provider"`
	// Connector is a snapshot taken at submission (credential encrypted).
	Connector *Connector `json:"connector"`
	ClientKey string     `json:"client_key"`
	// ModelGroupID is the model's group at submission: access to the task
	// is checked through it, even after the model is deleted.
	ModelGroupID string `json:"model_group_id,omitempty"`
	// NextPoll is when the worker should refresh the task next (epoch ms).
	NextPoll int64 `json:"next_poll"`
	// LeaseOwner holds the task until LeaseUntil while it refreshes it.
	LeaseOwner string `json:"lease_owner,omitempty"`
	LeaseUntil int64  `json:"lease_until,omitempty"`
	// Failures counts consecutive failed background refreshes.
	Failures int `json:"poll_failures"`
	// Submission is set while the job is being submitted: the task is
	// written first, so a replica that dies after the provider created the
	// job leaves a task another replica finishes (see batch.Service).
	Submission *Submission `json:"submission,omitempty"`
	// Ingest, when set, ingests the job's results once it completes.
	Ingest *IngestSpec `json:"ingest,omitempty"`
}

// IsOpenIngest reports whether a task is an ingestion still to finish.
func (t *Task) IsOpenIngest() bool {
	return t.TaskType == TaskBatchIngest && t.Ingest != nil && (t.State == TaskCreated || t.State == TaskRunning)
}

// IngestCounts are the records of an ingestion: committed (Total), indexed
// and failed.
type IngestCounts struct {
	Total   int64 `json:"total"`
	Indexed int64 `json:"indexed"`
	Failed  int64 `json:"failed"`
}

// IngestFailure is one record an ingestion could not index. Source is the
// index of its source in data_source.source, Line its 1-based line.
type IngestFailure struct {
	TaskID     string `json:"task_id,omitempty"`
	Source     int    `json:"source"`
	SourceName string `json:"source_name,omitempty"`
	Line       int64  `json:"line"`
	Reason     string `json:"reason"`
	Status     int    `json:"status,omitempty"`
	// Record is the start of the line as read (at most a KiB).
	Record string `json:"record,omitempty"`
	Time   int64  `json:"time,omitempty"`
}

// IngestDLQ is an S3 bucket that receives the failed records.
type IngestDLQ struct {
	Bucket string `json:"bucket"`
	Region string `json:"region"`
	// Name is the job's name, which names the object.
	Name string `json:"name"`
}

// IngestState is what the sidecar keeps with a BATCH_INGEST task to run it,
// resume it on any replica and share the work through leases. It is never
// shown to callers.
type IngestState struct {
	// Request is the _batch_ingestion body without its credential.
	Request json.RawMessage `json:"request"`
	// Credential holds the data source's credential, each value encrypted
	// with the master key.
	Credential map[string]string `json:"credential,omitempty"`
	// BaseURL is where OpenAI files are read (a connector's scheme and
	// host, or the configured default).
	BaseURL string `json:"base_url,omitempty"`
	// Caller holds the caller's credentials (Authorization, Cookie),
	// encrypted: the documents are written with the caller's rights.
	// Dropped when the task ends.
	Caller string `json:"caller,omitempty"`
	// ErrorFiles are read after the sources: each of their lines is a
	// record the provider failed (an OpenAI error file), a failure.
	ErrorFiles []string `json:"error_files,omitempty"`
	// MissingOutputs are read last: each is an input object the job wrote
	// no output for (a SageMaker input without its .out), one failure.
	MissingOutputs []string `json:"missing_outputs,omitempty"`
	// Provider is the batch job's provider when the ingestion loads a job's
	// results: its lines the provider failed (Bedrock error records)
	// become failures.
	Provider string `json:"provider,omitempty"`
	// DLQ is the batch job's dead-letter queue: when the ingestion ends,
	// its failed records are written there.
	DLQ *IngestDLQ `json:"dlq,omitempty"`
	// Checkpoint is the committed position of every source.
	Checkpoint IngestCheckpoint `json:"checkpoint"`
	// NextRun is when a worker may start or resume the task (epoch ms).
	NextRun    int64  `json:"next_run"`
	LeaseOwner string `json:"lease_owner,omitempty"`
	LeaseUntil int64  `json:"lease_until,omitempty"`
	// Attempts counts runs that stopped before the end.
	Attempts int `json:"attempts,omitempty"`
}

// IngestCheckpoint is what an ingestion has committed: per source, the
// lines done and the byte offset to read on from, and their counts.
type IngestCheckpoint struct {
	Sources []IngestSourceCheckpoint `json:"sources"`
	Total   int64                    `json:"total"`
	Indexed int64                    `json:"indexed"`
	Failed  int64                    `json:"failed"`
	// Bytes is the sum of the committed offsets, for progress.
	Size int64 `json:"size,omitempty"`
}

// IngestSourceCheckpoint is one source's committed position.
type IngestSourceCheckpoint struct {
	Offset int64 `json:"offset"`
	Line   int64 `json:"line"`
	Done   bool  `json:"done"`
	// Size is the source's length in bytes, once known.
	Size int64 `json:"size,omitempty"`
}

// IngestSpec is a batch job's request to ingest its results when it
// completes: the _batch_ingestion body without data_source and credential,
// and the caller's credentials, encrypted.
type IngestSpec struct {
	Request json.RawMessage `json:"request"`
	Caller  string          `json:"caller,omitempty"`
}

// Submission is what resubmitting an interrupted batch submission needs.
type Submission struct {
	// Parameters are the caller's request parameters.
	Parameters map[string]any `json:"parameters,omitempty"`
	// Key is the provider's idempotency key for the job (the task id in
	// OpenAI metadata or Bedrock's clientRequestToken, SageMaker's job
	// name); "" when the request carries none.
	Key string `json:"key,omitempty"`
	// DLQ is the job's dead-letter queue (bucket, region), nil for none.
	DLQ map[string]string `json:"dlq,omitempty"`
}

// MasterKey is the config document holding the key mlsidecar creates when
// none is configured, as ML Commons keeps its master_key.
type MasterKey struct {
	MasterKey  string `json:"master_key"`
	KeyID      string `json:"key_id"`
	CreateTime int64  `json:"create_time"`
}

// MasterKeyID is the id of the MasterKey document in the config index.
const MasterKeyID = "master_key"

// MLSettings is the config document holding the ML Commons cluster settings
// (plugins.ml_commons.*) callers set through PUT _cluster/settings, which
// the cluster itself does not know. Keys are full setting names; each value
// is the JSON OpenSearch would keep: a string, or a list of strings.
type MLSettings struct {
	Persistent map[string]json.RawMessage `json:"persistent,omitempty"`
	Transient  map[string]json.RawMessage `json:"transient,omitempty"`
	UpdateTime int64                      `json:"update_time,omitempty"`
}

// MLSettingsID is the id of the MLSettings document in the config index.
const MLSettingsID = "ml_settings"
