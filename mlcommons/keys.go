package mlcommons

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/secrets"
)

// Bootstrap creates the sidecar's indices and loads the credential keys,
// retrying until it succeeds (the cluster may not be up yet) or ctx is done;
// the API answers 503 until then. keyFile is the contents of
// --master-key-file, empty when none is configured.
func (a *API) Bootstrap(ctx context.Context, keyFile []byte) error {
	backoff := 500 * time.Millisecond
	for {
		err := a.store.EnsureIndices(ctx)
		if err == nil {
			var keys *secrets.Keyring
			if keys, err = a.loadKeyring(ctx, keyFile); err == nil {
				a.keys.Store(keys)
				a.log.Info("ML Commons API ready")
				return nil
			}
		}
		a.log.Warn("ML Commons API not ready yet; retrying", "err", err, "retry_in", backoff.String())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// loadKeyring builds the credential keyring. Configured keys (a key file's
// contents, newest last) encrypt; a key stored in the config index, if any,
// still decrypts what it encrypted. Without configured keys the stored key is
// used, and created on first start (several replicas may race: the first
// writer wins and the others read its key).
func (a *API) loadKeyring(ctx context.Context, keyFile []byte) (*secrets.Keyring, error) {
	var configured []secrets.Key
	if len(keyFile) > 0 {
		var err error
		if configured, err = secrets.ParseKeys(keyFile); err != nil {
			return nil, fmt.Errorf("master-key-file: %w", err)
		}
	}
	stored, err := a.readStoredKey(ctx)
	if err != nil && !errors.Is(err, indexstore.ErrNotFound) {
		return nil, err
	}
	if len(configured) == 0 && !a.storedKeyAllowed {
		// On a secured cluster a key in the config index is readable by
		// anyone with read access to it (readall): only by explicit choice.
		secured, err := a.store.SecurityEnabled(ctx)
		if err != nil {
			return nil, err
		}
		if secured {
			return nil, errors.New("the cluster has the security plugin and no --master-key-file is configured: " +
				"a master key kept in the config index is readable by every role that reads all indices; " +
				"configure --master-key-file, or --allow-stored-master-key to keep the key in the index anyway")
		}
	}
	if len(configured) > 0 {
		keys := configured
		if stored != nil && !hasKeyID(configured, stored.ID) {
			keys = append([]secrets.Key{*stored}, configured...)
		}
		return secrets.NewKeyring(keys...)
	}
	if stored == nil {
		k, err := secrets.GenerateKey("stored-1")
		if err != nil {
			return nil, err
		}
		doc := indexstore.MasterKey{MasterKey: k.Encode(), KeyID: k.ID, CreateTime: a.nowMillis()}
		_, err = a.store.MasterKeys().Create(ctx, indexstore.MasterKeyID, &doc, indexstore.WaitForSeen)
		switch {
		case errors.Is(err, indexstore.ErrConflict):
			if stored, err = a.readStoredKey(ctx); err != nil {
				return nil, err
			}
		case err != nil:
			return nil, fmt.Errorf("storing the master key: %w", err)
		default:
			stored = &k
		}
	}
	a.log.Warn("no --master-key-file: credentials are encrypted with a key kept in the config index, as ML Commons does; " +
		"whoever can read that index can decrypt them. Configure --master-key-file for keys kept outside the cluster.")
	return secrets.NewKeyring(*stored)
}

func (a *API) readStoredKey(ctx context.Context) (*secrets.Key, error) {
	doc, _, err := a.store.MasterKeys().Get(ctx, indexstore.MasterKeyID)
	if err != nil {
		return nil, err
	}
	k, err := secrets.DecodeKey(doc.KeyID, doc.MasterKey)
	if err != nil {
		return nil, fmt.Errorf("stored master key: %w", err)
	}
	return &k, nil
}

func hasKeyID(keys []secrets.Key, id string) bool {
	for _, k := range keys {
		if k.ID == id {
			return true
		}
	}
	return false
}
