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
	"strconv"
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
// is safe for concurrent use.
type Guard struct {
	trusted      []*regexp.Regexp
	allowPrivate bool
	dialTimeout  time.Duration
	metrics      *metrics
}

// New returns a Guard and registers its metrics.
func New(o Options) (*Guard, error) {
	var errs []error
	if o.DialTimeout < 0 {
		errs = append(errs, fmt.Errorf("outbound: dial timeout %v is negative", o.DialTimeout))
	}
	g := &Guard{allowPrivate: o.AllowPrivate, dialTimeout: o.DialTimeout}
	if g.dialTimeout == 0 {
		g.dialTimeout = DefaultDialTimeout
	}
	g.trusted = o.TrustedEndpoints
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

var (
	// ErrUntrustedEndpoint is wrapped by CheckURL's refusals.
	ErrUntrustedEndpoint = errors.New("outbound: URL is not a trusted connector endpoint")
	// ErrPrivateAddress is wrapped by DialContext's refusals.
	ErrPrivateAddress = errors.New("outbound: destination is a private address")
)

func illegalArgument(reason string, sentinel error) *mlerr.Error {
	return mlerr.IllegalArgument(reason).Wrapping(sentinel)
}

// CheckURL reports whether rawURL may be called: it must fully match a
// trusted endpoint regex and be an http or https URL with a host. The regex
// runs on rawURL as given, as in ML Commons, so its refusal text is the same;
// only then is the URL's shape checked.
func (g *Guard) CheckURL(rawURL string) error {
	u, parseErr := url.Parse(rawURL)
	if !g.trustedURL(rawURL) {
		g.metrics.rejected(checkTrustedEndpoint)
		return illegalArgument("Connector URL is not matching the trusted connector endpoint regex, URL is: "+
			displayURL(rawURL, u), ErrUntrustedEndpoint)
	}
	if reason := shapeProblem(u, parseErr, rawURL); reason != "" {
		g.metrics.rejected(checkTrustedEndpoint)
		return illegalArgument(reason, ErrUntrustedEndpoint)
	}
	return nil
}

func (g *Guard) trustedURL(rawURL string) bool {
	for _, re := range g.trusted {
		if re.MatchString(rawURL) {
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
		return "Connector URL has no host name: " + displayURL(rawURL, u)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "Port out of range: " + p
		}
	}
	return ""
}

// displayURL is rawURL as ML Commons would echo it, except that a password
// in the user info is masked: errors reach responses and logs.
func displayURL(rawURL string, u *url.URL) string {
	if u != nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			return u.Redacted()
		}
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
