package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

// S3Options say which object to read, and how.
type S3Options struct {
	// URI is s3://bucket/key.
	URI string
	// The credential; no access key means anonymous requests. Region is
	// required: it is what requests are signed for.
	AccessKey, SecretKey, SessionToken, Region string
	// Endpoint overrides the S3 endpoint (an S3-compatible store, e.g.
	// http://127.0.0.1:9000); PathStyle addresses http://host/bucket/key,
	// as such stores usually need.
	Endpoint  string
	PathStyle bool
	// HTTPClient must be built on the outbound guard's Transport.
	HTTPClient   *http.Client
	MaxLineBytes int
}

// SetCredential takes the credential keys ML Commons reads for S3
// (access_key, secret_key, session_token, region), each in its place: ML
// Commons 2.19 swaps region and session_token (S3Utils.initS3Client).
func (o *S3Options) SetCredential(cred map[string]string) {
	o.AccessKey = cred[CredentialAccessKey]
	o.SecretKey = cred[CredentialSecretKey]
	o.SessionToken = cred[CredentialSessionToken]
	o.Region = cred[CredentialRegion]
}

// ParseS3URI splits s3://bucket/key as S3Utils.getS3BucketName and
// getS3KeyName do, after the transport action's pattern check.
func ParseS3URI(uri string) (bucket, key string, err error) {
	m := s3URI.FindStringSubmatch(uri)
	if m == nil {
		return "", "", mlerr.IllegalArgument("Invalid S3 URI: %s", uri)
	}
	return m[1], strings.TrimPrefix(m[2], "/"), nil
}

// OpenS3 streams the object with GetObject from offset (a Range request).
// A reopen after a broken connection asks for the same ETag, so a
// replaced object is an error rather than a spliced one.
func OpenS3(ctx context.Context, o S3Options, offset int64) (*Reader, error) {
	bucket, key, err := ParseS3URI(o.URI)
	if err != nil {
		return nil, err
	}
	if key == "" {
		return nil, mlerr.IllegalArgument("The S3 URI %s names no object", o.URI)
	}
	if o.Region == "" {
		return nil, mlerr.IllegalArgument("The batch ingest credential has no region for %s", o.URI)
	}
	obj := &s3Object{client: newS3Client(o), bucket: bucket, key: key, uri: o.URI}
	return newReader(ctx, obj.open, offset, o.MaxLineBytes)
}

type s3Object struct {
	client           *s3.Client
	bucket, key, uri string
	etag             string // of the first answer
}

func (s *s3Object) open(ctx context.Context, offset int64) (io.ReadCloser, int64, error) {
	in := &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key)}
	if offset > 0 {
		in.Range = aws.String("bytes=" + strconv.FormatInt(offset, 10) + "-")
	}
	if s.etag != "" {
		in.IfMatch = aws.String(s.etag)
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		var api smithy.APIError
		if errors.As(err, &api) && api.ErrorCode() == "InvalidRange" {
			// The offset is the end of the object: nothing is left to read.
			return io.NopCloser(strings.NewReader("")), offset, nil
		}
		return nil, 0, s.describe(err)
	}
	if s.etag == "" {
		s.etag = aws.ToString(out.ETag)
	}
	size := int64(-1)
	if out.ContentRange != nil {
		first, total, ok := contentRange(*out.ContentRange)
		if !ok || first != offset {
			out.Body.Close()
			return nil, 0, fmt.Errorf("ingest: asked %s for bytes from %d, got Content-Range %q", s.uri, offset, *out.ContentRange)
		}
		size = total
	} else if offset > 0 {
		out.Body.Close()
		return nil, 0, fmt.Errorf("ingest: %s answered a range request with the whole object", s.uri)
	} else if out.ContentLength != nil {
		size = *out.ContentLength
	}
	return out.Body, size, nil
}

// describe keeps S3's status, code and message (never a credential) and
// drops the SDK's wrapping.
func (s *s3Object) describe(err error) error {
	status := http.StatusBadGateway
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		if status == http.StatusPreconditionFailed {
			return mlerr.Provider(status, "Failed to get S3 object %s: it changed while being read", s.uri).Wrapping(err)
		}
		return mlerr.Provider(status, "Failed to get S3 object %s: %s: %s", s.uri, api.ErrorCode(), api.ErrorMessage()).Wrapping(err)
	}
	return fmt.Errorf("failed to get S3 object %s: %w", s.uri, err)
}

// newS3Client is the S3 client of o.
func newS3Client(o S3Options) *s3.Client {
	opts := s3.Options{
		Region:       o.Region,
		UsePathStyle: o.PathStyle,
		// A ranged GET carries no checksum of its bytes: nothing to check.
		ResponseChecksumValidation:                aws.ResponseChecksumValidationWhenRequired,
		DisableLogOutputChecksumValidationSkipped: true,
	}
	if o.AccessKey != "" {
		opts.Credentials = credentials.NewStaticCredentialsProvider(o.AccessKey, o.SecretKey, o.SessionToken)
	} else {
		opts.Credentials = aws.AnonymousCredentials{}
	}
	if o.Endpoint != "" {
		opts.BaseEndpoint = aws.String(o.Endpoint)
	}
	if o.HTTPClient != nil {
		opts.HTTPClient = o.HTTPClient
	}
	return s3.New(opts)
}
