package ingest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"

	"github.com/mlsidecar/mlsidecar/e2e/s3server"
	"github.com/mlsidecar/mlsidecar/indexstore"
)

// s3Service is a Service reading and writing the S3 server srv, and the
// credential it accepts.
func s3Service(srv *s3server.Server) (*Service, map[string]string) {
	creds := srv.Credentials()
	return &Service{o: Options{S3Endpoint: srv.Endpoint()}, http: http.DefaultClient}, map[string]string{
		CredentialAccessKey: creds.AccessKeyID, CredentialSecretKey: creds.SecretAccessKey, CredentialRegion: srv.Region(),
	}
}

// A SageMaker input object whose .out the job did not write is found, with
// output names relative to the input prefix's folder (§4.4); a manifest
// input is not compared.
func TestMissingOutputs(t *testing.T) {
	srv := s3server.StartForTest(t)
	c := srv.Client()
	ctx := context.Background()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bucket-a")}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"in/", "in/a.jsonl", "in/b.jsonl", "in/sub/c.jsonl", "out/a.jsonl.out", "out/sub/c.jsonl.out", "other/d.jsonl"} {
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bucket-a"), Key: aws.String(k), Body: strings.NewReader("{}\n")}); err != nil {
			t.Fatal(err)
		}
	}
	s, cred := s3Service(srv)
	job := func(dataType, in string) map[string]any {
		return map[string]any{
			"TransformInput":  map[string]any{"DataSource": map[string]any{"S3DataSource": map[string]any{"S3DataType": dataType, "S3Uri": in}}},
			"TransformOutput": map[string]any{"S3OutputPath": "s3://bucket-a/out"},
		}
	}
	outputs, err := s.listOut(ctx, cred, "s3://bucket-a/out/", "")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"s3://bucket-a/out/a.jsonl.out", "s3://bucket-a/out/sub/c.jsonl.out"}; !cmp.Equal(outputs, want) {
		t.Fatalf("outputs = %v, want %v", outputs, want)
	}
	for _, tc := range []struct {
		name string
		job  map[string]any
		want []string
	}{
		{"prefix folder", job("S3Prefix", "s3://bucket-a/in/"), []string{"s3://bucket-a/in/b.jsonl"}},
		{"partial name", job("S3Prefix", "s3://bucket-a/in/a"), nil},
		// Relative to the folder "", so the outputs would be out/in/….
		{"prefix without folder", job("S3Prefix", "s3://bucket-a/in"), []string{"s3://bucket-a/in/a.jsonl", "s3://bucket-a/in/b.jsonl", "s3://bucket-a/in/sub/c.jsonl"}},
		{"manifest", job("ManifestFile", "s3://bucket-a/in/manifest.json"), nil},
		{"no input location", map[string]any{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.missingOutputs(ctx, cred, tc.job, outputs)
			if err != nil || !cmp.Equal(got, tc.want) {
				t.Errorf("missingOutputs = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// An object of unknown size is written in parts once it outgrows one part,
// and as one PutObject below that; both read back byte for byte.
func TestMultipartUpload(t *testing.T) {
	srv := s3server.StartForTest(t)
	ctx := context.Background()
	if _, err := srv.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("dlq")}); err != nil {
		t.Fatal(err)
	}
	s, cred := s3Service(srv)
	var o S3Options
	o.SetCredential(cred)
	client := s.s3Client(o)
	line := []byte(strings.Repeat("x", 1023) + "\n")
	for _, tc := range []struct {
		name  string
		lines int
		parts int
	}{{"small", 3, 0}, {"two parts and a rest", 2*partBytes/len(line) + 5, 3}} {
		t.Run(tc.name, func(t *testing.T) {
			u := &multipartUpload{client: client, bucket: "dlq", key: tc.name}
			var want bytes.Buffer
			for range tc.lines {
				want.Write(line)
				if err := u.write(ctx, line); err != nil {
					t.Fatal(err)
				}
			}
			if err := u.close(ctx); err != nil {
				t.Fatal(err)
			}
			if len(u.parts) != tc.parts {
				t.Errorf("parts = %d, want %d", len(u.parts), tc.parts)
			}
			out, err := srv.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("dlq"), Key: aws.String(tc.name)})
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(out.Body)
			out.Body.Close()
			if !bytes.Equal(got, want.Bytes()) {
				t.Errorf("object is %d bytes, want the %d written", len(got), want.Len())
			}
		})
	}
}

// A Bedrock error record is a failure with Bedrock's code, message and
// recordId; an answered record, or any line of another provider, is not.
func TestProviderFailed(t *testing.T) {
	bedrock := &run{task: &indexstore.Task{Ingest: &indexstore.IngestState{Provider: "bedrock"}}}
	other := &run{task: &indexstore.Task{Ingest: &indexstore.IngestState{Provider: "openai"}}}
	errLine := `{"recordId":"REC1","modelInput":{"inputText":"x"},"error":{"errorCode":400,"errorMessage":"Malformed input request"}}`
	for _, tc := range []struct {
		name string
		r    *run
		line string
		want string
	}{
		{"error record", bedrock, errLine, "the provider failed this record: error 400: Malformed input request (recordId REC1)"},
		{"error with a null output", bedrock, `{"recordId":"REC2","modelOutput":null,"error":{"errorCode":"ThrottlingException"}}`,
			"the provider failed this record: error ThrottlingException (recordId REC2)"},
		{"answered record", bedrock, `{"recordId":"REC3","modelInput":{"inputText":"error"},"modelOutput":{"embedding":[1]}}`, ""},
		{"error field in the output", bedrock, `{"recordId":"REC4","modelOutput":{"error":"none"},"error":null}`, ""},
		{"not JSON", bedrock, `{"error": `, ""},
		{"another provider", other, errLine, ""},
	} {
		if got := tc.r.providerFailed([]byte(tc.line)); got != tc.want {
			t.Errorf("%s: providerFailed = %q, want %q", tc.name, got, tc.want)
		}
	}
}
