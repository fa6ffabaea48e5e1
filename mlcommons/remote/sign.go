package remote

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// signer signs each attempt of an aws_sigv4 connector's calls just before
// it is sent, so a retry carries a fresh signature and date. It is bound to
// the connector version's credentials when its pooled client is built.
type signer struct {
	keys *SigV4
	next http.RoundTripper
}

// newSigner wraps next with signing when keys are set.
func newSigner(keys *SigV4, next http.RoundTripper) http.RoundTripper {
	if keys == nil {
		return next
	}
	return &signer{keys: keys, next: next}
}

func (s *signer) RoundTrip(r *http.Request) (*http.Response, error) {
	var body []byte
	if r.Body != nil {
		var err error
		if body, err = io.ReadAll(r.Body); err != nil {
			return nil, err
		}
		r.Body.Close()
	}
	r = r.Clone(r.Context())
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	r.Header.Set("X-Amz-Content-Sha256", hash)
	creds := aws.Credentials{AccessKeyID: s.keys.AccessKey, SecretAccessKey: s.keys.SecretKey, SessionToken: s.keys.SessionToken}
	if err := v4.NewSigner().SignHTTP(r.Context(), creds, r, hash, s.keys.Service, s.keys.Region, time.Now().UTC()); err != nil {
		return nil, err
	}
	return s.next.RoundTrip(r)
}
