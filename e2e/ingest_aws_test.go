package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/mlsidecar/mlsidecar/e2e/providers/awsdouble"
	"github.com/mlsidecar/mlsidecar/e2e/providers/bedrock"
	"github.com/mlsidecar/mlsidecar/e2e/providers/sagemaker"
	"github.com/mlsidecar/mlsidecar/e2e/s3server"
)

// Given a real S3 server that the Bedrock and SageMaker doubles read their
// input from and write their output to, as the services do, and a
// _batch_predict of each with "ingest", when the jobs complete, then the
// pollers alone load each job's output from S3 into the index: every
// answered record's vector under its id, a record Bedrock failed (an error
// record) and a SageMaker input object left without its .out recorded as
// failures, the tasks COMPLETED_WITH_ERROR with exact counts, Bedrock's
// failed records written to the job's DLQ bucket, and /metrics counting
// the documents and failures by provider.
func TestBatchPredictIngestsBedrockAndSageMakerThroughS3(t *testing.T) {
	const prefix = ".e2e-ingest-aws-"
	store := s3server.StartForTest(t)
	c := store.Client()
	for _, b := range []string{"batch-in", "batch-out", "batch-dlq"} {
		if _, err := c.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	creds := store.Credentials()
	keys := awsdouble.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey}
	sc := startSidecar(t, withArgs("--index-prefix", prefix, "--batch-poll-interval", "200ms", "--s3-endpoint", store.Endpoint())...)
	connector := func(name, service, actions string) string {
		return fmt.Sprintf(`{"name":%q,"version":"1","protocol":"aws_sigv4",
		  "parameters":{"region":%q,"service_name":%q,"mlsidecar.provider":%q},
		  "credential":{"access_key":%q,"secret_key":%q},
		  "actions":[%s]}`, name, store.Region(), service, service, keys.AccessKeyID, keys.SecretAccessKey, actions)
	}
	// submit runs a job with ingestion and waits until the poller has seen
	// it complete and named its ingestion.
	submit := func(t *testing.T, model, body string, advance func(time.Duration)) (batchID, ingestID string) {
		t.Helper()
		sub := mustML(t, sc, 200, "POST", "/_plugins/_ml/models/"+model+"/_batch_predict", body)
		batchID, _ = sub["task_id"].(string)
		if batchID == "" {
			t.Fatalf("_batch_predict answer = %v", sub)
		}
		advance(5 * time.Minute)
		task := waitTask(t, prefix, batchID, "the poller to complete the job and start its ingestion", func(task map[string]any) bool {
			return task["state"] == "COMPLETED" && task["ingest_task_id"] != nil
		})
		return batchID, task["ingest_task_id"].(string)
	}

	t.Run("bedrock", func(t *testing.T) {
		const index = "e2e-ingest-bedrock"
		d := bedrock.New(bedrock.Options{Region: store.Region(), Credentials: []awsdouble.Credentials{keys}, S3: c,
			StartDelay: time.Minute, JobDuration: time.Minute})
		d.Start()
		t.Cleanup(d.Close)
		texts := map[string]string{"REC0000001": "offline inference", "REC0000002": "at half the price", "REC0000003": "then search it"}
		var input strings.Builder
		for _, id := range []string{"REC0000001", "REC0000002", "REC0000003"} {
			fmt.Fprintf(&input, `{"recordId":%q,"modelInput":{"inputText":%q,"dimensions":256}}`+"\n", id, texts[id])
		}
		// Titan v2 refuses a key it does not know: Bedrock answers this
		// record with an error record and still completes the job.
		input.WriteString(`{"recordId":"REC0000004","modelInput":{"inputText":"refused","colour":"blue"}}` + "\n")
		putObject(t, c, "batch-in", "bedrock/records.jsonl", input.String())

		body := `{ \"inputDataConfig\": {\"s3InputDataConfig\": {\"s3Uri\": \"${parameters.input_s3Uri}\"}}, \"jobName\": \"${parameters.job_name}\", \"modelId\": \"amazon.titan-embed-text-v2:0\", \"outputDataConfig\": {\"s3OutputDataConfig\": {\"s3Uri\": \"${parameters.output_s3Uri}\"}}, \"roleArn\": \"arn:aws:iam::123456789012:role/batch\" }`
		model := deployModel(t, sc, connector("bedrock batch", "bedrock", fmt.Sprintf(`
		    {"action_type":"predict","method":"POST","url":"%s/model/amazon.titan-embed-text-v2:0/invoke","request_body":"{ \"inputText\": \"${parameters.inputText}\" }"},
		    {"action_type":"batch_predict","method":"POST","url":"%s/model-invocation-job","request_body":"%s",
		     "post_process_function":"connector.post_process.bedrock.batch_job_arn"}`, d.URL(), d.URL(), body)))
		createIndex(t, index, `{"properties":{"embedding":{"type":"float"},"text":{"type":"text"}}}`)

		batchID, ingestID := submit(t, model, `{"parameters":{"job_name":"e2e-bedrock-ingest","input_s3Uri":"s3://batch-in/bedrock/records.jsonl","output_s3Uri":"s3://batch-out/bedrock/"},
		  "dlq":{"bucket":"batch-dlq","region":"`+store.Region()+`"},
		  "ingest":{"index_name":"`+index+`","field_map":{"_id":"$.recordId","embedding":"$.modelOutput.embedding","text":"$.modelInput.inputText"}}}`, d.Advance)
		task := waitIngest(t, sc, ingestID, time.Minute)
		checkIngestTask(t, task, "COMPLETED_WITH_ERROR", ingestCounts{Total: 4, Indexed: 3, Failed: 1})
		for id, text := range texts {
			src, ok := docSource(t, index, id)
			if !ok || src["text"] != text || !closeVector(floats(src["embedding"]), bedrock.Embedding(text, 256)) {
				t.Errorf("document %s = %v (found %v), want %q and its vector", id, src, ok, text)
			}
		}
		if n := docCount(t, index); n != 3 {
			t.Errorf("documents = %d, want the 3 records Bedrock answered", n)
		}
		recs := failureRecords(t, sc, prefix, ingestID)
		if len(recs) != 1 || recs[0]["line"] != float64(4) || !strings.HasSuffix(fmt.Sprint(recs[0]["source_name"]), "/records.jsonl.out") ||
			!containsAny(fmt.Sprint(recs[0]["reason"]), "the provider failed this record: error 400: Malformed input request") ||
			!strings.Contains(fmt.Sprint(recs[0]["reason"]), "REC0000004") {
			t.Errorf("failure records = %v, want line 4 of the .out, the record Bedrock failed, with its message and recordId", recs)
		}

		// The DLQ holds the failed record, as one JSON line.
		lines := readObjectLines(t, c, "batch-dlq", "BatchIngestionFailures_e2e-bedrock-ingest.jsonl")
		if len(lines) != 1 || lines[0]["line"] != float64(4) || lines[0]["reason"] != recs[0]["reason"] ||
			!strings.Contains(fmt.Sprint(lines[0]["record"]), "REC0000004") {
			t.Errorf("DLQ object lines = %v, want the one failed record", lines)
		}
		if got := mustML(t, sc, 200, "GET", "/_plugins/_ml/tasks/"+batchID, ""); got["ingest_task_id"] != ingestID {
			t.Errorf("batch task = %v, want ingest_task_id %s", got, ingestID)
		}
	})

	t.Run("sagemaker", func(t *testing.T) {
		const index = "e2e-ingest-sagemaker"
		// The double completes the job but leaves b.jsonl without its
		// .out, which the ingestion must not pass over silently.
		d := sagemaker.New(sagemaker.Options{Region: store.Region(), Credentials: []awsdouble.Credentials{keys}, S3: c, Dimensions: 4,
			JobDuration: time.Minute, LoseOutputs: []string{"sagemaker/b.jsonl"}})
		d.Start()
		t.Cleanup(d.Close)
		putObject(t, c, "batch-in", "sagemaker/a.jsonl", `{"id":"doc-1","content":["first text"]}`+"\n"+`{"id":"doc-2","content":["second text"]}`+"\n")
		putObject(t, c, "batch-in", "sagemaker/b.jsonl", `{"id":"doc-3","content":["lost text"]}`+"\n")

		body := `{ \"TransformJobName\": \"${parameters.TransformJobName}\", \"ModelName\": \"embedder\", \"TransformInput\": {\"DataSource\": {\"S3DataSource\": {\"S3DataType\": \"S3Prefix\", \"S3Uri\": \"s3://batch-in/sagemaker/\"}}, \"ContentType\": \"application/json\", \"SplitType\": \"Line\"}, \"TransformOutput\": {\"S3OutputPath\": \"s3://batch-out/sagemaker\", \"AssembleWith\": \"Line\"}, \"DataProcessing\": {\"InputFilter\": \"$.content\", \"JoinSource\": \"Input\"}, \"TransformResources\": {\"InstanceCount\": 1, \"InstanceType\": \"ml.c5.xlarge\"} }`
		model := deployModel(t, sc, connector("sagemaker batch", "sagemaker", fmt.Sprintf(`
		    {"action_type":"predict","method":"POST","url":"%s/endpoints/embedder/invocations","request_body":"{ \"inputs\": ${parameters.input} }"},
		    {"action_type":"batch_predict","method":"POST","url":"%s/CreateTransformJob","request_body":"%s"}`, d.URL(), d.URL(), body)))
		createIndex(t, index, `{"properties":{"embedding":{"type":"float"},"content":{"type":"text"}}}`)

		_, ingestID := submit(t, model, `{"parameters":{"TransformJobName":"e2e-sagemaker-ingest"},
		  "ingest":{"index_name":"`+index+`","field_map":{"_id":"$.id","embedding":"$.SageMakerOutput[0]"},"ingest_fields":["$.content"]}}`, d.Advance)
		task := waitIngest(t, sc, ingestID, time.Minute)
		checkIngestTask(t, task, "COMPLETED_WITH_ERROR", ingestCounts{Total: 3, Indexed: 2, Failed: 1})
		for id, text := range map[string]string{"doc-1": "first text", "doc-2": "second text"} {
			src, ok := docSource(t, index, id)
			if !ok || fmt.Sprint(src["content"]) != "["+text+"]" || !closeVector(floats(src["embedding"]), sagemaker.Embedding(text, 4)) {
				t.Errorf("document %s = %v (found %v), want its content and vector", id, src, ok)
			}
		}
		if n := docCount(t, index); n != 2 {
			t.Errorf("documents = %d, want the 2 records of a.jsonl", n)
		}
		recs := failureRecords(t, sc, prefix, ingestID)
		if len(recs) != 1 || recs[0]["source_name"] != "s3://batch-in/sagemaker/b.jsonl" ||
			!strings.Contains(fmt.Sprint(recs[0]["reason"]), "wrote no output for this input object") {
			t.Errorf("failure records = %v, want the input object without output", recs)
		}
	})

	for provider, want := range map[string]struct{ docs, failures float64 }{"bedrock": {3, 1}, "sagemaker": {2, 1}} {
		if got := sc.metric(t, "mlsidecar_ingest_documents_total", map[string]string{"source": provider}); got != want.docs {
			t.Errorf("mlsidecar_ingest_documents_total{source=%q} = %v, want %v", provider, got, want.docs)
		}
		if got := sc.metric(t, "mlsidecar_ingest_failures_total", map[string]string{"source": provider}); got != want.failures {
			t.Errorf("mlsidecar_ingest_failures_total{source=%q} = %v, want %v", provider, got, want.failures)
		}
	}
	if got := sc.metric(t, "mlsidecar_ingest_tasks_total", map[string]string{"state": "COMPLETED_WITH_ERROR"}); got != 2 {
		t.Errorf("mlsidecar_ingest_tasks_total{state=COMPLETED_WITH_ERROR} = %v, want 2", got)
	}
	if got := sc.metric(t, "mlsidecar_ingest_read_bytes_total", map[string]string{"source": "bedrock"}); got <= 0 {
		t.Errorf("mlsidecar_ingest_read_bytes_total{source=bedrock} = %v, want the bytes of the .out", got)
	}
	if strings.Contains(sc.logs.String(), keys.SecretAccessKey) || strings.Contains(rawIndexDocs(t, prefix+"tasks"), keys.SecretAccessKey) {
		t.Error("the S3 secret key is visible in the logs or the tasks index")
	}
}

// readObjectLines reads an S3 object of JSON lines.
func readObjectLines(t *testing.T, c *s3.Client, bucket, key string) []map[string]any {
	t.Helper()
	out, err := c.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("reading s3://%s/%s: %v", bucket, key, err)
	}
	defer out.Body.Close()
	var lines []map[string]any
	sc := bufio.NewScanner(io.LimitReader(out.Body, 1<<20))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("s3://%s/%s: line %q: %v", bucket, key, sc.Text(), err)
		}
		lines = append(lines, m)
	}
	return lines
}
