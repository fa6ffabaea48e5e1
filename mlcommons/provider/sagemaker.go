package provider

import (
	"net/http"
	"strings"
)

// sageMaker is Amazon SageMaker batch transform: one JSON-RPC style
// endpoint whose target names the operation, jobs addressed by name.
type sageMaker struct{}

func (sageMaker) Name() string { return "sagemaker" }

func (sageMaker) recognises(host string) bool { return strings.Contains(host, "sagemaker") }

func (sageMaker) derive(base string, status bool) (string, string, string, bool) {
	op := "StopTransformJob"
	if status {
		op = "DescribeTransformJob"
	}
	return http.MethodPost, strings.Replace(base, "CreateTransformJob", op, 1),
		`{ "TransformJobName" : "${parameters.TransformJobName}"}`, true
}

// addJobParameters derives TransformJobName from the job's ARN, which is
// all CreateTransformJob answers.
func (sageMaker) addJobParameters(job map[string]string) {
	if _, ok := job["TransformJobName"]; ok {
		return
	}
	if arn, ok := job["TransformJobArn"]; ok {
		job["TransformJobName"] = arn[strings.LastIndex(arn, "/")+1:]
	}
}

func (sageMaker) jobID(job map[string]any) string { return stringField(job, "TransformJobArn") }

func (sageMaker) throttled(resp *http.Response) bool { return awsThrottled(resp) }
