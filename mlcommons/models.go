package mlcommons

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/auth"
)

type registerInput struct {
	Name               *string         `json:"name"`
	FunctionName       string          `json:"function_name"`
	ModelGroupID       string          `json:"model_group_id"`
	Description        string          `json:"description"`
	ConnectorID        string          `json:"connector_id"`
	Connector          *connectorInput `json:"connector"`
	IsEnabled          *bool           `json:"is_enabled"`
	RateLimiter        json.RawMessage `json:"rate_limiter"`
	DeploySetting      json.RawMessage `json:"deploy_setting"`
	Interface          json.RawMessage `json:"interface"`
	Guardrails         json.RawMessage `json:"guardrails"`
	AccessMode         *string         `json:"access_mode"`
	BackendRoles       []string        `json:"backend_roles"`
	AddAllBackendRoles *bool           `json:"add_all_backend_roles"`
}

func modelNotFound(id string) error {
	return statusErr(http.StatusNotFound, "Failed to find model with the provided model id: %s", id)
}

func modelGroupNotFound(id string) error {
	return statusErr(http.StatusNotFound, "Failed to find model group with the provided model group id: %s", id)
}

// rawOrNil drops an explicit JSON null so it is not stored.
func rawOrNil(b json.RawMessage) json.RawMessage {
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	return b
}

func (a *API) registerModel(r *http.Request) (any, error) {
	deploy, err := boolParam(r, "deploy")
	if err != nil {
		return nil, err
	}
	var in registerInput
	if err := decodeBody(r, &in, true); err != nil {
		return nil, err
	}
	switch {
	case in.Name == nil || *in.Name == "":
		return nil, illegalArg("model name is null")
	case !strings.EqualFold(in.FunctionName, functionNameRemoteLow):
		return nil, illegalArg("mlsidecar registers remote models only: function_name must be \"remote\"")
	case in.AccessMode != nil || len(in.BackendRoles) > 0 || in.AddAllBackendRoles != nil:
		return nil, illegalArg("You cannot specify model access control parameters because the Security plugin or model access control is disabled on your cluster.")
	}
	ctx := r.Context()
	m := Model{
		Name: *in.Name, Algorithm: algorithmRemote, Description: in.Description, ModelState: stateRegistered,
		IsEnabled: in.IsEnabled, RateLimiter: rawOrNil(in.RateLimiter), DeploySetting: rawOrNil(in.DeploySetting),
		Interface: rawOrNil(in.Interface), Guardrails: rawOrNil(in.Guardrails), Owner: ownerOf(auth.UserFrom(ctx)),
	}
	switch {
	case in.ConnectorID != "":
		if _, _, err := load[Connector](ctx, a.store, indexstore.Connectors, in.ConnectorID, connectorNotFound(in.ConnectorID)); err != nil {
			return nil, err
		}
		m.ConnectorID = in.ConnectorID
	case in.Connector != nil:
		var c Connector
		if err := a.apply(&c, in.Connector); err != nil {
			return nil, err
		}
		if !hasAction(&c, actionPredict) {
			return nil, illegalArg("Connector endpoint is required when creating a remote model without connector id!")
		}
		if err := a.validateConnector(&c, in.Connector, false); err != nil {
			return nil, err
		}
		now := a.now().UnixMilli()
		c.CreatedTime, c.LastUpdatedTime = now, now
		m.Connector = &c
	default:
		return nil, illegalArg("You must provide connector content when creating a remote model without connector id!")
	}

	groupID, version, err := a.nextModelVersion(r, in.ModelGroupID, m.Name, m.Owner)
	if err != nil {
		return nil, err
	}
	m.ModelGroupID, m.ModelVersion = groupID, strconv.Itoa(version)

	now := a.now().UnixMilli()
	task := Task{TaskType: taskRegisterModel, FunctionName: algorithmRemote, State: taskCreated,
		WorkerNode: []string{a.nodeID}, CreateTime: now, LastUpdateTime: now, Owner: m.Owner}
	taskRes, err := a.store.Create(ctx, indexstore.Tasks, "", task, false)
	if err != nil {
		return nil, err
	}
	m.CreatedTime, m.LastUpdatedTime, m.LastRegisteredTime = now, now, now
	modelRes, err := a.store.Create(ctx, indexstore.Models, "", m, true)
	if err != nil {
		a.finishTask(r, taskRes.ID, taskFailed, "", err)
		return nil, err
	}
	a.finishTask(r, taskRes.ID, taskCompleted, modelRes.ID, nil)

	if deploy {
		if _, err := a.deploy(r, modelRes.ID); err != nil {
			return nil, err
		}
	}
	// ML Commons answers CREATED although the task is complete.
	return map[string]string{"task_id": taskRes.ID, "status": taskCreated, "model_id": modelRes.ID}, nil
}

func hasAction(c *Connector, actionType string) bool {
	for _, act := range c.Actions {
		if act.ActionType == actionType {
			return true
		}
	}
	return false
}

// nextModelVersion finds the model's group — the given one, else the group
// named like the model, else a new one — and raises its latest_version.
func (a *API) nextModelVersion(r *http.Request, groupID, name string, owner *Owner) (string, int, error) {
	ctx := r.Context()
	if groupID == "" {
		ids, err := a.groupIDsNamed(r, name)
		if err != nil {
			return "", 0, err
		}
		if len(ids) > 0 {
			groupID = ids[0]
		} else {
			now := a.now().UnixMilli()
			res, err := a.store.Create(ctx, indexstore.ModelGroups, "", ModelGroup{
				Name: name, Access: "public", Owner: owner, CreatedTime: now, LastUpdatedTime: now}, true)
			if err != nil {
				return "", 0, err
			}
			groupID = res.ID
		}
	}
	var version int
	// Read by id only: no need to wait for a refresh.
	_, _, err := modifyDoc(ctx, a.store, indexstore.ModelGroups, groupID, modelGroupNotFound(groupID), false, func(g *ModelGroup) error {
		g.LatestVersion++
		g.LastUpdatedTime = a.now().UnixMilli()
		version = g.LatestVersion
		return nil
	})
	return groupID, version, err
}

func (a *API) groupIDsNamed(r *http.Request, name string) ([]string, error) {
	return a.ids(r, indexstore.ModelGroups, map[string]any{"term": map[string]any{"name.keyword": name}})
}

// finishTask records how a synchronous task ended. The caller's answer does
// not depend on it, so a failure is logged, not returned.
func (a *API) finishTask(r *http.Request, taskID, state, modelID string, cause error) {
	_, _, err := modifyDoc(r.Context(), a.store, indexstore.Tasks, taskID, indexstore.ErrNotFound, false, func(t *Task) error {
		t.State, t.LastUpdateTime = state, a.now().UnixMilli()
		if modelID != "" {
			t.ModelID = modelID
		}
		if cause != nil {
			t.Error = cause.Error()
		}
		return nil
	})
	if err != nil {
		a.log.WarnContext(r.Context(), "cannot record task state", "task_id", taskID, "state", state, "err", err)
	}
}

func (a *API) deployModel(r *http.Request) (any, error) {
	var body struct {
		NodeIDs []string `json:"node_ids"`
	}
	if err := decodeBody(r, &body, false); err != nil {
		return nil, err
	}
	if len(body.NodeIDs) > 0 {
		return nil, illegalArg("Don't allow custom deployment plan")
	}
	taskID, err := a.deploy(r, pathVar(r, "id"))
	if err != nil {
		return nil, err
	}
	return map[string]string{"task_id": taskID, "task_type": taskDeployModel, "status": taskCompleted}, nil
}

// deploy makes a remote model DEPLOYED. Nothing is loaded: every replica
// builds its connector client on first use, so deploying means checking the
// connector can be used and recording the state.
func (a *API) deploy(r *http.Request, id string) (string, error) {
	ctx := r.Context()
	m, _, err := load[Model](ctx, a.store, indexstore.Models, id, modelNotFound(id))
	if err != nil {
		return "", err
	}
	now := a.now().UnixMilli()
	taskRes, err := a.store.Create(ctx, indexstore.Tasks, "", Task{
		ModelID: id, TaskType: taskDeployModel, FunctionName: algorithmRemote, State: taskCreated, IsAsync: true,
		WorkerNode: []string{a.nodeID}, CreateTime: now, LastUpdateTime: now, Owner: m.Owner,
	}, false)
	if err != nil {
		return "", err
	}
	cause := a.checkModelConnector(r, m)
	_, _, err = modify(ctx, a.store, indexstore.Models, id, modelNotFound(id), func(m *Model) error {
		now := a.now().UnixMilli()
		m.LastUpdatedTime = now
		if cause != nil {
			m.ModelState = stateDeployFailed
			return nil
		}
		one, all := 1, true
		m.ModelState, m.LastDeployedTime = stateDeployed, now
		m.PlanningWorkerNodeCount, m.CurrentWorkerNodeCount = &one, &one
		m.PlanningWorkerNodes, m.DeployToAllNodes = []string{a.nodeID}, &all
		return nil
	})
	if err != nil {
		return "", err
	}
	if cause != nil {
		a.finishTask(r, taskRes.ID, taskFailed, id, cause)
		return "", cause
	}
	a.finishTask(r, taskRes.ID, taskCompleted, id, nil)
	return taskRes.ID, nil
}

// checkModelConnector makes sure the model's connector exists and its
// credential can be decrypted.
func (a *API) checkModelConnector(r *http.Request, m *Model) error {
	c := m.Connector
	if m.ConnectorID != "" {
		var err error
		if c, _, err = load[Connector](r.Context(), a.store, indexstore.Connectors, m.ConnectorID, connectorNotFound(m.ConnectorID)); err != nil {
			return err
		}
	}
	if c == nil {
		return illegalArg("model has no connector")
	}
	if _, err := a.keyring().DecryptMap(c.Credential); err != nil {
		return statusErr(http.StatusInternalServerError, "cannot decrypt the connector's credential: %v", err)
	}
	return nil
}

func (a *API) undeployModel(r *http.Request) (any, error) {
	return a.undeploy(r, []string{pathVar(r, "id")})
}

func (a *API) undeployModels(r *http.Request) (any, error) {
	var body struct {
		ModelIDs []string `json:"model_ids"`
		NodeIDs  []string `json:"node_ids"`
	}
	if err := decodeBody(r, &body, false); err != nil {
		return nil, err
	}
	if len(body.ModelIDs) == 0 {
		return nil, illegalArg("Must set specific model ids to undeploy")
	}
	return a.undeploy(r, body.ModelIDs)
}

// undeploy answers like ML Commons: per node, the models it undeployed.
func (a *API) undeploy(r *http.Request, ids []string) (any, error) {
	stats := map[string]string{}
	for _, id := range ids {
		wasDeployed := false
		_, _, err := modify(r.Context(), a.store, indexstore.Models, id, modelNotFound(id), func(m *Model) error {
			wasDeployed = isDeployedState(m.ModelState)
			zero := 0
			now := a.now().UnixMilli()
			m.ModelState, m.LastUndeployedTime, m.LastUpdatedTime = stateUndeployed, now, now
			m.PlanningWorkerNodeCount, m.CurrentWorkerNodeCount, m.PlanningWorkerNodes = &zero, &zero, nil
			return nil
		})
		if err != nil {
			return nil, err
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

func (a *API) getModel(r *http.Request) (any, error) {
	id := pathVar(r, "id")
	m, _, err := load[Model](r.Context(), a.store, indexstore.Models, id, modelNotFound(id))
	if err != nil {
		return nil, err
	}
	if m.Connector != nil {
		c := m.Connector.withoutCredential()
		m.Connector = &c
	}
	return m, nil
}

type updateModelInput struct {
	Name          *string         `json:"name"`
	Description   *string         `json:"description"`
	ModelGroupID  *string         `json:"model_group_id"`
	IsEnabled     *bool           `json:"is_enabled"`
	RateLimiter   json.RawMessage `json:"rate_limiter"`
	DeploySetting json.RawMessage `json:"deploy_setting"`
	Interface     json.RawMessage `json:"interface"`
	Guardrails    json.RawMessage `json:"guardrails"`
	ConnectorID   *string         `json:"connector_id"`
	Connector     *connectorInput `json:"connector"`
}

func (a *API) updateModel(r *http.Request) (any, error) {
	id := pathVar(r, "id")
	var in updateModelInput
	if err := decodeBody(r, &in, true); err != nil {
		return nil, err
	}
	ctx := r.Context()
	if in.ModelGroupID != nil {
		if _, _, err := load[ModelGroup](ctx, a.store, indexstore.ModelGroups, *in.ModelGroupID, modelGroupNotFound(*in.ModelGroupID)); err != nil {
			return nil, err
		}
	}
	if in.ConnectorID != nil {
		if _, _, err := load[Connector](ctx, a.store, indexstore.Connectors, *in.ConnectorID, connectorNotFound(*in.ConnectorID)); err != nil {
			return nil, err
		}
	}
	res, _, err := modify(ctx, a.store, indexstore.Models, id, modelNotFound(id), func(m *Model) error {
		if m.ModelState == stateDeploying {
			return illegalArg("Model is deploying. Please wait for the model to complete deployment. model ID %s", id)
		}
		if in.Name != nil {
			m.Name = *in.Name
		}
		if in.Description != nil {
			m.Description = *in.Description
		}
		if in.ModelGroupID != nil {
			m.ModelGroupID = *in.ModelGroupID
		}
		if in.IsEnabled != nil {
			m.IsEnabled = in.IsEnabled
		}
		for _, f := range []struct {
			dst *json.RawMessage
			src json.RawMessage
		}{
			{&m.RateLimiter, in.RateLimiter}, {&m.DeploySetting, in.DeploySetting},
			{&m.Interface, in.Interface}, {&m.Guardrails, in.Guardrails},
		} {
			if v := rawOrNil(f.src); v != nil {
				*f.dst = v
			}
		}
		if in.ConnectorID != nil {
			m.ConnectorID, m.Connector = *in.ConnectorID, nil
		}
		if in.Connector != nil {
			if m.Connector == nil {
				return illegalArg("Cannot update connector settings for this model. The model was created with a connector_id and does not have an inline connector.")
			}
			if err := a.apply(m.Connector, in.Connector); err != nil {
				return err
			}
			if err := a.validateConnector(m.Connector, in.Connector, false); err != nil {
				return err
			}
			m.Connector.LastUpdatedTime = a.now().UnixMilli()
		}
		m.LastUpdatedTime = a.now().UnixMilli()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

func (a *API) deleteModel(r *http.Request) (any, error) {
	id := pathVar(r, "id")
	m, doc, err := load[Model](r.Context(), a.store, indexstore.Models, id, statusErr(http.StatusNotFound, "Failed to find model"))
	if err != nil {
		return nil, err
	}
	if isDeployedState(m.ModelState) {
		return nil, statusErr(http.StatusBadRequest, "Model cannot be deleted in deploying or deployed state. Try undeploy model first then delete")
	}
	return a.store.Delete(r.Context(), indexstore.Models, doc)
}

// ids returns the ids of the documents matching query (at most 1,000).
func (a *API) ids(r *http.Request, c indexstore.Collection, query any) ([]string, error) {
	body, _ := json.Marshal(map[string]any{"query": query, "_source": false, "size": 1000})
	raw, err := a.store.Search(r.Context(), c, body, nil)
	if err != nil {
		return nil, err
	}
	var res struct {
		Hits struct {
			Hits []struct {
				ID string `json:"_id"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, fmt.Errorf("search answer: %w", err)
	}
	out := make([]string, 0, len(res.Hits.Hits))
	for _, h := range res.Hits.Hits {
		out = append(out, h.ID)
	}
	return out, nil
}

// boolParam reads a boolean query parameter as OpenSearch does: absent or
// "false" is false, "" or "true" is true, anything else a 400.
func boolParam(r *http.Request, name string) (bool, error) {
	q := r.URL.Query()
	if !q.Has(name) {
		return false, nil
	}
	switch v := q.Get(name); v {
	case "", "true":
		return true, nil
	case "false":
		return false, nil
	default:
		return false, illegalArg("Failed to parse value [%s] as only [true] or [false] are allowed.", v)
	}
}
