package httpcodec

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func gzipped(t testing.TB, parts ...[]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, p := range parts { // one member each
		zw := gzip.NewWriter(&buf)
		if _, err := zw.Write(p); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func zlibbed(t testing.TB, p []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zlib.NewWriter(&buf)
	_, _ = zw.Write(p)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func deflated(t testing.TB, p []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := flate.NewWriter(&buf, flate.DefaultCompression)
	_, _ = zw.Write(p)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func request(body []byte, encoding ...string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/_plugins/_ml/models/_search", bytes.NewReader(body))
	for _, e := range encoding {
		r.Header.Add("Content-Encoding", e)
	}
	r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return r
}

// decode runs DecodeBody and reads the body the way the ML API does.
func decode(t *testing.T, r *http.Request, limit int64) ([]byte, error) {
	t.Helper()
	if err := DecodeBody(nil, r, limit); err != nil {
		return nil, err
	}
	return io.ReadAll(r.Body)
}

func TestDecodeBody(t *testing.T) {
	doc := []byte(`{"query":{"match_all":{}},"size":10}`)
	tests := []struct {
		name     string
		body     []byte
		encoding []string
		want     []byte
	}{
		{"no encoding", doc, nil, doc},
		{"identity", doc, []string{"identity"}, doc},
		{"empty header", doc, []string{""}, doc},
		{"gzip", gzipped(t, doc), []string{"gzip"}, doc},
		{"x-gzip", gzipped(t, doc), []string{"x-gzip"}, doc},
		{"case and blanks", gzipped(t, doc), []string{" GZip "}, doc},
		{"concatenated gzip members", gzipped(t, doc[:10], doc[10:20], nil, doc[20:]), []string{"gzip"}, doc},
		{"deflate zlib-wrapped", zlibbed(t, doc), []string{"deflate"}, doc},
		{"deflate raw", deflated(t, doc), []string{"deflate"}, doc},
		{"x-deflate", zlibbed(t, doc), []string{"X-Deflate"}, doc},
		{"empty gzip body", nil, []string{"gzip"}, []byte{}},
		{"empty deflate body", nil, []string{"deflate"}, []byte{}},
		{"gzip of nothing", gzipped(t, nil), []string{"gzip"}, []byte{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := request(tt.body, tt.encoding...)
			got, err := decode(t, r, 1<<20)
			if err != nil {
				t.Fatalf("got error %v", err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDecodeBodyHeaders(t *testing.T) {
	doc := []byte(`{"a":1}`)
	r := request(gzipped(t, doc), "gzip")
	if err := DecodeBody(nil, r, 100); err != nil {
		t.Fatal(err)
	}
	if got := r.Header.Values("Content-Encoding"); got != nil {
		t.Errorf("Content-Encoding still %q", got)
	}
	if got := r.Header.Get("Content-Length"); got != "" {
		t.Errorf("Content-Length still %q", got)
	}
	if r.ContentLength != -1 {
		t.Errorf("got ContentLength %d, want -1", r.ContentLength)
	}

	r = request(doc)
	if err := DecodeBody(nil, r, 100); err != nil {
		t.Fatal(err)
	}
	if r.ContentLength != int64(len(doc)) || r.Header.Get("Content-Length") != strconv.Itoa(len(doc)) {
		t.Errorf("an unencoded body lost its length: %d %q", r.ContentLength, r.Header.Get("Content-Length"))
	}
}

func TestDecodeBodyUnsupported(t *testing.T) {
	for _, enc := range [][]string{{"br"}, {"zstd"}, {"snappy"}, {"compress"}, {"gzip, deflate"}, {"gzip", "gzip"}, {"gzip;q=1"}} {
		t.Run(strings.Join(enc, "|"), func(t *testing.T) {
			r := request([]byte("x"), enc...)
			before := r.Body
			err := DecodeBody(nil, r, 100)
			var ue *UnsupportedEncodingError
			if !errors.As(err, &ue) {
				t.Fatalf("got %v, want *UnsupportedEncodingError", err)
			}
			if ue.Encoding != strings.Join(enc, ", ") {
				t.Errorf("got encoding %q", ue.Encoding)
			}
			if r.Body != before || r.Header.Get("Content-Encoding") == "" {
				t.Error("the request was changed")
			}
		})
	}
}

func TestDecodeBodyCorrupt(t *testing.T) {
	doc := bytes.Repeat([]byte(`{"a":"0123456789"}`), 100)
	gz := gzipped(t, doc)
	badCRC := bytes.Clone(gz)
	badCRC[len(badCRC)-6] ^= 0xff
	badSize := bytes.Clone(gz)
	badSize[len(badSize)-2] ^= 0xff
	badZlibSum := zlibbed(t, doc)
	badZlibSum[len(badZlibSum)-1] ^= 0xff
	tests := []struct {
		name, encoding string
		body           []byte
	}{
		{"not gzip", "gzip", []byte(`{"a":1}`)},
		{"one byte", "gzip", []byte{0x1f}},
		{"truncated", "gzip", gz[:len(gz)/2]},
		{"no trailer", "gzip", gz[:len(gz)-8]},
		{"bad crc", "gzip", badCRC},
		{"bad size", "gzip", badSize},
		{"garbage after the member", "gzip", append(bytes.Clone(gz), "junk"...)},
		{"deflate garbage", "deflate", []byte{0xff, 0xff, 0xff, 0xff}},
		{"zlib bad checksum", "deflate", badZlibSum},
		{"zlib truncated", "deflate", zlibbed(t, doc)[:20]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decode(t, request(tt.body, tt.encoding), 1<<20)
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("got %v, want *DecodeError", err)
			}
			if de.Encoding != tt.encoding {
				t.Errorf("got encoding %q, want %q", de.Encoding, tt.encoding)
			}
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				t.Error("a corrupt stream reads as too large")
			}
		})
	}
}

func TestDecodeBodyLimit(t *testing.T) {
	doc := bytes.Repeat([]byte("a"), 1000)
	tests := []struct {
		name     string
		body     []byte
		encoding string
		limit    int64
		wantErr  bool
	}{
		{"identity at the limit", doc, "", 1000, false},
		{"identity over", doc, "", 999, true},
		{"gzip at the limit", gzipped(t, doc), "gzip", 1000, false},
		{"gzip over", gzipped(t, doc), "gzip", 999, true},
		{"gzip members over", gzipped(t, doc[:500], doc[500:]), "gzip", 999, true},
		{"deflate over", zlibbed(t, doc), "deflate", 999, true},
		{"zero limit", gzipped(t, []byte("x")), "gzip", 0, true},
		{"zero limit, empty", gzipped(t, nil), "gzip", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decode(t, request(tt.body, tt.encoding), tt.limit)
			var tooBig *http.MaxBytesError
			if tt.wantErr {
				if !errors.As(err, &tooBig) || tooBig.Limit != tt.limit {
					t.Fatalf("got %v, want *http.MaxBytesError with limit %d", err, tt.limit)
				}
				return
			}
			if err != nil || int64(len(got)) > tt.limit {
				t.Fatalf("got %d bytes, error %v", len(got), err)
			}
		})
	}
}

// countingReader counts the compressed bytes the decoder pulled.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestDecodeBodyBomb: zeros compress about a thousand to one. With a
// 1 MiB limit the decoder stops a little past 1 MiB of output, having read
// a fraction of the compressed bytes, and memory stays near the limit.
func TestDecodeBodyBomb(t *testing.T) {
	member := func(size int) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(make([]byte, size))
		_ = zw.Close()
		return buf.Bytes()
	}
	one := member(16 << 20)
	tests := []struct {
		name string
		bomb []byte
	}{
		{"one member of 16 MiB", one},
		{"256 members of 16 MiB", bytes.Repeat(one, 256)}, // 4 GiB decoded
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const limit = 1 << 20
			src := &countingReader{r: bytes.NewReader(tt.bomb)}
			r := httptest.NewRequest(http.MethodPost, "/", io.NopCloser(src))
			r.Header.Set("Content-Encoding", "gzip")

			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			got, err := decode(t, r, limit)
			runtime.ReadMemStats(&after)

			var tooBig *http.MaxBytesError
			if !errors.As(err, &tooBig) || tooBig.Limit != limit {
				t.Fatalf("got %d bytes and error %v, want *http.MaxBytesError", len(got), err)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
				t.Errorf("decoding allocated %d bytes, want under 8 MiB for a 1 MiB limit", alloc)
			}
			if src.n > len(one)/2 {
				t.Errorf("the decoder read %d compressed bytes (%d in all), want it to stop early", src.n, len(tt.bomb))
			}
			t.Logf("%d compressed bytes, %d read", len(tt.bomb), src.n)
		})
	}
}

// TestDecodeBodyEmptyMembers: a stream of empty gzip members decodes to
// nothing forever; the bound on compressed bytes ends it.
func TestDecodeBodyEmptyMembers(t *testing.T) {
	empty := gzipped(t, nil)
	endless := io.MultiReader(func() []io.Reader {
		rs := make([]io.Reader, 20000)
		for i := range rs {
			rs[i] = bytes.NewReader(empty)
		}
		return rs
	}()...)
	r := httptest.NewRequest(http.MethodPost, "/", endless)
	r.Header.Set("Content-Encoding", "gzip")
	const limit = 1000
	_, err := decode(t, r, limit)
	var tooBig *http.MaxBytesError
	if !errors.As(err, &tooBig) || tooBig.Limit != limit {
		t.Fatalf("got %v, want *http.MaxBytesError", err)
	}
}

type failingReader struct{ err error }

func (f failingReader) Read([]byte) (int, error) { return 0, f.err }

// TestDecodeBodyReadError: the connection failing is not a corrupt stream.
func TestDecodeBodyReadError(t *testing.T) {
	cause := errors.New("i/o timeout")
	for _, enc := range []string{"gzip", "deflate"} {
		t.Run(enc, func(t *testing.T) {
			data := bytes.Repeat([]byte("x"), 5000)
			z := gzipped(t, data)
			if enc == "deflate" {
				z = zlibbed(t, data)
			}
			r := httptest.NewRequest(http.MethodPost, "/", io.MultiReader(bytes.NewReader(z[:len(z)/2]), failingReader{cause}))
			r.Header.Set("Content-Encoding", enc)
			_, err := decode(t, r, 1<<20)
			var de *DecodeError
			if !errors.Is(err, cause) || errors.As(err, &de) {
				t.Fatalf("got %v, want the read error itself", err)
			}
		})
	}
}

type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

func TestDecodeBodyClose(t *testing.T) {
	body := &closeRecorder{Reader: bytes.NewReader(gzipped(t, []byte("x")))}
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.Body = body
	r.Header.Set("Content-Encoding", "gzip")
	if err := DecodeBody(nil, r, 10); err != nil {
		t.Fatal(err)
	}
	if err := r.Body.Close(); err != nil || !body.closed {
		t.Errorf("closing the decoded body did not close the request's: %v", err)
	}
}

// TestDecodeBodyServer runs DecodeBody behind a real server and client:
// a gzip upload reaches the handler decoded, and a bomb is refused while
// the server tells the client to close the connection.
func TestDecodeBodyServer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := DecodeBody(w, r, 1<<16); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		b, err := io.ReadAll(r.Body)
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
		case err != nil:
			http.Error(w, err.Error(), http.StatusBadRequest)
		default:
			_, _ = w.Write(b)
		}
	}))
	defer srv.Close()

	post := func(body []byte, encoding string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
		req.Header.Set("Content-Encoding", encoding)
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { res.Body.Close() })
		return res
	}

	doc := []byte(`{"name":"m"}`)
	res := post(gzipped(t, doc), "gzip")
	got, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || !bytes.Equal(got, doc) {
		t.Errorf("gzip upload: got %d %q, want 200 %q", res.StatusCode, got, doc)
	}

	res = post(gzipped(t, make([]byte, 1<<20)), "gzip")
	if res.StatusCode != http.StatusRequestEntityTooLarge || !res.Close {
		t.Errorf("bomb: got %d, close %v; want 413 and the connection closed", res.StatusCode, res.Close)
	}

	res = post([]byte("x"), "br")
	if res.StatusCode != http.StatusBadRequest {
		t.Errorf("br: got %d, want 400", res.StatusCode)
	}
}

func TestIsZlibHeader(t *testing.T) {
	for _, level := range []int{zlib.NoCompression, zlib.BestSpeed, zlib.DefaultCompression, zlib.BestCompression} {
		var buf bytes.Buffer
		zw, _ := zlib.NewWriterLevel(&buf, level)
		_, _ = zw.Write([]byte("x"))
		_ = zw.Close()
		if b := buf.Bytes(); !isZlibHeader(b[0], b[1]) {
			t.Errorf("level %d: header %x not recognised", level, b[:2])
		}
	}
	for _, h := range [][2]byte{{0x78, 0x00}, {0x1f, 0x8b}, {0x88, 0x1c}, {0x79, 0x9c}} {
		if isZlibHeader(h[0], h[1]) {
			t.Errorf("%x taken for a zlib header", h)
		}
	}
}

func TestDecodeBodyNoBody(t *testing.T) {
	for _, enc := range []string{"", "gzip", "br"} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Content-Encoding", enc)
		if err := DecodeBody(nil, r, 10); err != nil || r.Body != http.NoBody {
			t.Errorf("%q: got error %v, body %T; want the request as it was", enc, err, r.Body)
		}
	}
}

func TestCompressedLimit(t *testing.T) {
	for _, limit := range []int64{0, 1, 1 << 20, 100 << 20, math.MaxInt64 / 2, math.MaxInt64} {
		got := compressedLimit(limit)
		if got < limit || got < 64<<10 {
			t.Errorf("compressedLimit(%d) = %d, want at least the limit and 64 KiB", limit, got)
		}
	}
}
