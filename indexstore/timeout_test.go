package indexstore

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

// A cluster that does not answer (a SIGSTOPped node) fails each call with
// ErrTimeout after the call timeout, retries included; a caller that goes
// away first gets its own context error, not ErrTimeout.
func TestCallTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	u, _ := url.Parse(srv.URL)
	s, err := New(Options{Upstream: u, Prefix: ".t-", CallTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = s.Connectors().Get(context.Background(), "abc")
	if !errors.Is(err, ErrTimeout) {
		t.Errorf("Get from a silent cluster: got %v, want ErrTimeout", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, _, err = s.Connectors().Get(ctx, "abc")
	if errors.Is(err, ErrTimeout) || err == nil {
		t.Errorf("Get whose caller gave up first: got %v, want the caller's context error", err)
	}
}
