// Package openai is a test double of OpenAI's HTTP API for the e2e tests:
// synchronous embeddings, the Files API and the Batches API with its real
// state machine (validating → in_progress → finalizing → completed, failed,
// expired, cancelling → cancelled), driven by a controllable [Clock]. Batches
// really run: every input line is embedded and the results are served as
// output and error files. Its wire format is proven against the official
// openai-go SDK (openai_test.go), so a client that works against the double
// speaks to api.openai.com the same way.
//
// The API is served under /v1, and also under /openai/v1 for callers that
// pick the provider by a keyword in the URL, as ML Commons does when it
// synthesizes the status and cancel actions of a batch connector.
//
// Operation names, for [Server.Faults] and [Server.Requests]: "embeddings",
// "files.create", "files.retrieve", "files.content", "files.delete",
// "files.list", "batches.create", "batches.retrieve", "batches.cancel",
// "batches.list"; "*" stands for all of them.
package openai

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/mlsidecar/mlsidecar/e2e/providers/doublekit"
	"github.com/mlsidecar/mlsidecar/e2e/providers/fault"
)

// Options configures a Server.
type Options struct {
	// APIKey is the only bearer token accepted. Empty accepts every request,
	// with or without an Authorization header.
	APIKey string
	// Dim is the length of an embedding when the request does not ask for
	// dimensions (default 8).
	Dim int
	// Clock drives the batch state machine and every timestamp; nil means
	// real time.
	Clock *Clock
	// ValidatingFor, InProgressFor, FinalizingFor and CancellingFor are how
	// long a batch stays in each state. Zero passes the state at once: the
	// first read after the batch entered it already shows the next one.
	// Requests of an in-progress batch run evenly over InProgressFor, so a
	// batch cancelled or expired part-way has partial results.
	ValidatingFor, InProgressFor, FinalizingFor, CancellingFor time.Duration
}

// Clock is the job clock of the batches: the doublekit one, named here so a
// test needs no second import to build it.
type Clock = doublekit.Clock

// NewClock returns a Clock standing at start (zero: 2025-01-01T00:00:00Z).
func NewClock(start time.Time) *Clock { return doublekit.NewClock(start) }

// Server is the double. Create it with New, then Start it or mount Handler.
type Server struct {
	// Faults queues injected failures by operation name (see the package
	// doc). They are applied before authentication.
	Faults *fault.Injector

	opts    Options
	handler http.Handler
	ts      *httptest.Server

	mu       sync.Mutex
	files    map[string]*file
	fileIDs  []string // in upload order
	batches  map[string]*batch
	batchIDs []string // in creation order
	requests map[string]int
	nextIDs  []string // ids the next batches get, see SetNextBatchIDs
}

// Jobs is how many jobs the double holds: a test's proof that nothing
// was submitted twice.
func (s *Server) Jobs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.batches)
}

// SetNextBatchIDs makes the next batches created get these ids, in order,
// instead of random ones: a test can hand a client an id that needs
// escaping ("x?admin=1") or looks like a template ("${parameters.id}").
func (s *Server) SetNextBatchIDs(ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextIDs = append(s.nextIDs, ids...)
}

// New returns a Server that is not listening yet.
func New(o Options) *Server {
	if o.Dim <= 0 {
		o.Dim = 8
	}
	s := &Server{
		Faults:   &fault.Injector{},
		opts:     o,
		files:    map[string]*file{},
		batches:  map[string]*batch{},
		requests: map[string]int{},
	}
	api := http.NewServeMux()
	api.Handle("POST /v1/embeddings", s.op("embeddings", s.createEmbeddings))
	api.Handle("POST /v1/files", s.op("files.create", s.createFile))
	api.Handle("GET /v1/files", s.op("files.list", s.listFiles))
	api.Handle("GET /v1/files/{id}", s.op("files.retrieve", s.getFile))
	api.Handle("DELETE /v1/files/{id}", s.op("files.delete", s.deleteFile))
	api.Handle("GET /v1/files/{id}/content", s.op("files.content", s.fileContent))
	api.Handle("POST /v1/batches", s.op("batches.create", s.createBatch))
	api.Handle("GET /v1/batches", s.op("batches.list", s.listBatches))
	api.Handle("GET /v1/batches/{id}", s.op("batches.retrieve", s.getBatch))
	api.Handle("POST /v1/batches/{id}/cancel", s.op("batches.cancel", s.cancelBatch))
	// OpenAI answers unknown paths and wrong methods alike with 404.
	api.Handle("/", withHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, apiError{
			Message: fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path),
			Type:    "invalid_request_error",
		})
	})))
	root := http.NewServeMux()
	root.Handle("/openai/", http.StripPrefix("/openai", api))
	root.Handle("/", api)
	s.handler = root
	return s
}

// Handler serves the API, for callers that bring their own listener.
func (s *Server) Handler() http.Handler { return s.handler }

// Start listens on 127.0.0.1 on a free port.
func (s *Server) Start() { s.ts = httptest.NewServer(s.handler) }

// Close stops listening and waits for requests in flight.
func (s *Server) Close() {
	if s.ts != nil {
		s.ts.Close()
	}
}

// URL is the server's root, without /v1: SDKs take URL()+"/v1/" as base URL.
func (s *Server) URL() string { return s.ts.URL }

// Requests is how many requests reached op (or all ops, for "*"), counted
// before faults and authentication, so a test can assert poll rates and the
// absence of retry amplification.
func (s *Server) Requests(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if op == "*" {
		n := 0
		for _, c := range s.requests {
			n += c
		}
		return n
	}
	return s.requests[op]
}

// op wraps the handler of one operation: count, inject faults, authenticate.
func (s *Server) op(name string, h http.HandlerFunc) http.Handler {
	return withHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests[name]++
		s.mu.Unlock()
		w, hold := s.Faults.Withhold(name, w, r)
		defer hold()
		if s.Faults.Apply(name, w, r, faultBody) {
			return
		}
		if !s.authorized(w, r) {
			return
		}
		h(w, r)
	}))
}

func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	if s.opts.APIKey == "" {
		return true
	}
	key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || key == "" {
		writeError(w, http.StatusUnauthorized, apiError{
			Message: "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys.",
			Type:    "invalid_request_error",
		})
		return false
	}
	if subtle.ConstantTimeCompare([]byte(key), []byte(s.opts.APIKey)) != 1 {
		writeError(w, http.StatusUnauthorized, apiError{
			Message: fmt.Sprintf("Incorrect API key provided: %s. You can find your API key at https://platform.openai.com/account/api-keys.", maskKey(key)),
			Type:    "invalid_request_error",
			Code:    ptr("invalid_api_key"),
		})
		return false
	}
	return true
}

// maskKey hides all but the ends of a key, as OpenAI does in its 401 message.
func maskKey(key string) string {
	if len(key) < 8 {
		return strings.Repeat("*", len(key))
	}
	return key[:3] + strings.Repeat("*", len(key)-7) + key[len(key)-4:]
}

func (s *Server) now() time.Time {
	if s.opts.Clock != nil {
		return s.opts.Clock.Now()
	}
	return time.Now()
}

// lock takes the state lock and brings every batch up to date with the
// clock, so each read sees the state the clock implies. The caller unlocks.
func (s *Server) lock() time.Time {
	s.mu.Lock()
	now := s.now()
	for _, id := range s.batchIDs {
		s.advance(s.batches[id], now)
	}
	return now
}

// apiError is OpenAI's error object; all four keys are always present.
type apiError struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func invalidRequest(message, param, code string) apiError {
	e := apiError{Message: message, Type: "invalid_request_error"}
	if param != "" {
		e.Param = &param
	}
	if code != "" {
		e.Code = &code
	}
	return e
}

func writeError(w http.ResponseWriter, status int, e apiError) {
	writeJSON(w, status, struct {
		Error apiError `json:"error"`
	}{e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// faultBody is OpenAI's usual error body for an injected status.
func faultBody(status int) string {
	e := apiError{Message: http.StatusText(status), Type: "invalid_request_error"}
	switch {
	case status == http.StatusUnauthorized:
		e = invalidRequest("Incorrect API key provided: sk-***********. You can find your API key at https://platform.openai.com/account/api-keys.", "", "invalid_api_key")
	case status == http.StatusTooManyRequests:
		e = apiError{
			Message: "Rate limit reached for requests. Please try again later.",
			Type:    "requests",
			Code:    ptr("rate_limit_exceeded"),
		}
	case status >= 500:
		e = apiError{Message: "The server had an error while processing your request. Sorry about that!", Type: "server_error"}
	}
	b, _ := json.Marshal(struct {
		Error apiError `json:"error"`
	}{e})
	return string(b)
}

// decodeStrict decodes a JSON request body the way OpenAI does: unknown
// arguments are refused.
func decodeStrict(body io.Reader, v any) *apiError {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("trailing data")
	}
	if err == nil {
		return nil
	}
	if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		e := invalidRequest("Unrecognized request argument supplied: "+strings.Trim(field, `"`), "", "")
		return &e
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		e := invalidRequest(fmt.Sprintf("Invalid type for '%s': expected %s, but got %s instead.", typeErr.Field, typeErr.Type, typeErr.Value), typeErr.Field, "invalid_type")
		return &e
	}
	e := invalidRequest("We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)", "", "")
	return &e
}

// headerWriter adds the headers every OpenAI answer carries, with the rate
// limit ones showing exhaustion on a 429.
type headerWriter struct {
	http.ResponseWriter
	wrote bool
}

func withHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&headerWriter{ResponseWriter: w}, r)
	})
}

func (w *headerWriter) WriteHeader(code int) {
	if !w.wrote {
		w.wrote = true
		h := w.Header()
		h.Set("X-Request-Id", "req_"+randomHex(16))
		h.Set("Openai-Version", "2020-10-01")
		h.Set("Openai-Processing-Ms", "1")
		h.Set("X-Ratelimit-Limit-Requests", "10000")
		h.Set("X-Ratelimit-Limit-Tokens", "10000000")
		requests, tokens, reset := "9999", "9999000", "6ms"
		if code == http.StatusTooManyRequests {
			requests, reset = "0", "1s"
			if ra := h.Get("Retry-After"); ra != "" {
				reset = ra + "s"
			}
		}
		h.Set("X-Ratelimit-Remaining-Requests", requests)
		h.Set("X-Ratelimit-Remaining-Tokens", tokens)
		h.Set("X-Ratelimit-Reset-Requests", reset)
		h.Set("X-Ratelimit-Reset-Tokens", reset)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *headerWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *headerWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// readBody reads a request body of at most limit bytes.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	return io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func ptr[T any](v T) *T { return &v }
