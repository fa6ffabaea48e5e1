// Package e2e holds mlsidecar's black-box tests: the real mlsidecar binary in
// front of a real OpenSearch node (e2e/opensearch), driven over HTTP.
package e2e
