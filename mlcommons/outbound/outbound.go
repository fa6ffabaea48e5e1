// Package outbound guards every call mlsidecar makes to a model provider.
//
// Two checks, as in ML Commons, apply to each connector action URL:
//
//   - CheckURL: the URL must fully match one of the trusted connector
//     endpoint regexes (plugins.ml_commons.trusted_connector_endpoints_regex).
//     Callers run it when a connector is created or updated and again on every
//     resolved request URL, because request parameters can change the URL.
//   - DialContext: the address actually being connected to must not be
//     loopback, private, link-local or otherwise internal unless AllowPrivate
//     is set (plugins.ml_commons.connector.private_ip_enabled). The check runs
//     on the socket, after DNS resolution and before connect, so a name that
//     resolves to a public address when validated and to an internal one when
//     dialed (DNS rebinding) is still refused.
//
// Use Transport for every provider HTTP client so both the dial check and the
// no-proxy rule hold, and CheckRedirect so a redirect cannot leave the
// trusted list.
package outbound

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultDialTimeout is ML Commons' default connector connection_timeout.
const DefaultDialTimeout = 30 * time.Second

// Options configures a Guard.
type Options struct {
	// TrustedEndpoints are the trusted connector endpoint regexes, each
	// anchored to match a whole URL as Java's String.matches does (config
	// compiles them so). Empty means no URL is trusted, as in ML Commons 2.x.
	TrustedEndpoints []*regexp.Regexp
	// AllowPrivate turns the connect-time address check off.
	AllowPrivate bool
	// DialTimeout bounds one TCP connect; zero means DefaultDialTimeout.
	DialTimeout time.Duration
	// Registerer receives the rejection counter; nil skips registration.
	Registerer prometheus.Registerer
}

// Guard enforces the trusted-endpoint list and the private-address rule. It
// is safe for concurrent use; Update changes both rules at run time.
type Guard struct {
	rules       atomic.Pointer[rules]
	dialTimeout time.Duration
	metrics     *metrics
}

// rules are the trusted endpoints and the private-address switch, replaced
// together so no check sees half of an update.
type rules struct {
	trusted      []*regexp.Regexp
	allowPrivate bool
}

// New returns a Guard and registers its metrics.
func New(o Options) (*Guard, error) {
	var errs []error
	if o.DialTimeout < 0 {
		errs = append(errs, fmt.Errorf("outbound: dial timeout %v is negative", o.DialTimeout))
	}
	g := &Guard{dialTimeout: o.DialTimeout}
	if g.dialTimeout == 0 {
		g.dialTimeout = DefaultDialTimeout
	}
	g.Update(o.TrustedEndpoints, o.AllowPrivate)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	g.metrics = m
	return g, nil
}

// Update replaces the trusted endpoint regexes (anchored, as in Options)
// and the private-address switch at once (ML Commons'
// trusted_connector_endpoints_regex and connector.private_ip_enabled, which
// a cluster may change at any time). Checks that start after it returns use
// the new rules; a connection being dialed keeps the rule it started with.
// Revoked reports that private addresses were allowed and no longer are:
// pooled connections to them must then be dropped (remote.Engine.Reset),
// because a pooled connection is never dialed again.
func (g *Guard) Update(trusted []*regexp.Regexp, allowPrivate bool) (revoked bool) {
	old := g.rules.Swap(&rules{trusted: slices.Clone(trusted), allowPrivate: allowPrivate})
	return old != nil && old.allowPrivate && !allowPrivate
}

var (
	// ErrUntrustedEndpoint is wrapped by CheckURL's refusals.
	ErrUntrustedEndpoint = errors.New("outbound: URL is not a trusted connector endpoint")
	// ErrPrivateAddress is wrapped by DialContext's refusals.
	ErrPrivateAddress = errors.New("outbound: destination is a private address")
)

func illegalArgument(reason string, sentinel error) *mlerr.Error {
	return mlerr.IllegalArgument(reason).Wrapping(sentinel)
}

// CheckURL reports whether rawURL may be called: it must be an http or https
// URL with a host and no user info, and fully match a trusted endpoint regex.
//
// The regexes run on the URL as parsed, rebuilt from its scheme, host, port,
// path and query, not on rawURL: in rawURL a regex's host part can run past
// the real host into user info, a fragment or the path ("https://x@evil/",
// "https://evil#.amazonaws.com/"), and the request goes where the parser, not
// the regex, says. User info is refused outright: a provider URL never needs
// it, and it is how a trusted-looking prefix hides another host. A rawURL
// that does not parse is judged by its raw text only to pick the error text,
// and is refused either way.
func (g *Guard) CheckURL(rawURL string) error {
	u, parseErr := url.Parse(rawURL)
	if parseErr == nil && u.User != nil {
		g.metrics.rejected(checkTrustedEndpoint)
		return illegalArgument("Connector URL must not contain user info, URL is: "+displayURL(rawURL), ErrUntrustedEndpoint)
	}
	target := rawURL
	if parseErr == nil {
		target = matchTarget(rawURL, u)
	}
	if !g.trustedURL(target) {
		g.metrics.rejected(checkTrustedEndpoint)
		return illegalArgument("Connector URL is not matching the trusted connector endpoint regex, URL is: "+
			displayURL(rawURL), ErrUntrustedEndpoint)
	}
	if reason := shapeProblem(u, parseErr, rawURL); reason != "" {
		g.metrics.rejected(checkTrustedEndpoint)
		return illegalArgument(reason, ErrUntrustedEndpoint)
	}
	return nil
}

// matchTarget is the text the trusted regexes see: what the HTTP client will
// use of u, parsed from rawURL. The fragment is never sent, so it is left
// out. The scheme is as written, because url.Parse lowercases it and ML
// Commons' regexes are case-sensitive.
func matchTarget(rawURL string, u *url.URL) string {
	var b strings.Builder
	b.WriteString(rawURL[:len(u.Scheme)])
	b.WriteString("://")
	b.WriteString(u.Host)
	b.WriteString(u.EscapedPath())
	if u.ForceQuery || u.RawQuery != "" {
		b.WriteByte('?')
		b.WriteString(u.RawQuery)
	}
	return b.String()
}

func (g *Guard) trustedURL(target string) bool {
	for _, re := range g.rules.Load().trusted {
		if re.MatchString(target) {
			return true
		}
	}
	return false
}

// shapeProblem returns why a URL that passed the regex cannot be called, or
// "". The texts for scheme and port are ML Commons' own.
func shapeProblem(u *url.URL, parseErr error, rawURL string) string {
	if parseErr != nil {
		// url.Error repeats the whole URL; the inner error says what is wrong.
		var ue *url.Error
		if errors.As(parseErr, &ue) {
			parseErr = ue.Err
		}
		return "Connector URL is not a valid URL: " + parseErr.Error()
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "Protocol is not http or https: " + u.Scheme
	}
	if u.Hostname() == "" {
		return "Connector URL has no host name: " + displayURL(rawURL)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "Port out of range: " + p
		}
	}
	return ""
}

// displayURL is rawURL as ML Commons would echo it, except that user info,
// name and password, is masked: both can be secrets, and errors reach
// responses and logs. It works on the text, as net/url splits the
// authority, so a URL that does not parse is masked too.
func displayURL(rawURL string) string {
	i := strings.Index(rawURL, "://")
	if i < 0 {
		return rawURL
	}
	rest := rawURL[i+len("://"):]
	authority := rest
	if end := strings.IndexAny(rest, "/?#"); end >= 0 {
		authority = rest[:end]
	}
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		return rawURL[:i+len("://")] + "xxxxx" + rest[at:]
	}
	return rawURL
}

// CheckRedirect is an http.Client.CheckRedirect that holds every redirect
// target to the trusted list and stops after 10 redirects, as net/http does.
// ML Commons' clients never follow redirects; without this a trusted
// provider's redirect would lead anywhere public.
func (g *Guard) CheckRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("outbound: stopped after 10 redirects")
	}
	return g.CheckURL(req.URL.String())
}
