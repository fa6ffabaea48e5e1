package httpcodec

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// compressionLevel is http.compression_level's default: OpenSearch's
// benchmarks found 3 the best trade of size for latency.
const compressionLevel = 3

// Write sends status and body, compressed as OpenSearch's
// HttpContentCompressor would for r, with Content-Length set. The caller
// sets the other headers (Content-Type) first. A HEAD request gets the
// headers of the uncompressed answer and no body.
func Write(w http.ResponseWriter, r *http.Request, status int, body []byte) error {
	h := w.Header()
	if status < 200 || status == http.StatusNoContent || status == http.StatusNotModified {
		w.WriteHeader(status)
		return nil
	}
	if coding := responseCoding(r, h, len(body)); coding != "" {
		body = compress(coding, body)
		h.Set("Content-Encoding", coding)
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return nil
	}
	_, err := w.Write(body)
	return err
}

// responseCoding is the coding HttpContentEncoder would apply: none for
// HEAD, HTTP/1.0, an empty body or one already encoded, else what
// Accept-Encoding asks for. Several Accept-Encoding headers count as one
// list, as Netty joins them.
func responseCoding(r *http.Request, h http.Header, n int) string {
	if n == 0 || r.Method == http.MethodHead || !r.ProtoAtLeast(1, 1) {
		return ""
	}
	if _, ok := h["Content-Encoding"]; ok {
		return ""
	}
	return Negotiate(strings.Join(r.Header.Values("Accept-Encoding"), ","))
}

// Negotiate is Netty's HttpContentCompressor.determineWrapper: "gzip",
// "deflate" or "" (no compression) for an Accept-Encoding value. Names are
// found as case-sensitive substrings ("x-gzip" counts as gzip, "GZIP" does
// not); a q-value that does not parse counts as 0; "*" stands for gzip, or
// for deflate when gzip is named.
func Negotiate(acceptEncoding string) string {
	starQ, gzipQ, deflateQ := -1.0, -1.0, -1.0
	for _, enc := range strings.Split(acceptEncoding, ",") {
		q := 1.0
		if i := strings.IndexByte(enc, '='); i >= 0 {
			q = javaParseFloat(enc[i+1:])
		}
		switch {
		case strings.Contains(enc, "*"):
			starQ = q
		case strings.Contains(enc, "gzip") && q > gzipQ:
			gzipQ = q
		case strings.Contains(enc, "deflate") && q > deflateQ:
			deflateQ = q
		}
	}
	if gzipQ > 0 || deflateQ > 0 {
		if gzipQ >= deflateQ {
			return "gzip"
		}
		return "deflate"
	}
	if starQ > 0 {
		if gzipQ == -1 {
			return "gzip"
		}
		if deflateQ == -1 {
			return "deflate"
		}
	}
	return ""
}

// javaParseFloat is Float.parseFloat for the forms q-values take, 0 where
// Java would throw: surrounding blanks and a trailing f or d are allowed,
// Infinity and NaN are Java's spellings, hexadecimal is not handled.
func javaParseFloat(s string) float64 {
	s = strings.TrimFunc(s, func(r rune) bool { return r <= ' ' })
	switch strings.TrimPrefix(s, "+") {
	case "Infinity":
		return math.Inf(1)
	case "NaN":
		return math.NaN()
	}
	if s == "-Infinity" {
		return math.Inf(-1)
	}
	if n := len(s); n > 1 && strings.ContainsRune("fFdD", rune(s[n-1])) {
		s = s[:n-1]
	}
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') {
			return 0
		}
	}
	f, err := strconv.ParseFloat(s, 32)
	if err != nil && !errors.Is(err, strconv.ErrRange) { // out of range is ±Inf or 0, as in Java
		return 0
	}
	return f
}

// The compressors are pooled: each one holds several hundred kilobytes of
// tables, too much to allocate for every answer. The pools cache memory
// only; nothing observable is shared between answers.
var (
	gzipWriters = sync.Pool{New: func() any {
		zw, _ := gzip.NewWriterLevel(io.Discard, compressionLevel)
		return zw
	}}
	zlibWriters = sync.Pool{New: func() any {
		zw, _ := zlib.NewWriterLevel(io.Discard, compressionLevel)
		return zw
	}}
)

type resetWriteCloser interface {
	io.WriteCloser
	Reset(io.Writer)
}

func compress(coding string, body []byte) []byte {
	pool := &gzipWriters
	if coding == "deflate" {
		pool = &zlibWriters // Netty's deflate answer is zlib-wrapped
	}
	zw := pool.Get().(resetWriteCloser)
	defer func() {
		zw.Reset(io.Discard) // let go of the answer's buffer
		pool.Put(zw)
	}()
	var buf bytes.Buffer
	buf.Grow(len(body)/3 + 64)
	zw.Reset(&buf)
	_, _ = zw.Write(body) // a bytes.Buffer does not fail
	_ = zw.Close()
	return buf.Bytes()
}
