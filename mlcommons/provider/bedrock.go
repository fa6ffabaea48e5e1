package provider

import (
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
		job["processedJobArn"] = strings.ReplaceAll(arn, "/", "%2F")
	}
}

func (bedrock) jobID(job map[string]any) string { return stringField(job, "jobArn") }

func (bedrock) throttled(resp *http.Response) bool { return awsThrottled(resp) }
