package mlcommons

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestStatusRules(t *testing.T) {
	rules := DefaultStatusRules()
	tests := []struct {
		job  map[string]any
		want string
	}{
		{map[string]any{"status": "validating"}, ""},
		{map[string]any{"status": "in_progress"}, ""},
		{map[string]any{"status": "finalizing"}, ""},
		{map[string]any{"status": "completed"}, taskCompleted},
		{map[string]any{"status": "failed"}, taskFailed},
		{map[string]any{"status": "expired"}, taskExpired},
		{map[string]any{"status": "cancelling"}, taskCancelling},
		{map[string]any{"status": "cancelled"}, taskCancelled},
		{map[string]any{"status": "processing"}, ""},          // Cohere
		{map[string]any{"status": "complete"}, taskCompleted}, // Cohere
		{map[string]any{"status": "Submitted"}, ""},           // Bedrock
		{map[string]any{"status": "PartiallyCompleted"}, taskCompleted},
		{map[string]any{"status": "Stopping"}, taskCancelling},
		{map[string]any{"status": "Stopped"}, taskCancelled},
		{map[string]any{"TransformJobStatus": "InProgress"}, ""}, // SageMaker
		{map[string]any{"TransformJobStatus": "Completed"}, taskCompleted},
		{map[string]any{"TransformJobStatus": "Stopping"}, taskCancelling},
		{map[string]any{"Status": "Failed"}, taskFailed},
		{map[string]any{"status": nil}, ""},
		{map[string]any{"other": "completed"}, ""},
		// Unanchored, case-insensitive find, as in ML Commons.
		{map[string]any{"status": "incomplete"}, taskCompleted},
		// Each field applies in turn: the last matching one wins.
		{map[string]any{"status": "completed", "TransformJobStatus": "Failed"}, taskFailed},
	}
	for _, tt := range tests {
		if got := rules.state(tt.job); got != tt.want {
			t.Errorf("state(%v) = %q, want %q", tt.job, got, tt.want)
		}
	}
}

func TestJobParameters(t *testing.T) {
	got := jobParameters(map[string]any{
		"id": "batch_1", "TransformJobArn": "arn:aws:sagemaker:us-east-1:1:transform-job/my-job",
		"jobArn": "arn:aws:bedrock:us-east-1:1:model-invocation-job/abc", "request_counts": map[string]any{"total": 1.0},
		"note": `quote " and /`,
	})
	want := map[string]string{
		"id": "batch_1", "TransformJobArn": `arn:aws:sagemaker:us-east-1:1:transform-job\/my-job`, "TransformJobName": "my-job",
		"jobArn": `arn:aws:bedrock:us-east-1:1:model-invocation-job\/abc`, "processedJobArn": "arn:aws:bedrock:us-east-1:1:model-invocation-job%2Fabc",
		"note": `quote \" and \/`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("jobParameters (-want +got):\n%s", diff)
	}
}

func TestDerivedAction(t *testing.T) {
	connector := func(url string) *Connector {
		return &Connector{Parameters: map[string]string{"region": "us-east-1"}, Actions: []ConnectorAction{{
			ActionType: actionBatchPredict, Method: "POST", URL: url, Headers: map[string]string{"Authorization": "Bearer ${credential.key}"},
		}}}
	}
	tests := []struct {
		provider, url, actionType string
		want                      ConnectorAction
	}{
		{"openai", "https://api.openai.com/v1/batches", actionBatchPredictStatus,
			ConnectorAction{Method: "GET", URL: "https://api.openai.com/v1/batches/${parameters.id}"}},
		{"openai", "https://api.openai.com/v1/batches/", actionCancelBatchPredict,
			ConnectorAction{Method: "POST", URL: "https://api.openai.com/v1/batches/${parameters.id}/cancel"}},
		{"cohere", "https://api.cohere.ai/v1/embed-jobs", actionBatchPredictStatus,
			ConnectorAction{Method: "GET", URL: "https://api.cohere.ai/v1/embed-jobs/${parameters.job_id}"}},
		{"bedrock", "https://bedrock.${parameters.region}.amazonaws.com/model-invocation-job", actionCancelBatchPredict,
			ConnectorAction{Method: "POST", URL: "https://bedrock.us-east-1.amazonaws.com/model-invocation-job/${parameters.processedJobArn}/stop"}},
		{"sagemaker", "https://api.sagemaker.us-east-1.amazonaws.com/CreateTransformJob", actionBatchPredictStatus,
			ConnectorAction{Method: "POST", URL: "https://api.sagemaker.us-east-1.amazonaws.com/DescribeTransformJob",
				RequestBody: `{ "TransformJobName" : "${parameters.TransformJobName}"}`}},
		{"sagemaker", "https://api.sagemaker.us-east-1.amazonaws.com/CreateTransformJob", actionCancelBatchPredict,
			ConnectorAction{Method: "POST", URL: "https://api.sagemaker.us-east-1.amazonaws.com/StopTransformJob",
				RequestBody: `{ "TransformJobName" : "${parameters.TransformJobName}"}`}},
	}
	for _, tt := range tests {
		t.Run(tt.provider+" "+tt.actionType, func(t *testing.T) {
			got, err := derivedAction(connector(tt.url), tt.provider, tt.actionType)
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
	_, err := derivedAction(connector("http://127.0.0.1:1/v1/batches"), "other", actionCancelBatchPredict)
	var e *Error
	if !errors.As(err, &e) || e.Status != 400 || e.Type != "unsupported_operation_exception" ||
		e.Reason != "Please configure the action type to cancel the batch job in the connector" {
		t.Errorf("unknown provider: %v", err)
	}
}

func TestProviderOf(t *testing.T) {
	for url, want := range map[string]string{
		"https://api.openai.com/v1/batches":                       "openai",
		"https://runtime.sagemaker.us-east-1.amazonaws.com/x":     "sagemaker",
		"https://bedrock-runtime.us-east-1.amazonaws.com/model/x": "bedrock",
		"https://api.cohere.ai/v1/embed":                          "cohere",
		"http://127.0.0.1:8080/v1/batches":                        "other",
		"http://127.0.0.1:8080/openai/v1/batches":                 "other", // the host decides, not the path
	} {
		if got := providerOf(&Connector{}, url); got != want {
			t.Errorf("providerOf(%s) = %s, want %s", url, got, want)
		}
	}
	named := &Connector{Parameters: map[string]string{"mlsidecar.provider": "OpenAI"}}
	if got := providerOf(named, "http://127.0.0.1:1/x"); got != "openai" {
		t.Errorf("the connector parameter names the provider: got %s", got)
	}
}

func TestProgressOf(t *testing.T) {
	p := progressOf(map[string]any{"request_counts": map[string]any{"total": 4.0, "completed": 2.0, "failed": 1.0}})
	if p == nil || *p != 0.75 {
		t.Errorf("progress = %v, want 0.75", p)
	}
	for _, job := range []map[string]any{{}, {"request_counts": map[string]any{"total": 0.0}}, {"request_counts": "x"}} {
		if p := progressOf(job); p != nil {
			t.Errorf("progressOf(%v) = %v, want none", job, *p)
		}
	}
}

func TestModelRateLimiter(t *testing.T) {
	var l modelLimiters
	spec := []byte(`{"limit":"2","unit":"MINUTES"}`)
	for i := 0; i < 2; i++ {
		if err := l.allow("m", spec); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	var e *Error
	if err := l.allow("m", spec); !errors.As(err, &e) || e.Status != 429 || e.Reason != "Request is throttled at model level." {
		t.Errorf("third request in a minute: %v, want 429", err)
	}
	if err := l.allow("other", spec); err != nil {
		t.Errorf("another model has its own bucket: %v", err)
	}
	for _, s := range []string{``, `{"limit":"x","unit":"MINUTES"}`, `{"limit":"1","unit":"FORTNIGHTS"}`} {
		for i := 0; i < 3; i++ {
			if err := l.allow("n", []byte(s)); err != nil {
				t.Errorf("limiter %q limits: %v", s, err)
			}
		}
	}
}
