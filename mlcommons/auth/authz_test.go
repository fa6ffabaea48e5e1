package auth

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

const predict = "cluster:admin/opensearch/ml/predict"

func TestPatternMatcher(t *testing.T) {
	tests := []struct {
		pattern, action string
		want            bool
	}{
		{"*", predict, true},
		{predict, predict, true},
		{predict, predict + "x", false},
		{"Cluster:admin/opensearch/ml/predict", predict, false}, // case-sensitive
		{"cluster:admin/opensearch/ml/*", predict, true},
		{"cluster:admin/opensearch/ml/*", "cluster:admin/opensearch/ml/memory/conversation/get", true},
		{"cluster:admin/opensearch/ml/*", "cluster:admin/opensearch/mlinternal/forward", false},
		{"cluster:*", predict, true},
		{"cluster:monitor/*", predict, false},
		{"*/predict", predict, true},
		{"cluster:admin/opensearch/ml/pred?ct", predict, true},
		{"cluster:admin/opensearch/ml/pred?ct", "cluster:admin/opensearch/ml/predct", false},
		{"/cluster:admin/opensearch/ml/pre.ict/", predict, true},
		{"/cluster:admin/opensearch/ml/pre/", predict, false},                                       // a regex matches the whole name
		{"/[/", predict, false},                                                                     // does not compile: allows nothing
		{"cluster:admin/opensearch/ml/models.get", "cluster:admin/opensearch/ml/modelsXget", false}, // '.' is literal
		{"", predict, false},
	}
	for _, tt := range tests {
		m := patternMatcher(tt.pattern)
		got := m != nil && m(tt.action)
		if got != tt.want {
			t.Errorf("pattern %q on %q: got %v, want %v", tt.pattern, tt.action, got, tt.want)
		}
	}
}

func TestExpandActionGroups(t *testing.T) {
	groups := map[string][]string{
		"outer": {"inner", "cluster:admin/opensearch/ml/models/search"},
		"inner": {"cluster:admin/opensearch/ml/models/g?t", "outer"}, // a loop ends
	}
	got := expand([]string{"outer"}, groups)
	want := map[string]bool{"outer": true, "inner": true, "cluster:admin/opensearch/ml/models/search": true,
		"cluster:admin/opensearch/ml/models/g?t": true}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for _, p := range got {
		if !want[p] {
			t.Errorf("unexpected %q in %v", p, got)
		}
	}
}

type source struct {
	perms *Permissions
	err   error
	calls int
}

func (s *source) read(context.Context) (*Permissions, error) {
	s.calls++
	return s.perms, s.err
}

func TestAuthorize(t *testing.T) {
	src := &source{perms: &Permissions{
		Roles:  map[string][]string{"predictor": {"ml_models"}, "health": {"cluster:monitor/health"}},
		Groups: map[string][]string{"ml_models": {"cluster:admin/opensearch/ml/models/*", "ml_predict"}, "ml_predict": {predict}},
	}}
	now := time.Unix(1000, 0)
	z := NewAuthorizer(AuthorizerOptions{Source: src.read, Refresh: time.Minute, Now: func() time.Time { return now }})
	ctx := context.Background()
	pat := User{Name: "pat", BackendRoles: []string{"a", "b"}, Roles: []string{"health", "predictor"}}
	if err := z.Authorize(ctx, pat, predict); err != nil {
		t.Errorf("predict through nested groups: %v", err)
	}
	if err := z.Authorize(ctx, pat, "cluster:admin/opensearch/ml/models/get"); err != nil {
		t.Errorf("models/get through a group wildcard: %v", err)
	}
	err := z.Authorize(ctx, pat, "cluster:admin/opensearch/ml/connectors/get")
	e, ok := mlerr.From(err)
	if !ok || e.Status != http.StatusForbidden || e.Type != "security_exception" ||
		e.Reason != "no permissions for [cluster:admin/opensearch/ml/connectors/get] and User [name=pat, backend_roles=[a, b], requestedTenant=null]" {
		t.Errorf("got %v, want the security plugin's 403", err)
	}
	if err := z.Authorize(ctx, User{}, predict); err != nil {
		t.Errorf("the anonymous caller of a cluster without security: %v", err)
	}
	if src.calls != 1 {
		t.Errorf("read the configuration %d times, want 1 within the refresh interval", src.calls)
	}

	// After the interval the configuration is read again; a failed read
	// keeps the last good one.
	now = now.Add(time.Minute)
	src.err = errors.New("cluster down")
	if err := z.Authorize(ctx, pat, predict); err != nil {
		t.Errorf("after a failed refresh: %v", err)
	}
	src.err, src.perms = nil, &Permissions{Roles: map[string][]string{}}
	now = now.Add(time.Minute)
	if err := z.Authorize(ctx, pat, predict); err == nil {
		t.Errorf("after the role lost its permissions: allowed, want denied")
	}
	if src.calls != 3 {
		t.Errorf("read the configuration %d times, want 3", src.calls)
	}
}

func TestAuthorizeWithoutConfiguration(t *testing.T) {
	z := NewAuthorizer(AuthorizerOptions{Source: (&source{err: errors.New("down")}).read, Refresh: time.Minute})
	err := z.Authorize(context.Background(), User{Name: "x", Roles: []string{"all_access"}}, predict)
	if err == nil {
		t.Fatal("allowed without any configuration, want an error")
	}
	if _, ok := mlerr.From(err); ok {
		t.Errorf("got %v, want a server error (not a client answer)", err)
	}
}

func TestAuthorizeByRoleNames(t *testing.T) {
	z := NewAuthorizer(AuthorizerOptions{Source: (&source{err: ErrNoAccess}).read, Refresh: time.Minute,
		FullAccessRoles: []string{"ml_full_access"}, ReadOnlyRoles: []string{"ml_read_access"}})
	ctx := context.Background()
	tests := []struct {
		role, action string
		allowed      bool
	}{
		{"ml_full_access", predict, true},
		{"ml_full_access", "cluster:admin/opensearch/ml/create_connector", true},
		{"ml_read_access", "cluster:admin/opensearch/ml/models/get", true},
		{"ml_read_access", "cluster:admin/opensearch/ml/tasks/search", true},
		{"ml_read_access", predict, false},
		{"ml_read_access", "cluster:admin/opensearch/ml/create_connector", false},
		{"all_access", predict, false}, // only the configured names count
	}
	for _, tt := range tests {
		err := z.Authorize(ctx, User{Name: "u", Roles: []string{tt.role}}, tt.action)
		if (err == nil) != tt.allowed {
			t.Errorf("%s → %s: got %v, want allowed=%v", tt.role, tt.action, err, tt.allowed)
		}
	}
}

func TestDeniedNamesTheTenant(t *testing.T) {
	err := Denied(User{Name: "bob", RequestedTenant: "global_tenant"}, predict)
	e, _ := mlerr.From(err)
	want := "no permissions for [" + predict + "] and User [name=bob, backend_roles=[], requestedTenant=global_tenant]"
	if e == nil || e.Reason != want {
		t.Errorf("got %v, want %q", err, want)
	}
}
