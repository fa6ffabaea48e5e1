package ingest

import (
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

// The body of §9.1 of the reference (ML Commons' documentation example).
const s3Body = `{"index_name":"my-index",
 "field_map":{"chapter":"$.content[0]","title":"$.content[1]",
              "chapter_embedding":"$.SageMakerOutput[0]","_id":"$.id"},
 "ingest_fields":["$.custom_field"],
 "credential":{"access_key":"AK","secret_key":"SK","session_token":"ST","region":"us-east-1"},
 "data_source":{"type":"s3","source":["s3://bucket/out.jsonl.out"]}}`

func TestParseInput(t *testing.T) {
	for _, tt := range []struct {
		name string
		body string
		want *Input
	}{
		{
			name: "reference example",
			body: s3Body,
			want: &Input{
				IndexName: "my-index",
				FieldMap: map[string][]string{
					"chapter": {"$.content[0]"}, "title": {"$.content[1]"},
					"chapter_embedding": {"$.SageMakerOutput[0]"}, "_id": {"$.id"},
				},
				IngestFields: []string{"$.custom_field"},
				Credential:   map[string]string{"access_key": "AK", "secret_key": "SK", "session_token": "ST", "region": "us-east-1"},
				DataSource:   DataSource{Type: "s3", Source: []string{"s3://bucket/out.jsonl.out"}},
			},
		},
		{
			name: "openAI with a list value and source prefixes",
			body: `{"index_name":"i","field_map":{"_id":["source[0].$.custom_id","source[1].$.custom_id"],"q":"source[1].$.body.input[0]"},
				"credential":{"openAI_key":"sk"},"data_source":{"type":"openAI","source":["file-a","file-b"]}}`,
			want: &Input{
				IndexName:  "i",
				FieldMap:   map[string][]string{"_id": {"source[0].$.custom_id", "source[1].$.custom_id"}, "q": {"source[1].$.body.input[0]"}},
				Credential: map[string]string{"openAI_key": "sk"},
				DataSource: DataSource{Type: "openAI", Source: []string{"file-a", "file-b"}},
			},
		},
		{
			name: "credential left out is empty, connector_id kept, unknown fields skipped",
			body: `{"index_name":"i","connector_id":"c1","extra":{"a":[1]},"data_source":{"type":"s3","source":["s3://b/k"]}}`,
			want: &Input{IndexName: "i", ConnectorID: "c1", Credential: map[string]string{}, DataSource: DataSource{Type: "s3", Source: []string{"s3://b/k"}}},
		},
		{
			name: "credential null is nil; a null field_map entry and null ingest field are dropped",
			body: `{"index_name":"i","credential":null,"field_map":{"a":null,"b":"$.b"},"ingest_fields":[null,"$.c"],"data_source":{"type":"s3","source":[]}}`,
			want: &Input{IndexName: "i", FieldMap: map[string][]string{"b": {"$.b"}}, IngestFields: []string{"$.c"}, DataSource: DataSource{Type: "s3"}},
		},
		{
			name: "numbers as text, last duplicate wins",
			body: `{"index_name":"a","index_name":12,"credential":{"region":1},"data_source":{"type":"s3","source":["s3://b/k"]}}`,
			want: &Input{IndexName: "12", Credential: map[string]string{"region": "1"}, DataSource: DataSource{Type: "s3", Source: []string{"s3://b/k"}}},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseInput([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreUnexported(DataSource{}), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("-want +got:\n%s", diff)
			}
			if (got.Credential == nil) != (tt.want.Credential == nil) {
				t.Errorf("credential nil: got %v, want %v", got.Credential == nil, tt.want.Credential == nil)
			}
		})
	}
}

func TestParseInputErrors(t *testing.T) {
	for _, tt := range []struct {
		name, body string
		status     int
		typ        string
		reason     string
	}{
		{"empty body", "  \n", 400, "parse_exception", "Batch Ingestion request has empty body"},
		{"not an object", `[1]`, 400, "parsing_exception", "Failed to parse object: expecting token of type [START_OBJECT] but found [START_ARRAY]"},
		{"bad JSON", `{"index_name":`, 400, "parse_exception", "Failed to parse request body: unexpected EOF"},
		{"no index name", `{"data_source":{"type":"s3","source":["s3://b/k"]}}`, 400, "illegal_argument_exception",
			"The index name for data ingestion is missing. Please provide a valid index name to proceed."},
		{"null index name", `{"index_name":null,"data_source":{}}`, 400, "illegal_argument_exception",
			"The index name for data ingestion is missing. Please provide a valid index name to proceed."},
		{"empty index name", `{"index_name":"","data_source":{}}`, 400, "illegal_argument_exception",
			"The index name for data ingestion is missing. Please provide a valid index name to proceed."},
		{"no data source", `{"index_name":"i"}`, 400, "illegal_argument_exception",
			"No data sources were provided for ingestion. Please specify at least one valid data source to proceed."},
		{"null data source", `{"index_name":"i","data_source":null}`, 400, "illegal_argument_exception",
			"No data sources were provided for ingestion. Please specify at least one valid data source to proceed."},
		{"index name object", `{"index_name":{},"data_source":{}}`, 400, "parse_exception", "Failed to parse request body: field [index_name] must be a string"},
		{"field_map list", `{"index_name":"i","field_map":[],"data_source":{}}`, 400, "parse_exception", "Failed to parse request body: field [field_map] must be an object"},
		{"field_map number", `{"index_name":"i","field_map":{"a":1},"data_source":{}}`, 400, "parse_exception",
			"Failed to parse request body: field [field_map.a] must be a JSONPath or a list of JSONPaths"},
		{"field_map list of numbers", `{"index_name":"i","field_map":{"a":["$.a",2]},"data_source":{}}`, 400, "parse_exception",
			"Failed to parse request body: field [field_map.a] must be a JSONPath or a list of JSONPaths"},
		{"ingest_fields object", `{"index_name":"i","ingest_fields":{},"data_source":{}}`, 400, "parse_exception",
			"Failed to parse request body: field [ingest_fields] must be a list of JSONPaths"},
		{"credential list", `{"index_name":"i","credential":[],"data_source":{}}`, 400, "parse_exception",
			"Failed to parse request body: field [credential] must be an object"},
		{"data_source string", `{"index_name":"i","data_source":"s3"}`, 400, "parse_exception",
			"Failed to parse request body: field [data_source] must be an object"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseInput([]byte(tt.body))
			checkErr(t, err, tt.status, tt.typ, tt.reason)
		})
	}
}

func checkErr(t *testing.T, err error, status int, typ, reason string) {
	t.Helper()
	e, ok := mlerr.From(err)
	if !ok {
		t.Fatalf("got %v, want an *mlerr.Error", err)
	}
	if e.Status != status || e.Type != typ || e.Reason != reason {
		t.Errorf("got %d %s %q,\nwant %d %s %q", e.Status, e.Type, e.Reason, status, typ, reason)
	}
}

func TestValidate(t *testing.T) {
	const prefix = "IllegalArgumentException in the batch ingestion input: "
	for _, tt := range []struct {
		name, body string
		reason     string // "" for valid
	}{
		{"reference example", s3Body, ""},
		{"openAI, upper case type", `{"index_name":"i","field_map":{"a":"$.a"},"credential":{"openAI_key":"k"},"data_source":{"type":"openAI","source":["file-1"]}}`, ""},
		{"openAI without sources", `{"index_name":"i","credential":{},"data_source":{"type":"openai","source":[]}}`, ""},
		{"S3 type in capitals", `{"index_name":"i","field_map":{"a":"$.a"},"data_source":{"type":"S3","source":["s3://b/k"]}}`, ""},
		{"connector instead of credential", `{"index_name":"i","field_map":{"a":"$.a"},"credential":null,"connector_id":"c","data_source":{"type":"s3","source":["s3://b/k"]}}`, ""},

		{"empty data source", `{"index_name":"i","data_source":{}}`, "The batch ingest input data source cannot be null"},
		{"null credential, no connector", `{"index_name":"i","credential":null,"data_source":{"type":"s3","source":["s3://b/k"]}}`,
			"The batch ingest credential or connector_id cannot be null"},
		{"no type", `{"index_name":"i","data_source":{"source":["s3://b/k"]}}`, "The batch ingest input data source is missing data type or source"},
		{"null source", `{"index_name":"i","data_source":{"type":"s3","source":null}}`, "The batch ingest input data source is missing data type or source"},
		{"empty s3 list", `{"index_name":"i","data_source":{"type":"s3","source":[]}}`, "The batch ingest input s3Uris is empty"},
		{"invalid s3 URIs", `{"index_name":"i","data_source":{"type":"s3","source":["s3://offlinebatch/output/sagemaker_djl_batch_input.json.out","invalid s3","https://x/y"]}}`,
			"The following batch ingest input S3 URIs are invalid: [invalid s3, https://x/y]"},
		{"bucket with underscore", `{"index_name":"i","data_source":{"type":"s3","source":["s3://my_bucket/k"]}}`,
			"The following batch ingest input S3 URIs are invalid: [s3://my_bucket/k]"},
		{"URI with a line break", `{"index_name":"i","data_source":{"type":"s3","source":["s3://b/k\nx"]}}`,
			"The following batch ingest input S3 URIs are invalid: [s3://b/k\nx]"},
		{"unknown type", `{"index_name":"i","data_source":{"type":"GCS","source":["x"]}}`, "Can't find class for type gcs"},
		{"type not a string", `{"index_name":"i","data_source":{"type":1,"source":["x"]}}`, "The batch ingest input data source type must be a string"},
		{"source a string", `{"index_name":"i","data_source":{"type":"s3","source":"s3://b/k"}}`, "The batch ingest input data source source must be a list of strings"},
		{"bad JSONPath", `{"index_name":"i","field_map":{"a":"$.a[?"},"data_source":{"type":"s3","source":["s3://b/k"]}}`, "*"},
		{"nothing mapped", `{"index_name":"i","field_map":{"a":"source[1].$.a"},"data_source":{"type":"s3","source":["s3://b/k"]}}`,
			"the bulk ingestion is empty: please check your field mapping to match your sources"},
		{"several sources, one without _id", `{"index_name":"i","field_map":{"_id":"source[0].$.id","a":"source[1].$.a"},"data_source":{"type":"s3","source":["s3://b/k","s3://b/l"]}}`,
			"The id filed must be provided to match documents for multiple sources"},
		{"several sources, one mapping nothing", `{"index_name":"i","field_map":{"_id":"source[0].$.id"},"data_source":{"type":"openAI","source":["f1","f2"]}}`,
			"the bulk ingestion is empty: please check your field mapping to match your sources"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in, err := ParseInput([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			err = in.Validate()
			switch tt.reason {
			case "":
				if err != nil {
					t.Fatalf("got %v, want valid", err)
				}
			case "*":
				e, ok := mlerr.From(err)
				if !ok || e.Status != http.StatusBadRequest {
					t.Fatalf("got %v, want a 400", err)
				}
			default:
				checkErr(t, err, http.StatusBadRequest, "status_exception", prefix+tt.reason)
			}
		})
	}
}

func TestNewDataSource(t *testing.T) {
	in := &Input{IndexName: "i", FieldMap: map[string][]string{"_id": {"$.custom_id"}}, Credential: map[string]string{},
		DataSource: NewDataSource(TypeOpenAI, []string{"file-out"})}
	if err := in.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestParseS3URI(t *testing.T) {
	for _, tt := range []struct {
		uri, bucket, key string
	}{
		{"s3://offlinebatch/output/sagemaker_djl_batch_input.json.out", "offlinebatch", "output/sagemaker_djl_batch_input.json.out"},
		{"s3://b", "b", ""},
		{"s3://b/", "b", ""},
		{"s3://b.c-d/a/b/c", "b.c-d", "a/b/c"},
	} {
		b, k, err := ParseS3URI(tt.uri)
		if err != nil || b != tt.bucket || k != tt.key {
			t.Errorf("%s: got %q %q %v, want %q %q", tt.uri, b, k, err, tt.bucket, tt.key)
		}
	}
	if _, _, err := ParseS3URI("s3:/b/k"); err == nil {
		t.Error("s3:/b/k: got no error")
	}
}
