package mlcommons

import (
	"testing"

	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

func TestModelRateLimiter(t *testing.T) {
	var l modelLimiters
	spec := []byte(`{"limit":"2","unit":"MINUTES"}`)
	for i := 0; i < 2; i++ {
		if err := l.allow("m", spec); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	err := l.allow("m", spec)
	if e, ok := mlerr.From(err); !ok || e.Status != 429 || e.Reason != "Request is throttled at model level." {
		t.Errorf("third request in a minute: %v, want 429", err)
	}
	if err := l.allow("other", spec); err != nil {
		t.Errorf("another model has its own bucket: %v", err)
	}
	for _, s := range []string{``, `{"limit":"x","unit":"MINUTES"}`, `{"limit":"1","unit":"FORTNIGHTS"}`} {
		for i := 0; i < 3; i++ {
			if err := l.allow("n", []byte(s)); err != nil {
				t.Errorf("limiter %q limits: %v", s, err)
			}
		}
	}
}
