package outbound

import (
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/mlsidecar/mlsidecar/config"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// trusted compiles trusted endpoint regexes as the configuration does.
func trusted(t testing.TB, exprs []string) []*regexp.Regexp {
	t.Helper()
	var out []*regexp.Regexp
	for _, e := range exprs {
		re, err := config.TrustedRegexp(e)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, re)
	}
	return out
}

func newGuard(t *testing.T, o Options) *Guard {
	t.Helper()
	g, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return g
}

func TestCheckURLDefaults(t *testing.T) {
	g := newGuard(t, Options{TrustedEndpoints: trusted(t, config.DefaultTrustedEndpoints())})
	tests := []struct {
		name string
		url  string
		ok   bool
	}{
		{"sagemaker runtime", "https://runtime.sagemaker.us-west-2.amazonaws.com/endpoints/e/invocations", true},
		{"sagemaker api", "https://api.sagemaker.us-west-2.amazonaws.com/CreateTransformJob", true},
		{"openai", "https://api.openai.com/v1/batches", true},
		{"openai with query", "https://api.openai.com/v1/files?purpose=batch", true},
		{"cohere", "https://api.cohere.ai/v1/embed", true},
		{"deepseek", "https://api.deepseek.com/chat/completions", true},
		{"bedrock runtime", "https://bedrock-runtime.us-east-1.amazonaws.com/model/x/invoke", true},
		{"bedrock runtime eu", "https://bedrock-runtime.eu-central-1.amazonaws.com/model/x/invoke", true},
		{"bedrock runtime govcloud", "https://bedrock-runtime.us-gov-west-1.amazonaws.com/model/x/invoke", true},
		{"bedrock runtime ap", "https://bedrock-runtime.ap-southeast-2.amazonaws.com/model/x/invoke", true},
		{"bedrock agent runtime", "https://bedrock-agent-runtime.us-east-1.amazonaws.com/knowledgebases/kb/retrieve", true},
		{"bedrock", "https://bedrock.us-east-1.amazonaws.com/model-invocation-job", true},
		{"sagemaker runtime il", "https://runtime.sagemaker.il-central-1.amazonaws.com/endpoints/e/invocations", true},
		{"textract", "https://textract.us-east-1.amazonaws.com", true},
		{"comprehend", "https://comprehend.us-east-1.amazonaws.com", true},
		{"rekognition", "https://rekognition.us-east-1.amazonaws.com", true},
		{"rekognition fips", "https://rekognition-fips.us-east-1.amazonaws.com", true},

		{"plain http", "http://api.openai.com/v1/batches", false},
		{"suffix domain", "https://api.openai.com.evil.com/v1/batches", false},
		{"trusted URL in query", "https://evil.com/?x=https://api.openai.com/", false},
		{"lookalike", "https://api.openai1.com/v1/completions", false},
		{"no path", "https://api.openai.com", false},
		{"textract with path", "https://textract.us-east-1.amazonaws.com/x", false},
		{"empty", "", false},
		{"upper case scheme", "HTTPS://api.openai.com/v1/batches", false},
		{"leading space", " https://api.openai.com/v1/batches", false},
		{"trailing newline", "https://api.openai.com/v1/batches\n", false},
		// Issue 9: a request parameter in the host ("region") that carries
		// another host on.
		{"region with path", "https://bedrock-runtime.evil.example/x.amazonaws.com/model/x/invoke", false},
		{"region with two labels", "https://bedrock.evil.example.amazonaws.com/x", false},
		{"region in fragment", "https://runtime.sagemaker.evil.example#x.amazonaws.com/endpoints/e", false},
		{"region in query", "https://bedrock.evil.example?x.amazonaws.com/", false},
		{"fragment hides host", "https://textract.evil.example#.us-east-1.amazonaws.com", false},
		{"empty region", "https://bedrock..amazonaws.com/x", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := g.CheckURL(tt.url)
			if tt.ok {
				if err != nil {
					t.Fatalf("CheckURL(%q) = %v, want nil", tt.url, err)
				}
				return
			}
			want := &mlerr.Error{Status: 400, Type: "illegal_argument_exception",
				Reason: "Connector URL is not matching the trusted connector endpoint regex, URL is: " + tt.url}
			assertError(t, err, want, ErrUntrustedEndpoint)
		})
	}
}

// The 2.19 AWS patterns have ".*" inside the host, so they match a host
// followed by a path ending in ".amazonaws.com/". The shipped defaults are
// narrowed to one host label (COMPATIBILITY.md); an operator who configures
// the upstream patterns still gets that looseness, except where parsing the
// URL takes the other host away (user info, fragment).
func TestCheckURLUpstreamLooseAWSPatterns(t *testing.T) {
	g := newGuard(t, Options{TrustedEndpoints: trusted(t, []string{`^https://bedrock\..*[a-z0-9-]\.amazonaws\.com/.*$`})})
	if err := g.CheckURL("https://bedrock.evil.example/x.amazonaws.com/"); err != nil {
		t.Errorf("path: CheckURL = %v, want nil (the 2.19 pattern accepts it)", err)
	}
	for _, u := range []string{
		"https://bedrock.x@evil.example/x.amazonaws.com/",
		"https://bedrock.evil.example#x.amazonaws.com/",
	} {
		if err := g.CheckURL(u); !errors.Is(err, ErrUntrustedEndpoint) {
			t.Errorf("CheckURL(%q) = %v, want a refusal", u, err)
		}
	}
}

// The regexes see the URL as the HTTP client will use it, not its raw text:
// with ".*" before the trusted suffix the raw text of each of these matches,
// but the host they reach is evil.example.
func TestCheckURLMatchesParsedURL(t *testing.T) {
	g := newGuard(t, Options{TrustedEndpoints: trusted(t, []string{`^https://.*\.amazonaws\.com/.*$`})})
	tests := []struct {
		name   string
		url    string
		reason string
	}{
		{"trusted name as user", "https://bedrock.us-east-1.amazonaws.com:x@evil.example/x.amazonaws.com/",
			"Connector URL must not contain user info, URL is: https://xxxxx@evil.example/x.amazonaws.com/"},
		{"fragment", "https://evil.example#.amazonaws.com/", "Connector URL is not matching the trusted connector endpoint regex, URL is: https://evil.example#.amazonaws.com/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := &mlerr.Error{Status: 400, Type: "illegal_argument_exception", Reason: tt.reason}
			assertError(t, g.CheckURL(tt.url), want, ErrUntrustedEndpoint)
		})
	}
}

func TestCheckURLRefusesUserInfo(t *testing.T) {
	// ".*" trusts everything, so only the user info can be refused.
	g := newGuard(t, Options{TrustedEndpoints: trusted(t, []string{`.*`})})
	tests := []struct {
		name, url, shown string
	}{
		{"user", "https://evil.example@api.openai.com/v1", "https://xxxxx@api.openai.com/v1"},
		{"user and password", "https://user:s3cret@api.openai.com/v1", "https://xxxxx@api.openai.com/v1"},
		{"empty user", "https://@api.openai.com/v1", "https://xxxxx@api.openai.com/v1"},
		{"key as user", "https://sk-secret-key:@api.openai.com/v1", "https://xxxxx@api.openai.com/v1"},
		{"several @", "https://a@b@api.openai.com/v1?x=@", "https://xxxxx@api.openai.com/v1?x=@"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := &mlerr.Error{Status: 400, Type: "illegal_argument_exception",
				Reason: "Connector URL must not contain user info, URL is: " + tt.shown}
			assertError(t, g.CheckURL(tt.url), want, ErrUntrustedEndpoint)
		})
	}
}

func TestCheckURLCustomList(t *testing.T) {
	g := newGuard(t, Options{TrustedEndpoints: trusted(t, []string{`^http://127\.0\.0\.1:[0-9]+/.*$`, `a|b`})})
	tests := []struct {
		name string
		url  string
		ok   bool
	}{
		{"local double", "http://127.0.0.1:8080/v1/batches", true},
		{"local double other port", "http://127.0.0.1:1/", true},
		{"other local host", "http://127.0.0.2:8080/v1/batches", false},
		{"no port", "http://127.0.0.1/v1/batches", false},
		{"default openai not trusted", "https://api.openai.com/v1/batches", false},
		// Without the group "a|b" would become "^a|b$" and match any URL
		// ending in b.
		{"alternation stays anchored", "https://evil.com/b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := g.CheckURL(tt.url)
			if got := err == nil; got != tt.ok {
				t.Errorf("CheckURL(%q) = %v, want ok=%v", tt.url, err, tt.ok)
			}
		})
	}
}

func TestCheckURLShape(t *testing.T) {
	// ".*" trusts everything, so only the shape checks can refuse.
	g := newGuard(t, Options{TrustedEndpoints: trusted(t, []string{`.*`})})
	tests := []struct {
		name   string
		url    string
		reason string
	}{
		{"ftp", "ftp://api.openai.com/x", "Protocol is not http or https: ftp"},
		{"no scheme", "api.openai.com/x", "Protocol is not http or https: "},
		{"opaque", "https:api.openai.com", "Connector URL has no host name: https:api.openai.com"},
		{"empty host", "https:///v1", "Connector URL has no host name: https:///v1"},
		{"port too large", "https://api.openai.com:99999/", "Port out of range: 99999"},
		{"port zero", "https://api.openai.com:0/", "Port out of range: 0"},
		{"bad escape", "https://api.openai.com/%zz", `Connector URL is not a valid URL: invalid URL escape "%zz"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := &mlerr.Error{Status: 400, Type: "illegal_argument_exception", Reason: tt.reason}
			assertError(t, g.CheckURL(tt.url), want, ErrUntrustedEndpoint)
		})
	}
	for _, ok := range []string{"https://api.openai.com:443/v1", "http://[::1]:8080/", "HTTPS://api.openai.com/"} {
		if err := g.CheckURL(ok); err != nil {
			t.Errorf("CheckURL(%q) = %v, want nil", ok, err)
		}
	}
}

func TestCheckURLMasksPassword(t *testing.T) {
	g := newGuard(t, Options{TrustedEndpoints: trusted(t, config.DefaultTrustedEndpoints())})
	for _, u := range []string{
		"https://user:s3cret@api.openai.com/v1",
		// Not a URL, so refused by the regex with its raw text shown, the
		// password masked all the same.
		"https://user:s3cret@api.openai.com/%zz",
	} {
		err := g.CheckURL(u)
		if err == nil {
			t.Fatalf("CheckURL(%q) = nil, want refusal", u)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error %q contains the password", err)
		}
	}
}

func TestCheckRedirect(t *testing.T) {
	g := newGuard(t, Options{TrustedEndpoints: trusted(t, config.DefaultTrustedEndpoints())})
	req := func(s string) *http.Request {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return &http.Request{URL: u}
	}
	if err := g.CheckRedirect(req("https://api.openai.com/v1/files/f/content"), nil); err != nil {
		t.Errorf("trusted redirect: got %v, want nil", err)
	}
	if err := g.CheckRedirect(req("https://evil.com/"), nil); !errors.Is(err, ErrUntrustedEndpoint) {
		t.Errorf("untrusted redirect: got %v, want ErrUntrustedEndpoint", err)
	}
	via := make([]*http.Request, 10)
	if err := g.CheckRedirect(req("https://api.openai.com/v1"), via); err == nil {
		t.Error("11th redirect: got nil, want error")
	}
}

func TestNewRejectsNegativeDialTimeout(t *testing.T) {
	_, err := New(Options{DialTimeout: -1})
	if err == nil || !strings.Contains(err.Error(), "dial timeout") {
		t.Fatalf("New = %v, want an error naming the dial timeout", err)
	}
}

func TestRejectionMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := newGuard(t, Options{TrustedEndpoints: trusted(t, config.DefaultTrustedEndpoints()), Registerer: reg})
	// A second guard on the same registry shares the counter.
	g2 := newGuard(t, Options{Registerer: reg})
	_ = g.CheckURL("https://evil.com/")
	_ = g2.CheckURL("https://api.openai.com/v1")
	_ = g.CheckURL("https://api.openai.com/v1")
	if got := testutil.ToFloat64(g.metrics.rejections.WithLabelValues(checkTrustedEndpoint)); got != 2 {
		t.Errorf("trusted_endpoint rejections = %v, want 2", got)
	}
	if got := testutil.CollectAndCount(reg, "mlsidecar_outbound_rejections_total"); got != 2 {
		t.Errorf("series = %d, want 2 (both checks, no other labels)", got)
	}
	// A nil Registerer is allowed.
	newGuard(t, Options{})
}

func assertError(t *testing.T, err error, want *mlerr.Error, sentinel error) {
	t.Helper()
	var got *mlerr.Error
	if !errors.As(err, &got) {
		t.Fatalf("error = %v (%T), want *mlerr.Error", err, err)
	}
	if got.Status != want.Status || got.Type != want.Type || got.Reason != want.Reason {
		t.Errorf("got {%d %q %q}, want {%d %q %q}", got.Status, got.Type, got.Reason, want.Status, want.Type, want.Reason)
	}
	if got.Error() != want.Reason {
		t.Errorf("Error() = %q, want the reason %q", got.Error(), want.Reason)
	}
	if !errors.Is(err, sentinel) {
		t.Errorf("errors.Is(%v, %v) = false", err, sentinel)
	}
}

// defaultHosts are the hosts the shipped defaults may lead to.
var defaultHosts = regexp.MustCompile(`^(?:api\.openai\.com|api\.cohere\.ai|api\.deepseek\.com|` +
	`(?:runtime\.sagemaker|api\.sagemaker|bedrock-runtime|bedrock-agent-runtime|bedrock|textract|comprehend|rekognition(?:-fips)?)` +
	`\.[a-z0-9-]+\.amazonaws\.com)$`)

func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{
		"https://api.openai.com/v1/batches",
		"https://bedrock.us-east-1.amazonaws.com/model-invocation-job",
		"http://127.0.0.1:8080/x",
		"https://user:pw@api.openai.com/",
		"https://api.openai.com:99999/",
		"https://api.openai.com/%zz",
		"https:///",
		"",
		"\x00",
		"https://bedrock-runtime.evil.example/x.amazonaws.com/model/x/invoke",
		"https://bedrock-runtime.x@evil.example/x.amazonaws.com/model/x/invoke",
		"https://runtime.sagemaker.evil.example#x.amazonaws.com/endpoints/e",
		"https://bedrock.evil.example?x.amazonaws.com/",
		"http://127.0.0.1:1@evil.example/",
		"http://127.0.0.1:80#@evil.example/",
	} {
		f.Add(s)
	}
	// Each guard with the hosts it may ever let a call reach.
	type guardHosts struct {
		g     *Guard
		hosts *regexp.Regexp
	}
	var guards []guardHosts
	for _, list := range []struct {
		exprs []string
		hosts *regexp.Regexp
	}{
		{config.DefaultTrustedEndpoints(), defaultHosts},
		{[]string{`.*`}, regexp.MustCompile(`.*`)},
		{[]string{`^http://127\.0\.0\.1:[0-9]+/.*$`}, regexp.MustCompile(`^127\.0\.0\.1$`)},
	} {
		g, err := New(Options{TrustedEndpoints: trusted(f, list.exprs)})
		if err != nil {
			f.Fatal(err)
		}
		guards = append(guards, guardHosts{g, list.hosts})
	}
	f.Fuzz(func(t *testing.T, raw string) {
		for _, gh := range guards {
			err := gh.g.CheckURL(raw)
			if err != nil {
				var e *mlerr.Error
				if !errors.As(err, &e) || e.Status != 400 || e.Type != "illegal_argument_exception" || !errors.Is(err, ErrUntrustedEndpoint) {
					t.Fatalf("CheckURL(%q) = %#v, want a 400 illegal_argument_exception", raw, err)
				}
				continue
			}
			u, perr := url.Parse(raw)
			if perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
				t.Fatalf("CheckURL(%q) = nil for a URL that is not callable (%v)", raw, perr)
			}
			if u.User != nil {
				t.Fatalf("CheckURL(%q) = nil for a URL with user info", raw)
			}
			if !gh.hosts.MatchString(u.Hostname()) {
				t.Fatalf("CheckURL(%q) = nil, but the call would reach host %q", raw, u.Hostname())
			}
		}
	})
}
