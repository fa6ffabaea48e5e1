package ingest

import (
	"encoding/json"
	"testing"

	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

// FuzzParseInput: any body parses or fails with an *mlerr.Error, and so
// does Validate; nothing panics.
func FuzzParseInput(f *testing.F) {
	for _, s := range []string{
		s3Body,
		`{"index_name":"i","field_map":{"_id":["source[0].$.custom_id","source[1].$.custom_id"],"q":"source[1].$.body.input[0]"},"credential":{"openAI_key":"k"},"data_source":{"type":"openAI","source":["a","b"]}}`,
		`{"index_name":"i","ingest_fields":["...",null],"data_source":{"type":"s3","source":["s3://b/k"]}}`,
		`{"index_name":null,"credential":null,"data_source":{"type":1,"source":"x"}}`,
		`{"index_name":"i","field_map":{"a":"$[?@.x<1]"},"data_source":{"type":"s3","source":["s3://b/k\n"]}}`,
		``, `[]`, `{`, `{"a":1}{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := ParseInput(body)
		if err != nil {
			if _, ok := mlerr.From(err); !ok {
				t.Fatalf("ParseInput: %T %v, want an *mlerr.Error", err, err)
			}
			return
		}
		if in.IndexName == "" {
			t.Fatal("parsed without an index name")
		}
		if err := in.Validate(); err != nil {
			if _, ok := mlerr.From(err); !ok {
				t.Fatalf("Validate: %T %v, want an *mlerr.Error", err, err)
			}
			return
		}
		if _, err := NewMapper(in, "t"); err != nil {
			t.Fatalf("valid input, NewMapper: %v", err)
		}
	})
}

// FuzzMapLine: any line maps to a document with an id and a JSON body, or
// to a failure with a reason; nothing panics.
func FuzzMapLine(f *testing.F) {
	mappers := []string{
		`{"index_name":"i","field_map":{"chapter":"$.content[0]","emb":"$.SageMakerOutput[0]","_id":"$.id"},"ingest_fields":["$.custom_field"],"credential":{},"data_source":{"type":"s3","source":["s3://b/k"]}}`,
		`{"index_name":"i","field_map":{"all":"$..*","f":"$.a[?@.b > 1]","s":"$.a[1:3]"},"credential":{},"data_source":{"type":"s3","source":["s3://b/k"]}}`,
		`{"index_name":"i","field_map":{"_id":["source[0].$.custom_id","source[1].$.recordId"],"v":"source[0].$.response.body.data[0].embedding","w":"source[1].$.modelOutput.embedding"},"credential":{},"data_source":{"type":"openAI","source":["a","b"]}}`,
	}
	var ms []*Mapper
	for _, body := range mappers {
		in, err := ParseInput([]byte(body))
		if err != nil {
			f.Fatal(err)
		}
		m, err := NewMapper(in, "task")
		if err != nil {
			f.Fatal(err)
		}
		ms = append(ms, m)
	}
	for _, s := range []string{sageMakerLine, openAIOutLine, openAIInLine, bedrockLine, `{"a":[{"b":2},{"b":0}]}`, `[]`, `null`, ``, "\xff", `{"id":{"x":1}}`, `{"custom_id":1e999}`} {
		f.Add([]byte(s), uint8(0))
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, line []byte, which uint8) {
		m := ms[int(which)%len(ms)]
		source := int(which/8) % (m.Sources() + 1) // sometimes a source that is not there
		d, fail := m.MapLine(source, 1, line)
		switch {
		case d != nil && fail != nil:
			t.Fatal("both a document and a failure")
		case fail != nil:
			if fail.Reason == "" || fail.Source != source || fail.Line != 1 {
				t.Fatalf("failure %+v", fail)
			}
		case d != nil:
			if d.ID == "" || !json.Valid(d.Body) {
				t.Fatalf("document %+v", d)
			}
		}
	})
}
