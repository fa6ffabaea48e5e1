package openai

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// Batch statuses, as OpenAI spells them.
const (
	statusValidating = "validating"
	statusFailed     = "failed"
	statusInProgress = "in_progress"
	statusFinalizing = "finalizing"
	statusCompleted  = "completed"
	statusExpired    = "expired"
	statusCancelling = "cancelling"
	statusCancelled  = "cancelled"
)

// completionWindow is the only window OpenAI offers.
const completionWindow = 24 * time.Hour

// batchEndpoints is the endpoint enum of the create call. Only
// /v1/embeddings requests are executed; the others end in the error file.
var batchEndpoints = []string{
	"/v1/responses", "/v1/chat/completions", "/v1/embeddings", "/v1/completions",
	"/v1/moderations", "/v1/images/generations", "/v1/images/edits", "/v1/videos",
}

type batch struct {
	id, endpoint, inputFileID string
	metadata                  map[string]string
	outputLifetime            time.Duration // zero: the default
	status                    string
	model                     string
	created, expires          time.Time
	// Transition times; zero until reached.
	inProgressAt, finalizingAt, completedAt, failedAt, expiredAt, cancellingAt, cancelledAt time.Time

	errors   []batchError // validation errors of a failed batch
	requests []batchRequestLine
	results  []batchResult // of requests[:len(results)], in order
	counts   requestCounts
	tokens   int
	outputID string
	errorID  string
}

type batchRequestLine struct {
	customID string
	body     json.RawMessage
}

type batchResult struct {
	line []byte // one JSONL line of the output or error file, with its newline
	ok   bool
}

type requestCounts struct {
	Total     int `json:"total"`
	Completed int `json:"completed"`
	Failed    int `json:"failed"`
}

type batchError struct {
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Param   *string `json:"param"`
	Line    *int    `json:"line"`
}

type batchErrors struct {
	Object string       `json:"object"`
	Data   []batchError `json:"data"`
}

type batchUsage struct {
	InputTokens        int `json:"input_tokens"`
	InputTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokens        int `json:"output_tokens"`
	OutputTokensDetails struct {
		ReasoningTokens int `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	TotalTokens int `json:"total_tokens"`
}

// batchObject is OpenAI's Batch object: every field, unset ones as explicit
// nulls, as the real API sends them (ML Commons stores them verbatim).
type batchObject struct {
	ID               string            `json:"id"`
	Object           string            `json:"object"`
	Endpoint         string            `json:"endpoint"`
	Model            *string           `json:"model"`
	Errors           *batchErrors      `json:"errors"`
	InputFileID      string            `json:"input_file_id"`
	CompletionWindow string            `json:"completion_window"`
	Status           string            `json:"status"`
	OutputFileID     *string           `json:"output_file_id"`
	ErrorFileID      *string           `json:"error_file_id"`
	CreatedAt        int64             `json:"created_at"`
	InProgressAt     *int64            `json:"in_progress_at"`
	ExpiresAt        *int64            `json:"expires_at"`
	FinalizingAt     *int64            `json:"finalizing_at"`
	CompletedAt      *int64            `json:"completed_at"`
	FailedAt         *int64            `json:"failed_at"`
	ExpiredAt        *int64            `json:"expired_at"`
	CancellingAt     *int64            `json:"cancelling_at"`
	CancelledAt      *int64            `json:"cancelled_at"`
	RequestCounts    requestCounts     `json:"request_counts"`
	Usage            batchUsage        `json:"usage"`
	Metadata         map[string]string `json:"metadata"`
}

func (b *batch) object() batchObject {
	o := batchObject{
		ID:               b.id,
		Object:           "batch",
		Endpoint:         b.endpoint,
		Model:            nonEmpty(b.model),
		InputFileID:      b.inputFileID,
		CompletionWindow: "24h",
		Status:           b.status,
		OutputFileID:     nonEmpty(b.outputID),
		ErrorFileID:      nonEmpty(b.errorID),
		CreatedAt:        b.created.Unix(),
		InProgressAt:     unix(b.inProgressAt),
		ExpiresAt:        unix(b.expires),
		FinalizingAt:     unix(b.finalizingAt),
		CompletedAt:      unix(b.completedAt),
		FailedAt:         unix(b.failedAt),
		ExpiredAt:        unix(b.expiredAt),
		CancellingAt:     unix(b.cancellingAt),
		CancelledAt:      unix(b.cancelledAt),
		RequestCounts:    b.counts,
		Metadata:         b.metadata,
	}
	if len(b.errors) > 0 {
		o.Errors = &batchErrors{Object: "list", Data: b.errors}
	}
	o.Usage.InputTokens, o.Usage.TotalTokens = b.tokens, b.tokens
	return o
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func unix(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	return ptr(t.Unix())
}

func batchNotFound(w http.ResponseWriter, id string) {
	writeError(w, http.StatusNotFound, invalidRequest(fmt.Sprintf("No batch found with id '%s'.", id), "", ""))
}

type createBatchRequest struct {
	InputFileID        string            `json:"input_file_id"`
	Endpoint           string            `json:"endpoint"`
	CompletionWindow   string            `json:"completion_window"`
	Metadata           map[string]string `json:"metadata"`
	OutputExpiresAfter *struct {
		Anchor  string `json:"anchor"`
		Seconds int64  `json:"seconds"`
	} `json:"output_expires_after"`
}

func (s *Server) createBatch(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r, 1<<20)
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, invalidRequest("Request body too large.", "", ""))
		return
	}
	var req createBatchRequest
	if e := decodeStrict(bytes.NewReader(body), &req); e != nil {
		writeError(w, http.StatusBadRequest, *e)
		return
	}
	e := validateCreateBatch(req)
	var outputLifetime time.Duration
	if e == nil && req.OutputExpiresAfter != nil {
		outputLifetime, e = expiresAfter(req.OutputExpiresAfter.Anchor, strconv.FormatInt(req.OutputExpiresAfter.Seconds, 10))
	}
	if e != nil {
		writeError(w, http.StatusBadRequest, *e)
		return
	}

	now := s.lock()
	defer s.mu.Unlock()
	id := "batch_" + randomHex(16)
	if len(s.nextIDs) > 0 {
		id, s.nextIDs = s.nextIDs[0], s.nextIDs[1:]
	}
	b := &batch{
		id:             id,
		endpoint:       req.Endpoint,
		inputFileID:    req.InputFileID,
		metadata:       req.Metadata,
		outputLifetime: outputLifetime,
		status:         statusValidating,
		created:        now,
		expires:        now.Add(completionWindow),
	}
	s.batches[b.id] = b
	s.batchIDs = append(s.batchIDs, b.id)
	writeJSON(w, http.StatusOK, b.object())
}

func validateCreateBatch(req createBatchRequest) *apiError {
	missing := func(param string) *apiError {
		e := invalidRequest(fmt.Sprintf("Missing required parameter: '%s'.", param), param, "missing_required_parameter")
		return &e
	}
	switch {
	case req.InputFileID == "":
		return missing("input_file_id")
	case req.Endpoint == "":
		return missing("endpoint")
	case req.CompletionWindow == "":
		return missing("completion_window")
	case !slices.Contains(batchEndpoints, req.Endpoint):
		e := invalidRequest(fmt.Sprintf("Invalid value: '%s'. Supported values are: '/v1/responses', '/v1/chat/completions', '/v1/embeddings', '/v1/completions', '/v1/moderations', '/v1/images/generations', '/v1/images/edits', and '/v1/videos'.", req.Endpoint), "endpoint", "invalid_value")
		return &e
	case req.CompletionWindow != "24h":
		e := invalidRequest(fmt.Sprintf("Invalid value: '%s'. Supported values are: '24h'.", req.CompletionWindow), "completion_window", "invalid_value")
		return &e
	case len(req.Metadata) > 16:
		e := invalidRequest(fmt.Sprintf("Invalid 'metadata': too many properties. Expected an object with at most 16 properties, but got an object with %d properties instead.", len(req.Metadata)), "metadata", "object_above_max_properties")
		return &e
	}
	for k, v := range req.Metadata {
		if len(k) > 64 || len(v) > 512 {
			e := invalidRequest(fmt.Sprintf("Invalid 'metadata.%s': keys are limited to 64 characters and values to 512.", k), "metadata", "string_above_max_length")
			return &e
		}
	}
	return nil
}

func (s *Server) getBatch(w http.ResponseWriter, r *http.Request) {
	s.lock()
	defer s.mu.Unlock()
	id := r.PathValue("id")
	b := s.batches[id]
	if b == nil {
		batchNotFound(w, id)
		return
	}
	writeJSON(w, http.StatusOK, b.object())
}

func (s *Server) cancelBatch(w http.ResponseWriter, r *http.Request) {
	now := s.lock()
	defer s.mu.Unlock()
	id := r.PathValue("id")
	b := s.batches[id]
	if b == nil {
		batchNotFound(w, id)
		return
	}
	switch b.status {
	case statusValidating, statusInProgress, statusFinalizing:
		b.status, b.cancellingAt = statusCancelling, now
	case statusCancelling:
		// Cancelling again is harmless: the batch is already on its way.
	default:
		writeError(w, http.StatusConflict, invalidRequest(fmt.Sprintf("Cannot cancel a batch with status '%s'.", b.status), "", ""))
		return
	}
	writeJSON(w, http.StatusOK, b.object())
}

func (s *Server) listBatches(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, e := listLimit(q.Get("limit"), 20, 100)
	if e != nil {
		writeError(w, http.StatusBadRequest, *e)
		return
	}
	s.lock()
	defer s.mu.Unlock()
	// Newest first, as OpenAI lists them.
	objects := make([]batchObject, 0, len(s.batchIDs))
	ids := make([]string, 0, len(s.batchIDs))
	for _, id := range slices.Backward(s.batchIDs) {
		objects = append(objects, s.batches[id].object())
		ids = append(ids, id)
	}
	writeJSON(w, http.StatusOK, page(objects, ids, q.Get("after"), limit))
}

// advance moves b through every transition the clock has passed since it
// was last looked at. The caller holds the lock.
func (s *Server) advance(b *batch, now time.Time) {
	o := s.opts
	for {
		switch b.status {
		case statusValidating:
			at := b.created.Add(o.ValidatingFor)
			if at.After(b.expires) {
				if !now.Before(b.expires) {
					s.finish(b, statusExpired, b.expires)
				}
				return
			}
			if now.Before(at) {
				return
			}
			s.validate(b, at)
		case statusInProgress:
			end := b.inProgressAt.Add(o.InProgressFor)
			if end.After(b.expires) && !now.Before(b.expires) {
				s.run(b, b.expires)
				s.finish(b, statusExpired, b.expires)
				return
			}
			if now.Before(end) {
				s.run(b, now)
				return
			}
			s.run(b, end)
			b.status, b.finalizingAt = statusFinalizing, end
		case statusFinalizing:
			at := b.finalizingAt.Add(o.FinalizingFor)
			if now.Before(at) {
				return
			}
			s.finish(b, statusCompleted, at)
		case statusCancelling:
			at := b.cancellingAt.Add(o.CancellingFor)
			if now.Before(at) {
				return
			}
			s.finish(b, statusCancelled, at)
		default:
			return
		}
	}
}

// validate checks the input file as OpenAI does while a batch is
// validating, and moves the batch to in_progress or failed at time at.
func (s *Server) validate(b *batch, at time.Time) {
	fail := func(errs []batchError) {
		b.status, b.failedAt, b.errors = statusFailed, at, errs
	}
	f := s.file(b.inputFileID, at)
	if f == nil {
		fail([]batchError{{Code: "file_not_found", Message: "No such File object: " + b.inputFileID, Param: ptr("input_file_id")}})
		return
	}
	if f.purpose != "batch" {
		fail([]batchError{{Code: "invalid_file_purpose", Message: fmt.Sprintf("The input file must be uploaded with purpose 'batch', not '%s'.", f.purpose), Param: ptr("input_file_id")}})
		return
	}
	requests, model, errs := parseBatchInput(f.content, b.endpoint)
	if len(errs) > 0 {
		fail(errs)
		return
	}
	b.requests, b.model = requests, model
	b.counts.Total = len(requests)
	b.status, b.inProgressAt = statusInProgress, at
}

// parseBatchInput reads a batch input file: one request per line, each
// {"custom_id","method":"POST","url":<endpoint>,"body":{...}}, custom ids
// unique, one model.
func parseBatchInput(content []byte, endpoint string) ([]batchRequestLine, string, []batchError) {
	var (
		requests []batchRequestLine
		model    string
		errs     []batchError
		seen     = map[string]bool{}
	)
	lineError := func(n int, code, param, message string) {
		e := batchError{Code: code, Message: message, Line: ptr(n)}
		if param != "" {
			e.Param = &param
		}
		errs = append(errs, e)
	}
	sc := bufio.NewScanner(bytes.NewReader(content))
	sc.Buffer(nil, len(content)+1)
	for n := 1; sc.Scan(); n++ {
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		var line struct {
			CustomID *string         `json:"custom_id"`
			Method   *string         `json:"method"`
			URL      *string         `json:"url"`
			Body     json.RawMessage `json:"body"`
		}
		if err := json.Unmarshal(text, &line); err != nil {
			var typeErr *json.UnmarshalTypeError
			if errors.As(err, &typeErr) && typeErr.Field != "" {
				lineError(n, "invalid_request", typeErr.Field, fmt.Sprintf("Invalid type for '%s': expected %s, but got %s instead.", typeErr.Field, typeErr.Type, typeErr.Value))
			} else {
				lineError(n, "invalid_json_line", "", "This line is not parseable as valid JSON.")
			}
			continue
		}
		var body map[string]json.RawMessage
		bodyErr := json.Unmarshal(line.Body, &body)
		switch {
		case line.CustomID == nil || *line.CustomID == "":
			lineError(n, "missing_required_parameter", "custom_id", "Missing required parameter: 'custom_id'.")
		case line.Method == nil:
			lineError(n, "missing_required_parameter", "method", "Missing required parameter: 'method'.")
		case *line.Method != "POST":
			lineError(n, "invalid_request", "method", fmt.Sprintf("Invalid value: '%s'. Supported values are: 'POST'.", *line.Method))
		case line.URL == nil:
			lineError(n, "missing_required_parameter", "url", "Missing required parameter: 'url'.")
		case *line.URL != endpoint:
			lineError(n, "invalid_url", "url", "The URL provided for this request does not match the batch endpoint.")
		case len(line.Body) == 0 || string(line.Body) == "null":
			lineError(n, "missing_required_parameter", "body", "Missing required parameter: 'body'.")
		case bodyErr != nil:
			lineError(n, "invalid_request", "body", "Invalid type for 'body': expected an object.")
		case seen[*line.CustomID]:
			lineError(n, "duplicate_custom_id", "custom_id", "The custom_id for this request is a duplicate of another request. The custom_id parameter must be unique for each request in a batch.")
		default:
			seen[*line.CustomID] = true
			var m string
			_ = json.Unmarshal(body["model"], &m)
			if m != "" && model != "" && m != model {
				lineError(n, "mismatched_model", "body.model", "The provided model is different from the rest of the batch. Each batch must use a single model.")
				continue
			}
			model = cmp.Or(model, m)
			requests = append(requests, batchRequestLine{customID: *line.CustomID, body: line.Body})
		}
	}
	if len(errs) == 0 && len(requests) == 0 {
		errs = append(errs, batchError{Code: "empty_file", Message: "The batch input file is empty."})
	}
	return requests, model, errs
}

// run executes the requests due by time at: they run evenly over the
// in-progress period, in input order.
func (s *Server) run(b *batch, at time.Time) {
	due := len(b.requests)
	if p := s.opts.InProgressFor; p > 0 {
		if elapsed := at.Sub(b.inProgressAt); elapsed < p {
			due = int(float64(len(b.requests)) * float64(max(elapsed, 0)) / float64(p))
		}
	}
	for len(b.results) < due {
		req := b.requests[len(b.results)]
		status, body := http.StatusBadRequest, any(struct {
			Error apiError `json:"error"`
		}{invalidRequest(fmt.Sprintf("The test double executes only /v1/embeddings requests, not %s.", b.endpoint), "", "")})
		if b.endpoint == "/v1/embeddings" {
			status, body = s.embed(req.body)
		}
		if resp, ok := body.(embeddingsResponse); ok {
			b.tokens += resp.Usage.TotalTokens
		}
		line, _ := json.Marshal(outputLine{
			ID:       "batch_req_" + randomHex(16),
			CustomID: req.customID,
			Response: &outputResponse{StatusCode: status, RequestID: randomHex(16), Body: body},
		})
		ok := status == http.StatusOK
		b.results = append(b.results, batchResult{line: append(line, '\n'), ok: ok})
		if ok {
			b.counts.Completed++
		} else {
			b.counts.Failed++
		}
	}
}

type outputLine struct {
	ID       string          `json:"id"`
	CustomID string          `json:"custom_id"`
	Response *outputResponse `json:"response"`
	Error    *outputError    `json:"error"`
}

type outputResponse struct {
	StatusCode int    `json:"status_code"`
	RequestID  string `json:"request_id"`
	Body       any    `json:"body"`
}

type outputError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// finish ends b in a terminal status at time at and writes its output and
// error files; requests that never ran go to the error file.
func (s *Server) finish(b *batch, status string, at time.Time) {
	var out, errOut bytes.Buffer
	for i, req := range b.requests {
		if i < len(b.results) {
			if b.results[i].ok {
				out.Write(b.results[i].line)
			} else {
				errOut.Write(b.results[i].line)
			}
			continue
		}
		never := outputError{Code: "batch_expired", Message: "This request could not be executed before the completion window expired."}
		if status == statusCancelled {
			never = outputError{Code: "batch_cancelled", Message: "This request could not be executed before the batch was cancelled."}
		}
		line, _ := json.Marshal(outputLine{ID: "batch_req_" + randomHex(16), CustomID: req.customID, Error: &never})
		errOut.Write(append(line, '\n'))
		b.counts.Failed++
	}
	expires := at.Add(cmp.Or(b.outputLifetime, fileLifetime))
	if out.Len() > 0 {
		b.outputID = s.addFile(fmt.Sprintf("%s_output.jsonl", b.id), "batch_output", out.Bytes(), at, expires).id
	}
	if errOut.Len() > 0 {
		b.errorID = s.addFile(fmt.Sprintf("%s_error.jsonl", b.id), "batch_output", errOut.Bytes(), at, expires).id
	}
	b.status = status
	switch status {
	case statusCompleted:
		b.completedAt = at
	case statusExpired:
		b.expiredAt = at
	case statusCancelled:
		b.cancelledAt = at
	}
}
