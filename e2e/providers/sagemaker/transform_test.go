package sagemaker

import (
	"context"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sagemaker"
	"github.com/aws/aws-sdk-go-v2/service/sagemaker/types"
	"github.com/google/go-cmp/cmp"

	"github.com/mlsidecar/mlsidecar/e2e/s3server"
)

// s3Transform is a job as the ML Commons blueprint makes it, reading from
// and writing to the given S3 locations.
func s3Transform(name string, dataType types.S3DataType, in, out string, dp *types.DataProcessing) *sagemaker.CreateTransformJobInput {
	job := transformJob(name)
	job.TransformInput.DataSource.S3DataSource = &types.TransformS3DataSource{S3DataType: dataType, S3Uri: aws.String(in)}
	job.TransformOutput = &types.TransformOutput{S3OutputPath: aws.String(out), AssembleWith: types.AssemblyTypeLine, Accept: aws.String("application/json")}
	job.DataProcessing = dp
	return job
}

var blueprintProcessing = &types.DataProcessing{InputFilter: aws.String("$.content"), JoinSource: types.JoinSourceInput, OutputFilter: aws.String("$")}

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

// readLines reads an output object and decodes each of its lines.
func readLines(t *testing.T, c *s3.Client, bucket, key string) []any {
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
	if !strings.HasSuffix(string(body), "\n") {
		t.Errorf("s3://%s/%s: got %q, want lines (AssembleWith Line)", bucket, key, body)
	}
	var lines []any
	for _, line := range strings.Split(strings.TrimSuffix(string(body), "\n"), "\n") {
		var v any
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

func vectors(texts ...string) [][]float64 {
	out := make([][]float64, len(texts))
	for i, text := range texts {
		out[i] = Embedding(text, 8)
	}
	return out
}

// waitStatus polls DescribeTransformJob until the job has status want.
func waitStatus(t *testing.T, c *sagemaker.Client, name string, want types.TransformJobStatus) *sagemaker.DescribeTransformJobOutput {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := c.DescribeTransformJob(context.Background(), &sagemaker.DescribeTransformJobInput{TransformJobName: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		if got.TransformJobStatus == want {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: status %s (%s), want %s", name, got.TransformJobStatus, aws.ToString(got.FailureReason), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTransformJobsInS3 runs transform jobs against a real S3 server: the
// input uploaded with the S3 SDK, the jobs driven with the SageMaker SDK,
// the .out objects listed and read back from S3.
func TestTransformJobsInS3(t *testing.T) {
	store := s3server.StartForTest(t).Client()
	ctx := context.Background()
	const bucket = "offlinebatch"
	if _, err := store.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	putObject(t, store, bucket, "input/part-1.jsonl", `{"id":1,"content":["hello world"]}`+"\n"+`{"id":2,"content":["good","morning"]}`+"\n")
	putObject(t, store, bucket, "input/2026/part-2.jsonl", `{"id":3,"content":"one more"}`+"\n")
	putObject(t, store, bucket, "bad/part-3.jsonl", `{"id":4,"content":["fine"]}`+"\n")
	putObject(t, store, bucket, "bad/part-4.jsonl", `{"id":5,"content":["fine"]}`+"\n"+`{"id":6,"content":42}`+"\n")
	putObject(t, store, bucket, "sagemaker_djl_batch_input.json", `{"id":7,"content":["blueprint"]}`+"\n")
	putObject(t, store, bucket, "manifests/embed.json", `[{"prefix":"s3://offlinebatch/input/"},"part-1.jsonl"]`)

	s := start(t, Options{S3: store})
	c := controlClient(s, creds)
	for _, job := range []*sagemaker.CreateTransformJobInput{
		s3Transform("embed-prefix", types.S3DataTypeS3Prefix, "s3://offlinebatch/input/", "s3://offlinebatch/output/embed-prefix", blueprintProcessing),
		s3Transform("embed-bad", types.S3DataTypeS3Prefix, "s3://offlinebatch/bad/", "s3://offlinebatch/output/embed-bad/", blueprintProcessing),
		s3Transform("embed-manifest", types.S3DataTypeManifestFile, "s3://offlinebatch/manifests/embed.json", "s3://offlinebatch/output/embed-manifest",
			&types.DataProcessing{InputFilter: aws.String("$.content")}),
		s3Transform("blueprint", types.S3DataTypeS3Prefix, "s3://offlinebatch/sagemaker_djl_batch_input.json", "s3://offlinebatch/output",
			&types.DataProcessing{InputFilter: aws.String("$.content"), JoinSource: types.JoinSourceInput, OutputFilter: aws.String("$['id','SageMakerOutput']")}),
		s3Transform("embed-stopped", types.S3DataTypeS3Prefix, "s3://offlinebatch/input/", "s3://offlinebatch/output/embed-stopped", blueprintProcessing),
	} {
		if _, err := c.CreateTransformJob(ctx, job); err != nil {
			t.Fatalf("create %s: %v", aws.ToString(job.TransformJobName), err)
		}
	}
	if _, err := c.StopTransformJob(ctx, &sagemaker.StopTransformJobInput{TransformJobName: aws.String("embed-stopped")}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, "embed-prefix", types.TransformJobStatusInProgress)
	if got := listKeys(t, store, bucket, "output/"); len(got) != 0 {
		t.Errorf("output while in progress: got %v, want none", got)
	}

	s.Advance(10 * time.Minute)

	t.Run("prefix", func(t *testing.T) {
		waitStatus(t, c, "embed-prefix", types.TransformJobStatusCompleted)
		// One .out per input object, named by its key relative to the prefix.
		want := []string{"output/embed-prefix/2026/part-2.jsonl.out", "output/embed-prefix/part-1.jsonl.out"}
		if diff := cmp.Diff(want, listKeys(t, store, bucket, "output/embed-prefix/")); diff != "" {
			t.Fatalf("output objects (-want +got):\n%s", diff)
		}
		wantLines := asJSON(t, []any{
			map[string]any{"id": 1, "content": []string{"hello world"}, "SageMakerOutput": vectors("hello world")},
			map[string]any{"id": 2, "content": []string{"good", "morning"}, "SageMakerOutput": vectors("good", "morning")},
		})
		if diff := cmp.Diff(wantLines, asJSON(t, readLines(t, store, bucket, "output/embed-prefix/part-1.jsonl.out"))); diff != "" {
			t.Errorf("part-1.jsonl.out (-want +got):\n%s", diff)
		}
		wantLines = asJSON(t, []any{map[string]any{"id": 3, "content": "one more", "SageMakerOutput": vectors("one more")}})
		if diff := cmp.Diff(wantLines, asJSON(t, readLines(t, store, bucket, "output/embed-prefix/2026/part-2.jsonl.out"))); diff != "" {
			t.Errorf("part-2.jsonl.out (-want +got):\n%s", diff)
		}
	})

	t.Run("a failed record fails its object and the job", func(t *testing.T) {
		got := waitStatus(t, c, "embed-bad", types.TransformJobStatusFailed)
		if reason := aws.ToString(got.FailureReason); !strings.HasPrefix(reason, "ClientError: ") ||
			!strings.Contains(reason, "s3://offlinebatch/bad/part-4.jsonl: record 2") || strings.Contains(reason, "part-3") {
			t.Errorf("failure reason: got %q, want a ClientError naming part-4.jsonl's record 2 only", reason)
		}
		// The object that succeeded is still written; the failed one is not.
		if diff := cmp.Diff([]string{"output/embed-bad/part-3.jsonl.out"}, listKeys(t, store, bucket, "output/embed-bad/")); diff != "" {
			t.Errorf("output objects (-want +got):\n%s", diff)
		}
	})

	t.Run("manifest", func(t *testing.T) {
		waitStatus(t, c, "embed-manifest", types.TransformJobStatusCompleted)
		if diff := cmp.Diff([]string{"output/embed-manifest/part-1.jsonl.out"}, listKeys(t, store, bucket, "output/embed-manifest/")); diff != "" {
			t.Fatalf("output objects (-want +got):\n%s", diff)
		}
		// Without JoinSource the line is the model's answer alone.
		want := asJSON(t, []any{vectors("hello world"), vectors("good", "morning")})
		if diff := cmp.Diff(want, asJSON(t, readLines(t, store, bucket, "output/embed-manifest/part-1.jsonl.out"))); diff != "" {
			t.Errorf("part-1.jsonl.out (-want +got):\n%s", diff)
		}
	})

	t.Run("blueprint object and output filter", func(t *testing.T) {
		waitStatus(t, c, "blueprint", types.TransformJobStatusCompleted)
		want := asJSON(t, []any{map[string]any{"id": 7, "SageMakerOutput": vectors("blueprint")}})
		if diff := cmp.Diff(want, asJSON(t, readLines(t, store, bucket, "output/sagemaker_djl_batch_input.json.out"))); diff != "" {
			t.Errorf("sagemaker_djl_batch_input.json.out (-want +got):\n%s", diff)
		}
	})

	t.Run("stopped", func(t *testing.T) {
		waitStatus(t, c, "embed-stopped", types.TransformJobStatusStopped)
		if got := listKeys(t, store, bucket, "output/embed-stopped/"); len(got) != 0 {
			t.Errorf("output of a stopped job: got %v, want none", got)
		}
	})

	t.Run("no input objects", func(t *testing.T) {
		if _, err := c.CreateTransformJob(ctx, s3Transform("embed-none", types.S3DataTypeS3Prefix, "s3://offlinebatch/nothing/", "s3://offlinebatch/output/none", blueprintProcessing)); err != nil {
			t.Fatal(err)
		}
		s.Advance(10 * time.Minute)
		got := waitStatus(t, c, "embed-none", types.TransformJobStatusFailed)
		if reason := aws.ToString(got.FailureReason); !strings.Contains(reason, "No S3 objects found") {
			t.Errorf("failure reason: got %q", reason)
		}
	})
}
