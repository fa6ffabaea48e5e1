package ingest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Source yields the lines of one input file, without their line ends.
//
// Next returns a line and the byte offset where it starts; the line is
// valid until the next call. At the end it returns io.EOF with the offset
// just past the last byte. A line longer than the limit comes back as a
// *LineTooLongError with its offset, and the next call goes on with the
// line after it. Any other error ends the source.
type Source interface {
	Next() (line []byte, offset int64, err error)
	Close() error
}

// DefaultMaxLineBytes bounds one line: a 3072-dimension float embedding as
// JSON text is about 70 KB, a long chat completion a few hundred.
const DefaultMaxLineBytes = 8 << 20

// LineTooLongError is a line over the reader's limit. It is a record
// failure: the reader has skipped the line.
type LineTooLongError struct {
	Offset int64
	Limit  int
}

func (e *LineTooLongError) Error() string {
	return fmt.Sprintf("the line at byte %d is longer than the limit of %d bytes", e.Offset, e.Limit)
}

// opener starts the stream at offset. size is the whole object's length in
// bytes, or -1 when the answer does not say.
type opener func(ctx context.Context, offset int64) (body io.ReadCloser, size int64, err error)

// Reader is a Source over a stream that can be reopened at an offset: a
// failure mid-stream (a reset connection) reopens it where it broke, up to
// maxReopens times in a row, so a long download does not start over.
type Reader struct {
	// ctx is the context the stream was opened with: it bounds every read
	// and reopen, as a request's context bounds its response body.
	ctx     context.Context
	stream  *stream
	br      *bufio.Reader
	next    int64 // offset of the next line
	max     int
	buf     []byte
	err     error // sticky: the source has ended
	atStart bool  // the stream began at offset 0: a BOM may follow
}

const (
	maxReopens    = 3
	readBufBytes  = 64 << 10
	reopenBackoff = 500 * time.Millisecond
)

// newReader opens the stream at offset. maxLine <= 0 means
// DefaultMaxLineBytes.
func newReader(ctx context.Context, open opener, offset int64, maxLine int) (*Reader, error) {
	if offset < 0 {
		return nil, fmt.Errorf("ingest: negative offset %d", offset)
	}
	if maxLine <= 0 {
		maxLine = DefaultMaxLineBytes
	}
	body, size, err := open(ctx, offset)
	if err != nil {
		return nil, err
	}
	s := &stream{ctx: ctx, open: open, body: body, pos: offset, size: size}
	return &Reader{
		ctx:     ctx,
		stream:  s,
		br:      bufio.NewReaderSize(s, readBufBytes),
		next:    offset,
		max:     maxLine,
		atStart: offset == 0,
	}, nil
}

// Size is the length of the whole object in bytes, -1 when unknown: with
// the offsets it gives a task's progress.
func (r *Reader) Size() int64 { return r.stream.size }

// Close releases the stream.
func (r *Reader) Close() error { return r.stream.Close() }

var bom = []byte("\xef\xbb\xbf")

// Next implements Source.
func (r *Reader) Next() ([]byte, int64, error) {
	if r.err != nil {
		return nil, r.next, r.err
	}
	start := r.next
	r.buf = r.buf[:0]
	tooLong := false
	whole := false // the line came in one slice of the buffer, r.buf unused
	var line []byte
	for {
		chunk, err := r.br.ReadSlice('\n')
		r.next += int64(len(chunk))
		switch {
		case tooLong:
		case len(r.buf)+len(chunk) > r.max+2: // room for "\r\n"
			tooLong = true
			r.buf = r.buf[:0]
		case err == nil && len(r.buf) == 0:
			line, whole = chunk, true
		default:
			r.buf = append(r.buf, chunk...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err == io.EOF {
			if r.next == start {
				r.err = io.EOF
				return nil, r.next, io.EOF
			}
			break // a last line without a line end
		}
		if err != nil {
			r.err = err
			return nil, start, err
		}
		break
	}
	if !whole {
		line = r.buf
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if tooLong || len(line) > r.max {
		return nil, start, &LineTooLongError{Offset: start, Limit: r.max}
	}
	if start == 0 && r.atStart {
		line = bytes.TrimPrefix(line, bom)
	}
	return line, start, nil
}

// stream reads the body, reopening it at the current offset after a
// failure that is not the context's.
type stream struct {
	ctx     context.Context
	open    opener
	body    io.ReadCloser
	pos     int64 // offset of the next byte
	size    int64
	reopens int // in a row, without a byte read in between
}

func (s *stream) Read(p []byte) (int, error) {
	for {
		n, err := s.body.Read(p)
		s.pos += int64(n)
		if n > 0 {
			s.reopens = 0
		}
		if err == nil || err == io.EOF || n > 0 {
			if err != nil && err != io.EOF && n > 0 {
				err = nil // report the bytes now, the failure on the next read
			}
			return n, err
		}
		if s.ctx.Err() != nil || s.reopens >= maxReopens {
			return 0, fmt.Errorf("reading at byte %d: %w", s.pos, err)
		}
		s.reopens++
		if err := sleep(s.ctx, time.Duration(s.reopens)*reopenBackoff); err != nil {
			return 0, err
		}
		_ = s.body.Close()
		body, _, oerr := s.open(s.ctx, s.pos)
		if oerr != nil {
			s.body = io.NopCloser(bytes.NewReader(nil))
			return 0, fmt.Errorf("reopening at byte %d after %v: %w", s.pos, err, oerr)
		}
		s.body = body
	}
}

func (s *stream) Close() error { return s.body.Close() }

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
