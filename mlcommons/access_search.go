package mlcommons

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/auth"
)

// aclFilter is ML Commons' addUserBackendRolesFilter: public, a shared
// backend role, or private to the caller.
func aclFilter(u auth.User) map[string]any {
	roles := make([]any, 0, len(u.BackendRoles))
	for _, r := range u.BackendRoles {
		roles = append(roles, r)
	}
	return map[string]any{"bool": map[string]any{"minimum_should_match": 1, "should": []any{
		map[string]any{"term": map[string]any{"access": accessPublic}},
		map[string]any{"terms": map[string]any{"backend_roles.keyword": roles}},
		map[string]any{"bool": map[string]any{"must": []any{
			map[string]any{"term": map[string]any{"owner.name.keyword": u.Name}},
			map[string]any{"term": map[string]any{"access": accessPrivate}},
		}}},
	}}}
}

// maxAccessibleGroups is how many accessible groups a model search
// considers, as ML Commons' MLSearchHandler (size 10000).
const maxAccessibleGroups = 10000

// accessibleGroups lists the ids of the model groups the caller may see.
func (a *API) accessibleGroups(ctx context.Context, u auth.User) ([]any, error) {
	body, err := json.Marshal(map[string]any{"size": maxAccessibleGroups, "_source": false, "query": aclFilter(u)})
	if err != nil {
		return nil, err
	}
	raw, err := a.store.Search(ctx, indexstore.ModelGroups, body, nil)
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
		return nil, err
	}
	ids := make([]any, 0, len(res.Hits.Hits))
	for _, h := range res.Hits.Hits {
		ids = append(ids, h.ID)
	}
	return ids, nil
}

// searchFilter is the access filter a search of c gets for the caller;
// nil when none applies.
func (a *API) searchFilter(ctx context.Context, c indexstore.Collection) (map[string]any, error) {
	switch c {
	case indexstore.ModelGroups:
		if u, checked := a.modelACL(ctx); checked {
			return aclFilter(u), nil
		}
	case indexstore.Connectors:
		if u, checked := a.connectorACL(ctx); checked {
			return aclFilter(u), nil
		}
	case indexstore.Models:
		u, checked := a.modelACL(ctx)
		if !checked {
			return nil, nil
		}
		ids, err := a.accessibleGroups(ctx, u)
		if err != nil {
			return nil, err
		}
		// Models of an accessible group, or of none.
		return map[string]any{"bool": map[string]any{"minimum_should_match": 1, "should": []any{
			map[string]any{"terms": map[string]any{"model_group_id": ids}},
			map[string]any{"bool": map[string]any{"must_not": []any{map[string]any{"exists": map[string]any{"field": "model_group_id"}}}}},
		}}}, nil
	}
	return nil, nil
}

// checkBatchTask refuses a batch task whose model group the caller cannot
// access with denied. The group is the one kept with the task at
// submission, so the check outlives the model; where the group is gone
// too, only the task's owner passes.
func (a *API) checkBatchTask(ctx context.Context, id string, denied error) error {
	u, checked := a.modelACL(ctx)
	if !checked {
		return nil
	}
	t, _, err := a.store.Tasks().Get(ctx, id)
	if err != nil || t.TaskType != indexstore.TaskBatchPrediction || t.Batch == nil {
		return nil // the handler answers these as before
	}
	groupID := t.Batch.ModelGroupID
	if groupID == "" { // submitted before groups were kept with tasks
		if m, _, err := a.store.Models().Get(ctx, t.ModelID); err == nil {
			groupID = m.ModelGroupID
		}
	}
	if groupID != "" {
		g, _, err := a.store.ModelGroups().Get(ctx, groupID)
		if err == nil {
			if permits(u, g.Owner, g.Access, g.BackendRoles) {
				return nil
			}
			return denied
		}
		if !errors.Is(err, indexstore.ErrNotFound) {
			return err
		}
	}
	if t.Owner == nil || t.Owner.Name == u.Name {
		return nil
	}
	return denied
}

// orDenied is err when there is one, else denied.
func orDenied(err, denied error) error {
	if err != nil {
		return err
	}
	return denied
}
