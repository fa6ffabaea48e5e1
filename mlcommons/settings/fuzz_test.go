package settings

import (
	"bytes"
	"slices"
	"sort"
	"strings"
	"testing"
)

// FuzzSettingsBody: any body splits without a panic; the settings forwarded
// and the settings kept are together the settings of the body, the ML
// Commons ones kept and none forwarded; a body without them is forwarded
// byte for byte; checking and merging never panic.
func FuzzSettingsBody(f *testing.F) {
	for _, seed := range []string{
		`{"persistent":{"plugins.ml_commons.only_run_on_ml_node":false,"cluster.max_shards_per_node":5}}`,
		`{"persistent":{"plugins":{"ml_commons":{"connector":{"private_ip_enabled":true}},"security":{"a":1}}}}`,
		`{"transient":{"plugins.ml_commons":{"remote_job.status_field":["a"]}},"persistent":{"plugins.*":null}}`,
		`{"persistent":{"plugins.ml_commons.trusted_connector_endpoints_regex":["^https://x/.*$",1]},"transient":{}}`,
		`{"persistent":{"plugins.ml_commons.*":null,"plugins":{"ml_commons.max_batch_inference_tasks":"7"}},"x":[1]}`,
		`{"persistent":null}`, `[]`, `{"persistent":{"a":{"b":{}}}}`, `{"persistent":{"plugins.ml_commons.x":{"y":[[]]}}}`,
	} {
		f.Add([]byte(seed))
	}
	s, err := New(Options{Mode: ModeCluster, Flags: testFlags()})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		sp, err := SplitBody(body)
		if err != nil {
			return
		}
		in := settingKeys(t, body)
		var kept []string
		for _, e := range sp.ML {
			if !strings.HasPrefix(e.Key, Prefix) {
				t.Errorf("kept %q, not an ML Commons setting", e.Key)
			}
			kept = append(kept, e.Scope+" "+e.Key)
		}
		if len(sp.ML) == 0 && !bytes.Equal(sp.Forward, body) {
			t.Fatalf("a body without ML Commons settings changed:\n%s\n%s", body, sp.Forward)
		}
		var forwarded []string
		if !bytes.Equal(sp.Forward, NoOp) {
			forwarded = settingKeys(t, sp.Forward)
		}
		for _, k := range forwarded {
			if strings.HasPrefix(strings.SplitN(k, " ", 2)[1], Prefix) {
				t.Errorf("forwarded %q", k)
			}
		}
		if got := sorted(append(forwarded, kept...)); !slices.Equal(got, in) {
			t.Errorf("forwarded + kept = %q\nbody has %q", got, in)
		}
		for _, w := range sp.Wildcards {
			if !slices.Contains(forwarded, w.Scope+" "+w.Key) {
				t.Errorf("wildcard %q is not forwarded", w.Key)
			}
		}
		if ch, err := s.Check(sp); err == nil {
			_, _ = ch.Merge([]byte(`{"acknowledged":true,"persistent":{"a":{"b":"1"}},"transient":{}}`), false)
			_, _ = ch.Merge([]byte(`{"acknowledged":true,"persistent":{"a.b":"1"},"transient":{}}`), true)
		}
	})
}

// settingKeys are "scope key" of every setting of a body's object-valued
// scopes, flattened as OpenSearch flattens them, sorted.
func settingKeys(t *testing.T, body []byte) []string {
	t.Helper()
	top, err := members(body)
	if err != nil {
		t.Fatalf("not an object: %s", body)
	}
	var out []string
	var walk func(scope, prefix string, raw []byte)
	walk = func(scope, prefix string, raw []byte) {
		ms, err := members(raw)
		if err != nil {
			t.Fatalf("not an object: %s", raw)
		}
		for _, m := range ms {
			if isObject(m.value) {
				walk(scope, prefix+m.key+".", m.value)
			} else {
				out = append(out, scope+" "+prefix+m.key)
			}
		}
	}
	for _, m := range top {
		if (m.key == Persistent || m.key == Transient) && isObject(m.value) {
			walk(m.key, "", m.value)
		}
	}
	return sorted(out)
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}
