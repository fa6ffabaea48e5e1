package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/opensearch-project/opensearch-go/v4"
	"github.com/opensearch-project/opensearch-go/v4/opensearchapi"
)

func newClient(t *testing.T, url string) *opensearchapi.Client {
	t.Helper()
	c, err := opensearchapi.NewClient(opensearchapi.Config{Client: opensearch.Config{Addresses: []string{url}}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Given a sidecar in front of the node, when the official Go client does the
// everyday document and index work through it, then every call behaves as
// it does against the node.
func TestOpenSearchClientThroughSidecar(t *testing.T) {
	sc := startSidecar(t)
	c := newClient(t, sc.url)
	ctx := context.Background()
	const index = "e2e-client"

	if _, err := c.Indices.Create(ctx, opensearchapi.IndicesCreateReq{Index: index,
		Body: strings.NewReader(`{"settings":{"number_of_replicas":0},"mappings":{"properties":{"n":{"type":"integer"},"title":{"type":"text"}}}}`)}); err != nil {
		t.Fatalf("create index: %v", err)
	}
	t.Cleanup(func() { c.Indices.Delete(ctx, opensearchapi.IndicesDeleteReq{Indices: []string{index}}) })

	if resp, err := c.Indices.Exists(ctx, opensearchapi.IndicesExistsReq{Indices: []string{index}}); err != nil || resp.StatusCode != 200 {
		t.Fatalf("HEAD index: %v %v", resp, err)
	}
	if resp, _ := c.Indices.Exists(ctx, opensearchapi.IndicesExistsReq{Indices: []string{"e2e-missing"}}); resp == nil || resp.StatusCode != 404 {
		t.Fatalf("HEAD missing index: got %v, want 404", resp)
	}

	idx, err := c.Index(ctx, opensearchapi.IndexReq{Index: index, DocumentID: "1",
		Body: strings.NewReader(`{"n":1,"title":"first doc"}`), Params: opensearchapi.IndexParams{Refresh: "true"}})
	if err != nil || idx.Result != "created" {
		t.Fatalf("index: %+v %v", idx, err)
	}
	got, err := c.Document.Get(ctx, opensearchapi.DocumentGetReq{Index: index, DocumentID: "1"})
	if err != nil || !got.Found || string(got.Source) != `{"n":1,"title":"first doc"}` {
		t.Fatalf("get: %+v %v", got, err)
	}
	upd, err := c.Update(ctx, opensearchapi.UpdateReq{Index: index, DocumentID: "1",
		Body: strings.NewReader(`{"doc":{"n":2}}`), Params: opensearchapi.UpdateParams{Refresh: "true"}})
	if err != nil || upd.Result != "updated" {
		t.Fatalf("update: %+v %v", upd, err)
	}

	var bulk strings.Builder
	for i := 10; i < 60; i++ {
		fmt.Fprintf(&bulk, "{\"index\":{\"_id\":\"%d\"}}\n{\"n\":%d,\"title\":\"bulk doc %d\"}\n", i, i, i)
	}
	br, err := c.Bulk(ctx, opensearchapi.BulkReq{Index: index, Body: strings.NewReader(bulk.String()), Params: opensearchapi.BulkParams{Refresh: "true"}})
	if err != nil || br.Errors || len(br.Items) != 50 {
		t.Fatalf("bulk: errors=%v items=%d err=%v", br != nil && br.Errors, len(br.Items), err)
	}

	cnt, err := c.Indices.Count(ctx, &opensearchapi.IndicesCountReq{Indices: []string{index}})
	if err != nil || cnt.Count != 51 {
		t.Fatalf("count: %+v %v, want 51", cnt, err)
	}

	// A scroll over all 51 documents, 10 at a time.
	sr, err := c.Search(ctx, &opensearchapi.SearchReq{Indices: []string{index},
		Body: strings.NewReader(`{"size":10,"sort":["n"]}`), Params: opensearchapi.SearchParams{Scroll: time.Minute}})
	if err != nil {
		t.Fatalf("search: %v", err)
	}
	seen := len(sr.Hits.Hits)
	scrollID := *sr.ScrollID
	for {
		page, err := c.Scroll.Get(ctx, opensearchapi.ScrollGetReq{ScrollID: scrollID, Params: opensearchapi.ScrollGetParams{Scroll: time.Minute}})
		if err != nil {
			t.Fatalf("scroll: %v", err)
		}
		if len(page.Hits.Hits) == 0 {
			break
		}
		seen += len(page.Hits.Hits)
		scrollID = *page.ScrollID
	}
	if seen != 51 {
		t.Errorf("scroll saw %d documents, want 51", seen)
	}
	if _, err := c.Scroll.Delete(ctx, opensearchapi.ScrollDeleteReq{ScrollIDs: []string{scrollID}}); err != nil {
		t.Errorf("clear scroll: %v", err)
	}

	del, err := c.Document.Delete(ctx, opensearchapi.DocumentDeleteReq{Index: index, DocumentID: "1"})
	if err != nil || del.Result != "deleted" {
		t.Fatalf("delete: %+v %v", del, err)
	}
	if resp, _ := c.Document.Exists(ctx, opensearchapi.DocumentExistsReq{Index: index, DocumentID: "1"}); resp == nil || resp.StatusCode != 404 {
		t.Errorf("HEAD deleted doc: got %v, want 404", resp)
	}

	cat, err := c.Cat.Indices(ctx, &opensearchapi.CatIndicesReq{Indices: []string{index}})
	if err != nil || len(cat.Indices) != 1 || cat.Indices[0].Index != index {
		t.Errorf("cat indices: %+v %v", cat, err)
	}
}

// volatile removes the parts of an OpenSearch answer that differ between two
// identical requests.
var volatile = regexp.MustCompile(`"took":\d+`)

// rawExchange sends request bytes exactly as written and returns status,
// headers and body, the body with its volatile parts zeroed.
func rawExchange(t *testing.T, baseURL, request string) (int, http.Header, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(baseURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	method := strings.SplitN(request, " ", 2)[0]
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, volatile.ReplaceAll(b, []byte(`"took":0`))
}

// Given a sidecar in front of the node, when the same raw requests go to the
// node directly and through the sidecar, then status, content type and body
// are the same — encoded paths, odd query strings and errors included.
func TestRawRequestsMatchTheNode(t *testing.T) {
	sc := startSidecar(t)
	const index = "e2e-raw"
	setup := func(method, path, body string) {
		status, _, b := do(t, method, node.url()+path, strings.NewReader(body), map[string]string{"Content-Type": "application/json"})
		if status >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, status, b)
		}
	}
	setup("PUT", "/"+index, `{"settings":{"number_of_replicas":0}}`)
	t.Cleanup(func() { do(t, "DELETE", node.url()+"/"+index, nil, nil) })
	setup("PUT", "/"+index+"/_doc/a%2Fb?refresh=true", `{"title":"slash id","tags":["x y","ü"]}`)
	setup("PUT", "/"+index+"/_doc/plus+sign%20space?refresh=true", `{"title":"plus id"}`)

	tests := []struct{ name, method, target, body string }{
		{"encoded slash in id", "GET", "/" + index + "/_doc/a%2Fb", ""},
		{"plus and space in id", "GET", "/" + index + "/_doc/plus+sign%20space", ""},
		{"query net/url would re-encode", "GET", "/" + index + "/_search?q=title:%22slash+id%22&filter_path=hits.hits._id,hits.total&sort=_id:asc;x", ""},
		{"unescaped query characters", "GET", "/" + index + "/_search?q=title:(slash|plus)&size=5&_source_includes=title,tags", ""},
		{"index not found", "GET", "/e2e-no-such-index/_search", ""},
		{"document not found", "GET", "/" + index + "/_doc/nope", ""},
		{"HEAD missing document", "HEAD", "/" + index + "/_doc/nope", ""},
		{"HEAD existing document", "HEAD", "/" + index + "/_doc/a%2Fb", ""},
		{"parse error", "POST", "/" + index + "/_search", `{"query":{"match_all":{}`},
		{"count", "POST", "/" + index + "/_count", `{"query":{"match_all":{}}}`},
		{"cat with format", "GET", "/_cat/indices/" + index + "?h=index,docs.count&format=json", ""},
		{"unknown route", "GET", "/_nope/x?a=b", ""},
		{"method not allowed", "DELETE", "/_cluster/health", ""},
		{"deprecation warning header", "GET", "/_cat/master?v", ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Distinct opaque ids: OpenSearch sends a deprecation warning once
			// per message and X-Opaque-Id.
			req := func(opaqueID string) string {
				return fmt.Sprintf("%s %s HTTP/1.1\r\nHost: test\r\nX-Opaque-Id: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
					tt.method, tt.target, opaqueID, len(tt.body), tt.body)
			}
			wantStatus, wantHeader, wantBody := rawExchange(t, node.url(), req(fmt.Sprintf("direct-%d", i)))
			gotStatus, gotHeader, gotBody := rawExchange(t, sc.url, req(fmt.Sprintf("sidecar-%d", i)))
			if gotStatus != wantStatus {
				t.Errorf("status = %d, node says %d", gotStatus, wantStatus)
			}
			if !bytes.Equal(gotBody, wantBody) {
				t.Errorf("body through sidecar:\n%s\nnode:\n%s", gotBody, wantBody)
			}
			headers := []string{"Content-Type", "Warning"}
			if !volatile.Match(wantBody) { // "took" may differ in length
				headers = append(headers, "Content-Length")
			}
			for _, h := range headers {
				if g, w := gotHeader.Values(h), wantHeader.Values(h); strings.Join(g, "|") != strings.Join(w, "|") {
					t.Errorf("header %s = %q, node says %q", h, g, w)
				}
			}
		})
	}
}

// Given a sidecar, when an ML Commons route it does not serve is called,
// then the answer is byte for byte what OpenSearch gives for a route it does
// not know (this node has no ML plugin, so it shows the reference answer).
func TestUnknownMLRouteAnswersLikeOpenSearch(t *testing.T) {
	sc := startSidecar(t)
	// (agents and the other APIs mlsidecar does not serve have their own 400,
	// TestUnsupportedAPIs in mlcommons.)
	for _, target := range []string{"/_plugins/_ml/nothing-here/abc", "/_plugins/_ml/nothing/_search?pretty=false",
		"/_plugins/%5Fml/nothing/a%2Fb%20c?x=%41"} {
		req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n", target)
		wantStatus, wantHeader, wantBody := rawExchange(t, node.url(), req)
		gotStatus, gotHeader, gotBody := rawExchange(t, sc.url, req)
		if gotStatus != wantStatus || !bytes.Equal(gotBody, wantBody) || gotHeader.Get("Content-Type") != wantHeader.Get("Content-Type") {
			t.Errorf("%s: sidecar %d %q %s, node %d %q %s", target, gotStatus, gotHeader.Get("Content-Type"), gotBody,
				wantStatus, wantHeader.Get("Content-Type"), wantBody)
		}
	}
}

// Given a sidecar, when a client sends a gzip-compressed _bulk and asks for
// a gzip-compressed answer, then the node gets and gives gzip untouched.
func TestGzipBodies(t *testing.T) {
	sc := startSidecar(t)
	const index = "e2e-gzip"
	t.Cleanup(func() { do(t, "DELETE", node.url()+"/"+index, nil, nil) })

	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	for i := 0; i < 100; i++ {
		fmt.Fprintf(zw, "{\"index\":{\"_index\":%q,\"_id\":\"%d\"}}\n{\"n\":%d}\n", index, i, i)
	}
	zw.Close()
	status, _, body := do(t, "POST", sc.url+"/_bulk?refresh=true", &zipped, map[string]string{
		"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"})
	if status != 200 || !bytes.Contains(body, []byte(`"errors":false`)) {
		t.Fatalf("gzip bulk: %d %.300s", status, body)
	}

	status, header, body := do(t, "GET", sc.url+"/"+index+"/_search?size=100", nil, map[string]string{"Accept-Encoding": "gzip"})
	if status != 200 || header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("search: status %d Content-Encoding %q, want 200 gzip", status, header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("response is not gzip: %v", err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Hits struct {
			Total struct{ Value int } `json:"total"`
		} `json:"hits"`
	}
	if err := json.Unmarshal(plain, &res); err != nil || res.Hits.Total.Value != 100 {
		t.Errorf("decompressed search: total %d, err %v", res.Hits.Total.Value, err)
	}
}
