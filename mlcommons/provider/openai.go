package provider

import (
	"net/http"
	"strings"
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
