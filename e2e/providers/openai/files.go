package openai

import (
	"cmp"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	maxFileBytes      = 512 << 20
	maxBatchFileBytes = 200 << 20
	// fileLifetime is how long batch input and output files live by default.
	fileLifetime = 30 * 24 * time.Hour
)

// uploadPurposes are the purposes a client may upload with.
var uploadPurposes = []string{"assistants", "batch", "fine-tune", "vision", "user_data", "evals"}

type file struct {
	id       string
	seq      int // upload order, to break created_at ties
	filename string
	purpose  string
	created  time.Time
	expires  time.Time // zero: never
	content  []byte
}

// fileObject is OpenAI's File object.
type fileObject struct {
	ID            string  `json:"id"`
	Object        string  `json:"object"`
	Bytes         int     `json:"bytes"`
	CreatedAt     int64   `json:"created_at"`
	ExpiresAt     *int64  `json:"expires_at"`
	Filename      string  `json:"filename"`
	Purpose       string  `json:"purpose"`
	Status        string  `json:"status"`
	StatusDetails *string `json:"status_details"`
}

func (f *file) object() fileObject {
	o := fileObject{
		ID:        f.id,
		Object:    "file",
		Bytes:     len(f.content),
		CreatedAt: f.created.Unix(),
		Filename:  f.filename,
		Purpose:   f.purpose,
		Status:    "processed",
	}
	if !f.expires.IsZero() {
		o.ExpiresAt = ptr(f.expires.Unix())
	}
	return o
}

// addFile stores a file; the caller holds the lock.
func (s *Server) addFile(filename, purpose string, content []byte, created, expires time.Time) *file {
	f := &file{
		id:       "file-" + rand.Text()[:22],
		seq:      len(s.fileIDs),
		filename: filename,
		purpose:  purpose,
		created:  created,
		expires:  expires,
		content:  content,
	}
	s.files[f.id] = f
	s.fileIDs = append(s.fileIDs, f.id)
	return f
}

// file finds a file that exists and has not expired; the caller holds the lock.
func (s *Server) file(id string, now time.Time) *file {
	f := s.files[id]
	if f == nil || (!f.expires.IsZero() && !now.Before(f.expires)) {
		return nil
	}
	return f
}

func fileNotFound(w http.ResponseWriter, id string) {
	writeError(w, http.StatusNotFound, invalidRequest("No such File object: "+id, "id", ""))
}

func (s *Server) createFile(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFileBytes)
	if err := r.ParseMultipartForm(32 << 20); err != nil {
		writeError(w, http.StatusBadRequest, invalidRequest("Invalid request: expected multipart/form-data with a 'file' part: "+err.Error(), "", ""))
		return
	}
	defer func() { _ = r.MultipartForm.RemoveAll() }()
	purpose := r.FormValue("purpose")
	if purpose == "" {
		writeError(w, http.StatusBadRequest, invalidRequest("Missing required parameter: 'purpose'.", "purpose", "missing_required_parameter"))
		return
	}
	if !slices.Contains(uploadPurposes, purpose) {
		writeError(w, http.StatusBadRequest, invalidRequest(fmt.Sprintf("Invalid value: '%s'. Supported values are: 'assistants', 'batch', 'fine-tune', 'vision', 'user_data', and 'evals'.", purpose), "purpose", "invalid_value"))
		return
	}
	parts := r.MultipartForm.File["file"]
	if len(parts) == 0 {
		writeError(w, http.StatusBadRequest, invalidRequest("Missing required parameter: 'file'.", "file", "missing_required_parameter"))
		return
	}
	header := parts[0]
	if purpose == "batch" {
		if !strings.HasSuffix(header.Filename, ".jsonl") {
			writeError(w, http.StatusBadRequest, invalidRequest("Invalid file format for Batch API. Must be .jsonl", "", ""))
			return
		}
		if header.Size > maxBatchFileBytes {
			writeError(w, http.StatusBadRequest, invalidRequest("File is too large for the Batch API: the maximum size is 200 MB.", "file", ""))
			return
		}
	}
	lifetime, e := expiresAfter(r.FormValue("expires_after[anchor]"), r.FormValue("expires_after[seconds]"))
	if e != nil {
		writeError(w, http.StatusBadRequest, *e)
		return
	}
	if lifetime == 0 && purpose == "batch" {
		lifetime = fileLifetime
	}
	part, err := header.Open()
	if err != nil {
		writeError(w, http.StatusBadRequest, invalidRequest("Invalid file: "+err.Error(), "file", ""))
		return
	}
	defer part.Close()
	content, err := io.ReadAll(part)
	if err != nil {
		writeError(w, http.StatusBadRequest, invalidRequest("Invalid file: "+err.Error(), "file", ""))
		return
	}

	now := s.lock()
	defer s.mu.Unlock()
	var expires time.Time
	if lifetime > 0 {
		expires = now.Add(lifetime)
	}
	f := s.addFile(header.Filename, purpose, content, now, expires)
	writeJSON(w, http.StatusOK, f.object())
}

// expiresAfter reads an expiration policy (files' expires_after, batches'
// output_expires_after): zero when none is given.
func expiresAfter(anchor, seconds string) (time.Duration, *apiError) {
	if anchor == "" && seconds == "" {
		return 0, nil
	}
	if anchor != "created_at" {
		e := invalidRequest(fmt.Sprintf("Invalid value: '%s'. Supported values are: 'created_at'.", anchor), "expires_after.anchor", "invalid_value")
		return 0, &e
	}
	n, err := strconv.ParseInt(seconds, 10, 64)
	if err != nil || n < 3600 || n > 2592000 {
		e := invalidRequest(fmt.Sprintf("Invalid 'expires_after.seconds': expected an integer between 3600 and 2592000, but got '%s' instead.", seconds), "expires_after.seconds", "invalid_value")
		return 0, &e
	}
	return time.Duration(n) * time.Second, nil
}

func (s *Server) getFile(w http.ResponseWriter, r *http.Request) {
	now := s.lock()
	defer s.mu.Unlock()
	id := r.PathValue("id")
	f := s.file(id, now)
	if f == nil {
		fileNotFound(w, id)
		return
	}
	writeJSON(w, http.StatusOK, f.object())
}

func (s *Server) fileContent(w http.ResponseWriter, r *http.Request) {
	now := s.lock()
	defer s.mu.Unlock()
	id := r.PathValue("id")
	f := s.file(id, now)
	if f == nil {
		fileNotFound(w, id)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(f.content)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(f.content)
}

func (s *Server) deleteFile(w http.ResponseWriter, r *http.Request) {
	now := s.lock()
	defer s.mu.Unlock()
	id := r.PathValue("id")
	if s.file(id, now) == nil {
		fileNotFound(w, id)
		return
	}
	delete(s.files, id)
	s.fileIDs = slices.DeleteFunc(s.fileIDs, func(x string) bool { return x == id })
	writeJSON(w, http.StatusOK, struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Deleted bool   `json:"deleted"`
	}{id, "file", true})
}

func (s *Server) listFiles(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, e := listLimit(q.Get("limit"), 10000, 10000)
	if e != nil {
		writeError(w, http.StatusBadRequest, *e)
		return
	}
	order := cmp.Or(q.Get("order"), "desc")
	if order != "asc" && order != "desc" {
		writeError(w, http.StatusBadRequest, invalidRequest(fmt.Sprintf("Invalid value: '%s'. Supported values are: 'asc' and 'desc'.", order), "order", "invalid_value"))
		return
	}

	now := s.lock()
	defer s.mu.Unlock()
	var files []*file
	for _, id := range s.fileIDs {
		if f := s.file(id, now); f != nil && (q.Get("purpose") == "" || f.purpose == q.Get("purpose")) {
			files = append(files, f)
		}
	}
	slices.SortFunc(files, func(a, b *file) int {
		c := cmp.Or(a.created.Compare(b.created), cmp.Compare(a.seq, b.seq))
		if order == "desc" {
			c = -c
		}
		return c
	})
	objects := make([]fileObject, len(files))
	ids := make([]string, len(files))
	for i, f := range files {
		objects[i], ids[i] = f.object(), f.id
	}
	writeJSON(w, http.StatusOK, page(objects, ids, q.Get("after"), limit))
}

// listLimit reads a list's limit parameter.
func listLimit(raw string, def, maxLimit int) (int, *apiError) {
	if raw == "" {
		return def, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 || n > maxLimit {
		e := invalidRequest(fmt.Sprintf("Invalid 'limit': expected an integer between 1 and %d, but got '%s' instead.", maxLimit, raw), "limit", "invalid_value")
		return 0, &e
	}
	return n, nil
}

// listPage is OpenAI's cursor page.
type listPage[T any] struct {
	Object  string  `json:"object"`
	Data    []T     `json:"data"`
	FirstID *string `json:"first_id"`
	LastID  *string `json:"last_id"`
	HasMore bool    `json:"has_more"`
}

// page cuts the page that follows the cursor after (an id; empty: from the
// start; unknown: nothing) out of items, listed in order with their ids.
func page[T any](items []T, ids []string, after string, limit int) listPage[T] {
	start := 0
	if after != "" {
		start = len(ids)
		if i := slices.Index(ids, after); i >= 0 {
			start = i + 1
		}
	}
	end := min(start+limit, len(ids))
	p := listPage[T]{Object: "list", Data: items[start:end], HasMore: end < len(ids)}
	if start < end {
		p.FirstID, p.LastID = &ids[start], &ids[end-1]
	}
	return p
}
