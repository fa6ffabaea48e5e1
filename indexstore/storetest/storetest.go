// Package storetest is an in-memory indexstore.Repo for the unit tests of
// the packages above indexstore, in the manner of net/http/httptest. It has
// OpenSearch's optimistic concurrency (a version per document, ErrConflict
// on a stale write or a taken id) and nothing else: queries are the store's
// named queries, which each test package answers from Docs.
package storetest

import (
	"context"
	"encoding/json"
	"sort"
	"sync"

	"github.com/mlsidecar/mlsidecar/indexstore"
)

// primaryTerm is the one primary term of the in-memory "shard".
const primaryTerm = 1

// Repo is an in-memory indexstore.Repo. Documents are kept as JSON, so a
// caller never shares memory with what is stored. It is safe for concurrent
// use.
type Repo[T any] struct {
	mu    sync.Mutex
	seq   int64
	docs  map[string]stored
	order []string // ids in creation order

	// BeforeReplace, if set, runs before each Replace with the id; an error
	// it returns is the Replace's answer (inject conflicts with it).
	BeforeReplace func(id string) error
	// Replaces counts the Replace calls that wrote.
	Replaces int
}

type stored struct {
	seq    int64
	source json.RawMessage
}

// NewRepo returns an empty Repo.
func NewRepo[T any]() *Repo[T] { return &Repo[T]{docs: map[string]stored{}} }

func (r *Repo[T]) result(id string, seq int64, result string) *indexstore.WriteResult {
	return &indexstore.WriteResult{ID: id, Version: seq, Result: result, SeqNo: seq, PrimaryTerm: primaryTerm}
}

// Get implements indexstore.Repo.
func (r *Repo[T]) Get(_ context.Context, id string) (*T, indexstore.Version, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.docs[id]
	if !ok {
		return nil, indexstore.Version{}, indexstore.ErrNotFound
	}
	var v T
	if err := json.Unmarshal(d.source, &v); err != nil {
		return nil, indexstore.Version{}, err
	}
	return &v, indexstore.Version{SeqNo: d.seq, PrimaryTerm: primaryTerm}, nil
}

// Insert implements indexstore.Repo.
func (r *Repo[T]) Insert(ctx context.Context, doc *T, refresh indexstore.Refresh) (*indexstore.WriteResult, error) {
	return r.Create(ctx, indexstore.NewID(), doc, refresh)
}

// InsertAs implements indexstore.Repo.
func (r *Repo[T]) InsertAs(ctx context.Context, id string, doc *T, refresh indexstore.Refresh) (*indexstore.WriteResult, error) {
	return r.Create(ctx, id, doc, refresh)
}

// Create implements indexstore.Repo.
func (r *Repo[T]) Create(_ context.Context, id string, doc *T, _ indexstore.Refresh) (*indexstore.WriteResult, error) {
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.docs[id]; ok {
		return nil, indexstore.ErrConflict
	}
	r.seq++
	r.docs[id] = stored{seq: r.seq, source: b}
	r.order = append(r.order, id)
	return r.result(id, r.seq, "created"), nil
}

// Replace implements indexstore.Repo.
func (r *Repo[T]) Replace(_ context.Context, id string, v indexstore.Version, doc *T, _ indexstore.Refresh) (*indexstore.WriteResult, error) {
	if r.BeforeReplace != nil {
		if err := r.BeforeReplace(id); err != nil {
			return nil, err
		}
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.at(id, v); err != nil {
		return nil, err
	}
	r.seq++
	r.docs[id] = stored{seq: r.seq, source: b}
	r.Replaces++
	return r.result(id, r.seq, "updated"), nil
}

// at checks that id is stored at version v; r.mu is held.
func (r *Repo[T]) at(id string, v indexstore.Version) error {
	d, ok := r.docs[id]
	switch {
	case !ok:
		return indexstore.ErrNotFound
	case d.seq != v.SeqNo || v.PrimaryTerm != primaryTerm:
		return indexstore.ErrConflict
	}
	return nil
}

// Delete implements indexstore.Repo.
func (r *Repo[T]) Delete(_ context.Context, id string, v indexstore.Version) (*indexstore.WriteResult, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !indexstore.ValidID(id) {
		return nil, indexstore.ErrNotFound // as the real store: no request
	}
	if _, ok := r.docs[id]; !ok && v == indexstore.Missing {
		res := r.result(id, 1, "not_found")
		res.ForcedRefresh = true
		return res, nil
	}
	if v == indexstore.Missing {
		v = indexstore.Version{SeqNo: r.docs[id].seq, PrimaryTerm: primaryTerm}
	}
	if err := r.at(id, v); err != nil {
		return nil, err
	}
	delete(r.docs, id)
	for i, o := range r.order {
		if o == id {
			r.order = append(r.order[:i], r.order[i+1:]...)
			break
		}
	}
	r.seq++
	res := r.result(id, r.seq, "deleted")
	res.ForcedRefresh = true
	return res, nil
}

// Put stores doc under id, replacing what is there (test setup).
func (r *Repo[T]) Put(id string, doc *T) {
	b, err := json.Marshal(doc)
	if err != nil {
		panic(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.docs[id]; !ok {
		r.order = append(r.order, id)
	}
	r.seq++
	r.docs[id] = stored{seq: r.seq, source: b}
}

// Raw is the stored JSON of id, nil if there is none.
func (r *Repo[T]) Raw(id string) json.RawMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append(json.RawMessage(nil), r.docs[id].source...)
}

// Docs are every document with its id and version, in creation order.
func (r *Repo[T]) Docs() []indexstore.Hit[T] {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]indexstore.Hit[T], 0, len(r.order))
	for _, id := range r.order {
		d := r.docs[id]
		var v T
		if json.Unmarshal(d.source, &v) != nil {
			continue
		}
		out = append(out, indexstore.Hit[T]{ID: id, Version: indexstore.Version{SeqNo: d.seq, PrimaryTerm: primaryTerm}, Doc: &v})
	}
	return out
}

// IDs are the stored ids, sorted.
func (r *Repo[T]) IDs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]string(nil), r.order...)
	sort.Strings(out)
	return out
}

var _ indexstore.Repo[struct{}] = (*Repo[struct{}])(nil)
