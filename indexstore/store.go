// Package indexstore keeps mlsidecar's state in hidden OpenSearch indices. It
// is the only package that talks to OpenSearch through opensearch-go: the
// stored document types next to their mappings, typed access to each index
// with optimistic concurrency and client-made ids, the named queries the
// rest of the sidecar needs, and raw search for the ML _search routes.
package indexstore

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
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
	Controllers Collection = "controllers"
	// BatchFailures holds the records ingestions could not index.
	BatchFailures Collection = "batch-failures"
)

// collections lists every index the sidecar owns.
func collections() []Collection {
	return []Collection{Connectors, Models, ModelGroups, Tasks, Config, Controllers, BatchFailures}
}

var (
	// ErrNotFound means the document (or its index) does not exist.
	ErrNotFound = errors.New("document not found")
	// ErrConflict means another writer changed the document first, or a
	// document with that id exists already.
	ErrConflict = errors.New("version conflict")
	// ErrNoSecurityPlugin means the cluster has no security plugin: its
	// REST API is not there.
	ErrNoSecurityPlugin = errors.New("the cluster has no security plugin")
	// ErrTimeout means the cluster did not answer within the call timeout.
	ErrTimeout = errors.New("the OpenSearch cluster did not answer in time")
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
	// CallTimeout bounds each call to the cluster, retries included; past
	// it the call fails with ErrTimeout.
	CallTimeout time.Duration
}

// Store reads and writes the sidecar's documents.
type Store struct {
	client   *opensearch.Client
	upstream string
	// callerTransport is the transport of CallerClient: the sidecar's, less
	// its client certificate.
	callerTransport http.RoundTripper
	prefix          string
	timeout         time.Duration
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
		RetryBackoff:          retryBackoff,
		DiscoverNodesOnStart:  &noDiscovery,
		HealthCheckMaxRetries: -1,
	})
	if err != nil {
		return nil, fmt.Errorf("opensearch client: %w", err)
	}
	ct := t.Clone()
	if ct.TLSClientConfig != nil {
		ct.TLSClientConfig.Certificates, ct.TLSClientConfig.GetClientCertificate = nil, nil
	}
	return &Store{client: c, upstream: o.Upstream.String(), callerTransport: ct, prefix: o.Prefix, timeout: o.CallTimeout}, nil
}

// retryBackoff spreads the transport's retries of one request (502, 503,
// 504, a lost connection): 200 ms, 400 ms, 600 ms, each with up to half of
// it again as jitter, so replicas retrying together do not stay in step.
func retryBackoff(attempt int) time.Duration {
	d := time.Duration(attempt) * 200 * time.Millisecond
	return d + time.Duration(rand.Int64N(int64(d/2)+1))
}

// Index is the full index name of a collection.
func (s *Store) Index(c Collection) string { return s.prefix + string(c) }

// Connectors is typed access to the connectors index.
func (s *Store) Connectors() Repo[Connector] { return newDocs[Connector](s, Connectors) }

// Models is typed access to the models index.
func (s *Store) Models() Repo[Model] { return newDocs[Model](s, Models) }

// ModelGroups is typed access to the model groups index.
func (s *Store) ModelGroups() Repo[ModelGroup] { return newDocs[ModelGroup](s, ModelGroups) }

// Tasks is typed access to the tasks index.
func (s *Store) Tasks() Repo[Task] { return newDocs[Task](s, Tasks) }

// Controllers is typed access to the model controllers index: a model's
// controller has the model's id.
func (s *Store) Controllers() Repo[Controller] { return newDocs[Controller](s, Controllers) }

// MasterKeys is typed access to the key documents of the config index.
func (s *Store) MasterKeys() Repo[MasterKey] { return newDocs[MasterKey](s, Config) }

// MLSettings is typed access to the ML Commons settings document of the
// config index.
func (s *Store) MLSettings() Repo[MLSettings] { return newDocs[MLSettings](s, Config) }

// Search runs a caller's search body against a collection and returns
// OpenSearch's raw answer. params are the caller's query parameters. Only
// the ML _search routes use it; everything else has a named query.
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

// count counts the documents matching query (a query DSL object).
func (s *Store) count(ctx context.Context, c Collection, query any) (int64, error) {
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
	parent := ctx
	if s.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.timeout)
		defer cancel()
	}
	err := s.call(ctx, method, path, query, body, out)
	if err != nil && ctx.Err() == context.DeadlineExceeded && parent.Err() == nil {
		return fmt.Errorf("opensearch %s %s: %w", method, path, ErrTimeout)
	}
	return err
}

// call is one request of do.
func (s *Store) call(ctx context.Context, method, path string, query url.Values, body, out any) error {
	var rd io.Reader
	contentType := "application/json"
	switch b := body.(type) {
	case nil:
	case ndjson:
		rd, contentType = bytes.NewReader(b), "application/x-ndjson"
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			return fmt.Errorf("encoding request: %w", err)
		}
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequestWithContext(ctx, method, path, rd)
	if err != nil {
		return err
	}
	req.URL.RawQuery = query.Encode()
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := s.client.Stream(req)
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

// notFoundAnswer is a 404 with its body: errors.Is(err, ErrNotFound), and a
// DeleteResponse to who asks for it.
type notFoundAnswer struct{ body []byte }

func (*notFoundAnswer) Error() string        { return ErrNotFound.Error() }
func (*notFoundAnswer) Is(target error) bool { return target == ErrNotFound }

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
		return &notFoundAnswer{body: body}
	case status == http.StatusConflict:
		return ErrConflict
	}
	return &StatusError{Status: status, Type: cause.Type, Reason: cause.Reason}
}

// ClusterPermissions reads the cluster's role definitions and action groups
// through the security plugin's REST API, with the sidecar's account:
// role → cluster_permissions and action group → allowed_actions, built-in
// (static) ones included. An account that may not read them gets a
// *StatusError 401 or 403; a cluster without the security plugin
// ErrNoSecurityPlugin.
func (s *Store) ClusterPermissions(ctx context.Context) (roles, groups map[string][]string, err error) {
	var r map[string]struct {
		ClusterPermissions []string `json:"cluster_permissions"`
	}
	if err := s.securityAPI(ctx, "/_plugins/_security/api/roles", &r); err != nil {
		return nil, nil, err
	}
	var g map[string]struct {
		AllowedActions []string `json:"allowed_actions"`
	}
	if err := s.securityAPI(ctx, "/_plugins/_security/api/actiongroups", &g); err != nil {
		return nil, nil, err
	}
	roles = make(map[string][]string, len(r))
	for name, role := range r {
		roles[name] = role.ClusterPermissions
	}
	groups = make(map[string][]string, len(g))
	for name, group := range g {
		groups[name] = group.AllowedActions
	}
	return roles, groups, nil
}

// SecurityEnabled reports whether the cluster has the security plugin: its
// authinfo answers the sidecar's account (or refuses it).
func (s *Store) SecurityEnabled(ctx context.Context) (bool, error) {
	err := s.securityAPI(ctx, "/_plugins/_security/authinfo", nil)
	var se *StatusError
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrNoSecurityPlugin):
		return false, nil
	case errors.As(err, &se) && (se.Status == http.StatusUnauthorized || se.Status == http.StatusForbidden):
		return true, nil
	}
	return false, err
}

// securityAPI reads a security plugin endpoint; a cluster that answers it
// 404 or 400 (no handler) has no security plugin.
func (s *Store) securityAPI(ctx context.Context, path string, out any) error {
	err := s.do(ctx, http.MethodGet, path, nil, nil, out)
	var se *StatusError
	if errors.Is(err, ErrNotFound) || errors.As(err, &se) && se.Status == http.StatusBadRequest {
		return ErrNoSecurityPlugin
	}
	return err
}
