package settings

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
)

// Namespace is the name every ML Commons setting starts with; Prefix is
// Namespace and the dot after it.
const (
	Namespace = "plugins.ml_commons"
	Prefix    = Namespace + "."
)

// The scopes of a cluster settings update, as the request body names them.
const (
	Persistent = "persistent"
	Transient  = "transient"
)

// NoOp is the update sent to the cluster when a body holds nothing but ML
// Commons settings: the cluster still decides whether the caller may update
// cluster settings at all. An empty update would not do: OpenSearch refuses
// it ("no settings to update") before it checks who asks. A reset by
// wildcard is valid for any name and resets nothing here, because no setting
// has this name.
var NoOp = []byte(`{"persistent":{"mlsidecar.no_op.*":null}}`)

// Entry is one setting of an update: a full, flat key and its value as sent
// (JSON null resets it).
type Entry struct {
	Scope string
	Key   string
	Value json.RawMessage
}

// Split is a PUT _cluster/settings body taken apart: the ML Commons
// settings, which the sidecar keeps, and the rest, which goes to the
// cluster. Keys are flattened as OpenSearch flattens them: flat
// ("plugins.ml_commons.x"), nested ({"plugins":{"ml_commons":{"x":…}}}) and
// mixed forms are the same key.
type Split struct {
	// Forward is the body for the cluster: the body itself when it holds no
	// ML Commons setting, NoOp when it holds nothing else.
	Forward []byte
	// ML are the ML Commons settings, in the order given.
	ML []Entry
	// Wildcards are resets by wildcard that go to the cluster and match ML
	// Commons settings too ("plugins.*": null); they apply to both.
	Wildcards []Entry
}

// HasML reports whether the body touches any ML Commons setting.
func (s *Split) HasML() bool { return len(s.ML) > 0 || len(s.Wildcards) > 0 }

// ErrNotSettings is returned by SplitBody for a body whose shape it cannot
// take apart (not a JSON object, or a scope that is not an object): such a
// body goes to the cluster as it is, which answers it.
var ErrNotSettings = errors.New("not a settings update body")

// SplitBody takes a PUT _cluster/settings body apart. Top-level fields other
// than persistent and transient are forwarded untouched.
func SplitBody(body []byte) (*Split, error) {
	if tooDeep(body) {
		return nil, ErrNotSettings
	}
	top, err := members(body)
	if err != nil {
		return nil, ErrNotSettings
	}
	sp := &Split{}
	leaves := 0
	for i, m := range top {
		if m.key != Persistent && m.key != Transient || isNull(m.value) {
			continue
		}
		w := walker{scope: m.key, split: sp}
		rest, err := w.object(m.value, "")
		if err != nil {
			return nil, ErrNotSettings
		}
		top[i].value = encodeMembers(rest)
		leaves += w.leaves
	}
	switch {
	case len(sp.ML) == 0:
		sp.Forward = body
	case leaves == 0:
		sp.Forward = NoOp
	default:
		sp.Forward = encodeMembers(top)
	}
	return sp, nil
}

// walker takes one scope's settings object apart.
type walker struct {
	scope  string
	split  *Split
	leaves int // settings left for the cluster
}

// object walks a settings object whose keys start with prefix and returns
// what is left for the cluster.
func (w *walker) object(raw json.RawMessage, prefix string) ([]member, error) {
	ms, err := members(raw)
	if err != nil {
		return nil, err
	}
	var rest []member
	for _, m := range ms {
		key := prefix + m.key
		switch obj := isObject(m.value); {
		case strings.HasPrefix(key, Prefix) || key == Namespace && obj:
			if err := w.keep(key, m.value); err != nil {
				return nil, err
			}
		case obj && strings.HasPrefix(Prefix, key+"."):
			// An object on the way to plugins.ml_commons: what else it
			// holds goes on.
			sub, err := w.object(m.value, key+".")
			if err != nil {
				return nil, err
			}
			if len(sub) > 0 {
				rest = append(rest, member{key: m.key, value: encodeMembers(sub)})
			}
		default:
			w.forward(key, m.value)
			rest = append(rest, m)
		}
	}
	return rest, nil
}

// keep records every setting under key as an ML Commons one.
func (w *walker) keep(key string, raw json.RawMessage) error {
	if !isObject(raw) {
		w.split.ML = append(w.split.ML, Entry{Scope: w.scope, Key: key, Value: raw})
		return nil
	}
	ms, err := members(raw)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := w.keep(key+"."+m.key, m.value); err != nil {
			return err
		}
	}
	return nil
}

// forward counts the settings under key that go to the cluster, and notes
// a wildcard reset there that resets ML Commons settings as well.
func (w *walker) forward(key string, raw json.RawMessage) {
	if !isObject(raw) {
		w.leaves++
		if isNull(raw) && strings.HasSuffix(key, "*") && matchesAny(key) {
			w.split.Wildcards = append(w.split.Wildcards, Entry{Scope: w.scope, Key: key, Value: raw})
		}
		return
	}
	ms, _ := members(raw) // it parsed once already, as part of its parent
	for _, m := range ms {
		w.forward(key+"."+m.key, m.value)
	}
}

// matchesAny reports whether a wildcard pattern matches an ML Commons
// setting.
func matchesAny(pattern string) bool {
	for key := range byKey {
		if simpleMatch(pattern, key) {
			return true
		}
	}
	return false
}

// simpleMatch is OpenSearch's Regex.simpleMatch: '*' matches any run of
// characters, everything else itself. It backtracks only to the last star,
// so any pattern takes time linear in len(pattern)*len(s).
func simpleMatch(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case p < len(pattern) && pattern[p] == s[i]:
			p++
			i++
		case star >= 0:
			p, mark = star+1, mark+1
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// maxDepth bounds the nesting of a body taken apart, which reads each level
// once more; settings bodies nest a few levels.
const maxDepth = 32

// tooDeep reports whether body nests objects and lists deeper than
// maxDepth, reading it once.
func tooDeep(body []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return false // not JSON: members says so
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if depth++; depth > maxDepth {
				return true
			}
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
}

// member is one field of a JSON object, its value as it came.
type member struct {
	key   string
	value json.RawMessage
}

// members decodes a JSON object into its fields, in order, duplicates
// kept.
func members(raw []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, ErrNotSettings
	}
	var out []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		out = append(out, member{key: tok.(string), value: v})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, ErrNotSettings
	}
	return out, nil
}

// encodeMembers is the JSON object of ms.
func encodeMembers(ms []member) json.RawMessage {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range ms {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(encodeTexts(m.key))
		b.WriteByte(':')
		b.Write(m.value)
	}
	b.WriteByte('}')
	return b.Bytes()
}

func isObject(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{'
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }
