package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/opensearch-project/opensearch-go/v4/opensearchapi"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
	"github.com/mlsidecar/mlsidecar/mlcommons/secrets"
	"github.com/mlsidecar/mlsidecar/mlcommons/template"
)

// Store is what ingestion needs of indexstore.
type Store interface {
	Tasks() indexstore.Repo[indexstore.Task]
	Connectors() indexstore.Repo[indexstore.Connector]
	RefreshTasks(ctx context.Context) error
	CountOpenIngestTasks(ctx context.Context) (int64, error)
	ScanDueIngestTasks(ctx context.Context, now time.Time, pageSize int, visit func([]indexstore.Hit[indexstore.Task]) error) error
	PutIngestFailures(ctx context.Context, fs []indexstore.IngestFailure) error
	ScanIngestFailures(ctx context.Context, taskID string, pageSize int, visit func([]indexstore.IngestFailure) error) error
	CallerClient(header http.Header) (*opensearchapi.Client, error)
}

// Guard is the outbound guard every download passes (*outbound.Guard).
type Guard interface {
	Transport() *http.Transport
	CheckURL(rawURL string) error
	CheckRedirect(req *http.Request, via []*http.Request) error
}

// Options configure a Service.
type Options struct {
	Store Store
	Keys  func() *secrets.Keyring
	Guard Guard
	// OpenAIBaseURL is where openAI sources without a connector are read
	// (OpenAIBaseURL when empty).
	OpenAIBaseURL string
	// S3Endpoint overrides the S3 endpoint (an S3-compatible store),
	// addressed path-style.
	S3Endpoint string
	// LeaseTTL is how long a replica holds a task between checkpoints; a
	// replica that dies loses its tasks to the others after this.
	LeaseTTL time.Duration
	// Concurrency bounds the ingestions one replica runs at once (2).
	Concurrency int
	// Writer tunes the bulk writes (zero values: the Writer's defaults).
	Writer     WriterOptions
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// Dynamic are the ingestion settings a cluster may change at run time.
type Dynamic struct {
	// Enabled is offline_batch_ingestion_enabled.
	Enabled bool
	// MaxTasks is max_batch_ingestion_tasks.
	MaxTasks int
}

// Service is the lifecycle of BATCH_INGEST tasks: submission, the runs
// that read the sources and write the documents, checkpoints and leases.
type Service struct {
	o       Options
	dynamic atomic.Pointer[Dynamic]
	http    *http.Client
	metrics *metrics
	// wake tells this replica's worker a task was just submitted.
	wake chan struct{}
}

// New returns a Service.
func New(o Options) *Service {
	if o.Concurrency <= 0 {
		o.Concurrency = 2
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &Service{o: o, metrics: newMetrics(o.Registerer), wake: make(chan struct{}, 1)}
	s.dynamic.Store(&Dynamic{Enabled: true, MaxTasks: 100})
	s.http = &http.Client{Transport: o.Guard.Transport(), CheckRedirect: o.Guard.CheckRedirect}
	return s
}

// SetDynamic puts new Dynamic settings in force.
func (s *Service) SetDynamic(d Dynamic) { s.dynamic.Store(&d) }

// errDisabled is ML Commons' answer while offline batch ingestion is off
// (an IllegalStateException, 500).
var errDisabled = mlerr.IllegalState("Offline batch ingestion is currently disabled. " +
	"To enable it, update the setting \"plugins.ml_commons.offline_batch_ingestion_enabled\" to true.")

// errTooMany is ML Commons' 429 over max_batch_ingestion_tasks.
var errTooMany = mlerr.Status(http.StatusTooManyRequests,
	"Exceeded maximum limit for BATCH_INGEST tasks. To increase the limit, update the plugins.ml_commons.max_batch_ingestion_tasks setting.")

// Submitted is the answer to a submission.
type Submitted struct {
	TaskID string `json:"task_id"`
	Type   string `json:"task_type"`
	Status string `json:"status"`
}

// Submit checks a _batch_ingestion body and stores its task, to be run by
// a worker. caller are the caller's credentials (Authorization, Cookie):
// the documents are written with them.
func (s *Service) Submit(ctx context.Context, body []byte, caller http.Header, owner *indexstore.Owner) (*Submitted, error) {
	in, err := ParseInput(body)
	if err != nil {
		return nil, err
	}
	if !s.dynamic.Load().Enabled {
		return nil, errDisabled
	}
	if err := in.Validate(); err != nil {
		return nil, err
	}
	st := &indexstore.IngestState{}
	if in.ConnectorID != "" && len(in.Credential) == 0 {
		if err := s.fromConnector(ctx, in.ConnectorID, in.DataSource.Kind(), st); err != nil {
			return nil, err
		}
	} else if st.Credential, err = s.o.Keys().EncryptMap(in.Credential); err != nil {
		return nil, err
	}
	if st.BaseURL == "" && in.DataSource.Kind() == TypeOpenAI {
		st.BaseURL = s.o.OpenAIBaseURL
	}
	if st.Request, err = withoutCredential(body); err != nil {
		return nil, err
	}
	return s.create(ctx, indexstore.NewID(), st, caller, owner, false)
}

// create stores a new task. A task of the caller's own is counted against
// max_batch_ingestion_tasks and given a new id. A job's ingestion (jobs)
// is not counted, the job was: its id is fixed by the job, and a task
// already stored under it is the one wanted, so it is created once however
// many replicas ask.
func (s *Service) create(ctx context.Context, id string, st *indexstore.IngestState, caller http.Header, owner *indexstore.Owner, job bool) (*Submitted, error) {
	if !job {
		if err := s.checkLimit(ctx); err != nil {
			return nil, err
		}
	}
	if st.Caller == "" {
		sealed, err := s.sealCaller(caller)
		if err != nil {
			return nil, err
		}
		st.Caller = sealed
	}
	now := s.o.Now()
	st.NextRun = now.UnixMilli()
	t := &indexstore.Task{TaskType: indexstore.TaskBatchIngest, State: indexstore.TaskCreated, IsAsync: true,
		CreateTime: now.UnixMilli(), LastUpdateTime: now.UnixMilli(), Owner: owner, Ingest: st,
		IngestCounts: &indexstore.IngestCounts{}}
	var err error
	if job {
		_, err = s.o.Store.Tasks().Create(ctx, id, t, indexstore.NoWait)
	} else {
		_, err = s.o.Store.Tasks().InsertAs(ctx, id, t, indexstore.NoWait)
	}
	switch {
	case job && errors.Is(err, indexstore.ErrConflict):
		// Another replica created it.
	case err != nil:
		return nil, err
	default:
		s.metrics.tasks.WithLabelValues("created").Inc()
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	return &Submitted{TaskID: id, Type: indexstore.TaskBatchIngest, Status: indexstore.TaskCreated}, nil
}

// checkLimit refuses a task over max_batch_ingestion_tasks, counted for
// real (ML Commons counts CREATED and RUNNING BATCH_INGEST tasks).
func (s *Service) checkLimit(ctx context.Context) error {
	limit := s.dynamic.Load().MaxTasks
	if err := s.o.Store.RefreshTasks(ctx); err != nil {
		return err
	}
	n, err := s.o.Store.CountOpenIngestTasks(ctx)
	if err != nil {
		return err
	}
	if n >= int64(limit) {
		return errTooMany
	}
	return nil
}

// msgConnectorCredential prefixes ML Commons' 400 when a connector's
// credential cannot be used.
const msgConnectorCredential = "Fail to fetch credentials from the connector in the batch ingestion input: "

// fromConnector takes the credential (and region) of a connector, and for
// OpenAI the scheme and host of its batch action.
func (s *Service) fromConnector(ctx context.Context, id, kind string, st *indexstore.IngestState) error {
	fail := func(reason string) error {
		return mlerr.Status(http.StatusBadRequest, "%s", msgConnectorCredential+reason)
	}
	if !indexstore.ValidID(id) {
		return fail("Failed to find connector")
	}
	c, _, err := s.o.Store.Connectors().Get(ctx, id)
	if errors.Is(err, indexstore.ErrNotFound) {
		return fail("Failed to find connector")
	}
	if err != nil {
		return err
	}
	cred, err := s.o.Keys().DecryptMap(c.Credential)
	if err != nil {
		return fail("the credential does not decrypt")
	}
	if r := c.Parameters["region"]; r != "" {
		cred[CredentialRegion] = r
	}
	if st.Credential, err = s.o.Keys().EncryptMap(cred); err != nil {
		return err
	}
	if kind == TypeOpenAI {
		st.BaseURL, err = baseURLOf(c)
		if err != nil {
			return fail(err.Error())
		}
	}
	return nil
}

// baseURLOf is the scheme and host of a connector's batch action (or its
// first action).
func baseURLOf(c *indexstore.Connector) (string, error) {
	act := c.Action(indexstore.ActionBatchPredict)
	if act == nil && len(c.Actions) > 0 {
		act = &c.Actions[0]
	}
	if act == nil {
		return "", errors.New("the connector has no action to take the OpenAI host from")
	}
	raw, err := template.URL(act.URL, c.Parameters)
	if err != nil {
		return "", err
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("the connector's action URL has no host")
	}
	return u.Scheme + "://" + u.Host, nil
}

// withoutCredential is the body to keep in the task: the request as sent,
// its credential removed.
func withoutCredential(body []byte) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, mlerr.Parse("%v", err)
	}
	delete(m, "credential")
	return json.Marshal(m)
}

// callerHeaders are the caller's headers the cluster authenticates by.
var callerHeaders = []string{"Authorization", "Cookie"}

// sealCaller encrypts the caller's credentials; "" when there are none (a
// cluster without security).
func (s *Service) sealCaller(h http.Header) (string, error) {
	keep := http.Header{}
	for _, k := range callerHeaders {
		for _, v := range h.Values(k) {
			keep.Add(k, v)
		}
	}
	if len(keep) == 0 {
		return "", nil
	}
	b, err := json.Marshal(keep)
	if err != nil {
		return "", err
	}
	return s.o.Keys().Encrypt(string(b))
}

// openCaller decrypts what sealCaller made.
func (s *Service) openCaller(sealed string) (http.Header, error) {
	h := http.Header{}
	if sealed == "" {
		return h, nil
	}
	plain, err := s.o.Keys().Decrypt(sealed)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(plain), &h); err != nil {
		return nil, err
	}
	return h, nil
}

// SealCaller is sealCaller for a batch job asked to ingest its results:
// its caller's credentials wait in the batch task until the job completes.
func (s *Service) SealCaller(h http.Header) (string, error) { return s.sealCaller(h) }
