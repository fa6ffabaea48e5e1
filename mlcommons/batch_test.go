package mlcommons

import (
	"testing"

	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

func TestModelRateLimiter(t *testing.T) {
	var l rateLimiters
	allow := func(model, spec string) error {
		limit, unit := modelRateLimiter([]byte(spec))
		return l.allow(limiterKey{modelID: model}, limit, unit, errModelThrottled)
	}
	spec := `{"limit":"2","unit":"MINUTES"}`
	for i := 0; i < 2; i++ {
		if err := allow("m", spec); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	err := allow("m", spec)
	if e, ok := mlerr.From(err); !ok || e.Status != 429 || e.Reason != "Request is throttled at model level." {
		t.Errorf("third request in a minute: %v, want 429", err)
	}
	if err := allow("other", spec); err != nil {
		t.Errorf("another model has its own bucket: %v", err)
	}
	if err := allow("m", `{"limit":3,"unit":"MINUTES"}`); err != nil {
		t.Errorf("a changed limit starts a full bucket: %v", err)
	}
	for _, s := range []string{``, `{"limit":"x","unit":"MINUTES"}`, `{"limit":"1","unit":"FORTNIGHTS"}`,
		`{"limit":"-1","unit":"SECONDS"}`, `{"limit":"1"}`, `{"unit":"SECONDS"}`, `{"limit":"Infinity","unit":"SECONDS"}`} {
		for i := 0; i < 3; i++ {
			if err := allow("n", s); err != nil {
				t.Errorf("limiter %q limits: %v", s, err)
			}
		}
	}
	// 0 is a limit (ML Commons' token bucket starts with one token and
	// never refills).
	if err := allow("z", `{"limit":"0","unit":"DAYS"}`); err != nil {
		t.Errorf("first request at limit 0: %v", err)
	}
	if err := allow("z", `{"limit":"0","unit":"DAYS"}`); err == nil {
		t.Error("second request at limit 0 passed")
	}
}
