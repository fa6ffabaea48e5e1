package mlcommons

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

// modelLimiters enforce models' rate_limiter ({"limit":"4","unit":"MINUTES"})
// as ML Commons does: a token bucket per model, here per replica.
type modelLimiters struct {
	mu       sync.Mutex
	limiters map[string]*rate.Limiter // by model id and the limiter's JSON
}

var timeUnits = map[string]time.Duration{
	"NANOSECONDS": time.Nanosecond, "MICROSECONDS": time.Microsecond, "MILLISECONDS": time.Millisecond,
	"SECONDS": time.Second, "MINUTES": time.Minute, "HOURS": time.Hour, "DAYS": 24 * time.Hour,
}

// allow takes a token for the model, or answers ML Commons' 429.
func (l *modelLimiters) allow(modelID string, spec json.RawMessage) error {
	if len(spec) == 0 {
		return nil
	}
	var rl struct {
		Limit json.Number `json:"limit"`
		Unit  string      `json:"unit"`
	}
	if json.Unmarshal(spec, &rl) != nil {
		return nil
	}
	limit, err := strconv.ParseFloat(rl.Limit.String(), 64)
	unit, ok := timeUnits[strings.ToUpper(rl.Unit)]
	if err != nil || !ok || limit <= 0 {
		return nil // an unusable limiter limits nothing, as in ML Commons
	}
	key := modelID + string(spec)
	l.mu.Lock()
	if l.limiters == nil {
		l.limiters = map[string]*rate.Limiter{}
	}
	lim, ok := l.limiters[key]
	if !ok {
		lim = rate.NewLimiter(rate.Limit(limit/unit.Seconds()), max(1, int(limit)))
		l.limiters[key] = lim
	}
	l.mu.Unlock()
	if !lim.Allow() {
		return mlerr.Status(http.StatusTooManyRequests, "Request is throttled at model level.")
	}
	return nil
}
