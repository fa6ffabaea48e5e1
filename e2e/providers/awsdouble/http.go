package awsdouble

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/mlsidecar/mlsidecar/e2e/providers/doublekit"
	"github.com/mlsidecar/mlsidecar/e2e/providers/fault"
)

// Protocol is the AWS wire protocol of a service, which decides the shape
// of its error answers.
type Protocol int

const (
	// RESTJSON (Bedrock, SageMaker runtime): the error code in the
	// X-Amzn-ErrorType header, the body {"message": ...}.
	RESTJSON Protocol = iota
	// JSON11 (SageMaker control plane): the code also as "__type" in the body.
	JSON11
)

// WriteError answers an AWS error.
func WriteError(w http.ResponseWriter, p Protocol, status int, code, message string) {
	body := map[string]string{"message": message}
	contentType := "application/json"
	if p == JSON11 {
		body["__type"] = code
		contentType = "application/x-amz-json-1.1"
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// WriteVerifyError answers the error Verifier.Verify returned.
func WriteVerifyError(w http.ResponseWriter, p Protocol, err error) {
	e, ok := err.(*Error)
	if !ok {
		e = &Error{Status: http.StatusInternalServerError, Code: "InternalFailure", Message: err.Error()}
	}
	WriteError(w, p, e.Status, e.Code, e.Message)
}

// ErrorCodes maps the HTTP status of an injected fault to the AWS error code
// the service answers it with.
type ErrorCodes map[int]string

func (c ErrorCodes) code(status int) string {
	if code, ok := c[status]; ok {
		return code
	}
	if status >= 500 {
		return "InternalFailure"
	}
	return "ValidationException"
}

// ApplyFault runs the fault due for op (see fault.Injector.Apply), answering
// with the AWS error code for its status in X-Amzn-ErrorType and, unless
// the fault brings its own body, an AWS error body.
func ApplyFault(in *fault.Injector, op string, w http.ResponseWriter, r *http.Request, p Protocol, codes ErrorCodes) bool {
	errBody := func(status int) string {
		body := map[string]string{"message": http.StatusText(status)}
		if status == http.StatusTooManyRequests {
			body["message"] = "Too many requests, please wait before trying again."
		}
		if p == JSON11 {
			body["__type"] = codes.code(status)
		}
		b, _ := json.Marshal(body)
		return string(b)
	}
	return in.Apply(op, &errorTypeWriter{ResponseWriter: w, codes: codes}, r, errBody)
}

// errorTypeWriter adds X-Amzn-ErrorType to error answers.
type errorTypeWriter struct {
	http.ResponseWriter
	codes ErrorCodes
}

func (w *errorTypeWriter) WriteHeader(status int) {
	if status >= 400 {
		w.Header().Set("X-Amzn-ErrorType", w.codes.code(status))
	}
	w.ResponseWriter.WriteHeader(status)
}

// Recorded is one request a double received; Base records them all.
type Recorded = doublekit.Recorded

// ReadJSON decodes an AWS request body into v, answering false (after
// writing a SerializationException) when it is not JSON.
func ReadJSON(w http.ResponseWriter, p Protocol, body []byte, v any) bool {
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	if err := json.Unmarshal(body, v); err != nil {
		WriteError(w, p, http.StatusBadRequest, "SerializationException", "Start of structure or map found where not expected.")
		return false
	}
	return true
}

// WriteJSON answers 200 with v as JSON.
func WriteJSON(w http.ResponseWriter, contentType string, v any) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(v)
}
