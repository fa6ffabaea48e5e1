package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mlsidecar/mlsidecar/e2e/providers/awsdouble"
	"github.com/mlsidecar/mlsidecar/e2e/providers/sagemaker"
)

// Given the ML Commons SageMaker batch pattern (POST .../CreateTransformJob,
// aws_sigv4 for sagemaker) with no status or cancel action, when transform
// jobs are submitted, followed and stopped, then the derived
// DescribeTransformJob and StopTransformJob calls, with TransformJobName
// derived from the ARN, drive the tasks to COMPLETED and CANCELLED.
func TestBatchPredictSageMaker(t *testing.T) {
	const prefix = ".e2e-batch-sagemaker-"
	keys := awsdouble.Credentials{AccessKeyID: "AKIDE2ESAGE", SecretAccessKey: "e2e-sage-SECRET/key+0123"}
	d := sagemaker.New(sagemaker.Options{Credentials: []awsdouble.Credentials{keys}, JobDuration: time.Minute, StopDelay: time.Minute})
	d.Start()
	t.Cleanup(d.Close)
	sc := startSidecar(t, withArgs("--index-prefix", prefix, "--batch-poll-interval", "200ms")...)

	body := `{ \"TransformJobName\": \"${parameters.TransformJobName}\", \"ModelName\": \"embedder\", \"TransformInput\": {\"DataSource\": {\"S3DataSource\": {\"S3DataType\": \"S3Prefix\", \"S3Uri\": \"s3://in/\"}}, \"ContentType\": \"application/json\"}, \"TransformOutput\": {\"S3OutputPath\": \"s3://out/\"}, \"TransformResources\": {\"InstanceCount\": 1, \"InstanceType\": \"ml.c5.xlarge\"} }`
	connector := fmt.Sprintf(`{"name":"sagemaker batch","version":"1","protocol":"aws_sigv4",
	  "parameters":{"region":"us-east-1","service_name":"sagemaker","mlsidecar.provider":"sagemaker"},
	  "credential":{"access_key":%q,"secret_key":%q},
	  "actions":[
	    {"action_type":"predict","method":"POST","url":"%s/endpoints/embedder/invocations","request_body":"{ \"inputs\": ${parameters.input} }"},
	    {"action_type":"batch_predict","method":"POST","url":"%s/CreateTransformJob","request_body":"%s"}]}`,
		keys.AccessKeyID, keys.SecretAccessKey, d.URL(), d.URL(), body)
	model := deployModel(t, sc, connector)

	submit := func(name string) string {
		v := mustML(t, sc, 200, "POST", "/_plugins/_ml/models/"+model+"/_batch_predict", `{"parameters":{"TransformJobName":"`+name+`"}}`)
		if arn := fmt.Sprint(v["remote_job"].(map[string]any)["TransformJobArn"]); !strings.HasSuffix(arn, "/"+name) {
			t.Fatalf("remote_job = %v, want the job's ARN", v["remote_job"])
		}
		return v["task_id"].(string)
	}
	done, stopped := submit("job-done"), submit("job-stopped")
	if ok := mustML(t, sc, 200, "POST", "/_plugins/_ml/tasks/"+stopped+"/_cancel_batch", ""); ok["status"] != "OK" {
		t.Errorf("cancel answer = %v", ok)
	}
	d.Advance(2 * time.Minute)
	task := waitTask(t, prefix, done, "COMPLETED", func(task map[string]any) bool { return task["state"] == "COMPLETED" })
	if job := task["remote_job"].(map[string]any); job["TransformJobStatus"] != "Completed" || job["TransformJobName"] != "job-done" {
		t.Errorf("completed remote_job = %v", job)
	}
	waitTask(t, prefix, stopped, "CANCELLED", func(task map[string]any) bool { return task["state"] == "CANCELLED" })

	var describes, stops int
	for _, r := range d.Requests() {
		switch r.Path {
		case "/DescribeTransformJob":
			describes++
		case "/StopTransformJob":
			stops++
		}
	}
	if describes == 0 || stops != 1 {
		t.Errorf("describe calls %d, stop calls %d; want some and exactly one", describes, stops)
	}
}
