package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// ErrNoSecurityPlugin means authinfo is not there: the cluster has no
// security plugin, or something in between hides it.
var ErrNoSecurityPlugin = errors.New("the cluster has no security plugin (authinfo not found); start mlsidecar with --authentication=none to serve ML callers without authentication")

// maxBody bounds what is read of an authinfo answer.
const maxBody = 1 << 20

type verdictKind int

const (
	kindAllowed verdictKind = iota
	kindAnonymous
	kindRejected
)

// verdict is the cluster's answer about one set of credentials. It is
// shared between requests and never changed once made.
type verdict struct {
	kind      verdictKind
	user      User      // kindAllowed
	rejection rejection // kindRejected
}

// rejection is the cluster's 401 or 403, handed to the caller as it came.
type rejection struct {
	status          int
	wwwAuthenticate []string
	contentType     string
	body            []byte
}

func (rj rejection) write(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	for _, v := range rj.wwwAuthenticate {
		h.Add("WWW-Authenticate", v)
	}
	if rj.contentType != "" {
		h.Set("Content-Type", rj.contentType)
	}
	h.Set("Content-Length", strconv.Itoa(len(rj.body)))
	w.WriteHeader(rj.status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(rj.body)
	}
}

// authinfo is the part of the security plugin's answer the sidecar uses.
type authinfo struct {
	UserName        string   `json:"user_name"`
	BackendRoles    []string `json:"backend_roles"`
	Roles           []string `json:"roles"`
	RequestedTenant *string  `json:"user_requested_tenant"`
}

// check asks the cluster about c and says how long the answer holds.
// Errors are never cached: the next request asks again.
func (a *Authenticator) check(ctx context.Context, c credentials) (*verdict, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.authinfo, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("build authinfo request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	c.apply(req.Header)

	resp, err := a.client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("authinfo request: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, 0, fmt.Errorf("read authinfo answer (status %d): %w", resp.StatusCode, err)
	}
	if len(body) > maxBody {
		return nil, 0, fmt.Errorf("authinfo answer (status %d) is larger than %d bytes", resp.StatusCode, maxBody)
	}

	switch {
	case resp.StatusCode == http.StatusOK:
		var ai authinfo
		if err := json.Unmarshal(body, &ai); err != nil {
			return nil, 0, fmt.Errorf("decode authinfo answer: %w", err)
		}
		if ai.UserName == "" {
			// The zero User means anonymous; an authenticated caller
			// without a name would be mistaken for one.
			return nil, 0, fmt.Errorf("authinfo answer has no user_name")
		}
		u := User{Name: ai.UserName, BackendRoles: ai.BackendRoles, Roles: ai.Roles}
		if ai.RequestedTenant != nil {
			u.RequestedTenant = *ai.RequestedTenant
		}
		return &verdict{kind: kindAllowed, user: u}, a.ttl, nil

	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		rj := rejection{
			status:          resp.StatusCode,
			wwwAuthenticate: resp.Header.Values("WWW-Authenticate"),
			contentType:     resp.Header.Get("Content-Type"),
			body:            body,
		}
		return &verdict{kind: kindRejected, rejection: rj}, a.rejectionTTL, nil

	case resp.StatusCode == http.StatusNotFound,
		resp.StatusCode == http.StatusBadRequest && bytes.Contains(body, []byte("no handler found for uri")):
		// No security plugin, or a gateway that hides it: never a reason
		// to let the caller in. Serving ML callers unauthenticated is an
		// explicit choice (Options.Unauthenticated).
		return nil, 0, ErrNoSecurityPlugin

	default:
		return nil, 0, fmt.Errorf("authinfo answered status %d", resp.StatusCode)
	}
}
