package ingest

import (
	"strconv"
	"strings"

	"github.com/theory/jsonpath"
	"github.com/theory/jsonpath/spec"
)

// path is one compiled field_map or ingest_fields JSONPath. ML Commons
// reads them with Jayway JsonPath; here they are RFC 9535 paths (the
// common subset: names, indexes, wildcards, slices, filters), read the way
// Jayway reads them: a definite path gives its one value or nothing, any
// other path the list of what it matched.
type path struct {
	p        *jsonpath.Path
	singular bool
	shown    string // how messages name it: Jayway's form for a definite path
}

// jsonPathOf is StringUtils.getJsonPath: the text from the first "$." on,
// which drops a "source[i]." selector; the whole text when there is none.
func jsonPathOf(s string) string {
	if i := strings.Index(s, "$."); i >= 0 {
		return s[i:]
	}
	return s
}

// fieldNameOf is StringUtils.obtainFieldNameFromJsonPath: the last segment
// of the path split on dots, with Java's String.split dropping trailing
// empty segments. ok is false when nothing is left ("..."), where ML
// Commons fails with an ArrayIndexOutOfBoundsException.
func fieldNameOf(jsonPath string) (string, bool) {
	parts := strings.Split(jsonPath, ".")
	for len(parts) > 0 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	if len(parts) == 0 {
		return "", false
	}
	return parts[len(parts)-1], true
}

// compilePath parses a JSONPath. Like Jayway, it reads a path that does
// not start with "$" as relative to the root.
func compilePath(s string) (*path, error) {
	text := strings.TrimSpace(s)
	switch {
	case strings.HasPrefix(text, "$"):
	case strings.HasPrefix(text, "["):
		text = "$" + text
	default:
		text = "$." + text
	}
	p, err := jsonpath.Parse(text)
	if err != nil {
		return nil, err
	}
	q := p.Query()
	c := &path{p: p, singular: q.Singular() != nil, shown: p.String()}
	if c.singular {
		c.shown = jaywayForm(q)
	}
	return c, nil
}

// jaywayForm writes a definite path as Jayway's messages do: $['a'][0].
func jaywayForm(q *spec.PathQuery) string {
	var b strings.Builder
	b.WriteString("$")
	for _, seg := range q.Segments() {
		for _, sel := range seg.Selectors() {
			switch s := sel.(type) {
			case spec.Name:
				b.WriteString("['" + string(s) + "']")
			case spec.Index:
				b.WriteString("[" + strconv.Itoa(int(s)) + "]")
			default:
				return q.String()
			}
		}
	}
	return b.String()
}

// read selects from doc. ok is false when a definite path matches nothing
// (Jayway's PathNotFoundException); an indefinite one gives a list, empty
// when nothing matched.
func (c *path) read(doc any) (v any, ok bool) {
	if c.singular {
		nodes := c.p.Select(doc)
		if len(nodes) == 0 {
			return nil, false
		}
		return nodes[0], true
	}
	// Object members come in map order; normalized-path order keeps the
	// list stable. Array elements stay in index order.
	located := c.p.SelectLocated(doc)
	located.Sort()
	out := make([]any, len(located))
	for i, n := range located {
		out[i] = n.Node
	}
	return out, true
}
