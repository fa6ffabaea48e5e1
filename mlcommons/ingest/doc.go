// Package ingest is the core of batch ingestion: ML Commons'
// _batch_ingestion request and its validation, the mapping of one line of a
// provider's output file to a bulk item (field_map JSONPaths, ingest_fields,
// index or update-with-upsert), line readers of OpenAI files and S3 objects
// that can start at a byte offset, a writer on opensearch-go's BulkIndexer
// that answers for every document, and the progress rule that decides what
// a checkpoint may claim.
//
// On top of them, Service is the lifecycle of BATCH_INGEST tasks, routes
// aside: Submit checks and stores a task (FromJob, the ingestion of a batch
// job's results), and every replica's Worker leases due tasks and runs
// them. A run reads lines from a Source, maps them with a Mapper,
// registers each line with a Tracker, writes the documents with a Writer
// and stores Tracker.Progress in its task as a checkpoint that renews its
// lease. Because document ids are fixed by the line (mapped, or derived from
// the task, the source and the line number), replaying lines after a crash
// rewrites the same documents instead of adding new ones.
package ingest
