// Package indexstore keeps mlsidecar's state in hidden OpenSearch indices. It
// is the only package that talks to OpenSearch through opensearch-go: typed
// collections over the indices, optimistic concurrency on every update, and
// search pass-through.
package indexstore

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/opensearch-project/opensearch-go/v4"
)

// Collection names one of the sidecar's indices, without the prefix.
type Collection string

// The sidecar's indices.
const (
	Connectors  Collection = "connectors"
	Models      Collection = "models"
	ModelGroups Collection = "model-groups"
	Tasks       Collection = "tasks"
	Config      Collection = "config"
)

// collections lists every index the sidecar owns.
func collections() []Collection { return []Collection{Connectors, Models, ModelGroups, Tasks, Config} }

var (
	// ErrNotFound means the document (or its index) does not exist.
	ErrNotFound = errors.New("document not found")
	// ErrConflict means another writer changed the document first, or a
	// document with that id exists already.
	ErrConflict = errors.New("version conflict")
)

// StatusError is any other error answer from OpenSearch.
type StatusError struct {
	Status int
	Type   string
	Reason string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("opensearch answered %d %s: %s", e.Status, e.Type, e.Reason)
}

// Options configure a Store.
type Options struct {
	Upstream *url.URL
	// TLS may carry the sidecar's own client certificate.
	TLS                *tls.Config
	Username, Password string
	Prefix             string
}

// Store reads and writes the sidecar's documents.
type Store struct {
	client *opensearch.Client
	prefix string
}

// New returns a Store using the sidecar's own credentials.
func New(o Options) (*Store, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = o.TLS
	t.Proxy = nil
	t.MaxIdleConnsPerHost = 64
	// Answers are small and the cluster is near: gzip only costs CPU twice.
	t.DisableCompression = true
	noDiscovery := false
	c, err := opensearch.NewClient(opensearch.Config{
		Addresses:             []string{o.Upstream.String()},
		Username:              o.Username,
		Password:              o.Password,
		Transport:             t,
		MaxRetries:            3,
		RetryBackoff:          func(attempt int) time.Duration { return time.Duration(attempt) * 200 * time.Millisecond },
		DiscoverNodesOnStart:  &noDiscovery,
		HealthCheckMaxRetries: -1,
	})
	if err != nil {
		return nil, fmt.Errorf("opensearch client: %w", err)
	}
	return &Store{client: c, prefix: o.Prefix}, nil
}

// Index is the full index name of a collection.
func (s *Store) Index(c Collection) string { return s.prefix + string(c) }

// Doc is one stored document with the version it was read at.
type Doc struct {
	ID          string
	SeqNo       int64
	PrimaryTerm int64
	Source      json.RawMessage
}

// WriteResult is OpenSearch's answer to a write, as ML Commons hands it on
// (UpdateResponse / DeleteResponse).
type WriteResult struct {
	Index       string          `json:"_index"`
	ID          string          `json:"_id"`
	Version     int64           `json:"_version"`
	Result      string          `json:"result"`
	Shards      json.RawMessage `json:"_shards,omitempty"`
	SeqNo       int64           `json:"_seq_no"`
	PrimaryTerm int64           `json:"_primary_term"`
}

// Get reads a document in real time.
func (s *Store) Get(ctx context.Context, c Collection, id string) (*Doc, error) {
	var r struct {
		Found       bool            `json:"found"`
		SeqNo       int64           `json:"_seq_no"`
		PrimaryTerm int64           `json:"_primary_term"`
		Source      json.RawMessage `json:"_source"`
	}
	if err := s.do(ctx, http.MethodGet, "/"+s.Index(c)+"/_doc/"+url.PathEscape(id), nil, nil, &r); err != nil {
		return nil, err
	}
	if !r.Found {
		return nil, ErrNotFound
	}
	return &Doc{ID: id, SeqNo: r.SeqNo, PrimaryTerm: r.PrimaryTerm, Source: r.Source}, nil
}

// Create stores a new document under an OpenSearch-generated id, or under id
// when it is not empty (ErrConflict if taken). With refresh, searches that
// follow see it.
func (s *Store) Create(ctx context.Context, c Collection, id string, source any, refresh bool) (*WriteResult, error) {
	q := url.Values{}
	if refresh {
		q.Set("refresh", "wait_for")
	}
	method, path := http.MethodPost, "/"+s.Index(c)+"/_doc"
	if id != "" {
		method, path = http.MethodPut, "/"+s.Index(c)+"/_create/"+url.PathEscape(id)
	}
	var r WriteResult
	if err := s.do(ctx, method, path, q, source, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Replace writes the whole document if it is still at the version doc was
// read at; ErrConflict otherwise.
func (s *Store) Replace(ctx context.Context, c Collection, doc *Doc, source any, refresh bool) (*WriteResult, error) {
	q := url.Values{
		"if_seq_no":       {strconv.FormatInt(doc.SeqNo, 10)},
		"if_primary_term": {strconv.FormatInt(doc.PrimaryTerm, 10)},
	}
	if refresh {
		q.Set("refresh", "wait_for")
	}
	var r WriteResult
	if err := s.do(ctx, http.MethodPut, "/"+s.Index(c)+"/_doc/"+url.PathEscape(doc.ID), q, source, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Delete removes the document if it is still at the version doc was read at.
func (s *Store) Delete(ctx context.Context, c Collection, doc *Doc) (*WriteResult, error) {
	q := url.Values{
		"if_seq_no":       {strconv.FormatInt(doc.SeqNo, 10)},
		"if_primary_term": {strconv.FormatInt(doc.PrimaryTerm, 10)},
		"refresh":         {"wait_for"},
	}
	var r WriteResult
	if err := s.do(ctx, http.MethodDelete, "/"+s.Index(c)+"/_doc/"+url.PathEscape(doc.ID), q, nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Search runs a caller's search body against a collection and returns
// OpenSearch's raw answer. params are the caller's query parameters.
func (s *Store) Search(ctx context.Context, c Collection, body []byte, params url.Values) (json.RawMessage, error) {
	var r json.RawMessage
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	if err := s.do(ctx, http.MethodPost, "/"+s.Index(c)+"/_search", params, json.RawMessage(body), &r); err != nil {
		return nil, err
	}
	return r, nil
}

// Refresh makes every write to a collection visible to searches now.
func (s *Store) Refresh(ctx context.Context, c Collection) error {
	return s.do(ctx, http.MethodPost, "/"+s.Index(c)+"/_refresh", nil, nil, nil)
}

// Count counts the documents matching query (a query DSL object).
func (s *Store) Count(ctx context.Context, c Collection, query any) (int64, error) {
	var r struct {
		Count int64 `json:"count"`
	}
	if err := s.do(ctx, http.MethodPost, "/"+s.Index(c)+"/_count", nil, map[string]any{"query": query}, &r); err != nil {
		return 0, err
	}
	return r.Count, nil
}

// do sends one request through the opensearch-go transport and decodes a 2xx
// answer into out; other answers become ErrNotFound, ErrConflict or a
// StatusError.
func (s *Store) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encoding request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, path, rd)
	if err != nil {
		return err
	}
	req.URL.RawQuery = query.Encode()
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Perform(req)
	if err != nil {
		return fmt.Errorf("opensearch %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("opensearch %s %s: reading answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		return statusError(resp.StatusCode, b)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("opensearch %s %s: decoding answer: %w", method, path, err)
	}
	return nil
}

func statusError(status int, body []byte) error {
	var e struct {
		Error json.RawMessage `json:"error"`
		Found *bool           `json:"found"`
	}
	_ = json.Unmarshal(body, &e)
	var cause struct{ Type, Reason string }
	_ = json.Unmarshal(e.Error, &cause)
	switch {
	case status == http.StatusNotFound:
		return ErrNotFound
	case status == http.StatusConflict:
		return ErrConflict
	}
	return &StatusError{Status: status, Type: cause.Type, Reason: cause.Reason}
}

// Scan visits every document matching query, a page at a time, through a
// scroll: a consistent view however many documents match, with the version
// of each so the caller can update it with optimistic concurrency.
func (s *Store) Scan(ctx context.Context, c Collection, query any, pageSize int, visit func([]Doc) error) error {
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
	body := map[string]any{"query": query, "size": pageSize, "seq_no_primary_term": true, "sort": []string{"_doc"}}
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
		docs := make([]Doc, len(p.Hits.Hits))
		for i, h := range p.Hits.Hits {
			docs[i] = Doc{ID: h.ID, SeqNo: h.SeqNo, PrimaryTerm: h.PrimaryTerm, Source: h.Source}
		}
		if err := visit(docs); err != nil {
			return err
		}
		id := p.ScrollID
		p = page{}
		if err := s.do(ctx, http.MethodPost, "/_search/scroll", nil, map[string]any{"scroll": "1m", "scroll_id": id}, &p); err != nil {
			return err
		}
	}
	return nil
}
