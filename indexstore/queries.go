package indexstore

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// The named queries: every question the sidecar asks its indices, so no
// caller builds query DSL and tests can answer them from memory.

// Hit is a document found by a query, with the version it was read at.
type Hit[T any] struct {
	ID      string
	Version Version
	Doc     *T
}

// idsLimit bounds the ids a listing query returns; ML Commons' own checks
// (models using a connector, groups of a name) list at most this many.
const idsLimit = 1000

func term(field string, v any) map[string]any {
	return map[string]any{"term": map[string]any{field: v}}
}

func terms(field string, v any) map[string]any {
	return map[string]any{"terms": map[string]any{field: v}}
}

func filter(clauses ...any) map[string]any {
	return map[string]any{"bool": map[string]any{"filter": clauses}}
}

var deployedStates = []string{ModelDeployed, ModelDeploying, ModelPartiallyDeployed}

// ModelsUsingConnector lists the models with connector_id id; deployedOnly
// keeps those deployed or deploying.
func (s *Store) ModelsUsingConnector(ctx context.Context, id string, deployedOnly bool) ([]string, error) {
	q := term("connector_id.keyword", id)
	if deployedOnly {
		q = filter(q, terms("model_state", deployedStates))
	}
	return s.ids(ctx, Models, q)
}

// ModelsInGroup lists the models of a model group.
func (s *Store) ModelsInGroup(ctx context.Context, groupID string) ([]string, error) {
	return s.ids(ctx, Models, term("model_group_id", groupID))
}

// ModelGroupsNamed lists the model groups called name.
func (s *Store) ModelGroupsNamed(ctx context.Context, name string) ([]string, error) {
	return s.ids(ctx, ModelGroups, term("name.keyword", name))
}

// openBatch matches the batch tasks still in progress.
func openBatch() map[string]any {
	return filter(term("task_type", TaskBatchPrediction), terms("state", openStates[:]))
}

// CountOpenBatchTasks counts the batch tasks still in progress. Tasks
// written since the last refresh are not counted; refresh first when that
// matters.
func (s *Store) CountOpenBatchTasks(ctx context.Context) (int64, error) {
	return s.count(ctx, Tasks, openBatch())
}

// RefreshTasks makes every task write visible to the counts and queries.
func (s *Store) RefreshTasks(ctx context.Context) error { return s.Refresh(ctx, Tasks) }

// ScanDueBatchTasks visits, a page at a time, every open batch task due for
// a refresh at now (next_poll passed) whose lease is free or expired.
func (s *Store) ScanDueBatchTasks(ctx context.Context, now time.Time, pageSize int, visit func([]Hit[Task]) error) error {
	ms := now.UnixMilli()
	q := openBatch()
	b := q["bool"].(map[string]any)
	b["filter"] = append(b["filter"].([]any), map[string]any{"range": map[string]any{"batch.next_poll": map[string]any{"lte": ms}}})
	b["must_not"] = []any{map[string]any{"range": map[string]any{"batch.lease_until": map[string]any{"gt": ms}}}}
	return scan(ctx, s, Tasks, q, pageSize, visit)
}

// BatchTaskCount is how many batch tasks of one provider are in one state.
type BatchTaskCount struct {
	Provider, State string
	Count           float64
}

// CountBatchTasks counts the batch tasks by provider and state.
func (s *Store) CountBatchTasks(ctx context.Context) ([]BatchTaskCount, error) {
	body := map[string]any{
		"size":  0,
		"query": term("task_type", TaskBatchPrediction),
		"aggs": map[string]any{"provider": map[string]any{
			"terms": map[string]any{"field": "batch.provider", "size": 100},
			"aggs":  map[string]any{"state": map[string]any{"terms": map[string]any{"field": "state", "size": 20}}},
		}},
	}
	var res struct {
		Aggregations struct {
			Provider struct {
				Buckets []struct {
					Key   string `json:"key"`
					State struct {
						Buckets []struct {
							Key   string  `json:"key"`
							Count float64 `json:"doc_count"`
						} `json:"buckets"`
					} `json:"state"`
				} `json:"buckets"`
			} `json:"provider"`
		} `json:"aggregations"`
	}
	if err := s.do(ctx, http.MethodPost, "/"+s.Index(Tasks)+"/_search", nil, body, &res); err != nil {
		return nil, err
	}
	var out []BatchTaskCount
	for _, pb := range res.Aggregations.Provider.Buckets {
		for _, sb := range pb.State.Buckets {
			out = append(out, BatchTaskCount{Provider: pb.Key, State: sb.Key, Count: sb.Count})
		}
	}
	return out, nil
}

// Counts are the cluster-level numbers of ML Commons' stats.
type Counts struct {
	Models, Connectors, DeployedModels, OpenTasks int64
}

// CountAll counts models, connectors, deployed models and open tasks.
func (s *Store) CountAll(ctx context.Context) (Counts, error) {
	var c Counts
	var err error
	all := map[string]any{"match_all": map[string]any{}}
	for _, q := range []struct {
		dst   *int64
		c     Collection
		query any
	}{
		{&c.Models, Models, all},
		{&c.Connectors, Connectors, all},
		{&c.DeployedModels, Models, term("model_state", ModelDeployed)},
		{&c.OpenTasks, Tasks, terms("state", openStates[:])},
	} {
		if *q.dst, err = s.count(ctx, q.c, q.query); err != nil {
			return Counts{}, err
		}
	}
	return c, nil
}

// DeployedModel is a model deployed or partially deployed, and its state.
type DeployedModel struct {
	ID, State string
}

// DeployedModels lists the deployed and partially deployed models (at most
// 1,000), or only the one with id when id is not empty.
func (s *Store) DeployedModels(ctx context.Context, id string) ([]DeployedModel, error) {
	q := terms("model_state", []string{ModelDeployed, ModelPartiallyDeployed})
	if id != "" {
		q = filter(q, map[string]any{"ids": map[string]any{"values": []string{id}}})
	}
	var res struct {
		Hits struct {
			Hits []struct {
				ID     string `json:"_id"`
				Source struct {
					ModelState string `json:"model_state"`
				} `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	body := map[string]any{"query": q, "size": idsLimit, "_source": []string{"model_state"}}
	if err := s.do(ctx, http.MethodPost, "/"+s.Index(Models)+"/_search", nil, body, &res); err != nil {
		return nil, err
	}
	out := make([]DeployedModel, 0, len(res.Hits.Hits))
	for _, h := range res.Hits.Hits {
		out = append(out, DeployedModel{ID: h.ID, State: h.Source.ModelState})
	}
	return out, nil
}

// ids returns the ids of the documents matching query (at most idsLimit).
func (s *Store) ids(ctx context.Context, c Collection, query any) ([]string, error) {
	var res struct {
		Hits struct {
			Hits []struct {
				ID string `json:"_id"`
			} `json:"hits"`
		} `json:"hits"`
	}
	body := map[string]any{"query": query, "_source": false, "size": idsLimit}
	if err := s.do(ctx, http.MethodPost, "/"+s.Index(c)+"/_search", nil, body, &res); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(res.Hits.Hits))
	for _, h := range res.Hits.Hits {
		out = append(out, h.ID)
	}
	return out, nil
}

// scan visits every document matching query, a page at a time, through a
// scroll: a consistent view however many documents match, with the version
// of each so the caller can update it with optimistic concurrency.
func scan[T any](ctx context.Context, s *Store, c Collection, query any, pageSize int, visit func([]Hit[T]) error) error {
	return scanSorted(ctx, s, c, query, []any{"_doc"}, pageSize, visit)
}

// scanSorted is scan in the order of sort.
func scanSorted[T any](ctx context.Context, s *Store, c Collection, query any, sort []any, pageSize int, visit func([]Hit[T]) error) error {
	type page struct {
		ScrollID string `json:"_scroll_id"`
		Hits     struct {
			Hits []struct {
				ID          string          `json:"_id"`
				SeqNo       int64           `json:"_seq_no"`
				PrimaryTerm int64           `json:"_primary_term"`
				Source      json.RawMessage `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	var p page
	q := url.Values{"scroll": {"1m"}}
	body := map[string]any{"query": query, "size": pageSize, "seq_no_primary_term": true, "sort": sort}
	if err := s.do(ctx, http.MethodPost, "/"+s.Index(c)+"/_search", q, body, &p); err != nil {
		return err
	}
	defer func() {
		if p.ScrollID != "" {
			// Free the scroll even when the caller's context is gone.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = s.do(cctx, http.MethodDelete, "/_search/scroll", nil, map[string]any{"scroll_id": p.ScrollID}, nil)
		}
	}()
	for len(p.Hits.Hits) > 0 {
		hits := make([]Hit[T], 0, len(p.Hits.Hits))
		for _, h := range p.Hits.Hits {
			var v T
			if json.Unmarshal(h.Source, &v) != nil {
				continue // not a document of this shape: nothing the caller could do with it
			}
			hits = append(hits, Hit[T]{ID: h.ID, Version: Version{SeqNo: h.SeqNo, PrimaryTerm: h.PrimaryTerm}, Doc: &v})
		}
		if err := visit(hits); err != nil {
			return err
		}
		id := p.ScrollID
		p = page{ScrollID: id} // still freed by the defer if the next page fails
		if err := s.do(ctx, http.MethodPost, "/_search/scroll", nil, map[string]any{"scroll": "1m", "scroll_id": id}, &p); err != nil {
			return err
		}
	}
	return nil
}
