package indexstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/opensearch-project/opensearch-go/v4"
	"github.com/opensearch-project/opensearch-go/v4/opensearchapi"
)

// openIngest matches the ingestions still to finish (ML Commons counts
// CREATED and RUNNING BATCH_INGEST tasks against its limit).
func openIngest() map[string]any {
	return filter(term("task_type", TaskBatchIngest), terms("state", []string{TaskCreated, TaskRunning}))
}

// CountOpenIngestTasks counts the ingestions still to finish, as of the
// last refresh of the tasks index.
func (s *Store) CountOpenIngestTasks(ctx context.Context) (int64, error) {
	return s.count(ctx, Tasks, openIngest())
}

// ScanDueIngestTasks visits every ingestion due to run at now (next_run
// passed) whose lease is free or expired.
func (s *Store) ScanDueIngestTasks(ctx context.Context, now time.Time, pageSize int, visit func([]Hit[Task]) error) error {
	ms := now.UnixMilli()
	q := openIngest()
	b := q["bool"].(map[string]any)
	b["filter"] = append(b["filter"].([]any), map[string]any{"range": map[string]any{"ingest.next_run": map[string]any{"lte": ms}}})
	b["must_not"] = []any{map[string]any{"range": map[string]any{"ingest.lease_until": map[string]any{"gt": ms}}}}
	return scan(ctx, s, Tasks, q, pageSize, visit)
}

// PutIngestFailures writes failure records under ids fixed by their task,
// source and line, so a record written again replaces itself.
func (s *Store) PutIngestFailures(ctx context.Context, fs []IngestFailure) error {
	if len(fs) == 0 {
		return nil
	}
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	for _, f := range fs {
		meta := map[string]any{"index": map[string]any{"_index": s.Index(BatchFailures), "_id": FailureID(f.TaskID, f.Source, f.Line)}}
		if err := enc.Encode(meta); err != nil {
			return err
		}
		if err := enc.Encode(f); err != nil {
			return err
		}
	}
	var res struct {
		Errors bool `json:"errors"`
		Items  []map[string]struct {
			Status int `json:"status"`
			Error  *struct {
				Type   string `json:"type"`
				Reason string `json:"reason"`
			} `json:"error"`
		} `json:"items"`
	}
	if err := s.do(ctx, http.MethodPost, "/_bulk", nil, ndjson(body.Bytes()), &res); err != nil {
		return err
	}
	if res.Errors {
		for _, it := range res.Items {
			for _, r := range it {
				if r.Error != nil {
					return &StatusError{Status: r.Status, Type: r.Error.Type, Reason: r.Error.Reason}
				}
			}
		}
	}
	return nil
}

// ScanIngestFailures visits the failure records of a task in the order of
// their source and line, the ones just written included.
func (s *Store) ScanIngestFailures(ctx context.Context, taskID string, pageSize int, visit func([]IngestFailure) error) error {
	if err := s.do(ctx, http.MethodPost, "/"+s.Index(BatchFailures)+"/_refresh", nil, nil, nil); err != nil {
		return err
	}
	sort := []any{map[string]any{"source": "asc"}, map[string]any{"line": "asc"}}
	return scanSorted(ctx, s, BatchFailures, term("task_id", taskID), sort, pageSize, func(hits []Hit[IngestFailure]) error {
		fs := make([]IngestFailure, len(hits))
		for i, h := range hits {
			fs[i] = *h.Doc
		}
		return visit(fs)
	})
}

// FailureID is the id of the failure record of a task's source and line.
func FailureID(taskID string, source int, line int64) string {
	return fmt.Sprintf("%s_%d_%d", taskID, source, line)
}

// ndjson is a request body sent as it is (application/x-ndjson).
type ndjson []byte

// CallerClient is a client of the cluster that carries header (the
// caller's Authorization and Cookie) and none of the sidecar's
// credentials, not even its client certificate: what it writes, it writes
// with the caller's rights.
func (s *Store) CallerClient(header http.Header) (*opensearchapi.Client, error) {
	noDiscovery := false
	return opensearchapi.NewClient(opensearchapi.Config{Client: opensearch.Config{
		Addresses:             []string{s.upstream},
		Header:                header.Clone(),
		Transport:             s.callerTransport,
		MaxRetries:            3,
		RetryBackoff:          retryBackoff,
		DiscoverNodesOnStart:  &noDiscovery,
		HealthCheckMaxRetries: -1,
	}})
}
