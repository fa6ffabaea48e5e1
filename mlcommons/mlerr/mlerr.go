// Package mlerr is the one error type of the ML API: an answer in
// OpenSearch's error envelope, constructed where the error is known and named
// after the ML Commons exception it stands for. Every package under mlcommons
// returns it for what a caller or a provider did wrong; the REST layer turns
// it into a response, and anything else into a 500 that names no detail.
package mlerr

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Error is an answer in OpenSearch's error envelope. Error() is the reason
// alone: the text ML Commons would show.
type Error struct {
	Status int
	Type   string
	Reason string
	// Line and Col are where in the body a parsing_exception was found
	// (1-based, 0: not known), as OpenSearch's ParsingException shows them.
	Line, Col int

	cause error // a sentinel or cause for errors.Is, never shown
}

func (e *Error) Error() string { return e.Reason }

func (e *Error) Unwrap() error { return e.cause }

// Wrapping returns a copy of e that errors.Is matches against cause too.
func (e *Error) Wrapping(cause error) *Error {
	c := *e
	c.cause = cause
	return &c
}

// From finds the *Error in err's chain.
func From(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// Reason is the text an error shows a caller: the reason of an *Error, and
// for anything else a phrase that names no internal detail.
func Reason(err error) string {
	if e, ok := From(err); ok {
		return e.Reason
	}
	return "internal error"
}

func newf(status int, typ, format string, a []any) *Error {
	reason := format
	if len(a) > 0 {
		reason = fmt.Sprintf(format, a...)
	}
	return &Error{Status: status, Type: typ, Reason: reason}
}

// New is an error of any OpenSearch exception type, for the few that have
// no constructor of their own (security_exception).
func New(status int, typ, reason string) *Error {
	return &Error{Status: status, Type: typ, Reason: reason}
}

// Status is OpenSearchStatusException: status_exception with the status
// ML Commons gives it.
func Status(status int, format string, a ...any) *Error {
	return newf(status, "status_exception", format, a)
}

// IllegalArgument is IllegalArgumentException: 400.
func IllegalArgument(format string, a ...any) *Error {
	return newf(http.StatusBadRequest, "illegal_argument_exception", format, a)
}

// IllegalState is IllegalStateException, which OpenSearch answers with 500.
func IllegalState(format string, a ...any) *Error {
	return newf(http.StatusInternalServerError, "illegal_state_exception", format, a)
}

// Parse is a body that is not the JSON it should be (OpenSearchParseException): 400.
func Parse(format string, a ...any) *Error {
	return newf(http.StatusBadRequest, "parse_exception", format, a)
}

// UnsupportedOperation is UnsupportedOperationException, answered 400 by ML
// Commons' REST actions.
func UnsupportedOperation(format string, a ...any) *Error {
	return newf(http.StatusBadRequest, "unsupported_operation_exception", format, a)
}

// ContentTooLong is a request body over the limit (413).
func ContentTooLong(limit int64) *Error {
	return newf(http.StatusRequestEntityTooLarge, "content_too_long_exception",
		"request body is larger than the limit of [%d] bytes", []any{limit})
}

// VersionConflict is VersionConflictEngineException: 409.
func VersionConflict(format string, a ...any) *Error {
	return newf(http.StatusConflict, "version_conflict_engine_exception", format, a)
}

// Exception is a plain OpenSearchException with a status: type "exception".
func Exception(status int, format string, a ...any) *Error {
	return newf(status, "exception", format, a)
}

// BadGateway is a provider answer the sidecar cannot use: 502
// status_exception, the provider's fault and neither the caller's nor ours.
func BadGateway(format string, a ...any) *Error {
	return Status(http.StatusBadGateway, format, a...)
}

// Provider is a provider's own failure answer, its status kept as ML
// Commons keeps it.
func Provider(status int, format string, a ...any) *Error {
	return Status(status, format, a...)
}

// envelope is OpenSearch's error body, its fields in OpenSearch's order.
type envelope struct {
	Error struct {
		RootCause []cause `json:"root_cause"`
		cause
	} `json:"error"`
	Status int `json:"status"`
}

type cause struct {
	Type   string `json:"type"`
	Reason string `json:"reason"`
	Line   int    `json:"line,omitempty"`
	Col    int    `json:"col,omitempty"`
}

// Envelope is the error as OpenSearch's error body:
// {"error":{"root_cause":[{"type","reason"}],"type","reason"},"status"}.
func (e *Error) Envelope() []byte {
	var b envelope
	b.Error.cause = cause{Type: e.Type, Reason: e.Reason, Line: e.Line, Col: e.Col}
	b.Error.RootCause = []cause{b.Error.cause}
	b.Status = e.Status
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // OpenSearch writes <, > and & as they are
	if err := enc.Encode(b); err != nil {
		panic(err) // strings and ints always encode
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
