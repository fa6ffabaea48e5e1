package mlcommons

import (
	"context"
	"net/http"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

// errDeployNotFound is ML Commons' answer to deploying or undeploying an
// unknown model: no id in it.
var errDeployNotFound = mlerr.Status(http.StatusNotFound, "Failed to find model")

func (a *API) deployModel(r *http.Request) (any, error) {
	if err := a.remoteInference(); err != nil {
		return nil, err
	}
	var body struct {
		NodeIDs []string `json:"node_ids"`
	}
	if err := decodeBody(r, &body, nil); err != nil {
		return nil, err
	}
	if len(body.NodeIDs) > 0 {
		return nil, mlerr.IllegalArgument("Don't allow custom deployment plan")
	}
	id := pathVar(r, "id")
	if err := a.checkModel(r.Context(), id, errModelDenied); err != nil {
		return nil, err
	}
	taskID, err := a.deploy(r.Context(), id)
	if err != nil {
		return nil, err
	}
	return map[string]string{"task_id": taskID, "task_type": indexstore.TaskDeployModel, "status": indexstore.TaskCompleted}, nil
}

// autoDeploy is deploy for a model used before it was deployed.
func (a *API) autoDeploy(ctx context.Context, id string) error {
	_, err := a.deploy(ctx, id)
	return err
}

// deploy makes a remote model DEPLOYED. Nothing is loaded: every replica
// builds its connector client on first use, so deploying means checking the
// connector can be used and recording the state.
func (a *API) deploy(ctx context.Context, id string) (string, error) {
	m, _, err := a.store.Models().Get(ctx, id)
	if err != nil {
		return "", notFoundAs(err, errDeployNotFound)
	}
	now := a.nowMillis()
	task := indexstore.Task{
		ModelID: id, TaskType: indexstore.TaskDeployModel, FunctionName: indexstore.AlgorithmRemote, State: indexstore.TaskCreated,
		IsAsync: true, WorkerNode: []string{a.nodeID}, CreateTime: now, LastUpdateTime: now, Owner: m.Owner,
	}
	taskRes, err := a.store.Tasks().Insert(ctx, &task, indexstore.NoWait)
	if err != nil {
		return "", err
	}
	cause := a.connectors.Usable(ctx, m)
	_, _, err = indexstore.Modify(ctx, a.store.Models(), id, indexstore.WaitForSeen, func(m *indexstore.Model) error {
		now := a.nowMillis()
		m.LastUpdatedTime = now
		if cause != nil {
			m.ModelState = indexstore.ModelDeployFailed
			return nil
		}
		one, all, zero := 1, true, 0
		m.ModelState, m.LastDeployedTime, m.AutoRedeployRetryTimes = indexstore.ModelDeployed, now, &zero
		m.PlanningWorkerNodeCount, m.CurrentWorkerNodeCount = &one, &one
		m.PlanningWorkerNodes, m.DeployToAllNodes = []string{a.nodeID}, &all
		return nil
	})
	if err != nil {
		return "", notFoundAs(err, errDeployNotFound)
	}
	if cause != nil {
		a.finishTask(ctx, taskRes.ID, indexstore.TaskFailed, id, cause)
		return "", cause
	}
	a.finishTask(ctx, taskRes.ID, indexstore.TaskCompleted, id, nil)
	return taskRes.ID, nil
}

// finishTask records how a synchronous task ended. The caller's answer does
// not depend on it, so a failure is logged, not returned.
func (a *API) finishTask(ctx context.Context, taskID, state, modelID string, cause error) {
	// No refresh: a tasks search refreshes the index first.
	_, _, err := indexstore.Modify(ctx, a.store.Tasks(), taskID, indexstore.NoWait, func(t *indexstore.Task) error {
		t.State, t.LastUpdateTime = state, a.nowMillis()
		if modelID != "" {
			t.ModelID = modelID
		}
		if cause != nil {
			t.Error = mlerr.Reason(cause)
		}
		return nil
	})
	if err != nil {
		a.log.WarnContext(ctx, "cannot record task state", "task_id", taskID, "state", state, "err", err)
	}
}

func (a *API) undeployModel(r *http.Request) (any, error) {
	ids := []string{pathVar(r, "id")}
	if err := a.checkUndeploy(r, ids); err != nil {
		return nil, err
	}
	return a.undeploy(r.Context(), ids)
}

// checkUndeploy is ML Commons' access check of undeploy: with model access
// control one model at a time, through its group.
func (a *API) checkUndeploy(r *http.Request, ids []string) error {
	if _, on := aclCaller(r.Context(), a.modelAccessControl); !on {
		return nil
	}
	if len(ids) > 1 { // admins too, as in ML Commons
		return mlerr.IllegalArgument("only support undeploy one model")
	}
	return a.checkModel(r.Context(), ids[0], mlerr.IllegalArgument("No permission to undeploy model %s", ids[0]))
}

func (a *API) undeployModels(r *http.Request) (any, error) {
	var body struct {
		ModelIDs []string `json:"model_ids"`
		NodeIDs  []string `json:"node_ids"`
	}
	if err := decodeBody(r, &body, nil); err != nil {
		return nil, err
	}
	if len(body.ModelIDs) == 0 {
		return nil, mlerr.IllegalArgument("Must set specific model ids to undeploy")
	}
	if err := a.checkUndeploy(r, body.ModelIDs); err != nil {
		return nil, err
	}
	return a.undeploy(r.Context(), body.ModelIDs)
}

// undeploy answers like ML Commons: per node, the models it undeployed.
func (a *API) undeploy(ctx context.Context, ids []string) (any, error) {
	stats := map[string]string{}
	for _, id := range ids {
		wasDeployed := false
		_, _, err := indexstore.Modify(ctx, a.store.Models(), id, indexstore.WaitForSeen, func(m *indexstore.Model) error {
			wasDeployed = indexstore.IsDeployedState(m.ModelState)
			zero := 0
			now := a.nowMillis()
			m.ModelState, m.LastUpdatedTime = indexstore.ModelUndeployed, now
			m.PlanningWorkerNodeCount, m.CurrentWorkerNodeCount, m.PlanningWorkerNodes = &zero, &zero, nil
			return nil
		})
		if err != nil {
			return nil, notFoundAs(err, errDeployNotFound)
		}
		if wasDeployed {
			stats[id] = "undeployed"
		}
	}
	if len(stats) == 0 {
		return map[string]any{}, nil
	}
	return map[string]any{a.nodeID: map[string]any{"stats": stats}}, nil
}
