package batch_test

import (
	"encoding/json"
	"regexp"
	"testing"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/batch"
)

// statusRules are config's defaults.
func statusRules() batch.StatusRules {
	rule := func(state, re string) batch.StatusRule {
		return batch.StatusRule{State: state, Regex: regexp.MustCompile("(?i)" + re)}
	}
	return batch.StatusRules{
		Fields: []string{"status", "Status", "TransformJobStatus"},
		Rules: []batch.StatusRule{
			rule(indexstore.TaskCancelling, `(stopping|cancelling)`),
			rule(indexstore.TaskCancelled, `(stopped|cancelled)`),
			rule(indexstore.TaskCompleted, `(complete|completed|partiallyCompleted)`),
			rule(indexstore.TaskExpired, `(expired|timeout)`),
			rule(indexstore.TaskFailed, `(failed)`),
		},
	}
}

func TestStatusRules(t *testing.T) {
	rules := statusRules()
	tests := []struct {
		job  map[string]any
		want string
	}{
		{map[string]any{"status": "validating"}, ""},
		{map[string]any{"status": "in_progress"}, ""},
		{map[string]any{"status": "finalizing"}, ""},
		{map[string]any{"status": "completed"}, indexstore.TaskCompleted},
		{map[string]any{"status": "failed"}, indexstore.TaskFailed},
		{map[string]any{"status": "expired"}, indexstore.TaskExpired},
		{map[string]any{"status": "cancelling"}, indexstore.TaskCancelling},
		{map[string]any{"status": "cancelled"}, indexstore.TaskCancelled},
		{map[string]any{"status": "processing"}, ""},                     // Cohere
		{map[string]any{"status": "complete"}, indexstore.TaskCompleted}, // Cohere
		{map[string]any{"status": "Submitted"}, ""},                      // Bedrock
		{map[string]any{"status": "PartiallyCompleted"}, indexstore.TaskCompleted},
		{map[string]any{"status": "Stopping"}, indexstore.TaskCancelling},
		{map[string]any{"status": "Stopped"}, indexstore.TaskCancelled},
		{map[string]any{"TransformJobStatus": "InProgress"}, ""}, // SageMaker
		{map[string]any{"TransformJobStatus": "Completed"}, indexstore.TaskCompleted},
		{map[string]any{"TransformJobStatus": "Stopping"}, indexstore.TaskCancelling},
		{map[string]any{"Status": "Failed"}, indexstore.TaskFailed},
		{map[string]any{"status": nil}, ""},
		{map[string]any{"other": "completed"}, ""},
		{map[string]any{"status": "Timeout"}, indexstore.TaskExpired},
		{nil, ""},
		// Unanchored, case-insensitive find, as in ML Commons.
		{map[string]any{"status": "incomplete"}, indexstore.TaskCompleted},
		// Each field applies in turn: the last matching one wins.
		{map[string]any{"status": "completed", "TransformJobStatus": "Failed"}, indexstore.TaskFailed},
		// A later field that matches nothing leaves the earlier match.
		{map[string]any{"status": "completed", "TransformJobStatus": "InProgress"}, indexstore.TaskCompleted},
	}
	for _, tt := range tests {
		if got := rules.State(tt.job); got != tt.want {
			t.Errorf("State(%v) = %q, want %q", tt.job, got, tt.want)
		}
	}
}

func TestProgress(t *testing.T) {
	p := batch.Progress(map[string]any{"request_counts": map[string]any{"total": 4.0, "completed": 2.0, "failed": 1.0}})
	if p == nil || *p != 0.75 {
		t.Errorf("progress = %v, want 0.75", p)
	}
	// Numbers decoded with UseNumber count too.
	p = batch.Progress(map[string]any{"request_counts": map[string]any{"total": json.Number("8"), "completed": json.Number("2")}})
	if p == nil || *p != 0.25 {
		t.Errorf("progress of json.Number counts = %v, want 0.25", p)
	}
	// More done than the total is clamped.
	p = batch.Progress(map[string]any{"request_counts": map[string]any{"total": 1.0, "completed": 2.0}})
	if p == nil || *p != 1 {
		t.Errorf("progress over the total = %v, want 1", p)
	}
	for _, job := range []map[string]any{{}, {"request_counts": map[string]any{"total": 0.0}}, {"request_counts": "x"}} {
		if p := batch.Progress(job); p != nil {
			t.Errorf("Progress(%v) = %v, want none", job, *p)
		}
	}
}
