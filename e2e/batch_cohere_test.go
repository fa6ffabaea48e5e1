package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"testing"
	"time"

	"github.com/mlsidecar/mlsidecar/e2e/providers/cohere"
)

// uploadCohereDataset creates an embed-input dataset on the Cohere double.
func uploadCohereDataset(t *testing.T, d *cohere.Server, key string, texts ...string) string {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	part, err := mw.CreateFormFile("data", "input.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range texts {
		line, _ := json.Marshal(map[string]string{"text": text})
		part.Write(append(line, '\n'))
	}
	mw.Close()
	status, _, b := do(t, "POST", d.URL()+"/v1/datasets?name=e2e&type=embed-input", &body,
		map[string]string{"Content-Type": mw.FormDataContentType(), "Authorization": "Bearer " + key})
	if status != http.StatusOK {
		t.Fatalf("creating a dataset: %d %s", status, b)
	}
	var res struct{ ID string }
	if err := json.Unmarshal(b, &res); err != nil || res.ID == "" {
		t.Fatalf("dataset answer %s: %v", b, err)
	}
	return res.ID
}

// Given a Cohere connector whose batch_predict creates an embed job and that
// defines no status or cancel action, when jobs are followed and cancelled,
// then the derived actions use the job_id Cohere answers with (ML Commons'
// ${parameters.id} would never resolve).
func TestBatchPredictCohere(t *testing.T) {
	const prefix, key = ".e2e-batch-cohere-", "co-e2e-SECRET-key"
	d := cohere.New(cohere.Options{APIKey: key, JobDuration: time.Minute, CancelDelay: time.Minute})
	d.Start()
	t.Cleanup(d.Close)
	sc := startSidecar(t, withArgs("--index-prefix", prefix, "--batch-poll-interval", "200ms")...)
	dataset := uploadCohereDataset(t, d, key, "hello", "world")
	connector := fmt.Sprintf(`{"name":"cohere batch","version":"1","protocol":"http",
	  "parameters":{"model":"embed-english-v3.0","input_type":"search_document","mlsidecar.provider":"cohere"},
	  "credential":{"cohere_key":%q},
	  "actions":[
	    {"action_type":"predict","method":"POST","url":"%s/v1/embed","headers":{"Authorization":"Bearer ${credential.cohere_key}"},
	     "request_body":"{ \"texts\": ${parameters.texts}, \"model\": \"${parameters.model}\", \"input_type\": \"${parameters.input_type}\" }"},
	    {"action_type":"batch_predict","method":"POST","url":"%s/v1/embed-jobs","headers":{"Authorization":"Bearer ${credential.cohere_key}"},
	     "request_body":"{ \"dataset_id\": \"${parameters.dataset_id}\", \"model\": \"${parameters.model}\", \"input_type\": \"${parameters.input_type}\" }"}]}`,
		key, d.URL(), d.URL())
	model := deployModel(t, sc, connector)

	submit := func() string {
		v := mustML(t, sc, 200, "POST", "/_plugins/_ml/models/"+model+"/_batch_predict", `{"parameters":{"dataset_id":"`+dataset+`"}}`)
		if v["remote_job"].(map[string]any)["job_id"] == nil {
			t.Fatalf("remote_job = %v, want Cohere's job_id", v["remote_job"])
		}
		return v["task_id"].(string)
	}
	done, cancelled := submit(), submit()
	if ok := mustML(t, sc, 200, "POST", "/_plugins/_ml/tasks/"+cancelled+"/_cancel", ""); ok["status"] != "OK" {
		t.Errorf("cancel answer = %v", ok)
	}
	d.Advance(2 * time.Minute)
	task := waitTask(t, prefix, done, "COMPLETED", func(task map[string]any) bool { return task["state"] == "COMPLETED" })
	if s := remoteStatus(task); s != "complete" {
		t.Errorf("remote status = %q, want complete", s)
	}
	waitTask(t, prefix, cancelled, "CANCELLED", func(task map[string]any) bool { return task["state"] == "CANCELLED" })
}
