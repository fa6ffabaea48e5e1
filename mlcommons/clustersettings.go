package mlcommons

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/httpcodec"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
	"github.com/mlsidecar/mlsidecar/mlcommons/settings"
)

// ClusterSettingsPath is the route of the cluster settings API.
const ClusterSettingsPath = "/_cluster/settings"

// maxSettingsBody is the most of an update body read to take it apart; a
// larger one goes to the cluster as it is.
const maxSettingsBody = 1 << 20

// maxForwardedBody bounds a decoded settings body, as the cluster's
// http.max_content_length default does.
const maxForwardedBody = 100 << 20

// maxSettingsAnswer bounds a cluster answer held to merge ML Commons
// settings into (include_defaults answers are tens of kilobytes).
const maxSettingsAnswer = 32 << 20

// ClusterSettings serves GET and PUT /_cluster/settings in front of the
// cluster's own API, which knows no plugins.ml_commons.* setting: updates
// lose their ML Commons settings on the way to the cluster and, once the
// cluster has accepted the rest, s stores them; answers get them merged
// back. The cluster, asked with the caller's credentials through fwd,
// decides whether the caller may read or change settings at all.
func (a *API) ClusterSettings(s *settings.Service, fwd http.Handler) http.Handler {
	return &clusterSettings{settings: s, fwd: fwd, ready: a.Ready, log: a.log}
}

type clusterSettings struct {
	settings *settings.Service
	fwd      http.Handler
	ready    func() bool
	log      *slog.Logger
}

func (h *clusterSettings) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPut:
		h.put(w, r)
	case http.MethodGet:
		h.get(w, r)
	default:
		h.fwd.ServeHTTP(w, r)
	}
}

func (h *clusterSettings) get(w http.ResponseWriter, r *http.Request) {
	ans := h.forward(r, nil)
	if ans.status != http.StatusOK || !ans.isJSON() {
		ans.send(w, r, nil)
		return
	}
	merged, err := h.settings.Merge(ans.body.Bytes(), queryBool(r, "flat_settings"), queryBool(r, "include_defaults"))
	if err != nil || bytes.Equal(merged, ans.body.Bytes()) {
		ans.send(w, r, nil) // nothing to add, or not an answer we know: the cluster's, as it is
		return
	}
	ans.send(w, r, jsonOptions(r).Render(merged))
}

func (h *clusterSettings) put(w http.ResponseWriter, r *http.Request) {
	// opensearch-py with http_compress sends gzip bodies: decoded here, they
	// go on as identity. An encoding that cannot be decoded goes to the
	// cluster as it is, which answers it.
	var unsupported *httpcodec.UnsupportedEncodingError
	if err := httpcodec.DecodeBody(w, r, maxForwardedBody); errors.As(err, &unsupported) {
		h.fwd.ServeHTTP(w, r)
		return
	}
	body, whole, err := readPrefix(r.Body, maxSettingsBody)
	if err != nil {
		if r.Context().Err() == nil {
			writeError(w, r, mlerr.Parse("the request body could not be read: it is malformed or shorter than announced"))
		}
		return
	}
	var sp *settings.Split
	if whole && jsonBody(r) {
		sp, _ = settings.SplitBody(body)
	}
	var changes *settings.Changes
	if sp != nil && sp.HasML() {
		if changes, err = h.settings.Check(sp); err != nil {
			writeError(w, r, toClusterError(err))
			return
		}
	}
	if changes == nil || changes.Empty() {
		// Nothing of ours, or nothing we can read: the cluster answers it.
		r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), r.Body))
		h.fwd.ServeHTTP(w, r)
		return
	}
	if !h.ready() {
		writeError(w, r, mlerr.Status(http.StatusServiceUnavailable,
			"mlsidecar is starting: its indices or master key are not ready yet; retry shortly"))
		return
	}
	ans := h.forward(r, sp.Forward)
	if ans.status != http.StatusOK {
		ans.send(w, r, nil) // the caller may not, or the rest is wrong: nothing is stored
		return
	}
	if err := h.settings.Store(r.Context(), changes); err != nil {
		h.log.ErrorContext(r.Context(), "cluster accepted a settings update whose ML Commons settings could not be stored", "err", err)
		e := toClusterError(err)
		e.Reason = "the cluster applied the other settings, but mlsidecar could not store the ML Commons ones (" + e.Reason + "); repeat the request"
		writeError(w, r, e)
		return
	}
	merged, err := changes.Merge(ans.body.Bytes(), queryBool(r, "flat_settings"))
	if err != nil {
		ans.send(w, r, nil)
		return
	}
	ans.send(w, r, jsonOptions(r).Render(merged))
}

// toClusterError is toError for the cluster settings API.
func toClusterError(err error) *mlerr.Error {
	if errors.Is(err, indexstore.ErrConflict) {
		return mlerr.Status(http.StatusServiceUnavailable, "the ML Commons settings are being changed by other requests")
	}
	e, _ := toError(err)
	return e
}

// forward sends r to the cluster, with body instead of its own when body
// is not nil, and holds the answer. Accept-Encoding is dropped so that the
// answer can be read.
func (h *clusterSettings) forward(r *http.Request, body []byte) *heldAnswer {
	out := r.Clone(r.Context())
	out.Header.Del("Accept-Encoding")
	if body != nil {
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.ContentLength = int64(len(body))
		out.Header.Set("Content-Length", strconv.Itoa(len(body)))
	}
	ans := &heldAnswer{header: http.Header{}}
	h.fwd.ServeHTTP(ans, out)
	if ans.status == 0 {
		ans.status = http.StatusOK
	}
	return ans
}

// heldAnswer is an http.ResponseWriter that holds the answer, to be sent
// later with a body changed or not.
type heldAnswer struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (a *heldAnswer) Header() http.Header { return a.header }

func (a *heldAnswer) WriteHeader(code int) {
	if a.status == 0 && code >= 200 { // 1xx answers are not held
		a.status = code
	}
}

func (a *heldAnswer) Write(b []byte) (int, error) {
	a.WriteHeader(http.StatusOK)
	if a.body.Len()+len(b) > maxSettingsAnswer {
		return 0, errors.New("the cluster's settings answer is too large to merge ML Commons settings into")
	}
	return a.body.Write(b)
}

// Flush is a no-op: the answer is sent whole.
func (a *heldAnswer) Flush() {}

func (a *heldAnswer) isJSON() bool {
	mt, _, err := mime.ParseMediaType(a.header.Get("Content-Type"))
	return err == nil && mt == "application/json"
}

// send writes the held answer, with body instead of its own when not nil,
// compressed when r accepts it (the cluster was asked without).
func (a *heldAnswer) send(w http.ResponseWriter, r *http.Request, body []byte) {
	if body == nil {
		body = a.body.Bytes()
	}
	for k, vs := range a.header {
		if k != "Content-Length" {
			w.Header()[k] = vs
		}
	}
	_ = httpcodec.Write(w, r, a.status, body)
}

// readPrefix reads r up to limit bytes; whole is false when there is more.
func readPrefix(r io.Reader, limit int64) (b []byte, whole bool, err error) {
	if r == nil {
		return nil, true, nil
	}
	b, err = io.ReadAll(io.LimitReader(r, limit+1))
	if int64(len(b)) > limit {
		return b, false, err
	}
	return b, true, err
}

// jsonBody reports whether the request body is JSON; OpenSearch also takes
// YAML, CBOR and Smile, which go to the cluster as they are.
func jsonBody(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/json"
}

// queryBool reads a boolean query parameter as OpenSearch does: "" and
// "true" are true. Anything else is false here; the cluster refuses a
// value that is not a boolean before there is anything to merge.
func queryBool(r *http.Request, name string) bool {
	q := r.URL.Query()
	v := q.Get(name)
	return q.Has(name) && (v == "" || v == "true")
}
