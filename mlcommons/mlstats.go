package mlcommons

import (
	"errors"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

// monitoredRequests is how many recent predictions of a model its profile
// summarises (ML Commons' monitoring_request_count default).
const monitoredRequests = 100

// mlStats holds this replica's ML Commons action-level stats: per algorithm
// and per model, each action's request and failure counts (stats'
// "algorithms" and "models"), and per model the durations of its recent
// predictions (profile's model_inference_stats and predict_request_stats).
// Like ML Commons', they count what this node served since it started.
type mlStats struct {
	mu      sync.Mutex
	algos   map[string]map[string]*actionCount // algorithm → action
	models  map[string]map[string]*actionCount // model id → action
	latency map[string]*modelLatency
}

type actionCount struct {
	requests, failures int64
	failed             bool // a failure was counted: the key is shown
}

type modelLatency struct{ inference, request []float64 }

func newMLStats() *mlStats {
	return &mlStats{algos: map[string]map[string]*actionCount{}, models: map[string]map[string]*actionCount{},
		latency: map[string]*modelLatency{}}
}

// record counts one request of action (ML Commons' lower-case action name:
// register, deploy, undeploy, predict, batch_predict) for the remote
// algorithm and, when modelID is known, for the model.
func (s *mlStats) record(modelID, action string, failed bool) {
	s.recordErr(modelID, action, failed, false)
}

// recordOutcome is record for a request that ended with err: a model that
// does not exist gets no model-level counts, as in ML Commons, where the
// request never reaches the model.
func (s *mlStats) recordOutcome(modelID, action string, err error) {
	var e *mlerr.Error
	unknown := errors.As(err, &e) && e.Status == http.StatusNotFound
	s.recordErr(modelID, action, err != nil, unknown)
}

func (s *mlStats) recordErr(modelID, action string, failed, unknownModel bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	count := func(m map[string]map[string]*actionCount, key string) {
		if m[key] == nil {
			m[key] = map[string]*actionCount{}
		}
		c := m[key][action]
		if c == nil {
			c = &actionCount{}
			m[key][action] = c
		}
		c.requests++
		if failed {
			c.failures++
			c.failed = true
		}
	}
	count(s.algos, "remote")
	if modelID != "" && !unknownModel {
		count(s.models, modelID)
	}
}

// observe keeps the durations of a model's prediction: the model's part
// (the provider call with its pre- and post-processing) and the whole
// request, each over the last monitoredRequests.
func (s *mlStats) observe(modelID string, inference, request time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.latency[modelID]
	if l == nil {
		l = &modelLatency{}
		s.latency[modelID] = l
	}
	keep := func(q []float64, d time.Duration) []float64 {
		if len(q) >= monitoredRequests {
			q = q[1:]
		}
		return append(q, float64(d.Microseconds())/1000)
	}
	l.inference, l.request = keep(l.inference, inference), keep(l.request, request)
}

// actions renders the counts of stats' "algorithms" or "models" map.
func (s *mlStats) actions(models bool) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	src := s.algos
	if models {
		src = s.models
	}
	out := make(map[string]any, len(src))
	for key, byAction := range src {
		acts := make(map[string]any, len(byAction))
		for action, c := range byAction {
			stat := map[string]any{"ml_action_request_count": c.requests}
			if c.failed {
				stat["ml_action_failure_count"] = c.failures
			}
			acts[action] = stat
		}
		out[key] = acts
	}
	return out
}

// profileOf adds a model's duration summaries to its profile entry, as ML
// Commons' MLModelCache.getInferenceStats: count, max, min, average and
// Guava's interpolated p50, p90, p99, in milliseconds.
func (s *mlStats) profileOf(modelID string, entry map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.latency[modelID]
	if l == nil || len(l.request) == 0 {
		return
	}
	entry["model_inference_stats"] = summarise(l.inference)
	entry["predict_request_stats"] = summarise(l.request)
}

func summarise(q []float64) map[string]any {
	sorted := slices.Sorted(slices.Values(q))
	sum := 0.0
	for _, v := range sorted {
		sum += v
	}
	return map[string]any{"count": len(sorted), "max": sorted[len(sorted)-1], "min": sorted[0],
		"average": sum / float64(len(sorted)),
		"p50":     percentile(sorted, 50), "p90": percentile(sorted, 90), "p99": percentile(sorted, 99)}
}

// percentile is Guava's Quantiles.percentiles().index(p) on sorted values:
// linear interpolation at p×(n−1)/100.
func percentile(sorted []float64, p int) float64 {
	pos := float64(p) * float64(len(sorted)-1) / 100
	lo := int(math.Floor(pos))
	if lo >= len(sorted)-1 {
		return sorted[len(sorted)-1]
	}
	return sorted[lo] + (pos-float64(lo))*(sorted[lo+1]-sorted[lo])
}

// statsAction is ML Commons' stats name of a connector action type.
func statsAction(action string) string { return strings.ToLower(action) }
