package indexstore

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestInvalidIDsSendNothing: an id outside OpenSearch's auto-id alphabet
// never becomes part of a request path (a decoding hop in front of the
// cluster would turn "..%2F" into a path to another index); Get, Create,
// Replace and Delete answer ErrNotFound without a request, so handlers
// answer their usual 404.
func TestInvalidIDsSendNothing(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("request sent for an invalid id: %s %s", r.Method, r.URL.RawPath+"|"+r.URL.Path)
		http.Error(w, "{}", http.StatusInternalServerError)
	}))
	defer srv.Close()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Upstream: u, Prefix: ".t-"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	docs := s.Connectors()
	for _, id := range []string{
		"", "..%2F..%2Fvictim%2F_doc%2Fv1", "../../victim/_doc/v1", "a/b", "a%2Fb", "a b", "a.b", "..", "a?b=1", "a#b",
		"a\x00b", "é", "id\n", strings.Repeat("a", 513),
	} {
		if _, _, err := docs.Get(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%q) = %v, want ErrNotFound", id, err)
		}
		if _, err := docs.Create(ctx, id, &Connector{Name: "x"}, NoWait); !errors.Is(err, ErrNotFound) {
			t.Errorf("Create(%q) = %v, want ErrNotFound", id, err)
		}
		if _, err := docs.Replace(ctx, id, Version{SeqNo: 1, PrimaryTerm: 1}, &Connector{Name: "x"}, NoWait); !errors.Is(err, ErrNotFound) {
			t.Errorf("Replace(%q) = %v, want ErrNotFound", id, err)
		}
		if _, err := docs.Delete(ctx, id, Version{SeqNo: 1, PrimaryTerm: 1}); !errors.Is(err, ErrNotFound) {
			t.Errorf("Delete(%q) = %v, want ErrNotFound", id, err)
		}
	}
}

func TestValidID(t *testing.T) {
	for _, tt := range []struct {
		id   string
		want bool
	}{
		{NewID(), true}, {MasterKeyID, true}, {"AbC-_09", true}, {"x", true}, {strings.Repeat("a", 512), true},
		{"", false}, {strings.Repeat("a", 513), false}, {"a/b", false}, {"a%2F", false}, {"a.b", false}, {"a+b", false}, {"a=", false},
	} {
		if got := ValidID(tt.id); got != tt.want {
			t.Errorf("ValidID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}
