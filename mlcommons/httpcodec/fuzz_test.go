package httpcodec

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzDecodeBody: any body under any Content-Encoding decodes, or fails
// with one of the package's errors or the limit, never past the limit; and
// whatever is gzipped comes back as it was.
func FuzzDecodeBody(f *testing.F) {
	f.Add([]byte(`{"a":1}`), "", false)
	f.Add([]byte(`{"a":1}`), "gzip", true)
	f.Add([]byte(`{"a":1}`), "deflate", true)
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}, "gzip", false)
	f.Add([]byte{0x78, 0x9c, 0x03, 0x00}, "deflate", false)
	f.Add(bytes.Repeat([]byte{0}, 5000), "x-gzip", true)
	f.Add([]byte("x"), "br", false)
	f.Fuzz(func(t *testing.T, data []byte, encoding string, compress bool) {
		const limit = 4096
		body := data
		if compress {
			switch encoding {
			case "gzip", "x-gzip":
				body = gzipped(t, data)
			case "deflate":
				body = zlibbed(t, data)
			}
		}
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		r.Header.Set("Content-Encoding", encoding)
		err := DecodeBody(nil, r, limit)
		var ue *UnsupportedEncodingError
		if errors.As(err, &ue) {
			return
		}
		if err != nil {
			t.Fatalf("DecodeBody: unexpected error %v", err)
		}
		got, err := io.ReadAll(r.Body)
		if len(got) > limit {
			t.Fatalf("read %d bytes past the limit %d", len(got), limit)
		}
		var de *DecodeError
		var tooBig *http.MaxBytesError
		switch {
		case err == nil:
		case errors.As(err, &de), errors.As(err, &tooBig):
		default:
			t.Fatalf("unexpected error %T %v", err, err)
		}
		if compress && (encoding == "gzip" || encoding == "deflate") {
			if len(data) <= limit && (err != nil || !bytes.Equal(got, data)) {
				t.Fatalf("round trip: got %d bytes, error %v; want the %d bytes back", len(got), err, len(data))
			}
			if len(data) > limit && tooBig == nil {
				t.Fatalf("round trip of %d bytes: got error %v, want the limit", len(data), err)
			}
		}
	})
}
