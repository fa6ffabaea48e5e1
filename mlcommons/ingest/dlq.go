package ingest

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

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
