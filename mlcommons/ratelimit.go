package mlcommons

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/auth"
	"github.com/mlsidecar/mlsidecar/mlcommons/connector"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

// ML Commons' answers to a prediction over a limit (RemoteConnectorExecutor).
var (
	errModelThrottled = mlerr.Status(http.StatusTooManyRequests, "Request is throttled at model level.")
	errUserThrottled  = mlerr.Status(http.StatusTooManyRequests,
		"Request is throttled at user level. If you think there's an issue, please contact your cluster admin.")
)

// throttle applies the rate limits of a prediction (_predict and
// _batch_predict) of model m, as ML Commons' remote connector executor does
// before it calls the provider: the model's rate_limiter, then the caller's
// limiter in the model's controller. Only a named caller has one: on a
// cluster without security ML Commons has no user, and limits none.
//
// The controller is not cached: it is read (a real-time get by id) on every
// prediction of a model whose document says is_controller_enabled, so a
// controller created, updated or deleted on any replica applies to the
// next prediction on every replica. Models without a controller cost no
// read.
func (a *API) throttle(ctx context.Context, modelID string, m *indexstore.Model) error {
	limit, unit := modelRateLimiter(m.RateLimiter)
	if err := a.limiters.allow(limiterKey{modelID: modelID}, limit, unit, errModelThrottled); err != nil {
		return err
	}
	u, ok := auth.UserFrom(ctx)
	if !ok || u.Name == "" || m.IsControllerEnabled == nil || !*m.IsControllerEnabled {
		return nil
	}
	c, _, err := a.store.Controllers().Get(ctx, modelID)
	if errors.Is(err, indexstore.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	rl, ok := c.UserRateLimiter[u.Name]
	if !ok {
		return nil
	}
	return a.limiters.allow(limiterKey{modelID: modelID, user: u.Name}, rl.Limit, rl.Unit, errUserThrottled)
}

// throttledBinder binds the model of a batch submission and applies its
// rate limits (throttle) right after, where predict applies them. Only the
// request path binds by model id; the worker binds tasks (FromTask), without
// a caller and without limits.
type throttledBinder struct {
	*connector.Service
	api *API
}

func (b throttledBinder) Bind(ctx context.Context, modelID string) (*connector.Bound, error) {
	bound, err := b.Service.Bind(ctx, modelID)
	if err != nil {
		return nil, err
	}
	if err := b.api.throttle(ctx, modelID, bound.Model); err != nil {
		return nil, err
	}
	return bound, nil
}

// modelRateLimiter reads a model's stored rate_limiter
// ({"limit":"4","unit":"MINUTES"}); a limit may be a JSON number.
func modelRateLimiter(spec json.RawMessage) (limit, unit string) {
	if len(spec) == 0 {
		return "", ""
	}
	var rl struct {
		Limit json.Number `json:"limit"`
		Unit  string      `json:"unit"`
	}
	if json.Unmarshal(spec, &rl) != nil {
		return "", ""
	}
	return rl.Limit.String(), rl.Unit
}

// rateLimiters are the token buckets of rate limits, as ML Commons keeps
// them in its model cache: one per model (its rate_limiter) and one per
// model and user (its controller's user_rate_limiter). They are per
// replica: ML Commons splits a limit across the nodes a model runs on, and
// the sidecar does not know how many replicas serve it.
type rateLimiters struct {
	mu      sync.Mutex
	buckets map[limiterKey]*bucket
}

// limiterKey names a bucket: a model's (user "") or a user's of a model.
type limiterKey struct{ modelID, user string }

// bucket is a token bucket and the limit it was made for. A changed limit
// gets a new, full bucket, as ML Commons makes new buckets when it deploys
// a changed limiter; an unchanged one keeps its tokens.
type bucket struct {
	limit, unit string
	lim         *rate.Limiter
}

var timeUnits = map[string]time.Duration{
	"NANOSECONDS": time.Nanosecond, "MICROSECONDS": time.Microsecond, "MILLISECONDS": time.Millisecond,
	"SECONDS": time.Second, "MINUTES": time.Minute, "HOURS": time.Hour, "DAYS": 24 * time.Hour,
}

// allow takes a token from key's bucket of limit requests per unit, or
// answers throttled. A limit that is not a number of at least 0 or without
// a known unit limits nothing, as in ML Commons (a limiter needs both).
func (l *rateLimiters) allow(key limiterKey, limit, unit string, throttled error) error {
	r, burst, ok := tokenRate(limit, unit)
	if !ok {
		return nil
	}
	l.mu.Lock()
	b := l.buckets[key]
	if b == nil || b.limit != limit || b.unit != unit {
		if l.buckets == nil {
			l.buckets = map[limiterKey]*bucket{}
		}
		b = &bucket{limit: limit, unit: unit, lim: rate.NewLimiter(r, burst)}
		l.buckets[key] = b
	}
	l.mu.Unlock()
	if !b.lim.Allow() {
		return throttled
	}
	return nil
}

// tokenRate is ML Commons' createTokenBucket on one node: limit/unit tokens
// a second and a full bucket of max(limit, 1) to start. A limit of 0 lets
// one request through and no more, as there.
func tokenRate(limit, unit string) (rate.Limit, int, bool) {
	n, isNumber := javaDouble(limit)
	d, ok := timeUnits[strings.ToUpper(unit)]
	if !isNumber || !ok || n < 0 || math.IsNaN(n) {
		return 0, 0, false
	}
	burst := 1
	if n > 1 {
		burst = int(min(n, math.MaxInt32))
	}
	return rate.Limit(n / d.Seconds()), burst, true
}

// javaDouble is Double.parseDouble, near enough: surrounding spaces and a
// d or f suffix are allowed, and a number too large is infinite.
func javaDouble(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	if t := strings.TrimRight(s, "dDfF"); len(t) == len(s)-1 && t != "" && !strings.ContainsAny(t, "xX") {
		s = t
	}
	n, err := strconv.ParseFloat(s, 64)
	var ne *strconv.NumError
	if err != nil && !(errors.As(err, &ne) && ne.Err == strconv.ErrRange) {
		return 0, false
	}
	return n, true
}
