package mlcommons

import (
	"context"
	"slices"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

// newConnectorAccess decides the access of a new connector (ML Commons'
// TransportCreateConnectorAction). ok is false while connector access
// control does not apply: the fields are then refused as before.
func (a *API) newConnectorAccess(ctx context.Context, in *accessInput) (access string, roles []string, ok bool, err error) {
	u, on := aclCaller(ctx, a.connectorAccessControl)
	if !on {
		return "", nil, false, nil
	}
	admin := isAdmin(u)
	if admin && in.addAll() {
		return "", nil, true, mlerr.IllegalArgument("Admin can't add all backend roles")
	}
	mode, err := in.mode()
	if err != nil {
		return "", nil, true, err
	}
	if mode == "" {
		mode = accessPrivate
		if len(in.BackendRoles) > 0 || in.addAll() {
			mode = accessRestricted
		}
	}
	switch {
	case mode != accessRestricted && (len(in.BackendRoles) > 0 || in.addAll()):
		return "", nil, true, mlerr.IllegalArgument("You can specify backend roles only for a connector with the restricted access mode.")
	case mode != accessRestricted:
		return mode, nil, true, nil
	case in.addAll() && len(in.BackendRoles) > 0:
		return "", nil, true, mlerr.IllegalArgument("You can't specify backend roles and add all backend roles to true at same time.")
	case in.addAll() && len(u.BackendRoles) == 0:
		return "", nil, true, mlerr.IllegalArgument("You must have at least one backend role to create a connector.")
	case in.addAll():
		return mode, slices.Clone(u.BackendRoles), true, nil
	case len(in.BackendRoles) == 0:
		return "", nil, true, mlerr.IllegalArgument("You must specify at least one backend role or make the connector public/private for registering it.")
	case !admin && !containsAll(u.BackendRoles, in.BackendRoles):
		return "", nil, true, mlerr.IllegalArgument("You don't have the backend roles specified.")
	}
	return mode, in.BackendRoles, true, nil
}

// connectorPermitted is hasPermission for a stored connector.
func (a *API) connectorPermitted(ctx context.Context, c *indexstore.Connector) bool {
	u, checked := a.connectorACL(ctx)
	return !checked || permits(u, c.Owner, c.Access, c.BackendRoles)
}

// checkConnectorID refuses a connector id the caller may not use with
// denied; a missing one answers its not-found.
func (a *API) checkConnectorID(ctx context.Context, id string, denied, notFound error) error {
	c, _, err := a.store.Connectors().Get(ctx, id)
	if err != nil {
		return notFoundAs(err, notFound)
	}
	if !a.connectorPermitted(ctx, c) {
		return denied
	}
	return nil
}
