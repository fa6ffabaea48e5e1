package jsonout

import (
	"encoding/json"
	"net/url"
	"unicode"
)

// Options are the response parameters of one request.
type Options struct {
	Filter *Filter // nil: no filter_path
	Pretty bool
}

// ParamError is a response parameter OpenSearch refuses with an
// illegal_argument_exception (400); Reason is OpenSearch's own text.
type ParamError struct {
	Param  string
	Reason string
}

func (e *ParamError) Error() string { return e.Reason }

// FromQuery reads filter_path, pretty and human from a request's query.
// On error, the Options returned are the ones OpenSearch renders that error
// with: none after a bad pretty or human (the channel is rebuilt without
// parameters), pretty kept after a bad filter_path.
func FromQuery(q url.Values) (Options, error) {
	pretty, err := boolParam(q, "pretty")
	if err != nil {
		return Options{}, err
	}
	if _, err := boolParam(q, "human"); err != nil {
		return Options{}, err
	}
	o := Options{Pretty: pretty}
	if v, ok := lastValue(q, "filter_path"); ok {
		f, err := ParseFilter(v)
		if err != nil {
			return o, err
		}
		o.Filter = f
	}
	return o, nil
}

// boolParam is RestRequest.paramAsBoolean(name, false).
func boolParam(q url.Values, name string) (bool, error) {
	v, ok := lastValue(q, name)
	switch {
	case !ok:
		return false, nil
	case v == "":
		return true, nil // the parameter's presence turns it on
	case !hasText(v):
		return false, nil
	case v == "true":
		return true, nil
	case v == "false":
		return false, nil
	}
	return false, &ParamError{Param: name, Reason: "Failed to parse value [" + v + "] as only [true] or [false] are allowed."}
}

func lastValue(q url.Values, name string) (string, bool) {
	vs := q[name]
	if len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1], true
}

// hasText reports whether s has a character that is not Java white space
// (Character.isWhitespace), as Booleans.hasText does.
func hasText(s string) bool {
	for _, r := range s {
		if !isJavaWhitespace(r) {
			return true
		}
	}
	return false
}

func isJavaWhitespace(r rune) bool {
	switch r {
	case '\t', '\n', '\v', '\f', '\r', 0x1c, 0x1d, 0x1e, 0x1f:
		return true
	case '\u00a0', '\u2007', '\u202f': // non-breaking spaces are not white space
		return false
	}
	return unicode.In(r, unicode.Zs, unicode.Zl, unicode.Zp)
}

// Render applies the filter and the pretty printer to a successful answer.
// A body that is not valid JSON is returned as it is. Without a filter or
// pretty the body itself is returned.
func (o Options) Render(body []byte) []byte {
	if o.Filter == nil && !o.Pretty {
		return body
	}
	if !json.Valid(body) {
		return body
	}
	out := body
	if f := o.Filter; f != nil {
		if f.include != nil {
			out = filterDoc(out, f.include, true)
		}
		if f.exclude != nil {
			out = filterDoc(out, f.exclude, false)
		}
	}
	if o.Pretty {
		out = prettyPrint(out)
	}
	return out
}

// RenderError shapes an error answer: OpenSearch pretty-prints errors but
// never filters them.
func (o Options) RenderError(body []byte) []byte {
	return Options{Pretty: o.Pretty}.Render(body)
}

// scanner walks a document that json.Valid accepted, so it checks nothing:
// every index it reads is inside the input by the grammar.
type scanner struct {
	in  []byte
	pos int
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (s *scanner) skipSpace() {
	for s.pos < len(s.in) && isSpace(s.in[s.pos]) {
		s.pos++
	}
}

// skipString moves past the string that starts at pos.
func (s *scanner) skipString() {
	s.pos++ // opening quote
	for {
		switch s.in[s.pos] {
		case '\\':
			s.pos += 2
		case '"':
			s.pos++
			return
		default:
			s.pos++
		}
	}
}

// skipValue moves past the value that starts at pos.
func (s *scanner) skipValue() {
	switch s.in[s.pos] {
	case '"':
		s.skipString()
	case '{', '[':
		depth := 0
		for {
			switch s.in[s.pos] {
			case '"':
				s.skipString()
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			s.pos++
			if depth == 0 {
				return
			}
		}
	default: // number, true, false or null
		for s.pos < len(s.in) && !isDelimiter(s.in[s.pos]) {
			s.pos++
		}
	}
}

func isDelimiter(c byte) bool {
	return c == ',' || c == '}' || c == ']' || c == ':' || isSpace(c)
}

// appendCompact appends the value v without the white space between its
// tokens.
func appendCompact(out, v []byte) []byte {
	inString := false
	start := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case !inString && isSpace(c):
			out = append(out, v[start:i]...)
			start = i + 1
		}
	}
	return append(out, v[start:]...)
}

// filterer writes what one filter (inclusive or exclusive) keeps of a
// document. Fields on the way to a match are written tentatively and cut
// off again when nothing under them is kept: that is how Jackson delays
// the path of a match until the match.
type filterer struct {
	scanner
	out       []byte
	inclusive bool
	name      []byte // scratch for keys with escapes
}

func filterDoc(in []byte, paths []*path, inclusive bool) []byte {
	f := &filterer{scanner: scanner{in: in}, inclusive: inclusive, out: make([]byte, 0, len(in))}
	f.skipSpace()
	switch f.in[f.pos] {
	case '{':
		f.object(paths) // the root object is always written
	case '[':
		f.array(paths) // not an OpenSearch answer; filtered like a field's array
	default:
		f.copyValue()
	}
	return f.out
}

func (f *filterer) copyValue() {
	start := f.pos
	f.skipValue()
	f.out = appendCompact(f.out, f.in[start:f.pos])
}

// object writes the object at pos with the members paths keep and returns
// how many it wrote.
func (f *filterer) object(paths []*path) int {
	f.pos++ // {
	f.out = append(f.out, '{')
	n := 0
	for {
		f.skipSpace()
		switch f.in[f.pos] {
		case '}':
			f.pos++
			f.out = append(f.out, '}')
			return n
		case ',':
			f.pos++
			f.skipSpace()
		}
		keyStart := f.pos
		f.skipString()
		key := f.in[keyStart:f.pos]
		f.skipSpace()
		f.pos++ // :
		f.skipSpace()

		v, next := evaluate(f.keyName(key), paths, f.inclusive)
		switch v {
		case drop:
			f.skipValue()
		case keep:
			f.member(n, key)
			f.copyValue()
			n++
		case descend:
			mark := len(f.out)
			f.member(n, key)
			if f.descend(next) {
				n++
			} else {
				f.out = f.out[:mark]
			}
		}
	}
}

func (f *filterer) member(n int, key []byte) {
	if n > 0 {
		f.out = append(f.out, ',')
	}
	f.out = append(f.out, key...)
	f.out = append(f.out, ':')
}

// array writes the array at pos, every element filtered with paths, and
// returns how many elements it wrote.
func (f *filterer) array(paths []*path) int {
	f.pos++ // [
	f.out = append(f.out, '[')
	n := 0
	for {
		f.skipSpace()
		switch f.in[f.pos] {
		case ']':
			f.pos++
			f.out = append(f.out, ']')
			return n
		case ',':
			f.pos++
			f.skipSpace()
		}
		mark := len(f.out)
		if n > 0 {
			f.out = append(f.out, ',')
		}
		if f.descend(paths) {
			n++
		} else {
			f.out = f.out[:mark]
		}
	}
}

// descend writes what paths keep of the value at pos, a value on the way
// to a match, and reports whether it wrote anything. An empty container is
// not written; a scalar is written only by an exclusive filter
// (FilterPathBasedFilter._includeScalar).
func (f *filterer) descend(paths []*path) bool {
	switch f.in[f.pos] {
	case '{':
		return f.object(paths) > 0
	case '[':
		return f.array(paths) > 0
	}
	if f.inclusive {
		f.skipValue()
		return false
	}
	f.copyValue()
	return true
}

// keyName is the decoded name of a quoted key. Keys without escapes, the
// usual case, are used in place.
func (f *filterer) keyName(key []byte) []byte {
	raw := key[1 : len(key)-1]
	for _, c := range raw {
		if c == '\\' {
			var s string
			if err := json.Unmarshal(key, &s); err != nil {
				return raw // cannot happen for a key json.Valid accepted
			}
			f.name = append(f.name[:0], s...)
			return f.name
		}
	}
	return raw
}

// printer re-indents a valid document as Jackson's DefaultPrettyPrinter
// configured by JsonXContentGenerator.usePrettyPrint does.
type printer struct {
	scanner
	out []byte
}

func prettyPrint(in []byte) []byte {
	p := &printer{scanner: scanner{in: in}, out: make([]byte, 0, len(in)+len(in)/2+16)}
	p.skipSpace()
	p.value(0)
	return append(p.out, '\n') // lfAtEnd
}

func (p *printer) newline(level int) {
	p.out = append(p.out, '\n')
	for range level {
		p.out = append(p.out, ' ', ' ')
	}
}

func (p *printer) value(level int) {
	switch c := p.in[p.pos]; c {
	case '{', '[':
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		p.pos++
		p.skipSpace()
		if p.in[p.pos] == end {
			p.pos++
			p.out = append(p.out, c, ' ', end) // "{ }", "[ ]"
			return
		}
		p.out = append(p.out, c)
		for {
			p.skipSpace()
			switch p.in[p.pos] {
			case end:
				p.pos++
				p.newline(level)
				p.out = append(p.out, end)
				return
			case ',':
				p.pos++
				p.skipSpace()
				p.out = append(p.out, ',')
			}
			p.newline(level + 1)
			if c == '{' {
				start := p.pos
				p.skipString()
				p.out = append(p.out, p.in[start:p.pos]...)
				p.skipSpace()
				p.pos++ // :
				p.skipSpace()
				p.out = append(p.out, " : "...)
			}
			p.value(level + 1)
		}
	default:
		start := p.pos
		p.skipValue()
		p.out = append(p.out, p.in[start:p.pos]...)
	}
}
