package mlcommons

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/auth"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

// Resource access control as ML Commons has it with
// model_access_control_enabled / connector_access_control_enabled: model
// groups (and the models in them) and connectors are public, private to
// their owner, or restricted to backend roles. It applies only to a named
// caller: the anonymous caller of a cluster without security is not
// checked, as in ML Commons.

// Access modes (ML Commons AccessMode).
const (
	accessPublic     = "public"
	accessPrivate    = "private"
	accessRestricted = "restricted"
)

// adminRole is the mapped security role that makes a caller an ML Commons
// admin of every resource (isAdmin); no other role does, cluster:* included.
const adminRole = "all_access"

// accessInput are the access-control fields of a register, create or
// update body.
type accessInput struct {
	AccessMode         *string  `json:"access_mode"`
	BackendRoles       []string `json:"backend_roles"`
	AddAllBackendRoles *bool    `json:"add_all_backend_roles"`
}

func (in *accessInput) given() bool {
	return in.AccessMode != nil || len(in.BackendRoles) > 0 || in.AddAllBackendRoles != nil
}

func (in *accessInput) addAll() bool { return in.AddAllBackendRoles != nil && *in.AddAllBackendRoles }

// mode parses access_mode; "" when it is absent.
func (in *accessInput) mode() (string, error) {
	if in.AccessMode == nil {
		return "", nil
	}
	switch m := strings.ToLower(*in.AccessMode); m {
	case accessPublic, accessPrivate, accessRestricted:
		return m, nil
	}
	return "", mlerr.IllegalArgument("Wrong access value: %s", *in.AccessMode)
}

// aclCaller returns the caller when access control applies to them;
// enabled reports whether access control of its kind is on now (a cluster
// setting that may change at any time).
func aclCaller(ctx context.Context, enabled func() bool) (auth.User, bool) {
	if !enabled() {
		return auth.User{}, false
	}
	u, ok := auth.UserFrom(ctx)
	if !ok || u.Name == "" {
		return auth.User{}, false
	}
	return u, true
}

// modelACL is aclCaller for model groups and models; checked is false
// when the caller passes every check (access control off, or an admin).
func (a *API) modelACL(ctx context.Context) (u auth.User, checked bool) {
	u, on := aclCaller(ctx, a.modelAccessControl)
	return u, on && !isAdmin(u)
}

// connectorACL is modelACL for connectors.
func (a *API) connectorACL(ctx context.Context) (u auth.User, checked bool) {
	u, on := aclCaller(ctx, a.connectorAccessControl)
	return u, on && !isAdmin(u)
}

func isAdmin(u auth.User) bool { return slices.Contains(u.Roles, adminRole) }

func sharesRole(a, b []string) bool {
	for _, r := range a {
		if slices.Contains(b, r) {
			return true
		}
	}
	return false
}

// permits is ML Commons' checkModelGroupPermission and connector
// hasPermission: a resource without an owner was made before security and
// is open; restricted ones need a shared backend role (their owner gets
// nothing more); private ones are their owner's.
func permits(u auth.User, owner *indexstore.Owner, access string, backendRoles []string) bool {
	switch {
	case owner == nil:
		return true
	case access == accessRestricted:
		return sharesRole(u.BackendRoles, backendRoles)
	case access == accessPrivate:
		return owner.Name == u.Name
	}
	return true
}

// groupAccessible is ML Commons' validateModelGroupAccess.
func (a *API) groupAccessible(ctx context.Context, groupID string) (bool, error) {
	u, checked := a.modelACL(ctx)
	if !checked || groupID == "" {
		return true, nil
	}
	g, _, err := a.store.ModelGroups().Get(ctx, groupID)
	if errors.Is(err, indexstore.ErrNotFound) {
		return false, mlerr.Status(http.StatusNotFound, "Fail to find model group")
	}
	if err != nil {
		return false, err
	}
	return permits(u, g.Owner, g.Access, g.BackendRoles), nil
}

// checkModel refuses a model whose group the caller cannot access with
// denied. A missing model passes: the handler gives its own not-found.
func (a *API) checkModel(ctx context.Context, id string, denied error) error {
	if _, checked := a.modelACL(ctx); !checked {
		return nil
	}
	m, _, err := a.store.Models().Get(ctx, id)
	if errors.Is(err, indexstore.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	ok, err := a.groupAccessible(ctx, m.ModelGroupID)
	if err != nil {
		return err
	}
	if !ok {
		return denied
	}
	return nil
}

// errModelDenied is ML Commons' answer on get, delete and deploy.
var errModelDenied = mlerr.Status(http.StatusForbidden, "User doesn't have privilege to perform this operation on this model")

// errPredictDenied is its answer on predict and batch_predict (capital D
// as in ML Commons).
var errPredictDenied = mlerr.Status(http.StatusForbidden, "User Doesn't have privilege to perform this operation on this model")

// newGroupAccess decides the access of a new model group (ML Commons'
// MLModelGroupManager): public and ownerless-checks as today while access
// control is off, else the caller's choice, validated.
func (a *API) newGroupAccess(ctx context.Context, in *accessInput) (access string, roles []string, err error) {
	u, on := aclCaller(ctx, a.modelAccessControl)
	if !on {
		if in.given() {
			return "", nil, modelAccessControlRefused
		}
		return accessPublic, nil, nil
	}
	mode, err := in.mode()
	if err != nil {
		return "", nil, err
	}
	if mode == "" {
		mode = accessPrivate
		if len(in.BackendRoles) > 0 || in.addAll() {
			mode = accessRestricted
		}
	}
	admin := isAdmin(u)
	switch {
	case mode != accessRestricted && (len(in.BackendRoles) > 0 || in.addAll()):
		return "", nil, mlerr.IllegalArgument("You can specify backend roles only for a model group with the restricted access mode.")
	case mode != accessRestricted:
		return mode, nil, nil
	case admin && in.addAll():
		return "", nil, mlerr.IllegalArgument("Admin users cannot add all backend roles to a model group.")
	case !admin && len(u.BackendRoles) == 0:
		return "", nil, mlerr.IllegalArgument("You must have at least one backend role to register a restricted model group.")
	case len(in.BackendRoles) == 0 && !in.addAll():
		return "", nil, mlerr.IllegalArgument("You must specify one or more backend roles or add all backend roles to register a restricted model group.")
	case len(in.BackendRoles) > 0 && in.addAll():
		return "", nil, mlerr.IllegalArgument("You cannot specify backend roles and add all backend roles at the same time.")
	case !admin && !containsAll(u.BackendRoles, in.BackendRoles):
		return "", nil, mlerr.IllegalArgument("You don't have the backend roles specified.")
	case in.addAll():
		return mode, slices.Clone(u.BackendRoles), nil
	}
	return mode, in.BackendRoles, nil
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// updateGroupAccess checks an update of group g by the caller and applies
// its access fields (ML Commons' TransportUpdateModelGroupAction).
func (a *API) updateGroupAccess(ctx context.Context, g *indexstore.ModelGroup, in *accessInput) error {
	u, on := aclCaller(ctx, a.modelAccessControl)
	if !on {
		if in.given() {
			return modelAccessControlRefused
		}
		return nil
	}
	mode, err := in.mode()
	if err != nil {
		return err
	}
	admin := isAdmin(u)
	owner := g.Owner != nil && g.Owner.Name == u.Name
	// isUserHasBackendRole: public groups are anyone's to edit.
	hasRole := g.Access == accessPublic || g.Access == "" ||
		(g.Access == accessRestricted && sharesRole(u.BackendRoles, g.BackendRoles))
	switch {
	case g.Owner == nil: // made before security: open to all
	case in.given() && !owner && !admin:
		return mlerr.IllegalArgument("Only owner or admin can update access control data.")
	case !admin && !owner && !hasRole:
		return mlerr.IllegalArgument("You don't have permission to update this model group.")
	case owner && !admin && g.Access == accessRestricted && !sharesRole(u.BackendRoles, g.BackendRoles):
		return mlerr.IllegalArgument("You don't have the specified backend role to update this model group. For more information, contact your administrator.")
	}
	if !in.given() {
		return nil
	}
	if (mode == accessPublic || mode == accessPrivate) && (len(in.BackendRoles) > 0 || in.addAll()) {
		return mlerr.IllegalArgument("You can specify backend roles only for a model group with the restricted access mode.")
	}
	if mode == "" || mode == accessRestricted {
		addAllFalse := in.AddAllBackendRoles != nil && !*in.AddAllBackendRoles
		switch {
		case admin && in.addAll():
			return mlerr.IllegalArgument("Admin users cannot add all backend roles to a model group.")
		case !admin && in.addAll() && len(u.BackendRoles) == 0:
			return mlerr.IllegalArgument("You don't have any backend roles.")
		case addAllFalse && len(in.BackendRoles) == 0:
			return mlerr.IllegalArgument("You have to specify backend roles when add all backend roles is set to false.")
		case len(in.BackendRoles) > 0 && in.addAll():
			return mlerr.IllegalArgument("You cannot specify backend roles and add all backend roles at the same time.")
		case mode == accessRestricted && len(in.BackendRoles) == 0 && !in.addAll():
			return mlerr.IllegalArgument("You must specify one or more backend roles or add all backend roles to register a restricted model group.")
		case !admin && len(in.BackendRoles) > 0 && !containsAll(u.BackendRoles, in.BackendRoles):
			return mlerr.IllegalArgument("You don't have the backend roles specified.")
		}
	}
	if mode != "" {
		g.Access = mode
	}
	switch {
	case in.addAll():
		g.BackendRoles = slices.Clone(u.BackendRoles)
	case len(in.BackendRoles) > 0:
		g.BackendRoles = in.BackendRoles
	}
	if g.Access != accessRestricted {
		g.BackendRoles = nil
	}
	return nil
}
