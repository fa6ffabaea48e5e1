package connector

import (
	"net/url"
	"strings"

	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
	"github.com/mlsidecar/mlsidecar/mlcommons/template"
)

// checkAuthority refuses a call URL whose scheme, user info, host or port
// differ from those of the action's URL filled with the connector's own
// parameters only. The trusted-endpoint check approved that authority when
// the connector was created; a request parameter (ML Commons lets the caller
// override "region") that changed it would send the call, with the
// connector's credentials, to a host of the caller's choice. If the
// connector's parameters leave a placeholder in the authority, the caller
// would pick the host outright, so that is refused too.
//
// tmpl is the action's url template, own the connector's parameters, and got
// the URL built from the merged parameters (template.URL's output).
func checkAuthority(tmpl string, own map[string]string, got string) error {
	want, err := ownAuthority(tmpl, own)
	if err != nil {
		return err
	}
	u, err := url.Parse(got)
	if err != nil || !sameAuthority(want, u) {
		// The values are left out: they are the caller's, or the connector's.
		return mlerr.IllegalArgument("Request parameters cannot change the scheme, host or port of the connector URL")
	}
	return nil
}

// ownAuthority is the scheme and authority of tmpl filled with own. Only that
// part is parsed: the rest may still hold placeholders the request fills,
// which is allowed.
func ownAuthority(tmpl string, own map[string]string) (*url.URL, error) {
	s := tmpl
	if len(own) > 0 {
		// template.URL substitutes nothing without parameters; so here.
		var err error
		if s, err = template.Substitute(tmpl, own); err != nil {
			return nil, err
		}
	}
	fromRequest := mlerr.IllegalArgument("The connector URL takes its scheme, host or port from request parameters; " +
		"they must come from the connector's own parameters")
	i := strings.Index(s, "://")
	if i < 0 {
		return nil, fromRequest
	}
	authority := s[i+len("://"):]
	if end := strings.IndexAny(authority, "/?#"); end >= 0 {
		authority = authority[:end]
	}
	scheme := s[:i]
	if strings.Contains(scheme, "${") || strings.Contains(authority, "${") {
		return nil, fromRequest
	}
	u, err := url.Parse(scheme + "://" + authority)
	if err != nil {
		return nil, fromRequest
	}
	return u, nil
}

// sameAuthority compares what decides where a call goes. Host names are
// case-insensitive; a port is compared as written, so ":443" on an https URL
// that had none is a change too.
func sameAuthority(want, got *url.URL) bool {
	return want.Scheme == got.Scheme && want.User.String() == got.User.String() &&
		strings.EqualFold(want.Host, got.Host)
}
