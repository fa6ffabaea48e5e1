package indexstore

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// TestStatusErrors: an error answer other than 404 and 409 reaches the
// caller as a *StatusError carrying OpenSearch's status, type and reason.
func TestStatusErrors(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	id := create(t, s.ModelGroups(), &ModelGroup{Name: "g"})
	type bogus struct {
		Name  string `json:"name"`
		Bogus int    `json:"bogus"`
	}
	for _, tc := range []struct {
		name       string
		op         func() error
		want       StatusError // Status and Type
		wantReason string      // a part of the reason
	}{
		{
			name: "unknown field",
			op: func() error {
				_, err := newDocs[bogus](s, ModelGroups).Create(ctx, NewID(), &bogus{Name: "g", Bogus: 1}, NoWait)
				return err
			},
			want:       StatusError{Status: 400, Type: "strict_dynamic_mapping_exception"},
			wantReason: "dynamic introduction of [bogus] within [_doc] is not allowed",
		},
		{
			name: "unknown field in Replace",
			op: func() error {
				_, v, err := s.ModelGroups().Get(ctx, id)
				if err != nil {
					return err
				}
				_, err = newDocs[bogus](s, ModelGroups).Replace(ctx, id, v, &bogus{Name: "g", Bogus: 1}, NoWait)
				return err
			},
			want:       StatusError{Status: 400, Type: "strict_dynamic_mapping_exception"},
			wantReason: "[bogus]",
		},
		{
			name: "value of the wrong type",
			op: func() error {
				type wrong struct {
					LatestVersion string `json:"latest_version"`
				}
				_, err := newDocs[wrong](s, ModelGroups).Create(ctx, NewID(), &wrong{LatestVersion: "seven"}, NoWait)
				return err
			},
			want:       StatusError{Status: 400, Type: "mapper_parsing_exception"},
			wantReason: "[latest_version]",
		},
		{
			name: "unknown query",
			op: func() error {
				_, err := s.Search(ctx, Models, []byte(`{"query":{"nope":{}}}`), nil)
				return err
			},
			want:       StatusError{Status: 400, Type: "parsing_exception"},
			wantReason: "unknown query [nope]",
		},
		{
			name: "bad query parameter",
			op: func() error {
				_, err := s.Search(ctx, Models, nil, url.Values{"size": {"many"}})
				return err
			},
			want:       StatusError{Status: 400, Type: "illegal_argument_exception"},
			wantReason: "[size]",
		},
		{
			name: "zero version",
			op: func() error {
				_, err := s.ModelGroups().Replace(ctx, id, Version{}, &ModelGroup{Name: "zero"}, NoWait)
				return err
			},
			want:       StatusError{Status: 400, Type: "action_request_validation_exception"},
			wantReason: "ifSeqNo is set, but primary term is [0]",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.op()
			var se *StatusError
			if !errors.As(err, &se) {
				t.Fatalf("got error %v, want a *StatusError", err)
			}
			if se.Status != tc.want.Status || se.Type != tc.want.Type || !strings.Contains(se.Reason, tc.wantReason) || se.Reason == "" {
				t.Errorf("got %d %q %q, want %d %q with a reason containing %q", se.Status, se.Type, se.Reason, tc.want.Status, tc.want.Type, tc.wantReason)
			}
			if errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) {
				t.Errorf("got %v, which also matches a sentinel", err)
			}
			if !strings.Contains(err.Error(), tc.want.Type) {
				t.Errorf("message %q does not name %s", err.Error(), tc.want.Type)
			}
		})
	}
}

func TestSearch(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	a := create(t, s.Models(), model(ModelDeployed, "c", "g"))
	b := create(t, s.Models(), model(ModelRegistered, "c", "g"))
	refresh(t, s, Models)
	type answer struct {
		Hits struct {
			Total struct {
				Value int `json:"value"`
			} `json:"total"`
			Hits []struct {
				ID      string          `json:"_id"`
				SeqNo   *int64          `json:"_seq_no"`
				Version *int64          `json:"_version"`
				Source  json.RawMessage `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	for _, tc := range []struct {
		name      string
		body      string
		params    url.Values
		want      []string
		checkHits func(t *testing.T, r answer)
	}{
		{name: "empty body matches all", want: []string{a, b}},
		{name: "blank body matches all", body: " \n\t", want: []string{a, b}},
		{name: "term query", body: `{"query":{"term":{"model_state":"DEPLOYED"}}}`, want: []string{a}},
		{
			name: "query parameters reach OpenSearch", params: url.Values{"seq_no_primary_term": {"true"}, "version": {"true"}},
			want: []string{a, b},
			checkHits: func(t *testing.T, r answer) {
				for _, h := range r.Hits.Hits {
					if h.SeqNo == nil || h.Version == nil {
						t.Errorf("hit %s: no _seq_no or _version though asked for", h.ID)
					}
				}
			},
		},
		{
			name: "caller's _source filter", body: `{"_source":["name"]}`, want: []string{a, b},
			checkHits: func(t *testing.T, r answer) {
				for _, h := range r.Hits.Hits {
					if string(h.Source) != `{"name":"m"}` {
						t.Errorf("hit %s: got _source %s, want only the name", h.ID, h.Source)
					}
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := s.Search(ctx, Models, []byte(tc.body), tc.params)
			if err != nil {
				t.Fatalf("Search: %v", err)
			}
			var r answer
			if err := json.Unmarshal(raw, &r); err != nil {
				t.Fatalf("decoding %s: %v", raw, err)
			}
			var got []string
			for _, h := range r.Hits.Hits {
				got = append(got, h.ID)
			}
			if !slices.Equal(sorted(got), sorted(tc.want)) || r.Hits.Total.Value != len(tc.want) {
				t.Errorf("got hits %v (total %d), want %v", got, r.Hits.Total.Value, tc.want)
			}
			if tc.checkHits != nil {
				tc.checkHits(t, r)
			}
		})
	}

	t.Run("malformed body", func(t *testing.T) {
		// Refused before it is sent: the ML API parses the body first.
		_, err := s.Search(ctx, Models, []byte(`{"query":`), nil)
		var se *StatusError
		if err == nil || errors.As(err, &se) {
			t.Errorf("got error %v, want an encoding error", err)
		}
	})
	t.Run("missing index", func(t *testing.T) {
		other := newStoreAt(t, nodeURL(t), newPrefix(t))
		if _, err := other.Search(ctx, Models, nil, nil); !errors.Is(err, ErrNotFound) {
			t.Errorf("got error %v, want %v", err, ErrNotFound)
		}
	})
}

func TestUnreachableUpstream(t *testing.T) {
	t.Parallel()
	// A port nobody listens on: the transport's retries end in an error
	// that is none of the store's own.
	s := newStoreAt(t, &url.URL{Scheme: "http", Host: "127.0.0.1:1"}, "unused-")
	_, _, err := s.Models().Get(t.Context(), "x")
	var se *StatusError
	if err == nil || errors.Is(err, ErrNotFound) || errors.As(err, &se) {
		t.Errorf("got error %v, want a transport error", err)
	}
	if err != nil && !strings.Contains(err.Error(), "opensearch GET") {
		t.Errorf("error %q does not say what failed", err)
	}
}

// TestStatusErrorWithoutBody: an error answer that is not OpenSearch's JSON
// (a proxy's page) still becomes a StatusError with its status.
func TestStatusErrorWithoutBody(t *testing.T) {
	t.Parallel()
	proxy := &lossyProxy{lose: 1, fail: answer(http.StatusForbidden)}
	direct := newStore(t)
	s := newStoreAt(t, newLossyProxy(t, proxy), direct.prefix)
	_, err := s.Tasks().Create(t.Context(), NewID(), &Task{TaskType: TaskDeployModel, State: TaskCreated}, NoWait)
	var se *StatusError
	if !errors.As(err, &se) || se.Status != http.StatusForbidden || se.Type != "" {
		t.Errorf("got error %v, want a StatusError 403 with no type", err)
	}
}
