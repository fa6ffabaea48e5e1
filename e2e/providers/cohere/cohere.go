// Package cohere is a test double of the Cohere API (v1, as served at
// https://api.cohere.com and described by Cohere's API reference and the
// Fern-generated SDK github.com/cohere-ai/cohere-go/v2 v2.15):
//
//   - POST /v1/embed: synchronous embeddings of "texts" (or "inputs" given as
//     strings), answered as "embeddings_floats", or "embeddings_by_type" when
//     embedding_types is given; vectors are deterministic (see Embedding);
//   - embed jobs: POST /v1/embed-jobs, GET /v1/embed-jobs,
//     GET /v1/embed-jobs/{id}, POST /v1/embed-jobs/{id}/cancel;
//   - datasets, minimal: POST /v1/datasets (multipart, file part "data",
//     JSONL or CSV records with a "text" field) and GET /v1/datasets/{id}.
//
// Every request needs "Authorization: Bearer <key>"; a wrong key is answered
// 401 {"message":"invalid api token"}. Errors are {"message": ...}.
//
// Jobs run on a clock that stands still until Advance: processing, then
// complete (or failed, see FailNextJob) after JobDuration; a cancel makes
// them cancelling, then cancelled after CancelDelay. Uploaded datasets are
// validated at once (Cohere queues the validation). A complete job's
// output dataset (type embed-result) can be fetched, but its parts carry no
// download URL: Cohere serves them as Avro whose record layout is not
// documented, so the double does not make them up.
package cohere

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mlsidecar/mlsidecar/e2e/providers/doublekit"
	"github.com/mlsidecar/mlsidecar/e2e/providers/fault"
)

// Operation names for fault injection, after the SDK's methods.
const (
	OpEmbed          = "Embed"
	OpCreateEmbedJob = "EmbedJobs.Create"
	OpListEmbedJobs  = "EmbedJobs.List"
	OpGetEmbedJob    = "EmbedJobs.Get"
	OpCancelEmbedJob = "EmbedJobs.Cancel"
	OpCreateDataset  = "Datasets.Create"
	OpGetDataset     = "Datasets.Get"
)

// Embed job statuses, as Cohere spells them.
const (
	StatusProcessing = "processing"
	StatusComplete   = "complete"
	StatusFailed     = "failed"
	StatusCancelling = "cancelling"
	StatusCancelled  = "cancelled"
)

// maxTexts is Cohere's limit of texts per embed call.
const maxTexts = 96

// Options configure the double. Zero values take the defaults shown.
type Options struct {
	// APIKey is the bearer token the double accepts; empty accepts any.
	APIKey string
	// Dimensions of the vectors (8).
	Dimensions  int
	JobDuration time.Duration // processing → complete: 1m
	CancelDelay time.Duration // cancelling → cancelled: 10s
	// Start is the job clock's start (zero: now).
	Start time.Time
}

// Recorded is one request the double received.
type Recorded = doublekit.Recorded

// Server is the double. Its job clock gives it Now and Advance; its
// recorder, Requests (rejected ones included, as it records first).
type Server struct {
	// Faults take requests by the Op* names.
	Faults *fault.Injector
	*doublekit.Clock
	doublekit.Recorder

	opts Options
	mux  *http.ServeMux
	srv  *httptest.Server

	mu       sync.Mutex
	datasets map[string]*dataset
	jobs     []*embedJob
	seq      int
	failNext bool
}

type dataset struct {
	id, name, kind string
	created        time.Time
	texts          []string
	invalid        string // validation error, if any
}

type embedJob struct {
	id, name, model, inputType, truncate string
	embeddingTypes                       []string
	input, output                        string // dataset ids
	created, cancelled                   time.Time
	fails                                bool
}

// New builds the double; Start serves it.
func New(opts Options) *Server {
	if opts.Dimensions == 0 {
		opts.Dimensions = 8
	}
	if opts.JobDuration == 0 {
		opts.JobDuration = time.Minute
	}
	if opts.CancelDelay == 0 {
		opts.CancelDelay = 10 * time.Second
	}
	s := &Server{Faults: &fault.Injector{}, Clock: doublekit.NewClockOrNow(opts.Start), opts: opts, datasets: map[string]*dataset{}}
	s.mux = http.NewServeMux()
	s.handle("POST /v1/embed", OpEmbed, s.embed)
	s.handle("POST /v1/embed-jobs", OpCreateEmbedJob, s.createJob)
	s.handle("GET /v1/embed-jobs", OpListEmbedJobs, s.listJobs)
	s.handle("GET /v1/embed-jobs/{id}", OpGetEmbedJob, s.getJob)
	s.handle("POST /v1/embed-jobs/{id}/cancel", OpCancelEmbedJob, s.cancelJob)
	s.handle("POST /v1/datasets", OpCreateDataset, s.createDataset)
	s.handle("GET /v1/datasets/{id}", OpGetDataset, s.getDataset)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "404 page not found")
	})
	return s
}

// handle routes pattern to h behind the key check and fault injection.
func (s *Server) handle(pattern, op string, h func(w http.ResponseWriter, r *http.Request, body []byte)) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		switch {
		case !ok || key == "":
			writeError(w, http.StatusUnauthorized, "no api key supplied")
			return
		case s.opts.APIKey != "" && key != s.opts.APIKey:
			writeError(w, http.StatusUnauthorized, "invalid api token")
			return
		}
		w, hold := s.Faults.Withhold(op, w, r)
		defer hold()
		if s.Faults.Apply(op, w, r, errorBody) {
			return
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		h(w, r, body)
	})
}

// Jobs is how many jobs the double holds: a test's proof that nothing
// was submitted twice.
func (s *Server) Jobs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.jobs)
}

// Handler serves the double's API.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Start serves the double on 127.0.0.1 at a free port.
func (s *Server) Start() { s.srv = httptest.NewServer(s.Handler()) }

// Close stops serving.
func (s *Server) Close() {
	if s.srv != nil {
		s.srv.Close()
	}
}

// URL is the base URL of the started double, without /v1 (as the SDK's
// base URL).
func (s *Server) URL() string {
	if s.srv == nil {
		return ""
	}
	return s.srv.URL
}

// FailNextJob makes the next embed job created end failed.
func (s *Server) FailNextJob() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext = true
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if _, err := s.Record(r); err != nil {
		writeError(w, http.StatusBadRequest, "invalid request: "+err.Error())
		return
	}
	s.mux.ServeHTTP(w, r)
}

// Embedding derives a unit-length vector of dim values from a hash of text:
// the same text always gets the same vector. Values have six decimals so
// they survive a JSON round trip exactly.
func Embedding(text string, dim int) []float64 {
	v := make([]float64, dim)
	var norm float64
	for i := range v {
		sum := sha256.Sum256([]byte("cohere\x00" + text + "\x00" + strconv.Itoa(i)))
		v[i] = float64(binary.BigEndian.Uint32(sum[:4]))/(1<<31) - 1
		norm += v[i] * v[i]
	}
	norm = math.Sqrt(norm)
	for i := range v {
		v[i] = math.Round(v[i]/norm*1e6) / 1e6
	}
	return v
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, message string) {
	writeJSON(w, status, map[string]string{"message": message})
}

func errorBody(status int) string {
	b, _ := json.Marshal(map[string]string{"message": strings.ToLower(http.StatusText(status))})
	return string(b)
}

var meta = map[string]any{"api_version": map[string]string{"version": "1"}}

// uuid is a deterministic id in UUID form.
func uuid(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", n) }

var (
	inputTypes     = []string{"search_document", "search_query", "classification", "clustering", "image"}
	embeddingTypes = []string{"float", "int8", "uint8", "binary", "ubinary"}
)

// checkCommon validates the fields embed and embed jobs share.
func checkCommon(model, inputType string, types []string, truncate string) string {
	switch {
	case inputType == "" && !strings.Contains(model, "v2"):
		return "invalid request: valid input_type must be provided with the provided model"
	case inputType != "" && !slices.Contains(inputTypes, inputType):
		return fmt.Sprintf("invalid request: input_type must be one of %s", strings.Join(inputTypes, ", "))
	case truncate != "" && !slices.Contains([]string{"NONE", "START", "END"}, truncate):
		return "invalid request: truncate must be one of NONE, START, END"
	}
	for _, t := range types {
		if !slices.Contains(embeddingTypes, t) {
			return fmt.Sprintf("invalid request: embedding_types must be in [%s]", strings.Join(embeddingTypes, ", "))
		}
	}
	return ""
}

func (s *Server) embed(w http.ResponseWriter, _ *http.Request, body []byte) {
	var req struct {
		Texts          []string `json:"texts"`
		Inputs         []string `json:"inputs"`
		Model          string   `json:"model"`
		InputType      string   `json:"input_type"`
		EmbeddingTypes []string `json:"embedding_types"`
		Truncate       string   `json:"truncate"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid request: "+err.Error())
		return
	}
	texts := req.Texts
	if texts == nil {
		texts = req.Inputs
	}
	if req.Model == "" {
		req.Model = "embed-english-v2.0"
	}
	switch {
	case len(texts) == 0:
		writeError(w, http.StatusBadRequest, "invalid request: list of texts must not be empty")
		return
	case len(texts) > maxTexts:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid request: total number of texts must be at most %d - received %d", maxTexts, len(texts)))
		return
	}
	if msg := checkCommon(req.Model, req.InputType, req.EmbeddingTypes, req.Truncate); msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	vectors := make([][]float64, len(texts))
	tokens := 0
	for i, t := range texts {
		vectors[i] = Embedding(t, s.opts.Dimensions)
		tokens += len(strings.Fields(t))
	}
	s.mu.Lock()
	s.seq++
	id := uuid(s.seq)
	s.mu.Unlock()
	resp := map[string]any{
		"id":    id,
		"texts": texts,
		"meta": map[string]any{
			"api_version":  meta["api_version"],
			"billed_units": map[string]int{"input_tokens": tokens},
		},
	}
	if len(req.EmbeddingTypes) == 0 {
		resp["response_type"] = "embeddings_floats"
		resp["embeddings"] = vectors
	} else {
		resp["response_type"] = "embeddings_by_type"
		resp["embeddings"] = byType(vectors, req.EmbeddingTypes)
	}
	writeJSON(w, http.StatusOK, resp)
}

// byType answers the vectors in each requested type, quantized the way
// Cohere describes: int8/uint8 scaled, binary/ubinary one sign bit per
// dimension packed into bytes (binary as signed bytes).
func byType(vectors [][]float64, types []string) map[string]any {
	out := map[string]any{}
	for _, t := range types {
		rows := make([][]float64, 0, len(vectors))
		for _, v := range vectors {
			var row []float64
			switch t {
			case "float":
				row = v
			case "int8":
				for _, x := range v {
					row = append(row, math.Max(-128, math.Min(127, math.Round(x*127))))
				}
			case "uint8":
				for _, x := range v {
					row = append(row, math.Max(0, math.Min(255, math.Round((x+1)*127.5))))
				}
			case "binary", "ubinary":
				packed := make([]byte, (len(v)+7)/8)
				for i, x := range v {
					if x > 0 {
						packed[i/8] |= 0x80 >> (i % 8)
					}
				}
				for _, b := range packed {
					if t == "binary" {
						row = append(row, float64(int(b)-128))
					} else {
						row = append(row, float64(b))
					}
				}
			}
			rows = append(rows, row)
		}
		out[t] = rows
	}
	return out
}

var notSlug = regexp.MustCompile(`[^a-z0-9]+`)

func (s *Server) createDataset(w http.ResponseWriter, r *http.Request, _ []byte) {
	q := r.URL.Query()
	name, kind := q.Get("name"), q.Get("type")
	if name == "" || kind == "" {
		writeError(w, http.StatusBadRequest, "invalid request: name and type are required")
		return
	}
	filename, data, err := dataPart(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid request: "+err.Error())
		return
	}
	texts, invalid := parseRecords(filename, data)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	d := &dataset{
		id:      fmt.Sprintf("%s-%06d", strings.Trim(notSlug.ReplaceAllString(strings.ToLower(name), "-"), "-"), s.seq),
		name:    name,
		kind:    kind,
		created: s.Now(),
		texts:   texts,
		invalid: invalid,
	}
	s.datasets[d.id] = d
	writeJSON(w, http.StatusOK, map[string]string{"id": d.id})
}

// dataPart reads the multipart part "data", which the SDK sends without a
// file name when given a plain io.Reader.
func dataPart(r *http.Request) (filename string, data []byte, err error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return "", nil, err
	}
	for {
		part, err := mr.NextPart()
		if err != nil {
			return "", nil, errors.New("the multipart part 'data' is required")
		}
		if part.FormName() == "data" {
			data, err := io.ReadAll(part)
			return part.FileName(), data, err
		}
	}
}

// parseRecords reads embed-input records: CSV (by file name) or JSON lines,
// each with a "text". It answers the texts or a validation error.
func parseRecords(filename string, data []byte) ([]string, string) {
	var texts []string
	if path.Ext(filename) == ".csv" {
		rows, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
		if err != nil || len(rows) == 0 {
			return nil, fmt.Sprintf("invalid csv: %v", err)
		}
		col := slices.Index(rows[0], "text")
		if col < 0 {
			return nil, "missing required field \"text\""
		}
		for _, row := range rows[1:] {
			texts = append(texts, row[col])
		}
		return texts, ""
	}
	for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var rec struct {
			Text *string `json:"text"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Text == nil {
			return nil, fmt.Sprintf("row %d: missing required field \"text\"", i)
		}
		texts = append(texts, *rec.Text)
	}
	return texts, ""
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func (s *Server) getDataset(w http.ResponseWriter, r *http.Request, _ []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.datasets[r.PathValue("id")]
	if d == nil {
		d = s.outputDataset(r.PathValue("id"))
	}
	if d == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("dataset with id %s not found", r.PathValue("id")))
		return
	}
	resp := map[string]any{
		"id":                d.id,
		"name":              d.name,
		"created_at":        rfc3339(d.created),
		"updated_at":        rfc3339(d.created),
		"dataset_type":      d.kind,
		"validation_status": "validated",
		"required_fields":   []string{"text"},
		"dataset_parts": []map[string]any{{
			"id": d.id + "-part-0", "name": d.name, "index": 0, "num_rows": len(d.texts),
		}},
	}
	if d.invalid != "" {
		resp["validation_status"] = "failed"
		resp["validation_error"] = d.invalid
		delete(resp, "dataset_parts")
	}
	writeJSON(w, http.StatusOK, map[string]any{"dataset": resp})
}

// outputDataset is the embed-result dataset of a complete job; the caller
// holds s.mu.
func (s *Server) outputDataset(id string) *dataset {
	for _, j := range s.jobs {
		if j.output == id && s.status(j) == StatusComplete {
			return &dataset{id: id, name: j.name + "-output", kind: "embed-result",
				created: j.created.Add(s.opts.JobDuration), texts: s.datasets[j.input].texts}
		}
	}
	return nil
}

func (s *Server) createJob(w http.ResponseWriter, _ *http.Request, body []byte) {
	var req struct {
		Model          string   `json:"model"`
		DatasetID      string   `json:"dataset_id"`
		InputType      string   `json:"input_type"`
		Name           string   `json:"name"`
		EmbeddingTypes []string `json:"embedding_types"`
		Truncate       string   `json:"truncate"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid request: "+err.Error())
		return
	}
	switch {
	case req.Model == "" || req.DatasetID == "" || req.InputType == "":
		writeError(w, http.StatusBadRequest, "invalid request: model, dataset_id and input_type are required")
		return
	case req.Truncate == "NONE":
		writeError(w, http.StatusBadRequest, "invalid request: truncate must be one of START, END")
		return
	}
	if msg := checkCommon(req.Model, req.InputType, req.EmbeddingTypes, req.Truncate); msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	if req.Truncate == "" {
		req.Truncate = "END"
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.datasets[req.DatasetID]
	switch {
	case d == nil:
		writeError(w, http.StatusNotFound, fmt.Sprintf("dataset with id %s not found", req.DatasetID))
		return
	case d.kind != "embed-input" || d.invalid != "":
		writeError(w, http.StatusBadRequest, "invalid request: dataset must be of type embed-input and validated")
		return
	}
	s.seq++
	j := &embedJob{
		id: uuid(s.seq), name: req.Name, model: req.Model, inputType: req.InputType, truncate: req.Truncate,
		embeddingTypes: req.EmbeddingTypes, input: d.id, output: fmt.Sprintf("embed-result-%06d", s.seq),
		created: s.Now(), fails: s.failNext,
	}
	s.failNext = false
	s.jobs = append(s.jobs, j)
	writeJSON(w, http.StatusOK, map[string]any{"job_id": j.id, "meta": meta})
}

// status is where a job's timeline stands; the caller holds s.mu.
func (s *Server) status(j *embedJob) string {
	now := s.Now()
	switch {
	case !j.cancelled.IsZero():
		if now.Before(j.cancelled.Add(s.opts.CancelDelay)) {
			return StatusCancelling
		}
		return StatusCancelled
	case now.Before(j.created.Add(s.opts.JobDuration)):
		return StatusProcessing
	case j.fails:
		return StatusFailed
	}
	return StatusComplete
}

// view is a job as the API shows it; the caller holds s.mu.
func (s *Server) view(j *embedJob) map[string]any {
	v := map[string]any{
		"job_id":           j.id,
		"status":           s.status(j),
		"created_at":       rfc3339(j.created),
		"input_dataset_id": j.input,
		"model":            j.model,
		"truncate":         j.truncate,
		"meta":             meta,
	}
	if j.name != "" {
		v["name"] = j.name
	}
	if v["status"] == StatusComplete {
		v["output_dataset_id"] = j.output
	}
	return v
}

// job finds the job of the path's {id}; the caller holds s.mu.
func (s *Server) job(w http.ResponseWriter, r *http.Request) *embedJob {
	id := r.PathValue("id")
	for _, j := range s.jobs {
		if j.id == id {
			return j
		}
	}
	writeError(w, http.StatusNotFound, fmt.Sprintf("embed job with id %s not found", id))
	return nil
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request, _ []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if j := s.job(w, r); j != nil {
		writeJSON(w, http.StatusOK, s.view(j))
	}
}

func (s *Server) listJobs(w http.ResponseWriter, _ *http.Request, _ []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	views := []map[string]any{}
	for _, j := range s.jobs {
		views = append(views, s.view(j))
	}
	writeJSON(w, http.StatusOK, map[string]any{"embed_jobs": views})
}

func (s *Server) cancelJob(w http.ResponseWriter, r *http.Request, _ []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.job(w, r)
	if j == nil {
		return
	}
	switch status := s.status(j); status {
	case StatusProcessing:
		j.cancelled = s.Now()
	case StatusCancelling:
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid request: embed job %s is %s and cannot be cancelled", j.id, status))
		return
	}
	w.WriteHeader(http.StatusOK)
}
