package config

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadDefaults(t *testing.T) {
	c, err := Load(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.ListenAddress, ":9201"; got != want {
		t.Errorf("ListenAddress = %q, want %q", got, want)
	}
	if got, want := c.InternalListenAddress, ":9202"; got != want {
		t.Errorf("InternalListenAddress = %q, want %q", got, want)
	}
	if got, want := c.Upstream.String(), "http://127.0.0.1:9200"; got != want {
		t.Errorf("Upstream = %q, want %q", got, want)
	}
	if c.UpstreamTLS != nil {
		t.Errorf("UpstreamTLS = %v, want nil for an http upstream", c.UpstreamTLS)
	}
	if got, want := c.ShutdownTimeout, 30*time.Second; got != want {
		t.Errorf("ShutdownTimeout = %s, want %s", got, want)
	}
}

// Resource access control is off unless asked for, as in ML Commons.
func TestLoadAccessControl(t *testing.T) {
	c, err := Load(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.ModelAccessControl || c.ConnectorAccessControl {
		t.Errorf("defaults: model %v connector %v, want both off", c.ModelAccessControl, c.ConnectorAccessControl)
	}
	c, err = Load([]string{"--model-access-control"}, env(map[string]string{"MLSIDECAR_CONNECTOR_ACCESS_CONTROL": "true"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !c.ModelAccessControl || !c.ConnectorAccessControl {
		t.Errorf("set: model %v connector %v, want both on", c.ModelAccessControl, c.ConnectorAccessControl)
	}
}

func TestLoadPrecedence(t *testing.T) {
	file := writeFile(t, "c.yaml", "upstream: http://file:1\nlisten-address: 127.0.0.1:7001\nlog-level: warn\nshutdown-timeout: 5s\n")
	tests := []struct {
		name         string
		args         []string
		env          map[string]string
		wantUpstream string
		wantListen   string
	}{
		{"file beats default", []string{"--config", file}, nil, "http://file:1", "127.0.0.1:7001"},
		{"env beats file", []string{"--config", file}, map[string]string{"MLSIDECAR_UPSTREAM": "http://env:2"}, "http://env:2", "127.0.0.1:7001"},
		{"flag beats env", []string{"--config", file, "--upstream", "https://flag:3"}, map[string]string{"MLSIDECAR_UPSTREAM": "http://env:2"}, "https://flag:3", "127.0.0.1:7001"},
		{"config file from env", nil, map[string]string{"MLSIDECAR_CONFIG": file, "MLSIDECAR_LISTEN_ADDRESS": ":7002"}, "http://file:1", ":7002"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.args, env(tt.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Upstream.String(); got != tt.wantUpstream {
				t.Errorf("Upstream = %q, want %q", got, tt.wantUpstream)
			}
			if got := c.ListenAddress; got != tt.wantListen {
				t.Errorf("ListenAddress = %q, want %q", got, tt.wantListen)
			}
			if got, want := c.ShutdownTimeout, 5*time.Second; got != want {
				t.Errorf("ShutdownTimeout = %s, want %s (from file)", got, want)
			}
		})
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	file := writeFile(t, "c.yaml", "no-such-option: 1\nlog-format: xml\n")
	_, err := Load([]string{
		"--config", file,
		"--upstream", "ftp://x",
		"--log-level", "loud",
		"--listen-address", "nope",
		"--shutdown-timeout", "0s",
		"--upstream-username", "svc",
	}, env(map[string]string{"MLSIDECAR_UPSTREAM_DIAL_TIMEOUT": "soon"}), io.Discard)
	if err == nil {
		t.Fatal("Load succeeded, want errors")
	}
	for _, want := range []string{"no-such-option", "upstream-dial-timeout", "upstream:", "log-level:", "log-format:",
		"listen-address:", "shutdown-timeout:", "upstream-password-file:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

func TestLoadUpstreamValidation(t *testing.T) {
	tests := []struct {
		upstream string
		wantErr  string
	}{
		{"http://127.0.0.1:9200", ""},
		{"https://search.example:443/prefix/", ""},
		{"ftp://host", "scheme must be http or https"},
		{"http://", "must name a host"},
		{"http://user:pw@host:9200", "must not carry credentials"},
		{"http://host:9200/?x=1", "must not have a query"},
	}
	for _, tt := range tests {
		t.Run(tt.upstream, func(t *testing.T) {
			_, err := Load([]string{"--upstream", tt.upstream}, env(nil), io.Discard)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("got %v, want no error", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("got %v, want error containing %q", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "pw@") {
				t.Errorf("error %q repeats the credentials", err)
			}
		})
	}
}

func TestLoadPasswordFile(t *testing.T) {
	pw := writeFile(t, "pw", "s3cret\n")
	c, err := Load([]string{"--upstream-username", "svc", "--upstream-password-file", pw}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.UpstreamPassword, "s3cret"; got != want {
		t.Errorf("UpstreamPassword = %q, want %q", got, want)
	}

	empty := writeFile(t, "empty", "\n")
	_, err = Load([]string{"--upstream-username", "svc", "--upstream-password-file", empty}, env(nil), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "upstream-password-file: file is empty") {
		t.Errorf("got %v, want an empty-file error", err)
	}
}

func TestLoadTLS(t *testing.T) {
	_, err := Load([]string{"--upstream", "http://h:9200", "--upstream-insecure-skip-verify"}, env(nil), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "not https") {
		t.Errorf("got %v, want TLS-on-http error", err)
	}
	c, err := Load([]string{"--upstream", "https://h:9200", "--upstream-server-name", "node-0", "--upstream-insecure-skip-verify"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.UpstreamTLS == nil || c.UpstreamTLS.ServerName != "node-0" || !c.UpstreamTLS.InsecureSkipVerify {
		t.Errorf("UpstreamTLS = %+v, want server name node-0 and skip verify", c.UpstreamTLS)
	}
	_, err = Load([]string{"--upstream", "https://h:9200", "--upstream-ca-file", writeFile(t, "ca.pem", "not pem")}, env(nil), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "upstream-ca-file: no PEM certificate found") {
		t.Errorf("got %v, want a bad-CA error", err)
	}
	_, err = Load([]string{"--upstream", "https://h:9200", "--upstream-cert-file", "/nonexistent"}, env(nil), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "upstream-key-file") {
		t.Errorf("got %v, want cert-without-key error", err)
	}
}

func TestLoadHelp(t *testing.T) {
	var out strings.Builder
	_, err := Load([]string{"-h"}, env(nil), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("got %v, want flag.ErrHelp", err)
	}
	if !strings.Contains(out.String(), "-upstream-password-file") {
		t.Errorf("usage does not list the options:\n%s", out.String())
	}
}

func TestEnvName(t *testing.T) {
	if got, want := EnvName("upstream-ca-file"), "MLSIDECAR_UPSTREAM_CA_FILE"; got != want {
		t.Errorf("EnvName = %q, want %q", got, want)
	}
}

func FuzzLoadFile(f *testing.F) {
	f.Add("upstream: http://h:1\n")
	f.Add("log-level: [a, b]\n")
	f.Add(": :\n")
	f.Fuzz(func(t *testing.T, content string) {
		p := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load([]string{"--config", p}, env(nil), io.Discard)
		if err == nil && c.Upstream == nil {
			t.Fatal("Load succeeded without an upstream")
		}
	})
}

func TestLoadMLSettings(t *testing.T) {
	c, err := Load(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.MLSettings != "cluster" || c.MLSettingsRefresh != 5*time.Second {
		t.Errorf("defaults: %q %s, want cluster 5s", c.MLSettings, c.MLSettingsRefresh)
	}
	if got := c.TrustedEndpointExprs; len(got) != len(DefaultTrustedEndpoints()) || got[0] != DefaultTrustedEndpoints()[0] {
		t.Errorf("trusted endpoint expressions %q, want the defaults as given", got)
	}
	if r := c.BatchStatusRules[0]; r.Expr != `(stopping|cancelling)` {
		t.Errorf("first status rule %+v, want the cancelling regex as given", r)
	}
	c, err = Load([]string{"--ml-settings", "locked", "--ml-settings-refresh", "1s"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.MLSettings != "locked" || c.MLSettingsRefresh != time.Second {
		t.Errorf("set: %q %s", c.MLSettings, c.MLSettingsRefresh)
	}
	_, err = Load([]string{"--ml-settings", "open", "--ml-settings-refresh", "1ms"}, env(nil), io.Discard)
	for _, want := range []string{"ml-settings: must be cluster or locked", "ml-settings-refresh: must be at least 100ms"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want it to say %q", err, want)
		}
	}
}
