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

// signer signs each attempt of an aws_sigv4 call just before it is sent, so
// a retry carries a fresh signature and date.
type signer struct {
	next http.RoundTripper
}

func (s *signer) RoundTrip(r *http.Request) (*http.Response, error) {
	c := callFrom(r.Context())
	if c == nil || c.SigV4 == nil {
		return s.next.RoundTrip(r)
	}
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
	creds := aws.Credentials{AccessKeyID: c.SigV4.AccessKey, SecretAccessKey: c.SigV4.SecretKey, SessionToken: c.SigV4.SessionToken}
	if err := v4.NewSigner().SignHTTP(r.Context(), creds, r, hash, c.SigV4.Service, c.SigV4.Region, time.Now().UTC()); err != nil {
		return nil, err
	}
	return s.next.RoundTrip(r)
}
