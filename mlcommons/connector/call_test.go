package connector

import (
	"strings"
	"testing"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

const key = "sk-live-0123456789abcdef"

func bound(params map[string]string, headers map[string]string) (*Bound, *indexstore.ConnectorAction) {
	act := indexstore.ConnectorAction{ActionType: indexstore.ActionPredict, Method: "POST",
		URL: "https://api.openai.com/v1/embeddings", Headers: headers, RequestBody: `{"input":"${parameters.input}"}`}
	c := &indexstore.Connector{Protocol: "http", Parameters: params, Actions: []indexstore.ConnectorAction{act}}
	return &Bound{Connector: c, credential: map[string]string{"openAI_key": key, "region": "us-east-1"}}, &c.Actions[0]
}

// A header's parameter cycle is reported naming the header, without its
// text: ML Commons filled the credential first and quoted the header, key
// and all, in the 500 reason.
func TestCallHeaderErrorShowsNoCredential(t *testing.T) {
	b, act := bound(map[string]string{"a": "${parameters.b}", "b": "${parameters.a}"},
		map[string]string{"Authorization": "Bearer ${credential.openAI_key} ${parameters.a}"})
	_, err := b.Call(act, act, map[string]string{"input": "x"})
	e, ok := mlerr.From(err)
	if !ok || e.Status != 500 {
		t.Fatalf("got %v, want a 500 cycle error", err)
	}
	if strings.Contains(err.Error(), key) || strings.Contains(e.Reason, "Bearer") {
		t.Errorf("reason %q shows the header's text", e.Reason)
	}
	if !strings.Contains(e.Reason, "header Authorization") {
		t.Errorf("reason %q does not name the header", e.Reason)
	}
}

// Every call carries the credential's secret values, for the engine to
// redact from answers; configuration kept among credentials is no secret.
func TestCallCarriesSecrets(t *testing.T) {
	b, act := bound(map[string]string{"scheme": "Bearer"}, map[string]string{"Authorization": "${parameters.scheme} ${credential.openAI_key}"})
	c, err := b.Call(act, act, map[string]string{"input": "x"})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Headers["Authorization"]; got != "Bearer "+key {
		t.Errorf("Authorization = %q, want the parameter and the credential filled", got)
	}
	if len(c.Secrets) != 1 || c.Secrets[0] != key {
		t.Errorf("Secrets = %q, want only the key", c.Secrets)
	}
}
