package mlcommons

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/auth"
	"github.com/mlsidecar/mlsidecar/mlcommons/connector"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

type registerInput struct {
	Name          *string          `json:"name"`
	FunctionName  string           `json:"function_name"`
	ModelGroupID  string           `json:"model_group_id"`
	Description   string           `json:"description"`
	ConnectorID   string           `json:"connector_id"`
	Connector     *connector.Input `json:"connector"`
	IsEnabled     *bool            `json:"is_enabled"`
	RateLimiter   json.RawMessage  `json:"rate_limiter"`
	DeploySetting json.RawMessage  `json:"deploy_setting"`
	Interface     json.RawMessage  `json:"interface"`
	Guardrails    json.RawMessage  `json:"guardrails"`
	accessInput
}

func (a *API) registerModel(r *http.Request) (any, error) {
	deploy, err := boolParam(r, "deploy")
	if err != nil {
		return nil, err
	}
	var in registerInput
	if err := decodeBody(r, &in, errBodyRequired); err != nil {
		return nil, err
	}
	if err := a.remoteInference(); err != nil {
		return nil, err
	}
	switch {
	case in.Name == nil || *in.Name == "":
		return nil, mlerr.IllegalArgument("model name is null")
	case !strings.EqualFold(in.FunctionName, "remote"):
		return nil, mlerr.IllegalArgument("mlsidecar registers remote models only: function_name must be \"remote\"")
	}
	ctx := r.Context()
	if _, on := aclCaller(ctx, a.modelAccessControl); !on && in.given() {
		return nil, modelAccessControlRefused
	}
	m := indexstore.Model{
		Name: *in.Name, Algorithm: indexstore.AlgorithmRemote, Description: in.Description, ModelState: indexstore.ModelRegistered,
		IsEnabled: in.IsEnabled, RateLimiter: rawOrNil(in.RateLimiter), DeploySetting: rawOrNil(in.DeploySetting),
		Interface: rawOrNil(in.Interface), Guardrails: rawOrNil(in.Guardrails), Owner: ownerOf(auth.UserFrom(ctx)),
	}
	switch {
	case in.ConnectorID != "":
		denied := mlerr.IllegalArgument("You don't have permission to use the connector provided, connector id: %s", in.ConnectorID)
		// ML Commons' text at register, without a space.
		notFound := mlerr.Status(http.StatusNotFound, "Failed to find connector:%s", in.ConnectorID)
		if err := a.checkConnectorID(ctx, in.ConnectorID, denied, notFound); err != nil {
			return nil, err
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
		// An inline connector has no timestamps of its own in 2.19.
		m.Connector = &c
	default:
		return nil, mlerr.IllegalArgument("You must provide connector content when creating a remote model without connector id!")
	}

	groupID, version, err := a.nextModelVersion(ctx, in.ModelGroupID, m.Name, m.Owner, &in.accessInput)
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
	m.CreatedTime, m.LastUpdatedTime = now, now
	modelRes, err := a.store.Models().Insert(ctx, &m, indexstore.WaitForSeen)
	if err != nil {
		a.finishTask(ctx, taskRes.ID, indexstore.TaskFailed, "", err)
		return nil, err
	}
	a.finishTask(ctx, taskRes.ID, indexstore.TaskCompleted, modelRes.ID, nil)

	if deploy {
		_, err := a.deploy(ctx, modelRes.ID)
		a.mlstats.record(modelRes.ID, "deploy", err != nil) // as ML Commons counts ?deploy=true
		if err != nil {
			return nil, err
		}
	}
	// ML Commons answers CREATED although the task is complete.
	return map[string]string{"task_id": taskRes.ID, "status": indexstore.TaskCreated, "model_id": modelRes.ID}, nil
}

// nextModelVersion finds the model's group — the given one, else the group
// named like the model, else a new one with the register body's access —
// and raises its latest_version. The caller must be able to access it.
func (a *API) nextModelVersion(ctx context.Context, groupID, name string, owner *indexstore.Owner, access *accessInput) (string, int, error) {
	if groupID != "" {
		ok, err := a.groupAccessible(ctx, groupID)
		if err != nil {
			return "", 0, notFoundAs(err, modelGroupNotFound(groupID))
		}
		if !ok {
			return "", 0, mlerr.IllegalArgument("You don't have permissions to perform this operation on this model.")
		}
	} else {
		ids, err := a.store.ModelGroupsNamed(ctx, name)
		if err != nil {
			return "", 0, err
		}
		if len(ids) > 0 {
			groupID = ids[0]
			ok, err := a.groupAccessible(ctx, groupID)
			if err != nil {
				return "", 0, err
			}
			if !ok {
				return "", 0, mlerr.IllegalArgument("The name {%s} you provided is unavailable because it is used by another model group with id {%s} to which you do not have access. Please provide a different name.", name, groupID)
			}
		} else {
			mode, roles, err := a.newGroupAccess(ctx, access)
			if err != nil {
				return "", 0, err
			}
			now := a.nowMillis()
			g := indexstore.ModelGroup{Name: name, Access: mode, BackendRoles: roles, Owner: owner, CreatedTime: now, LastUpdatedTime: now}
			res, err := a.store.ModelGroups().Insert(ctx, &g, indexstore.WaitForSeen)
			if err != nil {
				return "", 0, err
			}
			groupID = res.ID
		}
	}
	var version int
	// Read by id only: no need to wait for a refresh.
	_, _, err := indexstore.Modify(ctx, a.store.ModelGroups(), groupID, indexstore.Immediate, func(g *indexstore.ModelGroup) error {
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
	if err := a.checkModel(r.Context(), id, errModelDenied); err != nil {
		return nil, err
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
	if err := decodeBody(r, &in, mlerr.Parse("Update model request has empty body")); err != nil {
		return nil, err
	}
	ctx := r.Context()
	if err := a.checkModel(ctx, id, mlerr.Status(http.StatusForbidden, "User doesn't have privilege to perform this operation on this model, model ID %s", id)); err != nil {
		return nil, err
	}
	if in.ModelGroupID != nil {
		if _, _, err := a.store.ModelGroups().Get(ctx, *in.ModelGroupID); err != nil {
			return nil, notFoundAs(err, modelGroupNotFound(*in.ModelGroupID))
		}
		if ok, err := a.groupAccessible(ctx, *in.ModelGroupID); err != nil || !ok {
			return nil, orDenied(err, mlerr.Status(http.StatusForbidden, "User Doesn't have privilege to re-link this model to the target model group due to no access to the target model group with model group ID %s", *in.ModelGroupID))
		}
	}
	if in.ConnectorID != nil {
		denied := mlerr.Status(http.StatusForbidden, "You don't have permission to update the connector, connector id: %s", *in.ConnectorID)
		if err := a.checkConnectorID(ctx, *in.ConnectorID, denied, connector.NotFound(*in.ConnectorID)); err != nil {
			return nil, err
		}
	}
	res, _, err := indexstore.Modify(ctx, a.store.Models(), id, indexstore.WaitForSeen, func(m *indexstore.Model) error {
		return a.applyModelUpdate(m, id, &in)
	})
	if err != nil {
		return nil, notFoundAs(err, mlerr.Status(http.StatusNotFound, "Failed to find model to update with the provided model id: %s", id))
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
	}
	// 2.19 writes its update input, which holds the id, into the document.
	m.ModelID, m.LastUpdatedTime = id, a.nowMillis()
	return nil
}

func (a *API) deleteModel(r *http.Request) (any, error) {
	id := pathVar(r, "id")
	m, v, err := a.store.Models().Get(r.Context(), id)
	if errors.Is(err, indexstore.ErrNotFound) {
		// What a failed delete left behind goes now, as in ML Commons.
		if err := a.deleteControllerOf(r.Context(), id, false); err != nil {
			return nil, err
		}
	}
	if err != nil {
		return nil, notFoundAs(err, mlerr.Status(http.StatusNotFound, "Failed to find model"))
	}
	if err := a.checkModel(r.Context(), id, errModelDenied); err != nil {
		return nil, err
	}
	if indexstore.IsDeployedState(m.ModelState) {
		return nil, mlerr.Status(http.StatusBadRequest, "Model cannot be deleted in deploying or deployed state. Try undeploy model first then delete")
	}
	res, err := a.store.Models().Delete(r.Context(), id, v)
	if err != nil {
		return nil, err
	}
	return res, a.deleteControllerOf(r.Context(), id, m.IsHidden)
}
