// Package bedrock is a test double of Amazon Bedrock for the e2e tests:
//
//   - the runtime's InvokeModel (POST /model/{modelId}/invoke, API version
//     2023-09-30) for the Titan text embedding models amazon.titan-embed-text-v1
//     and -v2, answering deterministic vectors;
//   - the control plane's batch inference jobs (API version 2023-04-20):
//     CreateModelInvocationJob (POST /model-invocation-job),
//     GetModelInvocationJob (GET /model-invocation-job/{jobIdentifier}) and
//     StopModelInvocationJob (POST /model-invocation-job/{jobIdentifier}/stop).
//
// Both are REST JSON, as the Bedrock API reference and aws-sdk-go-v2
// (service/bedrockruntime v1.63, service/bedrock v1.63) define them, and one
// server answers both. Every request's SigV4 signature (service "bedrock") is
// verified by awsdouble. A job identifier may be the job ARN with "/" sent as
// %2F (the SDK, ML Commons), the raw ARN (Data Prepper) or the bare job id.
//
// Jobs run on a clock that stands still until Advance: Submitted, InProgress
// after StartDelay, then Completed (or Failed, see FailNextJob) after
// JobDuration; a stop makes them Stopping, then Stopped after StopDelay.
// Without Options.S3 a job only changes state; with it, a job whose time is
// up reads its JSONL records from S3, runs them through the model and writes
// its .out files and manifest.json.out there as Bedrock does (invocation.go).
package bedrock

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/mlsidecar/mlsidecar/e2e/providers/awsdouble"
	"github.com/mlsidecar/mlsidecar/e2e/providers/doublekit"
	"github.com/mlsidecar/mlsidecar/e2e/providers/fault"
)

// Operation names for fault injection.
const (
	OpInvokeModel              = "InvokeModel"
	OpCreateModelInvocationJob = "CreateModelInvocationJob"
	OpGetModelInvocationJob    = "GetModelInvocationJob"
	OpStopModelInvocationJob   = "StopModelInvocationJob"
)

// Job statuses, as Bedrock spells them.
const (
	StatusSubmitted  = "Submitted"
	StatusInProgress = "InProgress"
	StatusCompleted  = "Completed"
	StatusFailed     = "Failed"
	StatusStopping   = "Stopping"
	StatusStopped    = "Stopped"
)

// errorCodes are the error types Bedrock answers each status with.
var errorCodes = awsdouble.ErrorCodes{
	400: "ValidationException",
	403: "AccessDeniedException",
	404: "ResourceNotFoundException",
	408: "ModelTimeoutException",
	424: "ModelErrorException",
	429: "ThrottlingException",
	500: "InternalServerException",
	503: "ServiceUnavailableException",
}

// Options configure the double. Zero values take the defaults shown.
type Options struct {
	Region  string // "us-east-1"
	Account string // "123456789012", used in job ARNs
	// Credentials the double accepts; default awsdouble.TestCredentials.
	Credentials []awsdouble.Credentials
	// Dimensions of the vectors when the request does not ask (8; the real
	// models default to 1536 and 1024).
	Dimensions  int
	StartDelay  time.Duration // Submitted → InProgress: 1m
	JobDuration time.Duration // InProgress → Completed: 10m
	StopDelay   time.Duration // Stopping → Stopped: 1m
	// Start is the job clock's start (zero: now).
	Start time.Time
	// SigningNow is the clock signatures are checked against (nil: time.Now).
	SigningNow func() time.Time
	// S3, when set, is where invocation jobs read their records and write
	// their output (invocation.go); nil: jobs write nothing.
	S3 *s3.Client
}

// Recorded is one request the double received.
type Recorded = awsdouble.Recorded

// Server is the double.
type Server struct {
	// Faults take requests by the Op* names.
	Faults *fault.Injector

	opts     Options
	verifier *awsdouble.Verifier
	awsdouble.Base

	mu       sync.Mutex
	jobs     map[string]*job
	byToken  map[string]string // clientRequestToken → job id
	seq      int
	failNext string
}

type job struct {
	id, arn   string
	request   map[string]any // the create request, echoed by Get
	submitted time.Time
	stoppedAt time.Time // zero unless stopped
	failure   string    // the job ends Failed with this message
	ran       sync.Once // the run against S3 (runJob)
	counts    *manifest // the record counts, once the run wrote them
}

// New builds the double; Start serves it.
func New(opts Options) *Server {
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.Account == "" {
		opts.Account = "123456789012"
	}
	if len(opts.Credentials) == 0 {
		opts.Credentials = []awsdouble.Credentials{awsdouble.TestCredentials}
	}
	if opts.Dimensions == 0 {
		opts.Dimensions = 8
	}
	if opts.StartDelay == 0 {
		opts.StartDelay = time.Minute
	}
	if opts.JobDuration == 0 {
		opts.JobDuration = 10 * time.Minute
	}
	if opts.StopDelay == 0 {
		opts.StopDelay = time.Minute
	}
	return &Server{
		Faults:   &fault.Injector{},
		opts:     opts,
		verifier: &awsdouble.Verifier{Service: "bedrock", Region: opts.Region, Credentials: opts.Credentials, Now: opts.SigningNow},
		Base:     awsdouble.Base{Clock: doublekit.NewClockOrNow(opts.Start)},
		jobs:     map[string]*job{},
		byToken:  map[string]string{},
	}
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
func (s *Server) Start() { s.Serve(s.Handler()) }

// FailNextJob makes the next job created end Failed with message.
func (s *Server) FailNextJob(message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext = message
}

// Embedding is the vector the double answers for text.
func Embedding(text string, dim int) []float64 { return awsdouble.Embedding("bedrock", text, dim) }

type handlerFunc func(w http.ResponseWriter, r *http.Request, body []byte, arg string)

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := s.Record(r)
	if err != nil {
		awsdouble.WriteError(w, awsdouble.RESTJSON, http.StatusBadRequest, "ValidationException", err.Error())
		return
	}
	if err := s.verifier.Verify(r, body); err != nil {
		awsdouble.WriteVerifyError(w, awsdouble.RESTJSON, err)
		return
	}
	op, handle, arg := s.route(r)
	if handle == nil {
		awsdouble.WriteError(w, awsdouble.RESTJSON, http.StatusNotFound, "UnknownOperationException", "")
		return
	}
	w, hold := s.Faults.Withhold(op, w, r)
	defer hold()
	if awsdouble.ApplyFault(s.Faults, op, w, r, awsdouble.RESTJSON, errorCodes) {
		return
	}
	handle(w, r, body, arg)
}

// route picks the operation from the escaped path, so an ARN's %2F stays
// inside its path segment.
func (s *Server) route(r *http.Request) (op string, h handlerFunc, arg string) {
	// r.URL.EscapedPath keeps %2F (and follows http.StripPrefix, should
	// the double be mounted under a prefix).
	path := r.URL.EscapedPath()
	if rest, ok := strings.CutPrefix(path, "/model/"); ok && r.Method == http.MethodPost {
		if id, ok := strings.CutSuffix(rest, "/invoke"); ok {
			return OpInvokeModel, s.invokeModel, unescape(id)
		}
	}
	if path == "/model-invocation-job" && r.Method == http.MethodPost {
		return OpCreateModelInvocationJob, s.createJob, ""
	}
	if rest, ok := strings.CutPrefix(path, "/model-invocation-job/"); ok {
		if id, ok := strings.CutSuffix(rest, "/stop"); ok && r.Method == http.MethodPost {
			return OpStopModelInvocationJob, s.stopJob, unescape(id)
		}
		if r.Method == http.MethodGet {
			return OpGetModelInvocationJob, s.getJob, unescape(rest)
		}
	}
	return "", nil, ""
}

func unescape(s string) string {
	u, err := url.PathUnescape(s)
	if err != nil {
		return s
	}
	return u
}

func writeError(w http.ResponseWriter, status int, message string) {
	awsdouble.WriteError(w, awsdouble.RESTJSON, status, errorCodes[status], message)
}

// titanRequest is the InvokeModel body of the Titan text embedding models.
type titanRequest struct {
	InputText      *string  `json:"inputText"`
	Dimensions     *int     `json:"dimensions"`
	Normalize      *bool    `json:"normalize"`
	EmbeddingTypes []string `json:"embeddingTypes"`
}

func (s *Server) invokeModel(w http.ResponseWriter, r *http.Request, body []byte, modelID string) {
	resp, tokens, merr := s.embed(modelID, body)
	if merr != nil {
		awsdouble.WriteError(w, awsdouble.RESTJSON, merr.status, merr.code, merr.message)
		return
	}
	w.Header().Set("X-Amzn-Bedrock-Input-Token-Count", strconv.Itoa(tokens))
	w.Header().Set("X-Amzn-Bedrock-Invocation-Latency", "1")
	awsdouble.WriteJSON(w, "application/json", resp)
}

// modelError is a model's refusal of one input, as InvokeModel answers it.
type modelError struct {
	status        int
	code, message string
}

func malformed(format string, args ...any) *modelError {
	return &modelError{status: http.StatusBadRequest, code: errorCodes[http.StatusBadRequest], message: fmt.Sprintf(format, args...)}
}

// embed runs the Titan embedding model modelID on body, an InvokeModel
// request body: the response body and its input token count, or the
// refusal. Batch records run through it too.
func (s *Server) embed(modelID string, body []byte) (map[string]any, int, *modelError) {
	// A foundation-model ARN ends in the model id.
	modelID = modelID[strings.LastIndex(modelID, "/")+1:]
	v2 := strings.HasPrefix(modelID, "amazon.titan-embed-text-v2")
	if !v2 && !strings.HasPrefix(modelID, "amazon.titan-embed-text-v1") {
		return nil, 0, malformed("The provided model identifier is invalid.")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	var raw map[string]any
	var req titanRequest
	if json.Unmarshal(body, &raw) != nil || json.Unmarshal(body, &req) != nil {
		return nil, 0, &modelError{status: http.StatusBadRequest, code: "SerializationException", message: "Start of structure or map found where not expected."}
	}
	allowed := []string{"inputText"}
	if v2 {
		allowed = append(allowed, "dimensions", "normalize", "embeddingTypes")
	}
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		if !slices.Contains(allowed, k) {
			return nil, 0, malformed("Malformed input request: #: extraneous key [%s] is not permitted, please reformat your input and try again.", k)
		}
	}
	switch {
	case req.InputText == nil:
		return nil, 0, malformed("Malformed input request: #: required key [inputText] not found, please reformat your input and try again.")
	case *req.InputText == "":
		return nil, 0, malformed("Malformed input request: #/inputText: expected minLength: 1, actual: 0, please reformat your input and try again.")
	}
	dim := s.opts.Dimensions
	if req.Dimensions != nil {
		if !slices.Contains([]int{256, 512, 1024}, *req.Dimensions) {
			return nil, 0, malformed("Malformed input request: #/dimensions: %d is not a valid enum value, please reformat your input and try again.", *req.Dimensions)
		}
		dim = *req.Dimensions
	}
	vector := Embedding(*req.InputText, dim)
	tokens := len(strings.Fields(*req.InputText))
	resp := map[string]any{"inputTextTokenCount": tokens}
	if len(req.EmbeddingTypes) == 0 || slices.Contains(req.EmbeddingTypes, "float") {
		resp["embedding"] = vector
	}
	if len(req.EmbeddingTypes) > 0 {
		byType := map[string]any{}
		for _, t := range req.EmbeddingTypes {
			switch t {
			case "float":
				byType["float"] = vector
			case "binary":
				bits := make([]int, len(vector))
				for i, x := range vector {
					if x > 0 {
						bits[i] = 1
					}
				}
				byType["binary"] = bits
			default:
				return nil, 0, malformed("Malformed input request: #/embeddingTypes/0: %s is not a valid enum value, please reformat your input and try again.", t)
			}
		}
		resp["embeddingsByType"] = byType
	}
	return resp, tokens, nil
}

// tokenPattern is clientRequestToken's (Bedrock API reference).
var tokenPattern = regexp.MustCompile(`^[a-zA-Z0-9]{1,256}(-*[a-zA-Z0-9]){0,256}$`)

var jobNamePattern = regexp.MustCompile(`^[a-zA-Z0-9]{1,63}(-*[a-zA-Z0-9\+\-\.]){0,63}$`)

func (s *Server) createJob(w http.ResponseWriter, r *http.Request, body []byte, _ string) {
	var req map[string]any
	if !awsdouble.ReadJSON(w, awsdouble.RESTJSON, body, &req) {
		return
	}
	var problems []string
	for _, field := range []string{"jobName", "roleArn", "modelId", "inputDataConfig", "outputDataConfig"} {
		if req[field] == nil {
			problems = append(problems, fmt.Sprintf("Value null at '%s' failed to satisfy constraint: Member must not be null", field))
		}
	}
	if token, ok := req["clientRequestToken"].(string); ok && !tokenPattern.MatchString(token) {
		problems = append(problems, fmt.Sprintf("Value '%s' at 'clientRequestToken' failed to satisfy constraint: Member must satisfy regular expression pattern: %s", token, tokenPattern))
	}
	if name, ok := req["jobName"].(string); ok && !jobNamePattern.MatchString(name) {
		problems = append(problems, fmt.Sprintf("Value '%s' at 'jobName' failed to satisfy constraint: Member must satisfy regular expression pattern: %s", name, jobNamePattern))
	}
	if len(problems) > 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%d validation error(s) detected: %s", len(problems), strings.Join(problems, "; ")))
		return
	}
	delete(req, "tags") // Get does not answer them

	s.mu.Lock()
	defer s.mu.Unlock()
	token, _ := req["clientRequestToken"].(string)
	if id, ok := s.byToken[token]; ok && token != "" {
		awsdouble.WriteJSON(w, "application/json", map[string]string{"jobArn": s.jobs[id].arn})
		return
	}
	s.seq++
	id := fmt.Sprintf("job%09d", s.seq) // 12 lowercase alphanumerics, as Bedrock's
	j := &job{
		id:        id,
		arn:       fmt.Sprintf("arn:aws:bedrock:%s:%s:model-invocation-job/%s", s.opts.Region, s.opts.Account, id),
		request:   req,
		submitted: s.Now(),
		failure:   s.failNext,
	}
	s.failNext = ""
	s.jobs[id] = j
	if token != "" {
		s.byToken[token] = id
	}
	awsdouble.WriteJSON(w, "application/json", map[string]string{"jobArn": j.arn})
}

// lookup finds a job by ARN or id, answering 404 when there is none.
func (s *Server) lookup(w http.ResponseWriter, identifier string) *job {
	id := identifier[strings.LastIndex(identifier, "/")+1:]
	s.mu.Lock()
	j, ok := s.jobs[id]
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("The specified job %s could not be found.", identifier))
		return nil
	}
	return j
}

// state is where a job's timeline stands at now.
func (s *Server) state(j *job, now time.Time) (status string, modified, ended time.Time) {
	started := j.submitted.Add(s.opts.StartDelay)
	done := started.Add(s.opts.JobDuration)
	switch {
	case !j.stoppedAt.IsZero():
		stopped := j.stoppedAt.Add(s.opts.StopDelay)
		if now.Before(stopped) {
			return StatusStopping, j.stoppedAt, time.Time{}
		}
		return StatusStopped, stopped, stopped
	case now.Before(started):
		return StatusSubmitted, j.submitted, time.Time{}
	case now.Before(done):
		return StatusInProgress, started, time.Time{}
	case j.failure != "":
		return StatusFailed, done, done
	}
	return StatusCompleted, done, done
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request, _ []byte, identifier string) {
	j := s.lookup(w, identifier)
	if j == nil {
		return
	}
	s.runJob(j)
	s.mu.Lock()
	defer s.mu.Unlock()
	status, modified, ended := s.state(j, s.Now())
	resp := maps.Clone(j.request)
	hours := 24.0
	if h, ok := j.request["timeoutDurationInHours"].(float64); ok {
		hours = h
	}
	resp["jobArn"] = j.arn
	resp["status"] = status
	resp["submitTime"] = isoTime(j.submitted)
	resp["lastModifiedTime"] = isoTime(modified)
	resp["jobExpirationTime"] = isoTime(j.submitted.Add(time.Duration(hours * float64(time.Hour))))
	if !ended.IsZero() {
		resp["endTime"] = isoTime(ended)
	}
	if status == StatusFailed {
		resp["message"] = j.failure
	}
	if c := j.counts; c != nil {
		resp["totalRecordCount"] = c.TotalRecordCount
		resp["processedRecordCount"] = c.ProcessedRecordCount
		resp["successRecordCount"] = c.SuccessRecordCount
		resp["errorRecordCount"] = c.ErrorRecordCount
	}
	awsdouble.WriteJSON(w, "application/json", resp)
}

func (s *Server) stopJob(w http.ResponseWriter, r *http.Request, _ []byte, identifier string) {
	j := s.lookup(w, identifier)
	if j == nil {
		return
	}
	s.runJob(j) // a job whose time is up can no longer be stopped, and may have failed
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.Now()
	switch status, _, _ := s.state(j, now); status {
	case StatusSubmitted, StatusInProgress:
		j.stoppedAt = now
	case StatusStopping:
	default:
		// Bedrock answers ConflictException with status 400.
		awsdouble.WriteError(w, awsdouble.RESTJSON, http.StatusBadRequest, "ConflictException",
			fmt.Sprintf("The job %s is in status %s and cannot be stopped.", j.arn, status))
		return
	}
	w.WriteHeader(http.StatusOK)
}

func isoTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
