package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"

	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

// The data source types ML Commons knows, lower-cased as it picks its
// reader (MLEngineClassLoader.initInstance(type.toLowerCase(), ...)).
const (
	TypeS3     = "s3"
	TypeOpenAI = "openai"
)

// Credential keys of the _batch_ingestion body, as ML Commons reads them
// (S3DataIngestion, OpenAIDataIngestion).
const (
	CredentialAccessKey    = "access_key"
	CredentialSecretKey    = "secret_key"
	CredentialSessionToken = "session_token"
	CredentialRegion       = "region"
	CredentialOpenAIKey    = "openAI_key"
)

// Input is the body of POST /_plugins/_ml/_batch_ingestion
// (MLBatchIngestionInput).
type Input struct {
	IndexName string
	// FieldMap maps a target field to JSONPaths, each possibly prefixed
	// with a source selector ("source[1].$.body.data[0].embedding"). A
	// single string in the body is a list of one: ML Commons filters and
	// reads both alike.
	FieldMap map[string][]string
	// IngestFields are JSONPaths copied under their last dot-separated
	// segment; null entries of the body are dropped, as ML Commons does.
	IngestFields []string
	// Credential is nil when the body sends "credential": null, and empty
	// when it leaves credential out: ML Commons parses a missing credential
	// as an empty map, and only null meets its "cannot be null" check.
	Credential  map[string]string
	ConnectorID string
	DataSource  DataSource
}

// DataSource is the data_source object. Its checks run in Validate, after
// the feature gate, as in ML Commons' transport action.
type DataSource struct {
	// Type is as given ("openAI"); Kind is what selects the reader.
	Type   string
	Source []string

	fields   int  // keys in the object: {} "cannot be null"
	hasType  bool // type present and not null
	hasSrc   bool // source present and not null
	typeErr  bool // type is not a string
	srcError bool // source is not a list of strings
}

// NewDataSource is a data source made by the sidecar itself (ingesting a
// finished batch job's output) rather than parsed from a request.
func NewDataSource(typ string, source []string) DataSource {
	return DataSource{Type: typ, Source: source, fields: 2, hasType: true, hasSrc: true}
}

// Kind is the lower-cased type: TypeS3, TypeOpenAI or what else was given.
func (d DataSource) Kind() string { return strings.ToLower(d.Type) }

// The texts of ML Commons 2.19 for a bad _batch_ingestion request.
const (
	// RestMLBatchIngestAction.getRequest: an IOException there, so 500 in
	// ML Commons; a client mistake answered 400 here (COMPATIBILITY.md).
	msgEmptyBody = "Batch Ingestion request has empty body"
	// MLBatchIngestionInput's constructor: IllegalArgumentException, 400.
	msgNoIndexName   = "The index name for data ingestion is missing. Please provide a valid index name to proceed."
	msgNoDataSources = "No data sources were provided for ingestion. Please specify at least one valid data source to proceed."
	// TransportBatchIngestionAction.doExecute wraps every
	// IllegalArgumentException of validateBatchIngestInput in a 400
	// OpenSearchStatusException with this prefix.
	msgInvalidPrefix = "IllegalArgumentException in the batch ingestion input: "
	// TransportBatchIngestionAction.validateBatchIngestInput.
	msgNullDataSource    = "The batch ingest input data source cannot be null"
	msgNullCredential    = "The batch ingest credential or connector_id cannot be null"
	msgNoTypeOrSource    = "The batch ingest input data source is missing data type or source"
	msgEmptyS3URIs       = "The batch ingest input s3Uris is empty"
	msgInvalidS3URIs     = "The following batch ingest input S3 URIs are invalid: "
	msgUnknownSourceType = "Can't find class for type " // MLEngineClassLoader.initInstance
	// AbstractIngestion.batchIngest ("filed" sic).
	msgNoIDForSources = "The id filed must be provided to match documents for multiple sources"
	msgEmptyBulk      = "the bulk ingestion is empty: please check your field mapping to match your sources"
)

// s3URI is TransportBatchIngestionAction.S3_URI_REGEX. Go's $ without the m
// flag ends the text, as Java's Matcher.matches() requires.
var s3URI = regexp.MustCompile(`^s3://([a-zA-Z0-9.-]+)(/.*)?$`)

// ParseInput parses a _batch_ingestion body as RestMLBatchIngestAction and
// MLBatchIngestionInput.parse do: unknown fields skipped, the last of
// duplicate keys kept, index_name and data_source required. JSON that
// ML Commons would meet with a ClassCastException (a 500) is a 400
// parse_exception here.
func ParseInput(body []byte) (*Input, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, mlerr.Parse(msgEmptyBody)
	}
	if err := mlerr.ExpectedObject(body); err != nil {
		return nil, err
	}
	var top map[string]json.RawMessage
	if err := decodeStrict(body, &top); err != nil {
		return nil, parseErr("%s", jsonErrText(err))
	}
	in := &Input{Credential: map[string]string{}}
	var haveIndex, haveSources bool
	for name, raw := range top {
		if isNull(raw) {
			switch name {
			case "credential":
				in.Credential = nil
			}
			continue
		}
		var err error
		switch name {
		case "index_name":
			in.IndexName, err = textValue(name, raw)
			haveIndex = in.IndexName != ""
		case "field_map":
			in.FieldMap, err = parseFieldMap(raw)
		case "ingest_fields":
			in.IngestFields, err = parseIngestFields(raw)
		case "credential":
			in.Credential, err = parseCredential(raw)
		case "connector_id":
			in.ConnectorID, err = textValue(name, raw)
		case "data_source":
			in.DataSource, err = parseDataSource(raw)
			haveSources = err == nil
		}
		if err != nil {
			return nil, err
		}
	}
	// The constructor's checks, in its order. An empty index_name is no
	// index either (ML Commons would accept it and fail every bulk).
	if !haveIndex {
		return nil, mlerr.IllegalArgument(msgNoIndexName)
	}
	if !haveSources {
		return nil, mlerr.IllegalArgument(msgNoDataSources)
	}
	return in, nil
}

// Validate runs TransportBatchIngestionAction.validateBatchIngestInput, in
// its order and with its texts, then the checks ML Commons only meets once
// the task runs (an unknown type, a JSONPath that does not compile, a
// mapping that cannot work): those fail the task there, and answer 400 here.
// The caller checks the feature gate (offline_batch_ingestion_enabled)
// before, as ML Commons does.
func (in *Input) Validate() error {
	ds := in.DataSource
	if ds.fields == 0 {
		return invalid(msgNullDataSource)
	}
	if in.Credential == nil && in.ConnectorID == "" {
		return invalid(msgNullCredential)
	}
	if !ds.hasType || !ds.hasSrc {
		return invalid(msgNoTypeOrSource)
	}
	if ds.typeErr {
		return invalid("The batch ingest input data source type must be a string")
	}
	if ds.srcError {
		return invalid("The batch ingest input data source source must be a list of strings")
	}
	switch ds.Kind() {
	case TypeS3:
		if len(ds.Source) == 0 {
			return invalid(msgEmptyS3URIs)
		}
		var bad []string
		for _, u := range ds.Source {
			if !s3URI.MatchString(u) {
				bad = append(bad, u)
			}
		}
		if len(bad) > 0 {
			// Java's List.toString.
			return invalid(msgInvalidS3URIs + "[" + strings.Join(bad, ", ") + "]")
		}
	case TypeOpenAI:
	default:
		return invalid(msgUnknownSourceType + ds.Kind())
	}
	_, err := compilePlans(in)
	return err
}

// invalid is the transport action's 400 for an IllegalArgumentException.
func invalid(msg string) *mlerr.Error {
	return mlerr.Status(http.StatusBadRequest, "%s", msgInvalidPrefix+msg)
}

func parseErr(format string, a ...any) *mlerr.Error {
	return mlerr.Parse("Failed to parse request body: "+format, a...)
}

// textValue is XContentParser.text(): a string, or a number or boolean as
// its JSON text.
func textValue(name string, raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", parseErr("%s", jsonErrText(err))
		}
		return s, nil
	case '{', '[':
		return "", parseErr("field [%s] must be a string", name)
	}
	return string(raw), nil
}

func parseFieldMap(raw json.RawMessage) (map[string][]string, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, parseErr("field [field_map] must be an object")
	}
	out := make(map[string][]string, len(m))
	for k, v := range m {
		if isNull(v) {
			continue // neither a String nor a List: ML Commons drops it
		}
		paths, err := pathList(v)
		if err != nil {
			// ML Commons skips such an entry, or fails the task with a
			// ClassCastException for a list of non-strings.
			return nil, parseErr("field [field_map.%s] must be a JSONPath or a list of JSONPaths", k)
		}
		out[k] = paths
	}
	return out, nil
}

// pathList reads a string or a list of strings.
func pathList(raw json.RawMessage) ([]string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return []string{s}, nil
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(elems))
	for _, e := range elems {
		var p string
		if isNull(e) || json.Unmarshal(e, &p) != nil {
			return nil, errors.New("not a JSONPath")
		}
		out = append(out, p)
	}
	return out, nil
}

func parseIngestFields(raw json.RawMessage) ([]string, error) {
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, parseErr("field [ingest_fields] must be a list of JSONPaths")
	}
	out := make([]string, 0, len(elems))
	for _, e := range elems {
		if isNull(e) {
			continue // filter(Objects::nonNull)
		}
		var s string
		if err := json.Unmarshal(e, &s); err != nil {
			return nil, parseErr("field [ingest_fields] must be a list of JSONPaths")
		}
		out = append(out, s)
	}
	return out, nil
}

// parseCredential is XContentParser.mapStrings: each value's text.
func parseCredential(raw json.RawMessage) (map[string]string, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, parseErr("field [credential] must be an object")
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if isNull(v) {
			continue
		}
		s, err := textValue("credential."+k, v)
		if err != nil {
			return nil, err
		}
		out[k] = s
	}
	return out, nil
}

func parseDataSource(raw json.RawMessage) (DataSource, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return DataSource{}, parseErr("field [data_source] must be an object")
	}
	ds := DataSource{fields: len(m)}
	if t, ok := m["type"]; ok && !isNull(t) {
		ds.hasType = true
		if err := json.Unmarshal(t, &ds.Type); err != nil {
			ds.typeErr = true
		}
	}
	if s, ok := m["source"]; ok && !isNull(s) {
		ds.hasSrc = true
		var elems []json.RawMessage
		if err := json.Unmarshal(s, &elems); err != nil {
			ds.srcError = true
		}
		for _, e := range elems {
			var v string
			if isNull(e) || json.Unmarshal(e, &v) != nil {
				ds.srcError = true
				break
			}
			ds.Source = append(ds.Source, v)
		}
	}
	return ds, nil
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

// decodeStrict decodes exactly one JSON value into v.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

func jsonErrText(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("expected a JSON object, got a JSON %s", te.Value)
	}
	return err.Error()
}

// sortedKeys returns m's keys in order, for output that does not depend on
// map iteration.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
