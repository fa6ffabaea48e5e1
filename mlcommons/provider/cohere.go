package provider

import (
	"net/http"
	"strings"
)

// cohere is Cohere's embed jobs API: jobs are /v1/embed-jobs/{job_id}.
type cohere struct{}

func (cohere) Name() string { return "cohere" }

func (cohere) recognises(host string) bool { return strings.Contains(host, "cohere") }

// derive uses job_id, the field Cohere names its job by (ML Commons uses
// id, which never resolves there).
func (cohere) derive(base string, status bool) (string, string, string, bool) {
	if status {
		return http.MethodGet, base + "/${parameters.job_id}", "", true
	}
	return http.MethodPost, base + "/${parameters.job_id}/cancel", "", true
}

func (cohere) addJobParameters(map[string]string) {}

func (cohere) jobID(job map[string]any) string { return stringField(job, "job_id") }

func (cohere) throttled(*http.Response) bool { return false }
