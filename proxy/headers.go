package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
)

// DefaultMaxHeaderBytes is OpenSearch's default http.max_header_size.
const DefaultMaxHeaderBytes = 8 << 10

// HeaderBytes is the size of the header block of a request received by a
// server, counted as OpenSearch (Netty's HttpObjectDecoder) counts it against
// http.max_header_size: the bytes of every "Name: value" line, Host
// included, without line ends and without the request line. Values count as
// Go parsed them, trimmed of surrounding blanks, so a client's extra blanks
// may make the cluster's count a little larger.
func HeaderBytes(r *http.Request) int {
	n := fieldsBytes(r.Header, nil) + lineBytes("Host", r.Host)
	// The server takes Transfer-Encoding out of the header map.
	for _, te := range r.TransferEncoding {
		n += lineBytes("Transfer-Encoding", te)
	}
	return n
}

// fieldsBytes counts the "Name: value" lines of h, except the names in skip.
func fieldsBytes(h http.Header, skip map[string]bool) int {
	n := 0
	for name, vs := range h {
		if name == "Host" || skip[name] {
			continue
		}
		for _, v := range vs {
			n += lineBytes(name, v)
		}
	}
	return n
}

func lineBytes(name, value string) int {
	return len(name) + len(": ") + len(strings.TrimSpace(value))
}

// HeaderTooLargeError is returned for a request whose header block is over
// Max bytes: the cluster would answer it with a 400 and then never read that
// connection again.
type HeaderTooLargeError struct{ Max int }

func (e *HeaderTooLargeError) Error() string {
	return fmt.Sprintf("request header block is larger than %d bytes", e.Max)
}

// WriteHeaderTooLarge answers a request whose header block is over max
// bytes: a 431 with OpenSearch's error type and reason for the same request.
func WriteHeaderTooLarge(w http.ResponseWriter, max int) {
	WriteError(w, http.StatusRequestHeaderFieldsTooLarge, "too_long_http_header_exception",
		fmt.Sprintf("HTTP header is larger than %d bytes.", max))
}

// transport guards the one upstream connection pool: a request the cluster
// cannot decode is never sent, and a connection the cluster may have given
// up on is never used again.
type transport struct {
	next           *http.Transport
	maxHeaderBytes int
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.maxHeaderBytes > 0 && outgoingHeaderBytes(req) > t.maxHeaderBytes {
		if req.Body != nil {
			req.Body.Close() // a RoundTripper always closes the body
		}
		return nil, &HeaderTooLargeError{Max: t.maxHeaderBytes}
	}
	cc := &connCloser{}
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { cc.set(i.Conn) }}
	resp, err := t.next.RoundTrip(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
	if err != nil || !mayLeaveConnUnread(resp) {
		return resp, err
	}
	resp.Body = &closeConnBody{ReadCloser: resp.Body, cc: cc}
	return resp, nil
}

// CloseIdleConnections lets callers (http.Client) drop the idle pool.
func (t *transport) CloseIdleConnections() { t.next.CloseIdleConnections() }

// mayLeaveConnUnread reports answers after which the cluster may not read
// the connection again although it keeps it open: Netty answers a request it
// cannot decode (a header block over http.max_header_size, for one) with a
// keep-alive 400 and then discards every byte that follows, so the next
// request on that connection waits for the response timeout. Oversize and
// rejected-framing answers are treated the same way. A connection that the
// cluster closes itself (Connection: close, HTTP/1.0) is already dropped.
func mayLeaveConnUnread(resp *http.Response) bool {
	if resp.Close {
		return false
	}
	switch resp.StatusCode {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge,
		http.StatusRequestURITooLong, http.StatusRequestHeaderFieldsTooLarge:
		return true
	}
	return false
}

// writtenByTransport are the fields http.Transport writes from the
// request's own fields instead of from its header map.
var writtenByTransport = map[string]bool{"User-Agent": true, "Content-Length": true, "Transfer-Encoding": true, "Trailer": true}

// outgoingHeaderBytes is the header block of req as http.Transport writes
// it, counted as HeaderBytes counts: what the cluster will see.
func outgoingHeaderBytes(req *http.Request) int {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	n := fieldsBytes(req.Header, writtenByTransport) + lineBytes("Host", host)
	ua := "Go-http-client/1.1"
	if vs, ok := req.Header["User-Agent"]; ok {
		ua = ""
		if len(vs) > 0 {
			ua = vs[0]
		}
	}
	if ua != "" {
		n += lineBytes("User-Agent", ua)
	}
	switch {
	case req.ContentLength > 0:
		n += lineBytes("Content-Length", strconv.FormatInt(req.ContentLength, 10))
	case req.ContentLength < 0:
		n += lineBytes("Transfer-Encoding", "chunked")
	}
	if req.Close {
		n += lineBytes("Connection", "close")
	}
	return n
}

// connCloser remembers the connection a request went out on.
type connCloser struct {
	mu   sync.Mutex
	conn net.Conn
}

func (c *connCloser) set(conn net.Conn) {
	c.mu.Lock()
	c.conn = conn
	c.mu.Unlock()
}

func (c *connCloser) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// closeConnBody closes the connection under the answer once the answer has
// been read or abandoned. http.Transport offers no way to keep a connection
// out of its idle pool; a closed one fails its next read at once and is
// dropped. The transport may hand it out in the instant between the body's
// end and that read failing: the request then fails before a byte was
// written and is retried on a new connection when it has no body.
type closeConnBody struct {
	io.ReadCloser
	cc *connCloser
}

func (b *closeConnBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.cc.close()
	}
	return n, err
}

func (b *closeConnBody) Close() error {
	b.cc.close()
	return b.ReadCloser.Close()
}
