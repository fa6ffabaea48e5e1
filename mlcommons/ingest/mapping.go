package ingest

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// idField is the field_map key that names the document id.
const idField = "_id"

// Doc is one bulk item made from one line of one source.
type Doc struct {
	Source int   // index of the source in data_source.source
	Line   int64 // 1-based line number in that source
	Index  string
	ID     string
	// Update is an update with the fields as both doc and upsert, so
	// several sources can fill one document; otherwise a plain index
	// request.
	Update bool
	// Body is the bulk item's source line: the fields, or
	// {"doc":fields,"upsert":fields} for an update.
	Body []byte
	// Record, when set, is kept with the document's failure, should the
	// cluster reject it: the start of the line it came from.
	Record []byte
}

// Failure is a line that could not become a document. It is a record of
// the run, never a reason to stop it.
type Failure struct {
	Source int
	Line   int64
	Reason string
}

func (f *Failure) Error() string {
	return fmt.Sprintf("source %d line %d: %s", f.Source, f.Line, f.Reason)
}

// Mapper turns lines into documents with one Input's field_map and
// ingest_fields. It is safe for concurrent use.
type Mapper struct {
	index  string
	taskID string
	plans  []plan // one per source
}

// plan is what one source's lines map to (AbstractIngestion.filterFieldMapping).
type plan struct {
	fields []field
	update bool
}

type field struct {
	name  string
	paths []*path // read in order; the last one wins
}

// NewMapper compiles in's mapping for each of its sources. taskID seeds
// the ids of documents whose source maps no _id. Its errors are the 400s
// Validate answers.
func NewMapper(in *Input, taskID string) (*Mapper, error) {
	plans, err := compilePlans(in)
	if err != nil {
		return nil, err
	}
	return &Mapper{index: in.IndexName, taskID: taskID, plans: plans}, nil
}

// Sources is the number of sources the Mapper maps.
func (m *Mapper) Sources() int { return len(m.plans) }

// compilePlans filters field_map and ingest_fields per source with ML
// Commons' source-prefix rules and compiles their paths:
//   - one source: entries containing "source[0]" or not starting with
//     "source" (filterFieldMappingSoleSource);
//   - several: for source i, entries containing "source[i]"
//     (filterFieldMapping).
//
// A list value keeps its matching elements. ingest_fields come after
// field_map and replace an entry of the same name, as Map.put does there.
func compilePlans(in *Input) ([]plan, error) {
	n := len(in.DataSource.Source)
	plans := make([]plan, n)
	for i := range plans {
		keep := func(p string) bool { return strings.Contains(p, "source["+strconv.Itoa(i)+"]") }
		if n == 1 {
			keep = func(p string) bool { return strings.Contains(p, "source[0]") || !strings.HasPrefix(p, "source") }
		}
		byName := map[string][]*path{}
		for _, name := range sortedKeys(in.FieldMap) {
			var paths []*path
			for _, raw := range in.FieldMap[name] {
				if !keep(raw) {
					continue
				}
				p, err := compilePath(jsonPathOf(raw))
				if err != nil {
					return nil, invalid(fmt.Sprintf("Invalid JSONPath [%s] in field_map [%s]: %v", raw, name, err))
				}
				paths = append(paths, p)
			}
			if len(paths) > 0 {
				byName[name] = paths
			}
		}
		for _, raw := range in.IngestFields {
			if !keep(raw) {
				continue
			}
			jp := jsonPathOf(raw)
			name, ok := fieldNameOf(jp)
			if !ok {
				return nil, invalid(fmt.Sprintf("Invalid JSONPath [%s] in ingest_fields: it names no field", raw))
			}
			p, err := compilePath(jp)
			if err != nil {
				return nil, invalid(fmt.Sprintf("Invalid JSONPath [%s] in ingest_fields: %v", raw, err))
			}
			byName[name] = []*path{p}
		}
		// ML Commons finds both only once lines arrive, failing the task;
		// they hold for every line, so they are known now.
		if len(byName) == 0 {
			return nil, invalid(msgEmptyBulk)
		}
		_, hasID := byName[idField]
		if n > 1 && !hasID {
			return nil, invalid(msgNoIDForSources)
		}
		pl := plan{update: hasID}
		for _, name := range sortedKeys(byName) {
			pl.fields = append(pl.fields, field{name: name, paths: byName[name]})
		}
		plans[i] = pl
	}
	return plans, nil
}

// MapLine maps line number line (1-based) of source. Both results are nil
// for a blank line, which is no record at all. It never panics, whatever
// data holds.
//
// As in AbstractIngestion.batchIngest: the mapped _id (removed from the
// fields) makes an update with doc and upsert; with one source and no
// mapped _id it is a plain index request, whose id, where ML Commons lets
// OpenSearch pick one, is DerivedID(task, source, line) so that a replayed
// line overwrites its own document.
func (m *Mapper) MapLine(source int, line int64, data []byte) (*Doc, *Failure) {
	fail := func(format string, a ...any) (*Doc, *Failure) {
		return nil, &Failure{Source: source, Line: line, Reason: fmt.Sprintf(format, a...)}
	}
	if source < 0 || source >= len(m.plans) {
		return fail("no source %d: the ingestion has %d", source, len(m.plans))
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, nil
	}
	if deeperThan(data, maxLineDepth) {
		// Provider output is a few levels deep; a descendant path over a
		// deeply nested line selects quadratically much.
		return fail("the line nests deeper than %d levels", maxLineDepth)
	}
	var v any
	if err := decodeStrict(data, &v); err != nil {
		return fail("the line is not valid JSON: %v", err)
	}
	pl := m.plans[source]
	fields := make(map[string]any, len(pl.fields))
	var idPath *path
	for _, f := range pl.fields {
		for _, p := range f.paths {
			got, ok := p.read(v)
			if !ok {
				return fail("No results for path: %s", p.shown)
			}
			fields[f.name] = got
			if f.name == idField {
				idPath = p
			}
		}
	}
	d := &Doc{Source: source, Line: line, Index: m.index, Update: pl.update}
	if pl.update {
		id, reason := idText(fields[idField])
		if reason != "" {
			return fail("the _id at %s %s", idPath.shown, reason)
		}
		delete(fields, idField)
		d.ID = id
	} else {
		d.ID = DerivedID(m.taskID, source, line)
	}
	body, err := encodeBody(fields, pl.update)
	if err != nil {
		return fail("the document does not encode: %v", err)
	}
	if len(body) > maxDocBytes {
		return fail("the document is %d bytes, more than the limit of %d", len(body), maxDocBytes)
	}
	d.Body = body
	return d, nil
}

// Bounds on one line's document.
const (
	maxLineDepth = 64
	maxDocBytes  = 32 << 20
)

// deeperThan reports whether the JSON text b nests objects and arrays
// more than limit levels deep, brackets inside strings aside.
func deeperThan(b []byte, limit int) bool {
	depth := 0
	inString, escaped := false, false
	for _, c := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			if depth > limit {
				return true
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return false
}

// idText is String.valueOf of a scalar id. Anything else gets the reason it
// is no id (ML Commons would use "null", or "{a=1}", as the id).
func idText(v any) (id, reason string) {
	switch t := v.(type) {
	case string:
		if t == "" {
			return "", "is an empty string"
		}
		return t, ""
	case json.Number:
		return t.String(), ""
	case bool:
		return strconv.FormatBool(t), ""
	case nil:
		return "", "is null; it must be a string, a number or a boolean"
	case map[string]any:
		return "", "is an object; it must be a string, a number or a boolean"
	case []any:
		return "", "is a list; it must be a string, a number or a boolean"
	}
	return "", fmt.Sprintf("is a %T; it must be a string, a number or a boolean", v)
}

func encodeBody(fields map[string]any, update bool) ([]byte, error) {
	var v any = fields
	if update {
		v = struct {
			Doc    map[string]any `json:"doc"`
			Upsert map[string]any `json:"upsert"`
		}{fields, fields}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // OpenSearch stores <, > and & as they are
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// DerivedID is the id of the document made from a line whose source maps
// no _id: 20 URL-safe characters, the shape of OpenSearch's auto ids, fixed
// by the task, the source and the line, so a resumed run writes the same
// document again instead of a second one.
func DerivedID(taskID string, source int, line int64) string {
	h := sha256.New()
	fmt.Fprintf(h, "mlsidecar-ingest\x00%s\x00%d\x00%d", taskID, source, line)
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:15])
}
