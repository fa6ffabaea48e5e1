package mlcommons

import (
	"net/http"

	"github.com/mlsidecar/mlsidecar/indexstore"
)

func taskNotFound() error { return statusErr(http.StatusNotFound, "Failed to find task") }

// isOpen reports whether a task is still in progress.
func isOpen(state string) bool {
	return state == taskCreated || state == taskRunning || state == taskCancelling
}

func (a *API) getTask(r *http.Request) (any, error) {
	id := pathVar(r, "id")
	t, _, err := load[Task](r.Context(), a.store, indexstore.Tasks, id, taskNotFound())
	if err != nil {
		return nil, err
	}
	if t.TaskType == taskBatchPrediction {
		return a.getBatchTask(r, id, t)
	}
	return t.public(), nil
}

func (a *API) deleteTask(r *http.Request) (any, error) {
	t, doc, err := load[Task](r.Context(), a.store, indexstore.Tasks, pathVar(r, "id"), taskNotFound())
	if err != nil {
		return nil, err
	}
	if isOpen(t.State) {
		// ML Commons answers 500 for this client mistake; see COMPATIBILITY.md.
		return nil, &Error{Status: http.StatusConflict, Type: "exception", Reason: "Task cannot be deleted in running state. Try after some time."}
	}
	return a.store.Delete(r.Context(), indexstore.Tasks, doc)
}
