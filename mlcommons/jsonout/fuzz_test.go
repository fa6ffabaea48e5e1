package jsonout

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// node is a decoded JSON value that keeps member order: the independent,
// obviously slower model the fuzz target checks Render against.
type node struct {
	Kind   byte // '{', '[' or 's' for a scalar
	Keys   []string
	Kids   []*node
	Scalar string // a number's text, "s:" and a string's value, true, false, null
}

func decodeTree(t *testing.T, b []byte) *node {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	n, err := readNode(dec)
	if err != nil {
		t.Fatalf("decoding %q: %v", b, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		t.Fatalf("decoding %q: more after the value", b)
	}
	return n
}

func readNode(dec *json.Decoder) (*node, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch v := tok.(type) {
	case json.Delim:
		n := &node{Kind: byte(v)}
		for dec.More() {
			if v == '{' {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				n.Keys = append(n.Keys, k.(string))
			}
			kid, err := readNode(dec)
			if err != nil {
				return nil, err
			}
			n.Kids = append(n.Kids, kid)
		}
		if _, err := dec.Token(); err != nil { // the closing delimiter
			return nil, err
		}
		return n, nil
	case string:
		return &node{Kind: 's', Scalar: "s:" + v}, nil
	case json.Number:
		return &node{Kind: 's', Scalar: v.String()}, nil
	case bool:
		return &node{Kind: 's', Scalar: map[bool]string{true: "true", false: "false"}[v]}, nil
	default:
		return &node{Kind: 's', Scalar: "null"}, nil
	}
}

// refFilter is the filter semantics of the package comment, written over
// the tree: keep reports whether the value survives on the way to a match.
func refFilter(n *node, paths []*path, inclusive bool) (*node, bool) {
	switch n.Kind {
	case '{':
		out := &node{Kind: '{'}
		for i, k := range n.Keys {
			v, next := evaluate([]byte(k), paths, inclusive)
			switch v {
			case keep:
				out.Keys, out.Kids = append(out.Keys, k), append(out.Kids, n.Kids[i])
			case descend:
				if kid, ok := refFilter(n.Kids[i], next, inclusive); ok {
					out.Keys, out.Kids = append(out.Keys, k), append(out.Kids, kid)
				}
			}
		}
		return out, len(out.Kids) > 0
	case '[':
		out := &node{Kind: '['}
		for _, e := range n.Kids {
			if kid, ok := refFilter(e, paths, inclusive); ok {
				out.Kids = append(out.Kids, kid)
			}
		}
		return out, len(out.Kids) > 0
	}
	return n, !inclusive
}

func refRender(n *node, f *Filter) *node {
	for _, step := range []struct {
		paths     []*path
		inclusive bool
	}{{f.include, true}, {f.exclude, false}} {
		if step.paths == nil || n.Kind == 's' {
			continue
		}
		n, _ = refFilter(n, step.paths, step.inclusive) // the root stays, even empty
	}
	return n
}

func FuzzRender(f *testing.F) {
	f.Add([]byte(sample), "e.f*,-e.f2", false)
	f.Add([]byte(sample), "**.l", true)
	f.Add([]byte(sample), "-h.i.j", true)
	f.Add([]byte(`{"a":{},"b":[[],{}],"c":[1,{"d":null}]}`), "-c.d,a,b", false)
	f.Add([]byte(`{"a.b":{"c":1},"a":{"b":[{"c":2}]}}`), `a\.b,a.b.c`, true)
	f.Add([]byte(`{"a\u0062":"\"\\","x":[1e3,-0.5]}`), "ab,-x", false)
	f.Add([]byte(`[{"a":1},2,[{"a":[]}]]`), "a", true)
	f.Add([]byte(` 1 `), "", true)
	f.Add([]byte(`{"a":1`), "a", true)
	f.Add(benchDoc(), "hits.hits._source.model_*", true)
	f.Fuzz(func(t *testing.T, body []byte, filterPath string, pretty bool) {
		flt, err := ParseFilter(filterPath)
		if err != nil {
			var pe *ParamError
			if !errors.As(err, &pe) {
				t.Fatalf("ParseFilter(%q): error %v is not a ParamError", filterPath, err)
			}
			flt = nil
		}
		o := Options{Filter: flt, Pretty: pretty}
		got := o.Render(body)
		if !json.Valid(body) {
			if !bytes.Equal(got, body) {
				t.Fatalf("invalid body changed: %q -> %q", body, got)
			}
			return
		}
		if !json.Valid(got) {
			t.Fatalf("Render(%q, %q, pretty %v) = %q, not valid JSON", body, filterPath, pretty, got)
		}
		// Keys that are not UTF-8 decode to U+FFFD in the model but are
		// matched as bytes by Render; neither is what Java would do.
		if flt != nil && utf8.Valid(body) {
			want := refRender(decodeTree(t, body), flt)
			if diff := cmp.Diff(want, decodeTree(t, got)); diff != "" {
				t.Fatalf("Render(%q, %q) = %q; mismatch with the model (-want +got):\n%s", body, filterPath, got, diff)
			}
		}
		if pretty {
			if !bytes.HasSuffix(got, []byte("\n")) {
				t.Fatalf("pretty answer %q does not end with a line feed", got)
			}
			compact := Options{Filter: flt}.Render(body)
			var a, b bytes.Buffer
			if err := json.Compact(&a, compact); err != nil {
				t.Fatal(err)
			}
			if err := json.Compact(&b, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a.Bytes(), b.Bytes()) {
				t.Fatalf("pretty %q and compact %q differ in more than white space", got, compact)
			}
		}
	})
}
