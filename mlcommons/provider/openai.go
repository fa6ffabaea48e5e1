package provider

import (
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"strings"

	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

// openAI is the OpenAI Batch API: jobs are /v1/batches/{id}.
type openAI struct{}

func (openAI) Name() string { return "openai" }

func (openAI) recognises(host string) bool { return strings.Contains(host, "openai") }

func (openAI) derive(base string, status bool) (string, string, string, bool) {
	if status {
		return http.MethodGet, base + "/${parameters.id}", "", true
	}
	return http.MethodPost, base + "/${parameters.id}/cancel", "", true
}

func (openAI) addJobParameters(map[string]string) {}

func (openAI) jobID(job map[string]any) string { return stringField(job, "id") }

func (openAI) throttled(*http.Response) bool { return false }

// openAIKey is the metadata key of a batch that holds its task's id.
const openAIKey = "mlsidecar_task_id"

func (openAI) withKey(body []byte, taskID string) ([]byte, string) {
	out, ok := addField(body, "metadata", map[string]string{openAIKey: taskID})
	if !ok {
		return body, ""
	}
	return out, taskID
}

// ListURL implements Lister: GET /v1/batches lists the newest first.
func (openAI) ListURL(base, after string) string {
	u := base + "?limit=100"
	if after != "" {
		u += "&after=" + url.QueryEscape(after)
	}
	return u
}

// Find implements Lister.
func (openAI) Find(page []byte, key string, since int64) ([]byte, string, error) {
	var p struct {
		Data    []json.RawMessage `json:"data"`
		HasMore bool              `json:"has_more"`
		LastID  string            `json:"last_id"`
	}
	if err := json.Unmarshal(page, &p); err != nil {
		return nil, "", mlerr.BadGateway("Remote service answered the list of batches with something else")
	}
	oldest := int64(math.MaxInt64)
	for _, raw := range p.Data {
		var b struct {
			Metadata  map[string]string `json:"metadata"`
			CreatedAt int64             `json:"created_at"`
		}
		if json.Unmarshal(raw, &b) != nil {
			continue
		}
		if b.Metadata[openAIKey] == key {
			return raw, "", nil
		}
		oldest = min(oldest, b.CreatedAt)
	}
	if !p.HasMore || p.LastID == "" || oldest < since {
		return nil, "", nil
	}
	return nil, p.LastID, nil
}
