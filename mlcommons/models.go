package mlcommons

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/auth"
	"github.com/mlsidecar/mlsidecar/mlcommons/connector"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

type registerInput struct {
	Name               *string          `json:"name"`
	FunctionName       string           `json:"function_name"`
	ModelGroupID       string           `json:"model_group_id"`
	Description        string           `json:"description"`
	ConnectorID        string           `json:"connector_id"`
	Connector          *connector.Input `json:"connector"`
	IsEnabled          *bool            `json:"is_enabled"`
	RateLimiter        json.RawMessage  `json:"rate_limiter"`
	DeploySetting      json.RawMessage  `json:"deploy_setting"`
	Interface          json.RawMessage  `json:"interface"`
	Guardrails         json.RawMessage  `json:"guardrails"`
	AccessMode         *string          `json:"access_mode"`
	BackendRoles       []string         `json:"backend_roles"`
	AddAllBackendRoles *bool            `json:"add_all_backend_roles"`
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
		return nil, mlerr.IllegalArgument("model name is null")
	case !strings.EqualFold(in.FunctionName, "remote"):
		return nil, mlerr.IllegalArgument("mlsidecar registers remote models only: function_name must be \"remote\"")
	case in.AccessMode != nil || len(in.BackendRoles) > 0 || in.AddAllBackendRoles != nil:
		return nil, modelAccessControlRefused
	}
	ctx := r.Context()
	m := indexstore.Model{
		Name: *in.Name, Algorithm: indexstore.AlgorithmRemote, Description: in.Description, ModelState: indexstore.ModelRegistered,
		IsEnabled: in.IsEnabled, RateLimiter: rawOrNil(in.RateLimiter), DeploySetting: rawOrNil(in.DeploySetting),
		Interface: rawOrNil(in.Interface), Guardrails: rawOrNil(in.Guardrails), Owner: ownerOf(auth.UserFrom(ctx)),
	}
	switch {
	case in.ConnectorID != "":
		if _, _, err := a.store.Connectors().Get(ctx, in.ConnectorID); err != nil {
			return nil, notFoundAs(err, connector.NotFound(in.ConnectorID))
		}
		m.ConnectorID = in.ConnectorID
	case in.Connector != nil:
		var c indexstore.Connector
		if err := a.connectors.Apply(&c, in.Connector); err != nil {
			return nil, err
		}
		if c.Action(indexstore.ActionPredict) == nil {
			return nil, mlerr.IllegalArgument("Connector endpoint is required when creating a remote model without connector id!")
		}
		if err := a.connectors.Validate(&c, in.Connector, false); err != nil {
			return nil, err
		}
		now := a.nowMillis()
		c.CreatedTime, c.LastUpdatedTime = now, now
		m.Connector = &c
	default:
		return nil, mlerr.IllegalArgument("You must provide connector content when creating a remote model without connector id!")
	}

	groupID, version, err := a.nextModelVersion(ctx, in.ModelGroupID, m.Name, m.Owner)
	if err != nil {
		return nil, err
	}
	m.ModelGroupID, m.ModelVersion = groupID, strconv.Itoa(version)

	now := a.nowMillis()
	task := indexstore.Task{TaskType: indexstore.TaskRegisterModel, FunctionName: indexstore.AlgorithmRemote, State: indexstore.TaskCreated,
		WorkerNode: []string{a.nodeID}, CreateTime: now, LastUpdateTime: now, Owner: m.Owner}
	taskRes, err := a.store.Tasks().Insert(ctx, &task, indexstore.NoWait)
	if err != nil {
		return nil, err
	}
	m.CreatedTime, m.LastUpdatedTime, m.LastRegisteredTime = now, now, now
	modelRes, err := a.store.Models().Insert(ctx, &m, indexstore.WaitForSeen)
	if err != nil {
		a.finishTask(ctx, taskRes.ID, indexstore.TaskFailed, "", err)
		return nil, err
	}
	a.finishTask(ctx, taskRes.ID, indexstore.TaskCompleted, modelRes.ID, nil)

	if deploy {
		if _, err := a.deploy(ctx, modelRes.ID); err != nil {
			return nil, err
		}
	}
	// ML Commons answers CREATED although the task is complete.
	return map[string]string{"task_id": taskRes.ID, "status": indexstore.TaskCreated, "model_id": modelRes.ID}, nil
}

// nextModelVersion finds the model's group — the given one, else the group
// named like the model, else a new one — and raises its latest_version.
func (a *API) nextModelVersion(ctx context.Context, groupID, name string, owner *indexstore.Owner) (string, int, error) {
	if groupID == "" {
		ids, err := a.store.ModelGroupsNamed(ctx, name)
		if err != nil {
			return "", 0, err
		}
		if len(ids) > 0 {
			groupID = ids[0]
		} else {
			now := a.nowMillis()
			g := indexstore.ModelGroup{Name: name, Access: "public", Owner: owner, CreatedTime: now, LastUpdatedTime: now}
			res, err := a.store.ModelGroups().Insert(ctx, &g, indexstore.WaitForSeen)
			if err != nil {
				return "", 0, err
			}
			groupID = res.ID
		}
	}
	var version int
	// Read by id only: no need to wait for a refresh.
	_, _, err := indexstore.Modify(ctx, a.store.ModelGroups(), groupID, indexstore.NoWait, func(g *indexstore.ModelGroup) error {
		g.LatestVersion++
		g.LastUpdatedTime = a.nowMillis()
		version = g.LatestVersion
		return nil
	})
	return groupID, version, notFoundAs(err, modelGroupNotFound(groupID))
}

func (a *API) getModel(r *http.Request) (any, error) {
	id := pathVar(r, "id")
	m, _, err := a.store.Models().Get(r.Context(), id)
	if err != nil {
		return nil, notFoundAs(err, modelNotFound(id))
	}
	return modelOut(m), nil
}

type updateModelInput struct {
	Name          *string          `json:"name"`
	Description   *string          `json:"description"`
	ModelGroupID  *string          `json:"model_group_id"`
	IsEnabled     *bool            `json:"is_enabled"`
	RateLimiter   json.RawMessage  `json:"rate_limiter"`
	DeploySetting json.RawMessage  `json:"deploy_setting"`
	Interface     json.RawMessage  `json:"interface"`
	Guardrails    json.RawMessage  `json:"guardrails"`
	ConnectorID   *string          `json:"connector_id"`
	Connector     *connector.Input `json:"connector"`
}

func (a *API) updateModel(r *http.Request) (any, error) {
	id := pathVar(r, "id")
	var in updateModelInput
	if err := decodeBody(r, &in, true); err != nil {
		return nil, err
	}
	ctx := r.Context()
	if in.ModelGroupID != nil {
		if _, _, err := a.store.ModelGroups().Get(ctx, *in.ModelGroupID); err != nil {
			return nil, notFoundAs(err, modelGroupNotFound(*in.ModelGroupID))
		}
	}
	if in.ConnectorID != nil {
		if _, _, err := a.store.Connectors().Get(ctx, *in.ConnectorID); err != nil {
			return nil, notFoundAs(err, connector.NotFound(*in.ConnectorID))
		}
	}
	res, _, err := indexstore.Modify(ctx, a.store.Models(), id, indexstore.WaitForSeen, func(m *indexstore.Model) error {
		return a.applyModelUpdate(m, id, &in)
	})
	if err != nil {
		return nil, notFoundAs(err, modelNotFound(id))
	}
	return res, nil
}

func (a *API) applyModelUpdate(m *indexstore.Model, id string, in *updateModelInput) error {
	if m.ModelState == indexstore.ModelDeploying {
		return mlerr.IllegalArgument("Model is deploying. Please wait for the model to complete deployment. model ID %s", id)
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
			return mlerr.IllegalArgument("Cannot update connector settings for this model. The model was created with a connector_id and does not have an inline connector.")
		}
		if err := a.connectors.Apply(m.Connector, in.Connector); err != nil {
			return err
		}
		if err := a.connectors.Validate(m.Connector, in.Connector, false); err != nil {
			return err
		}
		m.Connector.LastUpdatedTime = a.nowMillis()
	}
	m.LastUpdatedTime = a.nowMillis()
	return nil
}

func (a *API) deleteModel(r *http.Request) (any, error) {
	id := pathVar(r, "id")
	m, v, err := a.store.Models().Get(r.Context(), id)
	if err != nil {
		return nil, notFoundAs(err, mlerr.Status(http.StatusNotFound, "Failed to find model"))
	}
	if indexstore.IsDeployedState(m.ModelState) {
		return nil, mlerr.Status(http.StatusBadRequest, "Model cannot be deleted in deploying or deployed state. Try undeploy model first then delete")
	}
	return a.store.Models().Delete(r.Context(), id, v)
}
