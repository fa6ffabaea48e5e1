package mlcommons

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/auth"
	"github.com/mlsidecar/mlsidecar/mlcommons/connector"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

// apiFunc handles one request and returns the value to answer with.
type apiFunc func(r *http.Request) (any, error)

// withStatus answers with a status other than 200.
type withStatus struct {
	status int
	body   any
}

// wrap adapts an apiFunc: readiness, the query parameters, authorization of action, the body
// limit, the JSON answer, and the one place where errors become statuses.
func (a *API) wrap(action string, params *paramCheck, f apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.Ready() {
			writeError(w, mlerr.Status(http.StatusServiceUnavailable,
				"mlsidecar is starting: its indices or master key are not ready yet; retry shortly"))
			return
		}
		var v any
		err := params.check(r)
		if err == nil {
			err = a.authorize(r, action)
		}
		if err == nil {
			var release func()
			if release, err = a.admitBody(w, r); err == nil {
				defer release()
				r.Body = http.MaxBytesReader(w, r.Body, a.maxBody)
				v, err = f(r)
			}
		}
		if err != nil {
			if r.Context().Err() != nil {
				return // the client went away: nobody to answer, nothing failed
			}
			e, clientErr := toError(err)
			if !clientErr {
				a.log.ErrorContext(r.Context(), "ML request failed", "path", r.URL.Path, "err", err)
			}
			writeError(w, e)
			return
		}
		status := http.StatusOK
		if ws, ok := v.(withStatus); ok {
			status, v = ws.status, ws.body
		}
		writeJSON(w, status, v)
	})
}

// authorize lets the request run action when the caller's roles allow it.
// Only a request the authentication middleware let through has a caller;
// one without is refused, so no route can run unauthenticated by mistake.
func (a *API) authorize(r *http.Request, action string) error {
	u, ok := auth.UserFrom(r.Context())
	if !ok {
		return mlerr.Status(http.StatusInternalServerError, "the ML API is not behind the authentication middleware")
	}
	if a.authz == nil {
		return mlerr.Status(http.StatusInternalServerError, "the ML API has no authorizer")
	}
	return a.authz.Authorize(r.Context(), u, action)
}

// admitBody bounds what ML request bodies hold of memory: the body must
// arrive within the read timeout (a client trickling bytes holds nothing for
// long), and the bytes of all bodies being read at once stay under the
// in-flight limit. A body is counted at its Content-Length, or at the body
// limit when it has none; over the in-flight limit the answer is 429, as
// OpenSearch's in_flight_requests breaker answers.
func (a *API) admitBody(w http.ResponseWriter, r *http.Request) (func(), error) {
	if a.bodyReadTimeout > 0 {
		// The server sets the connection's deadlines again for the next
		// request on it.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(a.bodyReadTimeout))
	}
	if a.inflight == nil || r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return func() {}, nil
	}
	n := a.maxBody
	if r.ContentLength > 0 && r.ContentLength < n {
		n = r.ContentLength
	}
	if !a.inflight.TryAcquire(n) {
		return nil, mlerr.New(http.StatusTooManyRequests, "circuit_breaking_exception",
			"[in_flight_requests] ML request bodies being read would exceed the sidecar's limit (--max-inflight-ml-body-bytes); retry shortly")
	}
	a.inflightBytes.Add(float64(n))
	return func() {
		a.inflightBytes.Sub(float64(n))
		a.inflight.Release(n)
	}, nil
}

// toError is the single mapping of errors to answers: the ML error as it
// is, the store's sentinels and client-caused refusals, and a 500 naming no
// detail for everything else (false: not the client's doing).
func toError(err error) (*mlerr.Error, bool) {
	var se *indexstore.StatusError
	if e, ok := mlerr.From(err); ok {
		return e, e.Status < 500
	}
	switch {
	case errors.Is(err, indexstore.ErrTimeout):
		return mlerr.Status(http.StatusGatewayTimeout, "the OpenSearch cluster did not answer in time"), false
	case errors.Is(err, indexstore.ErrConflict):
		return mlerr.VersionConflict("the document was changed by another request; retry"), true
	case errors.As(err, &se) && se.Status < 500:
		return &mlerr.Error{Status: se.Status, Type: se.Type, Reason: se.Reason}, true
	}
	return mlerr.Exception(http.StatusInternalServerError, "internal error in mlsidecar"), false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // OpenSearch writes <, > and & as they are
	if raw, ok := v.(json.RawMessage); ok {
		buf.Write(raw)
	} else if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":{"root_cause":[{"type":"exception","reason":"cannot encode answer"}],"type":"exception","reason":"cannot encode answer"},"status":500}`)
	}
	body := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeError(w http.ResponseWriter, e *mlerr.Error) {
	body := e.Envelope()
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(e.Status)
	_, _ = w.Write(body)
}

// notFoundAs turns the store's ErrNotFound into the resource's own answer.
func notFoundAs(err, notFound error) error {
	if errors.Is(err, indexstore.ErrNotFound) {
		return notFound
	}
	return err
}

func modelNotFound(id string) error {
	return mlerr.Status(http.StatusNotFound, "Failed to find model with the provided model id: %s", id)
}

func modelGroupNotFound(id string) error {
	return mlerr.Status(http.StatusNotFound, "Failed to find model group with the provided model group id: %s", id)
}

// readBody reads a request body within the limit wrap set.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, mlerr.ContentTooLong(tooBig.Limit)
	}
	return b, err
}

// decodeBody decodes a JSON object body into v. Unknown fields are
// tolerated, as in ML Commons; an empty body is an error when required.
func decodeBody(r *http.Request, v any, required bool) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		if required {
			return errEmptyBody
		}
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return mlerr.Parse("Failed to parse request body: %s", connector.JSONErrText(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return mlerr.Parse("Failed to parse request body: unexpected data after the JSON object")
	}
	return nil
}

// errEmptyBody is the answer to a required body that is missing.
var errEmptyBody = mlerr.Parse("Request body is empty")

// pathVar returns a decoded path variable (the router keeps paths encoded).
func pathVar(r *http.Request, name string) string {
	v := mux.Vars(r)[name]
	if u, err := url.PathUnescape(v); err == nil {
		return u
	}
	return v
}

// boolParam reads a boolean query parameter as OpenSearch does: absent or
// "false" is false, "" or "true" is true, anything else a 400.
func boolParam(r *http.Request, name string) (bool, error) {
	q := r.URL.Query()
	if !q.Has(name) {
		return false, nil
	}
	switch v := q.Get(name); v {
	case "", "true":
		return true, nil
	case "false":
		return false, nil
	default:
		return false, mlerr.IllegalArgument("Failed to parse value [%s] as only [true] or [false] are allowed.", v)
	}
}

// unmatched answers a request no route took as OpenSearch's RestController
// does: 405 listing the allowed methods when the path exists for other
// methods, else 400 "no handler found" with the decoded path and no query.
func unmatched(router *mux.Router) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var allowed []string
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
			probe := r.Clone(r.Context())
			probe.Method = m
			var match mux.RouteMatch
			if router.Match(probe, &match) && match.MatchErr == nil {
				allowed = append(allowed, m)
			}
		}
		if len(allowed) == 0 {
			writeRaw(w, r, http.StatusBadRequest, map[string]any{
				"error": fmt.Sprintf("no handler found for uri [%s] and method [%s]", r.URL.Path, r.Method),
			})
			return
		}
		writeMethodNotAllowed(w, r, allowed)
	})
}

// methodNotAllowed answers the methods a literal path does not have.
func methodNotAllowed(allowed []string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeMethodNotAllowed(w, r, allowed)
	})
}

func writeMethodNotAllowed(w http.ResponseWriter, r *http.Request, allowed []string) {
	allowed = slices.Sorted(slices.Values(allowed))
	w.Header().Set("Allow", strings.Join(allowed, ","))
	writeRaw(w, r, http.StatusMethodNotAllowed, map[string]any{
		"error":  fmt.Sprintf("Incorrect HTTP method for uri [%s] and method [%s], allowed: [%s]", r.URL.Path, r.Method, strings.Join(allowed, ", ")),
		"status": http.StatusMethodNotAllowed,
	})
}

func writeRaw(w http.ResponseWriter, r *http.Request, status int, v any) {
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, v)
}
