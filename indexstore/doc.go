// Package indexstore keeps mlsidecar's state in hidden OpenSearch indices. It
// is the only package that talks to OpenSearch through opensearch-go.
package indexstore
