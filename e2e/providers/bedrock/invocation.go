package bedrock

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// A model invocation job with Options.S3 set runs for real when its time is
// up, as Bedrock batch inference does (provider-batch-apis.md §5.2):
//
//   - input: inputDataConfig.s3InputDataConfig.s3Uri names one object, or a
//     folder whose .jsonl files (directly in it) are the input files.
//   - records: each non-empty line is {"recordId", "modelInput"}, modelInput
//     the job model's InvokeModel body; a record without recordId is given
//     one. A line that is not such a record fails the job (Bedrock's
//     validation), as does a job with no input file.
//   - output: for each input file, <outputS3Uri>/<jobId>/<file name>.out, one
//     line per record in input order: {"recordId", "modelInput",
//     "modelOutput"} with the InvokeModel response body, or {"recordId",
//     "modelInput", "error": {"errorCode", "errorMessage"}} with the status
//     and message InvokeModel would have refused it with. A job with failed
//     records still ends Completed.
//   - <outputS3Uri>/<jobId>/manifest.json.out: {"totalRecordCount",
//     "processedRecordCount", "successRecordCount", "errorRecordCount",
//     "inputTokenCount", "outputTokenCount"}, the counts also answered by
//     GetModelInvocationJob. Embedding models have no output tokens.

// invocationTimeout bounds the S3 work of one job.
const invocationTimeout = 2 * time.Minute

// manifest is manifest.json.out.
type manifest struct {
	TotalRecordCount     int `json:"totalRecordCount"`
	ProcessedRecordCount int `json:"processedRecordCount"`
	SuccessRecordCount   int `json:"successRecordCount"`
	ErrorRecordCount     int `json:"errorRecordCount"`
	InputTokenCount      int `json:"inputTokenCount"`
	OutputTokenCount     int `json:"outputTokenCount"`
}

// jobSpec is what a run reads of its CreateModelInvocationJob request.
type jobSpec struct {
	ModelID         string `json:"modelId"`
	InputDataConfig struct {
		S3InputDataConfig struct {
			S3URI string `json:"s3Uri"`
		} `json:"s3InputDataConfig"`
	} `json:"inputDataConfig"`
	OutputDataConfig struct {
		S3OutputDataConfig struct {
			S3URI string `json:"s3Uri"`
		} `json:"s3OutputDataConfig"`
	} `json:"outputDataConfig"`
}

// inputRecord is one line of an input file.
type inputRecord struct {
	RecordID   string          `json:"recordId,omitempty"`
	ModelInput json.RawMessage `json:"modelInput"`
}

// outputRecord is one line of an output file.
type outputRecord struct {
	RecordID    string          `json:"recordId"`
	ModelInput  json.RawMessage `json:"modelInput"`
	ModelOutput map[string]any  `json:"modelOutput,omitempty"`
	Error       *recordError    `json:"error,omitempty"`
}

type recordError struct {
	ErrorCode    int    `json:"errorCode"`
	ErrorMessage string `json:"errorMessage"`
}

// runJob runs a job against S3 once its time is up. The first look at the
// job after that (Get, Stop) does the work and every other look waits for
// it, so no client sees the job Completed before its output is in S3. A job
// stopped, not yet done or failed by FailNextJob writes nothing.
func (s *Server) runJob(j *job) {
	if s.opts.S3 == nil {
		return
	}
	s.mu.Lock()
	status, _, _ := s.state(j, s.Now())
	s.mu.Unlock()
	if status != StatusCompleted {
		return
	}
	j.ran.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), invocationTimeout)
		defer cancel()
		counts, failure := s.invoke(ctx, j)
		s.mu.Lock()
		defer s.mu.Unlock()
		j.counts, j.failure = counts, failure
	})
}

// invoke runs a job's records and writes its output: the counts, or the
// message the job fails with.
func (s *Server) invoke(ctx context.Context, j *job) (*manifest, string) {
	var spec jobSpec
	raw, _ := json.Marshal(j.request) // the create request is immutable once stored
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, err.Error()
	}
	inURI, outURI := spec.InputDataConfig.S3InputDataConfig.S3URI, spec.OutputDataConfig.S3OutputDataConfig.S3URI
	inBucket, inKey, err := parseS3URI(inURI)
	if err != nil {
		return nil, "inputDataConfig: " + err.Error()
	}
	outBucket, outKey, err := parseS3URI(outURI)
	if err != nil {
		return nil, "outputDataConfig: " + err.Error()
	}
	files, err := s.inputFiles(ctx, inBucket, inKey)
	if err != nil {
		return nil, fmt.Sprintf("Unable to read the input data at %s: %v", inURI, err)
	}
	if len(files) == 0 {
		return nil, fmt.Sprintf("No .jsonl input files were found at %s.", inURI)
	}

	// Read and check every file first: a malformed record fails the job in
	// validation, before anything is written.
	records := make([][]inputRecord, len(files))
	for i, key := range files {
		body, err := s.getObject(ctx, inBucket, key)
		if err != nil {
			return nil, fmt.Sprintf("Unable to read s3://%s/%s: %v", inBucket, key, err)
		}
		if records[i], err = parseRecords(body); err != nil {
			return nil, fmt.Sprintf("Invalid record in s3://%s/%s: %v", inBucket, key, err)
		}
	}

	folder := joinKey(outKey, j.id)
	counts := &manifest{}
	seq := 0
	for i, key := range files {
		var out bytes.Buffer
		for _, rec := range records[i] {
			if rec.RecordID == "" {
				seq++
				rec.RecordID = fmt.Sprintf("rec%08d", seq) // 11 alphanumerics, as Bedrock gives
			}
			line := outputRecord{RecordID: rec.RecordID, ModelInput: rec.ModelInput}
			resp, tokens, merr := s.embed(spec.ModelID, rec.ModelInput)
			counts.TotalRecordCount++
			counts.ProcessedRecordCount++
			if merr != nil {
				line.Error = &recordError{ErrorCode: merr.status, ErrorMessage: merr.message}
				counts.ErrorRecordCount++
			} else {
				line.ModelOutput = resp
				counts.SuccessRecordCount++
				counts.InputTokenCount += tokens
			}
			b, err := json.Marshal(line)
			if err != nil {
				return nil, err.Error()
			}
			out.Write(b)
			out.WriteByte('\n')
		}
		if err := s.putObject(ctx, outBucket, joinKey(folder, path.Base(key)+".out"), out.Bytes()); err != nil {
			return nil, err.Error()
		}
	}
	b, _ := json.Marshal(counts)
	if err := s.putObject(ctx, outBucket, joinKey(folder, "manifest.json.out"), append(b, '\n')); err != nil {
		return nil, err.Error()
	}
	return counts, ""
}

// inputFiles lists a job's input files: the object the key names, or the
// .jsonl files directly in the folder it names.
func (s *Server) inputFiles(ctx context.Context, bucket, key string) ([]string, error) {
	keys, err := s.listKeys(ctx, bucket, key)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if k == key && key != "" {
			return []string{k}, nil
		}
	}
	folder := key
	if folder != "" && !strings.HasSuffix(folder, "/") {
		folder += "/"
	}
	var files []string
	for _, k := range keys {
		name, ok := strings.CutPrefix(k, folder)
		if ok && strings.HasSuffix(name, ".jsonl") && !strings.Contains(name, "/") {
			files = append(files, k)
		}
	}
	return files, nil
}

// parseRecords reads the JSONL records of an input file.
func parseRecords(body []byte) ([]inputRecord, error) {
	var records []inputRecord
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 10<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var rec inputRecord
		if err := json.Unmarshal(line, &rec); err != nil {
			return nil, fmt.Errorf(`line %d is not a record {"recordId", "modelInput"}: %w`, n, err)
		}
		if len(rec.ModelInput) == 0 || string(rec.ModelInput) == "null" {
			return nil, fmt.Errorf("line %d has no modelInput", n)
		}
		records = append(records, rec)
	}
	return records, sc.Err()
}

// parseS3URI splits s3://bucket/key.
func parseS3URI(uri string) (bucket, key string, err error) {
	rest, ok := strings.CutPrefix(uri, "s3://")
	if !ok {
		return "", "", fmt.Errorf("%q is not an s3:// URI", uri)
	}
	bucket, key, _ = strings.Cut(rest, "/")
	if bucket == "" {
		return "", "", fmt.Errorf("%q names no bucket", uri)
	}
	return bucket, key, nil
}

// joinKey puts name under the key prefix, as a folder.
func joinKey(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return strings.TrimSuffix(prefix, "/") + "/" + name
}

// listKeys lists the object keys under prefix.
func (s *Server) listKeys(ctx context.Context, bucket, prefix string) ([]string, error) {
	var keys []string
	p := s3.NewListObjectsV2Paginator(s.opts.S3, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys, nil
}

func (s *Server) getObject(ctx context.Context, bucket, key string) ([]byte, error) {
	out, err := s.opts.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	return io.ReadAll(out.Body)
}

func (s *Server) putObject(ctx context.Context, bucket, key string, body []byte) error {
	if _, err := s.opts.S3.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body), ContentType: aws.String("application/jsonl"),
	}); err != nil {
		return fmt.Errorf("writing s3://%s/%s: %w", bucket, key, err)
	}
	return nil
}
