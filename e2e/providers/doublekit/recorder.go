package doublekit

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync"
)

// Recorded is one request a double received.
type Recorded struct {
	Method string
	// Path is the path as received, still escaped (see WirePath).
	Path     string
	RawQuery string
	Header   http.Header
	Body     []byte
}

// Recorder keeps every request a double received, in order, rejected ones
// included, so a test can assert what a client really sent: retries,
// signatures, bodies. The zero Recorder is ready; it is safe for concurrent
// use.
type Recorder struct {
	mu   sync.Mutex
	reqs []Recorded
}

// Record reads r's body, keeps a copy of r, and gives r a fresh body for
// the handler. It answers the body, or the error reading it.
func (rec *Recorder) Record(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.reqs = append(rec.reqs, Recorded{Method: r.Method, Path: WirePath(r), RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
	return body, nil
}

// Requests returns the requests received so far. They are copies, headers
// and bodies too, so a test cannot change what a later call sees.
func (rec *Recorder) Requests() []Recorded {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	out := make([]Recorded, len(rec.reqs))
	for i, r := range rec.reqs {
		r.Header, r.Body = r.Header.Clone(), bytes.Clone(r.Body)
		out[i] = r
	}
	return out
}

// WirePath is r's path exactly as it came on the wire, still escaped: the
// path the client signed. (r.URL.Path has "%2F" turned into "/", and
// http.StripPrefix shortens r.URL but not r.RequestURI.)
func WirePath(r *http.Request) string {
	p := r.RequestURI
	if p == "" || !strings.HasPrefix(p, "/") {
		p = r.URL.EscapedPath()
	}
	p, _, _ = strings.Cut(p, "?")
	if p == "" {
		return "/"
	}
	return p
}
