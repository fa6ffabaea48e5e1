package mlcommons

import (
	"context"
	"errors"
	"net/http"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/auth"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

type modelGroupInput struct {
	Name        *string `json:"name"`
	Description *string `json:"description"`
	accessInput
}

// modelAccessControlRefused is what ML Commons says to access-control
// fields on a cluster without model access control.
var modelAccessControlRefused = mlerr.IllegalArgument("You cannot specify model access control parameters because the Security plugin or model access control is disabled on your cluster.")

// nameTaken refuses a group name another group (not self) already has.
func (a *API) nameTaken(ctx context.Context, name, self string) error {
	ids, err := a.store.ModelGroupsNamed(ctx, name)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if id != self {
			return mlerr.IllegalArgument("The name you provided is already being used by a model group with ID: %s.", id)
		}
	}
	return nil
}

func (a *API) registerModelGroup(r *http.Request) (any, error) {
	var in modelGroupInput
	if err := decodeBody(r, &in, mlerr.Parse("Model group request has empty body")); err != nil {
		return nil, err
	}
	if in.Name == nil || *in.Name == "" {
		return nil, mlerr.IllegalArgument("model group name is null")
	}
	ctx := r.Context()
	access, roles, err := a.newGroupAccess(ctx, &in.accessInput)
	if err != nil {
		return nil, err
	}
	if err := a.nameTaken(ctx, *in.Name, ""); err != nil {
		return nil, err
	}
	now := a.nowMillis()
	g := indexstore.ModelGroup{Name: *in.Name, Access: access, BackendRoles: roles, Owner: ownerOf(auth.UserFrom(ctx)), CreatedTime: now, LastUpdatedTime: now}
	if in.Description != nil {
		g.Description = *in.Description
	}
	res, err := a.store.ModelGroups().Insert(ctx, &g, indexstore.WaitForSeen)
	if err != nil {
		return nil, err
	}
	return map[string]string{"model_group_id": res.ID, "status": "CREATED"}, nil
}

func (a *API) getModelGroup(r *http.Request) (any, error) {
	id := pathVar(r, "id")
	g, _, err := a.store.ModelGroups().Get(r.Context(), id)
	if err != nil {
		return nil, notFoundAs(err, modelGroupNotFound(id))
	}
	if u, checked := a.modelACL(r.Context()); checked && !permits(u, g.Owner, g.Access, g.BackendRoles) {
		return nil, mlerr.Status(http.StatusForbidden, "User doesn't have privilege to perform this operation on this model group")
	}
	return modelGroupOut(g), nil
}

func (a *API) updateModelGroup(r *http.Request) (any, error) {
	id := pathVar(r, "id")
	var in modelGroupInput
	// ML Commons answers 500 (an IOException); see COMPATIBILITY.md.
	if err := decodeBody(r, &in, mlerr.Parse("Model group request has empty body")); err != nil {
		return nil, err
	}
	ctx := r.Context()
	if _, on := aclCaller(ctx, a.modelAccessControl); !on && in.given() {
		return nil, modelAccessControlRefused
	}
	if in.Name != nil {
		if *in.Name == "" {
			return nil, mlerr.IllegalArgument("model group name is null")
		}
		if err := a.nameTaken(ctx, *in.Name, id); err != nil {
			return nil, err
		}
	}
	_, _, err := indexstore.Modify(ctx, a.store.ModelGroups(), id, indexstore.WaitForSeen, func(g *indexstore.ModelGroup) error {
		if err := a.updateGroupAccess(ctx, g, &in.accessInput); err != nil {
			return err
		}
		if in.Name != nil {
			g.Name = *in.Name
		}
		if in.Description != nil {
			g.Description = *in.Description
		}
		g.LastUpdatedTime = a.nowMillis()
		return nil
	})
	if err != nil {
		return nil, notFoundAs(err, modelGroupNotFound(id))
	}
	return map[string]string{"status": "Updated"}, nil
}

func (a *API) deleteModelGroup(r *http.Request) (any, error) {
	id := pathVar(r, "id")
	g, v, err := a.store.ModelGroups().Get(r.Context(), id)
	if errors.Is(err, indexstore.ErrNotFound) {
		// As for connectors: 200 with "result":"not_found".
		res, err := a.store.ModelGroups().Delete(r.Context(), id, indexstore.Missing)
		return res, notFoundAs(err, modelGroupNotFound(id))
	}
	if err != nil {
		return nil, err
	}
	if u, checked := a.modelACL(r.Context()); checked && !permits(u, g.Owner, g.Access, g.BackendRoles) {
		// ML Commons answers 500 for this client mistake; see COMPATIBILITY.md.
		return nil, mlerr.Status(http.StatusForbidden, "User doesn't have privilege to delete this model group")
	}
	models, err := a.store.ModelsInGroup(r.Context(), id)
	if err != nil {
		return nil, err
	}
	if len(models) > 0 {
		return nil, mlerr.Status(http.StatusConflict, "Cannot delete the model group when it has associated model versions")
	}
	return a.store.ModelGroups().Delete(r.Context(), id, v)
}
