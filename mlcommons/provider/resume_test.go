package provider_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
	"github.com/mlsidecar/mlsidecar/mlcommons/provider"
)

const taskID = "Ab3_xY-0123456789abc"

func TestWithKey(t *testing.T) {
	bedrockKey := "mlsidecar-" + "4162335f78592d30313233343536373839616263"
	tests := []struct {
		provider, body string
		wantBody       string
		wantKey        string
	}{
		{"openai", `{"input_file_id": "f", "endpoint": "/v1/embeddings"}`,
			`{"input_file_id": "f", "endpoint": "/v1/embeddings","metadata":{"mlsidecar_task_id":"` + taskID + `"}}`, taskID},
		{"openai", "{}\n", `{"metadata":{"mlsidecar_task_id":"` + taskID + `"}}`, taskID},
		// The template's own metadata is kept, and the job has no key.
		{"openai", `{"input_file_id": "f", "metadata": {"team": "a"}}`, `{"input_file_id": "f", "metadata": {"team": "a"}}`, ""},
		{"openai", `not json`, `not json`, ""},
		{"openai", `[1]`, `[1]`, ""},
		{"bedrock", `{"jobName": "j"}`, `{"jobName": "j","clientRequestToken":"` + bedrockKey + `"}`, bedrockKey},
		{"bedrock", `{"jobName": "j", "clientRequestToken": "mine"}`, `{"jobName": "j", "clientRequestToken": "mine"}`, "mine"},
		{"sagemaker", `{"TransformJobName": "nightly-1", "ModelName": "m"}`, `{"TransformJobName": "nightly-1", "ModelName": "m"}`, "nightly-1"},
		{"sagemaker", `{"ModelName": "m"}`, `{"ModelName": "m"}`, ""},
		{"cohere", `{"dataset_id": "d"}`, `{"dataset_id": "d"}`, ""},
		{"other", `{"x": 1}`, `{"x": 1}`, ""},
	}
	for _, tc := range tests {
		body, key := provider.WithKey(provider.Named(tc.provider), []byte(tc.body), taskID)
		if string(body) != tc.wantBody || key != tc.wantKey {
			t.Errorf("%s %s: got %s key %q, want %s key %q", tc.provider, tc.body, body, key, tc.wantBody, tc.wantKey)
		}
	}
}

// The Bedrock key satisfies clientRequestToken's pattern
// [a-zA-Z0-9]{1,256}(-*[a-zA-Z0-9]){0,256} whatever the task id.
func TestBedrockKeyPattern(t *testing.T) {
	_, key := provider.WithKey(provider.Named("bedrock"), []byte(`{}`), "___---___---___---__")
	for _, r := range key {
		if !(r == '-' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9') {
			t.Fatalf("key %q has %q", key, r)
		}
	}
	if strings.HasSuffix(key, "-") || len(key) > 256 {
		t.Errorf("key %q", key)
	}
}

func TestAdopt(t *testing.T) {
	sm := provider.Named("sagemaker")
	inUse := func(name string) error {
		return mlerr.Provider(http.StatusBadRequest, "%s", `Error from remote service: {"__type":"ResourceInUse","message":"Job name must be unique within an AWS account and region, and a job with this name already exists (arn:aws:sagemaker:us-east-1:123456789012:transform-job/`+name+`)"}`)
	}
	job, ok := provider.Adopt(sm, inUse("nightly-1"), "Nightly-1")
	if !ok || string(job) != `{"TransformJobArn":"arn:aws:sagemaker:us-east-1:123456789012:transform-job/nightly-1"}` {
		t.Errorf("got %s %v, want the job named in the refusal", job, ok)
	}
	for name, err := range map[string]error{
		"another job's name": inUse("other"),
		"another refusal":    mlerr.Provider(http.StatusBadRequest, "%s", `Error from remote service: {"__type":"ValidationException","message":"bad (arn:x/nightly-1)"}`),
		"a server error":     mlerr.Provider(http.StatusInternalServerError, "%s", "ResourceInUse (arn:x/nightly-1)"),
	} {
		if job, ok := provider.Adopt(sm, err, "nightly-1"); ok {
			t.Errorf("%s: adopted %s", name, job)
		}
	}
	if _, ok := provider.Adopt(provider.Named("openai"), inUse("nightly-1"), "nightly-1"); ok {
		t.Error("OpenAI adopted a SageMaker refusal")
	}
}

func TestOpenAIFind(t *testing.T) {
	l, ok := provider.AsLister(provider.Named("openai"))
	if !ok {
		t.Fatal("OpenAI is no Lister")
	}
	if got := l.ListURL("https://api.openai.com/v1/batches", ""); got != "https://api.openai.com/v1/batches?limit=100" {
		t.Errorf("first page URL %s", got)
	}
	if got := l.ListURL("https://api.openai.com/v1/batches", "batch_b"); got != "https://api.openai.com/v1/batches?limit=100&after=batch_b" {
		t.Errorf("next page URL %s", got)
	}
	page := func(more bool, batches ...string) []byte {
		var data []json.RawMessage
		for _, b := range batches {
			data = append(data, json.RawMessage(b))
		}
		last := ""
		if len(batches) > 0 {
			var b struct{ ID string }
			_ = json.Unmarshal([]byte(batches[len(batches)-1]), &b)
			last = b.ID
		}
		out, _ := json.Marshal(map[string]any{"object": "list", "data": data, "has_more": more, "last_id": last})
		return out
	}
	mine := `{"id":"batch_m","created_at":1000,"metadata":{"mlsidecar_task_id":"` + taskID + `"}}`
	other := `{"id":"batch_o","created_at":1001,"metadata":{"mlsidecar_task_id":"someone-else"}}`
	noMeta := `{"id":"batch_n","created_at":1002,"metadata":null}`
	tests := []struct {
		name      string
		page      []byte
		wantJob   string
		wantAfter string
	}{
		{"found", page(true, noMeta, other, mine), mine, ""},
		{"next page", page(true, noMeta, other), "", "batch_o"},
		{"last page", page(false, noMeta, other), "", ""},
		{"older than the task", page(true, `{"id":"batch_old","created_at":10}`), "", ""},
		{"empty", page(false), "", ""},
	}
	for _, tc := range tests {
		job, after, err := l.Find(tc.page, taskID, 900)
		if err != nil || string(job) != tc.wantJob || after != tc.wantAfter {
			t.Errorf("%s: got %s after %q (%v), want %s after %q", tc.name, job, after, err, tc.wantJob, tc.wantAfter)
		}
	}
	if _, _, err := l.Find([]byte(`<html>`), taskID, 0); err == nil {
		t.Error("a page that is no list was read")
	}
}

// FuzzWithKey: whatever the template made of the body, a key is added only
// to a JSON object, which stays one and keeps every field it had.
func FuzzWithKey(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1}`, ` { "a" : [1,2] } `, `{"metadata":1}`, `[]`, `null`, `{"a":1}x`, `{"a":"}"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, name := range []string{"openai", "bedrock", "sagemaker", "cohere"} {
			out, key := provider.WithKey(provider.Named(name), []byte(body), taskID)
			if key == "" || name == "sagemaker" {
				if string(out) != body {
					t.Fatalf("%s: body changed without a key: %q → %q", name, body, out)
				}
				continue
			}
			var before, after map[string]json.RawMessage
			if err := json.Unmarshal([]byte(body), &before); err != nil {
				t.Fatalf("%s: key %q added to a body that is no object: %q", name, key, body)
			}
			if err := json.Unmarshal(out, &after); err != nil {
				t.Fatalf("%s: %q became %q, no JSON object: %v", name, body, out, err)
			}
			if len(after) != len(before)+1 {
				t.Fatalf("%s: %q → %q added no field", name, body, out)
			}
			for k := range before {
				if _, ok := after[k]; !ok {
					t.Fatalf("%s: %q → %q lost %s", name, body, out, k)
				}
			}
		}
	})
}
