package jsonout

import (
	"strings"
	"unicode/utf8"
)

// Filter is a compiled filter_path. The zero of *Filter (nil) filters
// nothing.
type Filter struct {
	include []*path // applied first; nil when there are no inclusions
	exclude []*path // applied to what include kept; nil when none
}

// path is one field name of an expression and the rest of the expression
// after it, as FilterPath is. The node past the last name has next == nil:
// reaching it means the whole expression matched.
type path struct {
	name   string
	star   bool // name is "*": any one field
	double bool // name is "**": any number of levels
	next   *path
}

// ParseFilter compiles a filter_path value. It returns nil when the value
// holds no expression (empty, or only commas and blanks).
func ParseFilter(expr string) (*Filter, error) {
	var incl, excl []string
	seen := make(map[string]bool)
	for _, tok := range strings.Split(expr, ",") {
		tok = javaTrim(tok)
		if tok == "" || seen[tok] {
			continue
		}
		seen[tok] = true
		if tok[0] == '-' {
			excl = append(excl, tok[1:])
		} else {
			incl = append(incl, tok)
		}
	}
	f := &Filter{include: compile(incl), exclude: compile(excl)}
	if len(excl) > 0 && f.exclude == nil {
		// FilterPathBasedFilter's constructor refuses an empty array.
		return nil, &ParamError{Param: "filter_path", Reason: "filters cannot be null or empty"}
	}
	if f.include == nil && f.exclude == nil {
		return nil, nil
	}
	return f, nil
}

// compile is FilterPath.compile: each expression trimmed, empty ones
// skipped.
func compile(exprs []string) []*path {
	var paths []*path
	for _, e := range exprs {
		if e = javaTrim(e); e != "" {
			paths = append(paths, parsePath(e))
		}
	}
	return paths
}

// parsePath is FilterPath.parse, iteratively: split at dots that are not
// preceded by a backslash.
func parsePath(expr string) *path {
	var names []string
	start := 0
	for i := 0; i < len(expr); {
		c := expr[i]
		if c == '.' {
			names = append(names, unescape(expr[start:i]))
			i++
			start = i
			continue
		}
		i++
		if c == '\\' && i < len(expr) && expr[i] == '.' {
			i++
		}
	}
	names = append(names, unescape(expr[start:]))

	p := &path{} // past the end
	for i := len(names) - 1; i >= 0; i-- {
		p = &path{name: names[i], star: names[i] == "*", double: names[i] == "**", next: p}
	}
	return p
}

// unescape is Java's name.replaceAll("\\\\.", "."): the regular expression
// \\. is a backslash followed by any character but a line terminator, and
// each such pair becomes one dot.
func unescape(name string) string {
	if !strings.Contains(name, `\`) {
		return name
	}
	var b strings.Builder
	for i := 0; i < len(name); {
		if name[i] == '\\' && i+1 < len(name) {
			r, size := utf8.DecodeRuneInString(name[i+1:])
			if !isJavaLineTerminator(r) {
				b.WriteByte('.')
				i += 1 + size
				continue
			}
		}
		b.WriteByte(name[i])
		i++
	}
	return b.String()
}

func isJavaLineTerminator(r rune) bool {
	return r == '\n' || r == '\r' || r == '\u0085' || r == '\u2028' || r == '\u2029'
}

// javaTrim is String.trim: it strips every character up to U+0020.
func javaTrim(s string) string {
	i, j := 0, len(s)
	for i < j && s[i] <= ' ' {
		i++
	}
	for j > i && s[j-1] <= ' ' {
		j--
	}
	return s[i:j]
}

// match is FilterPath.matchProperty: the rest of the expression when name
// matches this field, nil when it does not.
func (p *path) match(name []byte) *path {
	if p.next != nil && (p.star || p.double || globMatch(p.name, name)) {
		return p.next
	}
	return nil
}

// globMatch is Glob.globMatch: '*' matches any run, including none.
// Comparing bytes instead of Java's UTF-16 units gives the same answers for
// valid UTF-8, which synchronises on character boundaries.
func globMatch(pattern string, s []byte) bool {
	si, pi, match, star := 0, 0, 0, -1
	for si < len(s) {
		switch {
		case pi < len(pattern) && s[si] == pattern[pi]:
			si++
			pi++
		case pi < len(pattern) && pattern[pi] == '*':
			star, match = pi, si
			pi++
		case star != -1:
			pi = star + 1
			match++
			si = match
		default:
			return false
		}
	}
	for pi < len(pattern) && pattern[pi] == '*' {
		pi++
	}
	return pi == len(pattern)
}

// verdict is what a filter decides for one field.
type verdict int

const (
	drop    verdict = iota // leave the field out
	keep                   // write the field and all under it
	descend                // look inside, with the paths returned
)

// evaluate is FilterPathBasedFilter.includeProperty for the field name:
// a whole expression matching wins at once; otherwise the field is on the
// way to every expression whose first name matched it.
func evaluate(name []byte, paths []*path, inclusive bool) (verdict, []*path) {
	var next []*path
	for _, p := range paths {
		n := p.match(name)
		if n == nil {
			continue
		}
		if n.next == nil {
			if inclusive {
				return keep, nil
			}
			return drop, nil
		}
		if p.double {
			next = appendUnique(next, p)
		}
		next = appendUnique(next, n)
	}
	if next != nil {
		return descend, next
	}
	if inclusive {
		return drop, nil
	}
	return keep, nil
}

// appendUnique keeps the list a set. FilterPathBasedFilter lets duplicates
// pile up, and with several "**" they grow exponentially with depth; as a
// set the decisions are the same.
func appendUnique(paths []*path, p *path) []*path {
	for _, q := range paths {
		if q == p {
			return paths
		}
	}
	return append(paths, p)
}
