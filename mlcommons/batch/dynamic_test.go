package batch_test

import (
	"context"
	"net/http"
	"regexp"
	"testing"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/batch"
)

const disabledReason = `Offline Batch Inference is currently disabled. To enable it, update the setting "plugins.ml_commons.offline_batch_inference_enabled" to true.`

// SetDynamic changes the limit, the gate and the status rules of a running
// Service: the next call sees them.
func TestSetDynamic(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, settings())
	e.putTask("open", nil)

	t.Run("limit", func(t *testing.T) {
		e.svc.SetDynamic(batch.Dynamic{Enabled: true, MaxTasks: 1, Status: statusRules()})
		_, err := e.svc.Submit(ctx, modelID, map[string]any{"input_file_id": "file-abc"}, nil, nil)
		assertMLError(t, err, http.StatusTooManyRequests, "status_exception", "")
		e.svc.SetDynamic(batch.Dynamic{Enabled: true, MaxTasks: 2, Status: statusRules()})
		e.submit()
	})

	t.Run("disabled", func(t *testing.T) {
		e.svc.SetDynamic(batch.Dynamic{Enabled: false, MaxTasks: 100, Status: statusRules()})
		calls := len(e.Calls())
		_, err := e.svc.Submit(ctx, modelID, map[string]any{"input_file_id": "file-abc"}, nil, nil)
		assertMLError(t, err, http.StatusInternalServerError, "illegal_state_exception", disabledReason)
		_, err = e.svc.Get(ctx, "open")
		assertMLError(t, err, http.StatusInternalServerError, "illegal_state_exception", disabledReason)
		err = e.svc.Cancel(ctx, "open")
		assertMLError(t, err, http.StatusInternalServerError, "illegal_state_exception", disabledReason)
		if n := len(e.Calls()) - calls; n != 0 {
			t.Errorf("got %d provider calls while disabled, want none", n)
		}
	})

	t.Run("status rules", func(t *testing.T) {
		// A provider whose job says "done": no default rule maps it.
		e.provider(ok(`{"id":"batch_1","status":"done"}`))
		e.svc.SetDynamic(batch.Dynamic{Enabled: true, MaxTasks: 100, Status: statusRules()})
		got, err := e.svc.Get(ctx, "open")
		if err != nil {
			t.Fatal(err)
		}
		if got.State != indexstore.TaskRunning {
			t.Fatalf("with the default rules: state %s, want RUNNING", got.State)
		}
		rules := statusRules()
		rules.Rules = append(rules.Rules, batch.StatusRule{State: indexstore.TaskCompleted, Regex: regexp.MustCompile("(?i)done")})
		e.svc.SetDynamic(batch.Dynamic{Enabled: true, MaxTasks: 100, Status: rules})
		if got, err = e.svc.Get(ctx, "open"); err != nil {
			t.Fatal(err)
		}
		if got.State != indexstore.TaskCompleted {
			t.Errorf("with a rule for done: state %s, want COMPLETED", got.State)
		}
	})
}
