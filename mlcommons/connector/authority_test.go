package connector

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
	"github.com/mlsidecar/mlsidecar/mlcommons/template"
)

const (
	reasonChanged     = "Request parameters cannot change the scheme, host or port of the connector URL"
	reasonFromRequest = "The connector URL takes its scheme, host or port from request parameters; they must come from the connector's own parameters"
)

// Each row builds a call the way _predict does: the connector's parameters,
// then the caller's, escaped as ML Commons escapes them.
func TestCallRefusesRequestChosenAuthority(t *testing.T) {
	const regional = "https://bedrock-runtime.${parameters.region}.amazonaws.com/model/${parameters.model}/invoke"
	tests := []struct {
		name    string
		url     string
		own     map[string]string
		request map[string]any
		wantURL string // "" when refused
		reason  string
	}{
		{name: "connector region", url: regional, own: map[string]string{"region": "us-east-1"},
			request: map[string]any{"model": "m"},
			wantURL: "https://bedrock-runtime.us-east-1.amazonaws.com/model/m/invoke"},
		{name: "same region again", url: regional, own: map[string]string{"region": "us-east-1"},
			request: map[string]any{"region": "us-east-1", "model": "m"},
			wantURL: "https://bedrock-runtime.us-east-1.amazonaws.com/model/m/invoke"},
		{name: "host name case", url: regional, own: map[string]string{"region": "us-east-1"},
			request: map[string]any{"region": "US-EAST-1", "model": "m"},
			wantURL: "https://bedrock-runtime.US-EAST-1.amazonaws.com/model/m/invoke"},
		{name: "path and query from the request", url: "https://api.openai.com/v1/${parameters.path}?a=${parameters.a}",
			request: map[string]any{"path": "x/y", "a": "b@c", "no_escape_params": "path"},
			wantURL: "https://api.openai.com/v1/x/y?a=b@c"},
		{name: "no parameters at all", url: "https://api.openai.com/v1/embeddings",
			wantURL: "https://api.openai.com/v1/embeddings"},

		{name: "other region", url: regional, own: map[string]string{"region": "us-east-1"},
			request: map[string]any{"region": "us-west-2", "model": "m"}, reason: reasonChanged},
		{name: "region with a path", url: regional, own: map[string]string{"region": "us-east-1"},
			request: map[string]any{"region": "evil.example/x", "model": "m", "no_escape_params": "region"}, reason: reasonChanged},
		{name: "region with user info", url: regional, own: map[string]string{"region": "us-east-1"},
			request: map[string]any{"region": "x@evil.example/x", "model": "m", "no_escape_params": "region"}, reason: reasonChanged},
		{name: "region with a fragment", url: regional, own: map[string]string{"region": "us-east-1"},
			request: map[string]any{"region": "evil.example#x", "model": "m"}, reason: reasonChanged},
		{name: "region with a port", url: regional, own: map[string]string{"region": "us-east-1"},
			request: map[string]any{"region": "us-east-1.amazonaws.com:8443/x", "model": "m", "no_escape_params": "region"}, reason: reasonChanged},
		{name: "path parameter carries a host", url: "https://api.openai.com${parameters.path}",
			own:     map[string]string{"path": "/v1/embeddings"},
			request: map[string]any{"path": "@evil.example/v1", "no_escape_params": "path"}, reason: reasonChanged},
		{name: "region only from the request", url: regional,
			request: map[string]any{"region": "us-east-1", "model": "m"}, reason: reasonFromRequest},
		{name: "host through a connector parameter", url: "https://${parameters.endpoint}/v1",
			own:     map[string]string{"endpoint": "${parameters.host}"},
			request: map[string]any{"host": "api.openai.com"}, reason: reasonFromRequest},
		{name: "default in the host", url: "https://${parameters.host:-api.openai.com}/v1",
			own: map[string]string{"model": "m"}, request: map[string]any{"host": "evil.example"}, reason: reasonChanged},
		{name: "scheme from the request", url: "${parameters.scheme}://api.openai.com/v1",
			request: map[string]any{"scheme": "http"}, reason: reasonFromRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &Bound{Connector: &indexstore.Connector{Parameters: tt.own}}
			act := &indexstore.ConnectorAction{ActionType: indexstore.ActionPredict, Method: "POST", URL: tt.url}
			params := template.Merge(tt.own, template.RequestParameters(tt.request), nil)
			c, err := b.Call(act, act, params)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Call = %v, want %s", err, tt.wantURL)
				}
				if c.URL != tt.wantURL {
					t.Errorf("URL = %q, want %q", c.URL, tt.wantURL)
				}
				return
			}
			var e *mlerr.Error
			if !errors.As(err, &e) {
				t.Fatalf("Call = %v (URL %q), want a refusal", err, c.URL)
			}
			if e.Status != 400 || e.Type != "illegal_argument_exception" || e.Reason != tt.reason {
				t.Errorf("got {%d %q %q}, want {400 illegal_argument_exception %q}", e.Status, e.Type, e.Reason, tt.reason)
			}
			if strings.Contains(e.Reason, "evil") {
				t.Errorf("reason %q repeats the caller's value", e.Reason)
			}
		})
	}
}

func FuzzCheckAuthority(f *testing.F) {
	for _, s := range []string{"us-east-1", "evil.example/x", "x@evil.example/x", "evil.example#x", "a:1", "", "${parameters.region}"} {
		f.Add(s)
	}
	const tmpl = "https://bedrock-runtime.${parameters.region}.amazonaws.com/model/m/invoke"
	own := map[string]string{"region": "us-east-1"}
	f.Fuzz(func(t *testing.T, region string) {
		got, err := template.URL(tmpl, map[string]string{"region": region})
		if err != nil {
			return
		}
		err = checkAuthority(tmpl, own, got)
		u, perr := url.Parse(got)
		if perr != nil {
			t.Fatalf("template.URL gave %q, which does not parse: %v", got, perr)
		}
		same := u.Scheme == "https" && u.User == nil && strings.EqualFold(u.Host, "bedrock-runtime.us-east-1.amazonaws.com")
		if err == nil && !same {
			t.Fatalf("region %q: %q accepted, but it goes to %q", region, got, u.Host)
		}
		if err != nil && same {
			t.Fatalf("region %q: %q refused, but it keeps the host: %v", region, got, err)
		}
	})
}
