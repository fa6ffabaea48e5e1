package indexstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Version is the version a document was read at: the condition of an
// optimistic-concurrency write.
type Version struct {
	SeqNo       int64
	PrimaryTerm int64
}

// Missing is the version of a document a read did not find. Deleting at
// Missing asks the cluster anyway and answers its DeleteResponse with
// "result":"not_found", as ML Commons hands on for unknown connectors and
// model groups; a document that exists by then is deleted (ids are random,
// so it can only be one created after the read).
var Missing = Version{SeqNo: -1, PrimaryTerm: -1}

// WriteResult is OpenSearch's answer to a write, as ML Commons hands it on
// (UpdateResponse / DeleteResponse).
type WriteResult struct {
	Index   string `json:"_index"`
	ID      string `json:"_id"`
	Version int64  `json:"_version"`
	Result  string `json:"result"`
	// ForcedRefresh is set by deletes, which refresh at once as ML
	// Commons' do.
	ForcedRefresh bool            `json:"forced_refresh,omitempty"`
	Shards        json.RawMessage `json:"_shards,omitempty"`
	SeqNo         int64           `json:"_seq_no"`
	PrimaryTerm   int64           `json:"_primary_term"`
}

// At is the version the write left the document at.
func (w *WriteResult) At() Version { return Version{SeqNo: w.SeqNo, PrimaryTerm: w.PrimaryTerm} }

// Refresh says whether searches see a write when it returns. Reads by id
// never need it.
type Refresh int

// Whether searches see a write when it returns.
const (
	// NoWait: within the index's refresh interval.
	NoWait Refresh = iota
	// WaitForSeen (refresh=wait_for): the write waits for the next
	// refresh, at up to a second's cost.
	WaitForSeen
	// Immediate (refresh=true): the write refreshes the shard, as ML
	// Commons writes its tasks; for writes a caller may search for at once.
	Immediate
)

// Repo is typed access to one collection. *Docs is the OpenSearch one; the
// ML API and the batch worker take a Repo so their tests can use memory.
type Repo[T any] interface {
	// Get reads a document in real time; ErrNotFound if there is none.
	Get(ctx context.Context, id string) (*T, Version, error)
	// Insert stores a new document under a new id made here, so a retried
	// write can never leave a second copy.
	Insert(ctx context.Context, doc *T, refresh Refresh) (*WriteResult, error)
	// InsertAs is Insert under an id the caller made with NewID, for a
	// caller that needs the id before the write (a batch task's id is the
	// provider's idempotency key).
	InsertAs(ctx context.Context, id string, doc *T, refresh Refresh) (*WriteResult, error)
	// Create stores a new document under id; ErrConflict if it exists.
	Create(ctx context.Context, id string, doc *T, refresh Refresh) (*WriteResult, error)
	// Replace writes the whole document if it is still at v; ErrConflict
	// otherwise.
	Replace(ctx context.Context, id string, v Version, doc *T, refresh Refresh) (*WriteResult, error)
	// Delete removes the document if it is still at v, and waits until
	// searches no longer see it.
	Delete(ctx context.Context, id string, v Version) (*WriteResult, error)
}

// Docs is a Repo over one of the sidecar's indices.
type Docs[T any] struct {
	s *Store
	c Collection
}

// newDocs is typed access to collection c of s.
func newDocs[T any](s *Store, c Collection) *Docs[T] { return &Docs[T]{s: s, c: c} }

// maxIDLength bounds the ids ValidID accepts: OpenSearch refuses ids over
// 512 bytes.
const maxIDLength = 512

// ValidID reports whether id has the shape of the ids the sidecar and ML
// Commons make (URL-safe base64, OpenSearch's auto-id alphabet; the fixed
// config id master_key too). Ids come from request paths and go into the
// sidecar's own /<index>/_doc/<id> paths: behind a hop that decodes %2F,
// "..%2F..%2Fother%2F_doc%2Fx" would reach another index with the service
// account's rights. Anything else cannot name a stored document.
func ValidID(id string) bool {
	if id == "" || len(id) > maxIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func (d *Docs[T]) path(op, id string) string {
	return "/" + d.s.Index(d.c) + "/" + op + "/" + url.PathEscape(id)
}

// Get implements Repo.
func (d *Docs[T]) Get(ctx context.Context, id string) (*T, Version, error) {
	var r struct {
		Found       bool            `json:"found"`
		SeqNo       int64           `json:"_seq_no"`
		PrimaryTerm int64           `json:"_primary_term"`
		Source      json.RawMessage `json:"_source"`
	}
	if !ValidID(id) {
		return nil, Version{}, ErrNotFound
	}
	if err := d.s.do(ctx, http.MethodGet, d.path("_doc", id), nil, nil, &r); err != nil {
		return nil, Version{}, err
	}
	if !r.Found {
		return nil, Version{}, ErrNotFound
	}
	var v T
	if err := json.Unmarshal(r.Source, &v); err != nil {
		return nil, Version{}, fmt.Errorf("stored %s %s: %w", d.c, id, err)
	}
	return &v, Version{SeqNo: r.SeqNo, PrimaryTerm: r.PrimaryTerm}, nil
}

// Insert implements Repo. opensearch-go retries a write whose answer was
// lost (502, 503, 504, a dropped connection); when the first attempt had
// landed, the retry finds the id taken. A document under that id holding
// exactly what was sent is then this write, not a conflict.
func (d *Docs[T]) Insert(ctx context.Context, doc *T, refresh Refresh) (*WriteResult, error) {
	return d.InsertAs(ctx, NewID(), doc, refresh)
}

// InsertAs implements Repo.
func (d *Docs[T]) InsertAs(ctx context.Context, id string, doc *T, refresh Refresh) (*WriteResult, error) {
	body, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", d.c, err)
	}
	res, err := d.create(ctx, id, json.RawMessage(body), refresh)
	if !errors.Is(err, ErrConflict) {
		return res, err
	}
	var got struct {
		Found       bool            `json:"found"`
		Version     int64           `json:"_version"`
		SeqNo       int64           `json:"_seq_no"`
		PrimaryTerm int64           `json:"_primary_term"`
		Source      json.RawMessage `json:"_source"`
	}
	if gerr := d.s.do(ctx, http.MethodGet, d.path("_doc", id), nil, nil, &got); gerr != nil || !got.Found || !bytes.Equal(got.Source, body) {
		return nil, err
	}
	if refresh != NoWait {
		if err := d.s.Refresh(ctx, d.c); err != nil {
			return nil, err
		}
	}
	return &WriteResult{Index: d.s.Index(d.c), ID: id, Version: got.Version, Result: "created",
		SeqNo: got.SeqNo, PrimaryTerm: got.PrimaryTerm}, nil
}

// Create implements Repo.
func (d *Docs[T]) Create(ctx context.Context, id string, doc *T, refresh Refresh) (*WriteResult, error) {
	return d.create(ctx, id, doc, refresh)
}

func (d *Docs[T]) create(ctx context.Context, id string, body any, refresh Refresh) (*WriteResult, error) {
	if !ValidID(id) {
		return nil, ErrNotFound
	}
	var r WriteResult
	if err := d.s.do(ctx, http.MethodPut, d.path("_create", id), refreshQuery(nil, refresh), body, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Replace implements Repo.
func (d *Docs[T]) Replace(ctx context.Context, id string, v Version, doc *T, refresh Refresh) (*WriteResult, error) {
	if !ValidID(id) {
		return nil, ErrNotFound
	}
	var r WriteResult
	if err := d.s.do(ctx, http.MethodPut, d.path("_doc", id), refreshQuery(v.query(), refresh), doc, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Delete implements Repo.
func (d *Docs[T]) Delete(ctx context.Context, id string, v Version) (*WriteResult, error) {
	if !ValidID(id) {
		return nil, ErrNotFound
	}
	// refresh=true (IMMEDIATE, as ML Commons deletes) answers
	// "forced_refresh":true.
	q := url.Values{"refresh": {"true"}}
	if v != Missing {
		q = v.query()
		q.Set("refresh", "true")
	}
	var r WriteResult
	err := d.s.do(ctx, http.MethodDelete, d.path("_doc", id), q, nil, &r)
	var nf *notFoundAnswer
	if v == Missing && errors.As(err, &nf) && json.Unmarshal(nf.body, &r) == nil && r.Result == "not_found" {
		return &r, nil
	}
	if err != nil {
		return nil, err
	}
	return &r, nil
}

func (v Version) query() url.Values {
	return url.Values{
		"if_seq_no":       {strconv.FormatInt(v.SeqNo, 10)},
		"if_primary_term": {strconv.FormatInt(v.PrimaryTerm, 10)},
	}
}

func refreshQuery(q url.Values, refresh Refresh) url.Values {
	if q == nil {
		q = url.Values{}
	}
	switch refresh {
	case WaitForSeen:
		q.Set("refresh", "wait_for")
	case Immediate:
		q.Set("refresh", "true")
	}
	return q
}

// NewID makes a document id in the shape of OpenSearch's auto-generated
// ones (20 URL-safe base64 characters), from 120 random bits.
func NewID() string {
	var b [15]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ErrUnchanged, returned by a Modify mutation, means there is nothing to
// write; Modify returns it as is.
var ErrUnchanged = errors.New("nothing to change")

// maxWriteAttempts bounds how often Modify re-applies a change that lost a
// race; past it the caller gets ErrConflict.
const maxWriteAttempts = 30

// Modify is read-modify-write with optimistic concurrency: when another
// writer got there first, mutate runs again on top of its version after a
// short jittered pause, so no update is lost. mutate must be safe to run
// more than once; its error (ErrUnchanged included) ends the loop.
func Modify[T any](ctx context.Context, r Repo[T], id string, refresh Refresh, mutate func(*T) error) (*WriteResult, *T, error) {
	return ModifyFrom(ctx, r, id, nil, Version{}, refresh, mutate)
}

// ModifyFrom is Modify starting from a copy the caller already holds (held,
// at version at), saving the first read; a conflict reads the current
// version as usual. held is changed by mutate.
func ModifyFrom[T any](ctx context.Context, r Repo[T], id string, held *T, at Version, refresh Refresh, mutate func(*T) error) (*WriteResult, *T, error) {
	for attempt := 1; ; attempt++ {
		v, ver := held, at
		held = nil
		if v == nil {
			var err error
			if v, ver, err = r.Get(ctx, id); err != nil {
				return nil, nil, err
			}
		}
		if err := mutate(v); err != nil {
			return nil, v, err
		}
		res, err := r.Replace(ctx, id, ver, v, refresh)
		if errors.Is(err, ErrConflict) && attempt < maxWriteAttempts {
			pause := time.Duration(mrand.Int64N(int64(min(10<<attempt, 500))+1)) * time.Millisecond
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
