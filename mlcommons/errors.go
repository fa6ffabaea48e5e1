package mlcommons

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/outbound"
	"github.com/mlsidecar/mlsidecar/mlcommons/process"
	"github.com/mlsidecar/mlsidecar/mlcommons/remote"
	"github.com/mlsidecar/mlsidecar/mlcommons/template"
)

// Error is an answer in OpenSearch's error envelope. Handlers return it for
// every client mistake; anything else becomes a 500 whose reason names no
// internal detail.
type Error struct {
	Status int
	Type   string
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Type, e.Reason) }

// statusErr is OpenSearchStatusException: type status_exception.
func statusErr(status int, format string, a ...any) *Error {
	return &Error{Status: status, Type: "status_exception", Reason: fmt.Sprintf(format, a...)}
}

// illegalArg is IllegalArgumentException: type illegal_argument_exception, 400.
func illegalArg(format string, a ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Type: "illegal_argument_exception", Reason: fmt.Sprintf(format, a...)}
}

// parseErr is a body that is not the JSON it should be.
func parseErr(format string, a ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Type: "parse_exception", Reason: fmt.Sprintf(format, a...)}
}

// toError is the single mapping of errors to answers.
func toError(err error) (*Error, bool) {
	var e *Error
	var oe *outbound.Error
	var re *remote.Error
	var te *template.Error
	var pe *process.Error
	var se *indexstore.StatusError
	switch {
	case errors.As(err, &e):
		return e, true
	case errors.As(err, &oe):
		return &Error{Status: oe.Status, Type: oe.Type, Reason: oe.Reason}, true
	case errors.As(err, &re):
		// The provider's status is kept, as ML Commons does.
		return &Error{Status: re.Status, Type: re.Type, Reason: re.Reason}, true
	case errors.As(err, &te):
		return &Error{Status: te.Status, Type: te.Type, Reason: te.Reason}, true
	case errors.As(err, &pe):
		return &Error{Status: pe.Status, Type: pe.Type, Reason: pe.Reason}, true
	case errors.Is(err, indexstore.ErrConflict):
		return &Error{Status: http.StatusConflict, Type: "version_conflict_engine_exception",
			Reason: "the document was changed by another request; retry"}, true
	case errors.As(err, &se) && se.Status < 500:
		return &Error{Status: se.Status, Type: se.Type, Reason: se.Reason}, true
	}
	return &Error{Status: http.StatusInternalServerError, Type: "exception", Reason: "internal error in mlsidecar"}, false
}
