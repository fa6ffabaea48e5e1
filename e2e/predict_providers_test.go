package e2e

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/mlsidecar/mlsidecar/e2e/providers/awsdouble"
	"github.com/mlsidecar/mlsidecar/e2e/providers/bedrock"
	"github.com/mlsidecar/mlsidecar/e2e/providers/cohere"
	"github.com/mlsidecar/mlsidecar/e2e/providers/fault"
	"github.com/mlsidecar/mlsidecar/e2e/providers/sagemaker"
)

// The connectors below are ML Commons' remote inference blueprints
// (docs/remote_inference_blueprints in opensearch-project/ml-commons) with
// only the URL, the credentials and, where a test needs it, client_config
// changed.

// cohereBlueprint is cohere_connector_embedding_blueprint.md, model
// embed-english-v3.0.
const cohereBlueprint = `{
  "name": "Cohere Embed Model",
  "description": "The connector to Cohere's public embed API",
  "version": "1",
  "protocol": "http",
  "credential": {
    "cohere_key": "<ENTER_COHERE_API_KEY_HERE>"
  },
  "parameters": {
    "model": "embed-english-v3.0",
    "input_type":"search_document",
    "truncate": "END"
  },
  "actions": [
    {
      "action_type": "predict",
      "method": "POST",
      "url": "https://api.cohere.ai/v1/embed",
      "headers": {
        "Authorization": "Bearer ${credential.cohere_key}",
        "Request-Source": "unspecified:opensearch"
      },
      "request_body": "{ \"texts\": ${parameters.texts}, \"truncate\": \"${parameters.truncate}\", \"model\": \"${parameters.model}\", \"input_type\": \"${parameters.input_type}\" }",
      "pre_process_function": "connector.pre_process.cohere.embedding",
      "post_process_function": "connector.post_process.cohere.embedding"
    }
  ]
}`

// bedrockBlueprint is bedrock_connector_titan_embedding_blueprint.md, Titan
// text embeddings v1, with the blueprint's "x-amz-content-sha256: required"
// header (the signer must put the real payload hash there).
const bedrockBlueprint = `{
  "name": "Amazon Bedrock Connector: embedding",
  "description": "The connector to bedrock Titan embedding model",
  "version": 1,
  "protocol": "aws_sigv4",
  "parameters": {
    "region": "us-east-1",
    "service_name": "bedrock",
    "model": "amazon.titan-embed-text-v1"
  },
  "credential": <CREDENTIAL>,
  "actions": [
    {
      "action_type": "predict",
      "method": "POST",
      "url": "<URL>",
      "headers": {
        "content-type": "application/json",
        "x-amz-content-sha256": "required"
      },
      "request_body": "{ \"inputText\": \"${parameters.inputText}\" }",
      "pre_process_function": "connector.pre_process.bedrock.embedding",
      "post_process_function": "connector.post_process.bedrock.embedding"
    }
  ]
}`

// sageMakerBlueprint is sagemaker_connector_blueprint.md with the default
// embedding pre/post-process functions. The blueprint's request_body is the
// bare "${parameters.input}"; the double's imagined model container takes a
// JSON object, so the texts go under "inputs" (as Hugging Face containers
// take them).
const sageMakerBlueprint = `{
  "name": "sagemaker: embedding",
  "description": "Test connector for Sagemaker embedding model",
  "version": 1,
  "protocol": "aws_sigv4",
  "credential": <CREDENTIAL>,
  "parameters": {
    "region": "us-east-1",
    "service_name": "sagemaker"
  },
  "actions": [
    {
      "action_type": "predict",
      "method": "POST",
      "headers": {
        "content-type": "application/json"
      },
      "url": "<URL>",
      "request_body": "{ \"inputs\": ${parameters.input} }",
      "pre_process_function": "connector.pre_process.default.embedding",
      "post_process_function": "connector.post_process.default.embedding"
    }
  ]
}`

// withClientConfig adds a client_config object after the protocol field.
func withClientConfig(connector, clientConfig string) string {
	if clientConfig == "" {
		return connector
	}
	out := regexp.MustCompile(`("protocol": "[a-z_0-9]+",)`).ReplaceAllString(connector, `$1 "client_config": `+clientConfig+`,`)
	if out == connector {
		panic("withClientConfig: no protocol field")
	}
	return out
}

// awsConnector fills a SigV4 blueprint with a URL and credentials.
func awsConnector(blueprint, url string, c awsdouble.Credentials, clientConfig string) string {
	cred := map[string]string{"access_key": c.AccessKeyID, "secret_key": c.SecretAccessKey}
	if c.SessionToken != "" {
		cred["session_token"] = c.SessionToken
	}
	b, _ := json.Marshal(cred)
	return withClientConfig(strings.NewReplacer("<CREDENTIAL>", string(b), "<URL>", url).Replace(blueprint), clientConfig)
}

// providerPredict is mlCall that fails the test when the answer shows any of
// secrets.
func providerPredict(t *testing.T, sc *sidecar, secrets []string, method, path, body string) (int, map[string]any) {
	t.Helper()
	status, v := mlCall(t, sc, method, path, body)
	b, _ := json.Marshal(v)
	for _, s := range secrets {
		if strings.Contains(string(b), s) {
			t.Fatalf("%s %s: the answer shows a secret: %s", method, path, b)
		}
	}
	return status, v
}

// mustPredictVectors calls _predict, insists on 200 and reads the answer as
// vectors per inference result, checking each result's status_code and
// each tensor's ML Commons shape.
func mustPredictVectors(t *testing.T, sc *sidecar, secrets []string, path, body string) [][][]float64 {
	t.Helper()
	status, v := providerPredict(t, sc, secrets, "POST", path, body)
	if status != 200 {
		t.Fatalf("POST %s %s: status %d, want 200: %v", path, body, status, v)
	}
	results, ok := v["inference_results"].([]any)
	if !ok || len(v) != 1 {
		t.Fatalf("answer = %v, want {inference_results}", v)
	}
	var out [][][]float64
	for i, r := range results {
		res, _ := r.(map[string]any)
		if code, _ := res["status_code"].(float64); code != 200 {
			t.Errorf("inference_results[%d].status_code = %v, want 200", i, res["status_code"])
		}
		var vectors [][]float64
		tensors, _ := res["output"].([]any)
		for j, o := range tensors {
			tensor, _ := o.(map[string]any)
			data, _ := tensor["data"].([]any)
			if tensor["name"] != "sentence_embedding" || tensor["data_type"] != "FLOAT32" ||
				fmt.Sprint(tensor["shape"]) != fmt.Sprint([]any{float64(len(data))}) {
				t.Errorf("inference_results[%d].output[%d] = %v, want a FLOAT32 sentence_embedding of shape [%d]", i, j, tensor, len(data))
			}
			vec := make([]float64, 0, len(data))
			for _, x := range data {
				f, _ := x.(float64)
				vec = append(vec, f)
			}
			vectors = append(vectors, vec)
		}
		out = append(out, vectors)
	}
	return out
}

// vectorsWithin compares vectors per inference result to 1e-6.
func vectorsWithin(t *testing.T, got, want [][][]float64) {
	t.Helper()
	if diff := cmp.Diff(want, got, cmpopts.EquateApprox(0, 1e-6)); diff != "" {
		t.Errorf("vectors per inference result (-want +got):\n%s", diff)
	}
}

// wantProviderError checks a provider error passed through: the provider's
// status and "Error from remote service: " followed by its body.
func wantProviderError(t *testing.T, status int, v map[string]any, wantStatus int, bodyPart string) {
	t.Helper()
	if status != wantStatus {
		t.Fatalf("status %d, want the provider's %d: %v", status, wantStatus, v)
	}
	wantError(t, v, wantStatus, "status_exception", "Error from remote service: ")
	e, _ := v["error"].(map[string]any)
	reason := fmt.Sprint(e["reason"])
	if !strings.HasPrefix(reason, "Error from remote service: ") || !strings.Contains(reason, bodyPart) {
		t.Errorf("reason = %q, want \"Error from remote service: \" and the provider's body with %q", reason, bodyPart)
	}
}

// wantNoSecretsInLogs fails when the sidecar's logs show any of secrets.
func wantNoSecretsInLogs(t *testing.T, sc *sidecar, secrets ...string) {
	t.Helper()
	logs := sc.logs.String()
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("the sidecar's logs contain the secret %q", s)
		}
	}
}

// jsonEqual reports whether two JSON texts hold the same value.
func jsonEqual(t *testing.T, got []byte, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		return false
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad JSON in the test: %v: %s", err, want)
	}
	return cmp.Equal(g, w)
}

// embedCalls counts the requests the Cohere double received on /v1/embed.
func embedCalls(double *cohere.Server) int {
	n := 0
	for _, r := range double.Requests() {
		if r.Path == "/v1/embed" {
			n++
		}
	}
	return n
}

// awsCalls counts the requests an AWS double received on path.
func awsCalls(reqs []awsdouble.Recorded, path string) int {
	n := 0
	for _, r := range reqs {
		if r.Path == path {
			n++
		}
	}
	return n
}

const cohereTestKey = "co-e2e-SECRET-cohere-key-7f3a"

// trickyText needs JSON escaping in every way a request body template can
// get wrong: quotes, a backslash, a slash, a control character, non-ASCII
// and a character outside the BMP.
const trickyText = "say \"hi\" \\ a/b\ttab ünï 😀"

// Given the Cohere embedding blueprint pointed at a Cohere double, when
// _predict runs with parameters and with text_docs, then the vectors are
// the double's in ML Commons' tensor shape, the double received the
// blueprint's body and headers, a 429 is retried after its Retry-After, a
// slow provider is a 504, a garbage answer a 502, and a refused key the
// provider's 401.
func TestPredictCohere(t *testing.T) {
	const dim = 8
	double := cohere.New(cohere.Options{APIKey: cohereTestKey, Dimensions: dim})
	double.Start()
	t.Cleanup(double.Close)
	sc := startSidecar(t, withArgs("--index-prefix", ".e2e-pred-cohere-")...)

	connector := strings.NewReplacer("https://api.cohere.ai", double.URL(), "<ENTER_COHERE_API_KEY_HERE>", cohereTestKey).Replace(cohereBlueprint)
	model := deployModel(t, sc, withClientConfig(connector,
		`{"max_retry_times": 1, "retry_backoff_millis": 10, "read_timeout": 1}`))
	secrets := []string{cohereTestKey}
	predictPath := "/_plugins/_ml/models/" + model + "/_predict"
	want := [][][]float64{{cohere.Embedding("a", dim), cohere.Embedding("b", dim)}}

	for _, tt := range []struct{ name, path, body string }{
		{"parameters", predictPath, `{"parameters":{"texts":["a","b"]}}`},
		{"text_docs", "/_plugins/_ml/_predict/text_embedding/" + model, `{"text_docs":["a","b"]}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := len(double.Requests())
			vectorsWithin(t, mustPredictVectors(t, sc, secrets, tt.path, tt.body), want)

			reqs := double.Requests()[before:]
			if len(reqs) != 1 {
				t.Fatalf("the double saw %d requests, want 1", len(reqs))
			}
			got := reqs[0]
			if got.Method != "POST" || got.Path != "/v1/embed" {
				t.Errorf("request = %s %s, want POST /v1/embed", got.Method, got.Path)
			}
			if h := got.Header.Get("Authorization"); h != "Bearer "+cohereTestKey {
				t.Errorf("Authorization = %q, want the bearer key", h)
			}
			if h := got.Header.Get("Request-Source"); h != "unspecified:opensearch" {
				t.Errorf("Request-Source = %q, want the blueprint's", h)
			}
			if !jsonEqual(t, got.Body, `{"texts":["a","b"],"truncate":"END","model":"embed-english-v3.0","input_type":"search_document"}`) {
				t.Errorf("body = %s, want the blueprint's with texts [a b]", got.Body)
			}
		})
	}

	t.Run("escaping", func(t *testing.T) {
		docs, _ := json.Marshal([]string{trickyText, "b"})
		for _, path := range []string{"/_plugins/_ml/_predict/text_embedding/" + model, predictPath} {
			body := `{"text_docs":` + string(docs) + `}`
			if path == predictPath {
				body = `{"parameters":{"texts":` + string(docs) + `}}`
			}
			vectorsWithin(t, mustPredictVectors(t, sc, secrets, path, body),
				[][][]float64{{cohere.Embedding(trickyText, dim), cohere.Embedding("b", dim)}})
		}
	})
	t.Run("429 then success", func(t *testing.T) {
		before := embedCalls(double)
		double.Faults.Inject(cohere.OpEmbed, fault.Fault{Status: 429, RetryAfter: time.Second})
		start := time.Now()
		got := mustPredictVectors(t, sc, secrets, predictPath, `{"parameters":{"texts":["again"]}}`)
		elapsed := time.Since(start)
		vectorsWithin(t, got, [][][]float64{{cohere.Embedding("again", dim)}})
		if n := embedCalls(double) - before; n != 2 {
			t.Errorf("the double saw %d embed requests, want 2 (one 429, one retry)", n)
		}
		if elapsed < 900*time.Millisecond {
			t.Errorf("the call took %v, want the retry to wait for Retry-After: 1", elapsed)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		double.Faults.Inject(cohere.OpEmbed, fault.Fault{Delay: 3 * time.Second})
		status, v := providerPredict(t, sc, secrets, "POST", predictPath, `{"parameters":{"texts":["slow"]}}`)
		if status != 504 || v["status"] != float64(504) {
			t.Errorf("slow provider: %d %v, want 504", status, v)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		double.Faults.Inject(cohere.OpEmbed, fault.Fault{Garbage: true})
		status, v := providerPredict(t, sc, secrets, "POST", predictPath, `{"parameters":{"texts":["x"]}}`)
		if status != 502 || v["status"] != float64(502) {
			t.Errorf("garbage answer: %d %v, want 502", status, v)
		}
	})
	t.Run("refused key", func(t *testing.T) {
		wrong := deployModel(t, sc, strings.Replace(connector, cohereTestKey, "co-e2e-wrong-key", 1))
		status, v := providerPredict(t, sc, secrets, "POST", "/_plugins/_ml/models/"+wrong+"/_predict", `{"parameters":{"texts":["x"]}}`)
		wantProviderError(t, status, v, 401, `{"message":"invalid api token"}`)
	})
	wantNoSecretsInLogs(t, sc, cohereTestKey, "co-e2e-wrong-key")
}

// Given the Bedrock Titan embedding blueprint (aws_sigv4) pointed at a
// Bedrock double that verifies every signature, when _predict runs, then
// each text is one signed InvokeModel call with the blueprint's body, the
// vectors are the double's in order, session credentials work, a wrong
// secret gets the provider's 403, throttling is retried, and no secret
// reaches the logs.
func TestPredictBedrock(t *testing.T) {
	const dim = 8
	keys := awsdouble.Credentials{AccessKeyID: "AKIDE2EBEDROCK", SecretAccessKey: "e2e-bedrock-SECRET/k+ey0123456789"}
	session := awsdouble.Credentials{AccessKeyID: "ASIAE2EBEDROCK", SecretAccessKey: "e2e-bedrock-SECRET-session/ab+c",
		SessionToken: "e2e-bedrock-SECRET-session-token//+=="}
	const wrongSecret = "e2e-bedrock-SECRET-wrong-secret"
	double := bedrock.New(bedrock.Options{Credentials: []awsdouble.Credentials{keys, session}, Dimensions: dim})
	double.Start()
	t.Cleanup(double.Close)
	sc := startSidecar(t, withArgs("--index-prefix", ".e2e-pred-bedrock-")...)

	secrets := []string{keys.SecretAccessKey, session.SecretAccessKey, session.SessionToken, wrongSecret}
	invokePath := "/model/amazon.titan-embed-text-v1/invoke"
	literalURL := double.URL() + invokePath
	clientConfig := `{"max_retry_times": 1, "retry_backoff_millis": 10, "read_timeout": 5}`
	model := deployModel(t, sc, awsConnector(bedrockBlueprint, literalURL, keys, clientConfig))
	scope := regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=` + keys.AccessKeyID + `/[0-9]{8}/us-east-1/bedrock/aws4_request, ?SignedHeaders=[a-z0-9;-]*host[a-z0-9;-]*, ?Signature=[0-9a-f]{64}$`)

	t.Run("text_docs", func(t *testing.T) {
		before := len(double.Requests())
		got := mustPredictVectors(t, sc, secrets, "/_plugins/_ml/_predict/text_embedding/"+model, `{"text_docs":["hello","world"]}`)
		vectorsWithin(t, got, [][][]float64{{bedrock.Embedding("hello", dim)}, {bedrock.Embedding("world", dim)}})

		reqs := double.Requests()[before:]
		if len(reqs) != 2 {
			t.Fatalf("the double saw %d requests, want 2 (one per text)", len(reqs))
		}
		for i, text := range []string{"hello", "world"} {
			r := reqs[i]
			if r.Method != "POST" || r.Path != invokePath {
				t.Errorf("request %d = %s %s, want POST %s", i, r.Method, r.Path, invokePath)
			}
			if !jsonEqual(t, r.Body, `{"inputText":"`+text+`"}`) {
				t.Errorf("request %d body = %s, want {\"inputText\":%q}", i, r.Body, text)
			}
			if h := r.Header.Get("Authorization"); !scope.MatchString(h) {
				t.Errorf("request %d Authorization = %q, want Credential=%s/<date>/us-east-1/bedrock/aws4_request", i, h, keys.AccessKeyID)
			}
			if h := r.Header.Get("X-Amz-Content-Sha256"); h == "required" || len(h) != 64 {
				t.Errorf("request %d x-amz-content-sha256 = %q, want the payload's SHA-256", i, h)
			}
			if h := r.Header.Get("X-Amz-Security-Token"); h != "" {
				t.Errorf("request %d carries a session token %q, want none", i, h)
			}
		}
	})
	t.Run("parameters", func(t *testing.T) {
		got := mustPredictVectors(t, sc, secrets, "/_plugins/_ml/models/"+model+"/_predict",
			`{"parameters":{"inputText":"What is the meaning of life?"}}`)
		vectorsWithin(t, got, [][][]float64{{bedrock.Embedding("What is the meaning of life?", dim)}})
	})
	t.Run("escaping", func(t *testing.T) {
		text, _ := json.Marshal(trickyText)
		want := [][][]float64{{bedrock.Embedding(trickyText, dim)}}
		vectorsWithin(t, mustPredictVectors(t, sc, secrets, "/_plugins/_ml/_predict/text_embedding/"+model, `{"text_docs":[`+string(text)+`]}`), want)
		vectorsWithin(t, mustPredictVectors(t, sc, secrets, "/_plugins/_ml/models/"+model+"/_predict", `{"parameters":{"inputText":`+string(text)+`}}`), want)
	})
	t.Run("request parameters do not change the signing scope", func(t *testing.T) {
		// ML Commons signs with the region and service_name stored on the
		// connector; request parameters of those names only feed templates.
		before := len(double.Requests())
		got := mustPredictVectors(t, sc, secrets, "/_plugins/_ml/models/"+model+"/_predict",
			`{"parameters":{"inputText":"scoped","region":"eu-west-1","service_name":"s3"}}`)
		vectorsWithin(t, got, [][][]float64{{bedrock.Embedding("scoped", dim)}})
		if reqs := double.Requests()[before:]; len(reqs) != 1 || !scope.MatchString(reqs[0].Header.Get("Authorization")) {
			t.Errorf("requests = %d, Authorization %v, want one scoped to us-east-1/bedrock", len(reqs), reqs)
		}
	})
	t.Run("session token", func(t *testing.T) {
		// The blueprint's own URL template, with the model from the parameters.
		withToken := deployModel(t, sc, awsConnector(bedrockBlueprint, double.URL()+"/model/${parameters.model}/invoke", session, ""))
		before := len(double.Requests())
		got := mustPredictVectors(t, sc, secrets, "/_plugins/_ml/_predict/text_embedding/"+withToken, `{"text_docs":["hello"]}`)
		vectorsWithin(t, got, [][][]float64{{bedrock.Embedding("hello", dim)}})
		reqs := double.Requests()[before:]
		if len(reqs) != 1 {
			t.Fatalf("the double saw %d requests, want 1", len(reqs))
		}
		if h := reqs[0].Header.Get("X-Amz-Security-Token"); h != session.SessionToken {
			t.Errorf("X-Amz-Security-Token = %q, want the connector's session token", h)
		}
		if h := reqs[0].Header.Get("Authorization"); !strings.Contains(h, "Credential="+session.AccessKeyID+"/") {
			t.Errorf("Authorization = %q, want the session's access key", h)
		}
	})
	t.Run("wrong secret key", func(t *testing.T) {
		bad := keys
		bad.SecretAccessKey = wrongSecret
		wrong := deployModel(t, sc, awsConnector(bedrockBlueprint, literalURL, bad, ""))
		status, v := providerPredict(t, sc, secrets, "POST", "/_plugins/_ml/models/"+wrong+"/_predict", `{"parameters":{"inputText":"x"}}`)
		wantProviderError(t, status, v, 403, "The request signature we calculated does not match the signature you provided.")
	})
	t.Run("throttled then success", func(t *testing.T) {
		before := awsCalls(double.Requests(), invokePath)
		double.Faults.Inject(bedrock.OpInvokeModel, fault.Fault{Status: 429})
		got := mustPredictVectors(t, sc, secrets, "/_plugins/_ml/models/"+model+"/_predict", `{"parameters":{"inputText":"again"}}`)
		vectorsWithin(t, got, [][][]float64{{bedrock.Embedding("again", dim)}})
		if n := awsCalls(double.Requests(), invokePath) - before; n != 2 {
			t.Errorf("the double saw %d InvokeModel requests, want 2 (one ThrottlingException, one retry)", n)
		}
	})
	t.Run("throttled without retries", func(t *testing.T) {
		// With client_config left out, max_retry_times is 0: ML Commons does
		// not retry, and the provider's 429 reaches the caller.
		noRetry := deployModel(t, sc, awsConnector(bedrockBlueprint, literalURL, keys, ""))
		double.Faults.Inject(bedrock.OpInvokeModel, fault.Fault{Status: 429})
		status, v := providerPredict(t, sc, secrets, "POST", "/_plugins/_ml/models/"+noRetry+"/_predict", `{"parameters":{"inputText":"x"}}`)
		wantProviderError(t, status, v, 429, "Too many requests, please wait before trying again.")
	})
	wantNoSecretsInLogs(t, sc, secrets...)
}

// Given the SageMaker embedding blueprint (aws_sigv4, service sagemaker)
// pointed at a SageMaker double that verifies every signature, when
// _predict runs with text_docs and with parameters, then the texts go in
// one signed InvokeEndpoint call and the vectors are the double's; a wrong
// signature and an unknown endpoint get the provider's 4xx.
func TestPredictSageMaker(t *testing.T) {
	const dim = 8
	const endpoint = "e2e-embedder"
	keys := awsdouble.Credentials{AccessKeyID: "AKIDE2ESAGEMAKER", SecretAccessKey: "e2e-sagemaker-SECRET/k+ey987"}
	const wrongSecret = "e2e-sagemaker-SECRET-wrong"
	double := sagemaker.New(sagemaker.Options{Credentials: []awsdouble.Credentials{keys}, Endpoints: []string{endpoint}, Dimensions: dim})
	double.Start()
	t.Cleanup(double.Close)
	sc := startSidecar(t, withArgs("--index-prefix", ".e2e-pred-sagemaker-")...)

	secrets := []string{keys.SecretAccessKey, wrongSecret}
	invokePath := "/endpoints/" + endpoint + "/invocations"
	model := deployModel(t, sc, awsConnector(sageMakerBlueprint, double.URL()+invokePath, keys, ""))
	want := [][][]float64{{sagemaker.Embedding("hello", dim), sagemaker.Embedding("world", dim)}}
	scope := regexp.MustCompile(`Credential=` + keys.AccessKeyID + `/[0-9]{8}/us-east-1/sagemaker/aws4_request[, ]`)

	for _, tt := range []struct{ name, path, body string }{
		{"text_docs", "/_plugins/_ml/_predict/text_embedding/" + model, `{"text_docs":["hello","world"]}`},
		{"parameters", "/_plugins/_ml/models/" + model + "/_predict", `{"parameters":{"input":["hello","world"]}}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := len(double.Requests())
			vectorsWithin(t, mustPredictVectors(t, sc, secrets, tt.path, tt.body), want)
			reqs := double.Requests()[before:]
			if len(reqs) != 1 {
				t.Fatalf("the double saw %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.Method != "POST" || r.Path != invokePath {
				t.Errorf("request = %s %s, want POST %s", r.Method, r.Path, invokePath)
			}
			if !jsonEqual(t, r.Body, `{"inputs":["hello","world"]}`) {
				t.Errorf("body = %s, want {\"inputs\":[\"hello\",\"world\"]}", r.Body)
			}
			if h := r.Header.Get("Authorization"); !scope.MatchString(h) {
				t.Errorf("Authorization = %q, want Credential=%s/<date>/us-east-1/sagemaker/aws4_request", h, keys.AccessKeyID)
			}
		})
	}
	t.Run("escaping", func(t *testing.T) {
		docs, _ := json.Marshal([]string{trickyText})
		vectorsWithin(t, mustPredictVectors(t, sc, secrets, "/_plugins/_ml/_predict/text_embedding/"+model, `{"text_docs":`+string(docs)+`}`),
			[][][]float64{{sagemaker.Embedding(trickyText, dim)}})
	})
	t.Run("wrong signature", func(t *testing.T) {
		bad := keys
		bad.SecretAccessKey = wrongSecret
		wrong := deployModel(t, sc, awsConnector(sageMakerBlueprint, double.URL()+invokePath, bad, ""))
		status, v := providerPredict(t, sc, secrets, "POST", "/_plugins/_ml/_predict/text_embedding/"+wrong, `{"text_docs":["hello"]}`)
		wantProviderError(t, status, v, 403, "The request signature we calculated does not match the signature you provided.")
	})
	t.Run("unknown endpoint", func(t *testing.T) {
		unknown := deployModel(t, sc, awsConnector(sageMakerBlueprint, double.URL()+"/endpoints/no-such-endpoint/invocations", keys, ""))
		status, v := providerPredict(t, sc, secrets, "POST", "/_plugins/_ml/_predict/text_embedding/"+unknown, `{"text_docs":["hello"]}`)
		wantProviderError(t, status, v, 400, "Endpoint no-such-endpoint of account 123456789012 not found.")
	})
	wantNoSecretsInLogs(t, sc, secrets...)
}
