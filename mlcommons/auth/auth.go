// Package auth authenticates and authorizes ML Commons callers the way the
// cluster would: it asks the upstream's security plugin (GET
// /_plugins/_security/authinfo) with the caller's own credentials and caches
// the verdict briefly, and the Authorizer evaluates the cluster's role
// definitions against each route's ML Commons action. Serving callers of a
// cluster without the security plugin unauthenticated is an explicit choice
// (Options.Unauthenticated); an authinfo that is not there is never taken
// for one.
package auth

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

const (
	defaultTTL        = 30 * time.Second
	defaultMaxEntries = 10000
	// maxRejectionTTL keeps a caller who has just fixed their password from
	// being turned away for long.
	maxRejectionTTL = 5 * time.Second
	checkTimeout    = 10 * time.Second
	authinfoPath    = "_plugins/_security/authinfo"
)

// User is the caller as the cluster's security plugin knows them. The zero
// User is the anonymous caller of a cluster without the security plugin.
type User struct {
	Name         string
	BackendRoles []string
	// Roles are the security roles the cluster mapped the caller to.
	Roles []string
	// RequestedTenant is the tenant the caller asked for; "" for none.
	RequestedTenant string
}

type userKey struct{}

// UserFrom returns the caller the middleware authenticated; false when the
// request did not pass through the middleware.
func UserFrom(ctx context.Context) (User, bool) {
	u, ok := ctx.Value(userKey{}).(User)
	return u, ok
}

// Options configures an Authenticator. Upstream is required.
type Options struct {
	// Upstream is the cluster's base URL. Any user info in it is ignored:
	// the check runs with the caller's credentials only.
	Upstream *url.URL
	// Client makes the authinfo calls; it never follows redirects. Default:
	// a client with its own clone of http.DefaultTransport.
	Client *http.Client
	// TTL is how long an answer from the cluster is trusted (default 30s).
	// Rejections are trusted for at most 5s.
	TTL time.Duration
	// MaxEntries bounds the verdict cache (default 10000).
	MaxEntries int
	// Registerer receives the metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Now is the clock, for tests (default time.Now).
	Now func() time.Time
	// Unauthenticated serves every ML caller as the anonymous caller of a
	// cluster without security, asking the cluster nothing: an explicit
	// choice for clusters without the security plugin.
	Unauthenticated bool
}

// Authenticator checks ML callers against the cluster.
type Authenticator struct {
	authinfo     string
	client       *http.Client
	ttl          time.Duration
	rejectionTTL time.Duration
	now          func() time.Time
	log          *slog.Logger
	metrics      *metrics
	cache        *cache
	flights      singleflight.Group
	anonymous    bool
}

// New returns an Authenticator. It panics if o.Upstream is nil.
func New(o Options) *Authenticator {
	if o.Upstream == nil {
		panic("auth: Options.Upstream is nil")
	}
	u := o.Upstream.JoinPath(authinfoPath)
	// An http.Client turns URL user info into basic auth for a request that
	// carries no Authorization header: a cookie-only caller would then be
	// checked as the sidecar's service user.
	u.User = nil
	u.RawQuery, u.Fragment, u.RawFragment = "", "", ""

	var c http.Client
	if o.Client != nil {
		c = *o.Client
	} else {
		c.Transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	// A redirect is not a verdict, and following one would carry the
	// caller's credentials elsewhere.
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	if o.TTL <= 0 {
		o.TTL = defaultTTL
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = defaultMaxEntries
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Authenticator{
		authinfo:     u.String(),
		client:       &c,
		ttl:          o.TTL,
		rejectionTTL: min(o.TTL, maxRejectionTTL),
		now:          o.Now,
		log:          o.Logger,
		metrics:      newMetrics(o.Registerer),
		cache:        newCache(o.MaxEntries),
		anonymous:    o.Unauthenticated,
	}
}

// Middleware lets a request reach next only when the cluster accepts the
// caller's credentials, with the caller in the request context (UserFrom).
// A rejected caller gets the cluster's own answer; a cluster that cannot be
// asked gets the caller a 502.
func (a *Authenticator) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if a.anonymous {
			a.metrics.checks.WithLabelValues(resultAnonymous).Inc()
			next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, userKey{}, User{})))
			return
		}
		v, err := a.verdict(ctx, r.Header)
		if err != nil {
			if ctx.Err() != nil {
				// The client went away: there is nobody to answer and nothing failed.
				a.log.DebugContext(ctx, "client went away during the authentication check", "err", err)
				return
			}
			a.metrics.checks.WithLabelValues(resultError).Inc()
			a.log.WarnContext(ctx, "authentication check failed", "err", err)
			writeError(w, http.StatusBadGateway, "bad_gateway_exception",
				"the OpenSearch cluster could not check the caller's credentials")
			return
		}
		switch v.kind {
		case kindRejected:
			a.metrics.checks.WithLabelValues(resultRejected).Inc()
			a.log.DebugContext(ctx, "caller rejected by the cluster", "status", v.rejection.status)
			v.rejection.write(w, r)
			return
		case kindAnonymous:
			a.metrics.checks.WithLabelValues(resultAnonymous).Inc()
		default:
			a.metrics.checks.WithLabelValues(resultAllowed).Inc()
		}
		// The verdict is shared through the cache; a handler must not be
		// able to change it for the next caller.
		u := User{Name: v.user.Name, BackendRoles: slices.Clone(v.user.BackendRoles), Roles: slices.Clone(v.user.Roles),
			RequestedTenant: v.user.RequestedTenant}
		next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, userKey{}, u)))
	})
}

// verdict answers from the cache or asks the cluster, once per set of
// credentials however many requests carry them at the same moment.
func (a *Authenticator) verdict(ctx context.Context, h http.Header) (*verdict, error) {
	c := credentialsOf(h)
	key := c.key()
	if v, ok := a.cache.get(key, a.now()); ok {
		a.metrics.cache.WithLabelValues(cacheHit).Inc()
		return v, nil
	}
	a.metrics.cache.WithLabelValues(cacheMiss).Inc()

	for attempt := 0; ; attempt++ {
		ch := a.flights.DoChan(string(key[:]), func() (any, error) {
			// Another flight for these credentials may have just finished.
			if v, ok := a.cache.get(key, a.now()); ok {
				return v, nil
			}
			v, ttl, err := a.check(ctx, c)
			if err != nil {
				return nil, err
			}
			a.cache.put(key, v, a.now().Add(ttl))
			return v, nil
		})
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case res := <-ch:
			// The flight ran on another request's context; that caller
			// going away is no answer for this one.
			if res.Err != nil && res.Shared && errors.Is(res.Err, context.Canceled) && ctx.Err() == nil && attempt < 3 {
				continue
			}
			if res.Err != nil {
				return nil, res.Err
			}
			return res.Val.(*verdict), nil
		}
	}
}

// credentials are what the cluster authenticates a caller by.
type credentials struct {
	authorization []string
	cookie        []string
}

func credentialsOf(h http.Header) credentials {
	return credentials{authorization: h.Values("Authorization"), cookie: h.Values("Cookie")}
}

// key is a hash, so the cache never holds credentials. Every value is
// length-prefixed so that no two different sets of headers share a key.
func (c credentials) key() [sha256.Size]byte {
	hs := sha256.New()
	for _, vs := range [][]string{c.authorization, c.cookie} {
		_ = binary.Write(hs, binary.BigEndian, uint64(len(vs)))
		for _, v := range vs {
			_ = binary.Write(hs, binary.BigEndian, uint64(len(v)))
			_, _ = hs.Write([]byte(v))
		}
	}
	var k [sha256.Size]byte
	hs.Sum(k[:0])
	return k
}

// apply puts the credentials on the authinfo request, and nothing else of
// the caller's.
func (c credentials) apply(h http.Header) {
	for _, v := range c.authorization {
		h.Add("Authorization", v)
	}
	if len(c.cookie) > 0 {
		// HTTP/2 clients may split cookies over several fields; an HTTP/1.1
		// request carries one.
		h.Set("Cookie", strings.Join(c.cookie, "; "))
	}
}

// writeError answers status with OpenSearch's error envelope.
func writeError(w http.ResponseWriter, status int, typ, reason string) {
	body := (&mlerr.Error{Status: status, Type: typ, Reason: reason}).Envelope()
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body) // the client may be gone; nothing to do then
}
