//go:build bench

package ingest

import (
	"bufio"
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// dims is the vector size of the embedding job (all-MiniLM-L6-v2, and
// text-embedding-3-small with dimensions=384).
const dims = 384

// appendLine appends line n (1-based) of the job's output file, in the
// OpenAI Batch API's output format, with its newline. The vector is fixed by
// n, so the file is the same in every run and any line can be checked
// against the index without keeping the file.
func appendLine(b []byte, n int) []byte {
	ns := strconv.Itoa(n)
	b = append(b, `{"id":"batch_req_`...)
	b = append(b, ns...)
	b = append(b, `","custom_id":"doc-`...)
	b = append(b, ns...)
	b = append(b, `","response":{"status_code":200,"request_id":"req_`...)
	b = append(b, ns...)
	b = append(b, `","body":{"object":"list","data":[{"object":"embedding","index":0,"embedding":[`...)
	seed := uint64(n)
	for i := range dims {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendFloat(b, float64(component(&seed)), 'f', -1, 32)
	}
	b = append(b, `]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":5,"total_tokens":5}}},"error":null}`...)
	return append(b, '\n')
}

// vector is line n's embedding, as appendLine writes it.
func vector(n int) []float32 {
	seed := uint64(n)
	v := make([]float32, dims)
	for i := range v {
		v[i] = component(&seed)
	}
	return v
}

// component is the next value of a splitmix64 sequence scaled to
// [-0.125, 0.125), the range of a normalized 384-dimension embedding.
func component(state *uint64) float32 {
	*state += 0x9e3779b97f4a7c15
	z := *state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return float32(int32(z>>40)-(1<<23)) / (1 << 26)
}

// writeJobOutput streams lines lines into a new file in dir and returns
// its path and size; the file is never held in memory.
func writeJobOutput(t *testing.T, dir string, lines int) (string, int64) {
	t.Helper()
	path := filepath.Join(dir, "embeddings_output.jsonl")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	buf := make([]byte, 0, 8<<10)
	for n := 1; n <= lines; n++ {
		buf = appendLine(buf[:0], n)
		if _, err := w.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path, st.Size()
}

// fileServer serves one file on disk as OpenAI's file content endpoint,
// GET /v1/files/<id>/content with the bearer key, Range requests included
// (http.ServeContent answers them with 206 and Content-Range).
type fileServer struct {
	srv          *httptest.Server
	id, key      string
	requests     atomic.Int64
	ranged       atomic.Int64 // requests with a Range header
	unauthorized atomic.Int64
}

func newFileServer(t *testing.T, path, id, key string) *fileServer {
	t.Helper()
	fs := &fileServer{id: id, key: key}
	fs.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fs.requests.Add(1)
		if r.Header.Get("Range") != "" {
			fs.ranged.Add(1)
		}
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+key)) != 1 {
			fs.unauthorized.Add(1)
			openAIError(w, http.StatusUnauthorized, "Incorrect API key provided.", "invalid_api_key")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			openAIError(w, http.StatusMethodNotAllowed, "Method not allowed.", "")
			return
		}
		if r.URL.Path != "/v1/files/"+id+"/content" {
			openAIError(w, http.StatusNotFound, "No such File object: "+r.URL.Path, "")
			return
		}
		f, err := os.Open(path)
		if err != nil {
			openAIError(w, http.StatusInternalServerError, err.Error(), "")
			return
		}
		defer f.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "", time.Time{}, f)
	}))
	t.Cleanup(fs.srv.Close)
	return fs
}

func (fs *fileServer) URL() string { return fs.srv.URL }

func openAIError(w http.ResponseWriter, status int, msg, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	var c any
	if code != "" {
		c = code
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"message": msg, "type": "invalid_request_error", "param": nil, "code": c}})
}

// uploadS3 puts the file at bucket/key, in parts read from disk so that
// neither side needs the whole file in one request body.
func uploadS3(ctx context.Context, c *s3.Client, path, bucket, key string) error {
	const partSize = 64 << 20
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		return fmt.Errorf("create bucket: %w", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() <= partSize {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
			Body: io.NewSectionReader(f, 0, st.Size()), ContentLength: aws.Int64(st.Size())})
		return err
	}
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return fmt.Errorf("create multipart upload: %w", err)
	}
	var parts []types.CompletedPart
	for off, n := int64(0), int32(1); off < st.Size(); off, n = off+partSize, n+1 {
		size := min(partSize, st.Size()-off)
		p, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(bucket), Key: aws.String(key),
			UploadId: up.UploadId, PartNumber: aws.Int32(n),
			Body: io.NewSectionReader(f, off, size), ContentLength: aws.Int64(size)})
		if err != nil {
			return fmt.Errorf("upload part %d: %w", n, err)
		}
		parts = append(parts, types.CompletedPart{ETag: p.ETag, PartNumber: aws.Int32(n)})
	}
	_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key),
		UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	if err != nil {
		return fmt.Errorf("complete multipart upload: %w", err)
	}
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return err
	}
	if got := aws.ToInt64(head.ContentLength); got != st.Size() {
		return fmt.Errorf("s3://%s/%s holds %d bytes, want %d", bucket, key, got, st.Size())
	}
	return nil
}

// TestGeneratedLines: a line is the Batch API's output shape, with the
// custom id and vector the bench checks the index against.
func TestGeneratedLines(t *testing.T) {
	for _, n := range []int{1, 2, 999_999} {
		line := appendLine(nil, n)
		var got outputLine
		if err := json.Unmarshal(line, &got); err != nil {
			t.Fatalf("line %d: %v\n%s", n, err, line)
		}
		if want := "doc-" + strconv.Itoa(n); got.CustomID != want {
			t.Errorf("line %d custom_id = %q, want %q", n, got.CustomID, want)
		}
		var v []float32
		if err := json.Unmarshal(got.Response.Body.Data[0].Embedding, &v); err != nil {
			t.Fatal(err)
		}
		want := vector(n)
		if len(v) != dims {
			t.Fatalf("line %d has %d dimensions, want %d", n, len(v), dims)
		}
		for i := range v {
			if v[i] != want[i] || v[i] < -0.125 || v[i] >= 0.125 {
				t.Fatalf("line %d component %d = %v, want %v in [-0.125, 0.125)", n, i, v[i], want[i])
			}
		}
	}
	if string(appendLine(nil, 7)) != string(appendLine(nil, 7)) {
		t.Error("the same line number made two different lines")
	}
}

// TestFileServer: the OpenAI file double answers the key only, and a
// Range request with 206 and the rest of the file.
func TestFileServer(t *testing.T) {
	path, size := writeJobOutput(t, t.TempDir(), 3)
	fs := newFileServer(t, path, "file-bench", "sk-bench")
	get := func(key, rng, p string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, fs.URL()+p, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+key)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	resp, b := get("sk-bench", "", "/v1/files/file-bench/content")
	if resp.StatusCode != 200 || string(b) != string(whole) {
		t.Errorf("whole file: %d, %d bytes, want 200 and %d bytes", resp.StatusCode, len(b), size)
	}
	off := int64(len(appendLine(nil, 1)))
	resp, b = get("sk-bench", "bytes="+strconv.FormatInt(off, 10)+"-", "/v1/files/file-bench/content")
	if want := fmt.Sprintf("bytes %d-%d/%d", off, size-1, size); resp.StatusCode != 206 || resp.Header.Get("Content-Range") != want || string(b) != string(whole[off:]) {
		t.Errorf("ranged: %d %q, %d bytes, want 206 %q and %d bytes", resp.StatusCode, resp.Header.Get("Content-Range"), len(b), want, size-off)
	}
	if resp, _ = get("sk-wrong", "", "/v1/files/file-bench/content"); resp.StatusCode != 401 {
		t.Errorf("wrong key: %d, want 401", resp.StatusCode)
	}
	if resp, _ = get("sk-bench", "", "/v1/files/file-other/content"); resp.StatusCode != 404 {
		t.Errorf("other file: %d, want 404", resp.StatusCode)
	}
}
