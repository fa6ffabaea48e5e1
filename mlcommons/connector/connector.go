// Package connector is everything mlsidecar does with a connector: its
// validation and merge rules, binding a model to its connector (from the
// store, or from the snapshot a batch task keeps), building the provider
// calls of its actions with credentials decrypted, and running predictions.
package connector

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
	"github.com/mlsidecar/mlsidecar/mlcommons/outbound"
	"github.com/mlsidecar/mlsidecar/mlcommons/secrets"
)

// Store is what binding needs of indexstore.
type Store interface {
	Models() indexstore.Repo[indexstore.Model]
	Connectors() indexstore.Repo[indexstore.Connector]
}

// DeployFunc deploys a model (ML Commons' auto-deploy on first use).
type DeployFunc func(ctx context.Context, modelID string) error

// Options configure a Service.
type Options struct {
	Store Store
	// Keys returns the credential keyring; it is called only once start-up
	// has loaded it.
	Keys  func() *secrets.Keyring
	Guard *outbound.Guard
	// Deploy is called for a model that is not deployed when it is bound.
	Deploy DeployFunc
}

// Service validates, binds and calls connectors.
type Service struct {
	store  Store
	keys   func() *secrets.Keyring
	guard  *outbound.Guard
	deploy DeployFunc
}

// New returns a Service.
func New(o Options) *Service {
	return &Service{store: o.Store, keys: o.Keys, guard: o.Guard, deploy: o.Deploy}
}

// Bound is a model with its connector, credentials decrypted: what a call
// to the provider needs.
type Bound struct {
	ModelID   string
	Model     *indexstore.Model // nil when bound from a task snapshot
	Connector *indexstore.Connector
	// ClientKey names the connector version, so calls share a pooled client.
	ClientKey  string
	credential map[string]string
}

// NotFound is the answer for a connector id that does not exist.
func NotFound(id string) error {
	return mlerr.Status(http.StatusNotFound, "Failed to find connector with the provided connector id: %s", id)
}

// Bind loads a model and its connector for a provider call, deploying the
// model first when it is not deployed (ML Commons' auto-deploy).
func (s *Service) Bind(ctx context.Context, modelID string) (*Bound, error) {
	m, _, err := s.store.Models().Get(ctx, modelID)
	if errors.Is(err, indexstore.ErrNotFound) {
		return nil, mlerr.Status(http.StatusNotFound, "Failed to find model")
	}
	if err != nil {
		return nil, err
	}
	if m.IsEnabled != nil && !*m.IsEnabled {
		return nil, mlerr.Status(http.StatusForbidden, "Model is disabled.")
	}
	if m.ModelState != indexstore.ModelDeployed {
		var ds struct {
			AutoDeploy *bool `json:"is_auto_deploy_enabled"`
		}
		_ = json.Unmarshal(m.DeploySetting, &ds)
		if ds.AutoDeploy != nil && !*ds.AutoDeploy {
			return nil, mlerr.IllegalArgument("Auto deployment disabled for this model, please deploy model first Model ID: %s", modelID)
		}
		if err := s.deploy(ctx, modelID); err != nil {
			return nil, err
		}
	}
	b := &Bound{ModelID: modelID, Model: m, Connector: m.Connector,
		ClientKey: "model:" + modelID + ":" + strconv.FormatInt(m.LastUpdatedTime, 10)}
	if m.ConnectorID != "" {
		c, err := s.load(ctx, m.ConnectorID)
		if err != nil {
			return nil, err
		}
		b.Connector = c
		b.ClientKey = "connector:" + m.ConnectorID + ":" + strconv.FormatInt(c.LastUpdatedTime, 10)
	}
	if b.Connector == nil {
		return nil, mlerr.IllegalArgument("model has no connector")
	}
	if b.credential, err = s.decrypt(b.Connector); err != nil {
		return nil, err
	}
	return b, nil
}

func (s *Service) load(ctx context.Context, id string) (*indexstore.Connector, error) {
	c, _, err := s.store.Connectors().Get(ctx, id)
	if errors.Is(err, indexstore.ErrNotFound) {
		return nil, NotFound(id)
	}
	return c, err
}

func (s *Service) decrypt(c *indexstore.Connector) (map[string]string, error) {
	cred, err := s.keys().DecryptMap(c.Credential)
	if err != nil {
		return nil, mlerr.Status(http.StatusInternalServerError, "cannot decrypt the connector's credential: %v", err)
	}
	return cred, nil
}

// Usable checks that a model's connector exists and its credential can be
// decrypted: what deploying a remote model means.
func (s *Service) Usable(ctx context.Context, m *indexstore.Model) error {
	c := m.Connector
	if m.ConnectorID != "" {
		var err error
		if c, err = s.load(ctx, m.ConnectorID); err != nil {
			return err
		}
	}
	if c == nil {
		return mlerr.IllegalArgument("model has no connector")
	}
	_, err := s.decrypt(c)
	return err
}

// FromTask rebuilds what a provider call needs from a batch task's
// snapshot, so a task outlives its model and connector.
func (s *Service) FromTask(t *indexstore.Task) (*Bound, error) {
	if t.Batch == nil || t.Batch.Connector == nil {
		return nil, mlerr.IllegalArgument("The task ID you provided does not have any associated batch job")
	}
	cred, err := s.keys().DecryptMap(t.Batch.Connector.Credential)
	if err != nil {
		return nil, mlerr.Status(http.StatusInternalServerError, "cannot decrypt the batch task's credential: %v", err)
	}
	return &Bound{ModelID: t.ModelID, Connector: t.Batch.Connector, ClientKey: t.Batch.ClientKey, credential: cred}, nil
}
