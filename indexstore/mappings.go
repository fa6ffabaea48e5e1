package indexstore

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// schemaVersion is written into every mapping's _meta; raise it with any
// mapping change.
const schemaVersion = 5

func text() map[string]any {
	return map[string]any{"type": "text", "fields": map[string]any{"keyword": map[string]any{"type": "keyword", "ignore_above": 256}}}
}
func keyword() map[string]any { return map[string]any{"type": "keyword"} }
func date() map[string]any {
	return map[string]any{"type": "date", "format": "strict_date_time||epoch_millis"}
}
func flat() map[string]any    { return map[string]any{"type": "flat_object"} }
func boolean() map[string]any { return map[string]any{"type": "boolean"} }
func integer() map[string]any { return map[string]any{"type": "integer"} }
func long() map[string]any    { return map[string]any{"type": "long"} }

// opaque is stored in _source only: not searchable, not aggregatable, no
// doc values, so its content can leave the index through _source alone —
// which the API layer filters.
func opaque() map[string]any { return map[string]any{"type": "object", "enabled": false} }

func owner() map[string]any {
	return map[string]any{"properties": map[string]any{
		"name": text(), "backend_roles": text(), "roles": text(),
	}}
}

func connectorProperties() map[string]any {
	return map[string]any{
		"name": text(), "version": keyword(), "description": text(), "protocol": keyword(),
		"parameters": flat(), "credential": opaque(), "client_config": flat(), "actions": flat(),
		"owner": owner(), "access": keyword(), "backend_roles": text(),
		"created_time": date(), "last_updated_time": date(),
	}
}

// mappings are strict: a field the code does not know is a bug, not data.
func mappings(c Collection) map[string]any {
	var props map[string]any
	switch c {
	case Connectors:
		props = connectorProperties()
	case Models:
		props = map[string]any{
			"name": text(), "model_group_id": keyword(), "algorithm": keyword(), "model_version": keyword(),
			"description": text(), "model_state": keyword(), "is_hidden": boolean(), "is_enabled": boolean(),
			"is_controller_enabled": boolean(),
			// Dashboards queries connector_id.keyword (ML Commons leaves the field
			// to dynamic mapping, which makes it text + keyword).
			"connector_id": text(),
			"connector":    map[string]any{"properties": connectorProperties()},
			"rate_limiter": flat(), "deploy_setting": flat(), "interface": flat(), "guardrails": opaque(),
			"model_config": opaque(), "chunk_number": map[string]any{"type": "long"}, "total_chunks": map[string]any{"type": "long"},
			"planning_worker_node_count": integer(), "current_worker_node_count": integer(),
			"planning_worker_nodes": keyword(), "deploy_to_all_nodes": boolean(),
			"owner": owner(), "created_time": date(), "last_updated_time": date(),
			"last_registered_time": date(), "last_deployed_time": date(), "last_undeployed_time": date(),
			"auto_redeploy_retry_times": integer(), "model_id": keyword(),
		}
	case ModelGroups:
		props = map[string]any{
			"name": text(), "description": text(), "latest_version": integer(), "access": keyword(),
			"backend_roles": text(), "owner": owner(), "created_time": date(), "last_updated_time": date(),
		}
	case Tasks:
		props = map[string]any{
			"model_id": keyword(), "task_type": keyword(), "function_name": keyword(), "state": keyword(),
			"input_type": keyword(), "progress": map[string]any{"type": "float"}, "output_index": keyword(),
			"worker_node": keyword(), "create_time": date(), "last_update_time": date(), "error": text(),
			"is_async": boolean(),
			// Whatever a provider returns, nested and of any type.
			"remote_job": flat(),
			"owner":      owner(),
			// The sidecar's own bookkeeping of batch jobs (see mlcommons).
			"batch": map[string]any{"properties": map[string]any{
				"provider": keyword(), "connector": opaque(), "client_key": map[string]any{"type": "keyword", "index": false},
				"next_poll": map[string]any{"type": "long"}, "lease_owner": keyword(), "lease_until": map[string]any{"type": "long"},
				"poll_failures": integer(), "model_group_id": keyword(), "submission": opaque(), "ingest": opaque(),
			}},
			"ingest_counts": map[string]any{"properties": map[string]any{
				"total": long(), "indexed": long(), "failed": long(),
			}},
			"ingest_failures": opaque(),
			"ingest_task_id":  keyword(),
			// The sidecar's own bookkeeping of ingestions (see ingest).
			"ingest": map[string]any{"properties": map[string]any{
				"request": opaque(), "credential": opaque(), "base_url": map[string]any{"type": "keyword", "index": false},
				"caller":      map[string]any{"type": "keyword", "index": false, "doc_values": false},
				"error_files": opaque(), "missing_outputs": opaque(), "provider": map[string]any{"type": "keyword", "index": false},
				"dlq": opaque(), "checkpoint": opaque(), "next_run": long(), "lease_owner": keyword(),
				"lease_until": long(), "attempts": integer(),
			}},
		}
	case BatchFailures:
		props = map[string]any{
			"task_id": keyword(), "source": integer(), "source_name": keyword(), "line": long(),
			"reason": text(), "status": integer(), "record": map[string]any{"type": "text", "index": false},
			"time": date(),
		}
	case Controllers:
		// User names are keys and may hold dots or anything else; nothing
		// searches them, so they stay in _source only.
		props = map[string]any{"user_rate_limiter": opaque()}
	case Config:
		props = map[string]any{
			"master_key": map[string]any{"type": "keyword", "index": false, "doc_values": false},
			"key_id":     keyword(), "create_time": date(),
			// The ML Commons cluster settings (MLSettings): setting names
			// hold dots, so they stay in _source only.
			"persistent": opaque(), "transient": opaque(), "update_time": date(),
		}
	}
	return map[string]any{"dynamic": "strict", "_meta": map[string]any{"schema_version": schemaVersion}, "properties": props}
}

// EnsureIndices creates every index the sidecar needs, or brings an existing
// one's mapping up to date (mapping changes are additive only). Safe to run
// from several replicas at once.
func (s *Store) EnsureIndices(ctx context.Context) error {
	for _, c := range collections() {
		body := map[string]any{
			"settings": map[string]any{"index": map[string]any{
				"hidden": true, "number_of_shards": 1, "auto_expand_replicas": "0-1",
			}},
			"mappings": mappings(c),
		}
		err := s.do(ctx, http.MethodPut, "/"+s.Index(c), nil, body, nil)
		var se *StatusError
		if errors.As(err, &se) && se.Type == "resource_already_exists_exception" {
			err = s.do(ctx, http.MethodPut, "/"+s.Index(c)+"/_mapping", nil, mappings(c), nil)
		}
		if err != nil {
			return fmt.Errorf("index %s: %w", s.Index(c), err)
		}
	}
	return nil
}
