package process

import (
	"github.com/mlsidecar/mlsidecar/mlcommons/template"
)

// gsonJSON writes v as ML Commons 2.19's Gson instance does: compact,
// HTML-safe string escaping, object keys in sorted order (the builders in
// pre.go use keys whose sorted order is the order Gson writes).
func gsonJSON(v any) string { return template.GsonJSON(v) }

// escapeParameter is ConnectorUtils.escapeRemoteInferenceInputData for one
// value: JSON objects and arrays stay as they are, anything else is escaped
// with Commons Text escapeJson.
func escapeParameter(s string) string {
	if template.IsJSON(s) {
		return s
	}
	return template.EscapeJSON(s)
}
