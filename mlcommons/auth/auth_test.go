package auth

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// users is what the fake security plugin knows, by Authorization or Cookie.
var users = map[string]string{
	"Basic YWxpY2U6cHc=":                   `{"user":"User [name=alice]","user_name":"alice","user_requested_tenant":null,"backend_roles":["ml-team"],"custom_attribute_names":[],"roles":["ml_full_access","own_index"],"tenants":{"alice":true},"principal":null,"peer_certificates":"0","sso_logout_url":null}`,
	"Basic Ym9iOnB3":                       `{"user_name":"bob","backend_roles":[],"roles":["ml_readonly_access"]}`,
	"Basic Y2Fyb2w6cHc=":                   `{"user_name":"carol","backend_roles":["b"],"roles":["r"]}`,
	"security_authentication=dave-session": `{"user_name":"dave","backend_roles":["sso"],"roles":["ml_full_access"]}`,
}

const (
	wrongPassword = "Basic YWxpY2U6d3Jvbmc="
	noMLRights    = "Basic ZXZlOnB3"
	forbiddenBody = `{"error":{"root_cause":[{"type":"security_exception","reason":"no permissions for [cluster:admin/opendistro/security/authinfo] and User [name=eve]"}],"type":"security_exception","reason":"no permissions for [cluster:admin/opendistro/security/authinfo] and User [name=eve]"},"status":403}`
	noHandlerBody = `{"error":"no handler found for uri [/_plugins/_security/authinfo] and method [GET]"}`
)

// securityPlugin answers authinfo as the OpenSearch security plugin does.
func securityPlugin(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || r.URL.Path != "/_plugins/_security/authinfo" {
		http.Error(w, "unexpected request "+r.Method+" "+r.URL.Path, http.StatusTeapot)
		return
	}
	switch cred := r.Header.Get("Authorization"); cred {
	case wrongPassword, "":
		if body, ok := users[r.Header.Get("Cookie")]; ok && cred == "" {
			w.Header().Set("Content-Type", "application/json; charset=UTF-8")
			_, _ = io.WriteString(w, body)
			return
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="OpenSearch Security"`)
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, "Unauthorized")
	case noMLRights:
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, forbiddenBody)
	default:
		body, ok := users[cred]
		if !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="OpenSearch Security"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		_, _ = io.WriteString(w, body)
	}
}

func noSecurityPlugin(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(http.StatusBadRequest)
	_, _ = io.WriteString(w, noHandlerBody)
}

// upstream is a fake cluster that counts the authinfo calls it gets and
// keeps the headers of the last one.
type upstream struct {
	*httptest.Server
	calls atomic.Int64
	mu    sync.Mutex
	last  http.Header
}

func newUpstream(t *testing.T, h http.HandlerFunc) *upstream {
	t.Helper()
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.calls.Add(1)
		u.mu.Lock()
		u.last = r.Header.Clone()
		u.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) lastHeader() http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last
}

func mustParse(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// fakeClock is a settable clock, safe for concurrent use.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// seen is what the protected handler saw.
type seen struct {
	User User
	OK   bool
}

// harness runs requests through the middleware in front of a handler that
// records the user it sees.
type harness struct {
	a     *Authenticator
	clock *fakeClock
	reg   *prometheus.Registry
	mu    sync.Mutex
	seen  []seen
	h     http.Handler
}

func newHarness(t *testing.T, upstreamURL string, mod func(*Options)) *harness {
	t.Helper()
	hs := &harness{clock: &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}, reg: prometheus.NewRegistry()}
	o := Options{Upstream: mustParse(t, upstreamURL), Registerer: hs.reg, Now: hs.clock.Now}
	if mod != nil {
		mod(&o)
	}
	hs.a = New(o)
	hs.h = hs.a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok := UserFrom(r.Context())
		hs.mu.Lock()
		hs.seen = append(hs.seen, seen{u, ok})
		hs.mu.Unlock()
		_, _ = io.WriteString(w, "handled")
	}))
	return hs
}

// do sends one request with the given headers (name, value pairs).
func (hs *harness) do(headers ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/_plugins/_ml/models/_search", strings.NewReader(`{}`))
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Add(headers[i], headers[i+1])
	}
	w := httptest.NewRecorder()
	hs.h.ServeHTTP(w, r)
	return w
}

func (hs *harness) seenUsers() []seen {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return append([]seen(nil), hs.seen...)
}

func TestMiddleware(t *testing.T) {
	alice := User{Name: "alice", BackendRoles: []string{"ml-team"}, Roles: []string{"ml_full_access", "own_index"}}
	tests := []struct {
		name       string
		upstream   http.HandlerFunc
		headers    []string
		wantStatus int
		wantHeader http.Header // checked exactly for the listed names
		wantBody   string
		wantSeen   []seen
		wantResult string
		opts       func(*Options)
	}{
		{
			name:       "valid user",
			upstream:   securityPlugin,
			headers:    []string{"Authorization", "Basic YWxpY2U6cHc="},
			wantStatus: http.StatusOK,
			wantBody:   "handled",
			wantSeen:   []seen{{alice, true}},
			wantResult: resultAllowed,
		},
		{
			name:       "cookie-only caller",
			upstream:   securityPlugin,
			headers:    []string{"Cookie", "security_authentication=dave-session"},
			wantStatus: http.StatusOK,
			wantBody:   "handled",
			wantSeen:   []seen{{User{Name: "dave", BackendRoles: []string{"sso"}, Roles: []string{"ml_full_access"}}, true}},
			wantResult: resultAllowed,
		},
		{
			name:       "wrong password",
			upstream:   securityPlugin,
			headers:    []string{"Authorization", wrongPassword},
			wantStatus: http.StatusUnauthorized,
			wantHeader: http.Header{
				"Www-Authenticate": {`Basic realm="OpenSearch Security"`},
				"Content-Type":     {"text/plain; charset=UTF-8"},
			},
			wantBody:   "Unauthorized",
			wantResult: resultRejected,
		},
		{
			name:       "no credentials",
			upstream:   securityPlugin,
			wantStatus: http.StatusUnauthorized,
			wantHeader: http.Header{"Www-Authenticate": {`Basic realm="OpenSearch Security"`}},
			wantBody:   "Unauthorized",
			wantResult: resultRejected,
		},
		{
			name:       "forbidden",
			upstream:   securityPlugin,
			headers:    []string{"Authorization", noMLRights},
			wantStatus: http.StatusForbidden,
			wantHeader: http.Header{"Content-Type": {"application/json; charset=UTF-8"}, "Www-Authenticate": nil},
			wantBody:   forbiddenBody,
			wantResult: resultRejected,
		},
		{
			// Fail closed: without an explicit choice, a cluster that has
			// no authinfo lets nobody in.
			name:       "no security plugin",
			upstream:   noSecurityPlugin,
			headers:    []string{"Authorization", "Basic YWxpY2U6cHc="},
			wantStatus: http.StatusBadGateway,
			wantBody:   badGateway,
			wantResult: resultError,
		},
		{
			// A gateway that hides the security API is no reason to let a
			// caller in either.
			name:       "authinfo not found",
			upstream:   func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) },
			wantStatus: http.StatusBadGateway,
			wantBody:   badGateway,
			wantResult: resultError,
		},
		{
			name:       "unauthenticated by choice",
			upstream:   func(w http.ResponseWriter, r *http.Request) { t.Errorf("authinfo asked: %s", r.URL) },
			opts:       func(o *Options) { o.Unauthenticated = true },
			headers:    []string{"Authorization", "Basic YWxpY2U6cHc="},
			wantStatus: http.StatusOK,
			wantBody:   "handled",
			wantSeen:   []seen{{User{}, true}},
			wantResult: resultAnonymous,
		},
		{
			name: "other bad request",
			upstream: func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, `{"error":"bad"}`, http.StatusBadRequest)
			},
			headers:    []string{"Authorization", "Basic YWxpY2U6cHc="},
			wantStatus: http.StatusBadGateway,
			wantBody:   badGateway,
			wantResult: resultError,
		},
		{
			name:       "upstream 500",
			upstream:   func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) },
			headers:    []string{"Authorization", "Basic YWxpY2U6cHc="},
			wantStatus: http.StatusBadGateway,
			wantHeader: http.Header{"Content-Type": {"application/json; charset=UTF-8"}},
			wantBody:   badGateway,
			wantResult: resultError,
		},
		{
			name: "redirect is not followed",
			upstream: func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/_plugins/_security/authinfo" {
					t.Errorf("redirect followed to %s", r.URL.Path)
				}
				http.Redirect(w, r, "/elsewhere", http.StatusFound)
			},
			headers:    []string{"Authorization", "Basic YWxpY2U6cHc="},
			wantStatus: http.StatusBadGateway,
			wantBody:   badGateway,
			wantResult: resultError,
		},
		{
			name: "200 without user_name",
			upstream: func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, `{"roles":[]}`)
			},
			headers:    []string{"Authorization", "Basic YWxpY2U6cHc="},
			wantStatus: http.StatusBadGateway,
			wantBody:   badGateway,
			wantResult: resultError,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newUpstream(t, tt.upstream)
			hs := newHarness(t, up.URL, tt.opts)
			w := hs.do(tt.headers...)
			if w.Code != tt.wantStatus {
				t.Errorf("got status %d, want %d", w.Code, tt.wantStatus)
			}
			for name, want := range tt.wantHeader {
				if diff := cmp.Diff(want, w.Header().Values(name)); diff != "" {
					t.Errorf("header %s (-want +got):\n%s", name, diff)
				}
			}
			if got := w.Body.String(); got != tt.wantBody {
				t.Errorf("got body %q, want %q", got, tt.wantBody)
			}
			if diff := cmp.Diff(tt.wantSeen, hs.seenUsers()); diff != "" {
				t.Errorf("handler saw (-want +got):\n%s", diff)
			}
			if got := testutil.ToFloat64(hs.a.metrics.checks.WithLabelValues(tt.wantResult)); got != 1 {
				t.Errorf("got %v checks with result %q, want 1", got, tt.wantResult)
			}
		})
	}
}

const badGateway = `{"error":{"root_cause":[{"type":"bad_gateway_exception","reason":"the OpenSearch cluster could not check the caller's credentials"}],"type":"bad_gateway_exception","reason":"the OpenSearch cluster could not check the caller's credentials"},"status":502}`

func TestForwardsOnlyCredentials(t *testing.T) {
	up := newUpstream(t, securityPlugin)
	// User info in the upstream URL must not turn into basic auth for a
	// caller who brought only a cookie.
	withUser := strings.Replace(up.URL, "http://", "http://svc:secret@", 1)
	hs := newHarness(t, withUser, nil)
	w := hs.do(
		"Cookie", "security_authentication=dave-session",
		"X-Forwarded-For", "10.0.0.1",
		"Securitytenant", "global",
		"X-Opaque-Id", "req-1",
		"Content-Type", "application/json",
	)
	if w.Code != http.StatusOK {
		t.Fatalf("got status %d, want 200; body %s", w.Code, w.Body)
	}
	got := up.lastHeader()
	for _, h := range []string{"Authorization", "X-Forwarded-For", "Securitytenant", "X-Opaque-Id", "Content-Type"} {
		if v := got.Values(h); v != nil {
			t.Errorf("upstream got %s: %q, want none", h, v)
		}
	}
	if diff := cmp.Diff([]string{"security_authentication=dave-session"}, got.Values("Cookie")); diff != "" {
		t.Errorf("Cookie (-want +got):\n%s", diff)
	}

	hs.do("Authorization", "Basic YWxpY2U6cHc=", "Cookie", "a=1", "Cookie", "b=2")
	got = up.lastHeader()
	if diff := cmp.Diff([]string{"Basic YWxpY2U6cHc="}, got.Values("Authorization")); diff != "" {
		t.Errorf("Authorization (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"a=1; b=2"}, got.Values("Cookie")); diff != "" {
		t.Errorf("Cookie (-want +got):\n%s", diff)
	}
}

func TestCache(t *testing.T) {
	const (
		alice = "Basic YWxpY2U6cHc="
		bob   = "Basic Ym9iOnB3"
		carol = "Basic Y2Fyb2w6cHc="
	)
	// step is one request and the number of authinfo calls made so far after it.
	type step struct {
		advance   time.Duration
		auth      string
		wantCode  int
		wantCalls int64
	}
	tests := []struct {
		name     string
		upstream http.HandlerFunc
		opts     func(*Options)
		steps    []step
	}{
		{
			name:     "same credentials hit the cache",
			upstream: securityPlugin,
			steps:    []step{{0, alice, 200, 1}, {0, alice, 200, 1}, {29 * time.Second, alice, 200, 1}},
		},
		{
			name:     "different credentials have their own entry",
			upstream: securityPlugin,
			steps:    []step{{0, alice, 200, 1}, {0, bob, 200, 2}, {0, alice, 200, 2}, {0, bob, 200, 2}},
		},
		{
			name:     "entries expire after the TTL",
			upstream: securityPlugin,
			steps:    []step{{0, alice, 200, 1}, {30 * time.Second, alice, 200, 2}, {time.Second, alice, 200, 2}},
		},
		{
			name:     "custom TTL",
			upstream: securityPlugin,
			opts:     func(o *Options) { o.TTL = time.Minute },
			steps:    []step{{0, alice, 200, 1}, {59 * time.Second, alice, 200, 1}, {time.Second, alice, 200, 2}},
		},
		{
			name:     "rejections are kept briefly",
			upstream: securityPlugin,
			steps:    []step{{0, wrongPassword, 401, 1}, {4 * time.Second, wrongPassword, 401, 1}, {time.Second, wrongPassword, 401, 2}},
		},
		{
			name:     "forbidden is kept briefly",
			upstream: securityPlugin,
			steps:    []step{{0, noMLRights, 403, 1}, {4 * time.Second, noMLRights, 403, 1}, {time.Second, noMLRights, 403, 2}},
		},
		{
			name:     "no security plugin is never cached",
			upstream: noSecurityPlugin,
			steps:    []step{{0, alice, 502, 1}, {0, alice, 502, 2}},
		},
		{
			name:     "errors are not cached",
			upstream: func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", http.StatusServiceUnavailable) },
			steps:    []step{{0, alice, 502, 1}, {0, alice, 502, 2}},
		},
		{
			name:     "the least recently used entry is evicted",
			upstream: securityPlugin,
			opts:     func(o *Options) { o.MaxEntries = 2 },
			steps: []step{
				{0, alice, 200, 1}, {0, bob, 200, 2}, {0, carol, 200, 3},
				{0, carol, 200, 3}, {0, bob, 200, 3}, // still cached
				{0, alice, 200, 4}, // evicted by carol; now evicts carol
				{0, bob, 200, 4}, {0, carol, 200, 5},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newUpstream(t, tt.upstream)
			hs := newHarness(t, up.URL, tt.opts)
			for i, s := range tt.steps {
				hs.clock.Advance(s.advance)
				w := hs.do("Authorization", s.auth)
				if w.Code != s.wantCode {
					t.Errorf("step %d: got status %d, want %d", i, w.Code, s.wantCode)
				}
				if got := up.calls.Load(); got != s.wantCalls {
					t.Errorf("step %d: got %d authinfo calls, want %d", i, got, s.wantCalls)
				}
			}
		})
	}
}

func TestCacheMetrics(t *testing.T) {
	up := newUpstream(t, securityPlugin)
	hs := newHarness(t, up.URL, nil)
	hs.do("Authorization", "Basic YWxpY2U6cHc=")
	hs.do("Authorization", "Basic YWxpY2U6cHc=")
	hs.do("Authorization", wrongPassword)
	want := `
# HELP mlsidecar_auth_cache_total Authentication verdict cache lookups, by result.
# TYPE mlsidecar_auth_cache_total counter
mlsidecar_auth_cache_total{result="hit"} 1
mlsidecar_auth_cache_total{result="miss"} 2
# HELP mlsidecar_auth_checks_total ML requests by authentication outcome, from the cache or from the cluster.
# TYPE mlsidecar_auth_checks_total counter
mlsidecar_auth_checks_total{result="allowed"} 2
mlsidecar_auth_checks_total{result="anonymous"} 0
mlsidecar_auth_checks_total{result="error"} 0
mlsidecar_auth_checks_total{result="rejected"} 1
`
	if err := testutil.GatherAndCompare(hs.reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

func TestUnreachableUpstream(t *testing.T) {
	up := httptest.NewServer(http.NotFoundHandler())
	addr := up.Listener.Addr().String()
	up.Close()
	hs := newHarness(t, up.URL, nil)
	for i := range 2 {
		w := hs.do("Authorization", "Basic YWxpY2U6cHc=")
		if w.Code != http.StatusBadGateway {
			t.Errorf("request %d: got status %d, want 502", i, w.Code)
		}
		if got := w.Body.String(); got != badGateway {
			t.Errorf("request %d: got body %q, want %q", i, got, badGateway)
		}
		if strings.Contains(w.Body.String(), addr) || strings.Contains(w.Body.String(), "127.0.0.1") {
			t.Errorf("request %d: body %q names the upstream", i, w.Body)
		}
	}
	if n := hs.a.cache.len(); n != 0 {
		t.Errorf("got %d cache entries, want 0", n)
	}
	if got := testutil.ToFloat64(hs.a.metrics.cache.WithLabelValues(cacheMiss)); got != 2 {
		t.Errorf("got %v cache misses, want 2", got)
	}
}

func TestConcurrentRequests(t *testing.T) {
	release := make(chan struct{})
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		<-release // hold the first answers so that requests pile up
		securityPlugin(w, r)
	})
	hs := newHarness(t, up.URL, nil)
	creds := []string{"Basic YWxpY2U6cHc=", "Basic Ym9iOnB3", "Basic Y2Fyb2w6cHc=", wrongPassword}
	const perCred = 25

	var wg sync.WaitGroup
	codes := make(chan int, len(creds)*perCred)
	for _, c := range creds {
		for range perCred {
			wg.Go(func() { codes <- hs.do("Authorization", c).Code })
		}
	}
	close(release)
	wg.Wait()
	close(codes)

	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	if diff := cmp.Diff(map[int]int{200: 3 * perCred, 401: perCred}, count); diff != "" {
		t.Errorf("status counts (-want +got):\n%s", diff)
	}
	// One flight per set of credentials, then the cache.
	if got, want := up.calls.Load(), int64(len(creds)); got != want {
		t.Errorf("got %d authinfo calls, want %d", got, want)
	}
	names := map[string]int{}
	for _, s := range hs.seenUsers() {
		names[s.User.Name]++
	}
	if diff := cmp.Diff(map[string]int{"alice": perCred, "bob": perCred, "carol": perCred}, names); diff != "" {
		t.Errorf("users seen (-want +got):\n%s", diff)
	}
}

func TestHandlerCannotChangeCachedUser(t *testing.T) {
	up := newUpstream(t, securityPlugin)
	a := New(Options{Upstream: mustParse(t, up.URL)})
	var got []string
	h := a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := UserFrom(r.Context())
		got = append(got, u.Roles[0])
		u.Roles[0] = "all_access"
	}))
	for range 2 {
		r := httptest.NewRequest(http.MethodGet, "/_plugins/_ml/models/x", nil)
		r.Header.Set("Authorization", "Basic YWxpY2U6cHc=")
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	if diff := cmp.Diff([]string{"ml_full_access", "ml_full_access"}, got); diff != "" {
		t.Errorf("roles seen (-want +got):\n%s", diff)
	}
}

func TestUserFromWithoutMiddleware(t *testing.T) {
	if u, ok := UserFrom(httptest.NewRequest(http.MethodGet, "/", nil).Context()); ok {
		t.Errorf("got %+v, true; want false", u)
	}
}

func TestCredentialKeys(t *testing.T) {
	sets := []credentials{
		{},
		{authorization: []string{""}},
		{cookie: []string{""}},
		{authorization: []string{"a"}},
		{cookie: []string{"a"}},
		{authorization: []string{"a", "b"}},
		{authorization: []string{"ab"}},
		{authorization: []string{"a"}, cookie: []string{"b"}},
		{cookie: []string{"a", "b"}},
		{authorization: []string{"a", ""}},
	}
	seenKeys := map[[32]byte]int{}
	for i, c := range sets {
		k := c.key()
		if j, dup := seenKeys[k]; dup {
			t.Errorf("credentials %d and %d share a key", j, i)
		}
		seenKeys[k] = i
		if k != c.key() {
			t.Errorf("credentials %d: key is not stable", i)
		}
	}
}

func TestClientGoesAway(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	hs := newHarness(t, up.URL, nil)
	ctx, cancel := context.WithCancel(t.Context())
	r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/_plugins/_ml/models/x", nil)
	r.Header.Set("Authorization", "Basic YWxpY2U6cHc=")
	w := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		hs.h.ServeHTTP(w, r)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for up.calls.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("authinfo was never called")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if w.Body.Len() != 0 || w.Flushed {
		t.Errorf("got an answer %d %q for a client that went away", w.Code, w.Body)
	}
	if got := testutil.ToFloat64(hs.a.metrics.checks.WithLabelValues(resultError)); got != 0 {
		t.Errorf("got %v errors, want 0", got)
	}
	if got := hs.seenUsers(); len(got) != 0 {
		t.Errorf("handler called with %+v", got)
	}
}
