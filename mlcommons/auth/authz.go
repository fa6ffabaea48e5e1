package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

// Authorization as the cluster decides it: every ML route names the ML
// Commons transport action it stands for (cluster:admin/opensearch/ml/...),
// and the caller's mapped security roles must allow that action under the
// cluster's own role definitions and action groups, evaluated the way the
// security plugin does (action groups expanded recursively; "*" and "?"
// wildcards that match across "/" and ":", "/regex/" patterns; no
// exclusions).

// Permissions are the cluster-permission part of the cluster's security
// configuration.
type Permissions struct {
	// Roles maps a role name to its cluster_permissions.
	Roles map[string][]string
	// Groups maps an action group name to its allowed_actions.
	Groups map[string][]string
}

// ErrNoAccess is returned by a PermissionSource whose account may not read
// the security configuration.
var ErrNoAccess = errors.New("auth: the security configuration cannot be read with the sidecar's account")

// PermissionSource reads the cluster's role definitions and action groups,
// with the sidecar's own account.
type PermissionSource func(ctx context.Context) (*Permissions, error)

// AuthorizerOptions configure an Authorizer.
type AuthorizerOptions struct {
	Source PermissionSource
	// Refresh is how long a read of the security configuration is used.
	Refresh time.Duration
	// FullAccessRoles and ReadOnlyRoles are the roles that grant ML Commons'
	// full and read-only access when the security configuration cannot be
	// read (ErrNoAccess).
	FullAccessRoles, ReadOnlyRoles []string
	Logger                         *slog.Logger
	Now                            func() time.Time
}

// Authorizer decides whether a caller may run an ML Commons action.
type Authorizer struct {
	o AuthorizerOptions

	mu         sync.Mutex
	rules      map[string][]matcher // role → what it allows
	fallback   bool                 // rules come from the configured role lists
	loaded     time.Time
	refreshing bool // a caller is reading the configuration
}

// NewAuthorizer returns an Authorizer; nothing is read until Load or the
// first Authorize.
func NewAuthorizer(o AuthorizerOptions) *Authorizer {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Authorizer{o: o}
}

// mlFullAccess and mlReadOnly are what ML Commons' ml_full_access and
// ml_read_access roles grant of the ML API (security plugin 2.19
// config/roles.yml).
var (
	mlFullAccess = []string{"cluster:admin/opensearch/ml/*"}
	mlReadOnly   = []string{
		"cluster:admin/opensearch/ml/config/get",
		"cluster:admin/opensearch/ml/connectors/get",
		"cluster:admin/opensearch/ml/connectors/search",
		"cluster:admin/opensearch/ml/model_groups/get",
		"cluster:admin/opensearch/ml/model_groups/search",
		"cluster:admin/opensearch/ml/models/get",
		"cluster:admin/opensearch/ml/models/search",
		"cluster:admin/opensearch/ml/profile/nodes",
		"cluster:admin/opensearch/ml/stats/nodes",
		"cluster:admin/opensearch/ml/tasks/get",
		"cluster:admin/opensearch/ml/tasks/search",
	}
)

// Load reads the security configuration now. When the sidecar's account
// may not read it, the configured role lists decide from then on, and Load
// says so once.
func (z *Authorizer) Load(ctx context.Context) error {
	_, err := z.reload(ctx)
	return err
}

// reload reads the configuration, outside the lock so callers keep
// deciding with the last one meanwhile, and installs it.
func (z *Authorizer) reload(ctx context.Context) (map[string][]matcher, error) {
	p, err := z.o.Source(ctx)
	fallback := errors.Is(err, ErrNoAccess)
	if fallback {
		p, err = &Permissions{Roles: map[string][]string{}}, nil
		for _, r := range z.o.ReadOnlyRoles {
			p.Roles[r] = mlReadOnly
		}
		for _, r := range z.o.FullAccessRoles {
			p.Roles[r] = mlFullAccess
		}
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	z.refreshing = false
	if err != nil {
		return z.rules, err
	}
	if fallback && !z.fallback {
		z.o.Logger.Warn("the sidecar's account cannot read the cluster's security configuration: ML callers are "+
			"authorized by role name only", "ml_full_access_roles", z.o.FullAccessRoles, "ml_readonly_roles", z.o.ReadOnlyRoles)
	}
	z.fallback = fallback
	z.rules = compile(p)
	z.loaded = z.o.Now()
	return z.rules, nil
}

// Authorize returns nil when u's roles allow action, and otherwise the
// security plugin's own 403. A caller of a cluster without security (the
// zero User) is allowed everything, as the cluster would.
func (z *Authorizer) Authorize(ctx context.Context, u User, action string) error {
	if u.Name == "" {
		return nil
	}
	z.mu.Lock()
	rules := z.rules
	// One caller refreshes a stale configuration; the others decide with
	// the last one meanwhile. A failed refresh keeps the last good one;
	// with none, nobody is authorized.
	refresh := rules == nil || (!z.refreshing && z.o.Now().Sub(z.loaded) >= z.o.Refresh)
	if refresh {
		z.refreshing = true
	}
	z.mu.Unlock()
	if refresh {
		var err error
		if rules, err = z.reload(ctx); rules == nil {
			return fmt.Errorf("reading the cluster's security configuration: %w", err)
		}
	}
	for _, role := range u.Roles {
		for _, m := range rules[role] {
			if m(action) {
				return nil
			}
		}
	}
	return Denied(u, action)
}

// Denied is the security plugin's answer to a cluster action the caller's
// roles do not allow (SecurityFilter: "no permissions for %s and %s").
func Denied(u User, action string) error {
	tenant := u.RequestedTenant
	if tenant == "" {
		tenant = "null"
	}
	return mlerr.New(http.StatusForbidden, "security_exception",
		fmt.Sprintf("no permissions for [%s] and User [name=%s, backend_roles=[%s], requestedTenant=%s]",
			action, u.Name, strings.Join(u.BackendRoles, ", "), tenant))
}

// matcher reports whether a permission pattern allows an action.
type matcher func(action string) bool

// compile expands every role's permissions through the action groups and
// turns each into a matcher.
func compile(p *Permissions) map[string][]matcher {
	out := make(map[string][]matcher, len(p.Roles))
	for role, perms := range p.Roles {
		var ms []matcher
		for _, perm := range expand(perms, p.Groups) {
			if m := patternMatcher(perm); m != nil {
				ms = append(ms, m)
			}
		}
		out[role] = ms
	}
	return out
}

// expand resolves action group names recursively (a group may name
// groups), keeping the original entries, as the security plugin's
// FlattenedActionGroups does; loops end because each name is expanded once.
func expand(perms []string, groups map[string][]string) []string {
	seen := map[string]bool{}
	var out []string
	queue := append([]string(nil), perms...)
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, p)
		queue = append(queue, groups[p]...)
	}
	return out
}

// patternMatcher is the security plugin's WildcardMatcher: "/re/" is a
// regular expression that must match the whole action; "*" matches any run
// of characters and "?" one character; anything else is an exact,
// case-sensitive name. A pattern that does not compile allows nothing.
func patternMatcher(p string) matcher {
	switch {
	case strings.TrimSpace(p) == "":
		return nil
	case p == "*":
		return func(string) bool { return true }
	case len(p) > 1 && strings.HasPrefix(p, "/") && strings.HasSuffix(p, "/"):
		re, err := regexp.Compile(`^(?:` + p[1:len(p)-1] + `)$`)
		if err != nil {
			return nil
		}
		return re.MatchString
	case !strings.ContainsAny(p, "*?"):
		return func(a string) bool { return a == p }
	}
	var b strings.Builder
	b.WriteString("^")
	for _, r := range p {
		switch r {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	re := regexp.MustCompile(b.String())
	return re.MatchString
}
