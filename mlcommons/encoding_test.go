package mlcommons

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func gzipped(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func (a *testAPI) send(t *testing.T, method, path string, body []byte, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, req)
	return rec
}

// opensearch-py's http_compress and the JS client's compression:'gzip'
// send gzip bodies; OpenSearch decodes them before any handler.
func TestCompressedRequestBodies(t *testing.T) {
	a := newTestAPI(t)
	body := []byte(toJSON(t, openAIConnector()))
	var zl bytes.Buffer
	zw := zlib.NewWriter(&zl)
	zw.Write(body)
	zw.Close()
	for name, tt := range map[string]struct {
		encoding string
		body     []byte
	}{
		"gzip": {"gzip", gzipped(t, body)}, "x-gzip": {"x-gzip", gzipped(t, body)}, "deflate": {"deflate", zl.Bytes()},
	} {
		rec := a.send(t, http.MethodPost, connectorsPath+"_create", tt.body, map[string]string{"Content-Encoding": tt.encoding})
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"connector_id"`) {
			t.Errorf("%s body: got %d %s, want a connector_id", name, rec.Code, rec.Body)
		}
	}
	wantError(t, a.send(t, http.MethodPost, connectorsPath+"_create", body, map[string]string{"Content-Encoding": "br"}),
		400, "illegal_argument_exception", `unsupported Content-Encoding [br]: only gzip, x-gzip, deflate, x-deflate and identity are accepted`)
	corrupt := gzipped(t, body)
	corrupt[len(corrupt)-5] ^= 0xff // the CRC
	if rec := a.send(t, http.MethodPost, connectorsPath+"_create", corrupt, map[string]string{"Content-Encoding": "gzip"}); rec.Code != 400 {
		t.Errorf("corrupt gzip: got %d %s, want 400", rec.Code, rec.Body)
	}
	// A small bomb: 20 MiB of spaces in a few KB; the limit (10 MiB) holds
	// on what it decodes to.
	bomb := gzipped(t, bytes.Repeat([]byte(" "), 20<<20))
	if len(bomb) > 100<<10 {
		t.Fatalf("bomb is %d bytes", len(bomb))
	}
	wantError(t, a.send(t, http.MethodPost, connectorsPath+"_create", bomb, map[string]string{"Content-Encoding": "gzip"}),
		413, "content_too_long_exception", "request body is larger than the limit of [10485760] bytes")
}

// Answers are compressed when the client accepts it, as OpenSearch's
// http.compression; filter_path and pretty shape them.
func TestAnswerEncoding(t *testing.T) {
	a := newTestAPI(t)
	id := a.createConnector(t, openAIConnector())

	rec := a.send(t, http.MethodGet, connectorsPath+id, nil, map[string]string{"Accept-Encoding": "gzip"})
	if rec.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding %q, want gzip", rec.Header().Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil || !strings.Contains(string(plain), `"name":"OpenAI embeddings"`) {
		t.Errorf("decompressed answer %s (%v), want the connector", plain, err)
	}

	rec = a.do(t, http.MethodGet, connectorsPath+id+"?filter_path=name,protocol", "")
	if got := rec.Body.String(); got != `{"name":"OpenAI embeddings","protocol":"http"}` {
		t.Errorf("filter_path=name,protocol answered %s", got)
	}
	rec = a.do(t, http.MethodGet, connectorsPath+id+"?filter_path=-actions,-parameters,-description,-created_time,-last_updated_time,-version,-client_config&pretty", "")
	if got, want := rec.Body.String(), "{\n  \"name\" : \"OpenAI embeddings\",\n  \"protocol\" : \"http\"\n}\n"; got != want {
		t.Errorf("pretty exclusion answered %q, want %q", got, want)
	}
	// Errors are not filtered (OpenSearch's error builder), but pretty.
	rec = a.do(t, http.MethodGet, connectorsPath+"nope?filter_path=name&pretty", "")
	if rec.Code != 404 || !strings.Contains(rec.Body.String(), "\"status\" : 404") {
		t.Errorf("error with filter_path and pretty: %d %s", rec.Code, rec.Body)
	}
	wantError(t, a.do(t, http.MethodGet, "/_plugins/_ml/stats?pretty=yes", ""), 400, "illegal_argument_exception",
		"Failed to parse value [yes] as only [true] or [false] are allowed.")
}
