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
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/auth"
	"github.com/mlsidecar/mlsidecar/mlcommons/connector"
	"github.com/mlsidecar/mlsidecar/mlcommons/httpcodec"
	"github.com/mlsidecar/mlsidecar/mlcommons/jsonout"
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
			writeError(w, r, mlerr.Status(http.StatusServiceUnavailable,
				"mlsidecar is starting: its indices or master key are not ready yet; retry shortly"))
			return
		}
		var v any
		err := params.check(r)
		if err == nil {
			if _, perr := jsonout.FromQuery(r.URL.Query()); perr != nil {
				err = mlerr.IllegalArgument("%s", perr)
			}
		}
		if err == nil {
			err = a.authorize(r, action)
		}
		if err == nil {
			// Compressed bodies are decoded with the limit on what they
			// decode to, and counted at the limit in flight.
			err = decodeEncoding(w, r, a.maxBody)
		}
		if err == nil {
			var release func()
			if release, err = a.admitBody(w, r); err == nil {
				defer release()
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
			writeError(w, r, e)
			return
		}
		status := http.StatusOK
		if ws, ok := v.(withStatus); ok {
			status, v = ws.status, ws.body
		}
		writeJSON(w, r, status, v)
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

// writeJSON answers v as JSON.
func writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := marshal(v)
	if err != nil {
		writeError(w, r, mlerr.Exception(http.StatusInternalServerError, "cannot encode answer"))
		return
	}
	writeBody(w, r, status, jsonOptions(r).Render(b))
}

// marshal encodes v as OpenSearch writes JSON: <, > and & as they are.
func marshal(v any) ([]byte, error) {
	if raw, ok := v.(json.RawMessage); ok {
		return raw, nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// writeError answers an error in OpenSearch's envelope; filter_path does
// not apply to errors, pretty does.
func writeError(w http.ResponseWriter, r *http.Request, e *mlerr.Error) {
	writeBody(w, r, e.Status, jsonOptions(r).RenderError(e.Envelope()))
}

// writeBody is the one place ML answers are written: compressed when the
// client accepts it, as OpenSearch's http.compression (on by default).
func writeBody(w http.ResponseWriter, r *http.Request, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_ = httpcodec.Write(w, r, status, body)
}

// jsonOptions are the request's filter_path and pretty; values wrap has
// refused already render as OpenSearch renders that refusal (plain).
func jsonOptions(r *http.Request) jsonout.Options {
	o, _ := jsonout.FromQuery(r.URL.Query())
	return o
}

// decodeEncoding undoes the request's Content-Encoding (gzip, deflate), at
// most limit decoded bytes; an encoding it cannot decode is a 400.
func decodeEncoding(w http.ResponseWriter, r *http.Request, limit int64) error {
	var unsupported *httpcodec.UnsupportedEncodingError
	if err := httpcodec.DecodeBody(w, r, limit); errors.As(err, &unsupported) {
		return mlerr.IllegalArgument("%s", err)
	} else if err != nil {
		return err
	}
	return nil
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
	var corrupt *httpcodec.DecodeError
	switch {
	case errors.As(err, &tooBig):
		return nil, mlerr.ContentTooLong(tooBig.Limit)
	case errors.As(err, &corrupt):
		return nil, mlerr.Parse("%s", corrupt)
	}
	return b, err
}

// decodeBody decodes a JSON object body into v. Unknown fields are
// tolerated, as in ML Commons; an empty body answers empty, or is no body
// when empty is nil.
func decodeBody(r *http.Request, v any, empty error) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return empty
	}
	if err := mlerr.ExpectedObject(b); err != nil {
		return err
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

// errBodyRequired is OpenSearch's answer to a missing body a handler
// parses (RestRequest.requiredContent).
var errBodyRequired = mlerr.Parse("request body is required")

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

// writeRaw answers the router's own errors (no handler, wrong method):
// plain objects, rendered as errors.
func writeRaw(w http.ResponseWriter, r *http.Request, status int, v map[string]any) {
	b, _ := marshal(v) // strings and numbers: cannot fail
	writeBody(w, r, status, jsonOptions(r).RenderError(b))
}
