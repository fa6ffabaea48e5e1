package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// blockSize is the header block the upstream received, counted line by
// line as Netty counts it.
func blockSize(r received) int {
	n := len("Host: ") + len(r.Host)
	for name, vs := range r.Header {
		for _, v := range vs {
			n += len(name) + len(": ") + len(v)
		}
	}
	return n
}

func newLimitedProxy(t *testing.T, upstream string, maxHeaderBytes int, responseTimeout time.Duration) *http.Server {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	p := New(u, NewTransport(TransportOptions{DialTimeout: time.Second, ResponseTimeout: responseTimeout, MaxHeaderBytes: maxHeaderBytes}),
		slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: p, Addr: ln.Addr().String()}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return srv
}

func TestHeaderBlockOverTheLimitIsNotSent(t *testing.T) {
	upstream, got := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {})
	const limit = 8192
	px := newLimitedProxy(t, upstream.URL, limit, 0)
	send := func(pad int) *http.Response {
		return rawRequest(t, px.Addr, fmt.Sprintf("GET /x HTTP/1.1\r\nHost: sidecar.local\r\nX-Pad: %s\r\n\r\n", strings.Repeat("p", pad)))
	}

	// What the proxy adds to a request is fixed; learn it from one that
	// passes, then aim at the limit exactly.
	if resp := send(100); resp.StatusCode != http.StatusOK {
		t.Fatalf("small request: status %d", resp.StatusCode)
	}
	added := blockSize(<-got) - 100
	if resp := send(limit - added); resp.StatusCode != http.StatusOK {
		t.Fatalf("block of exactly %d bytes: status %d, want 200 (the cluster accepts it)", limit, resp.StatusCode)
	}
	if r := <-got; blockSize(r) != limit {
		t.Fatalf("upstream got a block of %d bytes, want %d", blockSize(r), limit)
	}

	resp := send(limit - added + 1)
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("block of %d bytes: status %d, want 431", limit+1, resp.StatusCode)
	}
	e := decodeError(t, resp)
	want := errorCause{Type: "too_long_http_header_exception", Reason: "HTTP header is larger than 8192 bytes."}
	if e.Error.errorCause != want || e.Status != 431 || len(e.Error.RootCause) != 1 {
		t.Errorf("error = %+v, want %+v with status 431", e, want)
	}
	select {
	case r := <-got:
		t.Errorf("upstream received the oversize request %s", r.RequestURI)
	default:
	}
}

// netty answers like OpenSearch's HTTP layer: a request it cannot decode
// (here: one carrying X-Undecodable) gets a keep-alive 400, after which the
// connection is read and discarded forever.
func netty(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					if req.Header.Get("X-Undecodable") != "" {
						body := `{"error":"bad"}`
						fmt.Fprintf(c, "HTTP/1.1 400 Bad Request\r\ncontent-length: %d\r\n\r\n%s", len(body), body)
						io.Copy(io.Discard, c)
						return
					}
					io.WriteString(c, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestNoConnectionReuseAfterAnUndecodableAnswer(t *testing.T) {
	addr := netty(t)
	// No header limit, so the bad request reaches the upstream.
	px := newLimitedProxy(t, "http://"+addr, 0, time.Minute)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

	for i, undecodable := range []bool{false, true, false, false} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+px.Addr+"/x", nil)
		want := http.StatusOK
		if undecodable {
			req.Header.Set("X-Undecodable", "1")
			want = http.StatusBadRequest
		}
		resp, err := client.Do(req)
		if err != nil {
			cancel()
			t.Fatalf("request %d: %v (the proxy reused the connection the upstream no longer reads)", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		cancel()
		if resp.StatusCode != want {
			t.Errorf("request %d: status %d, want %d", i, resp.StatusCode, want)
		}
	}
}

func TestClientFramingErrorIsAClientError(t *testing.T) {
	upstream, _ := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {})
	px, p, _ := newProxy(t, upstream.URL, 0)

	// A chunk size that is not hex, on a connection the client keeps open.
	conn, err := net.Dial("tcp", px.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "POST /_bulk HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", resp.StatusCode)
	}
	if e := decodeError(t, resp); e.Error.Type != "parse_exception" || e.Status != 400 {
		t.Errorf("error = %+v, want parse_exception/400", e)
	}
	var total float64
	for _, r := range []string{reasonTimeout, reasonRefused, reasonReset, reasonDNS, reasonTLS, reasonOther} {
		total += upstreamErrors(p, r)
	}
	if total != 0 {
		t.Errorf("upstream errors = %v for a client's mistake, want 0", total)
	}
}
