package mlcommons

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/crypto"
)

// masterKeyDoc is the config document that holds the key mlsidecar creates
// when none is configured, as ML Commons keeps its master_key.
const masterKeyDoc = "master_key"

type storedKey struct {
	MasterKey  string `json:"master_key"`
	KeyID      string `json:"key_id"`
	CreateTime int64  `json:"create_time"`
}

// LoadKeyring builds the credential keyring. Configured keys (a key file's
// contents, newest last) encrypt; a key stored in the config index, if any,
// still decrypts what it encrypted. Without configured keys the stored key is
// used, and created on first start (several replicas may race: the first
// writer wins and the others read its key).
func LoadKeyring(ctx context.Context, s Store, keyFile []byte, now func() int64, log *slog.Logger) (*crypto.Keyring, error) {
	var configured []crypto.Key
	if len(keyFile) > 0 {
		var err error
		if configured, err = crypto.ParseKeys(keyFile); err != nil {
			return nil, fmt.Errorf("master-key-file: %w", err)
		}
	}
	stored, err := readStoredKey(ctx, s)
	if err != nil && !errors.Is(err, indexstore.ErrNotFound) {
		return nil, err
	}
	if len(configured) > 0 {
		keys := configured
		if stored != nil && !hasKeyID(configured, stored.ID) {
			keys = append([]crypto.Key{*stored}, configured...)
		}
		return crypto.NewKeyring(keys...)
	}
	if stored == nil {
		k, err := crypto.GenerateKey("stored-1")
		if err != nil {
			return nil, err
		}
		_, err = s.Create(ctx, indexstore.Config, masterKeyDoc, storedKey{MasterKey: k.Encode(), KeyID: k.ID, CreateTime: now()}, true)
		switch {
		case errors.Is(err, indexstore.ErrConflict):
			if stored, err = readStoredKey(ctx, s); err != nil {
				return nil, err
			}
		case err != nil:
			return nil, fmt.Errorf("storing the master key: %w", err)
		default:
			stored = &k
		}
	}
	log.Warn("no --master-key-file: credentials are encrypted with a key kept in the config index, as ML Commons does; " +
		"whoever can read that index can decrypt them. Configure --master-key-file for keys kept outside the cluster.")
	return crypto.NewKeyring(*stored)
}

func readStoredKey(ctx context.Context, s Store) (*crypto.Key, error) {
	doc, _, err := load[storedKey](ctx, s, indexstore.Config, masterKeyDoc, indexstore.ErrNotFound)
	if err != nil {
		return nil, err
	}
	k, err := crypto.DecodeKey(doc.KeyID, doc.MasterKey)
	if err != nil {
		return nil, fmt.Errorf("stored master key: %w", err)
	}
	return &k, nil
}

func hasKeyID(keys []crypto.Key, id string) bool {
	for _, k := range keys {
		if k.ID == id {
			return true
		}
	}
	return false
}
