package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/mlsidecar/mlsidecar/e2e/providers/fault"
	"github.com/mlsidecar/mlsidecar/e2e/providers/openai"
)

// localDoubles are the flags a sidecar needs to call doubles on 127.0.0.1.
var localDoubles = []string{"--trusted-endpoint-regex", `^http://127\.0\.0\.1:[0-9]+/.*$`, "--allow-private-endpoints"}

func withArgs(extra ...string) []string { return append(append([]string{}, localDoubles...), extra...) }

const openAIKey = "sk-e2e-double-key-42"

// openAIConnector is the documentation's connector pointed at a double.
func openAIConnector(baseURL, inputFileID, clientConfig string) string {
	c := strings.ReplaceAll(docConnector, "https://api.openai.com", baseURL)
	c = strings.Replace(c, docAPIKey, openAIKey, 1)
	c = strings.Replace(c, "<your input file id in OpenAI>", inputFileID, 1)
	if clientConfig != "" {
		c = strings.Replace(c, `"protocol": "http",`, `"protocol": "http", "client_config": `+clientConfig+`,`, 1)
	}
	return c
}

// deployModel creates a connector and registers a model with ?deploy=true.
func deployModel(t *testing.T, sc *sidecar, connector string) string {
	t.Helper()
	cid := mustML(t, sc, 200, "POST", "/_plugins/_ml/connectors/_create", connector)["connector_id"].(string)
	reg := mustML(t, sc, 200, "POST", "/_plugins/_ml/models/_register?deploy=true",
		`{"name":"m-`+cid+`","function_name":"remote","connector_id":"`+cid+`"}`)
	return reg["model_id"].(string)
}

// embeddingsOf reads sentence_embedding tensors from a predict answer.
func embeddingsOf(t *testing.T, v map[string]any) [][]float64 {
	t.Helper()
	var out [][]float64
	for _, r := range v["inference_results"].([]any) {
		res := r.(map[string]any)
		if res["status_code"].(float64) != 200 {
			t.Errorf("status_code = %v, want 200", res["status_code"])
		}
		for _, o := range res["output"].([]any) {
			tensor := o.(map[string]any)
			if tensor["name"] != "sentence_embedding" || tensor["data_type"] != "FLOAT32" {
				t.Errorf("tensor %v, want a FLOAT32 sentence_embedding", tensor)
			}
			var vec []float64
			for _, x := range tensor["data"].([]any) {
				vec = append(vec, x.(float64))
			}
			out = append(out, vec)
		}
	}
	return out
}

func sameVector(got []float64, want []float32) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if math.Abs(got[i]-float64(want[i])) > 1e-6 {
			return false
		}
	}
	return true
}

// Given the OpenAI connector of the documentation pointed at an OpenAI
// double, when _predict runs with parameters and with text_docs, then the
// embeddings are the double's, in order, in ML Commons' tensor shape.
func TestPredictOpenAI(t *testing.T) {
	double := openai.New(openai.Options{APIKey: openAIKey, Dim: 8})
	double.Start()
	t.Cleanup(double.Close)
	sc := startSidecar(t, withArgs("--index-prefix", ".e2e-pred-oai-")...)
	model := deployModel(t, sc, openAIConnector(double.URL(), "file-unused",
		`{"max_retry_times": 2, "retry_backoff_millis": 10, "read_timeout": 2}`))

	for name, req := range map[string][2]string{
		"parameters": {"/_plugins/_ml/models/" + model + "/_predict", `{"parameters":{"input":["hello","world"]}}`},
		"text_docs":  {"/_plugins/_ml/_predict/text_embedding/" + model, `{"text_docs":["hello","world"]}`},
	} {
		t.Run(name, func(t *testing.T) {
			got := embeddingsOf(t, mustML(t, sc, 200, "POST", req[0], req[1]))
			if len(got) != 2 || !sameVector(got[0], openai.Embedding("hello", 8)) || !sameVector(got[1], openai.Embedding("world", 8)) {
				t.Errorf("embeddings = %v, want the double's for hello and world", got)
			}
		})
	}

	t.Run("429 then success", func(t *testing.T) {
		before := double.Requests("embeddings")
		double.Faults.Inject("embeddings", fault.Fault{Status: 429, RetryAfter: time.Second})
		mustML(t, sc, 200, "POST", "/_plugins/_ml/models/"+model+"/_predict", `{"parameters":{"input":["again"]}}`)
		if n := double.Requests("embeddings") - before; n != 2 {
			t.Errorf("double saw %d embedding requests, want 2 (one 429, one retry)", n)
		}
		if got := sc.metric(t, "mlsidecar_remote_retries_total", map[string]string{"action": "predict"}); got < 1 {
			t.Errorf("retries metric = %v, want at least 1", got)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		double.Faults.Inject("embeddings", fault.Fault{Delay: 5 * time.Second})
		status, v := mlCall(t, sc, "POST", "/_plugins/_ml/models/"+model+"/_predict", `{"parameters":{"input":["slow"]}}`)
		if status != 504 {
			t.Errorf("slow provider: %d %v, want 504", status, v)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		double.Faults.Inject("embeddings", fault.Fault{Garbage: true})
		status, v := mlCall(t, sc, "POST", "/_plugins/_ml/models/"+model+"/_predict", `{"parameters":{"input":["x"]}}`)
		if status != 502 {
			t.Errorf("garbage answer: %d %v, want 502", status, v)
		}
	})
	t.Run("provider error keeps its status", func(t *testing.T) {
		double.Faults.Inject("embeddings", fault.Fault{Status: 401})
		status, v := mlCall(t, sc, "POST", "/_plugins/_ml/models/"+model+"/_predict", `{"parameters":{"input":["x"]}}`)
		if status != 401 {
			t.Fatalf("status %d %v, want the provider's 401", status, v)
		}
		wantError(t, v, 401, "status_exception", "Error from remote service: ")
	})
	t.Run("missing placeholder", func(t *testing.T) {
		// ${parameters.input} is unquoted, so the unfilled body is not JSON:
		// ML Commons checks that before it names missing placeholders.
		status, v := mlCall(t, sc, "POST", "/_plugins/_ml/models/"+model+"/_predict", `{"parameters":{"nothing":"x"}}`)
		if status != 400 {
			t.Fatalf("status %d %v, want 400", status, v)
		}
		wantError(t, v, 400, "illegal_argument_exception", `Invalid payload: { "input": ${parameters.input}`)
		status, v = mlCall(t, sc, "POST", "/_plugins/_ml/models/"+model+"/_predict", `{"parameters":{"input":["x"],"model":"${parameters.missing}"}}`)
		if status != 400 {
			t.Fatalf("status %d %v, want 400", status, v)
		}
		wantError(t, v, 400, "illegal_argument_exception", "Some parameter placeholder not filled in payload: missing")
	})
	if strings.Contains(sc.logs.String(), openAIKey) {
		t.Error("logs contain the provider key")
	}

	// Stats count this replica's predictions: 2 + 429 + timeout + garbage +
	// 401 + 2 missing placeholders = 8, of which 5 failed.
	stats := mustML(t, sc, 200, "GET", "/_plugins/_ml/stats", "")
	for _, n := range stats["nodes"].(map[string]any) {
		node := n.(map[string]any)
		if node["ml_request_count"] != 8.0 || node["ml_failure_count"] != 5.0 {
			t.Errorf("node stats = %v, want 8 requests and 5 failures", node)
		}
	}
}

// Given a sidecar that does not allow private addresses, when a connector
// trusted by regex points at loopback or the metadata address, then the
// call is refused before any connection is made.
func TestPredictRefusesPrivateAddresses(t *testing.T) {
	double := openai.New(openai.Options{APIKey: openAIKey})
	double.Start()
	t.Cleanup(double.Close)
	sc := startSidecar(t, "--index-prefix", ".e2e-pred-priv-",
		"--trusted-endpoint-regex", `^http://127\.0\.0\.1:[0-9]+/.*$`, "--trusted-endpoint-regex", `^http://169\.254\.169\.254/.*$`)
	for _, base := range []string{double.URL(), "http://169.254.169.254"} {
		model := deployModel(t, sc, openAIConnector(base, "f", ""))
		status, v := mlCall(t, sc, "POST", "/_plugins/_ml/models/"+model+"/_predict", `{"parameters":{"input":["x"]}}`)
		host := strings.Split(strings.TrimPrefix(base, "http://"), ":")[0]
		if status != 400 {
			t.Fatalf("%s: %d %v, want 400", base, status, v)
		}
		wantError(t, v, 400, "illegal_argument_exception", "Remote inference host name has private ip address: "+host)
	}
	if n := double.Requests("embeddings"); n != 0 {
		t.Errorf("the double saw %d requests, want none", n)
	}
	if got := sc.metric(t, "mlsidecar_outbound_rejections_total", map[string]string{"check": "private_address"}); got < 2 {
		t.Errorf("private address rejections = %v, want 2", got)
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return fmt.Sprintf("%s", b)
}

func faultStatus(status int) fault.Fault { return fault.Fault{Status: status} }
