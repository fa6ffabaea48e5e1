package httpcodec

import (
	"bufio"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"io"
	"math"
	"net/http"
	"strings"
)

// UnsupportedEncodingError is a request Content-Encoding DecodeBody cannot
// decode.
type UnsupportedEncodingError struct {
	Encoding string
}

func (e *UnsupportedEncodingError) Error() string {
	return "unsupported Content-Encoding [" + e.Encoding + "]: only gzip, x-gzip, deflate, x-deflate and identity are accepted"
}

// DecodeError is a compressed request body that does not decode: corrupt,
// failing its checksum or cut short.
type DecodeError struct {
	Encoding string
	Err      error
}

func (e *DecodeError) Error() string {
	return "cannot decode the " + e.Encoding + " request body: " + e.Err.Error()
}

func (e *DecodeError) Unwrap() error { return e.Err }

// DecodeBody makes r.Body yield the request's decoded bytes, at most limit
// of them; reading more fails with *http.MaxBytesError, as
// http.MaxBytesReader does (w, which may be nil, is told to close the
// connection then). A compressed body loses its Content-Encoding and
// Content-Length headers and has ContentLength -1. Decoding happens as the
// body is read: a corrupt stream shows as *DecodeError from Read, and an
// error of the underlying body (a client gone, a read deadline) comes back
// unchanged. An encoding it cannot decode is *UnsupportedEncodingError, and
// r is left as it was. A request without a body (nil or http.NoBody) is
// left as it is, whatever its headers say.
func DecodeBody(w http.ResponseWriter, r *http.Request, limit int64) error {
	if r.Body == nil || r.Body == http.NoBody {
		return nil // nothing to decode, as Netty has nothing to pass on
	}
	if limit < 0 {
		limit = 0
	}
	body := r.Body
	coding := strings.TrimSpace(strings.Join(r.Header.Values("Content-Encoding"), ", "))
	var kind string
	switch strings.ToLower(coding) {
	case "", "identity":
		r.Body = http.MaxBytesReader(w, body, limit)
		return nil
	case "gzip", "x-gzip":
		kind = "gzip"
	case "deflate", "x-deflate":
		kind = "deflate"
	default:
		return &UnsupportedEncodingError{Encoding: coding}
	}
	src := &source{r: body, left: compressedLimit(limit), limit: limit}
	r.Body = http.MaxBytesReader(w, &decoder{kind: kind, coding: coding, src: src, body: body}, limit)
	r.Header.Del("Content-Encoding")
	r.Header.Del("Content-Length")
	r.ContentLength = -1
	return nil
}

// compressedLimit bounds the compressed bytes of a body whose decoded
// bytes are bounded by limit: far above deflate's worst-case overhead
// (5 bytes a 64 KiB stored block, 18 a gzip member), so only a stream that
// decodes to next to nothing per byte, like endless empty members, meets it.
func compressedLimit(limit int64) int64 {
	const slack = 64 << 10
	if limit > (math.MaxInt64-slack)/65*64 {
		return math.MaxInt64
	}
	return limit + limit/64 + slack
}

// source is the compressed body: it remembers the error it met, so that a
// failure of the connection is not mistaken for a corrupt stream, and it
// bounds the compressed bytes.
type source struct {
	r     io.Reader
	left  int64
	limit int64 // the decoded limit, reported when the compressed bound trips
	err   error
}

func (s *source) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if int64(len(p)) > s.left+1 {
		p = p[:s.left+1]
	}
	n, err := s.r.Read(p)
	if int64(n) > s.left {
		n = int(s.left)
		s.left = 0
		s.err = &http.MaxBytesError{Limit: s.limit}
		return n, s.err
	}
	s.left -= int64(n)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// decoder inflates the body lazily: DecodeBody reads nothing, and the first
// Read sets up the decompressor from the stream's first bytes.
type decoder struct {
	kind   string // gzip or deflate
	coding string // as the client spelled it
	src    *source
	body   io.Closer
	r      io.Reader
}

func (d *decoder) Read(p []byte) (int, error) {
	if d.r == nil {
		r, err := d.open()
		if err != nil {
			return 0, d.fail(err)
		}
		d.r = r
	}
	n, err := d.r.Read(p)
	if err != nil && err != io.EOF {
		err = d.fail(err)
	}
	return n, err
}

func (d *decoder) open() (io.Reader, error) {
	br := bufio.NewReader(d.src)
	head, err := br.Peek(2)
	if len(head) == 0 {
		if err == io.EOF {
			return eof{}, nil // an empty body decodes to an empty body, as in Netty
		}
		return nil, err
	}
	if d.kind == "gzip" {
		return gzip.NewReader(br) // multistream: every member is decoded
	}
	if len(head) == 2 && isZlibHeader(head[0], head[1]) {
		return zlib.NewReader(br)
	}
	return flate.NewReader(br), nil
}

// fail names the cause of a failed read: the underlying body's own error
// or the compressed bound if either happened, a corrupt stream otherwise.
func (d *decoder) fail(err error) error {
	if d.src.err != nil {
		return d.src.err
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return &DecodeError{Encoding: d.coding, Err: err}
}

func (d *decoder) Close() error { return d.body.Close() }

// isZlibHeader reports whether two bytes start a zlib stream (RFC 1950):
// deflate method, a window of at most 32 KiB and the header check. Netty's
// looksLikeZlib accepts only the 32 KiB window; a smaller one, which no
// raw stream could be confused with more easily, is accepted here too.
func isZlibHeader(cmf, flg byte) bool {
	return cmf&0x0f == 8 && cmf>>4 <= 7 && (uint16(cmf)<<8|uint16(flg))%31 == 0
}

type eof struct{}

func (eof) Read([]byte) (int, error) { return 0, io.EOF }
