package differential

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// probe is one request a user makes, sent alike to both implementations.
// Path and body may name variables as {{name}}: each implementation has its
// own values, saved from its own earlier answers.
type probe struct {
	name   string
	method string
	path   string // below /_plugins/_ml, or from the root with root
	root   bool
	body   string
	gzip   bool // send the body gzip-compressed (Content-Encoding: gzip)
	// save names variables taken from the answer (dotted paths).
	save map[string]string
	// until repeats the request until it holds (deploys are asynchronous
	// in ML Commons), for at most untilTimeout.
	until func(answer) bool
	// genuinePath (absolute, on the genuine node) and genuinePick read
	// genuine ML Commons' state where its API cannot show it (a batch task,
	// whose GET calls the provider): the subtree at genuinePick is compared.
	genuinePath, genuinePick string
}

const untilTimeout = time.Minute

// unknownID has the shape of a real id and names nothing.
const unknownID = "diffUnknownId0000001"

// connector is the batch documentation's OpenAI connector, pointed at the double.
const connector = `{
  "name": "OpenAI Embedding model",
  "description": "OpenAI embedding model for the differential test",
  "version": "1",
  "protocol": "http",
  "parameters": {"model": "text-embedding-ada-002", "input_file_id": "{{input_file}}", "endpoint": "/v1/embeddings"},
  "credential": {"openAI_key": "` + openAIKey + `"},
  "actions": [
    {"action_type": "predict", "method": "POST", "url": "{{double}}/v1/embeddings",
     "headers": {"Authorization": "Bearer ${credential.openAI_key}"},
     "request_body": "{ \"input\": ${parameters.input}, \"model\": \"${parameters.model}\" }",
     "pre_process_function": "connector.pre_process.openai.embedding",
     "post_process_function": "connector.post_process.openai.embedding"},
    {"action_type": "batch_predict", "method": "POST", "url": "{{double}}/v1/batches",
     "headers": {"Authorization": "Bearer ${credential.openAI_key}"},
     "request_body": "{ \"input_file_id\": \"${parameters.input_file_id}\", \"endpoint\": \"${parameters.endpoint}\", \"completion_window\": \"24h\" }"},
    {"action_type": "batch_predict_status", "method": "GET", "url": "{{double}}/v1/batches/${parameters.id}",
     "headers": {"Authorization": "Bearer ${credential.openAI_key}"}},
    {"action_type": "cancel_batch_predict", "method": "POST", "url": "{{double}}/v1/batches/${parameters.id}/cancel",
     "headers": {"Authorization": "Bearer ${credential.openAI_key}"}}
  ]
}`

// bodiesConnector is connector with a request_body on its status and
// cancel actions, which genuine 2.19.6 needs to keep them.
var bodiesConnector = strings.NewReplacer(
	`"url": "{{double}}/v1/batches/${parameters.id}",`, `"url": "{{double}}/v1/batches/${parameters.id}", "request_body": "{}",`,
	`"url": "{{double}}/v1/batches/${parameters.id}/cancel",`, `"url": "{{double}}/v1/batches/${parameters.id}/cancel", "request_body": "{}",`,
).Replace(connector)

const badActionConnector = `{"name": "bad", "version": "1", "protocol": "http", "parameters": {}, "credential": {"k": "v"},
  "actions": [{"action_type": "foo", "method": "POST", "url": "{{double}}/v1/embeddings"}]}`

// state and taskState wait for a model or task to reach one of the states.
func state(want ...string) func(answer) bool { return field("model_state", want) }

func taskState(want ...string) func(answer) bool { return field("state", want) }

func field(path string, want []string) func(answer) bool {
	return func(a answer) bool {
		v, _ := lookup(a.json, path)
		return slices.Contains(want, fmt.Sprint(v))
	}
}

// probes run in this order; later ones use what earlier ones made.
var probes = []probe{
	// Connectors.
	{name: "connector/create", method: "POST", path: "/connectors/_create", body: connector, save: map[string]string{"connector": "connector_id"}},
	{name: "connector/create-second", method: "POST", path: "/connectors/_create", body: connector, save: map[string]string{"connector2": "connector_id"}},
	{name: "connector/get", method: "GET", path: "/connectors/{{connector}}"},
	{name: "connector/get-trailing-slash", method: "GET", path: "/connectors/{{connector}}/"},
	{name: "connector/get-unknown-param", method: "GET", path: "/connectors/{{connector}}?foo=bar"},
	{name: "connector/get-filter-path", method: "GET", path: "/connectors/{{connector}}?filter_path=name,protocol,actions.action_type"},
	{name: "connector/get-pretty", method: "GET", path: "/connectors/{{connector}}?pretty"},
	{name: "connector/get-unknown", method: "GET", path: "/connectors/" + unknownID},
	{name: "connector/search-ids", method: "POST", path: "/connectors/_search", body: `{"query":{"ids":{"values":["{{connector}}"]}}}`,
		until: field("hits.total.value", []string{"1"})},
	{name: "connector/search-get", method: "GET", path: "/connectors/_search"},
	{name: "connector/search-unknown-param", method: "GET", path: "/connectors/_search?foo=bar"},
	{name: "connector/search-malformed", method: "POST", path: "/connectors/_search", body: `{"query":`},
	{name: "connector/update", method: "PUT", path: "/connectors/{{connector}}", body: `{"description":"updated by the differential test"}`},
	{name: "connector/get-updated", method: "GET", path: "/connectors/{{connector}}"},
	{name: "connector/update-unknown", method: "PUT", path: "/connectors/" + unknownID, body: `{"description":"x"}`},
	{name: "connector/update-empty-body", method: "PUT", path: "/connectors/{{connector}}"},
	{name: "connector/delete-unknown", method: "DELETE", path: "/connectors/" + unknownID},
	{name: "connector/delete", method: "DELETE", path: "/connectors/{{connector2}}"},
	{name: "connector/get-deleted", method: "GET", path: "/connectors/{{connector2}}"},
	{name: "connector/create-empty-body", method: "POST", path: "/connectors/_create"},
	{name: "connector/create-malformed", method: "POST", path: "/connectors/_create", body: `{"name":`},
	{name: "connector/create-not-object", method: "POST", path: "/connectors/_create", body: `[]`},
	{name: "connector/create-unknown-action-type", method: "POST", path: "/connectors/_create", body: badActionConnector},
	{name: "connector/create-wrong-method", method: "GET", path: "/connectors/_create"},
	{name: "connector/create-trailing-slash", method: "POST", path: "/connectors/_create/", body: connector},
	{name: "connector/create-unknown-param", method: "POST", path: "/connectors/_create?foo=bar", body: connector},
	{name: "connector/create-gzip", method: "POST", path: "/connectors/_create", body: connector, gzip: true},
	{name: "connector/search-wrong-method", method: "PUT", path: "/connectors/_search"},

	// Model groups.
	{name: "group/register", method: "POST", path: "/model_groups/_register", body: `{"name":"diff-group","description":"first"}`, save: map[string]string{"group": "model_group_id"}},
	{name: "group/register-duplicate", method: "POST", path: "/model_groups/_register", body: `{"name":"diff-group"}`},
	{name: "group/register-second", method: "POST", path: "/model_groups/_register", body: `{"name":"diff-group-2"}`, save: map[string]string{"group2": "model_group_id"}},
	{name: "group/get", method: "GET", path: "/model_groups/{{group}}"},
	{name: "group/get-unknown", method: "GET", path: "/model_groups/" + unknownID},
	{name: "group/search-ids", method: "POST", path: "/model_groups/_search", body: `{"query":{"ids":{"values":["{{group}}"]}}}`,
		until: field("hits.total.value", []string{"1"})},
	{name: "group/update", method: "PUT", path: "/model_groups/{{group}}", body: `{"description":"updated"}`},
	{name: "group/get-updated", method: "GET", path: "/model_groups/{{group}}"},
	{name: "group/update-unknown", method: "PUT", path: "/model_groups/" + unknownID, body: `{"description":"x"}`},
	{name: "group/delete-unknown", method: "DELETE", path: "/model_groups/" + unknownID},
	{name: "group/delete", method: "DELETE", path: "/model_groups/{{group2}}"},
	{name: "group/register-empty-body", method: "POST", path: "/model_groups/_register"},
	{name: "group/register-wrong-method", method: "GET", path: "/model_groups/_register"},

	// Models with a stored connector: register, deploy, predict, update.
	{name: "model/register", method: "POST", path: "/models/_register",
		body: `{"name":"diff-model","function_name":"remote","model_group_id":"{{group}}","connector_id":"{{connector}}","description":"m"}`,
		save: map[string]string{"model": "model_id", "register_task": "task_id"}},
	{name: "model/get-registered", method: "GET", path: "/models/{{model}}", until: state("REGISTERED")},
	{name: "model/task-register", method: "GET", path: "/tasks/{{register_task}}", until: taskState("COMPLETED", "FAILED")},
	{name: "model/deploy", method: "POST", path: "/models/{{model}}/_deploy", save: map[string]string{"deploy_task": "task_id"}},
	{name: "model/get-deployed", method: "GET", path: "/models/{{model}}", until: state("DEPLOYED")},
	{name: "model/task-deploy", method: "GET", path: "/tasks/{{deploy_task}}", until: taskState("COMPLETED", "FAILED")},
	{name: "model/predict", method: "POST", path: "/models/{{model}}/_predict", body: `{"parameters":{"input":["hello","world"]}}`},
	{name: "model/predict-text-docs", method: "POST", path: "/_predict/text_embedding/{{model}}", body: `{"text_docs":["hello"]}`},
	{name: "model/predict-remote-route", method: "POST", path: "/_predict/remote/{{model}}", body: `{"parameters":{"input":["hello"]}}`},
	{name: "model/predict-empty-body", method: "POST", path: "/models/{{model}}/_predict"},
	{name: "model/predict-malformed", method: "POST", path: "/models/{{model}}/_predict", body: `{"parameters":`},
	{name: "model/predict-wrong-action-type", method: "POST", path: "/models/{{model}}/_predict", body: `{"parameters":{"input":["a"]},"action_type":"foo"}`},
	{name: "model/predict-unknown", method: "POST", path: "/models/" + unknownID + "/_predict", body: `{"parameters":{"input":["a"]}}`},
	{name: "model/update", method: "PUT", path: "/models/{{model}}", body: `{"description":"updated"}`},
	{name: "model/get-updated", method: "GET", path: "/models/{{model}}"},
	{name: "model/update-unknown", method: "PUT", path: "/models/" + unknownID, body: `{"description":"x"}`},
	{name: "model/get-unknown", method: "GET", path: "/models/" + unknownID},
	{name: "model/deploy-unknown", method: "POST", path: "/models/" + unknownID + "/_deploy"},
	{name: "model/undeploy-unknown", method: "POST", path: "/models/" + unknownID + "/_undeploy"},
	{name: "model/search-ids", method: "POST", path: "/models/_search", body: `{"query":{"ids":{"values":["{{model}}"]}}}`,
		until: field("hits.hits.0._source.description", []string{"updated"})}, // genuine's update does not refresh
	{name: "model/delete-deployed", method: "DELETE", path: "/models/{{model}}"},
	{name: "connector/delete-in-use", method: "DELETE", path: "/connectors/{{connector}}"},
	{name: "connector/update-in-use", method: "PUT", path: "/connectors/{{connector}}", body: `{"description":"again"}`},
	{name: "group/delete-with-models", method: "DELETE", path: "/model_groups/{{group}}"},

	// A model with an inline connector, deployed at registration.
	{name: "model/register-inline-deploy", method: "POST", path: "/models/_register?deploy=true",
		body: `{"name":"diff-inline","function_name":"remote","model_group_id":"{{group}}","connector":` + connector + `}`,
		save: map[string]string{"model2": "model_id", "register2_task": "task_id"}},
	{name: "model/get-inline-deployed", method: "GET", path: "/models/{{model2}}", until: state("DEPLOYED")},
	{name: "model/register-empty-body", method: "POST", path: "/models/_register"},
	{name: "model/register-malformed", method: "POST", path: "/models/_register", body: `{"name":`},
	{name: "model/register-no-connector", method: "POST", path: "/models/_register", body: `{"name":"x","function_name":"remote"}`},
	{name: "model/register-unknown-connector", method: "POST", path: "/models/_register", body: `{"name":"x","function_name":"remote","connector_id":"` + unknownID + `"}`},
	{name: "model/register-wrong-method", method: "PUT", path: "/models/_register"},
	{name: "model/register-trailing-slash", method: "POST", path: "/models/_register/",
		body: `{"name":"diff-slash","function_name":"remote","model_group_id":"{{group}}","connector_id":"{{connector}}"}`},

	// Batch predict. Genuine 2.19.6 ignores status and cancel actions
	// without a request_body and derives them from a provider name in the
	// URL, which a local double has not, so those calls fail there; the
	// connector with bodies shows what it does with actions it keeps.
	{name: "batch/predict", method: "POST", path: "/models/{{model2}}/_batch_predict", body: `{"parameters":{"model":"text-embedding-ada-002"}}`,
		save: map[string]string{"batch_task": "task_id"}},
	{name: "batch/predict-stored-connector", method: "POST", path: "/models/{{model}}/_batch_predict", body: `{"parameters":{}}`,
		save: map[string]string{"batch_task2": "task_id"}},
	{name: "batch/task-stored", method: "GET", path: "/tasks/{{batch_task}}",
		genuinePath: "/.plugins-ml-task/_doc/{{batch_task}}", genuinePick: "_source"},
	{name: "batch/task-search", method: "POST", path: "/tasks/_search",
		body:  `{"query":{"term":{"task_type":"BATCH_PREDICTION"}},"sort":[{"create_time":{"order":"asc"}}]}`,
		until: field("hits.total.value", []string{"2"})},
	{name: "batch/task-get", method: "GET", path: "/tasks/{{batch_task}}"},
	{name: "batch/task-get-stored-connector", method: "GET", path: "/tasks/{{batch_task2}}"},
	{name: "batch/predict-unknown-model", method: "POST", path: "/models/" + unknownID + "/_batch_predict", body: `{"parameters":{}}`},
	{name: "batch/predict-empty-body", method: "POST", path: "/models/{{model2}}/_batch_predict"},
	{name: "batch/predict-action-type", method: "POST", path: "/models/{{model2}}/_predict",
		body: `{"parameters":{"model":"text-embedding-ada-002"},"action_type":"batch_predict"}`},
	{name: "batch/cancel", method: "POST", path: "/tasks/{{batch_task}}/_cancel"},
	{name: "batch/cancel-stored-connector", method: "POST", path: "/tasks/{{batch_task2}}/_cancel"},
	{name: "batch/task-delete-open", method: "DELETE", path: "/tasks/{{batch_task}}"},
	{name: "batch/bodies-register", method: "POST", path: "/models/_register?deploy=true",
		body: `{"name":"diff-bodies","function_name":"remote","model_group_id":"{{group}}","connector":` + bodiesConnector + `}`,
		save: map[string]string{"model3": "model_id"}},
	{name: "batch/bodies-deployed", method: "GET", path: "/models/{{model3}}", until: state("DEPLOYED")},
	{name: "batch/bodies-predict", method: "POST", path: "/models/{{model3}}/_batch_predict", body: `{"parameters":{}}`,
		save: map[string]string{"batch_task3": "task_id"}},
	{name: "batch/bodies-task-get", method: "GET", path: "/tasks/{{batch_task3}}"},
	{name: "batch/bodies-cancel", method: "POST", path: "/tasks/{{batch_task3}}/_cancel"},

	// Tasks.
	{name: "task/search-ids", method: "POST", path: "/tasks/_search", body: `{"query":{"ids":{"values":["{{deploy_task}}"]}}}`,
		until: field("hits.total.value", []string{"1"})},
	{name: "task/get-unknown", method: "GET", path: "/tasks/" + unknownID},
	{name: "task/delete-unknown", method: "DELETE", path: "/tasks/" + unknownID},
	{name: "task/delete", method: "DELETE", path: "/tasks/{{deploy_task}}"},
	{name: "task/get-deleted", method: "GET", path: "/tasks/{{deploy_task}}"},

	// Undeploy and delete.
	{name: "model/undeploy", method: "POST", path: "/models/{{model}}/_undeploy"},
	{name: "model/get-undeployed", method: "GET", path: "/models/{{model}}", until: state("UNDEPLOYED", "DEPLOY_FAILED")},
	{name: "model/undeploy-many", method: "POST", path: "/models/_undeploy", body: `{"model_ids":["{{model2}}"]}`},
	{name: "model/get-many-undeployed", method: "GET", path: "/models/{{model2}}", until: state("UNDEPLOYED")},
	{name: "model/delete", method: "DELETE", path: "/models/{{model}}"},
	{name: "model/get-deleted", method: "GET", path: "/models/{{model}}"},
	{name: "model/delete-unknown", method: "DELETE", path: "/models/" + unknownID},

	// Stats and profile.
	{name: "stats/all", method: "GET", path: "/stats"},
	{name: "stats/one", method: "GET", path: "/stats/ml_model_count"},
	{name: "profile/all", method: "GET", path: "/profile"},
	{name: "profile/models", method: "GET", path: "/profile/models"},
	{name: "profile/tasks", method: "GET", path: "/profile/tasks"},

	// Batch ingestion: the request checks (ML Commons 2.19 validates at
	// submission; a source it cannot read fails the task later).
	{name: "ingest/empty-body", method: "POST", path: "/_batch_ingestion"},
	{name: "ingest/number-body", method: "POST", path: "/_batch_ingestion", body: `5`},
	{name: "ingest/array-body", method: "POST", path: "/_batch_ingestion", body: `[{"index_name":"diff-ingest"}]`},
	{name: "ingest/no-index", method: "POST", path: "/_batch_ingestion", body: `{"field_map":{"a":"$.a"},"data_source":{"type":"s3","source":["s3://bucket/key"]}}`},
	{name: "ingest/no-data-source", method: "POST", path: "/_batch_ingestion", body: `{"index_name":"diff-ingest","field_map":{"a":"$.a"}}`},
	{name: "ingest/null-credential", method: "POST", path: "/_batch_ingestion", body: `{"index_name":"diff-ingest","field_map":{"a":"$.a"},"credential":null,"data_source":{"type":"s3","source":["s3://bucket/key"]}}`},
	{name: "ingest/no-type", method: "POST", path: "/_batch_ingestion", body: `{"index_name":"diff-ingest","field_map":{"a":"$.a"},"credential":{},"data_source":{"source":["s3://bucket/key"]}}`},
	{name: "ingest/empty-s3", method: "POST", path: "/_batch_ingestion", body: `{"index_name":"diff-ingest","field_map":{"a":"$.a"},"credential":{},"data_source":{"type":"s3","source":[]}}`},
	{name: "ingest/bad-s3-uri", method: "POST", path: "/_batch_ingestion", body: `{"index_name":"diff-ingest","field_map":{"a":"$.a"},"credential":{},"data_source":{"type":"s3","source":["http://bucket/key","s3://ok/key"]}}`},
	{name: "ingest/submit", method: "POST", path: "/_batch_ingestion", body: `{"index_name":"diff-ingest","field_map":{"a":"$.a"},"credential":{"access_key":"AKIAEXAMPLE","secret_key":"secret","region":"us-east-1"},"data_source":{"type":"s3","source":["s3://diff-no-such-bucket/out.jsonl"]}}`},

	// APIs of ML Commons that mlsidecar does not serve.
	{name: "unsupported/agents-register", method: "POST", path: "/agents/_register", body: `{"name":"a","type":"flow","tools":[]}`},
	{name: "unsupported/agents-get", method: "GET", path: "/agents/" + unknownID},
	{name: "unsupported/memory", method: "GET", path: "/memory"},
	{name: "unsupported/tools", method: "GET", path: "/tools"},
	{name: "unsupported/train", method: "POST", path: "/_train/kmeans", body: `{"parameters":{"centroids":2},"input_query":{"query":{"match_all":{}}},"input_index":["x"]}`},
	{name: "unsupported/models-meta", method: "POST", path: "/models/meta", body: `{"name":"x","function_name":"TEXT_EMBEDDING"}`},
	{name: "unsupported/upload", method: "POST", path: "/models/_upload", body: `{"name":"x"}`},
	{name: "controller/get-none", method: "GET", path: "/controllers/{{model2}}"},
	{name: "unsupported/agent-execute", method: "POST", path: "/agents/" + unknownID + "/_execute", body: `{"parameters":{}}`},
	{name: "unknown/path", method: "GET", path: "/nothing-here"},

	// ML Commons' settings, set as a user of the cluster does (the value the
	// genuine node already has).
	{name: "settings/trusted-endpoints", method: "PUT", path: "/_cluster/settings", root: true,
		body: `{"persistent":{"plugins.ml_commons.trusted_connector_endpoints_regex":["{{trusted}}"]}}`},
}
