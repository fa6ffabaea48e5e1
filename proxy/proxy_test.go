package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// received is what the upstream saw.
type received struct {
	Method     string
	RequestURI string
	Header     http.Header
	Body       string
	Host       string
}

// newUpstream starts a reflecting upstream that records each request and
// answers with handler.
func newUpstream(t *testing.T, handler http.HandlerFunc) (*httptest.Server, chan received) {
	t.Helper()
	got := make(chan received, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- received{Method: r.Method, RequestURI: r.RequestURI, Header: r.Header.Clone(), Body: string(b), Host: r.Host}
		handler(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

// newProxy serves a Proxy to upstream; done receives after each request the
// proxy finished handling.
func newProxy(t *testing.T, upstream string, responseTimeout time.Duration) (*httptest.Server, *Proxy, chan struct{}) {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	p := New(u, NewTransport(TransportOptions{DialTimeout: time.Second, ResponseTimeout: responseTimeout}),
		slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	done := make(chan struct{}, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.ServeHTTP(w, r)
		done <- struct{}{}
	}))
	t.Cleanup(srv.Close)
	return srv, p, done
}

func upstreamErrors(p *Proxy, reason string) float64 {
	return testutil.ToFloat64(p.metrics.upstreamErrors.WithLabelValues(reason))
}

// rawRequest sends bytes as they are, so no client library re-encodes them.
func rawRequest(t *testing.T, addr, request string) *http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestForwardsRequestUnchanged(t *testing.T) {
	upstream, got := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Upstream", "yes")
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"result":"created"}`)
	})
	px, _, _ := newProxy(t, upstream.URL, 0)

	tests := []struct {
		name, method, target string
	}{
		{"encoded slash in id", "PUT", "/idx/_doc/a%2Fb?refresh=true"},
		{"encoded letters kept", "GET", "/idx/_doc/%41%42"},
		{"query kept byte for byte", "GET", "/idx/_search?q=title:%22a+b%22&sort=x;y&filter_path=hits.hits._id,-x&flag&empty="},
		{"plus and unicode in path", "DELETE", "/idx/_doc/a+b%C3%A9"},
		{"dot segments not cleaned", "GET", "/idx/_doc/../x"},
		{"double slash kept", "GET", "//_cat/indices"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"a":1}`
			resp := rawRequest(t, px.Listener.Addr().String(), fmt.Sprintf(
				"%s %s HTTP/1.1\r\nHost: sidecar.local\r\nAuthorization: Basic dXNlcjpwdw==\r\nCookie: security_authentication=abc\r\n"+
					"X-Opaque-Id: req-1\r\nContent-Type: application/json\r\nContent-Encoding: identity\r\nX-Forwarded-For: 10.0.0.1\r\n"+
					"Content-Length: %d\r\n\r\n%s", tt.method, tt.target, len(body), body))
			respBody, _ := io.ReadAll(resp.Body)
			r := <-got

			if r.Method != tt.method {
				t.Errorf("upstream method = %q, want %q", r.Method, tt.method)
			}
			if r.RequestURI != tt.target {
				t.Errorf("upstream request URI = %q, want %q", r.RequestURI, tt.target)
			}
			if r.Body != body {
				t.Errorf("upstream body = %q, want %q", r.Body, body)
			}
			for h, want := range map[string]string{
				"Authorization":     "Basic dXNlcjpwdw==",
				"Cookie":            "security_authentication=abc",
				"X-Opaque-Id":       "req-1",
				"Content-Encoding":  "identity",
				"X-Forwarded-For":   "10.0.0.1, 127.0.0.1",
				"X-Forwarded-Host":  "sidecar.local",
				"X-Forwarded-Proto": "http",
			} {
				if got := r.Header.Get(h); got != want {
					t.Errorf("upstream header %s = %q, want %q", h, got, want)
				}
			}
			if resp.StatusCode != http.StatusCreated {
				t.Errorf("status = %d, want 201", resp.StatusCode)
			}
			if got := resp.Header.Get("X-Upstream"); got != "yes" {
				t.Errorf("response header X-Upstream = %q, want yes", got)
			}
			if string(respBody) != `{"result":"created"}` {
				t.Errorf("response body = %q", respBody)
			}
		})
	}
}

func TestCompressedBodiesPassUntouched(t *testing.T) {
	gz := []byte{0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03}
	upstream, got := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(gz)
	})
	px, _, _ := newProxy(t, upstream.URL, 0)

	req, _ := http.NewRequest("POST", px.URL+"/_bulk", bytes.NewReader(gz))
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Accept-Encoding", "gzip")
	// A transport that neither adds Accept-Encoding nor decompresses.
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	r := <-got
	if r.Body != string(gz) || r.Header.Get("Content-Encoding") != "gzip" || r.Header.Get("Accept-Encoding") != "gzip" {
		t.Errorf("upstream got body %x, Content-Encoding %q, Accept-Encoding %q", r.Body, r.Header.Get("Content-Encoding"), r.Header.Get("Accept-Encoding"))
	}
	if !bytes.Equal(body, gz) || resp.Header.Get("Content-Encoding") != "gzip" {
		t.Errorf("client got body %x with Content-Encoding %q, want the upstream's gzip bytes", body, resp.Header.Get("Content-Encoding"))
	}
}

func TestStreamsChunkedResponses(t *testing.T) {
	release := make(chan struct{})
	upstream, _ := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "second\n")
	})
	px, _, _ := newProxy(t, upstream.URL, 0)

	resp, err := http.Get(px.URL + "/_stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	// The first chunk must arrive while the upstream still holds the rest.
	line, err := br.ReadString('\n')
	if err != nil || line != "first\n" {
		t.Fatalf("first line = %q, %v", line, err)
	}
	close(release)
	rest, _ := io.ReadAll(br)
	if string(rest) != "second\n" {
		t.Errorf("rest = %q, want second", rest)
	}
	if resp.TransferEncoding == nil || resp.TransferEncoding[0] != "chunked" {
		t.Errorf("TransferEncoding = %v, want chunked", resp.TransferEncoding)
	}
}

func TestStreamsRequestBodies(t *testing.T) {
	// The upstream answers after reading only the first bytes; if the proxy
	// buffered the whole body first, the client's writer would never unblock.
	firstBytes := make(chan struct{})
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 5)
		io.ReadFull(r.Body, buf)
		close(firstBytes)
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%d", n+5)
	}))
	t.Cleanup(upstream.Close)
	px, _, _ := newProxy(t, upstream.URL, 0)

	pr, pw := io.Pipe()
	go func() {
		io.WriteString(pw, "hello")
		select {
		case <-firstBytes:
		case <-time.After(10 * time.Second):
			pw.CloseWithError(errors.New("upstream never saw the first bytes: body was buffered"))
			return
		}
		io.WriteString(pw, strings.Repeat("x", 1<<20))
		pw.Close()
	}()
	resp, err := http.Post(px.URL+"/_bulk", "application/x-ndjson", pr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if want := fmt.Sprint(5 + 1<<20); string(b) != want {
		t.Errorf("upstream read %s bytes, want %s", b, want)
	}
}

func decodeError(t *testing.T, resp *http.Response) errorBody {
	t.Helper()
	var e errorBody
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatalf("error body is not OpenSearch JSON: %v", err)
	}
	return e
}

func TestUpstreamDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	px, p, _ := newProxy(t, "http://"+addr, 0)

	resp, err := http.Get(px.URL + "/_cluster/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("status = %d, want 502", resp.StatusCode)
	}
	resp.Body = io.NopCloser(bytes.NewReader(raw))
	e := decodeError(t, resp)
	want := errorCause{Type: "bad_gateway_exception", Reason: "the OpenSearch cluster cannot be reached"}
	if diff := cmp.Diff(want, e.Error.errorCause); diff != "" || e.Status != 502 || len(e.Error.RootCause) != 1 {
		t.Errorf("error body %s (-want +got):\n%s", raw, diff)
	}
	_, port, _ := net.SplitHostPort(addr)
	if strings.Contains(string(raw), port) || strings.Contains(string(raw), "127.0.0.1") {
		t.Errorf("error body %s names the upstream address", raw)
	}
	if got := upstreamErrors(p, "refused"); got != 1 {
		t.Errorf("upstream errors {reason=refused} = %v, want 1", got)
	}
}

func TestUpstreamTimeout(t *testing.T) {
	release := make(chan struct{})
	upstream, _ := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { <-release })
	defer close(release)
	px, p, _ := newProxy(t, upstream.URL, 100*time.Millisecond)

	resp, err := http.Get(px.URL + "/slow")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("status = %d, want 504", resp.StatusCode)
	}
	if e := decodeError(t, resp); e.Error.Type != "gateway_timeout_exception" || e.Status != 504 {
		t.Errorf("error = %+v, want gateway_timeout_exception/504", e)
	}
	if got := upstreamErrors(p, "timeout"); got != 1 {
		t.Errorf("upstream errors {reason=timeout} = %v, want 1", got)
	}
}

func TestClientGoneIsNotAnUpstreamError(t *testing.T) {
	arrived := make(chan struct{})
	release := make(chan struct{})
	upstream, _ := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
	})
	defer close(release)
	px, p, done := newProxy(t, upstream.URL, 0)

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", px.URL+"/slow", nil)
	errc := make(chan error, 1)
	go func() {
		_, err := http.DefaultClient.Do(req)
		errc <- err
	}()
	<-arrived
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("client error = %v, want context.Canceled", err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("proxy did not finish the abandoned request")
	}
	var total float64
	for _, r := range []string{reasonTimeout, reasonRefused, reasonReset, reasonDNS, reasonTLS, reasonOther} {
		total += upstreamErrors(p, r)
	}
	if total != 0 {
		t.Errorf("upstream errors = %v after a client left, want 0", total)
	}
}
