package mlcommons

import (
	"net/http"
	"testing"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/secrets"
)

func TestBootstrapKeys(t *testing.T) {
	key, err := secrets.GenerateKey("file-1")
	if err != nil {
		t.Fatal(err)
	}
	fileKeys, err := secrets.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("key file", func(t *testing.T) {
		a := newTestAPIWith(t, testOptions{keyFile: []byte("# rotated yearly\n" + key.ID + ":" + key.Encode() + "\n")})
		if ids := a.store.masterKeys.IDs(); len(ids) != 0 {
			t.Errorf("got stored master keys %v, want none with a key file", ids)
		}
		id := a.createConnector(t, openAIConnector())
		plain, err := fileKeys.DecryptMap(storedConnector(t, a, id).Credential)
		if err != nil || plain["openAI_key"] != openAIKey {
			t.Errorf("credential decrypts with the file's key to %v, %v; want the key", plain, err)
		}
	})
	t.Run("stored key", func(t *testing.T) {
		a := newTestAPI(t)
		doc, _, err := a.store.masterKeys.Get(t.Context(), indexstore.MasterKeyID)
		if err != nil {
			t.Fatalf("no master key stored on first start: %v", err)
		}
		stored, err := secrets.DecodeKey(doc.KeyID, doc.MasterKey)
		if err != nil {
			t.Fatal(err)
		}
		keys, err := secrets.NewKeyring(stored)
		if err != nil {
			t.Fatal(err)
		}
		id := a.createConnector(t, openAIConnector())
		plain, err := keys.DecryptMap(storedConnector(t, a, id).Credential)
		if err != nil || plain["openAI_key"] != openAIKey {
			t.Errorf("credential decrypts with the stored key to %v, %v; want the key", plain, err)
		}
	})
}

func TestNotReadyBeforeBootstrap(t *testing.T) {
	a := newTestAPI(t)
	a.api.keys.Store(nil) // as before Bootstrap succeeded
	wantError(t, a.do(t, http.MethodGet, connectorsPath+"x", ""), 503, "status_exception",
		"mlsidecar is starting: its indices or master key are not ready yet; retry shortly")
}
