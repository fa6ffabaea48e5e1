package batch

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/mlsidecar/mlsidecar/mlcommons/connector"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
	"github.com/mlsidecar/mlsidecar/mlcommons/template"
)

// StatusRules map a provider's job status to a task state (ML Commons'
// plugins.ml_commons.remote_job.* settings).
type StatusRules struct {
	// Fields are the remote_job fields that may hold the job's status.
	Fields []string
	// Rules are tried in order; the first regex that finds a match decides.
	Rules []StatusRule
}

// StatusRule is one regex and the task state it means.
type StatusRule struct {
	State string
	Regex *regexp.Regexp
}

// State maps a remote job to a task state; "" when no rule matches. Each
// status field present is applied in turn, so the last matching one wins.
func (s StatusRules) State(job map[string]any) string {
	state := ""
	for _, f := range s.Fields {
		v, ok := job[f]
		if !ok || v == nil {
			continue
		}
		text := fmt.Sprint(v)
		for _, r := range s.Rules {
			if r.Regex.MatchString(text) {
				state = r.State
				break
			}
		}
	}
	return state
}

// Progress derives 0..1 from a provider's request counts, when it has them.
func Progress(job map[string]any) *float64 {
	rc, ok := job["request_counts"].(map[string]any)
	if !ok {
		return nil
	}
	num := func(v any) float64 {
		switch n := v.(type) {
		case float64:
			return n
		case json.Number:
			f, _ := n.Float64()
			return f
		}
		return 0
	}
	total := num(rc["total"])
	if total <= 0 {
		return nil
	}
	p := (num(rc["completed"]) + num(rc["failed"])) / total
	p = min(max(p, 0), 1)
	return &p
}

// remoteJob turns a provider's answer to a batch, status or cancel call into
// the remote_job map.
func remoteJob(function string, body []byte) (map[string]any, error) {
	notAnObject := mlerr.BadGateway("Remote service answered the batch job call with something that is not a JSON object")
	out, err := connector.PostProcess(function, "", body)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 || out[0].DataAsMap == nil {
		return nil, notAnObject
	}
	if function == "" {
		// Without a post-process function the answer itself must be the
		// job: a JSON object (the default function wraps anything else).
		text := strings.TrimSpace(string(body))
		if !strings.HasPrefix(text, "{") || !template.IsJSON(text) {
			return nil, notAnObject
		}
	}
	return out[0].DataAsMap, nil
}
