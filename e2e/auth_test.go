package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Given a cluster with the security plugin and a sidecar with its own
// service account, when ML callers come with good, bad or no credentials,
// then the cluster's verdict stands: rejections pass through unchanged and
// what an accepted caller creates records it as owner. (What each caller may
// do is TestMLCallersAreAuthorizedByTheCluster.)
func TestMLCallersAreAuthenticatedByTheCluster(t *testing.T) {
	sec := startSecurityNode(t)
	pw := passwordFile(t, "svc-E2e-pass1")
	sc := startSidecar(t, "--upstream", sec.url(), "--authentication", "cluster", "--upstream-username", "mlsidecar", "--upstream-password-file", pw,
		"--master-key-file", writeKeys(t, newKey(t, "k1")),
		"--index-prefix", ".e2e-auth-")
	basic := func(user, pass string) map[string]string {
		r, _ := basicAuthHeader(user, pass)
		return map[string]string{"Authorization": r, "Content-Type": "application/json"}
	}

	// No credentials and wrong credentials: the cluster's 401, unchanged.
	for name, h := range map[string]map[string]string{
		"none":  {"Content-Type": "application/json"},
		"wrong": basic("alice", "wrong"),
	} {
		wantStatus, wantHeader, wantBody := do(t, "GET", sec.url()+"/_plugins/_security/authinfo", nil, h)
		status, header, body := do(t, "GET", sc.url+"/_plugins/_ml/connectors/_search", nil, h)
		if status != 401 || status != wantStatus || string(body) != string(wantBody) ||
			header.Get("WWW-Authenticate") != wantHeader.Get("WWW-Authenticate") {
			t.Errorf("%s: sidecar %d %q %s; cluster %d %q %s", name, status, header.Get("WWW-Authenticate"), body,
				wantStatus, wantHeader.Get("WWW-Authenticate"), wantBody)
		}
	}
	if n := strings.Count(sc.logs.String(), "wrong"); n != 0 {
		t.Errorf("logs mention the rejected password %d times", n)
	}

	// Carol (ml_full_access) is accepted; what she creates is hers.
	alice := basic("alice", "alice-E2e-pass1")
	carol := basic("carol", "carol-E2e-pass1")
	status, _, body := do(t, "POST", sc.url+"/_plugins/_ml/connectors/_create", strings.NewReader(docConnector), carol)
	if status != 200 {
		t.Fatalf("carol creates a connector: %d %s", status, body)
	}
	id := strings.Split(strings.Split(string(body), `"connector_id":"`)[1], `"`)[0]
	status, _, body = do(t, "GET", sc.url+"/_plugins/_ml/connectors/"+id, nil, carol)
	if status != 200 || !strings.Contains(string(body), `"owner":{"name":"carol","backend_roles":["ml-admins"],"roles":["ml_full_access"]}`) {
		t.Errorf("connector as carol sees it: %d %s, want owner carol", status, body)
	}
	// A sidecar whose own account may not create its indices answers to
	// the cluster but never becomes ready, and says why.
	alicePW := filepath.Join(t.TempDir(), "alice-password")
	if err := os.WriteFile(alicePW, []byte("alice-E2e-pass1"), 0o600); err != nil {
		t.Fatal(err)
	}
	weak := startSidecarUnready(t, "--upstream", sec.url(), "--authentication", "cluster", "--upstream-username", "alice", "--upstream-password-file", alicePW,
		"--index-prefix", ".e2e-auth-weak-")
	eventually(t, 20*time.Second, "the ML init to have failed at least once", func() bool {
		return strings.Contains(weak.logs.String(), "ML Commons API not ready yet")
	})
	status, _, body = do(t, "GET", weak.internalURL+"/-/ready", nil, nil)
	if status != 503 || !strings.Contains(string(body), "ML Commons indices or master key not ready") {
		t.Errorf("readiness of a sidecar that cannot create its indices: %d %s", status, body)
	}
	if status, _, b := do(t, "GET", weak.url+"/_plugins/_ml/connectors/"+id, nil, alice); status != 503 {
		t.Errorf("ML request before the sidecar is ready: %d %s, want 503", status, b)
	}

	// Without a key file, the master key would sit in the config index of
	// a secured cluster, readable by readall: refused unless allowed.
	keyless := startSidecarUnready(t, "--upstream", sec.url(), "--authentication", "cluster", "--upstream-username", "mlsidecar",
		"--upstream-password-file", pw, "--index-prefix", ".e2e-auth-keyless-")
	eventually(t, 30*time.Second, "the refusal to store the master key", func() bool {
		return strings.Contains(keyless.logs.String(), "no --master-key-file is configured")
	})
	if status := keyless.readyStatus(t); status != 503 {
		t.Errorf("readiness of a secured sidecar without a key file: %d, want 503", status)
	}
	allowed := startSidecar(t, "--upstream", sec.url(), "--authentication", "cluster", "--upstream-username", "mlsidecar",
		"--upstream-password-file", pw, "--index-prefix", ".e2e-auth-stored-key-", "--allow-stored-master-key")
	eventually(t, 10*time.Second, "the warning about the key kept in the index", func() bool {
		return strings.Contains(allowed.logs.String(), "whoever can read that index can decrypt them")
	})

	// The proxy path is untouched: the cluster itself decides.
	if status, _, b := do(t, "GET", sc.url+"/_cluster/health", nil, alice); status != 200 {
		t.Errorf("alice's health through the proxy: %d %s", status, b)
	}
	if status, _, _ := do(t, "GET", sc.url+"/_cluster/health", nil, nil); status != 401 {
		t.Errorf("anonymous health through the proxy: %d, want the cluster's 401", status)
	}
}
