package sagemaker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sagemaker"
	"github.com/aws/aws-sdk-go-v2/service/sagemaker/types"
	"github.com/aws/aws-sdk-go-v2/service/sagemakerruntime"
	runtimetypes "github.com/aws/aws-sdk-go-v2/service/sagemakerruntime/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/mlsidecar/mlsidecar/e2e/providers/awsdouble"
	"github.com/mlsidecar/mlsidecar/e2e/providers/fault"
)

var creds = awsdouble.Credentials{AccessKeyID: "AKIDSAGEMAKER", SecretAccessKey: "sagemaker-secret"}

func start(t *testing.T, opts Options) *Server {
	t.Helper()
	if opts.Credentials == nil {
		opts.Credentials = []awsdouble.Credentials{creds}
	}
	s := New(opts)
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func provider(c awsdouble.Credentials) aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken)
}

func runtimeClient(s *Server, c awsdouble.Credentials) *sagemakerruntime.Client {
	return sagemakerruntime.New(sagemakerruntime.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(s.URL()), Credentials: provider(c), Retryer: aws.NopRetryer{},
	})
}

func controlClient(s *Server, c awsdouble.Credentials) *sagemaker.Client {
	return sagemaker.New(sagemaker.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(s.URL()), Credentials: provider(c), Retryer: aws.NopRetryer{},
	})
}

// apiError checks err is the AWS error code with the HTTP status.
func apiError(t *testing.T, err error, wantStatus int, wantCode string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("got %v, want an API error", err)
	}
	if ae.ErrorCode() != wantCode {
		t.Errorf("error code: got %s, want %s (%s)", ae.ErrorCode(), wantCode, ae.ErrorMessage())
	}
	var re *awshttp.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("got %v, want a response error", err)
	}
	if re.HTTPStatusCode() != wantStatus {
		t.Errorf("status: got %d, want %d", re.HTTPStatusCode(), wantStatus)
	}
}

func invoke(c *sagemakerruntime.Client, endpoint, body string) (*sagemakerruntime.InvokeEndpointOutput, error) {
	return c.InvokeEndpoint(context.Background(), &sagemakerruntime.InvokeEndpointInput{
		EndpointName: aws.String(endpoint),
		Body:         []byte(body),
		ContentType:  aws.String("application/json"),
	})
}

func TestInvokeEndpoint(t *testing.T) {
	s := start(t, Options{Endpoints: []string{"embedder"}})
	c := runtimeClient(s, creds)
	tests := []struct {
		name, body string
		want       [][]float64
	}{
		{"inputs list", `{"inputs":["a","b"]}`, [][]float64{Embedding("a", 8), Embedding("b", 8)}},
		{"inputs string", `{"inputs":"a"}`, [][]float64{Embedding("a", 8)}},
		{"texts", `{"texts":["hello world"]}`, [][]float64{Embedding("hello world", 8)}},
		{"text_inputs", `{"text_inputs":["x"]}`, [][]float64{Embedding("x", 8)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := invoke(c, "embedder", tt.body)
			if err != nil {
				t.Fatal(err)
			}
			var got [][]float64
			if err := json.Unmarshal(out.Body, &got); err != nil {
				t.Fatalf("decode %s: %v", out.Body, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("vectors (-want +got):\n%s", diff)
			}
			if aws.ToString(out.InvokedProductionVariant) != "AllTraffic" {
				t.Errorf("variant: got %q", aws.ToString(out.InvokedProductionVariant))
			}
		})
	}
	if got := s.Requests()[0]; got.Path != "/endpoints/embedder/invocations" || string(got.Body) != `{"inputs":["a","b"]}` {
		t.Errorf("recorded: got %s %s", got.Path, got.Body)
	}

	t.Run("unknown endpoint", func(t *testing.T) {
		_, err := invoke(c, "other", `{"inputs":["a"]}`)
		apiError(t, err, http.StatusBadRequest, "ValidationError")
		var ve *runtimetypes.ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("got %T, want *types.ValidationError", err)
		}
	})
	t.Run("model refuses the body", func(t *testing.T) {
		_, err := invoke(c, "embedder", `{"prompt":"a"}`)
		var me *runtimetypes.ModelError
		if !errors.As(err, &me) {
			t.Fatalf("got %v, want *types.ModelError", err)
		}
		if aws.ToInt32(me.OriginalStatusCode) != 400 || aws.ToString(me.LogStreamArn) == "" {
			t.Errorf("model error: got status %d log stream %q", aws.ToInt32(me.OriginalStatusCode), aws.ToString(me.LogStreamArn))
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		_, err := invoke(runtimeClient(s, awsdouble.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: "wrong"}), "embedder", `{"inputs":["a"]}`)
		apiError(t, err, http.StatusForbidden, "InvalidSignatureException")
	})
	t.Run("throttled", func(t *testing.T) {
		s.Faults.Inject(OpInvokeEndpoint, fault.Fault{Status: http.StatusTooManyRequests})
		_, err := invoke(c, "embedder", `{"inputs":["a"]}`)
		apiError(t, err, http.StatusTooManyRequests, "ThrottlingException")
	})
}

func transformJob(name string) *sagemaker.CreateTransformJobInput {
	return &sagemaker.CreateTransformJobInput{
		TransformJobName: aws.String(name),
		ModelName:        aws.String("embedder-model"),
		BatchStrategy:    types.BatchStrategySingleRecord,
		TransformInput: &types.TransformInput{
			ContentType: aws.String("application/json"),
			SplitType:   types.SplitTypeLine,
			DataSource: &types.TransformDataSource{S3DataSource: &types.TransformS3DataSource{
				S3DataType: types.S3DataTypeS3Prefix, S3Uri: aws.String("s3://bucket/input.jsonl"),
			}},
		},
		TransformOutput:    &types.TransformOutput{S3OutputPath: aws.String("s3://bucket/output"), AssembleWith: types.AssemblyTypeLine},
		TransformResources: &types.TransformResources{InstanceType: types.TransformInstanceTypeMlM5Large, InstanceCount: aws.Int32(1)},
		Tags:               []types.Tag{{Key: aws.String("team"), Value: aws.String("search")}},
	}
}

func TestTransformJobLifecycle(t *testing.T) {
	start0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := start(t, Options{Start: start0})
	c := controlClient(s, creds)
	ctx := context.Background()

	created, err := c.CreateTransformJob(ctx, transformJob("Embed-Job-1"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := aws.ToString(created.TransformJobArn), "arn:aws:sagemaker:us-east-1:123456789012:transform-job/embed-job-1"; got != want {
		t.Errorf("ARN: got %s, want %s", got, want)
	}
	rec := s.Requests()[0]
	if rec.Path != "/" || rec.Header.Get("X-Amz-Target") != "SageMaker.CreateTransformJob" || rec.Header.Get("Content-Type") != "application/x-amz-json-1.1" {
		t.Errorf("recorded: got %s target %q type %q", rec.Path, rec.Header.Get("X-Amz-Target"), rec.Header.Get("Content-Type"))
	}

	describe := func(t *testing.T, name string) *sagemaker.DescribeTransformJobOutput {
		t.Helper()
		got, err := c.DescribeTransformJob(ctx, &sagemaker.DescribeTransformJobInput{TransformJobName: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	got := describe(t, "embed-job-1") // names match case-insensitively, as ML Commons needs
	if got.TransformJobStatus != types.TransformJobStatusInProgress {
		t.Errorf("status: got %s, want InProgress", got.TransformJobStatus)
	}
	if aws.ToString(got.ModelName) != "embedder-model" || aws.ToString(got.TransformOutput.S3OutputPath) != "s3://bucket/output" ||
		aws.ToString(got.TransformInput.DataSource.S3DataSource.S3Uri) != "s3://bucket/input.jsonl" {
		t.Errorf("job: got %+v", got)
	}
	if !got.CreationTime.Equal(start0) {
		t.Errorf("creation time: got %v, want %v", got.CreationTime, start0)
	}

	s.Advance(10 * time.Minute)
	got = describe(t, "Embed-Job-1")
	if got.TransformJobStatus != types.TransformJobStatusCompleted || !got.TransformEndTime.Equal(start0.Add(10*time.Minute)) {
		t.Errorf("after 10m: got %s end %v, want Completed", got.TransformJobStatus, got.TransformEndTime)
	}
	_, err = c.StopTransformJob(ctx, &sagemaker.StopTransformJobInput{TransformJobName: aws.String("Embed-Job-1")})
	apiError(t, err, http.StatusBadRequest, "ValidationException")

	// Stopped while in progress.
	if _, err := c.CreateTransformJob(ctx, transformJob("embed-job-2")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StopTransformJob(ctx, &sagemaker.StopTransformJobInput{TransformJobName: aws.String("embed-job-2")}); err != nil {
		t.Fatal(err)
	}
	if got := describe(t, "embed-job-2"); got.TransformJobStatus != types.TransformJobStatusStopping {
		t.Errorf("after stop: got %s, want Stopping", got.TransformJobStatus)
	}
	s.Advance(time.Minute)
	if got := describe(t, "embed-job-2"); got.TransformJobStatus != types.TransformJobStatusStopped {
		t.Errorf("after stop + 1m: got %s, want Stopped", got.TransformJobStatus)
	}

	// Failed.
	s.FailNextJob("ClientError: See job logs for more information")
	if _, err := c.CreateTransformJob(ctx, transformJob("embed-job-3")); err != nil {
		t.Fatal(err)
	}
	s.Advance(time.Hour)
	if got := describe(t, "embed-job-3"); got.TransformJobStatus != types.TransformJobStatusFailed || aws.ToString(got.FailureReason) == "" {
		t.Errorf("failed job: got %s %q", got.TransformJobStatus, aws.ToString(got.FailureReason))
	}
}

func TestTransformJobErrors(t *testing.T) {
	s := start(t, Options{})
	c := controlClient(s, creds)
	ctx := context.Background()
	if _, err := c.CreateTransformJob(ctx, transformJob("dup")); err != nil {
		t.Fatal(err)
	}

	_, err := c.CreateTransformJob(ctx, transformJob("DUP"))
	var inUse *types.ResourceInUse
	if !errors.As(err, &inUse) {
		t.Errorf("duplicate name: got %v, want ResourceInUse", err)
	}
	_, err = c.DescribeTransformJob(ctx, &sagemaker.DescribeTransformJobInput{TransformJobName: aws.String("nope")})
	apiError(t, err, http.StatusBadRequest, "ValidationException")
	_, err = c.StopTransformJob(ctx, &sagemaker.StopTransformJobInput{TransformJobName: aws.String("nope")})
	var nf *types.ResourceNotFound
	if !errors.As(err, &nf) {
		t.Errorf("stop unknown: got %v, want ResourceNotFound", err)
	}

	s.Faults.Inject(OpDescribeTransformJob, fault.Fault{Status: http.StatusTooManyRequests})
	_, err = c.DescribeTransformJob(ctx, &sagemaker.DescribeTransformJobInput{TransformJobName: aws.String("dup")})
	apiError(t, err, http.StatusTooManyRequests, "ThrottlingException")

	_, err = controlClient(s, awsdouble.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: "wrong"}).
		DescribeTransformJob(ctx, &sagemaker.DescribeTransformJobInput{TransformJobName: aws.String("dup")})
	apiError(t, err, http.StatusForbidden, "InvalidSignatureException")
}

// TestMLCommonsForm sends what ML Commons sends: POST /<Operation> with
// application/json and no X-Amz-Target, signed with SigV4.
func TestMLCommonsForm(t *testing.T) {
	s := start(t, Options{})
	send := func(t *testing.T, op, body string) (int, map[string]any) {
		t.Helper()
		r, err := http.NewRequest(http.MethodPost, s.URL()+"/"+op, bytes.NewReader([]byte(body)))
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Content-Type", "application/json")
		sum := sha256.Sum256([]byte(body))
		if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey},
			r, hex.EncodeToString(sum[:]), "sagemaker", "us-east-1", time.Now()); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var got map[string]any
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatalf("decode %s: %v", raw, err)
		}
		return resp.StatusCode, got
	}
	status, got := send(t, "CreateTransformJob", `{"TransformJobName":"mlc","ModelName":"m","TransformInput":{"DataSource":{"S3DataSource":{"S3DataType":"S3Prefix","S3Uri":"s3://b/in.json"}}},"TransformOutput":{"S3OutputPath":"s3://b/out"},"TransformResources":{"InstanceCount":1,"InstanceType":"ml.c5.xlarge"}}`)
	if status != http.StatusOK || got["TransformJobArn"] == nil {
		t.Fatalf("create: got %d %v", status, got)
	}
	if status, got := send(t, "DescribeTransformJob", `{"TransformJobName":"mlc"}`); status != http.StatusOK || got["TransformJobStatus"] != StatusInProgress {
		t.Errorf("describe: got %d %v", status, got)
	}
	if status, got := send(t, "StopTransformJob", `{"TransformJobName":"mlc"}`); status != http.StatusOK {
		t.Errorf("stop: got %d %v", status, got)
	}
	if status, got := send(t, "CreateTransformJob", `{"TransformJobName":"x"}`); status != http.StatusBadRequest || got["__type"] != "ValidationException" {
		t.Errorf("create without fields: got %d %v", status, got)
	}
}
