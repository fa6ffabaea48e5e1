package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/mlsidecar/mlsidecar/indexstore"
)

// DeadLetter writes ML Commons 2.19's summary of a batch job that failed or
// became unreachable to the job's dead-letter queue (remote_job.dlq, an S3
// bucket and region), with the credential of the job's connector: the
// object BatchJobFailure_<job name> holding the job as Java prints a map,
// or, for an unreachable job, why it could not be reached. A job without a
// dlq writes nothing. The key is fixed by the job, so writing it again
// replaces it.
func (s *Service) DeadLetter(ctx context.Context, t *indexstore.Task, unreachable string) error {
	dlq, _ := t.RemoteJob["dlq"].(map[string]any)
	bucket, _ := dlq["bucket"].(string)
	region, _ := dlq["region"].(string)
	if bucket == "" || region == "" || t.Batch == nil || t.Batch.Connector == nil {
		return nil
	}
	cred, err := s.o.Keys().DecryptMap(t.Batch.Connector.Credential)
	if err != nil {
		return err
	}
	name := jobName(t.RemoteJob)
	body := javaString(t.RemoteJob)
	if unreachable != "" {
		body = fmt.Sprintf("Unable to reach the Job: %s. Error Message: %s", name, unreachable)
	}
	var o S3Options
	o.SetCredential(cred)
	o.Region = region
	_, err = s.s3Client(o).PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String("BatchJobFailure_" + name),
		Body: strings.NewReader(body), ContentType: aws.String("text/plain; charset=utf-8"),
	})
	if err != nil {
		return (&s3Object{uri: "s3://" + bucket + "/BatchJobFailure_" + name}).describe(err)
	}
	return nil
}

// deadLetterFailures writes every failed record of an ingestion that loaded
// a job's results to the job's dead-letter queue, as one JSON line each in
// source and line order: BatchIngestionFailures_<job name>.jsonl. ML
// Commons has no such object; it is the per-record half of its DLQ. The
// key is fixed by the job, so writing it again replaces it.
func (s *Service) deadLetterFailures(ctx context.Context, taskID string, dlq *indexstore.IngestDLQ, cred map[string]string) error {
	var o S3Options
	o.SetCredential(cred)
	o.Region = dlq.Region
	key := "BatchIngestionFailures_" + dlq.Name + ".jsonl"
	up := &multipartUpload{client: s.s3Client(o), bucket: dlq.Bucket, key: key}
	err := s.o.Store.ScanIngestFailures(ctx, taskID, 500, func(fs []indexstore.IngestFailure) error {
		for _, f := range fs {
			f.TaskID, f.Time = "", 0
			line, err := json.Marshal(f)
			if err != nil {
				return err
			}
			if err := up.write(ctx, append(line, '\n')); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = up.close(ctx)
	} else {
		up.abort()
	}
	if err != nil {
		return (&s3Object{uri: "s3://" + dlq.Bucket + "/" + key}).describe(err)
	}
	return nil
}

// multipartUpload writes an object of unknown size in parts of partBytes
// held in memory, one at a time; an object smaller than one part is one
// PutObject.
type multipartUpload struct {
	client      *s3.Client
	bucket, key string
	buf         bytes.Buffer
	id          *string
	parts       []types.CompletedPart
}

// partBytes is the size of each part but the last (S3's minimum is 5 MiB).
const partBytes = 8 << 20

func (u *multipartUpload) write(ctx context.Context, p []byte) error {
	u.buf.Write(p)
	if u.buf.Len() < partBytes {
		return nil
	}
	return u.flush(ctx)
}

func (u *multipartUpload) flush(ctx context.Context) error {
	if u.id == nil {
		out, err := u.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &u.bucket, Key: &u.key})
		if err != nil {
			return err
		}
		u.id = out.UploadId
	}
	n := int32(len(u.parts) + 1)
	out, err := u.client.UploadPart(ctx, &s3.UploadPartInput{Bucket: &u.bucket, Key: &u.key, UploadId: u.id,
		PartNumber: &n, Body: bytes.NewReader(u.buf.Bytes())})
	if err != nil {
		return err
	}
	u.parts = append(u.parts, types.CompletedPart{ETag: out.ETag, PartNumber: &n})
	u.buf.Reset()
	return nil
}

func (u *multipartUpload) close(ctx context.Context) error {
	if u.id == nil {
		_, err := u.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &u.bucket, Key: &u.key,
			Body: bytes.NewReader(u.buf.Bytes()), ContentType: aws.String("application/x-ndjson")})
		return err
	}
	if u.buf.Len() > 0 {
		if err := u.flush(ctx); err != nil {
			u.abort()
			return err
		}
	}
	_, err := u.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &u.bucket, Key: &u.key,
		UploadId: u.id, MultipartUpload: &types.CompletedMultipartUpload{Parts: u.parts}})
	if err != nil {
		u.abort()
	}
	return err
}

// abort gives up a started upload, on a context of its own: the parts
// would otherwise be kept, and billed, by the store.
func (u *multipartUpload) abort() {
	if u.id == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _ = u.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &u.bucket, Key: &u.key, UploadId: u.id})
}

// jobName is what ML Commons names a job's DLQ object by: TransformJobName
// or job_name; the provider's job id when there is neither.
func jobName(job map[string]any) string {
	for _, k := range []string{"TransformJobName", "job_name", "jobName", "id", "job_id"} {
		if v, ok := job[k].(string); ok && v != "" {
			return v
		}
	}
	if arn, ok := job["jobArn"].(string); ok && arn != "" {
		return arn[strings.LastIndex(arn, "/")+1:]
	}
	return "unknown"
}

// javaString prints v as Java's AbstractMap.toString and List.toString do,
// keys sorted.
func javaString(v any) string {
	switch t := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + "=" + javaString(t[k])
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case []any:
		parts := make([]string, len(t))
		for i, e := range t {
			parts[i] = javaString(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case nil:
		return "null"
	}
	return fmt.Sprint(v)
}
