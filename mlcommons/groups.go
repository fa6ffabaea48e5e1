package mlcommons

import (
	"net/http"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/auth"
)

type modelGroupInput struct {
	Name               *string  `json:"name"`
	Description        *string  `json:"description"`
	AccessMode         *string  `json:"access_mode"`
	BackendRoles       []string `json:"backend_roles"`
	AddAllBackendRoles *bool    `json:"add_all_backend_roles"`
}

func (in *modelGroupInput) accessControl() error {
	if in.AccessMode != nil || len(in.BackendRoles) > 0 || in.AddAllBackendRoles != nil {
		return illegalArg("You cannot specify model access control parameters because the Security plugin or model access control is disabled on your cluster.")
	}
	return nil
}

// nameTaken refuses a group name another group (not self) already has.
func (a *API) nameTaken(r *http.Request, name, self string) error {
	ids, err := a.groupIDsNamed(r, name)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if id != self {
			return illegalArg("The name you provided is already being used by a model group with ID: %s.", id)
		}
	}
	return nil
}

func (a *API) registerModelGroup(r *http.Request) (any, error) {
	var in modelGroupInput
	if err := decodeBody(r, &in, true); err != nil {
		return nil, err
	}
	if in.Name == nil || *in.Name == "" {
		return nil, illegalArg("model group name is null")
	}
	if err := in.accessControl(); err != nil {
		return nil, err
	}
	if err := a.nameTaken(r, *in.Name, ""); err != nil {
		return nil, err
	}
	now := a.now().UnixMilli()
	g := ModelGroup{Name: *in.Name, Access: "public", Owner: ownerOf(auth.UserFrom(r.Context())), CreatedTime: now, LastUpdatedTime: now}
	if in.Description != nil {
		g.Description = *in.Description
	}
	res, err := a.store.Create(r.Context(), indexstore.ModelGroups, "", g, true)
	if err != nil {
		return nil, err
	}
	return map[string]string{"model_group_id": res.ID, "status": "CREATED"}, nil
}

func (a *API) getModelGroup(r *http.Request) (any, error) {
	id := pathVar(r, "id")
	g, _, err := load[ModelGroup](r.Context(), a.store, indexstore.ModelGroups, id, modelGroupNotFound(id))
	return g, err
}

func (a *API) updateModelGroup(r *http.Request) (any, error) {
	id := pathVar(r, "id")
	var in modelGroupInput
	if err := decodeBody(r, &in, true); err != nil {
		return nil, err
	}
	if err := in.accessControl(); err != nil {
		return nil, err
	}
	if in.Name != nil {
		if *in.Name == "" {
			return nil, illegalArg("model group name is null")
		}
		if err := a.nameTaken(r, *in.Name, id); err != nil {
			return nil, err
		}
	}
	_, _, err := modify(r.Context(), a.store, indexstore.ModelGroups, id, modelGroupNotFound(id), func(g *ModelGroup) error {
		if in.Name != nil {
			g.Name = *in.Name
		}
		if in.Description != nil {
			g.Description = *in.Description
		}
		g.LastUpdatedTime = a.now().UnixMilli()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return map[string]string{"status": "Updated"}, nil
}

func (a *API) deleteModelGroup(r *http.Request) (any, error) {
	id := pathVar(r, "id")
	_, doc, err := load[ModelGroup](r.Context(), a.store, indexstore.ModelGroups, id, modelGroupNotFound(id))
	if err != nil {
		return nil, err
	}
	models, err := a.ids(r, indexstore.Models, map[string]any{"term": map[string]any{"model_group_id": id}})
	if err != nil {
		return nil, err
	}
	if len(models) > 0 {
		return nil, statusErr(http.StatusConflict, "Cannot delete the model group when it has associated model versions")
	}
	return a.store.Delete(r.Context(), indexstore.ModelGroups, doc)
}
