package ingest

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
	"github.com/mlsidecar/mlsidecar/mlcommons/outbound"
)

type readLine struct {
	Line   string
	Offset int64
	Err    string
}

// drain reads src to its end.
func drain(t *testing.T, src Source) (lines []readLine, end int64) {
	t.Helper()
	for range 10000 {
		l, off, err := src.Next()
		if err == io.EOF {
			return lines, off
		}
		r := readLine{Line: string(l), Offset: off}
		if err != nil {
			var tl *LineTooLongError
			if !errors.As(err, &tl) {
				t.Fatalf("at %d: %v", off, err)
			}
			r.Line, r.Err = "", err.Error()
		}
		lines = append(lines, r)
	}
	t.Fatal("no end")
	return nil, 0
}

// fileServer serves content with http.ServeContent, which speaks Range,
// and records the Range and Authorization headers it got.
type fileServer struct {
	content string
	mu      sync.Mutex
	ranges  []string
	auth    []string
}

func (f *fileServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.ranges = append(f.ranges, r.Header.Get("Range"))
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	f.mu.Unlock()
	http.ServeContent(w, r, "f.jsonl", time.Time{}, strings.NewReader(f.content))
}

func httpReader(t *testing.T, url string, offset int64, maxLine int) *Reader {
	t.Helper()
	r, err := OpenHTTP(context.Background(), HTTPOptions{Client: &http.Client{}, URL: url, MaxLineBytes: maxLine}, offset)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestReaderLinesAndOffsets(t *testing.T) {
	const content = "\xef\xbb\xbf{\"a\":1}\n\r\n{\"b\":2}\r\n\n{\"c\":3}"
	srv := httptest.NewServer(&fileServer{content: content})
	defer srv.Close()

	for _, tt := range []struct {
		name   string
		offset int64
		want   []readLine
	}{
		{"from the start, BOM dropped", 0, []readLine{{Line: `{"a":1}`, Offset: 0}, {Offset: 11}, {Line: `{"b":2}`, Offset: 13}, {Offset: 22}, {Line: `{"c":3}`, Offset: 23}}},
		{"resumed at a line", 13, []readLine{{Line: `{"b":2}`, Offset: 13}, {Offset: 22}, {Line: `{"c":3}`, Offset: 23}}},
		{"resumed at the last line", 23, []readLine{{Line: `{"c":3}`, Offset: 23}}},
		{"resumed at the end", int64(len(content)), nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httpReader(t, srv.URL, tt.offset, 0)
			got, end := drain(t, r)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("-want +got:\n%s", diff)
			}
			if end != int64(len(content)) {
				t.Errorf("end: got %d, want %d", end, len(content))
			}
			if r.Size() != int64(len(content)) {
				t.Errorf("size: got %d, want %d", r.Size(), len(content))
			}
			// The end stays the end.
			if _, off, err := r.Next(); err != io.EOF || off != int64(len(content)) {
				t.Errorf("after the end: got %d %v", off, err)
			}
		})
	}
}

func TestReaderSendsRange(t *testing.T) {
	fs := &fileServer{content: "aaaa\nbbbb\n"}
	srv := httptest.NewServer(fs)
	defer srv.Close()
	drain(t, httpReader(t, srv.URL, 0, 0))
	drain(t, httpReader(t, srv.URL, 5, 0))
	if diff := cmp.Diff([]string{"", "bytes=5-"}, fs.ranges); diff != "" {
		t.Errorf("Range headers: -want +got:\n%s", diff)
	}
}

// A server that ignores Range: the reader skips the bytes itself.
func TestReaderServerIgnoresRange(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "aaaa\nbbbb\ncccc\n")
	}))
	defer srv.Close()
	got, end := drain(t, httpReader(t, srv.URL, 10, 0))
	if diff := cmp.Diff([]readLine{{Line: "cccc", Offset: 10}}, got); diff != "" {
		t.Errorf("-want +got:\n%s", diff)
	}
	if end != 15 {
		t.Errorf("end: got %d, want 15", end)
	}
	_, err := OpenHTTP(context.Background(), HTTPOptions{Client: &http.Client{}, URL: srv.URL}, 99)
	if err == nil || !strings.Contains(err.Error(), "fewer than the offset 99") {
		t.Errorf("offset past the end: got %v", err)
	}
}

func TestReaderLineTooLong(t *testing.T) {
	long := strings.Repeat("x", 200<<10) // past bufio's buffer too
	content := "short\n" + strings.Repeat("y", 11) + "\n" + long + "\n" + "0123456789\r\n" + "after"
	srv := httptest.NewServer(&fileServer{content: content})
	defer srv.Close()
	got, _ := drain(t, httpReader(t, srv.URL, 0, 10))
	tooLong := func(off int64) readLine {
		return readLine{Offset: off, Err: (&LineTooLongError{Offset: off, Limit: 10}).Error()}
	}
	want := []readLine{
		{Line: "short", Offset: 0},
		tooLong(6),
		tooLong(18),
		{Line: "0123456789", Offset: int64(19 + len(long))},
		{Line: "after", Offset: int64(19 + len(long) + 12)},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("-want +got:\n%s", diff)
	}
}

// The first line is there before the server has sent the rest: the
// reader streams, it does not download first.
func TestReaderStreams(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "second\n")
	}))
	defer srv.Close()
	defer close(release)
	r := httpReader(t, srv.URL, 0, 0)
	l, _, err := r.Next()
	if err != nil || string(l) != "first" {
		t.Fatalf("got %q %v", l, err)
	}
}

// A connection cut mid-file is reopened where it broke, with a Range.
func TestReaderReopensAfterCut(t *testing.T) {
	content := strings.Repeat("0123456789abcdef\n", 2000) // 34000 bytes
	var mu sync.Mutex
	var ranges []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		first := len(ranges) == 0
		ranges = append(ranges, r.Header.Get("Range"))
		mu.Unlock()
		if first {
			w.Header().Set("Content-Length", "34000")
			io.WriteString(w, content[:20005])
			w.(http.Flusher).Flush()
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		http.ServeContent(w, r, "f", time.Time{}, strings.NewReader(content))
	}))
	defer srv.Close()
	got, end := drain(t, httpReader(t, srv.URL, 0, 0))
	if len(got) != 2000 || end != 34000 {
		t.Fatalf("got %d lines ending at %d, want 2000 at 34000", len(got), end)
	}
	for i, l := range got {
		if l.Line != "0123456789abcdef" || l.Offset != int64(17*i) {
			t.Fatalf("line %d: got %+v", i, l)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ranges) != 2 || ranges[1] != "bytes=20005-" {
		t.Errorf("requests: got Range %q, want [\"\" \"bytes=20005-\"]", ranges)
	}
}

func TestOpenAIFile(t *testing.T) {
	fs := &fileServer{content: openAIOutLine + "\n"}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.EscapedPath() == "/v1/files/file-abc/content" {
			fs.ServeHTTP(w, r)
			return
		}
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error":{"message":"No such File object: `+strings.TrimSuffix(strings.TrimPrefix(r.URL.EscapedPath(), "/v1/files/"), "/content")+`","type":"invalid_request_error","param":"id","code":null}}`)
	}))
	defer srv.Close()
	open := func(id string, check func(string) error) (*Reader, error) {
		return OpenOpenAIFile(context.Background(), OpenAIOptions{Client: &http.Client{}, BaseURL: srv.URL + "/", APIKey: "sk-test", FileID: id, CheckURL: check}, 0)
	}

	t.Run("content with the bearer key", func(t *testing.T) {
		r, err := open("file-abc", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		got, _ := drain(t, r)
		if len(got) != 1 || got[0].Line != openAIOutLine {
			t.Errorf("got %+v", got)
		}
		if fs.auth[0] != "Bearer sk-test" {
			t.Errorf("Authorization: got %q", fs.auth[0])
		}
	})
	t.Run("unknown file", func(t *testing.T) {
		_, err := open("file-nope", nil)
		checkErr(t, err, http.StatusNotFound, "status_exception", "Failed to read the OpenAI file [file-nope]: HTTP 404: No such File object: file-nope")
	})
	t.Run("an id cannot leave the path", func(t *testing.T) {
		_, err := open("../../x?y=1", nil)
		checkErr(t, err, http.StatusNotFound, "status_exception", "Failed to read the OpenAI file [../../x?y=1]: HTTP 404: No such File object: ..%2F..%2Fx%3Fy=1")
	})
	t.Run("the URL check runs first", func(t *testing.T) {
		var checked string
		_, err := open("file-abc", func(u string) error {
			checked = u
			return mlerr.IllegalArgument("untrusted")
		})
		checkErr(t, err, http.StatusBadRequest, "illegal_argument_exception", "untrusted")
		if checked != srv.URL+"/v1/files/file-abc/content" {
			t.Errorf("checked %q", checked)
		}
	})
}

// Built on the outbound guard, the reader cannot reach a private address.
func TestOpenAIFileThroughGuard(t *testing.T) {
	srv := httptest.NewServer(&fileServer{content: "x\n"})
	defer srv.Close()
	g, err := outbound.New(outbound.Options{TrustedEndpoints: []*regexp.Regexp{regexp.MustCompile(`^http://127\.0\.0\.1:[0-9]+/.*$`)}})
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: g.Transport(), CheckRedirect: g.CheckRedirect}
	_, err = OpenOpenAIFile(context.Background(), OpenAIOptions{Client: client, BaseURL: srv.URL, FileID: "f", CheckURL: g.CheckURL}, 0)
	if !errors.Is(err, outbound.ErrPrivateAddress) {
		t.Fatalf("got %v, want the private-address refusal", err)
	}
	g.Update([]*regexp.Regexp{regexp.MustCompile(`^http://127\.0\.0\.1:[0-9]+/.*$`)}, true)
	r, err := OpenOpenAIFile(context.Background(), OpenAIOptions{Client: client, BaseURL: srv.URL, FileID: "f", CheckURL: g.CheckURL}, 0)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	_, err = OpenOpenAIFile(context.Background(), OpenAIOptions{Client: client, FileID: "f", CheckURL: g.CheckURL}, 0)
	if !errors.Is(err, outbound.ErrUntrustedEndpoint) {
		t.Fatalf("default base: got %v, want the untrusted-endpoint refusal", err)
	}
}

func TestContentRange(t *testing.T) {
	for _, tt := range []struct {
		in           string
		first, total int64
		ok           bool
	}{
		{"bytes 5-9/10", 5, 10, true},
		{"bytes 0-0/*", 0, -1, true},
		{"bytes */10", 0, 10, true},
		{"bytes 5-9", 0, -1, false},
		{"items 1-2/3", 0, -1, false},
		{"bytes x-9/10", 0, -1, false},
	} {
		first, total, ok := contentRange(tt.in)
		if first != tt.first || total != tt.total || ok != tt.ok {
			t.Errorf("%q: got %d %d %v", tt.in, first, total, ok)
		}
	}
}
