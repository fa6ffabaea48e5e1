package mlcommons

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

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

// maxWriteAttempts bounds how often modify re-applies a change that lost a
// race; past it the caller gets 409.
const maxWriteAttempts = 30

// modify is read-modify-write with optimistic concurrency: when another
// writer got there first, mutate runs again on top of its version after a
// short jittered pause, so no update is lost. mutate must be safe to run
// more than once.
func modify[T any](ctx context.Context, s Store, c indexstore.Collection, id string, notFound error, mutate func(*T) error) (*indexstore.WriteResult, *T, error) {
	return modifyDoc(ctx, s, c, id, notFound, true, mutate)
}

// modifyDoc is modify with a choice: refresh makes the write visible to the
// next search before it returns (refresh=wait_for), at up to a second's cost.
func modifyDoc[T any](ctx context.Context, s Store, c indexstore.Collection, id string, notFound error, refresh bool, mutate func(*T) error) (*indexstore.WriteResult, *T, error) {
	return modifyFrom(ctx, s, c, id, notFound, refresh, nil, nil, mutate)
}

// modifyFrom is modifyDoc starting from a version the caller already holds
// (known, at knownDoc's seq_no), saving the first read; a conflict reads
// the current version as usual.
func modifyFrom[T any](ctx context.Context, s Store, c indexstore.Collection, id string, notFound error, refresh bool,
	known *T, knownDoc *indexstore.Doc, mutate func(*T) error) (*indexstore.WriteResult, *T, error) {
	for attempt := 1; ; attempt++ {
		v, doc := known, knownDoc
		known, knownDoc = nil, nil
		if v == nil || doc == nil {
			var err error
			if v, doc, err = load[T](ctx, s, c, id, notFound); err != nil {
				return nil, nil, err
			}
		}
		if err := mutate(v); err != nil {
			return nil, nil, err
		}
		res, err := s.Replace(ctx, c, doc, v, refresh)
		if errors.Is(err, indexstore.ErrConflict) && attempt < maxWriteAttempts {
			pause := time.Duration(rand.Int64N(int64(min(10<<attempt, 500))+1)) * time.Millisecond
			select {
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			case <-time.After(pause):
			}
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		return res, v, nil
	}
}
