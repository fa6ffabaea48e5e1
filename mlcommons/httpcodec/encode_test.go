package httpcodec

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// TestNegotiate mirrors HttpContentCompressor.determineWrapper
// (netty codec-http), the compressor OpenSearch installs.
func TestNegotiate(t *testing.T) {
	tests := []struct{ accept, want string }{
		{"", ""},
		{"identity", ""},
		{"gzip", "gzip"},
		{"deflate", "deflate"},
		{"gzip, deflate, br", "gzip"},
		{"deflate, gzip", "gzip"},                // gzip wins ties
		{"gzip;q=0.5, deflate;q=0.8", "deflate"}, // higher q wins
		{"gzip;q=0.8, deflate;q=0.5", "gzip"},
		{"gzip;q=0", ""},
		{"gzip;q=0, deflate", "deflate"},
		{"gzip; q=0.001", "gzip"},
		{"gzip;q=abc", ""},      // unparsable q counts as 0
		{"gzip;q=1.0f", "gzip"}, // Java float syntax
		{"gzip;q=Infinity", "gzip"},
		{"*", "gzip"},
		{"*;q=0", ""},
		{"gzip;q=0, *", "deflate"}, // "*" stands for the coding not named
		{"gzip;q=0, deflate;q=0, *", ""},
		{"br, *", "gzip"},
		{"x-gzip", "gzip"}, // substring match
		{"GZIP", ""},       // case-sensitive, as Netty
		{"br", ""},
		{"gzip;q=0.5, gzip;q=0", "gzip"}, // the highest q of a name counts
	}
	for _, tt := range tests {
		t.Run(tt.accept, func(t *testing.T) {
			if got := Negotiate(tt.accept); got != tt.want {
				t.Errorf("Negotiate(%q) = %q, want %q", tt.accept, got, tt.want)
			}
		})
	}
}

func inflate(t *testing.T, coding string, b []byte) []byte {
	t.Helper()
	var zr io.Reader
	var err error
	switch coding {
	case "gzip":
		zr, err = gzip.NewReader(bytes.NewReader(b))
	case "deflate":
		zr, err = zlib.NewReader(bytes.NewReader(b)) // zlib-wrapped, as Netty sends
	default:
		return b
	}
	if err != nil {
		t.Fatalf("%s answer does not decode: %v", coding, err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s answer does not decode: %v", coding, err)
	}
	return out
}

func TestWrite(t *testing.T) {
	body := bytes.Repeat([]byte(`{"model_id":"abc","status":"CREATED"}`), 20)
	tests := []struct {
		name         string
		method       string
		proto        string
		accept       []string
		status       int
		body         []byte
		preEncoded   bool
		wantEncoding string
		wantBody     bool
	}{
		{name: "gzip", accept: []string{"gzip"}, wantEncoding: "gzip", wantBody: true},
		{name: "deflate", accept: []string{"deflate"}, wantEncoding: "deflate", wantBody: true},
		{name: "two headers joined", accept: []string{"br", "deflate"}, wantEncoding: "deflate", wantBody: true},
		{name: "no Accept-Encoding", wantBody: true},
		{name: "gzip refused", accept: []string{"gzip;q=0"}, wantBody: true},
		{name: "identity", accept: []string{"identity"}, wantBody: true},
		{name: "star", accept: []string{"*"}, wantEncoding: "gzip", wantBody: true},
		{name: "error answers compressed too", accept: []string{"gzip"}, status: 404, wantEncoding: "gzip", wantBody: true},
		{name: "tiny body still compressed", accept: []string{"gzip"}, body: []byte("{}"), wantEncoding: "gzip", wantBody: true},
		{name: "empty body", accept: []string{"gzip"}, body: []byte{}, wantBody: true},
		{name: "HEAD", method: http.MethodHead, accept: []string{"gzip"}},
		{name: "HTTP/1.0", proto: "HTTP/1.0", accept: []string{"gzip"}, wantBody: true},
		{name: "already encoded", accept: []string{"gzip"}, preEncoded: true, wantEncoding: "identity", wantBody: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			r := httptest.NewRequest(method, "/_plugins/_ml/models/abc", nil)
			if tt.proto == "HTTP/1.0" {
				r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.0", 1, 0
			}
			for _, a := range tt.accept {
				r.Header.Add("Accept-Encoding", a)
			}
			status := tt.status
			if status == 0 {
				status = http.StatusOK
			}
			want := body
			if tt.body != nil {
				want = tt.body
			}
			w := httptest.NewRecorder()
			w.Header().Set("Content-Type", "application/json; charset=UTF-8")
			if tt.preEncoded {
				w.Header().Set("Content-Encoding", "identity")
			}
			if err := Write(w, r, status, want); err != nil {
				t.Fatal(err)
			}
			res := w.Result()
			if res.StatusCode != status {
				t.Errorf("got status %d, want %d", res.StatusCode, status)
			}
			if got := res.Header.Get("Content-Encoding"); got != tt.wantEncoding {
				t.Errorf("got Content-Encoding %q, want %q", got, tt.wantEncoding)
			}
			if v := res.Header.Values("Vary"); v != nil {
				t.Errorf("got Vary %q; OpenSearch sends none", v)
			}
			if res.Header.Get("Content-Type") != "application/json; charset=UTF-8" {
				t.Error("Content-Type lost")
			}
			sent := w.Body.Bytes()
			cl, _ := strconv.Atoi(res.Header.Get("Content-Length"))
			if !tt.wantBody {
				if len(sent) != 0 {
					t.Errorf("HEAD answer has a body of %d bytes", len(sent))
				}
				if cl != len(want) {
					t.Errorf("HEAD Content-Length %d, want the uncompressed %d", cl, len(want))
				}
				return
			}
			if cl != len(sent) {
				t.Errorf("Content-Length %d, body %d bytes", cl, len(sent))
			}
			if got := inflate(t, tt.wantEncoding, sent); !bytes.Equal(got, want) {
				t.Errorf("got body %q, want %q", got, want)
			}
			if tt.wantEncoding == "gzip" && len(want) > 100 && len(sent) >= len(want) {
				t.Errorf("gzip answer of %d bytes for %d", len(sent), len(want))
			}
		})
	}
}

func TestWriteNoBodyStatuses(t *testing.T) {
	for _, status := range []int{http.StatusNoContent, http.StatusNotModified} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Accept-Encoding", "gzip")
		w := httptest.NewRecorder()
		if err := Write(w, r, status, nil); err != nil {
			t.Fatal(err)
		}
		if w.Code != status || w.Header().Get("Content-Encoding") != "" || w.Body.Len() != 0 {
			t.Errorf("%d: got %d, encoding %q, %d bytes", status, w.Code, w.Header().Get("Content-Encoding"), w.Body.Len())
		}
	}
}

// TestWriteServer: through a real server, Go's client decodes the gzip
// answer transparently, and one that turns that off sees the encoding.
func TestWriteServer(t *testing.T) {
	body := bytes.Repeat([]byte(`{"a":"b"}`), 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		_ = Write(w, r, http.StatusOK, body)
	}))
	defer srv.Close()

	res, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !res.Uncompressed || !bytes.Equal(got, body) {
		t.Errorf("transparent client: uncompressed %v, %d bytes; want the body decoded", res.Uncompressed, len(got))
	}

	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.DisableCompression = true
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	res, err = (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.Header.Get("Content-Encoding") != "gzip" || res.ContentLength != int64(len(raw)) {
		t.Errorf("got encoding %q, length %d for %d bytes", res.Header.Get("Content-Encoding"), res.ContentLength, len(raw))
	}
	if got := inflate(t, "gzip", raw); !bytes.Equal(got, body) {
		t.Error("gzip answer does not decode to the body")
	}
}

func BenchmarkWrite(b *testing.B) {
	body := bytes.Repeat([]byte(`{"model_id":"abc","status":"CREATED","task_id":"xyz"},`), 40)
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Accept-Encoding", "gzip")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		_ = Write(w, r, http.StatusOK, body)
	}
}
