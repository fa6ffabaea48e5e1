package indexstore

import (
	"errors"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// indexFacts is what the node says about one of a store's indices.
type indexFacts struct {
	Hidden, Dynamic string
	Schema          float64
	Fields          []string // top-level properties, sorted
}

func describeIndices(t *testing.T, s *Store) map[Collection]indexFacts {
	t.Helper()
	out := map[Collection]indexFacts{}
	for _, c := range collections() {
		idx := s.Index(c)
		var settings map[string]struct {
			Settings struct {
				Index struct {
					Hidden string `json:"hidden"`
				} `json:"index"`
			} `json:"settings"`
		}
		nodeJSON(t, http.MethodGet, "/"+idx+"/_settings", nil, &settings)
		var mapping map[string]struct {
			Mappings struct {
				Dynamic string             `json:"dynamic"`
				Meta    map[string]float64 `json:"_meta"`
				Props   map[string]any     `json:"properties"`
			} `json:"mappings"`
		}
		nodeJSON(t, http.MethodGet, "/"+idx+"/_mapping", nil, &mapping)
		m := mapping[idx].Mappings
		var fields []string
		for f := range m.Props {
			fields = append(fields, f)
		}
		sort.Strings(fields)
		out[c] = indexFacts{
			Hidden: settings[idx].Settings.Index.Hidden, Dynamic: m.Dynamic,
			Schema: m.Meta["schema_version"], Fields: fields,
		}
	}
	return out
}

// wantIndices is what EnsureIndices must leave: every collection hidden,
// strict, with the fields of its mapping.
func wantIndices() map[Collection]indexFacts {
	out := map[Collection]indexFacts{}
	for _, c := range collections() {
		var fields []string
		for f := range mappings(c)["properties"].(map[string]any) {
			fields = append(fields, f)
		}
		sort.Strings(fields)
		out[c] = indexFacts{Hidden: "true", Dynamic: "strict", Schema: schemaVersion, Fields: fields}
	}
	return out
}

func TestEnsureIndices(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// run calls EnsureIndices on fresh stores sharing one prefix.
		run func(t *testing.T, stores [2]*Store) []error
	}{
		{"once", func(t *testing.T, s [2]*Store) []error {
			return []error{s[0].EnsureIndices(t.Context())}
		}},
		{"twice", func(t *testing.T, s [2]*Store) []error {
			return []error{s[0].EnsureIndices(t.Context()), s[0].EnsureIndices(t.Context())}
		}},
		{"two replicas at once", func(t *testing.T, s [2]*Store) []error {
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for i := range s {
				wg.Go(func() { errs[i] = s[i].EnsureIndices(t.Context()) })
			}
			wg.Wait()
			return errs
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			prefix := newPrefix(t)
			stores := [2]*Store{newStoreAt(t, nodeURL(t), prefix), newStoreAt(t, nodeURL(t), prefix)}
			for i, err := range tc.run(t, stores) {
				if err != nil {
					t.Errorf("EnsureIndices call %d: %v", i, err)
				}
			}
			if diff := cmp.Diff(wantIndices(), describeIndices(t, stores[0])); diff != "" {
				t.Errorf("indices (-want +got):\n%s", diff)
			}
			// Hidden: a plain listing does not show them.
			_, cat := nodeRequest(t, http.MethodGet, "/_cat/indices?h=index", nil)
			if strings.Contains(string(cat), prefix) {
				t.Errorf("_cat/indices lists the hidden indices:\n%s", cat)
			}
		})
	}
}

// TestEnsureIndicesKeepsDocuments: running it again on live indices (a
// restart, a second replica) keeps what they hold.
func TestEnsureIndicesKeepsDocuments(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	res, err := s.Connectors().Insert(t.Context(), &Connector{Name: "kept"}, NoWait)
	if err != nil {
		t.Fatalf("Insert: %v", err)
	}
	if err := s.EnsureIndices(t.Context()); err != nil {
		t.Fatalf("second EnsureIndices: %v", err)
	}
	got, _, err := s.Connectors().Get(t.Context(), res.ID)
	if err != nil {
		t.Fatalf("Get after second EnsureIndices: %v", err)
	}
	if got.Name != "kept" {
		t.Errorf("got name %q, want %q", got.Name, "kept")
	}
}

// TestEnsureIndicesUpdatesMappings: an index made by an older sidecar gets
// the fields added since; a field whose type changed is an error, not
// silently kept.
func TestEnsureIndicesUpdatesMappings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		old     map[string]any // properties of the older models mapping
		wantErr string         // in EnsureIndices' error; "" for none
	}{
		{"field added", map[string]any{"name": text()}, ""},
		{"field type changed", map[string]any{"model_state": map[string]any{"type": "long"}}, "illegal_argument_exception"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			prefix := newPrefix(t)
			s := newStoreAt(t, nodeURL(t), prefix)
			nodeJSON(t, http.MethodPut, "/"+s.Index(Models), map[string]any{
				"settings": map[string]any{"index": map[string]any{"hidden": true, "number_of_shards": 1, "auto_expand_replicas": "0-1"}},
				"mappings": map[string]any{"dynamic": "strict", "_meta": map[string]any{"schema_version": 0}, "properties": tc.old},
			}, &struct{}{})
			err := s.EnsureIndices(t.Context())
			if tc.wantErr != "" {
				var se *StatusError
				if !errors.As(err, &se) || se.Type != tc.wantErr || !strings.Contains(err.Error(), s.Index(Models)) {
					t.Fatalf("got error %v, want a %s naming %s", err, tc.wantErr, s.Index(Models))
				}
				return
			}
			if err != nil {
				t.Fatalf("EnsureIndices: %v", err)
			}
			if diff := cmp.Diff(wantIndices(), describeIndices(t, s)); diff != "" {
				t.Errorf("indices (-want +got):\n%s", diff)
			}
			if _, err := s.Models().Insert(t.Context(), fullModel(), NoWait); err != nil {
				t.Errorf("Insert of a full model into the updated index: %v", err)
			}
		})
	}
}

// TestStrictMappings: a field the mappings do not know is refused, through
// the Store and straight at the node.
func TestStrictMappings(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	type unknownField struct {
		Bogus string `json:"bogus"`
	}
	for _, c := range collections() {
		t.Run(string(c), func(t *testing.T) {
			_, err := newDocs[unknownField](s, c).Create(t.Context(), "x", &unknownField{Bogus: "b"}, NoWait)
			var se *StatusError
			if !errors.As(err, &se) {
				t.Fatalf("Create with an unknown field: got error %v, want a *StatusError", err)
			}
			if se.Status != http.StatusBadRequest || se.Type != "strict_dynamic_mapping_exception" ||
				!strings.Contains(se.Reason, "[bogus]") {
				t.Errorf("got %+v, want 400 strict_dynamic_mapping_exception naming [bogus]", se)
			}
		})
	}
}
