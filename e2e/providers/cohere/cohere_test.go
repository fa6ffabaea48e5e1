package cohere

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	cohere "github.com/cohere-ai/cohere-go/v2"
	cohereclient "github.com/cohere-ai/cohere-go/v2/client"
	"github.com/cohere-ai/cohere-go/v2/core"
	"github.com/cohere-ai/cohere-go/v2/option"
	"github.com/google/go-cmp/cmp"

	"github.com/mlsidecar/mlsidecar/e2e/providers/fault"
)

const key = "test-key"

func start(t *testing.T, opts Options) *Server {
	t.Helper()
	if opts.APIKey == "" {
		opts.APIKey = key
	}
	s := New(opts)
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// client is the official SDK pointed at the double; attempts 1 turns its
// retries off.
func client(s *Server, token string, attempts uint) *cohereclient.Client {
	return cohereclient.NewClient(option.WithBaseURL(s.URL()), option.WithToken(token), option.WithMaxAttempts(attempts))
}

func ptr[T any](v T) *T { return &v }

func TestEmbed(t *testing.T) {
	s := start(t, Options{})
	c := client(s, key, 1)
	ctx := context.Background()

	got, err := c.Embed(ctx, &cohere.EmbedRequest{
		Texts:     []string{"hello", "world"},
		Model:     ptr("embed-english-v3.0"),
		InputType: cohere.EmbedInputTypeSearchDocument.Ptr(),
	})
	if err != nil {
		t.Fatal(err)
	}
	floats := got.GetEmbeddingsFloats()
	if floats == nil {
		t.Fatalf("response type: got %s, want embeddings_floats", got.ResponseType)
	}
	if diff := cmp.Diff([][]float64{Embedding("hello", 8), Embedding("world", 8)}, floats.Embeddings); diff != "" {
		t.Errorf("embeddings (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"hello", "world"}, floats.Texts); diff != "" {
		t.Errorf("texts (-want +got):\n%s", diff)
	}
	if floats.Id == "" || floats.Meta.GetApiVersion().GetVersion() != "1" {
		t.Errorf("id %q meta %+v", floats.Id, floats.Meta)
	}

	rec := s.Requests()[0]
	var body map[string]any
	if err := json.Unmarshal(rec.Body, &body); err != nil {
		t.Fatal(err)
	}
	if rec.Method != http.MethodPost || rec.Path != "/v1/embed" || rec.Header.Get("Authorization") != "Bearer "+key || body["input_type"] != "search_document" {
		t.Errorf("recorded: %s %s %q %s", rec.Method, rec.Path, rec.Header.Get("Authorization"), rec.Body)
	}

	again, err := c.Embed(ctx, &cohere.EmbedRequest{Texts: []string{"hello"}, Model: ptr("embed-english-v3.0"), InputType: cohere.EmbedInputTypeSearchQuery.Ptr()})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(floats.Embeddings[0], again.GetEmbeddingsFloats().Embeddings[0]); diff != "" {
		t.Errorf("the same text got another vector (-first +second):\n%s", diff)
	}
}

func TestEmbedByType(t *testing.T) {
	s := start(t, Options{Dimensions: 16})
	got, err := client(s, key, 1).Embed(context.Background(), &cohere.EmbedRequest{
		Texts:          []string{"hello"},
		Model:          ptr("embed-english-v3.0"),
		InputType:      cohere.EmbedInputTypeClassification.Ptr(),
		EmbeddingTypes: []cohere.EmbeddingType{cohere.EmbeddingTypeFloat, cohere.EmbeddingTypeInt8, cohere.EmbeddingTypeUbinary},
	})
	if err != nil {
		t.Fatal(err)
	}
	byType := got.GetEmbeddingsByType()
	if byType == nil {
		t.Fatalf("response type: got %s, want embeddings_by_type", got.ResponseType)
	}
	e := byType.Embeddings
	if diff := cmp.Diff([][]float64{Embedding("hello", 16)}, e.Float); diff != "" {
		t.Errorf("float (-want +got):\n%s", diff)
	}
	if len(e.Int8) != 1 || len(e.Int8[0]) != 16 || len(e.Ubinary) != 1 || len(e.Ubinary[0]) != 2 || e.Uint8 != nil {
		t.Errorf("by type: got int8 %v ubinary %v uint8 %v", e.Int8, e.Ubinary, e.Uint8)
	}
}

func TestErrors(t *testing.T) {
	s := start(t, Options{})
	ctx := context.Background()
	req := &cohere.EmbedRequest{Texts: []string{"x"}, Model: ptr("embed-english-v3.0"), InputType: cohere.EmbedInputTypeSearchQuery.Ptr()}

	t.Run("wrong key", func(t *testing.T) {
		_, err := client(s, "wrong", 1).Embed(ctx, req)
		var unauthorized *cohere.UnauthorizedError
		if !errors.As(err, &unauthorized) {
			t.Fatalf("got %v, want UnauthorizedError", err)
		}
		if unauthorized.StatusCode != http.StatusUnauthorized || !strings.Contains(err.Error(), "invalid api token") {
			t.Errorf("got %d %v", unauthorized.StatusCode, err)
		}
	})
	t.Run("input type missing", func(t *testing.T) {
		_, err := client(s, key, 1).Embed(ctx, &cohere.EmbedRequest{Texts: []string{"x"}, Model: ptr("embed-english-v3.0")})
		var bad *cohere.BadRequestError
		if !errors.As(err, &bad) {
			t.Fatalf("got %v, want BadRequestError", err)
		}
	})
	t.Run("429 with Retry-After", func(t *testing.T) {
		before := len(s.Requests())
		s.Faults.Inject(OpEmbed, fault.Fault{Status: http.StatusTooManyRequests, RetryAfter: time.Second})
		_, err := client(s, key, 1).Embed(ctx, req)
		var tooMany *cohere.TooManyRequestsError
		if !errors.As(err, &tooMany) {
			t.Fatalf("got %v, want TooManyRequestsError", err)
		}
		var apiErr *core.APIError
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusTooManyRequests {
			t.Errorf("got %v, want status 429", err)
		}
		if got := len(s.Requests()) - before; got != 1 {
			t.Errorf("requests: got %d, want 1 (retries off)", got)
		}
	})
	t.Run("429 then retried by the SDK", func(t *testing.T) {
		s.Faults.Inject(OpEmbed, fault.Fault{Status: http.StatusTooManyRequests})
		if _, err := client(s, key, 2).Embed(ctx, req); err != nil {
			t.Fatalf("retried call: %v", err)
		}
	})
}

func TestDatasetsAndEmbedJobs(t *testing.T) {
	start0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := start(t, Options{Start: start0})
	c := client(s, key, 1)
	ctx := context.Background()

	created, err := c.Datasets.Create(ctx, &cohere.DatasetsCreateRequest{
		Name: "My Docs",
		Type: cohere.DatasetTypeEmbedInput,
		Data: strings.NewReader("{\"text\":\"a\"}\n{\"text\":\"b c\"}\n{\"text\":\"d\"}\n"),
	})
	if err != nil {
		t.Fatal(err)
	}
	datasetID := created.GetId()
	if datasetID == nil || *datasetID != "my-docs-000001" {
		t.Fatalf("dataset id: got %v", datasetID)
	}
	ds, err := c.Datasets.Get(ctx, *datasetID)
	if err != nil {
		t.Fatal(err)
	}
	if ds.Dataset.ValidationStatus != cohere.DatasetValidationStatusValidated || ds.Dataset.DatasetType != cohere.DatasetTypeEmbedInput ||
		len(ds.Dataset.DatasetParts) != 1 || *ds.Dataset.DatasetParts[0].NumRows != 3 {
		t.Errorf("dataset: got %+v", ds.Dataset)
	}

	job, err := c.EmbedJobs.Create(ctx, &cohere.CreateEmbedJobRequest{
		Model: "embed-english-v3.0", DatasetId: *datasetID, InputType: cohere.EmbedInputTypeSearchDocument, Name: ptr("nightly"),
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.EmbedJobs.Get(ctx, job.JobId)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != cohere.EmbedJobStatusProcessing || !got.CreatedAt.Equal(start0) || got.InputDatasetId != *datasetID || got.OutputDatasetId != nil {
		t.Errorf("new job: got %+v", got)
	}

	s.Advance(time.Minute)
	got, err = c.EmbedJobs.Get(ctx, job.JobId)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != cohere.EmbedJobStatusComplete || got.OutputDatasetId == nil {
		t.Fatalf("after 1m: got %+v, want complete with an output dataset", got)
	}
	out, err := c.Datasets.Get(ctx, *got.OutputDatasetId)
	if err != nil {
		t.Fatal(err)
	}
	if out.Dataset.DatasetType != cohere.DatasetTypeEmbedResult || *out.Dataset.DatasetParts[0].NumRows != 3 {
		t.Errorf("output dataset: got %+v", out.Dataset)
	}
	err = c.EmbedJobs.Cancel(ctx, job.JobId)
	var bad *cohere.BadRequestError
	if !errors.As(err, &bad) {
		t.Errorf("cancel complete job: got %v, want BadRequestError", err)
	}

	// Cancelled while processing.
	second, err := c.EmbedJobs.Create(ctx, &cohere.CreateEmbedJobRequest{Model: "embed-english-v3.0", DatasetId: *datasetID, InputType: cohere.EmbedInputTypeSearchDocument})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.EmbedJobs.Cancel(ctx, second.JobId); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.EmbedJobs.Get(ctx, second.JobId); got.Status != cohere.EmbedJobStatusCancelling {
		t.Errorf("after cancel: got %s, want cancelling", got.Status)
	}
	s.Advance(10 * time.Second)
	if got, _ := c.EmbedJobs.Get(ctx, second.JobId); got.Status != cohere.EmbedJobStatusCancelled {
		t.Errorf("after cancel + 10s: got %s, want cancelled", got.Status)
	}

	// Failed.
	s.FailNextJob()
	third, err := c.EmbedJobs.Create(ctx, &cohere.CreateEmbedJobRequest{Model: "embed-english-v3.0", DatasetId: *datasetID, InputType: cohere.EmbedInputTypeSearchDocument})
	if err != nil {
		t.Fatal(err)
	}
	s.Advance(time.Minute)
	if got, _ := c.EmbedJobs.Get(ctx, third.JobId); got.Status != cohere.EmbedJobStatusFailed {
		t.Errorf("failing job: got %s, want failed", got.Status)
	}

	list, err := c.EmbedJobs.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var statuses []cohere.EmbedJobStatus
	for _, j := range list.EmbedJobs {
		statuses = append(statuses, j.Status)
	}
	if diff := cmp.Diff([]cohere.EmbedJobStatus{cohere.EmbedJobStatusComplete, cohere.EmbedJobStatusCancelled, cohere.EmbedJobStatusFailed}, statuses); diff != "" {
		t.Errorf("listed statuses (-want +got):\n%s", diff)
	}

	_, err = c.EmbedJobs.Get(ctx, "no-such-job")
	var notFound *cohere.NotFoundError
	if !errors.As(err, &notFound) {
		t.Errorf("unknown job: got %v, want NotFoundError", err)
	}
	_, err = c.EmbedJobs.Create(ctx, &cohere.CreateEmbedJobRequest{Model: "embed-english-v3.0", DatasetId: "no-such-dataset", InputType: cohere.EmbedInputTypeSearchDocument})
	if !errors.As(err, &notFound) {
		t.Errorf("unknown dataset: got %v, want NotFoundError", err)
	}

	s.Faults.Inject(OpGetEmbedJob, fault.Fault{Status: http.StatusServiceUnavailable})
	_, err = c.EmbedJobs.Get(ctx, job.JobId)
	var unavailable *cohere.ServiceUnavailableError
	if !errors.As(err, &unavailable) {
		t.Errorf("injected 503: got %v, want ServiceUnavailableError", err)
	}
}

func TestInvalidDataset(t *testing.T) {
	s := start(t, Options{})
	c := client(s, key, 1)
	ctx := context.Background()
	created, err := c.Datasets.Create(ctx, &cohere.DatasetsCreateRequest{Name: "bad", Type: cohere.DatasetTypeEmbedInput, Data: strings.NewReader(`{"title":"no text"}`)})
	if err != nil {
		t.Fatal(err)
	}
	ds, err := c.Datasets.Get(ctx, *created.Id)
	if err != nil {
		t.Fatal(err)
	}
	if ds.Dataset.ValidationStatus != cohere.DatasetValidationStatusFailed || ds.Dataset.ValidationError == nil {
		t.Errorf("dataset: got %+v", ds.Dataset)
	}
	_, err = c.EmbedJobs.Create(ctx, &cohere.CreateEmbedJobRequest{Model: "embed-english-v3.0", DatasetId: *created.Id, InputType: cohere.EmbedInputTypeSearchDocument})
	var bad *cohere.BadRequestError
	if !errors.As(err, &bad) {
		t.Errorf("job on a failed dataset: got %v, want BadRequestError", err)
	}
}
