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
		if st.MissingOutputs, err = s.missingOutputs(ctx, cred, t.RemoteJob, sources); err != nil {
			return "", err
		}
	default:
		return "", JobIngestible(b.Provider)
	}
	st.Provider = provider.Named(b.Provider).Name()
	if dlq, _ := t.RemoteJob["dlq"].(map[string]any); dlq != nil {
		bucket, _ := dlq["bucket"].(string)
		region, _ := dlq["region"].(string)
		if bucket != "" && region != "" {
			st.DLQ = &indexstore.IngestDLQ{Bucket: bucket, Region: region, Name: jobName(t.RemoteJob)}
		}
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
	var out []string
	err := s.listKeys(ctx, cred, prefix, func(bucket, key string) {
		if strings.HasSuffix(key, ".out") && urlpath.Base(key) != skip {
			out = append(out, "s3://"+bucket+"/"+key)
		}
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(out)
	if len(out) == 0 {
		return nil, mlerr.Status(http.StatusNotFound, "The batch job wrote no output under %s", prefix)
	}
	return out, nil
}

// missingOutputs are the input objects of a SageMaker transform job that
// have no .out among outputs. SageMaker writes
// <S3OutputPath>/<key relative to the input prefix's folder>.out for each
// input object that succeeded as a whole; an input without one is records
// the job did not answer, which the ingestion reports instead of leaving
// out silently. A manifest input is not listed: its keys are the job's own.
func (s *Service) missingOutputs(ctx context.Context, cred map[string]string, job map[string]any, outputs []string) ([]string, error) {
	in := nested(job, "TransformInput", "DataSource", "S3DataSource", "S3Uri")
	if in == "" || nested(job, "TransformInput", "DataSource", "S3DataSource", "S3DataType") == "ManifestFile" {
		return nil, nil
	}
	outPrefix := strings.TrimSuffix(nested(job, "TransformOutput", "S3OutputPath"), "/") + "/"
	have := make(map[string]bool, len(outputs))
	for _, o := range outputs {
		have[o] = true
	}
	_, prefixKey, err := ParseS3URI(in)
	if err != nil {
		return nil, nil // not an S3 location this sidecar can list: nothing to compare
	}
	folder := prefixKey[:strings.LastIndex(prefixKey, "/")+1]
	var missing []string
	err = s.listKeys(ctx, cred, in, func(bucket, key string) {
		if strings.HasSuffix(key, "/") {
			return // a folder marker, no input
		}
		if !have[outPrefix+strings.TrimPrefix(key, folder)+".out"] {
			missing = append(missing, "s3://"+bucket+"/"+key)
		}
	})
	sort.Strings(missing)
	return missing, err
}

// listKeys visits the keys under an s3:// prefix.
func (s *Service) listKeys(ctx context.Context, cred map[string]string, prefix string, visit func(bucket, key string)) error {
	bucket, key, err := ParseS3URI(prefix)
	if err != nil {
		return err
	}
	var o S3Options
	o.SetCredential(cred)
	p := s3.NewListObjectsV2Paginator(s.s3Client(o), &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(key)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return (&s3Object{uri: prefix}).describe(err)
		}
		for _, obj := range page.Contents {
			visit(bucket, aws.ToString(obj.Key))
		}
	}
	return nil
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
