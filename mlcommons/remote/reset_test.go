package remote

import (
	"context"
	"errors"
	"regexp"
	"testing"

	"github.com/mlsidecar/mlsidecar/mlcommons/outbound"
)

// Once private addresses are revoked, Reset keeps a pooled connection to
// one from carrying the next call.
func TestResetAfterRevokingPrivateAddresses(t *testing.T) {
	e := newEngine(t, true)
	srv, n := provider(t, answer(200, `{"ok":true}`))
	c := call(srv.URL, DefaultConfig())
	if _, err := e.Do(context.Background(), c); err != nil {
		t.Fatalf("with private addresses allowed: %v", err)
	}
	local := []*regexp.Regexp{regexp.MustCompile(`^http://127\.0\.0\.1:[0-9]+/.*$`)}
	if !e.guard.Update(local, false) {
		t.Fatal("no revocation reported")
	}
	e.Reset()
	_, err := e.Do(context.Background(), c)
	if !errors.Is(err, outbound.ErrPrivateAddress) {
		t.Errorf("after the revocation: %v, want the private address refusal", err)
	}
	if got := n.Load(); got != 1 {
		t.Errorf("the provider saw %d calls, want 1", got)
	}
}
