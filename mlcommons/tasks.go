package mlcommons

import (
	"net/http"
	"regexp"
	"strings"

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

// batchPredict starts a batch job.
func (a *API) batchPredict(r *http.Request, in *predictInput) (any, error) {
	dlq, err := deadLetterQueue(in.DLQ)
	if err != nil {
		return nil, err
	}
	spec, err := a.ingestSpec(r, in.Ingest)
	if err != nil {
		return nil, err
	}
	if err := a.checkModel(r.Context(), pathVar(r, "id"), errPredictDenied); err != nil {
		return nil, err
	}
	sub, err := a.batch.Submit(r.Context(), pathVar(r, "id"), in.Parameters, dlq, spec)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"task_id": sub.TaskID, "status": indexstore.TaskCreated}
	if sub.RemoteJob != nil {
		out["remote_job"] = sub.RemoteJob
	}
	return out, nil
}

// deadLetterQueue checks a batch job's dlq: an S3 bucket and region, both
// required as in ML Commons 2.19 ("DLQ bucketName or region cannot be
// null"), and each of a shape S3 accepts. nil when none is given.
func deadLetterQueue(in map[string]any) (map[string]string, error) {
	if in == nil {
		return nil, nil
	}
	bucket, _ := in["bucket"].(string)
	region, _ := in["region"].(string)
	if bucket == "" || region == "" {
		return nil, mlerr.IllegalArgument("DLQ bucketName or region cannot be null")
	}
	if !s3Bucket.MatchString(bucket) || strings.Contains(bucket, "..") {
		return nil, mlerr.IllegalArgument("DLQ bucket [%s] is not a valid S3 bucket name", bucket)
	}
	if !awsRegion.MatchString(region) {
		return nil, mlerr.IllegalArgument("DLQ region [%s] is not a valid AWS region", region)
	}
	out := map[string]string{}
	for k, v := range in {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out, nil
}

var (
	s3Bucket  = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	awsRegion = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
)

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
