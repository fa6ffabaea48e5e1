package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlsidecar/mlsidecar/e2e/providers/awsdouble"
	"github.com/mlsidecar/mlsidecar/e2e/providers/bedrock"
	"github.com/mlsidecar/mlsidecar/e2e/providers/cohere"
	"github.com/mlsidecar/mlsidecar/e2e/providers/fault"
	"github.com/mlsidecar/mlsidecar/e2e/providers/sagemaker"
)

// crashCase is one provider's double, ready for a submission that is
// interrupted after the provider has made the job.
type crashCase struct {
	connector  string // the batch connector, pointing at the double
	parameters string // the _batch_predict parameters
	jobs       func() int
	lose       func() // loses the answer of the next job creation
	// check looks at the task once the survivor is done with it.
	check func(t *testing.T, task map[string]any)
}

// crashClientConfig gives up on a lost answer after a few seconds, so the
// victim's lease ends soon.
const crashClientConfig = `{"connection_timeout":1,"read_timeout":5,"max_retry_times":0}`

func running(jobField, want string) func(t *testing.T, task map[string]any) {
	return func(t *testing.T, task map[string]any) {
		t.Helper()
		job, _ := task["remote_job"].(map[string]any)
		if got := fmt.Sprint(job[jobField]); task["state"] != "RUNNING" || !strings.Contains(got, want) {
			t.Errorf("got task %v, want RUNNING with %s holding %q", task, jobField, want)
		}
	}
}

// Given a _batch_predict whose replica is killed with SIGKILL after the
// provider has created the job but before the job reached the task, when
// the replica's lease on the task ends, then another replica finds the job
// by its idempotency key (OpenAI metadata, Bedrock clientRequestToken,
// SageMaker job name) and the task follows it; the provider holds exactly
// one job. Cohere has no key: the task fails saying so, nothing is sent
// twice.
func TestBatchSubmissionSurvivesKill9(t *testing.T) {
	const prefix = ".e2e-batch-crash-"
	args := withArgs("--index-prefix", prefix, "--batch-poll-interval", "300ms", "--batch-lease-ttl", "2s")
	survivor := startSidecar(t, append(args, "--node-id", "survivor")...)

	cases := map[string]func(t *testing.T) crashCase{
		"openai": func(t *testing.T) crashCase {
			d, _ := batchDouble(t)
			d.SetNextBatchIDs("batch_crash_1")
			input := uploadBatchInput(t, d, embeddingLine("x", "x"))
			// The double's URL does not say OpenAI; the parameter does.
			c := strings.Replace(openAIConnector(d.URL(), input, crashClientConfig), `"parameters": {`, `"parameters": {"mlsidecar.provider": "openai",`, 1)
			return crashCase{connector: c, parameters: `{}`, jobs: d.Jobs,
				lose:  func() { d.Faults.Inject("batches.create", fault.Fault{Lose: true}) },
				check: running("id", "batch_crash_1")}
		},
		"bedrock": func(t *testing.T) crashCase {
			keys := awsdouble.Credentials{AccessKeyID: "AKIDE2ECRASH", SecretAccessKey: "e2e-crash-SECRET"}
			d := bedrock.New(bedrock.Options{Credentials: []awsdouble.Credentials{keys}, StartDelay: time.Hour, JobDuration: time.Hour})
			d.Start()
			t.Cleanup(d.Close)
			body := `{ \"inputDataConfig\": {\"s3InputDataConfig\": {\"s3Uri\": \"s3://in/x.jsonl\"}}, \"jobName\": \"crash\", \"modelId\": \"amazon.titan-embed-text-v2:0\", \"outputDataConfig\": {\"s3OutputDataConfig\": {\"s3Uri\": \"s3://out/\"}}, \"roleArn\": \"arn:aws:iam::123456789012:role/batch\" }`
			c := fmt.Sprintf(`{"name":"bedrock crash","version":"1","protocol": "aws_sigv4",
			  "parameters":{"region":"us-east-1","service_name":"bedrock","mlsidecar.provider":"bedrock"},
			  "credential":{"access_key":%q,"secret_key":%q},
			  "actions":[{"action_type":"batch_predict","method":"POST","url":"%s/model-invocation-job","request_body":"%s",
			     "post_process_function":"connector.post_process.bedrock.batch_job_arn"}]}`, keys.AccessKeyID, keys.SecretAccessKey, d.URL(), body)
			return crashCase{connector: withClientConfig(c, crashClientConfig), parameters: `{}`, jobs: d.Jobs,
				lose:  func() { d.Faults.Inject(bedrock.OpCreateModelInvocationJob, fault.Fault{Lose: true}) },
				check: running("jobArn", ":model-invocation-job/")}
		},
		"sagemaker": func(t *testing.T) crashCase {
			keys := awsdouble.Credentials{AccessKeyID: "AKIDE2ECRASHSM", SecretAccessKey: "e2e-crash-sm-SECRET"}
			d := sagemaker.New(sagemaker.Options{Credentials: []awsdouble.Credentials{keys}, JobDuration: time.Hour})
			d.Start()
			t.Cleanup(d.Close)
			body := `{ \"TransformJobName\": \"${parameters.TransformJobName}\", \"ModelName\": \"embedder\", \"TransformInput\": {\"DataSource\": {\"S3DataSource\": {\"S3DataType\": \"S3Prefix\", \"S3Uri\": \"s3://in/\"}}, \"ContentType\": \"application/json\"}, \"TransformOutput\": {\"S3OutputPath\": \"s3://out/\"}, \"TransformResources\": {\"InstanceCount\": 1, \"InstanceType\": \"ml.c5.xlarge\"} }`
			c := fmt.Sprintf(`{"name":"sagemaker crash","version":"1","protocol": "aws_sigv4",
			  "parameters":{"region":"us-east-1","service_name":"sagemaker","mlsidecar.provider":"sagemaker"},
			  "credential":{"access_key":%q,"secret_key":%q},
			  "actions":[{"action_type":"batch_predict","method":"POST","url":"%s/CreateTransformJob","request_body":"%s"}]}`,
				keys.AccessKeyID, keys.SecretAccessKey, d.URL(), body)
			return crashCase{connector: withClientConfig(c, crashClientConfig), parameters: `{"TransformJobName":"crash-7"}`, jobs: d.Jobs,
				lose:  func() { d.Faults.Inject(sagemaker.OpCreateTransformJob, fault.Fault{Lose: true}) },
				check: running("TransformJobArn", "transform-job/crash-7")}
		},
		"cohere": func(t *testing.T) crashCase {
			const key = "co-e2e-crash-key"
			d := cohere.New(cohere.Options{APIKey: key, JobDuration: time.Hour})
			d.Start()
			t.Cleanup(d.Close)
			dataset := uploadCohereDataset(t, d, key, "hello")
			c := fmt.Sprintf(`{"name":"cohere crash","version":"1","protocol": "http",
			  "parameters":{"model":"embed-english-v3.0","mlsidecar.provider":"cohere"},
			  "credential":{"cohere_key":%q},
			  "actions":[{"action_type":"batch_predict","method":"POST","url":"%s/v1/embed-jobs","headers":{"Authorization":"Bearer ${credential.cohere_key}"},
			     "request_body":"{ \"dataset_id\": \"%s\", \"model\": \"${parameters.model}\", \"input_type\": \"search_document\" }"}]}`, key, d.URL(), dataset)
			return crashCase{connector: withClientConfig(c, crashClientConfig), parameters: `{}`, jobs: d.Jobs,
				lose: func() { d.Faults.Inject(cohere.OpCreateEmbedJob, fault.Fault{Lose: true}) },
				check: func(t *testing.T, task map[string]any) {
					if task["state"] != "FAILED" || !strings.Contains(fmt.Sprint(task["error"]), "no idempotency key") {
						t.Errorf("got task %v, want FAILED saying there is no idempotency key", task)
					}
				}}
		},
	}
	for _, name := range []string{"openai", "bedrock", "sagemaker", "cohere"} {
		t.Run(name, func(t *testing.T) {
			tc := cases[name](t)
			model := deployModel(t, survivor, tc.connector)
			victim := startSidecar(t, append(args, "--node-id", "victim-"+name)...)
			tc.lose()
			go func() {
				// The answer never comes: the victim dies first.
				resp, err := http.Post(victim.url+"/_plugins/_ml/models/"+model+"/_batch_predict", "application/json",
					strings.NewReader(`{"parameters":`+tc.parameters+`}`))
				if err == nil {
					resp.Body.Close()
				}
			}()
			eventually(t, 10*time.Second, "the provider made the job", func() bool { return tc.jobs() == 1 })
			if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			victim.exited <- <-victim.exited

			// The task was written before the provider was called.
			var id string
			eventually(t, 10*time.Second, "the victim's task is in the index", func() bool {
				do(t, "POST", node.url()+"/"+prefix+"tasks/_refresh", nil, nil)
				_, _, b := do(t, "POST", node.url()+"/"+prefix+"tasks/_search",
					stringsReader(`{"query":{"bool":{"filter":[{"term":{"model_id":"`+model+`"}},{"term":{"task_type":"BATCH_PREDICTION"}}]}}}`), map[string]string{"Content-Type": "application/json"})
				var res struct {
					Hits struct {
						Hits []struct {
							ID string `json:"_id"`
						}
					}
				}
				_ = json.Unmarshal(b, &res)
				if len(res.Hits.Hits) == 1 {
					id = res.Hits.Hits[0].ID
				}
				return len(res.Hits.Hits) == 1
			})
			task := waitTask(t, prefix, id, "the survivor finishes the submission", func(task map[string]any) bool {
				b, _ := task["batch"].(map[string]any)
				return task["state"] != "CREATED" && b["submission"] == nil
			})
			tc.check(t, task)
			if n := tc.jobs(); n != 1 {
				t.Errorf("the provider holds %d jobs, want 1", n)
			}
			// What callers see of it: the ML API's answer for the task.
			v := mustML(t, survivor, 200, "GET", "/_plugins/_ml/tasks/"+id, "")
			if v["state"] != task["state"] || v["batch"] != nil {
				t.Errorf("GET task = %v, want state %v and no bookkeeping", v, task["state"])
			}
		})
	}
}
