package mlcommons

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mlsidecar/mlsidecar/indexstore"
)

// load reads a document of type T, or returns notFound.
func load[T any](ctx context.Context, s Store, c indexstore.Collection, id string, notFound error) (*T, *indexstore.Doc, error) {
	doc, err := s.Get(ctx, c, id)
	if errors.Is(err, indexstore.ErrNotFound) {
		return nil, nil, notFound
	}
	if err != nil {
		return nil, nil, err
	}
	var v T
	if err := json.Unmarshal(doc.Source, &v); err != nil {
		return nil, nil, fmt.Errorf("stored %s %s: %w", c, id, err)
	}
	return &v, doc, nil
}

// modify is read-modify-write with optimistic concurrency: when another
// writer got there first, mutate runs again on top of its version, so no
// update is lost. mutate must be safe to run more than once.
func modify[T any](ctx context.Context, s Store, c indexstore.Collection, id string, notFound error, mutate func(*T) error) (*indexstore.WriteResult, *T, error) {
	for attempt := 0; ; attempt++ {
		v, doc, err := load[T](ctx, s, c, id, notFound)
		if err != nil {
			return nil, nil, err
		}
		if err := mutate(v); err != nil {
			return nil, nil, err
		}
		res, err := s.Replace(ctx, c, doc, v, true)
		if errors.Is(err, indexstore.ErrConflict) && attempt < 5 {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		return res, v, nil
	}
}
