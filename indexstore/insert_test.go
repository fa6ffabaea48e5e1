package indexstore

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// lossyProxy stands between a Store and the node like a load balancer that
// loses answers: it forwards every request, but the answers to the first
// `lose` creates (PUT .../_create/...) never reach the Store, though each
// create has reached the node.
type lossyProxy struct {
	target *url.URL
	lose   int
	// fail is what the Store gets instead of a lost answer.
	fail func(w http.ResponseWriter)
	// idTo, if not empty, replaces the id of every create and get on the
	// way to the node, so a Store's new id collides with an existing one.
	idTo string

	rp        *httputil.ReverseProxy
	transport *http.Transport

	mu      sync.Mutex
	creates []int // the node's status for each create, in order
}

func newLossyProxy(t *testing.T, p *lossyProxy) *url.URL {
	t.Helper()
	p.target = nodeURL(t)
	p.transport = http.DefaultTransport.(*http.Transport).Clone()
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(p.target)
			pr.Out.URL.RawQuery = pr.In.URL.RawQuery
		},
		Transport: p.transport,
	}
	srv := httptest.NewServer(p)
	t.Cleanup(func() {
		srv.Close()
		p.transport.CloseIdleConnections()
	})
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

var docPath = regexp.MustCompile(`^(/[^/]+/(?:_create|_doc)/)[^/]+$`)

func (p *lossyProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	isCreate := r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/_create/")
	if p.idTo != "" && (isCreate || r.Method == http.MethodGet) {
		r.URL.Path = docPath.ReplaceAllString(r.URL.Path, "${1}"+p.idTo)
		r.URL.RawPath = ""
	}
	if !isCreate {
		p.rp.ServeHTTP(w, r)
		return
	}
	out := r.Clone(r.Context())
	out.RequestURI, out.Host = "", ""
	out.URL.Scheme, out.URL.Host = p.target.Scheme, p.target.Host
	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	p.mu.Lock()
	p.creates = append(p.creates, resp.StatusCode)
	lost := len(p.creates) <= p.lose
	p.mu.Unlock()
	if lost {
		p.fail(w)
		return
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body)
}

func (p *lossyProxy) createStatuses() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.creates)
}

// dropConnection closes the connection without an answer.
func dropConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	conn.Close()
}

func answer(status int) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) { http.Error(w, "upstream went away", status) }
}

// TestInsertRetriedWrite is the proof that a retried Insert leaves one
// document: opensearch-go resends a create whose answer was lost, the
// resent create finds the id taken by the first, and Insert recognises its
// own document instead of reporting a conflict or writing a second copy.
func TestInsertRetriedWrite(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		fail    func(http.ResponseWriter)
		refresh Refresh
	}{
		{"connection dropped", dropConnection, NoWait},
		{"connection dropped, wait for searches", dropConnection, WaitForSeen},
		{"502 Bad Gateway", answer(http.StatusBadGateway), NoWait},
		{"503 Service Unavailable", answer(http.StatusServiceUnavailable), WaitForSeen},
		{"504 Gateway Timeout", answer(http.StatusGatewayTimeout), NoWait},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			direct := newStore(t)
			proxy := &lossyProxy{lose: 1, fail: tc.fail}
			s := newStoreAt(t, newLossyProxy(t, proxy), direct.prefix)

			doc := fullModel()
			res, err := s.Models().Insert(ctx, doc, tc.refresh)
			if err != nil {
				t.Fatalf("Insert: %v (creates the node saw: %v)", err, proxy.createStatuses())
			}
			if diff := cmp.Diff([]int{http.StatusCreated, http.StatusConflict}, proxy.createStatuses()); diff != "" {
				t.Errorf("node's answers to the creates (-want +got):\n%s", diff)
			}
			if !idShape.MatchString(res.ID) || res.Result != "created" || res.Version != 1 || res.Index != s.Index(Models) {
				t.Errorf("got write result %+v, want a 20-character id, created, version 1 in %s", res, s.Index(Models))
			}
			if tc.refresh == WaitForSeen {
				// Seen by a search without a refresh of ours.
				if got, err := direct.ModelsInGroup(ctx, doc.ModelGroupID); err != nil || !slices.Equal(got, []string{res.ID}) {
					t.Errorf("ModelsInGroup right after Insert = %v, %v; want [%s]", got, err, res.ID)
				}
			}
			if got := searchIDs(t, direct, Models); !slices.Equal(got, []string{res.ID}) {
				t.Errorf("documents in the index: got %v, want just [%s]", got, res.ID)
			}
			got, v, err := direct.Models().Get(ctx, res.ID)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if v != res.At() {
				t.Errorf("Get: got version %+v, Insert said %+v", v, res.At())
			}
			if diff := cmp.Diff(doc, got); diff != "" {
				t.Errorf("stored document (-inserted +stored):\n%s", diff)
			}
		})
	}
}

// TestInsertRetriesGiveUp: when every answer is lost the caller gets the
// last one after the transport's retries (3), though the first create landed.
func TestInsertRetriesGiveUp(t *testing.T) {
	t.Parallel()
	direct := newStore(t)
	proxy := &lossyProxy{lose: 100, fail: answer(http.StatusServiceUnavailable)}
	s := newStoreAt(t, newLossyProxy(t, proxy), direct.prefix)
	_, err := s.Models().Insert(t.Context(), fullModel(), NoWait)
	var se *StatusError
	if !errors.As(err, &se) || se.Status != http.StatusServiceUnavailable {
		t.Fatalf("got error %v, want a StatusError 503", err)
	}
	want := []int{http.StatusCreated, http.StatusConflict, http.StatusConflict, http.StatusConflict}
	if diff := cmp.Diff(want, proxy.createStatuses()); diff != "" {
		t.Errorf("node's answers to the creates (-want +got):\n%s", diff)
	}
	if got := searchIDs(t, direct, Models); len(got) != 1 {
		t.Errorf("documents in the index: got %v, want one", got)
	}
}

// TestInsertIDTaken: an id that is genuinely taken by another document is
// a conflict, whether or not the answer to the create was lost, and the
// other document stays as it was.
func TestInsertIDTaken(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		lose int
	}{
		{"answer arrives", 0},
		{"answer lost", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			direct := newStore(t)
			taken := NewID()
			theirs := &Model{Name: "theirs", Algorithm: AlgorithmRemote, ModelState: ModelRegistered}
			created, err := direct.Models().Create(ctx, taken, theirs, NoWait)
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			proxy := &lossyProxy{lose: tc.lose, fail: dropConnection, idTo: taken}
			s := newStoreAt(t, newLossyProxy(t, proxy), direct.prefix)

			res, err := s.Models().Insert(ctx, &Model{Name: "ours", Algorithm: AlgorithmRemote, ModelState: ModelRegistered}, NoWait)
			if !errors.Is(err, ErrConflict) {
				t.Fatalf("Insert onto a taken id: got %+v, %v; want %v", res, err, ErrConflict)
			}
			wantCreates := []int{http.StatusConflict}
			if tc.lose > 0 {
				wantCreates = append(wantCreates, http.StatusConflict)
			}
			if diff := cmp.Diff(wantCreates, proxy.createStatuses()); diff != "" {
				t.Errorf("node's answers to the creates (-want +got):\n%s", diff)
			}
			got, v, err := direct.Models().Get(ctx, taken)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if got.Name != "theirs" || v != created.At() {
				t.Errorf("the other document: got %q at %+v, want %q at %+v", got.Name, v, "theirs", created.At())
			}
			if got := searchIDs(t, direct, Models); !slices.Equal(got, []string{taken}) {
				t.Errorf("documents in the index: got %v, want just [%s]", got, taken)
			}
		})
	}
}
