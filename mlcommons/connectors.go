package mlcommons

import (
	"errors"
	"net/http"
	"strings"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/auth"
	"github.com/mlsidecar/mlsidecar/mlcommons/connector"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

// parseConnectorInput decodes a connector body; an empty one answers
// empty, ML Commons' text for its route.
func parseConnectorInput(r *http.Request, empty error) (*connector.Input, error) {
	var in connector.Input
	if err := decodeBody(r, &in, empty); err != nil {
		return nil, err
	}
	return &in, nil
}

func (a *API) createConnector(r *http.Request) (any, error) {
	if err := a.remoteInference(); err != nil {
		return nil, err
	}
	// ML Commons answers 500 (an IOException); see COMPATIBILITY.md.
	in, err := parseConnectorInput(r, mlerr.Parse("Create Connector request has empty body"))
	if err != nil {
		return nil, err
	}
	var c indexstore.Connector
	access := accessInput{AccessMode: in.AccessMode, BackendRoles: in.BackendRoles, AddAllBackendRoles: in.AddAllBackendRoles}
	mode, roles, on, err := a.newConnectorAccess(r.Context(), &access)
	if err != nil {
		return nil, err
	}
	if on {
		// Taken: Validate refuses them as on a cluster without access control.
		c.Access, c.BackendRoles = mode, roles
		in.AccessMode, in.BackendRoles, in.AddAllBackendRoles = nil, nil, nil
	}
	if err := a.connectors.Apply(&c, in); err != nil {
		return nil, err
	}
	if err := a.connectors.Validate(&c, in, in.DryRun); err != nil {
		return nil, err
	}
	if in.DryRun {
		return map[string]string{"connector_id": "dryRunConnector"}, nil
	}
	now := a.nowMillis()
	c.CreatedTime, c.LastUpdatedTime = now, now
	c.Owner = ownerOf(auth.UserFrom(r.Context()))
	res, err := a.store.Connectors().Insert(r.Context(), &c, indexstore.WaitForSeen)
	if err != nil {
		return nil, err
	}
	return map[string]string{"connector_id": res.ID}, nil
}

func (a *API) getConnector(r *http.Request) (any, error) {
	id := pathVar(r, "id")
	c, _, err := a.store.Connectors().Get(r.Context(), id)
	if err != nil {
		return nil, notFoundAs(err, connector.NotFound(id))
	}
	if !a.connectorPermitted(r.Context(), c) {
		return nil, mlerr.Status(http.StatusForbidden, "You don't have permission to access this connector")
	}
	return connectorOut(c), nil
}

func (a *API) updateConnector(r *http.Request) (any, error) {
	if err := a.remoteInference(); err != nil {
		return nil, err
	}
	id := pathVar(r, "id")
	in, err := parseConnectorInput(r, mlerr.Parse("Failed to update connector: Request body is empty"))
	if err != nil {
		return nil, err
	}
	if _, checked := a.connectorACL(r.Context()); checked {
		err := a.checkConnectorID(r.Context(), id, mlerr.IllegalArgument("You don't have permission to update the connector, connector id: %s", id), connector.NotFound(id))
		if err != nil {
			return nil, err
		}
	}
	deployed, err := a.store.ModelsUsingConnector(r.Context(), id, true)
	if err != nil {
		return nil, err
	}
	if len(deployed) > 0 {
		return nil, mlerr.Status(http.StatusBadRequest, "%d models are still using this connector, please undeploy the models first: [%s]",
			len(deployed), strings.Join(deployed, ", "))
	}
	res, _, err := indexstore.Modify(r.Context(), a.store.Connectors(), id, indexstore.WaitForSeen, func(c *indexstore.Connector) error {
		if err := a.connectors.Apply(c, in); err != nil {
			return err
		}
		c.LastUpdatedTime = a.nowMillis()
		return a.connectors.Validate(c, in, false)
	})
	if err != nil {
		return nil, notFoundAs(err, connector.NotFound(id))
	}
	return res, nil
}

func (a *API) deleteConnector(r *http.Request) (any, error) {
	id := pathVar(r, "id")
	c, v, err := a.store.Connectors().Get(r.Context(), id)
	if errors.Is(err, indexstore.ErrNotFound) {
		// ML Commons 2.19 deletes anyway and hands on the DeleteResponse:
		// 200 with "result":"not_found".
		// An id no document can have still gets the 404.
		res, err := a.store.Connectors().Delete(r.Context(), id, indexstore.Missing)
		return res, notFoundAs(err, connector.NotFound(id))
	}
	if err != nil {
		return nil, err
	}
	if !a.connectorPermitted(r.Context(), c) {
		// ML Commons answers 500 for this refusal; see COMPATIBILITY.md.
		return nil, mlerr.Status(http.StatusForbidden, "You are not allowed to delete this connector")
	}
	users, err := a.store.ModelsUsingConnector(r.Context(), id, false)
	if err != nil {
		return nil, err
	}
	if len(users) > 0 {
		return nil, mlerr.Status(http.StatusConflict, "%d models are still using this connector, please delete or update the models first: [%s]",
			len(users), strings.Join(users, ", "))
	}
	return a.store.Connectors().Delete(r.Context(), id, v)
}
