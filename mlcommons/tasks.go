package mlcommons

import (
	"net/http"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/batch"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

func (a *API) getTask(r *http.Request) (any, error) {
	// ML Commons answers 500 for this refusal; see COMPATIBILITY.md.
	denied := mlerr.Status(http.StatusForbidden, "You don't have permission to access this batch job")
	if err := a.checkBatchTask(r.Context(), pathVar(r, "id"), denied); err != nil {
		return nil, err
	}
	t, err := a.batch.Get(r.Context(), pathVar(r, "id"))
	if err != nil {
		return nil, err
	}
	return taskOut(t), nil
}

func (a *API) deleteTask(r *http.Request) (any, error) {
	id := pathVar(r, "id")
	t, v, err := a.store.Tasks().Get(r.Context(), id)
	if err != nil {
		return nil, notFoundAs(err, batch.TaskNotFound())
	}
	if indexstore.IsOpenState(t.State) {
		// ML Commons answers 500 for this client mistake; see COMPATIBILITY.md.
		return nil, mlerr.Exception(http.StatusConflict, "Task cannot be deleted in running state. Try after some time.")
	}
	return a.store.Tasks().Delete(r.Context(), id, v)
}

// batchPredict serves POST /models/{id}/_batch_predict.
func (a *API) batchPredict(r *http.Request) (any, error) {
	var in predictInput
	if err := decodeBody(r, &in, true); err != nil {
		return nil, err
	}
	if err := a.checkModel(r.Context(), pathVar(r, "id"), errPredictDenied); err != nil {
		return nil, err
	}
	sub, err := a.batch.Submit(r.Context(), pathVar(r, "id"), in.Parameters)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"task_id": sub.TaskID, "status": indexstore.TaskCreated}
	if sub.RemoteJob != nil {
		out["remote_job"] = sub.RemoteJob
	}
	return out, nil
}

// cancelBatch serves POST /tasks/{id}/_cancel and /_cancel_batch.
func (a *API) cancelBatch(r *http.Request) (any, error) {
	// ML Commons answers 500 for this refusal; see COMPATIBILITY.md.
	denied := mlerr.Status(http.StatusForbidden, "You don't have permission to cancel this batch job")
	if err := a.checkBatchTask(r.Context(), pathVar(r, "id"), denied); err != nil {
		return nil, err
	}
	if err := a.batch.Cancel(r.Context(), pathVar(r, "id")); err != nil {
		return nil, err
	}
	return map[string]string{"status": "OK"}, nil
}
