package bedrock

import (
	"context"
	"encoding/json"
	"io"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrock"
	bedrocktypes "github.com/aws/aws-sdk-go-v2/service/bedrock/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"

	"github.com/mlsidecar/mlsidecar/e2e/s3server"
)

func invocationJob(name, in, out string) *bedrock.CreateModelInvocationJobInput {
	job := s3Job(name, "")
	job.InputDataConfig = &bedrocktypes.ModelInvocationJobInputDataConfigMemberS3InputDataConfig{
		Value: bedrocktypes.ModelInvocationJobS3InputDataConfig{S3Uri: aws.String(in), S3InputFormat: bedrocktypes.S3InputFormatJsonl},
	}
	job.OutputDataConfig = &bedrocktypes.ModelInvocationJobOutputDataConfigMemberS3OutputDataConfig{
		Value: bedrocktypes.ModelInvocationJobS3OutputDataConfig{S3Uri: aws.String(out)},
	}
	return job
}

func putObject(t *testing.T, c *s3.Client, bucket, key, body string) {
	t.Helper()
	if _, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body)}); err != nil {
		t.Fatalf("put s3://%s/%s: %v", bucket, key, err)
	}
}

func listKeys(t *testing.T, c *s3.Client, bucket, prefix string) []string {
	t.Helper()
	out, err := c.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	slices.Sort(keys)
	return keys
}

// readLines reads a JSONL object, each line decoded.
func readLines(t *testing.T, c *s3.Client, bucket, key string) []map[string]any {
	t.Helper()
	out, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get s3://%s/%s: %v", bucket, key, err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	var lines []map[string]any
	for _, line := range strings.Split(strings.TrimSuffix(string(body), "\n"), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("s3://%s/%s: line %q: %v", bucket, key, line, err)
		}
		lines = append(lines, v)
	}
	return lines
}

// asJSON is v as it reads back from JSON, for comparing with decoded lines.
func asJSON(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// waitStatus polls GetModelInvocationJob until the job has status want.
func waitStatus(t *testing.T, c *bedrock.Client, arn string, want bedrocktypes.ModelInvocationJobStatus) *bedrock.GetModelInvocationJobOutput {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := c.GetModelInvocationJob(context.Background(), &bedrock.GetModelInvocationJobInput{JobIdentifier: aws.String(arn)})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status == want {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: status %s (%s), want %s", arn, got.Status, aws.ToString(got.Message), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestInvocationJobsInS3 runs batch inference jobs against a real S3
// server: the records uploaded with the S3 SDK, the jobs driven with the
// Bedrock SDK, the .out files and the manifest listed and read back from S3.
func TestInvocationJobsInS3(t *testing.T) {
	store := s3server.StartForTest(t).Client()
	ctx := context.Background()
	for _, b := range []string{"batch-in", "batch-out"} {
		if _, err := store.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	putObject(t, store, "batch-in", "batch/records.jsonl", strings.Join([]string{
		`{"recordId":"REC0000001","modelInput":{"inputText":"hello world"}}`,
		`{"recordId":"REC0000002","modelInput":{"inputText":"x","dimensions":7}}`,
		`{"modelInput":{"inputText":"no id"}}`,
	}, "\n")+"\n")
	putObject(t, store, "batch-in", "batch/more.jsonl", `{"recordId":"REC0000003","modelInput":{"inputText":"good morning","embeddingTypes":["float"]}}`+"\n")
	putObject(t, store, "batch-in", "batch/notes.txt", "not input")
	putObject(t, store, "batch-in", "batch/sub/deeper.jsonl", `{"recordId":"REC0000009","modelInput":{"inputText":"not in the folder"}}`+"\n")
	putObject(t, store, "batch-in", "broken/records.jsonl", `{"recordId":"REC0000001","modelInput":{"inputText":"a"}}`+"\nnot json\n")

	s := start(t, Options{S3: store})
	c := controlClient(s, creds)
	create := func(t *testing.T, name, in, out string) string {
		t.Helper()
		created, err := c.CreateModelInvocationJob(ctx, invocationJob(name, in, out))
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(created.JobArn)
	}
	folderJob := create(t, "embed-folder", "s3://batch-in/batch/", "s3://batch-out/results/")
	fileJob := create(t, "embed-file", "s3://batch-in/batch/more.jsonl", "s3://batch-out/results")
	brokenJob := create(t, "embed-broken", "s3://batch-in/broken/", "s3://batch-out/results/")
	emptyJob := create(t, "embed-empty", "s3://batch-in/nothing/", "s3://batch-out/results/")
	stoppedJob := create(t, "embed-stopped", "s3://batch-in/batch/", "s3://batch-out/results/")
	if _, err := c.StopModelInvocationJob(ctx, &bedrock.StopModelInvocationJobInput{JobIdentifier: aws.String(stoppedJob)}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, folderJob, bedrocktypes.ModelInvocationJobStatusSubmitted)
	if got := listKeys(t, store, "batch-out", ""); len(got) != 0 {
		t.Errorf("output before the job ran: got %v, want none", got)
	}

	s.Advance(11 * time.Minute)

	t.Run("folder", func(t *testing.T) {
		got := waitStatus(t, c, folderJob, bedrocktypes.ModelInvocationJobStatusCompleted)
		counts := []int64{aws.ToInt64(got.TotalRecordCount), aws.ToInt64(got.ProcessedRecordCount), aws.ToInt64(got.SuccessRecordCount), aws.ToInt64(got.ErrorRecordCount)}
		if diff := cmp.Diff([]int64{4, 4, 3, 1}, counts); diff != "" {
			t.Errorf("total, processed, success, error record counts (-want +got):\n%s", diff)
		}
		// <outputS3Uri>/<jobId>/<input file name>.out, plus the manifest.
		want := []string{"results/job000000001/manifest.json.out", "results/job000000001/more.jsonl.out", "results/job000000001/records.jsonl.out"}
		if diff := cmp.Diff(want, listKeys(t, store, "batch-out", "results/job000000001/")); diff != "" {
			t.Fatalf("output objects (-want +got):\n%s", diff)
		}

		lines := readLines(t, store, "batch-out", "results/job000000001/records.jsonl.out")
		if len(lines) != 3 {
			t.Fatalf("records.jsonl.out: got %d lines, want 3", len(lines))
		}
		assigned, _ := lines[2]["recordId"].(string)
		if !regexp.MustCompile(`^[a-z0-9]{11}$`).MatchString(assigned) {
			t.Errorf("assigned recordId: got %q, want 11 alphanumerics", assigned)
		}
		wantLines := asJSON(t, []any{
			map[string]any{"recordId": "REC0000001", "modelInput": map[string]any{"inputText": "hello world"},
				"modelOutput": map[string]any{"embedding": Embedding("hello world", 8), "inputTextTokenCount": 2}},
			map[string]any{"recordId": "REC0000002", "modelInput": map[string]any{"inputText": "x", "dimensions": 7},
				"error": map[string]any{"errorCode": 400, "errorMessage": "Malformed input request: #/dimensions: 7 is not a valid enum value, please reformat your input and try again."}},
			map[string]any{"recordId": assigned, "modelInput": map[string]any{"inputText": "no id"},
				"modelOutput": map[string]any{"embedding": Embedding("no id", 8), "inputTextTokenCount": 2}},
		})
		if diff := cmp.Diff(wantLines, asJSON(t, lines)); diff != "" {
			t.Errorf("records.jsonl.out (-want +got):\n%s", diff)
		}

		wantLines = asJSON(t, []any{map[string]any{"recordId": "REC0000003", "modelInput": map[string]any{"inputText": "good morning", "embeddingTypes": []string{"float"}},
			"modelOutput": map[string]any{"embedding": Embedding("good morning", 8), "embeddingsByType": map[string]any{"float": Embedding("good morning", 8)}, "inputTextTokenCount": 2}}})
		if diff := cmp.Diff(wantLines, asJSON(t, readLines(t, store, "batch-out", "results/job000000001/more.jsonl.out"))); diff != "" {
			t.Errorf("more.jsonl.out (-want +got):\n%s", diff)
		}

		wantManifest := asJSON(t, []any{map[string]any{"totalRecordCount": 4, "processedRecordCount": 4, "successRecordCount": 3, "errorRecordCount": 1, "inputTokenCount": 6, "outputTokenCount": 0}})
		if diff := cmp.Diff(wantManifest, asJSON(t, readLines(t, store, "batch-out", "results/job000000001/manifest.json.out"))); diff != "" {
			t.Errorf("manifest.json.out (-want +got):\n%s", diff)
		}
	})

	t.Run("one file", func(t *testing.T) {
		got := waitStatus(t, c, fileJob, bedrocktypes.ModelInvocationJobStatusCompleted)
		if aws.ToInt64(got.SuccessRecordCount) != 1 || aws.ToInt64(got.ErrorRecordCount) != 0 {
			t.Errorf("counts: got %d success %d error, want 1 and 0", aws.ToInt64(got.SuccessRecordCount), aws.ToInt64(got.ErrorRecordCount))
		}
		want := []string{"results/job000000002/manifest.json.out", "results/job000000002/more.jsonl.out"}
		if diff := cmp.Diff(want, listKeys(t, store, "batch-out", "results/job000000002/")); diff != "" {
			t.Errorf("output objects (-want +got):\n%s", diff)
		}
	})

	t.Run("malformed record fails the job", func(t *testing.T) {
		got := waitStatus(t, c, brokenJob, bedrocktypes.ModelInvocationJobStatusFailed)
		if msg := aws.ToString(got.Message); !strings.Contains(msg, "s3://batch-in/broken/records.jsonl") || !strings.Contains(msg, "line 2") {
			t.Errorf("message: got %q, want one naming the file and line 2", msg)
		}
		if got := listKeys(t, store, "batch-out", "results/job000000003/"); len(got) != 0 {
			t.Errorf("output of a failed job: got %v, want none", got)
		}
	})

	t.Run("no input files", func(t *testing.T) {
		got := waitStatus(t, c, emptyJob, bedrocktypes.ModelInvocationJobStatusFailed)
		if msg := aws.ToString(got.Message); !strings.Contains(msg, "s3://batch-in/nothing/") {
			t.Errorf("message: got %q", msg)
		}
	})

	t.Run("stopped", func(t *testing.T) {
		waitStatus(t, c, stoppedJob, bedrocktypes.ModelInvocationJobStatusStopped)
		if got := listKeys(t, store, "batch-out", "results/job000000005/"); len(got) != 0 {
			t.Errorf("output of a stopped job: got %v, want none", got)
		}
	})
}
