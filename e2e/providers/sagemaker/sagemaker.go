// Package sagemaker is a test double of Amazon SageMaker for the e2e tests:
//
//   - the runtime's InvokeEndpoint (POST /endpoints/{EndpointName}/invocations,
//     REST JSON, API version 2017-05-13) in front of an imagined text
//     embedding model: a JSON body {"inputs": ...}, {"texts": ...} or
//     {"text_inputs": ...} (a string or a list of strings) is answered with one
//     deterministic vector per text, [[...], ...];
//   - the control plane's batch transform (AWS JSON 1.1, API version
//     2017-07-24): CreateTransformJob, DescribeTransformJob and
//     StopTransformJob, sent as the SDK sends them (POST / with
//     X-Amz-Target: SageMaker.<Operation>) or as ML Commons does
//     (POST /<Operation> with application/json).
//
// Shapes follow the SageMaker API reference as served by aws-sdk-go-v2
// (service/sagemakerruntime v1.50, service/sagemaker v1.288). Every request's
// SigV4 signature (service "sagemaker") is verified by awsdouble.
//
// Jobs run on a clock that stands still until Advance: InProgress, then
// Completed (or Failed, see FailNextJob) after JobDuration; a stop makes
// them Stopping, then Stopped after StopDelay. Job names match
// case-insensitively. Without Options.S3 a job only changes state; with it,
// a job whose time is up reads its input objects from S3 and writes its .out
// objects there as SageMaker does (transform.go), and ends Failed if any
// object failed.
package sagemaker

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
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
	OpInvokeEndpoint       = "InvokeEndpoint"
	OpCreateTransformJob   = "CreateTransformJob"
	OpDescribeTransformJob = "DescribeTransformJob"
	OpStopTransformJob     = "StopTransformJob"
)

// Transform job statuses, as SageMaker spells them.
const (
	StatusInProgress = "InProgress"
	StatusCompleted  = "Completed"
	StatusFailed     = "Failed"
	StatusStopping   = "Stopping"
	StatusStopped    = "Stopped"
)

var (
	runtimeErrorCodes = awsdouble.ErrorCodes{
		400: "ValidationError",
		424: "ModelError",
		429: "ThrottlingException",
		500: "InternalFailure",
		503: "ServiceUnavailable",
	}
	controlErrorCodes = awsdouble.ErrorCodes{
		400: "ValidationException",
		429: "ThrottlingException",
		500: "InternalFailure",
		503: "ServiceUnavailable",
	}
)

// Options configure the double. Zero values take the defaults shown.
type Options struct {
	Region  string // "us-east-1"
	Account string // "123456789012", used in ARNs and messages
	// Credentials the double accepts; default awsdouble.TestCredentials.
	Credentials []awsdouble.Credentials
	// Endpoints that exist; empty means every name does.
	Endpoints []string
	// Dimensions of the vectors (8).
	Dimensions  int
	JobDuration time.Duration // InProgress → Completed: 10m
	StopDelay   time.Duration // Stopping → Stopped: 1m
	// Start is the job clock's start (zero: now).
	Start time.Time
	// SigningNow is the clock signatures are checked against (nil: time.Now).
	SigningNow func() time.Time
	// S3, when set, is where transform jobs read their input and write their
	// output (transform.go); nil: jobs write nothing.
	S3 *s3.Client
	// LoseOutputs are input keys whose .out a completed job does not
	// write: a fault (real SageMaker fails a job with a failed object), to
	// show that a reader of the output notices an input it lacks.
	LoseOutputs []string
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
	jobs     map[string]*job // by lower-case name
	failNext string
}

type job struct {
	name, arn string
	request   map[string]any // the create request, echoed by Describe
	created   time.Time
	stoppedAt time.Time // zero unless stopped
	failure   string    // the job ends Failed with this reason
	ran       sync.Once // the run against S3 (runJob)
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
	if opts.JobDuration == 0 {
		opts.JobDuration = 10 * time.Minute
	}
	if opts.StopDelay == 0 {
		opts.StopDelay = time.Minute
	}
	return &Server{
		Faults:   &fault.Injector{},
		opts:     opts,
		verifier: &awsdouble.Verifier{Service: "sagemaker", Region: opts.Region, Credentials: opts.Credentials, Now: opts.SigningNow},
		Base:     awsdouble.Base{Clock: doublekit.NewClockOrNow(opts.Start)},
		jobs:     map[string]*job{},
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

// FailNextJob makes the next job created end Failed with reason.
func (s *Server) FailNextJob(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext = reason
}

// Embedding is the vector the double answers for text.
func Embedding(text string, dim int) []float64 { return awsdouble.Embedding("sagemaker", text, dim) }

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := s.Record(r)
	if err != nil {
		awsdouble.WriteError(w, awsdouble.RESTJSON, http.StatusBadRequest, "ValidationError", err.Error())
		return
	}
	// r.URL.EscapedPath keeps %2F (and follows http.StripPrefix, should
	// the double be mounted under a prefix).
	path := r.URL.EscapedPath()
	runtime := strings.HasPrefix(path, "/endpoints/")
	proto := awsdouble.JSON11
	if runtime {
		proto = awsdouble.RESTJSON
	}
	if err := s.verifier.Verify(r, body); err != nil {
		awsdouble.WriteVerifyError(w, proto, err)
		return
	}
	if runtime {
		name, ok := strings.CutSuffix(strings.TrimPrefix(path, "/endpoints/"), "/invocations")
		if !ok || r.Method != http.MethodPost {
			awsdouble.WriteError(w, proto, http.StatusNotFound, "UnknownOperationException", "")
			return
		}
		if awsdouble.ApplyFault(s.Faults, OpInvokeEndpoint, w, r, proto, runtimeErrorCodes) {
			return
		}
		s.invokeEndpoint(w, body, unescape(name))
		return
	}

	// The SDK names the operation in X-Amz-Target; ML Commons in the path.
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), "SageMaker.")
	if !ok {
		op = strings.TrimPrefix(path, "/")
	}
	handle := map[string]func(http.ResponseWriter, []byte){
		OpCreateTransformJob:   s.createTransformJob,
		OpDescribeTransformJob: s.describeTransformJob,
		OpStopTransformJob:     s.stopTransformJob,
	}[op]
	if handle == nil || r.Method != http.MethodPost {
		writeError(w, awsdouble.JSON11, http.StatusBadRequest, "UnknownOperationException", fmt.Sprintf("Operation %q is not supported by this double.", op))
		return
	}
	w, hold := s.Faults.Withhold(op, w, r)
	defer hold()
	if awsdouble.ApplyFault(s.Faults, op, w, r, proto, controlErrorCodes) {
		return
	}
	handle(w, body)
}

func unescape(s string) string {
	u, err := url.PathUnescape(s)
	if err != nil {
		return s
	}
	return u
}

// writeError answers an error as SageMaker's services shape it: the code as
// "__type", the text as "Message", plus extra fields.
func writeError(w http.ResponseWriter, p awsdouble.Protocol, status int, code, message string, extra ...map[string]any) {
	body := map[string]any{"__type": code, "Message": message}
	for _, e := range extra {
		maps.Copy(body, e)
	}
	contentType := "application/x-amz-json-1.1"
	if p == awsdouble.RESTJSON {
		contentType = "application/json"
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func (s *Server) invokeEndpoint(w http.ResponseWriter, body []byte, name string) {
	if len(s.opts.Endpoints) > 0 && !slices.Contains(s.opts.Endpoints, name) {
		writeError(w, awsdouble.RESTJSON, http.StatusBadRequest, "ValidationError", fmt.Sprintf("Endpoint %s of account %s not found.", name, s.opts.Account))
		return
	}
	texts, problem := parseTexts(body)
	if problem != "" {
		// The model container refused the input; SageMaker passes that on as ModelError.
		writeError(w, awsdouble.RESTJSON, http.StatusFailedDependency, "ModelError",
			fmt.Sprintf("Received client error (400) from primary with message %q. See https://%s.console.aws.amazon.com/cloudwatch/home?region=%s#logEventViewer:group=/aws/sagemaker/Endpoints/%s in account %s for more information.",
				problem, s.opts.Region, s.opts.Region, name, s.opts.Account),
			map[string]any{
				"OriginalStatusCode": 400,
				"OriginalMessage":    problem,
				"LogStreamArn":       fmt.Sprintf("arn:aws:logs:%s:%s:log-group:/aws/sagemaker/Endpoints/%s", s.opts.Region, s.opts.Account, name),
			})
		return
	}
	vectors := make([][]float64, len(texts))
	for i, t := range texts {
		vectors[i] = Embedding(t, s.opts.Dimensions)
	}
	w.Header().Set("X-Amzn-Invoked-Production-Variant", "AllTraffic")
	awsdouble.WriteJSON(w, "application/json", vectors)
}

// parseTexts reads the texts of an invocation body, or says what is wrong.
func parseTexts(body []byte) ([]string, string) {
	var req map[string]any
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, "body is not a JSON object: " + err.Error()
	}
	return textsOf(req)
}

// textsOf reads the texts of a model input: an object with "inputs",
// "texts" or "text_inputs" (the invocation body), or, as a batch transform
// record may give after its InputFilter, a string or a list of strings.
func textsOf(v any) ([]string, string) {
	req, ok := v.(map[string]any)
	if !ok {
		texts, ok := stringList(v)
		if !ok {
			return nil, "the input must be a string, a non-empty list of strings or an object with \"inputs\""
		}
		return texts, ""
	}
	for _, key := range []string{"inputs", "texts", "text_inputs"} {
		x, ok := req[key]
		if !ok {
			continue
		}
		texts, ok := stringList(x)
		if !ok {
			return nil, fmt.Sprintf("%q must be a string or a non-empty list of strings", key)
		}
		return texts, ""
	}
	return nil, `body needs "inputs", "texts" or "text_inputs"`
}

// stringList reads a string or a non-empty list of strings.
func stringList(v any) ([]string, bool) {
	switch v := v.(type) {
	case string:
		return []string{v}, true
	case []any:
		texts := make([]string, len(v))
		for i, x := range v {
			t, ok := x.(string)
			if !ok {
				return nil, false
			}
			texts[i] = t
		}
		return texts, len(texts) > 0
	}
	return nil, false
}

func (s *Server) readRequest(w http.ResponseWriter, body []byte) (map[string]any, bool) {
	var req map[string]any
	if len(strings.TrimSpace(string(body))) == 0 {
		body = []byte("{}")
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, awsdouble.JSON11, http.StatusBadRequest, "SerializationException", "Start of structure or map found where not expected.")
		return nil, false
	}
	return req, true
}

// requireFields answers a ValidationException naming every missing field.
func requireFields(w http.ResponseWriter, req map[string]any, fields ...string) bool {
	var problems []string
	for _, f := range fields {
		if req[f] == nil {
			problems = append(problems, fmt.Sprintf("Value null at '%s' failed to satisfy constraint: Member must not be null", strings.ToLower(f[:1])+f[1:]))
		}
	}
	if len(problems) == 0 {
		return true
	}
	writeError(w, awsdouble.JSON11, http.StatusBadRequest, "ValidationException",
		fmt.Sprintf("%d validation error(s) detected: %s", len(problems), strings.Join(problems, "; ")))
	return false
}

func (s *Server) createTransformJob(w http.ResponseWriter, body []byte) {
	req, ok := s.readRequest(w, body)
	if !ok || !requireFields(w, req, "TransformJobName", "ModelName", "TransformInput", "TransformOutput", "TransformResources") {
		return
	}
	name, _ := req["TransformJobName"].(string)
	delete(req, "Tags") // Describe does not answer them

	s.mu.Lock()
	defer s.mu.Unlock()
	if j, ok := s.jobs[strings.ToLower(name)]; ok {
		writeError(w, awsdouble.JSON11, http.StatusBadRequest, "ResourceInUse",
			fmt.Sprintf("Job name must be unique within an AWS account and region, and a job with this name already exists (%s)", j.arn))
		return
	}
	j := &job{
		name:    name,
		arn:     fmt.Sprintf("arn:aws:sagemaker:%s:%s:transform-job/%s", s.opts.Region, s.opts.Account, strings.ToLower(name)),
		request: req,
		created: s.Now(),
		failure: s.failNext,
	}
	s.failNext = ""
	s.jobs[strings.ToLower(name)] = j
	awsdouble.WriteJSON(w, "application/x-amz-json-1.1", map[string]string{"TransformJobArn": j.arn})
}

// state is where a job's timeline stands at now.
func (s *Server) state(j *job, now time.Time) (status string, ended time.Time) {
	done := j.created.Add(s.opts.JobDuration)
	switch {
	case !j.stoppedAt.IsZero():
		stopped := j.stoppedAt.Add(s.opts.StopDelay)
		if now.Before(stopped) {
			return StatusStopping, time.Time{}
		}
		return StatusStopped, stopped
	case now.Before(done):
		return StatusInProgress, time.Time{}
	case j.failure != "":
		return StatusFailed, done
	}
	return StatusCompleted, done
}

// lookup finds the job of a request's TransformJobName.
func (s *Server) lookup(req map[string]any) *job {
	name, _ := req["TransformJobName"].(string)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.jobs[strings.ToLower(name)]
}

func (s *Server) describeTransformJob(w http.ResponseWriter, body []byte) {
	req, ok := s.readRequest(w, body)
	if !ok || !requireFields(w, req, "TransformJobName") {
		return
	}
	j := s.lookup(req)
	if j == nil {
		writeError(w, awsdouble.JSON11, http.StatusBadRequest, "ValidationException", fmt.Sprintf("Could not find requested job with name %v", req["TransformJobName"]))
		return
	}
	s.runJob(j)
	s.mu.Lock()
	defer s.mu.Unlock()
	status, ended := s.state(j, s.Now())
	resp := maps.Clone(j.request)
	resp["TransformJobArn"] = j.arn
	resp["TransformJobStatus"] = status
	resp["CreationTime"] = epoch(j.created)
	resp["TransformStartTime"] = epoch(j.created)
	if !ended.IsZero() {
		resp["TransformEndTime"] = epoch(ended)
	}
	if status == StatusFailed {
		resp["FailureReason"] = j.failure
	}
	awsdouble.WriteJSON(w, "application/x-amz-json-1.1", resp)
}

func (s *Server) stopTransformJob(w http.ResponseWriter, body []byte) {
	req, ok := s.readRequest(w, body)
	if !ok || !requireFields(w, req, "TransformJobName") {
		return
	}
	j := s.lookup(req)
	if j == nil {
		writeError(w, awsdouble.JSON11, http.StatusBadRequest, "ResourceNotFound", fmt.Sprintf("Could not find job to update with name %v", req["TransformJobName"]))
		return
	}
	s.runJob(j) // a job whose time is up can no longer be stopped, and may have failed
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.Now()
	switch status, _ := s.state(j, now); status {
	case StatusInProgress:
		j.stoppedAt = now
	case StatusStopping:
	default:
		writeError(w, awsdouble.JSON11, http.StatusBadRequest, "ValidationException", fmt.Sprintf("Transform job %s is in status %s and cannot be stopped.", j.name, status))
		return
	}
	awsdouble.WriteJSON(w, "application/x-amz-json-1.1", map[string]any{})
}

// epoch is a JSON 1.1 timestamp: seconds since the epoch, fractional.
func epoch(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }
