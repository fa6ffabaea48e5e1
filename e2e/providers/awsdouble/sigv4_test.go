package awsdouble

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// The AWS SigV4 test suite's fixed values.
const (
	suiteDate  = "20150830T123600Z"
	suiteToken = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/" +
		"qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+" +
		"scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="
)

func suiteVerifier(creds Credentials) *Verifier {
	at, _ := time.Parse(amzDateLayout, suiteDate)
	return &Verifier{Service: "service", Region: "us-east-1", Credentials: []Credentials{creds}, Now: func() time.Time { return at }}
}

// suiteRequest builds a request as the server sees it, from a test-suite
// vector's parts.
func suiteRequest(method, target string, headers map[string]string, signed, signature string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	r.Host = "example.amazonaws.com"
	r.Header.Set("X-Amz-Date", suiteDate)
	for k, v := range headers {
		r.Header.Set(k, v)
	}
	r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders="+signed+", Signature="+signature)
	return r
}

func TestVerifySuiteVectors(t *testing.T) {
	tests := []struct {
		name      string
		method    string
		target    string
		headers   map[string]string
		token     string
		signed    string
		signature string
	}{
		{"get-vanilla", "GET", "/", nil, "", "host;x-amz-date", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
		{"post-vanilla", "POST", "/", nil, "", "host;x-amz-date", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
		{"get-vanilla-query-order-key-case", "GET", "/?Param2=value2&Param1=value1", nil, "", "host;x-amz-date", "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
		{"post-header-value-case", "POST", "/", map[string]string{"My-Header1": "VALUE1"}, "", "host;my-header1;x-amz-date", "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"},
		{"post-sts-header-before", "POST", "/", map[string]string{"X-Amz-Security-Token": suiteToken}, suiteToken, "host;x-amz-date;x-amz-security-token", "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			creds := TestCredentials
			creds.SessionToken = tt.token
			v := suiteVerifier(creds)
			r := suiteRequest(tt.method, tt.target, tt.headers, tt.signed, tt.signature)
			if err := v.Verify(r, nil); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}

func TestVerifySuiteVectorTampered(t *testing.T) {
	const signature = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
	tests := []struct {
		name     string
		mutate   func(r *http.Request)
		body     []byte
		wantCode string
	}{
		{"signed header changed", func(r *http.Request) { r.Host = "example2.amazonaws.com" }, nil, "InvalidSignatureException"},
		{"method changed", func(r *http.Request) { r.Method = "DELETE" }, nil, "InvalidSignatureException"},
		{"query added", func(r *http.Request) { r.URL.RawQuery = "a=b" }, nil, "InvalidSignatureException"},
		{"body added", func(*http.Request) {}, []byte("{}"), "InvalidSignatureException"},
		{"date changed", func(r *http.Request) { r.Header.Set("X-Amz-Date", "20150830T123601Z") }, nil, "InvalidSignatureException"},
		{"token added", func(r *http.Request) { r.Header.Set("X-Amz-Security-Token", "x") }, nil, "UnrecognizedClientException"},
		{"no authorization", func(r *http.Request) { r.Header.Del("Authorization") }, nil, "MissingAuthenticationTokenException"},
		{"no date", func(r *http.Request) { r.Header.Del("X-Amz-Date") }, nil, "IncompleteSignatureException"},
		{"content hash wrong", func(r *http.Request) { r.Header.Set("X-Amz-Content-Sha256", strings.Repeat("0", 64)) }, nil, "XAmzContentSHA256Mismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := suiteRequest("GET", "/", nil, "host;x-amz-date", signature)
			tt.mutate(r)
			err := suiteVerifier(TestCredentials).Verify(r, tt.body)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Verify: got %v, want an *Error", err)
			}
			if e.Code != tt.wantCode {
				t.Errorf("code: got %s, want %s (%s)", e.Code, tt.wantCode, e.Message)
			}
		})
	}
}

func TestVerifyScopeAndSkew(t *testing.T) {
	const signature = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
	at, _ := time.Parse(amzDateLayout, suiteDate)
	tests := []struct {
		name   string
		v      Verifier
		wantIn string
	}{
		{"other region", Verifier{Service: "service", Region: "eu-west-1"}, "valid region"},
		{"other service", Verifier{Service: "bedrock", Region: "us-east-1"}, "correct service: 'bedrock'"},
		{"expired", Verifier{Service: "service", Region: "us-east-1", Now: func() time.Time { return at.Add(16 * time.Minute) }}, "Signature expired"},
		{"from the future", Verifier{Service: "service", Region: "us-east-1", Now: func() time.Time { return at.Add(-16 * time.Minute) }}, "not yet current"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.v.Credentials = []Credentials{TestCredentials}
			if tt.v.Now == nil {
				tt.v.Now = func() time.Time { return at }
			}
			err := tt.v.Verify(suiteRequest("GET", "/", nil, "host;x-amz-date", signature), nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("Verify: got %v, want an error containing %q", err, tt.wantIn)
			}
		})
	}
	v := suiteVerifier(TestCredentials)
	v.Now = func() time.Time { return at.Add(14 * time.Minute) }
	if err := v.Verify(suiteRequest("GET", "/", nil, "host;x-amz-date", signature), nil); err != nil {
		t.Errorf("Verify 14 minutes late: %v", err)
	}
}

// TestVerifySDKSigned sends requests signed by aws-sdk-go-v2's signer over a
// real connection, with the paths the Bedrock clients send.
func TestVerifySDKSigned(t *testing.T) {
	creds := Credentials{AccessKeyID: "AKIDTEST", SecretAccessKey: "secret/with+chars", SessionToken: "token=="}
	v := &Verifier{Service: "bedrock", Region: "us-east-1", Credentials: []Credentials{creds}}
	verdicts := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		verdicts <- v.Verify(r, body)
	}))
	defer srv.Close()

	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		secret     string
		wantFailed bool
	}{
		{"model id with colon", "POST", "/model/amazon.titan-embed-text-v2%3A0/invoke", `{"inputText":"hi"}`, creds.SecretAccessKey, false},
		{"encoded job arn", "GET", "/model-invocation-job/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Amodel-invocation-job%2Fabc", "", creds.SecretAccessKey, false},
		{"query with spaces", "GET", "/model-invocation-jobs?nameContains=a%20b&maxResults=2&maxResults=10", "", creds.SecretAccessKey, false},
		{"wrong secret", "POST", "/model/m/invoke", `{}`, "not the secret", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := http.NewRequest(tt.method, srv.URL+tt.path, bytes.NewReader([]byte(tt.body)))
			if err != nil {
				t.Fatal(err)
			}
			if tt.body == "" {
				r.Body, r.ContentLength = http.NoBody, 0
			}
			r.Header.Set("Content-Type", "application/json")
			sum := sha256.Sum256([]byte(tt.body))
			signWith := aws.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: tt.secret, SessionToken: creds.SessionToken}
			if err := v4.NewSigner().SignHTTP(context.Background(), signWith, r, hex.EncodeToString(sum[:]), "bedrock", "us-east-1", time.Now()); err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got := <-verdicts
			if failed := got != nil; failed != tt.wantFailed {
				t.Errorf("Verify: got %v, want failure %v", got, tt.wantFailed)
			}
		})
	}
}
