// Package provider is what mlsidecar knows of each model provider's batch
// API: how to recognise its connectors, the status and cancel actions ML
// Commons derives when a connector has none, the parameters those actions
// need from a job, and the job's id. One file per provider; their names and
// field names appear nowhere else.
package provider

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

// Provider is one provider's batch API.
type Provider interface {
	// Name labels metrics and is kept with a batch task.
	Name() string
	// recognises reports whether a connector URL's host (lower case) is the
	// provider's.
	recognises(host string) bool
	// derive is ML Commons' default status (status true) or cancel action,
	// given the batch_predict URL with the connector's parameters filled
	// and without a trailing slash; false when the provider has none.
	derive(base string, status bool) (method, url, body string, ok bool)
	// addJobParameters adds what the status and cancel templates need and
	// the job answer does not hold as such.
	addJobParameters(job map[string]string)
	// jobID is the provider's id of the job, "" when job has none.
	jobID(job map[string]any) string
	// throttled reports an answer that means "slow down, try again" in the
	// provider's own terms (429 and 5xx are retried for everyone).
	throttled(resp *http.Response) bool
}

// known are the providers, in the order their host names are tried.
var known = [...]Provider{sageMaker{}, openAI{}, bedrock{}, cohere{}}

// NameParameter is the connector parameter that names the provider when its
// URL does not tell (a proxy, a private endpoint).
const NameParameter = "mlsidecar.provider"

// other is a connector of no known provider: calls work, nothing is
// derived. Its name is always "other", whatever mlsidecar.provider says:
// names become metric labels, and a caller-chosen one would make /metrics
// grow with every connector.
type other struct{}

func (other) Name() string                                       { return "other" }
func (other) recognises(string) bool                             { return false }
func (other) derive(string, bool) (string, string, string, bool) { return "", "", "", false }
func (other) addJobParameters(map[string]string)                 {}
func (other) jobID(map[string]any) string                        { return "" }
func (other) throttled(*http.Response) bool                      { return false }

// Of is the provider of a connector: the mlsidecar.provider parameter wins,
// else the host of rawURL (the action's URL) tells.
func Of(c *indexstore.Connector, rawURL string) Provider {
	if p := c.Parameters[NameParameter]; p != "" {
		return Named(strings.ToLower(p))
	}
	host := rawURL
	if u, err := url.Parse(rawURL); err == nil {
		host = u.Host
	}
	host = strings.ToLower(host)
	for _, p := range known {
		if p.recognises(host) {
			return p
		}
	}
	return other{}
}

// Named is the provider called name (as Name returns it); an unknown name
// is a provider of which nothing is known, named "other".
func Named(name string) Provider {
	for _, p := range known {
		if p.Name() == name {
			return p
		}
	}
	return other{}
}

// DerivedAction is ML Commons' default status or cancel action of a
// connector without one, built from its batch_predict action.
func DerivedAction(p Provider, c *indexstore.Connector, actionType string, base string) (*indexstore.ConnectorAction, error) {
	batch := c.Action(indexstore.ActionBatchPredict)
	if batch == nil {
		return nil, mlerr.IllegalArgument("no BATCH_PREDICT action found")
	}
	status := actionType == indexstore.ActionBatchPredictStatus
	method, u, body, ok := p.derive(strings.TrimRight(base, "/"), status)
	if !ok {
		what := "get the batch job details"
		if !status {
			what = "cancel the batch job"
		}
		return nil, mlerr.UnsupportedOperation(fmt.Sprintf("Please configure the action type to %s in the connector", what))
	}
	return &indexstore.ConnectorAction{ActionType: actionType, Method: method, URL: u, RequestBody: body, Headers: batch.Headers}, nil
}

// JobParameters are the raw request parameters of a job's status and
// cancel calls: the string fields of its remote_job, and what each provider
// derives from them (ML Commons derives them whatever the connector's
// provider, so do we).
//
// They are the provider's data, not templates, and land in URLs: each one
// is percent-escaped (see Literal), so "x?admin=1" stays one path segment
// and "${parameters.id}" is no placeholder. ML Commons inserts them raw and
// expands them (see COMPATIBILITY.md).
func JobParameters(job map[string]any) map[string]any {
	text := map[string]string{}
	for k, v := range job {
		if s, ok := v.(string); ok {
			text[k] = s
		}
	}
	for _, p := range known {
		p.addJobParameters(text)
	}
	out := make(map[string]any, len(text))
	for k, v := range text {
		out[k] = Literal(v)
	}
	return out
}

// Literal makes a provider value safe to substitute anywhere in a URL, a
// path segment or a query value, and inert in a template: every byte but
// RFC 3986's unreserved ones, ":" and "@" is percent-escaped. A value that
// is already in that form (Bedrock's processedJobArn, "%2F"-escaped by ML
// Commons' batch_job_arn function) is kept, not escaped twice. Real ids
// (OpenAI's batch_abc123, Cohere's UUIDs, SageMaker's names) have nothing
// to escape.
func Literal(v string) string {
	if raw, err := url.PathUnescape(v); err == nil && escape(raw) == v {
		return v
	}
	return escape(v)
}

func escape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', strings.IndexByte("-._~:@", c) >= 0:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// JobID is the provider's id of a job, whichever provider's it is; "" when
// none is found.
func JobID(job map[string]any) string {
	for _, p := range known {
		if id := p.jobID(job); id != "" {
			return id
		}
	}
	return ""
}

// Throttled reports whether a provider answer means "try again" in any
// known provider's terms.
func Throttled(resp *http.Response) bool {
	for _, p := range known {
		if p.throttled(resp) {
			return true
		}
	}
	return false
}

func stringField(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}
