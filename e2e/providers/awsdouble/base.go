package awsdouble

import (
	"net/http"
	"net/http/httptest"

	"github.com/mlsidecar/mlsidecar/e2e/providers/doublekit"
)

// Base is what every AWS double has: a job clock (Now, Advance), a recorder
// of the requests it received (Record, Requests: rejected ones included, as
// the double records before it verifies), and the server it listens with.
// Doubles embed it.
type Base struct {
	*doublekit.Clock
	doublekit.Recorder
	srv *httptest.Server
}

// Serve serves h on 127.0.0.1 at a free port.
func (b *Base) Serve(h http.Handler) { b.srv = httptest.NewServer(h) }

// Close stops serving.
func (b *Base) Close() {
	if b.srv != nil {
		b.srv.Close()
	}
}

// URL is the base URL of the started double (for BaseEndpoint).
func (b *Base) URL() string {
	if b.srv == nil {
		return ""
	}
	return b.srv.URL
}
