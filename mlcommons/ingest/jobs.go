package ingest

import (
	"context"
	"encoding/json"
	"net/http"
	urlpath "path"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
	"github.com/mlsidecar/mlsidecar/mlcommons/provider"
)

// JobIngestible says whether the results of a provider's batch jobs can be
// ingested when they complete.
func JobIngestible(providerName string) error {
	switch provider.Named(providerName).Name() {
	case "openai", "bedrock", "sagemaker":
		return nil
	}
	return mlerr.IllegalArgument("Ingesting the results of a batch job is supported for OpenAI, Bedrock and SageMaker jobs, not for this connector's provider")
}

// IngestTaskID is the id of the ingestion of a batch task's results: fixed
// by the batch task, so that however many replicas see the job complete,
// one ingestion exists.
func IngestTaskID(batchTaskID string) string { return batchTaskID + "_ingest" }

// FromJob creates, once, the ingestion of a completed batch job's results
// (t is its batch task, with Batch.Ingest set) and returns its id.
func (s *Service) FromJob(ctx context.Context, batchTaskID string, t *indexstore.Task) (string, error) {
	spec, b := t.Batch.Ingest, t.Batch
	var req map[string]json.RawMessage
	if err := json.Unmarshal(spec.Request, &req); err != nil {
		return "", err
	}
	c := b.Connector
	st := &indexstore.IngestState{Caller: spec.Caller}
	cred, err := s.o.Keys().DecryptMap(c.Credential)
	if err != nil {
		return "", err
	}
	if r := c.Parameters["region"]; r != "" {
		cred[CredentialRegion] = r
	}
	var kind string
	var sources, errorFiles []string
	switch provider.Named(b.Provider).Name() {
	case "openai":
		kind = "openAI"
		if st.BaseURL, err = baseURLOf(c); err != nil {
			return "", mlerr.IllegalArgument("%v", err)
		}
		if id, _ := t.RemoteJob["output_file_id"].(string); id != "" {
			sources = append(sources, id)
		}
		if id, _ := t.RemoteJob["error_file_id"].(string); id != "" {
			errorFiles = append(errorFiles, id)
		}
	case "bedrock":
		kind = TypeS3
		out := nested(t.RemoteJob, "outputDataConfig", "s3OutputDataConfig", "s3Uri")
		arn, _ := t.RemoteJob["jobArn"].(string)
		if out == "" || arn == "" {
			return "", mlerr.IllegalArgument("the Bedrock job names no output location")
		}
		// Bedrock writes <outputS3Uri>/<job id>/<input>.out, and a
		// manifest.json.out of counts, which is no record.
		if sources, err = s.listOut(ctx, cred, strings.TrimSuffix(out, "/")+"/"+urlpath.Base(arn)+"/", "manifest.json.out"); err != nil {
			return "", err
		}
	case "sagemaker":
		kind = TypeS3
		out := nested(t.RemoteJob, "TransformOutput", "S3OutputPath")
		if out == "" {
			return "", mlerr.IllegalArgument("the SageMaker job names no output location")
		}
		if sources, err = s.listOut(ctx, cred, strings.TrimSuffix(out, "/")+"/", ""); err != nil {
			return "", err
		}
	default:
		return "", JobIngestible(b.Provider)
	}
	if st.Credential, err = s.o.Keys().EncryptMap(cred); err != nil {
		return "", err
	}
	ds, _ := json.Marshal(map[string]any{"type": kind, "source": sources})
	req["data_source"] = ds
	if st.Request, err = json.Marshal(req); err != nil {
		return "", err
	}
	st.ErrorFiles = errorFiles
	id := IngestTaskID(batchTaskID)
	if _, err := s.create(ctx, id, st, nil, t.Owner, true); err != nil {
		return "", err
	}
	return id, nil
}

// nested reads a string at keys in a provider's answer.
func nested(m map[string]any, keys ...string) string {
	var v any = m
	for _, k := range keys {
		o, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = o[k]
	}
	s, _ := v.(string)
	return s
}

// listOut lists the .out objects under an s3:// prefix, but skip.
func (s *Service) listOut(ctx context.Context, cred map[string]string, prefix, skip string) ([]string, error) {
	bucket, key, err := ParseS3URI(prefix)
	if err != nil {
		return nil, err
	}
	var o S3Options
	o.SetCredential(cred)
	client := s.s3Client(o)
	var out []string
	p := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(key)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, (&s3Object{uri: prefix}).describe(err)
		}
		for _, obj := range page.Contents {
			k := aws.ToString(obj.Key)
			if strings.HasSuffix(k, ".out") && urlpath.Base(k) != skip {
				out = append(out, "s3://"+bucket+"/"+k)
			}
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		return nil, mlerr.Status(http.StatusNotFound, "The batch job wrote no output under %s", prefix)
	}
	return out, nil
}

// s3Client is the S3 client for a credential: the configured endpoint,
// and every connection through the outbound guard.
func (s *Service) s3Client(o S3Options) *s3.Client { return newS3Client(s.s3Options(o)) }

func (s *Service) s3Options(o S3Options) S3Options {
	if s.o.S3Endpoint != "" {
		o.Endpoint, o.PathStyle = s.o.S3Endpoint, true
	}
	o.HTTPClient = s.http
	return o
}

// Ingestible is JobIngestible, for the batch lifecycle.
func (s *Service) Ingestible(providerName string) error { return JobIngestible(providerName) }
