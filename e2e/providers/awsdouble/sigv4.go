// Package awsdouble holds what the AWS provider doubles share: a verifier of
// AWS Signature Version 4 written from the specification (never with the AWS
// SDK's own signer, so a double cannot agree with a client merely because both
// share one bug), AWS-shaped error answers, fault injection with AWS error
// types, and a Base that gives each double the doublekit clock and recorder.
//
// The verification follows "Create a signed AWS API request" (IAM user guide,
// Signature Version 4) for non-S3 services: the canonical URI is the path as
// received, URI-encoded once more (so a model id "a:b", sent as "a%3Ab", is
// signed as "a%253Ab"); the canonical query is sorted after encoding; signed
// header values are trimmed with inner spaces collapsed; the payload hash is
// the x-amz-content-sha256 header when present, else the SHA-256 of the body.
// Path normalisation (removing "." and ".." segments) is not done: the SDKs
// never send such paths.
package awsdouble

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mlsidecar/mlsidecar/e2e/providers/doublekit"
)

// Credentials are one access key the double knows.
type Credentials struct {
	AccessKeyID     string
	SecretAccessKey string
	// SessionToken, when set, must arrive in X-Amz-Security-Token; when
	// empty, a request carrying a token is refused.
	SessionToken string
}

// TestCredentials are the example credentials of the AWS SigV4 test suite,
// used by the doubles when none are configured.
var TestCredentials = Credentials{
	AccessKeyID:     "AKIDEXAMPLE",
	SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
}

const (
	algorithm     = "AWS4-HMAC-SHA256"
	amzDateLayout = "20060102T150405Z"
	// unsignedPayload is the x-amz-content-sha256 value of a payload left
	// out of the signature.
	unsignedPayload = "UNSIGNED-PAYLOAD"
)

// Verifier checks the SigV4 signature of requests to one service in one region.
type Verifier struct {
	Service     string
	Region      string
	Credentials []Credentials
	// Now is the clock the request time is compared with; nil means time.Now.
	Now func() time.Time
	// MaxSkew is how far the request time may be from Now; 0 means 15 minutes,
	// the window AWS applies.
	MaxSkew time.Duration
}

// Error is a refused request, as AWS names it.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func incomplete(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "IncompleteSignatureException", Message: fmt.Sprintf(format, args...)}
}

func invalid(format string, args ...any) *Error {
	return &Error{Status: http.StatusForbidden, Code: "InvalidSignatureException", Message: fmt.Sprintf(format, args...)}
}

var errUnrecognizedClient = &Error{
	Status:  http.StatusForbidden,
	Code:    "UnrecognizedClientException",
	Message: "The security token included in the request is invalid.",
}

// authorization is the parsed Authorization header.
type authorization struct {
	accessKeyID   string
	date          string // yyyymmdd of the credential scope
	region        string
	service       string
	signedHeaders []string
	signature     string
}

func (a authorization) scope() string {
	return a.date + "/" + a.region + "/" + a.service + "/aws4_request"
}

func parseAuthorization(h string) (authorization, *Error) {
	var a authorization
	rest, ok := strings.CutPrefix(h, algorithm+" ")
	if !ok {
		return a, incomplete("Authorization header requires '%s' algorithm.", algorithm)
	}
	fields := map[string]string{}
	for part := range strings.SplitSeq(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		fields[k] = v
	}
	var missing []string
	for _, k := range []string{"Credential", "SignedHeaders", "Signature"} {
		if fields[k] == "" {
			missing = append(missing, fmt.Sprintf("Authorization header requires '%s' parameter.", k))
		}
	}
	if len(missing) > 0 {
		return a, incomplete("%s Authorization=%s", strings.Join(missing, " "), h)
	}
	scope := strings.Split(fields["Credential"], "/")
	if len(scope) != 5 || scope[4] != "aws4_request" {
		return a, incomplete("Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '%s'", fields["Credential"])
	}
	a = authorization{
		accessKeyID:   scope[0],
		date:          scope[1],
		region:        scope[2],
		service:       scope[3],
		signedHeaders: strings.Split(fields["SignedHeaders"], ";"),
		signature:     fields["Signature"],
	}
	return a, nil
}

// Verify checks r's signature; body is the request body already read. It
// answers nil or an *Error.
func (v *Verifier) Verify(r *http.Request, body []byte) error {
	h := r.Header.Get("Authorization")
	if h == "" {
		return &Error{Status: http.StatusForbidden, Code: "MissingAuthenticationTokenException", Message: "Missing Authentication Token"}
	}
	a, err := parseAuthorization(h)
	if err != nil {
		return err
	}
	creds, ok := v.credentials(a.accessKeyID)
	if !ok {
		return errUnrecognizedClient
	}
	if r.Header.Get("X-Amz-Security-Token") != creds.SessionToken {
		return errUnrecognizedClient
	}
	if a.region != v.Region {
		return invalid("Credential should be scoped to a valid region, not '%s'. ", a.region)
	}
	if a.service != v.Service {
		return invalid("Credential should be scoped to correct service: '%s'. ", v.Service)
	}
	if !slices.Contains(a.signedHeaders, "host") {
		return incomplete("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
	}
	amzDate := r.Header.Get("X-Amz-Date")
	if amzDate == "" {
		return incomplete("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization=%s", h)
	}
	signedAt, perr := time.Parse(amzDateLayout, amzDate)
	if perr != nil {
		return incomplete("Date must be in ISO-8601 'basic format'. Got '%s'. See http://en.wikipedia.org/wiki/ISO_8601", amzDate)
	}
	if a.date != amzDate[:8] {
		return invalid("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s', from '%s'.", a.date, amzDate[:8], amzDate)
	}
	if err := v.checkSkew(signedAt); err != nil {
		return err
	}

	payloadHash := r.Header.Get("X-Amz-Content-Sha256")
	sum := sha256.Sum256(body)
	bodyHash := hex.EncodeToString(sum[:])
	switch payloadHash {
	case "":
		payloadHash = bodyHash
	case unsignedPayload, bodyHash:
	default:
		return &Error{Status: http.StatusBadRequest, Code: "XAmzContentSHA256Mismatch", Message: "The provided 'x-amz-content-sha256' header does not match what was computed."}
	}

	canonical := CanonicalRequest(r, a.signedHeaders, payloadHash)
	toSign := stringToSign(amzDate, a.scope(), canonical)
	want := hex.EncodeToString(hmacSHA256(signingKey(creds.SecretAccessKey, a.date, a.region, a.service), toSign))
	if !hmac.Equal([]byte(want), []byte(a.signature)) {
		return invalid("The request signature we calculated does not match the signature you provided. "+
			"Check your AWS Secret Access Key and signing method. Consult the service documentation for details.\n\n"+
			"The Canonical String for this request should have been\n'%s'\n\nThe String-to-Sign should have been\n'%s'\n", canonical, toSign)
	}
	return nil
}

func (v *Verifier) credentials(accessKeyID string) (Credentials, bool) {
	for _, c := range v.Credentials {
		if c.AccessKeyID == accessKeyID {
			return c, true
		}
	}
	return Credentials{}, false
}

func (v *Verifier) checkSkew(signedAt time.Time) *Error {
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	now = now.UTC()
	skew := v.MaxSkew
	if skew == 0 {
		skew = 15 * time.Minute
	}
	minutes := strconv.Itoa(int(skew / time.Minute))
	f := func(t time.Time) string { return t.UTC().Format(amzDateLayout) }
	switch {
	case signedAt.Before(now.Add(-skew)):
		return invalid("Signature expired: %s is now earlier than %s (%s - %s min.)", f(signedAt), f(now.Add(-skew)), f(now), minutes)
	case signedAt.After(now.Add(skew)):
		return invalid("Signature not yet current: %s is still later than %s (%s + %s min.)", f(signedAt), f(now.Add(skew)), f(now), minutes)
	}
	return nil
}

// CanonicalRequest builds the SigV4 canonical request of r, as received,
// over the given signed headers.
func CanonicalRequest(r *http.Request, signedHeaders []string, payloadHash string) string {
	var headers strings.Builder
	for _, name := range signedHeaders {
		headers.WriteString(name + ":" + headerValue(r, name) + "\n")
	}
	return strings.Join([]string{
		r.Method,
		canonicalURI(doublekit.WirePath(r)),
		canonicalQuery(r.URL.RawQuery),
		headers.String(),
		strings.Join(signedHeaders, ";"),
		payloadHash,
	}, "\n")
}

func canonicalURI(path string) string { return uriEncode(path, false) }

func canonicalQuery(raw string) string {
	if raw == "" {
		return ""
	}
	var pairs []string
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		k, val, _ := strings.Cut(part, "=")
		pairs = append(pairs, uriEncode(unescape(k), true)+"="+uriEncode(unescape(val), true))
	}
	sort.Strings(pairs)
	return strings.Join(pairs, "&")
}

func unescape(s string) string {
	u, err := url.PathUnescape(s)
	if err != nil {
		return s
	}
	return u
}

// uriEncode percent-encodes every byte but the RFC 3986 unreserved
// characters (and '/', unless encodeSlash), with upper-case hex, as SigV4 asks.
func uriEncode(s string, encodeSlash bool) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9',
			c == '-', c == '_', c == '.', c == '~', c == '/' && !encodeSlash:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	return b.String()
}

func headerValue(r *http.Request, name string) string {
	var values []string
	switch name {
	case "host":
		values = []string{r.Host}
	case "content-length":
		values = r.Header.Values("Content-Length")
		if len(values) == 0 && r.ContentLength >= 0 {
			values = []string{strconv.FormatInt(r.ContentLength, 10)}
		}
	default:
		values = r.Header.Values(name)
	}
	trimmed := make([]string, len(values))
	for i, v := range values {
		trimmed[i] = strings.Join(strings.Fields(v), " ")
	}
	return strings.Join(trimmed, ",")
}

func stringToSign(amzDate, scope, canonical string) string {
	sum := sha256.Sum256([]byte(canonical))
	return strings.Join([]string{algorithm, amzDate, scope, hex.EncodeToString(sum[:])}, "\n")
}

func signingKey(secret, date, region, service string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	return hmacSHA256(k, "aws4_request")
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}
