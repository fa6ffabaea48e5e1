package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mlsidecar/mlsidecar/e2e/providers/awsdouble"
	"github.com/mlsidecar/mlsidecar/e2e/providers/bedrock"
)

// Given an aws_sigv4 Bedrock connector whose batch_predict creates a model
// invocation job (post-processed by connector.post_process.bedrock.batch_job_arn)
// and that defines no status or cancel action, when jobs are submitted,
// followed and stopped, then the derived actions — signed, with the job ARN
// as processedJobArn — drive the tasks to COMPLETED and CANCELLED.
func TestBatchPredictBedrock(t *testing.T) {
	const prefix = ".e2e-batch-bedrock-"
	keys := awsdouble.Credentials{AccessKeyID: "AKIDE2EBATCH", SecretAccessKey: "e2e-batch-SECRET/key+0123"}
	d := bedrock.New(bedrock.Options{Credentials: []awsdouble.Credentials{keys}, StartDelay: time.Minute, JobDuration: time.Minute, StopDelay: time.Minute})
	d.Start()
	t.Cleanup(d.Close)
	sc := startSidecar(t, withArgs("--index-prefix", prefix, "--batch-poll-interval", "200ms")...)

	body := `{ \"inputDataConfig\": {\"s3InputDataConfig\": {\"s3Uri\": \"${parameters.input_s3Uri}\"}}, \"jobName\": \"${parameters.job_name}\", \"modelId\": \"amazon.titan-embed-text-v2:0\", \"outputDataConfig\": {\"s3OutputDataConfig\": {\"s3Uri\": \"${parameters.output_s3Uri}\"}}, \"roleArn\": \"arn:aws:iam::123456789012:role/batch\" }`
	connector := fmt.Sprintf(`{"name":"bedrock batch","version":"1","protocol":"aws_sigv4",
	  "parameters":{"region":"us-east-1","service_name":"bedrock","mlsidecar.provider":"bedrock"},
	  "credential":{"access_key":%q,"secret_key":%q},
	  "actions":[
	    {"action_type":"predict","method":"POST","url":"%s/model/amazon.titan-embed-text-v1/invoke","request_body":"{ \"inputText\": \"${parameters.inputText}\" }"},
	    {"action_type":"batch_predict","method":"POST","url":"%s/model-invocation-job","request_body":"%s",
	     "post_process_function":"connector.post_process.bedrock.batch_job_arn"}]}`,
		keys.AccessKeyID, keys.SecretAccessKey, d.URL(), d.URL(), body)
	model := deployModel(t, sc, connector)

	submit := func(name string) (string, map[string]any) {
		v := mustML(t, sc, 200, "POST", "/_plugins/_ml/models/"+model+"/_batch_predict",
			`{"parameters":{"job_name":"`+name+`","input_s3Uri":"s3://in/`+name+`.jsonl","output_s3Uri":"s3://out/"}}`)
		return v["task_id"].(string), v["remote_job"].(map[string]any)
	}
	done, job := submit("job-done")
	arn, _ := job["jobArn"].(string)
	if !strings.HasPrefix(arn, "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/") ||
		job["processedJobArn"] != strings.ReplaceAll(arn, "/", "%2F") {
		t.Fatalf("remote_job = %v, want jobArn and processedJobArn", job)
	}
	stopped, _ := submit("job-stopped")
	if ok := mustML(t, sc, 200, "POST", "/_plugins/_ml/tasks/"+stopped+"/_cancel", ""); ok["status"] != "OK" {
		t.Errorf("cancel answer = %v", ok)
	}

	d.Advance(3 * time.Minute)
	waitTask(t, prefix, done, "COMPLETED", func(task map[string]any) bool { return task["state"] == "COMPLETED" })
	waitTask(t, prefix, stopped, "CANCELLED", func(task map[string]any) bool { return task["state"] == "CANCELLED" })

	// Every call was signed for bedrock in us-east-1 and verified by the double.
	var gets, stops int
	for _, r := range d.Requests() {
		if !strings.Contains(r.Header.Get("Authorization"), "Credential="+keys.AccessKeyID+"/") {
			t.Errorf("%s %s was not signed with the connector's key", r.Method, r.Path)
		}
		switch {
		case r.Method == "GET" && strings.HasPrefix(r.Path, "/model-invocation-job/"):
			gets++
		case r.Method == "POST" && strings.HasSuffix(r.Path, "/stop"):
			stops++
		}
	}
	if gets == 0 || stops != 1 {
		t.Errorf("status calls %d, stop calls %d; want some and exactly one", gets, stops)
	}
	if strings.Contains(sc.logs.String(), keys.SecretAccessKey) || strings.Contains(rawIndexDocs(t, prefix+"tasks"), keys.SecretAccessKey) {
		t.Error("the secret key is visible")
	}
}
