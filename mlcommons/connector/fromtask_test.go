package connector

import (
	"net/http"
	"testing"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
	"github.com/mlsidecar/mlsidecar/mlcommons/secrets"
)

// A task document without the batch snapshot (written by hand, or by
// something else) is refused, never a panic that takes the worker down.
func TestFromTaskWithoutSnapshot(t *testing.T) {
	k, err := secrets.GenerateKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	ring, err := secrets.NewKeyring(k)
	if err != nil {
		t.Fatal(err)
	}
	s := New(Options{Keys: func() *secrets.Keyring { return ring }})
	for name, task := range map[string]*indexstore.Task{
		"no batch state": {TaskType: indexstore.TaskBatchPrediction, State: indexstore.TaskRunning},
		"no connector":   {TaskType: indexstore.TaskBatchPrediction, State: indexstore.TaskRunning, Batch: &indexstore.BatchState{Provider: "openai"}},
	} {
		_, err := s.FromTask(task)
		if e, ok := mlerr.From(err); !ok || e.Status != http.StatusBadRequest {
			t.Errorf("%s: got %v, want a 400", name, err)
		}
	}
}
