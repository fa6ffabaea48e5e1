package ingest

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"

	"github.com/mlsidecar/mlsidecar/e2e/s3server"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

// countingTransport counts the requests that went through it.
type countingTransport struct {
	n    atomic.Int64
	next http.RoundTripper
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}

// The S3 reader against a real S3-compatible server (moto, checking SigV4
// signatures), with the SageMaker .out layout of provider-batch-apis.md §4.4.
func TestS3Reader(t *testing.T) {
	srv := s3server.StartForTest(t)
	ctx := context.Background()
	c := srv.Client()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("offlinebatch")}); err != nil {
		t.Fatal(err)
	}
	content := sageMakerLine + "\n" + `{"SageMakerOutput":[[1],[2]],"content":["c2","t2"],"id":2}` + "\n"
	key := "output/sagemaker_djl_batch_input.json.out"
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("offlinebatch"), Key: aws.String(key), Body: strings.NewReader(content)}); err != nil {
		t.Fatal(err)
	}
	creds := srv.Credentials()
	counter := &countingTransport{next: http.DefaultTransport}
	opts := func(uri string) S3Options {
		o := S3Options{URI: uri, Endpoint: srv.Endpoint(), PathStyle: true, HTTPClient: &http.Client{Transport: counter}}
		o.SetCredential(map[string]string{
			CredentialAccessKey: creds.AccessKeyID, CredentialSecretKey: creds.SecretAccessKey,
			CredentialSessionToken: creds.SessionToken, CredentialRegion: srv.Region(),
		})
		return o
	}
	uri := "s3://offlinebatch/" + key
	second := int64(len(sageMakerLine) + 1)

	for _, tt := range []struct {
		name   string
		offset int64
		want   []readLine
	}{
		{"whole object", 0, []readLine{{Line: sageMakerLine, Offset: 0}, {Line: content[second : len(content)-1], Offset: second}}},
		{"resumed with a Range", second, []readLine{{Line: content[second : len(content)-1], Offset: second}}},
		{"resumed at the end", int64(len(content)), nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := OpenS3(ctx, opts(uri), tt.offset)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			got, end := drain(t, r)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("-want +got:\n%s", diff)
			}
			if end != int64(len(content)) {
				t.Errorf("end: got %d, want %d", end, len(content))
			}
			if r.Size() != int64(len(content)) {
				t.Errorf("size: got %d, want %d", r.Size(), len(content))
			}
		})
	}
	if counter.n.Load() == 0 {
		t.Error("the given HTTP client was not used")
	}

	t.Run("errors", func(t *testing.T) {
		_, err := OpenS3(ctx, opts("s3://offlinebatch/nope.out"), 0)
		checkErr(t, err, http.StatusNotFound, "status_exception", "Failed to get S3 object s3://offlinebatch/nope.out: NoSuchKey: The specified key does not exist.")

		bad := opts(uri)
		bad.SecretKey = "wrong"
		_, err = OpenS3(ctx, bad, 0)
		if e, ok := errorStatus(err); !ok || e != http.StatusForbidden || !strings.Contains(err.Error(), "SignatureDoesNotMatch") {
			t.Errorf("wrong secret: got %v", err)
		}

		anon := opts(uri)
		anon.AccessKey, anon.SecretKey, anon.SessionToken = "", "", ""
		_, err = OpenS3(ctx, anon, 0)
		if e, ok := errorStatus(err); !ok || e != http.StatusForbidden {
			t.Errorf("anonymous: got %v", err)
		}

		noRegion := opts(uri)
		noRegion.Region = ""
		_, err = OpenS3(ctx, noRegion, 0)
		checkErr(t, err, http.StatusBadRequest, "illegal_argument_exception", "The batch ingest credential has no region for "+uri)

		_, err = OpenS3(ctx, opts("s3://offlinebatch"), 0)
		checkErr(t, err, http.StatusBadRequest, "illegal_argument_exception", "The S3 URI s3://offlinebatch names no object")
	})
}

func errorStatus(err error) (int, bool) {
	e, ok := mlerr.From(err)
	if !ok {
		return 0, false
	}
	return e.Status, true
}
