// Package mlcommons serves the OpenSearch ML Commons REST API
// (/_plugins/_ml/...) inside the sidecar. This package is the REST layer
// only: routes, the one adapter with the one error→status table, wire types
// and thin handlers. The work is done below it: connector (validation,
// binding, calls), batch (the batch task lifecycle and its worker), and
// indexstore (documents and queries). Routes it does not serve answer the
// way OpenSearch answers a route it does not know, so nothing under
// /_plugins/_ml ever reaches the cluster by accident.
package mlcommons

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/auth"
	"github.com/mlsidecar/mlsidecar/mlcommons/batch"
	"github.com/mlsidecar/mlsidecar/mlcommons/connector"
	"github.com/mlsidecar/mlsidecar/mlcommons/ingest"
	"github.com/mlsidecar/mlsidecar/mlcommons/outbound"
	"github.com/mlsidecar/mlsidecar/mlcommons/secrets"
)

// Store is what the API needs of indexstore.
type Store interface {
	connector.Store
	batch.Store
	ingest.Store
	ModelGroups() indexstore.Repo[indexstore.ModelGroup]
	MasterKeys() indexstore.Repo[indexstore.MasterKey]
	Controllers() indexstore.Repo[indexstore.Controller]
	ModelsUsingConnector(ctx context.Context, id string, deployedOnly bool) ([]string, error)
	ModelsInGroup(ctx context.Context, groupID string) ([]string, error)
	ModelGroupsNamed(ctx context.Context, name string) ([]string, error)
	CountAll(ctx context.Context) (indexstore.Counts, error)
	DeployedModels(ctx context.Context, id string) ([]indexstore.DeployedModel, error)
	// Search runs a caller's search; only the _search routes use it.
	Search(ctx context.Context, c indexstore.Collection, body []byte, params url.Values) (json.RawMessage, error)
	EnsureIndices(ctx context.Context) error
	// SecurityEnabled reports whether the cluster has the security plugin.
	SecurityEnabled(ctx context.Context) (bool, error)
}

// Authorizer decides whether a caller may run an ML Commons action
// (*auth.Authorizer).
type Authorizer interface {
	Authorize(ctx context.Context, u auth.User, action string) error
}

// Options configure the API. Every field is required.
type Options struct {
	Store Store
	Guard *outbound.Guard
	// Remote executes every provider call (*remote.Engine).
	Remote connector.Doer
	// NodeID names this sidecar where ML Commons names an OpenSearch node
	// (worker_node, planning_worker_nodes, stats).
	NodeID string
	// MaxBodyBytes bounds request bodies; larger ones get 413.
	MaxBodyBytes int64
	// MaxInflightBodyBytes bounds the bytes of all ML bodies being read at
	// once (0: no bound); BodyReadTimeout the time a body may take to
	// arrive (0: none).
	MaxInflightBodyBytes int64
	BodyReadTimeout      time.Duration
	// Authorizer decides whether the caller may run a route's action.
	Authorizer Authorizer
	// StoredKeyAllowed lets a secured cluster's config index keep the
	// master key when no key file is configured.
	StoredKeyAllowed bool

	// ModelAccessControl and ConnectorAccessControl are ML Commons'
	// model_access_control_enabled and connector_access_control_enabled as
	// the API starts; ApplySettings changes them.
	ModelAccessControl, ConnectorAccessControl bool

	Batch batch.Settings
	// Ingest configures batch ingestion: its Store, Keys, Guard, NodeID,
	// LeaseTTL, Logger, Registerer and Now are the API's.
	Ingest     ingest.Options
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// API is the ML Commons REST API.
type API struct {
	store Store
	authz Authorizer
	// storedKeyAllowed: see Options.StoredKeyAllowed.
	storedKeyAllowed bool

	// live are the cluster settings in force the API reads itself
	// (livesettings.go).
	live atomic.Pointer[liveSettings]

	connectors *connector.Service
	batch      *batch.Service
	ingest     *ingest.Service
	remote     connector.Doer
	nodeID     string
	maxBody    int64
	// inflight holds the bytes of the ML bodies being read; inflightBytes
	// shows them.
	inflight        *semaphore.Weighted
	inflightBytes   prometheus.Gauge
	bodyReadTimeout time.Duration
	log             *slog.Logger
	now             func() time.Time
	// limiters hold the token buckets of models' rate_limiter and of their
	// controllers' users (ratelimit.go).
	limiters rateLimiters
	// requests and failures count this replica's predictions (_predict and
	// _batch_predict), as ML Commons' ml_request_count and ml_failure_count.
	requests, failures atomic.Int64
	// mlstats are the action-level stats and prediction durations.
	mlstats *mlStats
	// keys is set once Bootstrap has found or created the master key; until
	// then ML requests answer 503.
	keys atomic.Pointer[secrets.Keyring]
}

// New returns the ML Commons API. It serves requests once Bootstrap has
// succeeded.
func New(o Options) *API {
	a := &API{bodyReadTimeout: o.BodyReadTimeout, store: o.Store, authz: o.Authorizer, storedKeyAllowed: o.StoredKeyAllowed,
		remote: o.Remote, nodeID: o.NodeID, maxBody: o.MaxBodyBytes, log: o.Logger, now: o.Now,
		mlstats: newMLStats()}
	a.live.Store(&liveSettings{modelACL: o.ModelAccessControl, connectorACL: o.ConnectorAccessControl, remoteInference: true, controllers: true})
	if o.MaxInflightBodyBytes > 0 {
		a.inflight = semaphore.NewWeighted(max(o.MaxInflightBodyBytes, o.MaxBodyBytes))
	}
	a.inflightBytes = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "mlsidecar_ml_inflight_body_bytes",
		Help: "Bytes of the ML request bodies being read, as counted against --max-inflight-ml-body-bytes.",
	})
	if o.Registerer != nil {
		o.Registerer.MustRegister(a.inflightBytes)
	}
	a.connectors = connector.New(connector.Options{Store: o.Store, Keys: a.keyring, Guard: o.Guard, Deploy: a.autoDeploy})
	ing := o.Ingest
	ing.Store, ing.Keys, ing.Guard, ing.LeaseTTL = o.Store, a.keyring, o.Guard, o.Batch.LeaseTTL
	ing.Logger, ing.Registerer, ing.Now = o.Logger, o.Registerer, o.Now
	a.ingest = ingest.New(ing)
	a.batch = batch.New(batch.Options{Store: o.Store, Binder: throttledBinder{a.connectors, a}, Remote: o.Remote, Settings: o.Batch,
		Ingester: a.ingest, NodeID: o.NodeID, Logger: o.Logger, Registerer: o.Registerer, Now: o.Now})
	return a
}

// Worker is the batch worker of this API, for cmd to run once Bootstrap
// has succeeded; owner must be unique to the process.
func (a *API) Worker(owner string) *batch.Worker { return batch.NewWorker(a.batch, owner) }

// IngestWorker is the ingestion worker of this API, run like Worker.
func (a *API) IngestWorker(owner string) *ingest.Worker { return a.ingest.NewWorker(owner) }

// Ready reports whether the API can serve requests.
func (a *API) Ready() bool { return a.keys.Load() != nil }

func (a *API) keyring() *secrets.Keyring { return a.keys.Load() }

func (a *API) nowMillis() int64 { return a.now().UnixMilli() }
