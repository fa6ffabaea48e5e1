package bedrock

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrock"
	bedrocktypes "github.com/aws/aws-sdk-go-v2/service/bedrock/types"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	runtimetypes "github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/mlsidecar/mlsidecar/e2e/providers/awsdouble"
	"github.com/mlsidecar/mlsidecar/e2e/providers/fault"
)

var creds = awsdouble.Credentials{AccessKeyID: "AKIDBEDROCK", SecretAccessKey: "bedrock-secret"}

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

func runtimeClient(s *Server, c awsdouble.Credentials, retryer aws.Retryer) *bedrockruntime.Client {
	if retryer == nil {
		retryer = aws.NopRetryer{}
	}
	return bedrockruntime.New(bedrockruntime.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(s.URL()),
		Credentials:  credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken),
		Retryer:      retryer,
	})
}

func controlClient(s *Server, c awsdouble.Credentials) *bedrock.Client {
	return bedrock.New(bedrock.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(s.URL()),
		Credentials:  credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken),
		Retryer:      aws.NopRetryer{},
	})
}

type titanResponse struct {
	Embedding           []float64            `json:"embedding"`
	EmbeddingsByType    map[string][]float64 `json:"embeddingsByType"`
	InputTextTokenCount int                  `json:"inputTextTokenCount"`
}

func invoke(t *testing.T, c *bedrockruntime.Client, model, body string) (titanResponse, error) {
	t.Helper()
	out, err := c.InvokeModel(context.Background(), &bedrockruntime.InvokeModelInput{
		ModelId:     aws.String(model),
		Body:        []byte(body),
		ContentType: aws.String("application/json"),
		Accept:      aws.String("application/json"),
	})
	if err != nil {
		return titanResponse{}, err
	}
	var resp titanResponse
	if err := json.Unmarshal(out.Body, &resp); err != nil {
		t.Fatalf("decode %s: %v", out.Body, err)
	}
	return resp, nil
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

func TestInvokeModel(t *testing.T) {
	s := start(t, Options{})
	c := runtimeClient(s, creds, nil)

	tests := []struct {
		name  string
		model string
		body  string
		want  titanResponse
	}{
		{"v1", "amazon.titan-embed-text-v1", `{"inputText":"hello world"}`,
			titanResponse{Embedding: Embedding("hello world", 8), InputTextTokenCount: 2}},
		{"v2 default", "amazon.titan-embed-text-v2:0", `{"inputText":"hello"}`,
			titanResponse{Embedding: Embedding("hello", 8), InputTextTokenCount: 1}},
		{"v2 by type", "amazon.titan-embed-text-v2:0", `{"inputText":"hello","embeddingTypes":["float"]}`,
			titanResponse{Embedding: Embedding("hello", 8), EmbeddingsByType: map[string][]float64{"float": Embedding("hello", 8)}, InputTextTokenCount: 1}},
		{"foundation model arn", "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v2:0", `{"inputText":"a b c"}`,
			titanResponse{Embedding: Embedding("a b c", 8), InputTextTokenCount: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := invoke(t, c, tt.model, tt.body)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
		})
	}

	got, err := invoke(t, c, "amazon.titan-embed-text-v2:0", `{"inputText":"x","dimensions":256}`)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Embedding) != 256 {
		t.Errorf("dimensions: got %d, want 256", len(got.Embedding))
	}

	// The SDK sends the model id's ':' as %3A (and signs it as %253A).
	reqs := s.Requests()
	if got, want := reqs[1].Path, "/model/amazon.titan-embed-text-v2%3A0/invoke"; got != want {
		t.Errorf("path: got %s, want %s", got, want)
	}
}

func TestInvokeModelRejects(t *testing.T) {
	s := start(t, Options{})
	c := runtimeClient(s, creds, nil)
	tests := []struct {
		name, model, body string
	}{
		{"unknown model", "anthropic.claude-v2", `{"inputText":"x"}`},
		{"no inputText", "amazon.titan-embed-text-v2:0", `{}`},
		{"v1 with dimensions", "amazon.titan-embed-text-v1", `{"inputText":"x","dimensions":256}`},
		{"odd dimensions", "amazon.titan-embed-text-v2:0", `{"inputText":"x","dimensions":7}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := invoke(t, c, tt.model, tt.body)
			apiError(t, err, http.StatusBadRequest, "ValidationException")
			var ve *runtimetypes.ValidationException
			if !errors.As(err, &ve) {
				t.Errorf("got %T, want *types.ValidationException", err)
			}
		})
	}
}

func TestSignatures(t *testing.T) {
	withToken := awsdouble.Credentials{AccessKeyID: "ASIATEMP", SecretAccessKey: "temp-secret", SessionToken: "session-token"}
	s := start(t, Options{Credentials: []awsdouble.Credentials{creds, withToken}})

	tests := []struct {
		name       string
		creds      awsdouble.Credentials
		wantStatus int
		wantCode   string
	}{
		{"static credentials", creds, 0, ""},
		{"session token", withToken, 0, ""},
		{"wrong secret", awsdouble.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: "wrong"}, 403, "InvalidSignatureException"},
		{"session token missing", awsdouble.Credentials{AccessKeyID: withToken.AccessKeyID, SecretAccessKey: withToken.SecretAccessKey}, 403, "UnrecognizedClientException"},
		{"session token wrong", awsdouble.Credentials{AccessKeyID: withToken.AccessKeyID, SecretAccessKey: withToken.SecretAccessKey, SessionToken: "other"}, 403, "UnrecognizedClientException"},
		{"unknown key", awsdouble.Credentials{AccessKeyID: "AKIDUNKNOWN", SecretAccessKey: "x"}, 403, "UnrecognizedClientException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := invoke(t, runtimeClient(s, tt.creds, nil), "amazon.titan-embed-text-v1", `{"inputText":"x"}`)
			if tt.wantCode == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			apiError(t, err, tt.wantStatus, tt.wantCode)
		})
	}

	t.Run("control plane wrong secret", func(t *testing.T) {
		_, err := controlClient(s, awsdouble.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: "wrong"}).
			GetModelInvocationJob(context.Background(), &bedrock.GetModelInvocationJobInput{JobIdentifier: aws.String("abcdefghijkl")})
		apiError(t, err, 403, "InvalidSignatureException")
	})
	t.Run("other region", func(t *testing.T) {
		c := bedrockruntime.New(bedrockruntime.Options{
			Region: "eu-west-1", BaseEndpoint: aws.String(s.URL()), Retryer: aws.NopRetryer{},
			Credentials: credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey, ""),
		})
		_, err := invoke(t, c, "amazon.titan-embed-text-v1", `{"inputText":"x"}`)
		apiError(t, err, 403, "InvalidSignatureException")
	})
}

func TestThrottling(t *testing.T) {
	s := start(t, Options{})
	s.Faults.Inject(OpInvokeModel, fault.Fault{Status: http.StatusTooManyRequests, RetryAfter: time.Second})
	_, err := invoke(t, runtimeClient(s, creds, nil), "amazon.titan-embed-text-v1", `{"inputText":"x"}`)
	apiError(t, err, http.StatusTooManyRequests, "ThrottlingException")
	var te *runtimetypes.ThrottlingException
	if !errors.As(err, &te) {
		t.Errorf("got %T, want *types.ThrottlingException", err)
	}
	if got := s.Requests()[0].Header.Get("Authorization"); got == "" {
		t.Error("the throttled request was not signed")
	}

	// The SDK's own retry re-signs the request, and the double accepts it.
	s.Faults.Inject(OpInvokeModel, fault.Fault{Status: http.StatusTooManyRequests})
	retryer := retry.NewStandard(func(o *retry.StandardOptions) {
		o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
	})
	if _, err := invoke(t, runtimeClient(s, creds, retryer), "amazon.titan-embed-text-v1", `{"inputText":"x"}`); err != nil {
		t.Fatalf("retried call: %v", err)
	}
	if got, want := len(s.Requests()), 3; got != want {
		t.Errorf("requests: got %d, want %d", got, want)
	}
}

func s3Job(name, token string) *bedrock.CreateModelInvocationJobInput {
	in := &bedrock.CreateModelInvocationJobInput{
		JobName: aws.String(name),
		RoleArn: aws.String("arn:aws:iam::123456789012:role/batch"),
		ModelId: aws.String("amazon.titan-embed-text-v2:0"),
		InputDataConfig: &bedrocktypes.ModelInvocationJobInputDataConfigMemberS3InputDataConfig{
			Value: bedrocktypes.ModelInvocationJobS3InputDataConfig{S3Uri: aws.String("s3://in/records.jsonl")},
		},
		OutputDataConfig: &bedrocktypes.ModelInvocationJobOutputDataConfigMemberS3OutputDataConfig{
			Value: bedrocktypes.ModelInvocationJobS3OutputDataConfig{S3Uri: aws.String("s3://out/")},
		},
	}
	if token != "" {
		in.ClientRequestToken = aws.String(token)
	}
	return in
}

func TestInvocationJobLifecycle(t *testing.T) {
	start0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := start(t, Options{Start: start0})
	c := controlClient(s, creds)
	ctx := context.Background()

	created, err := c.CreateModelInvocationJob(ctx, s3Job("embed-1", ""))
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(created.JobArn)
	if want := "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/job000000001"; arn != want {
		t.Errorf("job ARN: got %s, want %s", arn, want)
	}
	status := func(t *testing.T, id string) *bedrock.GetModelInvocationJobOutput {
		t.Helper()
		got, err := c.GetModelInvocationJob(ctx, &bedrock.GetModelInvocationJobInput{JobIdentifier: aws.String(id)})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}

	got := status(t, arn)
	if got.Status != bedrocktypes.ModelInvocationJobStatusSubmitted {
		t.Errorf("status: got %s, want Submitted", got.Status)
	}
	if aws.ToString(got.JobName) != "embed-1" || aws.ToString(got.ModelId) != "amazon.titan-embed-text-v2:0" {
		t.Errorf("job: got name %q model %q", aws.ToString(got.JobName), aws.ToString(got.ModelId))
	}
	if in, ok := got.InputDataConfig.(*bedrocktypes.ModelInvocationJobInputDataConfigMemberS3InputDataConfig); !ok || aws.ToString(in.Value.S3Uri) != "s3://in/records.jsonl" {
		t.Errorf("input data config: got %#v", got.InputDataConfig)
	}
	if !got.SubmitTime.Equal(start0) {
		t.Errorf("submit time: got %v, want %v", got.SubmitTime, start0)
	}
	// The SDK sends the ARN's '/' as %2F.
	if path, want := s.Requests()[1].Path, "/model-invocation-job/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Amodel-invocation-job%2Fjob000000001"; path != want {
		t.Errorf("path: got %s, want %s", path, want)
	}

	s.Advance(time.Minute)
	if got := status(t, "job000000001"); got.Status != bedrocktypes.ModelInvocationJobStatusInProgress {
		t.Errorf("status after 1m: got %s, want InProgress", got.Status)
	}
	s.Advance(10 * time.Minute)
	got = status(t, arn)
	if got.Status != bedrocktypes.ModelInvocationJobStatusCompleted || got.EndTime == nil {
		t.Errorf("status after 11m: got %s end %v, want Completed with an end time", got.Status, got.EndTime)
	}

	_, err = c.StopModelInvocationJob(ctx, &bedrock.StopModelInvocationJobInput{JobIdentifier: aws.String(arn)})
	apiError(t, err, http.StatusBadRequest, "ConflictException")

	// Stop, while in progress.
	created, err = c.CreateModelInvocationJob(ctx, s3Job("embed-2", ""))
	if err != nil {
		t.Fatal(err)
	}
	s.Advance(2 * time.Minute)
	if _, err := c.StopModelInvocationJob(ctx, &bedrock.StopModelInvocationJobInput{JobIdentifier: created.JobArn}); err != nil {
		t.Fatal(err)
	}
	if got := status(t, aws.ToString(created.JobArn)); got.Status != bedrocktypes.ModelInvocationJobStatusStopping {
		t.Errorf("status after stop: got %s, want Stopping", got.Status)
	}
	s.Advance(time.Minute)
	if got := status(t, aws.ToString(created.JobArn)); got.Status != bedrocktypes.ModelInvocationJobStatusStopped {
		t.Errorf("status after stop + 1m: got %s, want Stopped", got.Status)
	}

	// A failing job.
	s.FailNextJob("Insufficient permissions to read s3://in/records.jsonl")
	created, err = c.CreateModelInvocationJob(ctx, s3Job("embed-3", ""))
	if err != nil {
		t.Fatal(err)
	}
	s.Advance(time.Hour)
	got = status(t, aws.ToString(created.JobArn))
	if got.Status != bedrocktypes.ModelInvocationJobStatusFailed || aws.ToString(got.Message) == "" {
		t.Errorf("failed job: got %s %q", got.Status, aws.ToString(got.Message))
	}

	_, err = c.GetModelInvocationJob(ctx, &bedrock.GetModelInvocationJobInput{JobIdentifier: aws.String("zzzzzzzzzzzz")})
	var nf *bedrocktypes.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Errorf("unknown job: got %v, want ResourceNotFoundException", err)
	}
}

func TestInvocationJobIdempotentAndValidated(t *testing.T) {
	s := start(t, Options{})
	c := controlClient(s, creds)
	ctx := context.Background()
	a, err := c.CreateModelInvocationJob(ctx, s3Job("same", "token-1"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.CreateModelInvocationJob(ctx, s3Job("same", "token-1"))
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(a.JobArn) != aws.ToString(b.JobArn) {
		t.Errorf("same client token: got %s and %s, want one job", aws.ToString(a.JobArn), aws.ToString(b.JobArn))
	}

	_, err = c.CreateModelInvocationJob(ctx, s3Job("bad name!", ""))
	apiError(t, err, http.StatusBadRequest, "ValidationException")

	s.Faults.Inject(OpCreateModelInvocationJob, fault.Fault{Status: http.StatusTooManyRequests})
	_, err = c.CreateModelInvocationJob(ctx, s3Job("throttled", ""))
	var te *bedrocktypes.ThrottlingException
	if !errors.As(err, &te) {
		t.Errorf("got %v, want ThrottlingException", err)
	}
}

// TestRawJobIdentifiers sends what Data Prepper sends: the ARN unescaped in
// the path, signed with SigV4.
func TestRawJobIdentifiers(t *testing.T) {
	s := start(t, Options{})
	created, err := controlClient(s, creds).CreateModelInvocationJob(context.Background(), s3Job("raw", ""))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{
		"/model-invocation-job/" + aws.ToString(created.JobArn),
		"/model-invocation-job/job000000001",
	} {
		t.Run(path, func(t *testing.T) {
			r, err := http.NewRequest(http.MethodGet, s.URL()+path, http.NoBody)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(nil)
			if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey},
				r, hex.EncodeToString(sum[:]), "bedrock", "us-east-1", time.Now()); err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body bytes.Buffer
			_, _ = body.ReadFrom(resp.Body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status: got %d (%s), want 200", resp.StatusCode, body.String())
			}
		})
	}
}

// TestMountedUnderPrefix serves the double under /bedrock, so a URL can
// name the provider; the signature covers the full path the client sent.
func TestMountedUnderPrefix(t *testing.T) {
	s := New(Options{Credentials: []awsdouble.Credentials{creds}})
	mux := http.NewServeMux()
	mux.Handle("/bedrock/", http.StripPrefix("/bedrock", s.Handler()))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	c := bedrockruntime.New(bedrockruntime.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(srv.URL + "/bedrock"), Retryer: aws.NopRetryer{},
		Credentials: credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey, ""),
	})
	got, err := invoke(t, c, "amazon.titan-embed-text-v2:0", `{"inputText":"hi"}`)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Embedding("hi", 8), got.Embedding); diff != "" {
		t.Errorf("embedding (-want +got):\n%s", diff)
	}
	if path := s.Requests()[0].Path; path != "/bedrock/model/amazon.titan-embed-text-v2%3A0/invoke" {
		t.Errorf("recorded path: got %s", path)
	}
}
