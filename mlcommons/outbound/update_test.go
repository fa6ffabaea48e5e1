package outbound

import (
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"
)

// Update changes what CheckURL trusts and what the transport may dial, for
// calls made after it, on a Guard already in use.
func TestUpdate(t *testing.T) {
	srv := newCountingServer(t)
	local := "http://127.0.0.1:" + srv.port(t) + "/x"
	g := newGuard(t, Options{TrustedEndpoints: trusted(t, []string{`^https://api\.openai\.com/.*$`})})
	client := &http.Client{Transport: g.Transport(), Timeout: 10 * time.Second}

	get := func() error {
		resp, err := client.Get(local)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := g.CheckURL(local); !errors.Is(err, ErrUntrustedEndpoint) {
		t.Fatalf("before: CheckURL(%s) = %v, want untrusted", local, err)
	}
	if err := get(); !errors.Is(err, ErrPrivateAddress) {
		t.Fatalf("before: dial of %s = %v, want the private address refusal", local, err)
	}

	if g.Update(trusted(t, []string{`^http://127\.0\.0\.1:[0-9]+/.*$`}), true) {
		t.Error("allowing private addresses reported a revocation")
	}
	if err := g.CheckURL(local); err != nil {
		t.Errorf("after: CheckURL(%s) = %v, want trusted", local, err)
	}
	if err := g.CheckURL("https://api.openai.com/v1/batches"); !errors.Is(err, ErrUntrustedEndpoint) {
		t.Errorf("after: the replaced list still trusts api.openai.com: %v", err)
	}
	if err := get(); err != nil {
		t.Errorf("after: dial of %s with private addresses allowed: %v", local, err)
	}

	if !g.Update(nil, false) {
		t.Error("forbidding private addresses again reported no revocation")
	}
	client.CloseIdleConnections() // what a revocation asks for: the pooled connection was dialed under the old rule
	if err := get(); !errors.Is(err, ErrPrivateAddress) {
		t.Errorf("switched back: dial of %s = %v, want the private address refusal", local, err)
	}
	if err := g.CheckURL(local); !errors.Is(err, ErrUntrustedEndpoint) {
		t.Errorf("switched back: an empty list trusts %s: %v", local, err)
	}
}

// Updates racing with checks are safe (go test -race).
func TestUpdateConcurrent(t *testing.T) {
	g := newGuard(t, Options{})
	list := trusted(t, []string{`^https://api\.openai\.com/.*$`})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for range 200 {
				if i%2 == 0 {
					g.Update(list, i%4 == 0)
				} else {
					_ = g.CheckURL("https://api.openai.com/v1/x")
				}
			}
		})
	}
	wg.Wait()
}
