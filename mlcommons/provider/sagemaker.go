package provider

import (
	"encoding/json"
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

// withKey: a transform job's name is unique in its account and region, so
// the name the template gives is the key.
func (sageMaker) withKey(body []byte, _ string) ([]byte, string) {
	return body, field(body, "TransformJobName")
}

// adopt reads CreateTransformJob's refusal of a name in use: "Job name must
// be unique within an AWS account and region, and a job with this name
// already exists (arn:…:transform-job/<name>)".
func (sageMaker) adopt(status int, reason, key string) ([]byte, bool) {
	if status != http.StatusBadRequest || !strings.Contains(reason, "ResourceInUse") {
		return nil, false
	}
	i := strings.Index(reason, "(arn:")
	if i < 0 {
		return nil, false
	}
	j := strings.IndexByte(reason[i:], ')')
	if j < 0 {
		return nil, false
	}
	arn := reason[i+1 : i+j]
	if !strings.EqualFold(arn[strings.LastIndexByte(arn, '/')+1:], key) {
		return nil, false
	}
	b, _ := json.Marshal(map[string]string{"TransformJobArn": arn})
	return b, true
}
