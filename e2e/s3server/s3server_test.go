package s3server

import (
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

func TestMissingBinary(t *testing.T) {
	_, err := Start(context.Background(), Options{Binary: filepath.Join(t.TempDir(), "moto_server")})
	if err == nil || !strings.Contains(err.Error(), installHint) {
		t.Fatalf("got %v, want an error saying %q", err, installHint)
	}
}

func TestServer(t *testing.T) {
	s := StartForTest(t)
	ctx := context.Background()
	c := s.Client()

	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("data")}); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"in/a.jsonl", "in/sub/b.jsonl", "other.txt"} {
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("data"), Key: aws.String(key), Body: strings.NewReader("body of " + key)}); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
	list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("data"), Prefix: aws.String("in/")})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range list.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	if got, want := strings.Join(keys, ","), "in/a.jsonl,in/sub/b.jsonl"; got != want {
		t.Errorf("listed: got %s, want %s", got, want)
	}
	got, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("data"), Key: aws.String("in/sub/b.jsonl")})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(got.Body)
	got.Body.Close()
	if string(body) != "body of in/sub/b.jsonl" {
		t.Errorf("get: got %q", body)
	}
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("data"), Key: aws.String("nope")})
	apiError(t, err, http.StatusNotFound, "NoSuchKey")

	// Signatures are checked: the SDK's own requests pass above, these not.
	t.Run("wrong secret", func(t *testing.T) {
		creds := s.Credentials()
		creds.SecretAccessKey = "wrong"
		_, err := NewClient(s.Endpoint(), s.Region(), creds).ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("data")})
		apiError(t, err, http.StatusForbidden, "SignatureDoesNotMatch")
	})
	t.Run("unknown key", func(t *testing.T) {
		_, err := NewClient(s.Endpoint(), s.Region(), aws.Credentials{AccessKeyID: "AKIDUNKNOWN", SecretAccessKey: "x"}).
			ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("data")})
		apiError(t, err, http.StatusForbidden, "InvalidAccessKeyId")
	})

	// Close stops the process: the port answers no more.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(s.Endpoint() + "/moto-api/config"); err == nil {
		t.Error("the server still answers after Close")
	}
}

// apiError checks err is the S3 error code with the HTTP status.
func apiError(t *testing.T, err error, wantStatus int, wantCode string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("got %v, want an API error", err)
	}
	if ae.ErrorCode() != wantCode {
		t.Errorf("error code: got %s, want %s (%s)", ae.ErrorCode(), wantCode, ae.ErrorMessage())
	}
	var re *awshttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != wantStatus {
		t.Errorf("got %v, want HTTP status %d", err, wantStatus)
	}
}
