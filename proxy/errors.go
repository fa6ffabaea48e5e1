package proxy

import (
	"encoding/json"
	"net/http"
)

// errorBody is OpenSearch's error envelope, so every OpenSearch client can
// parse what the sidecar itself answers.
type errorBody struct {
	Error struct {
		RootCause []errorCause `json:"root_cause"`
		errorCause
	} `json:"error"`
	Status int `json:"status"`
}

type errorCause struct {
	Type   string `json:"type"`
	Reason string `json:"reason"`
}

// WriteError answers status with OpenSearch's error envelope.
func WriteError(w http.ResponseWriter, status int, typ, reason string) {
	var b errorBody
	b.Error.errorCause = errorCause{Type: typ, Reason: reason}
	b.Error.RootCause = []errorCause{b.Error.errorCause}
	b.Status = status
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(b) // the client may be gone; nothing to do then
}
