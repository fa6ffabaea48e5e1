package sagemaker

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// A transform job with Options.S3 set runs for real when its time is up, as
// SageMaker batch transform does (provider-batch-apis.md §4.4, the
// TransformOutput API reference):
//
//   - input objects: S3DataType S3Prefix takes every object whose key starts
//     with the S3Uri's key; ManifestFile reads the manifest object, a JSON
//     array [{"prefix":"s3://bucket/path/"}, "key1", "key2", ...], and takes
//     prefix+key for each key. CompressionType Gzip input is decompressed.
//   - records: SplitType Line makes each non-empty line a record, None the
//     whole object. Each record is JSON; DataProcessing.InputFilter picks what
//     the model gets, which the model answers as InvokeEndpoint does: a string
//     or a list of strings (or an object with "inputs", "texts" or
//     "text_inputs") gives [[vector], ...].
//   - output: JoinSource Input adds the model's answer to the input record as
//     "SageMakerOutput" (a record that is not a JSON object is first wrapped
//     as {"SageMakerInput": record}); OutputFilter then picks what is
//     written. AssembleWith Line ends every result with "\n".
//   - one output object per input object, named
//     <S3OutputPath>/<input key relative to the input prefix>.out, where
//     "relative" is to the prefix's folder (its key up to the last "/"): the
//     ML Commons blueprint's s3://offlinebatch/sagemaker_djl_batch_input.json
//     with S3OutputPath s3://offlinebatch/output gives
//     output/sagemaker_djl_batch_input.json.out. A manifest's keys are
//     relative to its prefix.
//   - an object with any failed record gets no .out; the others still do,
//     and the job ends Failed with a FailureReason naming the failures.
//
// JSONPath filters: $, $.a.b, $['a'], $[0] and a last segment selecting
// several names or indices ($['a','b'], $[0,1]); the double fails a job whose
// filter needs more.

// transformTimeout bounds the S3 work of one job.
const transformTimeout = 2 * time.Minute

// transformSpec is what a job run reads of its CreateTransformJob request.
type transformSpec struct {
	TransformInput struct {
		DataSource struct {
			S3DataSource struct {
				S3DataType string
				S3Uri      string
			}
		}
		ContentType     string
		CompressionType string
		SplitType       string
	}
	TransformOutput struct {
		S3OutputPath string
		Accept       string
		AssembleWith string
	}
	DataProcessing struct {
		InputFilter  string
		OutputFilter string
		JoinSource   string
	}
}

// inputObject is one S3 object a job transforms.
type inputObject struct {
	bucket, key string
	rel         string // the name under S3OutputPath, without ".out"
}

// runJob runs a job against S3 once its time is up. The first look at the
// job after that (Describe, Stop) does the work and every other look waits
// for it, so no client sees the job Completed before its outputs are in S3.
// A job stopped, still in progress or failed by FailNextJob writes nothing.
func (s *Server) runJob(j *job) {
	if s.opts.S3 == nil {
		return
	}
	s.mu.Lock()
	status, _ := s.state(j, s.Now())
	s.mu.Unlock()
	if status != StatusCompleted {
		return
	}
	j.ran.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), transformTimeout)
		defer cancel()
		if reason := s.transform(ctx, j); reason != "" {
			s.mu.Lock()
			j.failure = reason
			s.mu.Unlock()
		}
	})
}

// transform reads, runs and writes a job's objects; it answers the job's
// FailureReason, or "" when every object succeeded.
func (s *Server) transform(ctx context.Context, j *job) string {
	var spec transformSpec
	raw, _ := json.Marshal(j.request) // the create request is immutable once stored
	if err := json.Unmarshal(raw, &spec); err != nil {
		return "ClientError: " + err.Error()
	}
	in, out := spec.TransformInput, spec.TransformOutput
	split := in.SplitType
	if split == "" {
		split = "None"
	}
	if split != "None" && split != "Line" {
		return fmt.Sprintf("ClientError: SplitType %s is not supported by this double.", split)
	}
	rs := recordSpec{split: split, assemble: out.AssembleWith, join: spec.DataProcessing.JoinSource}
	var err error
	if rs.inputFilter, err = parsePath(spec.DataProcessing.InputFilter); err != nil {
		return "ClientError: DataProcessing.InputFilter: " + err.Error()
	}
	if rs.outputFilter, err = parsePath(spec.DataProcessing.OutputFilter); err != nil {
		return "ClientError: DataProcessing.OutputFilter: " + err.Error()
	}
	objects, reason := s.inputObjects(ctx, in.DataSource.S3DataSource.S3DataType, in.DataSource.S3DataSource.S3Uri)
	if reason != "" {
		return reason
	}
	outBucket, outPrefix, err := parseS3URI(out.S3OutputPath)
	if err != nil {
		return "ClientError: TransformOutput.S3OutputPath: " + err.Error()
	}
	contentType := out.Accept
	if contentType == "" {
		contentType = "application/json"
	}

	var failures []string
	for _, o := range objects {
		body, err := s.getObject(ctx, o.bucket, o.key)
		if err == nil && in.CompressionType == "Gzip" {
			body, err = gunzip(body)
		}
		if err != nil {
			failures = append(failures, fmt.Sprintf("s3://%s/%s: %v", o.bucket, o.key, err))
			continue
		}
		result, err := s.transformObject(body, rs)
		if err != nil {
			failures = append(failures, fmt.Sprintf("s3://%s/%s: %v", o.bucket, o.key, err))
			continue // SageMaker uploads no partially processed object
		}
		if slices.Contains(s.opts.LoseOutputs, o.key) {
			continue
		}
		key := joinKey(outPrefix, o.rel+".out")
		if _, err := s.opts.S3.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(outBucket), Key: aws.String(key), Body: bytes.NewReader(result), ContentType: aws.String(contentType),
		}); err != nil {
			failures = append(failures, fmt.Sprintf("writing s3://%s/%s: %v", outBucket, key, err))
		}
	}
	if len(failures) > 0 {
		return "ClientError: See job logs for more information. " + strings.Join(failures, "; ")
	}
	return ""
}

// inputObjects lists a job's input objects, or answers its FailureReason.
func (s *Server) inputObjects(ctx context.Context, dataType, uri string) ([]inputObject, string) {
	bucket, key, err := parseS3URI(uri)
	if err != nil {
		return nil, "ClientError: TransformInput.DataSource.S3DataSource.S3Uri: " + err.Error()
	}
	switch dataType {
	case "S3Prefix", "":
		keys, err := s.listKeys(ctx, bucket, key)
		if err != nil {
			return nil, fmt.Sprintf("ClientError: Failed to list objects under %s: %v", uri, err)
		}
		if len(keys) == 0 {
			return nil, fmt.Sprintf("ClientError: No S3 objects found under S3 URL %q given in input data source.", uri)
		}
		folder := key[:strings.LastIndex(key, "/")+1]
		objects := make([]inputObject, len(keys))
		for i, k := range keys {
			objects[i] = inputObject{bucket: bucket, key: k, rel: strings.TrimPrefix(k, folder)}
		}
		return objects, ""
	case "ManifestFile":
		body, err := s.getObject(ctx, bucket, key)
		if err != nil {
			return nil, fmt.Sprintf("ClientError: Failed to read the manifest %s: %v", uri, err)
		}
		objects, err := parseManifest(body)
		if err != nil {
			return nil, fmt.Sprintf("ClientError: Invalid manifest %s: %v", uri, err)
		}
		return objects, ""
	}
	return nil, fmt.Sprintf("ClientError: S3DataType %s is not supported by this double.", dataType)
}

// parseManifest reads [{"prefix":"s3://bucket/path/"}, "key1", ...].
func parseManifest(body []byte) ([]inputObject, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(body, &items); err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, errors.New(`the manifest is empty; it starts with {"prefix": "s3://..."}`)
	}
	var head struct {
		Prefix string `json:"prefix"`
	}
	if err := json.Unmarshal(items[0], &head); err != nil || head.Prefix == "" {
		return nil, errors.New(`the manifest's first element must be {"prefix": "s3://..."}`)
	}
	bucket, prefix, err := parseS3URI(head.Prefix)
	if err != nil {
		return nil, err
	}
	objects := make([]inputObject, 0, len(items)-1)
	for i, item := range items[1:] {
		var key string
		if err := json.Unmarshal(item, &key); err != nil {
			return nil, fmt.Errorf("element %d is not a key string", i+1)
		}
		objects = append(objects, inputObject{bucket: bucket, key: prefix + key, rel: key})
	}
	return objects, nil
}

// recordSpec is how a job turns records into results.
type recordSpec struct {
	split, assemble, join     string
	inputFilter, outputFilter []step
}

// transformObject runs one input object's records; any failed record fails
// the object.
func (s *Server) transformObject(body []byte, rs recordSpec) ([]byte, error) {
	records := [][]byte{body}
	if rs.split == "Line" {
		records = nil
		sc := bufio.NewScanner(bytes.NewReader(body))
		sc.Buffer(nil, 100<<20) // MaxPayloadInMB at most 100
		for sc.Scan() {
			if line := bytes.TrimSpace(sc.Bytes()); len(line) > 0 {
				records = append(records, bytes.Clone(line))
			}
		}
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	var out bytes.Buffer
	for i, rec := range records {
		result, err := s.transformRecord(rec, rs)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i+1, err)
		}
		out.Write(result)
		if rs.assemble == "Line" {
			out.WriteByte('\n')
		}
	}
	return out.Bytes(), nil
}

func (s *Server) transformRecord(rec []byte, rs recordSpec) ([]byte, error) {
	record, err := decodeJSON(rec)
	if err != nil {
		return nil, fmt.Errorf("the record is not JSON: %w", err)
	}
	input, err := applyPath(record, rs.inputFilter)
	if err != nil {
		return nil, fmt.Errorf("InputFilter: %w", err)
	}
	texts, problem := textsOf(input)
	if problem != "" {
		// What the model container answers; the job log would show it.
		return nil, fmt.Errorf("received client error (400) from the model: %s", problem)
	}
	vectors := make([]any, len(texts))
	for i, t := range texts {
		vectors[i] = Embedding(t, s.opts.Dimensions)
	}
	var joined any = vectors
	if rs.join == "Input" {
		obj, ok := record.(map[string]any)
		if !ok {
			obj = map[string]any{"SageMakerInput": record}
		}
		obj["SageMakerOutput"] = vectors
		joined = obj
	}
	result, err := applyPath(joined, rs.outputFilter)
	if err != nil {
		return nil, fmt.Errorf("OutputFilter: %w", err)
	}
	return json.Marshal(result)
}

// decodeJSON keeps numbers as written, so ids survive the round trip.
func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, errors.New("more than one JSON value")
	}
	return v, nil
}

var errUnsupportedPath = errors.New("JSONPath not supported by this double")

// step is one step of a JSONPath filter: one name or index, or, as the last
// step only, a union of names or of indices.
type step struct {
	names   []string
	indices []int
}

// parsePath parses one of SageMaker's JSONPath filters, the subset in this
// file's comment; "" and "$" are no steps.
func parsePath(p string) ([]step, error) {
	unsupported := fmt.Errorf("%w: %q", errUnsupportedPath, p)
	if p == "" || p == "$" {
		return nil, nil
	}
	rest, ok := strings.CutPrefix(p, "$")
	if !ok {
		return nil, unsupported
	}
	var steps []step
	for rest != "" {
		var st step
		switch rest[0] {
		case '.':
			end := strings.IndexAny(rest[1:], ".[") + 1
			if end == 0 {
				end = len(rest)
			}
			name := rest[1:end]
			if name == "" || name == "*" {
				return nil, unsupported
			}
			st.names, rest = []string{name}, rest[end:]
		case '[':
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				return nil, unsupported
			}
			for _, sel := range strings.Split(rest[1:end], ",") {
				sel = strings.TrimSpace(sel)
				if len(sel) >= 2 && (sel[0] == '\'' || sel[0] == '"') && sel[len(sel)-1] == sel[0] {
					st.names = append(st.names, sel[1:len(sel)-1])
				} else if i, err := strconv.Atoi(sel); err == nil && i >= 0 {
					st.indices = append(st.indices, i)
				} else {
					return nil, unsupported
				}
			}
			if len(st.names) > 0 && len(st.indices) > 0 {
				return nil, unsupported
			}
			rest = rest[end+1:]
		default:
			return nil, unsupported
		}
		if len(st.names)+len(st.indices) > 1 && rest != "" {
			return nil, unsupported // a union must be last
		}
		steps = append(steps, st)
	}
	return steps, nil
}

// applyPath walks v along steps. A union of names is the object of those
// fields that v has; a union of indices the array of those elements.
func applyPath(v any, steps []step) (any, error) {
	for _, st := range steps {
		if len(st.names) > 0 {
			obj, ok := v.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%v is not an object", st.names)
			}
			if len(st.names) == 1 {
				x, ok := obj[st.names[0]]
				if !ok {
					return nil, fmt.Errorf("no field %q", st.names[0])
				}
				v = x
				continue
			}
			sub := map[string]any{}
			for _, n := range st.names {
				if x, ok := obj[n]; ok {
					sub[n] = x
				}
			}
			v = sub
			continue
		}
		arr, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("%v is not an array", st.indices)
		}
		picked := make([]any, 0, len(st.indices))
		for _, i := range st.indices {
			if i >= len(arr) {
				return nil, fmt.Errorf("no element %d", i)
			}
			picked = append(picked, arr[i])
		}
		if len(picked) == 1 {
			v = picked[0]
		} else {
			v = picked
		}
	}
	return v, nil
}

func gunzip(b []byte) ([]byte, error) {
	r, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("CompressionType Gzip: %w", err)
	}
	defer r.Close()
	return io.ReadAll(r)
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

// listKeys lists the object keys under prefix, folder markers left out.
func (s *Server) listKeys(ctx context.Context, bucket, prefix string) ([]string, error) {
	var keys []string
	p := s3.NewListObjectsV2Paginator(s.opts.S3, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Contents {
			if k := aws.ToString(o.Key); !strings.HasSuffix(k, "/") {
				keys = append(keys, k)
			}
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
