package openai_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/mlsidecar/mlsidecar/e2e/providers/fault"
	double "github.com/mlsidecar/mlsidecar/e2e/providers/openai"
)

const testKey = "sk-test-0123456789abcdef"

// start runs a double and returns it with an official SDK client pointed at it.
func start(t *testing.T, o double.Options) (*double.Server, openai.Client) {
	t.Helper()
	if o.APIKey == "" {
		o.APIKey = testKey
	}
	s := double.New(o)
	s.Start()
	t.Cleanup(s.Close)
	return s, newClient(s, o.APIKey)
}

func newClient(s *double.Server, key string) openai.Client {
	return openai.NewClient(
		option.WithBaseURL(s.URL()+"/v1/"),
		option.WithAPIKey(key),
		option.WithMaxRetries(0),
	)
}

// line is one batch input line asking for the embedding of input.
func line(customID, input string) string {
	b, _ := json.Marshal(map[string]any{
		"custom_id": customID,
		"method":    "POST",
		"url":       "/v1/embeddings",
		"body":      map[string]any{"model": "text-embedding-ada-002", "input": input},
	})
	return string(b) + "\n"
}

func upload(t *testing.T, c openai.Client, name, content string) *openai.FileObject {
	t.Helper()
	f, err := c.Files.New(t.Context(), openai.FileNewParams{
		File:    openai.File(strings.NewReader(content), name, "application/jsonl"),
		Purpose: openai.FilePurposeBatch,
	})
	if err != nil {
		t.Fatalf("Files.New: %v", err)
	}
	return f
}

func newBatch(t *testing.T, c openai.Client, fileID string) *openai.Batch {
	t.Helper()
	b, err := c.Batches.New(t.Context(), openai.BatchNewParams{
		InputFileID:      fileID,
		Endpoint:         openai.BatchNewParamsEndpointV1Embeddings,
		CompletionWindow: openai.BatchNewParamsCompletionWindow24h,
	})
	if err != nil {
		t.Fatalf("Batches.New: %v", err)
	}
	return b
}

func getBatch(t *testing.T, c openai.Client, id string) *openai.Batch {
	t.Helper()
	b, err := c.Batches.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Batches.Get: %v", err)
	}
	return b
}

// resultLine is one line of a batch output or error file.
type resultLine struct {
	ID       string `json:"id"`
	CustomID string `json:"custom_id"`
	Response *struct {
		StatusCode int             `json:"status_code"`
		RequestID  string          `json:"request_id"`
		Body       json.RawMessage `json:"body"`
	} `json:"response"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func content(t *testing.T, c openai.Client, fileID string) []resultLine {
	t.Helper()
	resp, err := c.Files.Content(t.Context(), fileID)
	if err != nil {
		t.Fatalf("Files.Content(%s): %v", fileID, err)
	}
	defer resp.Body.Close()
	var lines []resultLine
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var l resultLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("output line %q: %v", sc.Text(), err)
		}
		lines = append(lines, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

func customIDs(lines []resultLine) []string {
	ids := make([]string, len(lines))
	for i, l := range lines {
		ids[i] = l.CustomID
	}
	return ids
}

func apiError(t *testing.T, err error) *openai.Error {
	t.Helper()
	var e *openai.Error
	if !errors.As(err, &e) {
		t.Fatalf("got error %v, want *openai.Error", err)
	}
	return e
}

func sameVector(got []float64, want []float32) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if float32(got[i]) != want[i] {
			return false
		}
	}
	return true
}

func TestEmbeddings(t *testing.T) {
	_, c := start(t, double.Options{})
	tests := []struct {
		name       string
		params     openai.EmbeddingNewParams
		wantInputs []string
		wantDim    int
		wantTokens int64
	}{
		{
			name: "one string",
			params: openai.EmbeddingNewParams{
				Model: openai.EmbeddingModelTextEmbeddingAda002,
				Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("hello world")},
			},
			wantInputs: []string{"hello world"},
			wantDim:    8,
			wantTokens: 2,
		},
		{
			name: "strings",
			params: openai.EmbeddingNewParams{
				Model: openai.EmbeddingModelTextEmbeddingAda002,
				Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"a", "b c", "d e f"}},
			},
			wantInputs: []string{"a", "b c", "d e f"},
			wantDim:    8,
			wantTokens: 6,
		},
		{
			name: "dimensions",
			params: openai.EmbeddingNewParams{
				Model:      openai.EmbeddingModelTextEmbedding3Small,
				Input:      openai.EmbeddingNewParamsInputUnion{OfString: openai.String("short")},
				Dimensions: openai.Int(3),
			},
			wantInputs: []string{"short"},
			wantDim:    3,
			wantTokens: 1,
		},
		{
			name: "base64",
			params: openai.EmbeddingNewParams{
				Model:          openai.EmbeddingModelTextEmbedding3Small,
				Input:          openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"x", "y"}},
				EncodingFormat: openai.EmbeddingNewParamsEncodingFormatBase64,
				Dimensions:     openai.Int(16),
			},
			wantInputs: []string{"x", "y"},
			wantDim:    16,
			wantTokens: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := c.Embeddings.New(t.Context(), tt.params)
			if err != nil {
				t.Fatalf("Embeddings.New: %v", err)
			}
			if resp.Object != "list" || resp.Model != tt.params.Model {
				t.Errorf("got object %q model %q, want list %q", resp.Object, resp.Model, tt.params.Model)
			}
			if len(resp.Data) != len(tt.wantInputs) {
				t.Fatalf("got %d embeddings, want %d", len(resp.Data), len(tt.wantInputs))
			}
			for i, d := range resp.Data {
				if d.Index != int64(i) || d.Object != "embedding" {
					t.Errorf("data[%d]: got index %d object %q", i, d.Index, d.Object)
				}
				if want := double.Embedding(tt.wantInputs[i], tt.wantDim); !sameVector(d.Embedding, want) {
					t.Errorf("data[%d]: got %v, want %v", i, d.Embedding, want)
				}
			}
			if resp.Usage.PromptTokens != tt.wantTokens || resp.Usage.TotalTokens != tt.wantTokens {
				t.Errorf("got usage %+v, want %d tokens", resp.Usage, tt.wantTokens)
			}
		})
	}

	t.Run("missing input", func(t *testing.T) {
		_, err := c.Embeddings.New(t.Context(), openai.EmbeddingNewParams{Model: openai.EmbeddingModelTextEmbeddingAda002})
		if e := apiError(t, err); e.StatusCode != http.StatusBadRequest || e.Type != "invalid_request_error" {
			t.Errorf("got %d %q, want 400 invalid_request_error", e.StatusCode, e.Type)
		}
	})
}

func TestEmbeddingIsDeterministicAndUnitLength(t *testing.T) {
	a, b := double.Embedding("same text", 32), double.Embedding("same text", 32)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("Embedding not deterministic (-first +second):\n%s", diff)
	}
	if slices.Equal(a, double.Embedding("other text", 32)) {
		t.Error("different texts got the same embedding")
	}
	var norm float64
	for _, x := range a {
		norm += float64(x) * float64(x)
	}
	if norm < 0.999 || norm > 1.001 {
		t.Errorf("got squared norm %v, want 1", norm)
	}
}

func TestBatchLifecycle(t *testing.T) {
	clock := double.NewClock(time.Unix(1725491753, 0))
	s, c := start(t, double.Options{
		Clock:         clock,
		ValidatingFor: time.Minute,
		InProgressFor: 10 * time.Minute,
		FinalizingFor: time.Minute,
	})
	inputs := map[string]string{"doc-1": "the first document", "doc-2": "the second", "doc-3": "third"}
	input := line("doc-1", inputs["doc-1"]) + line("doc-2", inputs["doc-2"]) +
		`{"custom_id":"doc-bad","method":"POST","url":"/v1/embeddings","body":{"model":"text-embedding-ada-002"}}` + "\n" +
		line("doc-3", inputs["doc-3"])
	in := upload(t, c, "in.jsonl", input)
	if in.Object != "file" || in.Purpose != openai.FileObjectPurposeBatch || in.Status != openai.FileObjectStatusProcessed ||
		in.Filename != "in.jsonl" || in.Bytes != int64(len(input)) || !strings.HasPrefix(in.ID, "file-") {
		t.Errorf("got file %+v", in)
	}
	if want := clock.Now().Unix() + 30*24*3600; in.ExpiresAt != want {
		t.Errorf("got file expires_at %d, want %d", in.ExpiresAt, want)
	}

	b := newBatch(t, c, in.ID)
	created := clock.Now().Unix()
	if b.Status != openai.BatchStatusValidating || b.CreatedAt != created || b.ExpiresAt != created+86400 ||
		b.InputFileID != in.ID || b.Endpoint != "/v1/embeddings" || b.CompletionWindow != "24h" || !strings.HasPrefix(b.ID, "batch_") {
		t.Errorf("created batch: got %s", b.RawJSON())
	}

	steps := []struct {
		advance    time.Duration
		wantStatus openai.BatchStatus
		wantCounts [3]int64 // total, completed, failed
	}{
		{0, openai.BatchStatusValidating, [3]int64{0, 0, 0}},
		{time.Minute, openai.BatchStatusInProgress, [3]int64{4, 0, 0}},
		{5 * time.Minute, openai.BatchStatusInProgress, [3]int64{4, 2, 0}},
		{5 * time.Minute, openai.BatchStatusFinalizing, [3]int64{4, 3, 1}},
		{time.Minute, openai.BatchStatusCompleted, [3]int64{4, 3, 1}},
	}
	for i, step := range steps {
		clock.Advance(step.advance)
		b = getBatch(t, c, b.ID)
		got := [3]int64{b.RequestCounts.Total, b.RequestCounts.Completed, b.RequestCounts.Failed}
		if b.Status != step.wantStatus || got != step.wantCounts {
			t.Fatalf("step %d: got %s counts %v, want %s %v", i, b.Status, got, step.wantStatus, step.wantCounts)
		}
	}
	wantTimes := map[string][2]int64{
		"in_progress_at": {b.InProgressAt, created + 60},
		"finalizing_at":  {b.FinalizingAt, created + 660},
		"completed_at":   {b.CompletedAt, created + 720},
	}
	for name, tt := range wantTimes {
		if tt[0] != tt[1] {
			t.Errorf("got %s %d, want %d", name, tt[0], tt[1])
		}
	}
	if b.Model != "text-embedding-ada-002" || b.Usage.InputTokens != 6 {
		t.Errorf("got model %q usage %+v, want text-embedding-ada-002 with 6 input tokens", b.Model, b.Usage)
	}
	if b.OutputFileID == "" || b.ErrorFileID == "" {
		t.Fatalf("got output_file_id %q error_file_id %q, want both", b.OutputFileID, b.ErrorFileID)
	}

	out := content(t, c, b.OutputFileID)
	if diff := cmp.Diff([]string{"doc-1", "doc-2", "doc-3"}, customIDs(out)); diff != "" {
		t.Errorf("output custom_ids (-want +got):\n%s", diff)
	}
	for _, l := range out {
		if !strings.HasPrefix(l.ID, "batch_req_") || l.Error != nil || l.Response == nil || l.Response.StatusCode != 200 || l.Response.RequestID == "" {
			t.Errorf("output line %+v", l)
			continue
		}
		var body openai.CreateEmbeddingResponse
		if err := json.Unmarshal(l.Response.Body, &body); err != nil {
			t.Fatalf("output body: %v", err)
		}
		if len(body.Data) != 1 || !sameVector(body.Data[0].Embedding, double.Embedding(inputs[l.CustomID], 8)) {
			t.Errorf("%s: got %s, want the embedding of %q with 8 dims", l.CustomID, l.Response.Body, inputs[l.CustomID])
		}
	}
	errs := content(t, c, b.ErrorFileID)
	if len(errs) != 1 || errs[0].CustomID != "doc-bad" || errs[0].Response == nil || errs[0].Response.StatusCode != 400 || errs[0].Error != nil {
		t.Fatalf("got error file %+v, want one 400 line for doc-bad", errs)
	}
	if !strings.Contains(string(errs[0].Response.Body), `"error"`) {
		t.Errorf("got error body %s, want an OpenAI error object", errs[0].Response.Body)
	}

	f, err := c.Files.Get(t.Context(), b.OutputFileID)
	if err != nil {
		t.Fatalf("Files.Get(output): %v", err)
	}
	if f.Purpose != openai.FileObjectPurposeBatchOutput || f.CreatedAt != created+720 || !strings.HasSuffix(f.Filename, "_output.jsonl") {
		t.Errorf("got output file %s", f.RawJSON())
	}
	if got := s.Requests("batches.retrieve"); got != len(steps) {
		t.Errorf("got %d batches.retrieve requests, want %d", got, len(steps))
	}
}

func TestBatchFailsOnInvalidInput(t *testing.T) {
	type lineErr struct {
		Code  string
		Param string
		Line  int64
	}
	tests := []struct {
		name    string
		input   string // "" with noFile: the batch names a file that does not exist
		noFile  bool
		want    []lineErr
		wantMsg string
	}{
		{
			name:    "malformed line",
			input:   line("a", "x") + "{not json\n" + line("c", "z"),
			want:    []lineErr{{"invalid_json_line", "", 2}},
			wantMsg: "This line is not parseable as valid JSON.",
		},
		{
			name:  "url does not match the endpoint",
			input: strings.Replace(line("a", "x"), "/v1/embeddings", "/v1/chat/completions", 1),
			want:  []lineErr{{"invalid_url", "url", 1}},
		},
		{
			name:  "duplicate custom_id",
			input: line("a", "x") + line("a", "y"),
			want:  []lineErr{{"duplicate_custom_id", "custom_id", 2}},
		},
		{
			name:  "method not POST",
			input: strings.Replace(line("a", "x"), `"POST"`, `"GET"`, 1),
			want:  []lineErr{{"invalid_request", "method", 1}},
		},
		{
			name:   "unknown input file",
			noFile: true,
			want:   []lineErr{{"file_not_found", "input_file_id", 0}},
		},
		{
			name:  "empty file",
			input: "\n",
			want:  []lineErr{{"empty_file", "", 0}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, c := start(t, double.Options{Clock: &double.Clock{}})
			fileID := "file-doesnotexist"
			if !tt.noFile {
				fileID = upload(t, c, "in.jsonl", tt.input).ID
			}
			b := getBatch(t, c, newBatch(t, c, fileID).ID)
			if b.Status != openai.BatchStatusFailed || b.FailedAt != b.CreatedAt || b.JSON.InProgressAt.Valid() || b.JSON.OutputFileID.Valid() {
				t.Fatalf("got %s, want failed at creation, never in progress, no output", b.RawJSON())
			}
			if b.Errors.Object != "list" {
				t.Errorf("got errors.object %q, want list", b.Errors.Object)
			}
			var got []lineErr
			for _, e := range b.Errors.Data {
				got = append(got, lineErr{e.Code, e.Param, e.Line})
				if e.Message == "" {
					t.Errorf("error %s without message", e.Code)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			if tt.wantMsg != "" && b.Errors.Data[0].Message != tt.wantMsg {
				t.Errorf("got message %q, want %q", b.Errors.Data[0].Message, tt.wantMsg)
			}
		})
	}
}

func TestBatchCancel(t *testing.T) {
	clock := &double.Clock{}
	_, c := start(t, double.Options{Clock: clock, InProgressFor: 10 * time.Minute, CancellingFor: 2 * time.Minute})
	in := upload(t, c, "in.jsonl", line("a", "1")+line("b", "2")+line("c", "3")+line("d", "4"))
	b := newBatch(t, c, in.ID)
	clock.Advance(5 * time.Minute)

	b, err := c.Batches.Cancel(t.Context(), b.ID)
	if err != nil {
		t.Fatalf("Batches.Cancel: %v", err)
	}
	if b.Status != openai.BatchStatusCancelling || b.CancellingAt != clock.Now().Unix() || b.RequestCounts.Completed != 2 {
		t.Fatalf("after cancel: got %s", b.RawJSON())
	}
	if b = getBatch(t, c, b.ID); b.Status != openai.BatchStatusCancelling {
		t.Fatalf("before CancellingFor: got %s, want cancelling", b.Status)
	}
	clock.Advance(2 * time.Minute)
	b = getBatch(t, c, b.ID)
	if b.Status != openai.BatchStatusCancelled || b.CancelledAt != b.CancellingAt+120 || b.JSON.CompletedAt.Valid() {
		t.Fatalf("after CancellingFor: got %s", b.RawJSON())
	}
	if b.RequestCounts.Total != 4 || b.RequestCounts.Completed != 2 || b.RequestCounts.Failed != 2 {
		t.Errorf("got counts %+v, want 4 total, 2 completed, 2 failed", b.RequestCounts)
	}
	if diff := cmp.Diff([]string{"a", "b"}, customIDs(content(t, c, b.OutputFileID))); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
	for _, l := range content(t, c, b.ErrorFileID) {
		if l.Response != nil || l.Error == nil || l.Error.Code != "batch_cancelled" {
			t.Errorf("error line %+v, want response null and error batch_cancelled", l)
		}
	}

	_, err = c.Batches.Cancel(t.Context(), b.ID)
	if e := apiError(t, err); e.StatusCode != http.StatusConflict {
		t.Errorf("cancelling a cancelled batch: got %d, want 409", e.StatusCode)
	}
}

func TestBatchExpires(t *testing.T) {
	clock := &double.Clock{}
	_, c := start(t, double.Options{Clock: clock, InProgressFor: 48 * time.Hour})
	in := upload(t, c, "in.jsonl", line("a", "1")+line("b", "2")+line("c", "3")+line("d", "4"))
	b := newBatch(t, c, in.ID)
	clock.Advance(23 * time.Hour)
	if b = getBatch(t, c, b.ID); b.Status != openai.BatchStatusInProgress {
		t.Fatalf("before the window: got %s, want in_progress", b.Status)
	}
	clock.Advance(2 * time.Hour)
	b = getBatch(t, c, b.ID)
	if b.Status != openai.BatchStatusExpired || b.ExpiredAt != b.ExpiresAt || b.ExpiresAt != b.CreatedAt+86400 {
		t.Fatalf("after the window: got %s", b.RawJSON())
	}
	if b.RequestCounts.Completed != 2 || b.RequestCounts.Failed != 2 {
		t.Errorf("got counts %+v, want 2 completed, 2 failed", b.RequestCounts)
	}
	errs := content(t, c, b.ErrorFileID)
	if diff := cmp.Diff([]string{"c", "d"}, customIDs(errs)); diff != "" {
		t.Errorf("error file (-want +got):\n%s", diff)
	}
	for _, l := range errs {
		if l.Error == nil || l.Error.Code != "batch_expired" {
			t.Errorf("error line %+v, want batch_expired", l)
		}
	}
}

func TestBatchesListPagination(t *testing.T) {
	clock := &double.Clock{}
	_, c := start(t, double.Options{Clock: clock})
	in := upload(t, c, "in.jsonl", line("a", "1"))
	var ids []string // newest first, as OpenAI lists
	for range 5 {
		ids = slices.Insert(ids, 0, newBatch(t, c, in.ID).ID)
		clock.Advance(time.Second)
	}

	var got [][]string
	params := openai.BatchListParams{Limit: openai.Int(2)}
	for {
		p, err := c.Batches.List(t.Context(), params)
		if err != nil {
			t.Fatalf("Batches.List: %v", err)
		}
		var pageIDs []string
		for _, b := range p.Data {
			pageIDs = append(pageIDs, b.ID)
		}
		got = append(got, pageIDs)
		if !p.HasMore {
			break
		}
		params.After = openai.String(pageIDs[len(pageIDs)-1])
	}
	if diff := cmp.Diff([][]string{ids[0:2], ids[2:4], ids[4:5]}, got); diff != "" {
		t.Errorf("pages (-want +got):\n%s", diff)
	}

	var all []string
	iter := c.Batches.ListAutoPaging(t.Context(), openai.BatchListParams{Limit: openai.Int(2)})
	for iter.Next() {
		all = append(all, iter.Current().ID)
		if iter.Current().Status != openai.BatchStatusCompleted {
			t.Errorf("%s: got %s, want completed (zero durations)", iter.Current().ID, iter.Current().Status)
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("ListAutoPaging: %v", err)
	}
	if diff := cmp.Diff(ids, all); diff != "" {
		t.Errorf("auto-paging (-want +got):\n%s", diff)
	}

	_, err := c.Batches.List(t.Context(), openai.BatchListParams{Limit: openai.Int(101)})
	if e := apiError(t, err); e.StatusCode != http.StatusBadRequest {
		t.Errorf("limit 101: got %d, want 400", e.StatusCode)
	}
}

func TestFiles(t *testing.T) {
	clock := &double.Clock{}
	_, c := start(t, double.Options{Clock: clock})
	first := upload(t, c, "first.jsonl", line("a", "1"))
	clock.Advance(time.Second)
	second := upload(t, c, "second.jsonl", line("b", "2"))

	got, err := c.Files.Get(t.Context(), first.ID)
	if err != nil {
		t.Fatalf("Files.Get: %v", err)
	}
	if got.RawJSON() != first.RawJSON() {
		t.Errorf("Files.Get: got %s, want %s", got.RawJSON(), first.RawJSON())
	}

	resp, err := c.Files.Content(t.Context(), second.ID)
	if err != nil {
		t.Fatalf("Files.Content: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != line("b", "2") {
		t.Errorf("Files.Content: got %q, want the upload", body)
	}

	p, err := c.Files.List(t.Context(), openai.FileListParams{Purpose: openai.String("batch"), Order: openai.FileListParamsOrderAsc})
	if err != nil {
		t.Fatalf("Files.List: %v", err)
	}
	var listed []string
	for _, f := range p.Data {
		listed = append(listed, f.ID)
	}
	if diff := cmp.Diff([]string{first.ID, second.ID}, listed); diff != "" {
		t.Errorf("Files.List (-want +got):\n%s", diff)
	}

	deleted, err := c.Files.Delete(t.Context(), first.ID)
	if err != nil {
		t.Fatalf("Files.Delete: %v", err)
	}
	if !deleted.Deleted || deleted.ID != first.ID || deleted.Object != "file" {
		t.Errorf("Files.Delete: got %s", deleted.RawJSON())
	}
	_, err = c.Files.Get(t.Context(), first.ID)
	if e := apiError(t, err); e.StatusCode != http.StatusNotFound || e.Message != "No such File object: "+first.ID {
		t.Errorf("deleted file: got %d %q", e.StatusCode, e.Message)
	}

	_, err = c.Files.New(t.Context(), openai.FileNewParams{File: strings.NewReader(line("a", "1")), Purpose: openai.FilePurposeBatch})
	if e := apiError(t, err); e.StatusCode != http.StatusBadRequest || !strings.Contains(e.Message, ".jsonl") {
		t.Errorf("batch upload without .jsonl name: got %d %q, want 400", e.StatusCode, e.Message)
	}
}

func TestAuthentication(t *testing.T) {
	s, _ := start(t, double.Options{})
	wrong := newClient(s, "sk-wrong-key-1234567890")
	_, err := wrong.Embeddings.New(t.Context(), openai.EmbeddingNewParams{
		Model: openai.EmbeddingModelTextEmbeddingAda002,
		Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("x")},
	})
	e := apiError(t, err)
	if e.StatusCode != http.StatusUnauthorized || e.Code != "invalid_api_key" || e.Type != "invalid_request_error" {
		t.Errorf("got %d code %q type %q, want 401 invalid_api_key invalid_request_error", e.StatusCode, e.Code, e.Type)
	}
	if !strings.HasPrefix(e.Message, "Incorrect API key provided: ") || strings.Contains(e.Message, "sk-wrong-key-1234567890") {
		t.Errorf("got message %q, want a masked key", e.Message)
	}
	_, err = wrong.Batches.Get(t.Context(), "batch_x")
	if e := apiError(t, err); e.StatusCode != http.StatusUnauthorized {
		t.Errorf("Batches.Get: got %d, want 401", e.StatusCode)
	}

	status, body, _ := do(t, http.MethodGet, s.URL()+"/v1/batches", "", "")
	if status != http.StatusUnauthorized || !strings.Contains(body, "You didn't provide an API key") {
		t.Errorf("no key: got %d %s", status, body)
	}
	if got := s.Requests("embeddings"); got != 1 {
		t.Errorf("got %d embeddings requests, want 1", got)
	}
}

func TestInjectedRateLimit(t *testing.T) {
	s, c := start(t, double.Options{Clock: &double.Clock{}})
	b := newBatch(t, c, upload(t, c, "in.jsonl", line("a", "1")).ID)
	s.Faults.Inject("batches.retrieve", fault.Fault{Status: http.StatusTooManyRequests, RetryAfter: 2 * time.Second})

	_, err := c.Batches.Get(t.Context(), b.ID)
	e := apiError(t, err)
	if e.StatusCode != http.StatusTooManyRequests || e.Code != "rate_limit_exceeded" {
		t.Errorf("got %d %q, want 429 rate_limit_exceeded", e.StatusCode, e.Code)
	}
	h := e.Response.Header
	if h.Get("Retry-After") != "2" || h.Get("X-Ratelimit-Remaining-Requests") != "0" || h.Get("X-Ratelimit-Reset-Requests") != "2s" {
		t.Errorf("got headers %v, want Retry-After 2 and exhausted rate limit headers", h)
	}
	if _, err := c.Batches.Get(t.Context(), b.ID); err != nil {
		t.Errorf("after the fault: %v", err)
	}
	if got := s.Requests("batches.retrieve"); got != 2 {
		t.Errorf("got %d batches.retrieve requests, want 2", got)
	}
}

func TestNotFound(t *testing.T) {
	_, c := start(t, double.Options{})
	ctx := t.Context()
	tests := []struct {
		name      string
		call      func(context.Context) error
		wantMsg   string
		wantParam string
	}{
		{"batch", func(ctx context.Context) error { _, err := c.Batches.Get(ctx, "batch_nope"); return err }, "No batch found with id 'batch_nope'.", ""},
		{"cancel", func(ctx context.Context) error { _, err := c.Batches.Cancel(ctx, "batch_nope"); return err }, "No batch found with id 'batch_nope'.", ""},
		{"file", func(ctx context.Context) error { _, err := c.Files.Get(ctx, "file-nope"); return err }, "No such File object: file-nope", "id"},
		{"content", func(ctx context.Context) error { _, err := c.Files.Content(ctx, "file-nope"); return err }, "No such File object: file-nope", "id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := apiError(t, tt.call(ctx))
			if e.StatusCode != http.StatusNotFound || e.Message != tt.wantMsg || e.Type != "invalid_request_error" || e.Param != tt.wantParam {
				t.Errorf("got %d %q type %q param %q, want 404 %q param %q", e.StatusCode, e.Message, e.Type, e.Param, tt.wantMsg, tt.wantParam)
			}
		})
	}
}

// do sends a raw request, for what the SDK hides: explicit nulls, headers.
func do(t *testing.T, method, url, key, body string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

func TestBatchJSONHasExplicitNulls(t *testing.T) {
	clock := &double.Clock{}
	s, c := start(t, double.Options{Clock: clock, ValidatingFor: time.Minute})
	in := upload(t, c, "in.jsonl", line("a", "1"))

	status, body, _ := do(t, http.MethodPost, s.URL()+"/v1/batches", testKey,
		fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/embeddings","completion_window":"24h"}`, in.ID))
	if status != http.StatusOK {
		t.Fatalf("create: got %d %s", status, body)
	}
	var created map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &created); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range created {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	wantKeys := []string{
		"cancelled_at", "cancelling_at", "completed_at", "completion_window", "created_at", "endpoint",
		"error_file_id", "errors", "expired_at", "expires_at", "failed_at", "finalizing_at", "id",
		"in_progress_at", "input_file_id", "metadata", "model", "object", "output_file_id",
		"request_counts", "status", "usage",
	}
	if diff := cmp.Diff(wantKeys, keys); diff != "" {
		t.Errorf("batch keys (-want +got):\n%s", diff)
	}
	for _, k := range []string{"output_file_id", "error_file_id", "errors", "in_progress_at", "finalizing_at",
		"completed_at", "failed_at", "expired_at", "cancelling_at", "cancelled_at", "metadata"} {
		if string(created[k]) != "null" {
			t.Errorf("%s: got %s, want null", k, created[k])
		}
	}
	if got := string(created["request_counts"]); got != `{"total":0,"completed":0,"failed":0}` {
		t.Errorf("request_counts: got %s", got)
	}

	// The same batch through the /openai prefix, once completed.
	clock.Advance(time.Minute)
	var id string
	_ = json.Unmarshal(created["id"], &id)
	status, body, _ = do(t, http.MethodGet, s.URL()+"/openai/v1/batches/"+id, testKey, "")
	if status != http.StatusOK || !strings.Contains(body, `"status":"completed"`) || !strings.Contains(body, `"error_file_id":null`) ||
		strings.Contains(body, `"output_file_id":null`) {
		t.Errorf("completed batch: got %d %s", status, body)
	}
}

func TestInvalidRequests(t *testing.T) {
	s, _ := start(t, double.Options{})
	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		wantStatus int
		wantBody   string
	}{
		{"unknown path", http.MethodGet, "/v1/nope", "", 404, `"message":"Invalid URL (GET /v1/nope)"`},
		{"wrong method", http.MethodDelete, "/v1/batches", "", 404, `"message":"Invalid URL (DELETE /v1/batches)"`},
		{"not JSON", http.MethodPost, "/v1/batches", "{", 400, "We could not parse the JSON body"},
		{"unknown argument", http.MethodPost, "/v1/batches", `{"input_file_id":"f","endpoint":"/v1/embeddings","completion_window":"24h","foo":1}`, 400, "Unrecognized request argument supplied: foo"},
		{"missing input_file_id", http.MethodPost, "/v1/batches", `{"endpoint":"/v1/embeddings","completion_window":"24h"}`, 400, `"code":"missing_required_parameter"`},
		{"bad endpoint", http.MethodPost, "/v1/batches", `{"input_file_id":"f","endpoint":"/v1/nope","completion_window":"24h"}`, 400, `"param":"endpoint"`},
		{"bad window", http.MethodPost, "/v1/batches", `{"input_file_id":"f","endpoint":"/v1/embeddings","completion_window":"1h"}`, 400, `"param":"completion_window"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body, h := do(t, tt.method, s.URL()+tt.path, testKey, tt.body)
			if status != tt.wantStatus || !strings.Contains(body, tt.wantBody) {
				t.Errorf("got %d %s, want %d containing %s", status, body, tt.wantStatus, tt.wantBody)
			}
			if !strings.HasPrefix(h.Get("X-Request-Id"), "req_") {
				t.Errorf("got x-request-id %q", h.Get("X-Request-Id"))
			}
			var e struct {
				Error map[string]json.RawMessage `json:"error"`
			}
			if err := json.Unmarshal(bytes.TrimSpace([]byte(body)), &e); err != nil || len(e.Error) != 4 {
				t.Errorf("got %s, want an error object with message, type, param and code", body)
			}
		})
	}
}
