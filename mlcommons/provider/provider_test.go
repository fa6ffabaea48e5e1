package provider_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
	"github.com/mlsidecar/mlsidecar/mlcommons/provider"
	"github.com/mlsidecar/mlsidecar/mlcommons/template"
)

func TestOf(t *testing.T) {
	for url, want := range map[string]string{
		"https://api.openai.com/v1/batches":                       "openai",
		"https://runtime.sagemaker.us-east-1.amazonaws.com/x":     "sagemaker",
		"https://bedrock-runtime.us-east-1.amazonaws.com/model/x": "bedrock",
		"https://api.cohere.ai/v1/embed":                          "cohere",
		"http://127.0.0.1:8080/v1/batches":                        "other",
		"http://127.0.0.1:8080/openai/v1/batches":                 "other", // the host decides, not the path
		"https://API.OpenAI.com/v1/batches":                       "openai",
	} {
		if got := provider.Of(&indexstore.Connector{}, url).Name(); got != want {
			t.Errorf("Of(%s) = %s, want %s", url, got, want)
		}
	}
	named := &indexstore.Connector{Parameters: map[string]string{provider.NameParameter: "OpenAI"}}
	if got := provider.Of(named, "http://127.0.0.1:1/x").Name(); got != "openai" {
		t.Errorf("the connector parameter names the provider: got %s, want openai", got)
	}
	// A name of the caller's choosing is "other": it labels metrics.
	for i := range 60 {
		chosen := &indexstore.Connector{Parameters: map[string]string{provider.NameParameter: fmt.Sprintf("acme-%d", i)}}
		if got := provider.Of(chosen, "http://127.0.0.1:1/x").Name(); got != "other" {
			t.Fatalf("mlsidecar.provider acme-%d: got %s, want other", i, got)
		}
	}
	// The parameter wins over the host.
	proxied := &indexstore.Connector{Parameters: map[string]string{provider.NameParameter: "cohere"}}
	if got := provider.Of(proxied, "https://api.openai.com/v1/batches").Name(); got != "cohere" {
		t.Errorf("parameter over host: got %s, want cohere", got)
	}
}

func TestNamed(t *testing.T) {
	for _, name := range []string{"openai", "sagemaker", "bedrock", "cohere"} {
		if got := provider.Named(name).Name(); got != name {
			t.Errorf("Named(%q).Name() = %q, want %q", name, got, name)
		}
	}
	// An unknown name is "other" (names label metrics: a caller's choice
	// would make them unbounded) and derives nothing.
	c := batchConnector("https://api.openai.com/v1/batches")
	for _, name := range []string{"acme", "other", "OpenAI", ""} {
		p := provider.Named(name)
		if got := p.Name(); got != "other" {
			t.Errorf("Named(%q).Name() = %q, want other", name, got)
		}
		_, err := provider.DerivedAction(p, c, indexstore.ActionBatchPredictStatus, "https://api.openai.com/v1/batches")
		assertUnsupported(t, err, "Please configure the action type to get the batch job details in the connector")
	}
}

func TestJobParameters(t *testing.T) {
	job := map[string]any{
		"id": "batch_1", "TransformJobArn": "arn:aws:sagemaker:us-east-1:1:transform-job/my-job",
		"jobArn": "arn:aws:bedrock:us-east-1:1:model-invocation-job/abc", "request_counts": map[string]any{"total": 1.0},
		"note": `quote " and /`,
	}
	// String fields and what providers derive, percent-escaped: they are
	// literals bound for URLs. Bedrock's processedJobArn keeps its single
	// %2F escape.
	want := map[string]any{
		"id": "batch_1", "TransformJobArn": "arn:aws:sagemaker:us-east-1:1:transform-job%2Fmy-job", "TransformJobName": "my-job",
		"jobArn": "arn:aws:bedrock:us-east-1:1:model-invocation-job%2Fabc", "processedJobArn": "arn:aws:bedrock:us-east-1:1:model-invocation-job%2Fabc",
		"note": "quote%20%22%20and%20%2F",
	}
	got := provider.JobParameters(job)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("JobParameters (-want +got):\n%s", diff)
	}
	// Request-parameter escaping for JSON then has nothing left to do.
	for k, v := range template.RequestParameters(got) {
		if v != want[k] {
			t.Errorf("RequestParameters(JobParameters)[%s] = %q, want %q", k, v, want[k])
		}
	}
}

func TestLiteral(t *testing.T) {
	for in, want := range map[string]string{
		"batch_abc123":                          "batch_abc123",
		"5f1c2a3e-0b1d-4c8e-9f00-1a2b3c4d5e6f":  "5f1c2a3e-0b1d-4c8e-9f00-1a2b3c4d5e6f",
		"arn:aws:bedrock:us-east-1:1:job%2Fabc": "arn:aws:bedrock:us-east-1:1:job%2Fabc", // already escaped: kept
		"arn:aws:bedrock:us-east-1:1:job/abc":   "arn:aws:bedrock:us-east-1:1:job%2Fabc",
		"x?admin=1":                             "x%3Fadmin%3D1",
		"${parameters.id}":                      "%24%7Bparameters.id%7D",
		"../../v1/files":                        "..%2F..%2Fv1%2Ffiles",
		"a&b=c#d e+f":                           "a%26b%3Dc%23d%20e%2Bf",
		"x%3Fadmin=1":                           "x%253Fadmin%3D1",
	} {
		if got := provider.Literal(in); got != want {
			t.Errorf("Literal(%q) = %q, want %q", in, got, want)
		}
	}
}

// Job ids from the provider are literals in the derived status and cancel
// URLs: "x?admin=1" must not cut the path short, "${parameters.id}" must not
// expand (into a 500 cycle).
func TestJobIDsInDerivedURLs(t *testing.T) {
	const base = "https://api.openai.com/v1/batches"
	c := batchConnector(base)
	cancel, err := provider.DerivedAction(provider.Named("openai"), c, indexstore.ActionCancelBatchPredict, base)
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{
		"batch_abc123":     base + "/batch_abc123/cancel",
		"x?admin=1":        base + "/x%3Fadmin%3D1/cancel",
		"${parameters.id}": base + "/%24%7Bparameters.id%7D/cancel",
	} {
		params := template.Merge(c.Parameters, template.RequestParameters(provider.JobParameters(map[string]any{"id": id})), nil)
		got, err := template.URL(cancel.URL, params)
		if err != nil || got != want {
			t.Errorf("cancel URL of job %q = %q, %v; want %q", id, got, err, want)
		}
	}
}

func TestJobParametersKeepsProvidedNames(t *testing.T) {
	// A post-process function that made the derived names wins.
	got := provider.JobParameters(map[string]any{
		"TransformJobArn": "arn:aws:sagemaker:us-east-1:1:transform-job/my-job", "TransformJobName": "given",
		"jobArn": "arn:aws:bedrock:us-east-1:1:model-invocation-job/abc", "processedJobArn": "given-arn",
	})
	if got["TransformJobName"] != "given" || got["processedJobArn"] != "given-arn" {
		t.Errorf("got TransformJobName %v, processedJobArn %v, want given, given-arn", got["TransformJobName"], got["processedJobArn"])
	}
	if got := provider.JobParameters(nil); len(got) != 0 {
		t.Errorf("JobParameters(nil) = %v, want empty", got)
	}
}

func batchConnector(url string) *indexstore.Connector {
	return &indexstore.Connector{Parameters: map[string]string{"region": "us-east-1"}, Actions: []indexstore.ConnectorAction{{
		ActionType: indexstore.ActionBatchPredict, Method: "POST", URL: url, Headers: map[string]string{"Authorization": "Bearer ${credential.key}"},
	}}}
}

func assertUnsupported(t *testing.T, err error, reason string) {
	t.Helper()
	e, ok := mlerr.From(err)
	if !ok || e.Status != 400 || e.Type != "unsupported_operation_exception" || e.Reason != reason {
		t.Errorf("got %v, want 400 unsupported_operation_exception %q", err, reason)
	}
}

func TestDerivedAction(t *testing.T) {
	tests := []struct {
		provider, url, actionType string
		want                      indexstore.ConnectorAction
	}{
		{"openai", "https://api.openai.com/v1/batches", indexstore.ActionBatchPredictStatus,
			indexstore.ConnectorAction{Method: "GET", URL: "https://api.openai.com/v1/batches/${parameters.id}"}},
		{"openai", "https://api.openai.com/v1/batches/", indexstore.ActionCancelBatchPredict,
			indexstore.ConnectorAction{Method: "POST", URL: "https://api.openai.com/v1/batches/${parameters.id}/cancel"}},
		{"cohere", "https://api.cohere.ai/v1/embed-jobs", indexstore.ActionBatchPredictStatus,
			indexstore.ConnectorAction{Method: "GET", URL: "https://api.cohere.ai/v1/embed-jobs/${parameters.job_id}"}},
		{"cohere", "https://api.cohere.ai/v1/embed-jobs", indexstore.ActionCancelBatchPredict,
			indexstore.ConnectorAction{Method: "POST", URL: "https://api.cohere.ai/v1/embed-jobs/${parameters.job_id}/cancel"}},
		{"bedrock", "https://bedrock.${parameters.region}.amazonaws.com/model-invocation-job", indexstore.ActionCancelBatchPredict,
			indexstore.ConnectorAction{Method: "POST", URL: "https://bedrock.us-east-1.amazonaws.com/model-invocation-job/${parameters.processedJobArn}/stop"}},
		{"bedrock", "https://bedrock.${parameters.region}.amazonaws.com/model-invocation-job", indexstore.ActionBatchPredictStatus,
			indexstore.ConnectorAction{Method: "GET", URL: "https://bedrock.us-east-1.amazonaws.com/model-invocation-job/${parameters.processedJobArn}"}},
		{"sagemaker", "https://api.sagemaker.us-east-1.amazonaws.com/CreateTransformJob", indexstore.ActionBatchPredictStatus,
			indexstore.ConnectorAction{Method: "POST", URL: "https://api.sagemaker.us-east-1.amazonaws.com/DescribeTransformJob",
				RequestBody: `{ "TransformJobName" : "${parameters.TransformJobName}"}`}},
		{"sagemaker", "https://api.sagemaker.us-east-1.amazonaws.com/CreateTransformJob", indexstore.ActionCancelBatchPredict,
			indexstore.ConnectorAction{Method: "POST", URL: "https://api.sagemaker.us-east-1.amazonaws.com/StopTransformJob",
				RequestBody: `{ "TransformJobName" : "${parameters.TransformJobName}"}`}},
	}
	for _, tt := range tests {
		t.Run(tt.provider+" "+tt.actionType, func(t *testing.T) {
			c := batchConnector(tt.url)
			// The base is the batch_predict URL with the connector's
			// parameters filled, as connector.Bound.JobAction makes it.
			base, err := template.URL(tt.url, c.Parameters)
			if err != nil {
				t.Fatal(err)
			}
			got, err := provider.DerivedAction(provider.Named(tt.provider), c, tt.actionType, base)
			if err != nil {
				t.Fatal(err)
			}
			tt.want.ActionType = tt.actionType
			tt.want.Headers = map[string]string{"Authorization": "Bearer ${credential.key}"}
			if diff := cmp.Diff(&tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	_, err := provider.DerivedAction(provider.Named("other"), batchConnector("http://127.0.0.1:1/v1/batches"),
		indexstore.ActionCancelBatchPredict, "http://127.0.0.1:1/v1/batches")
	assertUnsupported(t, err, "Please configure the action type to cancel the batch job in the connector")

	_, err = provider.DerivedAction(provider.Named("openai"), &indexstore.Connector{}, indexstore.ActionBatchPredictStatus, "")
	if e, ok := mlerr.From(err); !ok || e.Status != 400 || e.Reason != "no BATCH_PREDICT action found" {
		t.Errorf("no batch action: got %v, want 400 no BATCH_PREDICT action found", err)
	}
}

func TestJobID(t *testing.T) {
	tests := []struct {
		name string
		job  map[string]any
		want string
	}{
		{"openai", map[string]any{"id": "batch_abc", "object": "batch", "status": "validating"}, "batch_abc"},
		{"cohere", map[string]any{"job_id": "job-123", "status": "processing"}, "job-123"},
		{"bedrock", map[string]any{"jobArn": "arn:aws:bedrock:us-east-1:1:model-invocation-job/abc"}, "arn:aws:bedrock:us-east-1:1:model-invocation-job/abc"},
		{"sagemaker", map[string]any{"TransformJobArn": "arn:aws:sagemaker:us-east-1:1:transform-job/my-job"}, "arn:aws:sagemaker:us-east-1:1:transform-job/my-job"},
		{"none", map[string]any{"status": "completed"}, ""},
		{"nil", nil, ""},
		{"not a string", map[string]any{"id": 12.0}, ""},
		{"empty id", map[string]any{"id": ""}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := provider.JobID(tt.job); got != tt.want {
				t.Errorf("JobID(%v) = %q, want %q", tt.job, got, tt.want)
			}
		})
	}
}

func TestThrottled(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		errorType string // X-Amzn-Errortype, "" for none
		want      bool
	}{
		{"aws throttling with its namespace", 400, "ThrottlingException:http://internal.amazon.com/coral/com.amazon.coral.availability/", true},
		{"aws throttling", 400, "ThrottlingException", true},
		{"aws validation", 400, "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/", false},
		{"aws access denied", 403, "AccessDeniedException", false},
		{"no header", 400, "", false},
		{"throttling not at the start", 400, "NotThrottlingException", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: tt.status, Header: http.Header{}}
			if tt.errorType != "" {
				resp.Header.Set("x-amzn-errortype", tt.errorType)
			}
			if got := provider.Throttled(resp); got != tt.want {
				t.Errorf("Throttled(%d, %q) = %v, want %v", tt.status, tt.errorType, got, tt.want)
			}
		})
	}
}
