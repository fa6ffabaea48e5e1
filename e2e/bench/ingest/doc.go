// Package ingest is `make bench-ingest`: batch ingestion of an embedding
// job's output file through mlsidecar's _batch_ingestion, next to
// opensearch-go's BulkIndexer writing the same documents straight to the
// node (the ceiling), from an OpenAI file, from S3, and with the replica
// doing the work killed halfway. It prints docs/s, the ratio to the ceiling
// and mlsidecar's peak RSS, and asserts only correctness (every line is one
// document, none twice).
//
// Its tests carry the bench build tag, so `make test` never runs them.
package ingest
