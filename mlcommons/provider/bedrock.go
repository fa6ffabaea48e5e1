package provider

import (
	"encoding/hex"
	"errors"
	"maps"
	"net/http"
	"strings"
)

// bedrock is Amazon Bedrock batch inference (model invocation jobs): a job
// is addressed by its ARN, URL-escaped into one path segment.
type bedrock struct{}

func (bedrock) Name() string { return "bedrock" }

func (bedrock) recognises(host string) bool { return strings.Contains(host, "bedrock") }

func (bedrock) derive(base string, status bool) (string, string, string, bool) {
	if status {
		return http.MethodGet, base + "/${parameters.processedJobArn}", "", true
	}
	return http.MethodPost, base + "/${parameters.processedJobArn}/stop", "", true
}

// addJobParameters derives processedJobArn from jobArn when no
// post-process function made it (ML Commons' batch_job_arn does).
func (bedrock) addJobParameters(job map[string]string) {
	if _, ok := job["processedJobArn"]; ok {
		return
	}
	if arn, ok := job["jobArn"]; ok {
		job["processedJobArn"] = pathSegment(arn)
	}
}

// pathSegment makes a job ARN usable as one URL path segment: "/" becomes
// "%2F" as in ML Commons, and anything else a URL would read is escaped too.
func pathSegment(arn string) string { return escape(arn) }

// Errors of BedrockProcessedJob.
var (
	ErrNoJobArn        = errors.New("job arn is missing")
	ErrJobArnNotString = errors.New("jobArn is not a string")
)

// BedrockProcessedJob is a Bedrock CreateModelInvocationJob answer with
// processedJobArn added: what ML Commons' batch_job_arn post-process
// function (BedrockBatchJobArnPostProcessFunction) returns.
func BedrockProcessedJob(job map[string]any) (map[string]any, error) {
	arn, ok := job["jobArn"]
	if !ok {
		return nil, ErrNoJobArn
	}
	s, ok := arn.(string)
	if !ok {
		return nil, ErrJobArnNotString
	}
	out := maps.Clone(job)
	out["processedJobArn"] = pathSegment(s)
	return out, nil
}

func (bedrock) jobID(job map[string]any) string { return stringField(job, "jobArn") }

func (bedrock) throttled(resp *http.Response) bool { return awsThrottled(resp) }

// withKey uses the template's clientRequestToken when it sets one, else
// one made of the task id (Bedrock's tokens are alphanumerics and hyphens).
func (bedrock) withKey(body []byte, taskID string) ([]byte, string) {
	if t := field(body, "clientRequestToken"); t != "" {
		return body, t
	}
	key := "mlsidecar-" + hex.EncodeToString([]byte(taskID))
	out, ok := addField(body, "clientRequestToken", key)
	if !ok {
		return body, ""
	}
	return out, key
}
