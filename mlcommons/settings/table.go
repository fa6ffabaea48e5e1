package settings

// The ML Commons 2.19 settings (MLCommonsSettings.java and the two it
// borrows, memory_feature_enabled and rag_pipeline_feature_enabled), every
// one of them, and what each does here:
//
//   - applied: takes effect here, within seconds, on every replica;
//   - ignored: acknowledged, stored and shown, without effect (placement,
//     memory and local-model knobs, features mlsidecar does not serve);
//   - remoteOnly: a local-model switch; the value that would turn local
//     models on is refused, any other is stored and ignored;
//   - static, final: not dynamically updateable, refused as the cluster
//     refuses such settings.
var table = []setting{
	// Applied.
	{key: "trusted_connector_endpoints_regex", kind: kindList, use: applied, flag: "trusted-endpoint-regex",
		effect: "the regexes every connector URL must fully match"},
	{key: "connector.private_ip_enabled", kind: kindBool, use: applied, flag: "allow-private-endpoints",
		effect: "true lets connectors reach private, loopback and link-local addresses"},
	{key: "model_access_control_enabled", kind: kindBool, use: applied, flag: "model-access-control",
		effect: "resource access control of model groups and their models"},
	{key: "connector_access_control_enabled", kind: kindBool, use: applied, flag: "connector-access-control",
		effect: "resource access control of connectors"},
	{key: "remote_inference.enabled", kind: kindBool, use: applied, def: "true",
		effect: "false refuses connector create and update, model register, deploy and predict"},
	{key: "offline_batch_inference_enabled", kind: kindBool, use: applied, def: "true",
		effect: "false refuses _batch_predict and the get and cancel of batch tasks"},
	{key: "max_batch_inference_tasks", kind: kindInt, lo: 0, hi: 10000, use: applied, flag: "max-batch-inference-tasks",
		effect: "most open batch prediction tasks; counted for real"},
	{key: "remote_job.status_field", kind: kindList, use: applied, flag: "batch-status-field",
		effect: "remote_job fields holding a provider's job status"},
	{key: "remote_job.status_regex.cancelling", kind: kindString, use: applied, flag: "batch-status-regex-cancelling",
		effect: "status regex meaning CANCELLING"},
	{key: "remote_job.status_regex.cancelled", kind: kindString, use: applied, flag: "batch-status-regex-cancelled",
		effect: "status regex meaning CANCELLED"},
	{key: "remote_job.status_regex.completed", kind: kindString, use: applied, flag: "batch-status-regex-completed",
		effect: "status regex meaning COMPLETED"},
	{key: "remote_job.status_regex.expired", kind: kindString, use: applied, flag: "batch-status-regex-expired",
		effect: "status regex meaning EXPIRED"},
	{key: "remote_job.status_regex.failed", kind: kindString, use: applied, flag: "batch-status-regex-failed",
		effect: "status regex meaning FAILED"},
	// Read by batch ingestion.
	{key: "offline_batch_ingestion_enabled", kind: kindBool, use: applied, def: "true",
		effect: "false refuses _batch_ingestion"},
	{key: "max_batch_ingestion_tasks", kind: kindInt, lo: 0, hi: 10000, use: applied, def: "100",
		effect: "most open batch ingestion tasks"},
	{key: "batch_ingestion_bulk_size", kind: kindInt, lo: 100, hi: 100000, use: applied, def: "500",
		effect: "lines per bulk request of a batch ingestion"},
	// Read by the controllers (per-user rate limits).
	{key: "controller_enabled", kind: kindBool, use: applied, def: "true",
		effect: "false refuses the controller APIs"},

	// Acknowledged and ignored: placement, memory and task knobs of ML nodes.
	{key: "only_run_on_ml_node", kind: kindBool, def: "true"},
	{key: "task_dispatch_policy", kind: kindString, def: "round_robin"},
	{key: "task_dispatcher.eligible_node_role.remote_model", kind: kindList, def: []string{"data", "ml"}},
	{key: "task_dispatcher.eligible_node_role.local_model", kind: kindList, def: []string{"data", "ml"}},
	{key: "exclude_nodes._name", kind: kindString, def: ""},
	{key: "max_model_on_node", kind: kindInt, lo: 0, hi: 10000, def: "10"},
	{key: "max_register_model_tasks_per_node", kind: kindInt, lo: 0, hi: 10, def: "10"},
	{key: "max_deploy_model_tasks_per_node", kind: kindInt, lo: 0, hi: 10, def: "10"},
	{key: "max_ml_task_per_node", kind: kindInt, lo: 0, hi: 10000, def: "10"},
	{key: "ml_task_timeout_in_seconds", kind: kindInt, lo: 1, hi: 86400, def: "600"},
	{key: "sync_up_job_interval_in_seconds", kind: kindInt, lo: 0, hi: 86400, def: "10"},
	{key: "monitoring_request_count", kind: kindLong, lo: 0, hi: 10_000_000, def: "100"},
	{key: "native_memory_threshold", kind: kindInt, lo: 0, hi: 100, def: "90"},
	{key: "jvm_heap_memory_threshold", kind: kindInt, lo: 0, hi: 100, def: "85"},
	{key: "disk_free_space_threshold", kind: kindBytes, def: "5gb"},
	{key: "allow_custom_deployment_plan", kind: kindBool, def: "false"},
	{key: "model_auto_deploy.enable", kind: kindBool, def: "true",
		effect: "ignored: a remote model is always deployed on first use"},
	{key: "model_auto_redeploy.enable", kind: kindBool, def: "true"},
	{key: "model_auto_redeploy.lifetime_retry_times", kind: kindInt, lo: minInt32, hi: maxInt32, def: "3"},
	{key: "model_auto_redeploy_success_ratio", kind: kindFloat, lo: 0, hi: 1, def: "0.8"},
	{key: "trusted_url_regex", kind: kindString, def: `^(https?|ftp|file)://[-a-zA-Z0-9+&@#/%?=~_|!:,.;]*[-a-zA-Z0-9+&@#/%=~_|]`,
		effect: "ignored: model files are never downloaded"},
	// Features mlsidecar does not serve.
	{key: "memory_feature_enabled", kind: kindBool, def: "true"},
	{key: "rag_pipeline_feature_enabled", kind: kindBool, def: "true"},
	{key: "agent_framework_enabled", kind: kindBool, def: "true"},
	{key: "safe_delete_model", kind: kindBool, def: "false"},

	// Local-model switches: "true" would turn local models on.
	{key: "local_model.enabled", kind: kindBool, use: remoteOnly, def: "false"},
	{key: "allow_registering_model_via_url", kind: kindBool, use: remoteOnly, def: "false"},
	{key: "allow_registering_model_via_local_file", kind: kindBool, use: remoteOnly, def: "false"},
	{key: "enable_inhouse_python_model", kind: kindBool, use: remoteOnly, def: "false"},

	// Node settings the cluster refuses to update.
	{key: "multi_tenancy_enabled", kind: kindBool, use: static, def: "false"},
	{key: "remote_metadata_type", kind: kindString, use: final, def: ""},
	{key: "remote_metadata_endpoint", kind: kindString, use: final, def: ""},
	{key: "remote_metadata_region", kind: kindString, use: final, def: ""},
	{key: "remote_metadata_service_name", kind: kindString, use: final, def: ""},
}

const (
	minInt32 = -1 << 31
	maxInt32 = 1<<31 - 1
)

// use is what a setting does here.
type use int

const (
	ignored use = iota
	applied
	remoteOnly
	static
	final
)

// kind is a setting's type, as OpenSearch parses its value.
type kind int

const (
	kindBool kind = iota
	kindInt
	kindLong
	kindFloat
	kindString
	kindList
	kindBytes
)

// setting is one ML Commons setting.
type setting struct {
	key  string // after "plugins.ml_commons."
	kind kind
	use  use
	// def is the default when no flag gives one: ML Commons' (a string,
	// or a list for list settings), or what holds here for the local-model
	// switches.
	def any
	// flag names the mlsidecar flag whose value is the default.
	flag string
	// lo and hi bound a number, as ML Commons' setting does.
	lo, hi float64
	// effect says what the setting does here (docs).
	effect string
}

// byKey finds the settings by full key.
var byKey = func() map[string]*setting {
	m := make(map[string]*setting, len(table))
	for i := range table {
		m[Prefix+table[i].key] = &table[i]
	}
	return m
}()
