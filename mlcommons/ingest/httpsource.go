package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// HTTPOptions say how to read a file over HTTP GET.
type HTTPOptions struct {
	// Client makes the calls. It must be built on the outbound guard's
	// Transport and CheckRedirect: the file is fetched from where a
	// connector or a request says.
	Client *http.Client
	URL    string
	// Header is sent with every request (Authorization); it never appears
	// in an error.
	Header http.Header
	// CheckURL, when set, vets the URL before each request (the outbound
	// guard's trusted-endpoint check).
	CheckURL func(rawURL string) error
	// Describe turns an error answer into the error Open returns; nil
	// gives a plain text with the status.
	Describe func(status int, body []byte) error
	// MaxLineBytes bounds one line; zero means DefaultMaxLineBytes.
	MaxLineBytes int
}

// maxErrorBody bounds what is read of an error answer.
const maxErrorBody = 64 << 10

// OpenHTTP streams the file at o.URL from offset: a Range request, and
// where the server ignores Range (a 200), the bytes before offset are read
// and dropped, never kept.
func OpenHTTP(ctx context.Context, o HTTPOptions, offset int64) (*Reader, error) {
	if o.Client == nil {
		return nil, errors.New("ingest: no HTTP client")
	}
	return newReader(ctx, o.open, offset, o.MaxLineBytes)
}

func (o HTTPOptions) open(ctx context.Context, offset int64) (io.ReadCloser, int64, error) {
	if o.CheckURL != nil {
		if err := o.CheckURL(o.URL); err != nil {
			return nil, 0, err
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.URL, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("ingest: %w", err)
	}
	for k, v := range o.Header {
		req.Header[k] = v
	}
	// Offsets count the file's own bytes: a compressed answer would make a
	// Range count the compressed ones.
	req.Header.Set("Accept-Encoding", "identity")
	if offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
	}
	resp, err := o.Client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		size := resp.ContentLength
		if offset > 0 {
			// The server sent the whole file: skip to the offset.
			n, err := io.CopyN(io.Discard, resp.Body, offset)
			if err != nil {
				resp.Body.Close()
				if err == io.EOF {
					return nil, 0, fmt.Errorf("ingest: the file has %d bytes, fewer than the offset %d to resume at", n, offset)
				}
				return nil, 0, err
			}
		}
		return resp.Body, size, nil
	case http.StatusPartialContent:
		first, total, ok := contentRange(resp.Header.Get("Content-Range"))
		if !ok || first != offset {
			resp.Body.Close()
			return nil, 0, fmt.Errorf("ingest: asked for bytes from %d, got Content-Range %q", offset, resp.Header.Get("Content-Range"))
		}
		return resp.Body, total, nil
	case http.StatusRequestedRangeNotSatisfiable:
		// The offset is the end of the file: nothing is left to read.
		resp.Body.Close()
		_, total, _ := contentRange(resp.Header.Get("Content-Range"))
		return io.NopCloser(strings.NewReader("")), total, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if o.Describe != nil {
		return nil, 0, o.Describe(resp.StatusCode, body)
	}
	return nil, 0, fmt.Errorf("ingest: GET answered %s", resp.Status)
}

// contentRange parses "bytes first-last/total" and "bytes */total"; total
// is -1 when given as "*".
func contentRange(v string) (first, total int64, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !found {
		return 0, -1, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, -1, false
	}
	total = -1
	if tot != "*" {
		n, err := strconv.ParseInt(tot, 10, 64)
		if err != nil {
			return 0, -1, false
		}
		total = n
	}
	if rng == "*" {
		return 0, total, true
	}
	a, _, found := strings.Cut(rng, "-")
	if !found {
		return 0, -1, false
	}
	first, err := strconv.ParseInt(a, 10, 64)
	if err != nil {
		return 0, -1, false
	}
	return first, total, true
}
