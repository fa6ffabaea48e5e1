package template

import (
	"errors"
	"regexp"
	"slices"
	"strings"

	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

const (
	parametersPrefix = "${parameters."
	credentialPrefix = "${credential."

	// maxDepth bounds how many parameters may be expanded inside one another.
	// Commons Text has no limit; a chain this long without a cycle does not
	// occur in real connectors, and the bound keeps a hostile template from
	// exhausting the stack.
	maxDepth = 100

	// maxOutput and maxResolutions bound one substitution. Without them a few
	// request parameters that each reference the next one twice make the
	// expansion grow exponentially, in size or, for empty values, in time;
	// Java would run out of memory or spin. Real templates stay far below.
	maxOutput      = 16 << 20
	maxResolutions = 1 << 18
)

var (
	// ErrCycle is wrapped by the error a substitution returns when a
	// parameter's value refers back to itself, directly or through others
	// (Commons Text's IllegalStateException "Infinite loop in property
	// interpolation of ..."), or when expansion nests deeper than maxDepth.
	ErrCycle = errors.New("infinite loop in parameter interpolation")

	// ErrTooLarge is wrapped by the error a substitution returns when it
	// would produce more than maxOutput bytes or resolve more than
	// maxResolutions placeholders.
	ErrTooLarge = errors.New("parameter expansion too large")
)

// Substitute fills ${parameters.x} in tmpl from params with Commons Text
// StringSubstitutor semantics, which is how ML Commons fills urls, request
// bodies and (3.8+) headers:
//
//   - a missing key is left in place, so later checks can name it;
//   - ${parameters.x:-fallback} uses fallback when x is missing;
//   - $${parameters.x} is the literal text ${parameters.x} (the "$" escape);
//   - values are expanded recursively; a parameter that refers back to itself
//     gives an error wrapping ErrCycle (500 illegal_state_exception), as does
//     nesting deeper than maxDepth, and runaway growth gives ErrTooLarge;
//   - the variable ends at the first "}", so variables do not nest and a
//     default cannot contain a variable.
//
// It also applies ML Commons' .toString() rule (StringUtils.parseParameters):
// when some parameter value contains ${parameters.foo.toString()}, the key
// "foo.toString()" is available, holding foo JSON-string-escaped without the
// quotes. That escaping is Gson's (processTextDoc), not EscapeJSON: "/" and
// non-ASCII stay, < > & = ' become \u003c and so on. Java adds those keys to
// the shared parameter map while building the body, so they also reach the
// url and headers. A .toString() reference written directly in tmpl is not
// resolved, as upstream. The quoted "${parameters.x:-null}" rule belongs to
// request bodies only; see Payload.
//
// Every error is an *mlerr.Error.
func Substitute(tmpl string, params map[string]string) (string, error) {
	return substitute("template", parametersPrefix, tmpl, withToString(params))
}

// SubstituteCredentials fills ${credential.x} from the decrypted credentials.
// ML Commons resolves credentials only in headers, once per action when it
// decrypts them, so callers use this for header values and nothing else; the
// same StringSubstitutor rules apply (missing keys left in place, defaults,
// "$" escape, recursion with cycle detection).
func SubstituteCredentials(tmpl string, cred map[string]string) (string, error) {
	return substitute("template", credentialPrefix, tmpl, cred)
}

// Header fills one header value of an action: ${parameters.x} from params
// first, then ${credential.x} from cred. ML Commons fills credentials first,
// so a parameter error there quotes the header with the key in it; in this
// order no substituted credential is ever scanned again, and an error names
// the header, never its text.
func Header(name, tmpl string, params, cred map[string]string) (string, error) {
	what := "header " + name
	v, err := substitute(what, parametersPrefix, tmpl, withToString(params))
	if err != nil {
		return "", err
	}
	return substitute(what, credentialPrefix, v, cred)
}

// toStringRef finds ${parameters.NAME.toString()} in parameter values. Unlike
// ML Commons' lazy ".+?" pattern, NAME cannot contain "}": upstream's pattern
// starts at the first ${parameters. in a value and so swallows an earlier,
// ordinary placeholder ("${parameters.a} ${parameters.b.toString()}" yields
// the useless name "a} ${parameters.b"), leaving b.toString() unfilled. A key
// containing "}" can never be referenced anyway, so only that defect differs.
var toStringRef = regexp.MustCompile(`\$\{parameters\.([^}]+)\.toString\(\)\}`)

func withToString(params map[string]string) map[string]string {
	var added map[string]string
	for _, v := range params {
		for _, m := range toStringRef.FindAllStringSubmatch(v, -1) {
			if value, ok := params[m[1]]; ok {
				if added == nil {
					added = make(map[string]string)
				}
				added[m[1]+".toString()"] = GsonEscape(value)
			}
		}
	}
	if added == nil {
		return params
	}
	out := make(map[string]string, len(params)+len(added))
	for k, v := range params {
		out[k] = v
	}
	for k, v := range added {
		out[k] = v
	}
	return out
}

// substitutor is one run of Commons Text's StringSubstitutor.substitute over
// a growing output buffer. Working on the buffer, not on copies, keeps two
// upstream details exact: the "$" that escapes a variable is the character
// just before it in the output at the current nesting level, even if that
// character came from a substituted value; and an escape is honoured only
// when the variable is complete.
type substitutor struct {
	// what names the template in errors ("url", "header Authorization"):
	// errors never quote the text, which may hold substituted secrets.
	what   string
	prefix string
	values map[string]string
	out    []byte
	// prior is Commons Text's priorVariables without its first entry (the
	// source text, which upstream quotes in its cycle error): the names being
	// expanded, outermost first.
	prior []string

	bytesLeft, resolutionsLeft int
}

func substitute(what, prefix, src string, values map[string]string) (string, error) {
	s := &substitutor{what: what, prefix: prefix, values: values, bytesLeft: maxOutput, resolutionsLeft: maxResolutions}
	if err := s.expand(src); err != nil {
		return "", err
	}
	return string(s.out), nil
}

func (s *substitutor) expand(src string) error {
	start := len(s.out) // the escape check never looks before this level's output
	for i := 0; i < len(src); {
		// Every prefix starts with '$'; copy up to the next one in bulk.
		j := strings.IndexByte(src[i:], '$')
		if j < 0 {
			return s.emit(src[i:])
		}
		if err := s.emit(src[i : i+j]); err != nil {
			return err
		}
		i += j
		if !strings.HasPrefix(src[i:], s.prefix) {
			if err := s.emit("$"); err != nil {
				return err
			}
			i++
			continue
		}
		nameStart := i + len(s.prefix)
		k := strings.IndexByte(src[nameStart:], '}')
		if k < 0 {
			// An unterminated variable ends the scan; the rest stays as it is.
			return s.emit(src[i:])
		}
		end := nameStart + k + 1
		if len(s.out) > start && s.out[len(s.out)-1] == '$' {
			// "$${...}": drop the escape, keep "${" literally and scan on from
			// inside the variable, as Commons Text does.
			s.out = append(s.out[:len(s.out)-1], '$', '{')
			i += 2
			continue
		}
		name, fallback, hasFallback := s.splitDefault(src[nameStart : end-1])
		if slices.Contains(s.prior, name) {
			return cycleError("Infinite loop in property interpolation of %s: %s",
				s.what, strings.Join(s.prior, "->"))
		}
		value, ok := s.values[name]
		if !ok && hasFallback {
			value, ok = fallback, true
		}
		if !ok {
			if err := s.emit(src[i:end]); err != nil {
				return err
			}
			i = end
			continue
		}
		if len(s.prior) >= maxDepth {
			return cycleError("Infinite loop in property interpolation of %s: more than %d nested parameters",
				s.what, maxDepth)
		}
		if s.resolutionsLeft--; s.resolutionsLeft < 0 {
			return tooLarge()
		}
		s.prior = append(s.prior, name)
		if err := s.expand(value); err != nil {
			return err
		}
		s.prior = s.prior[:len(s.prior)-1]
		i = end
	}
	return nil
}

// splitDefault splits "x:-fallback" at the first ":-". As in Commons Text
// without nested substitution, a prefix inside the expression stops the search.
func (s *substitutor) splitDefault(expr string) (name, fallback string, ok bool) {
	for k := 0; k < len(expr); k++ {
		if strings.HasPrefix(expr[k:], s.prefix) {
			break
		}
		if strings.HasPrefix(expr[k:], ":-") {
			return expr[:k], expr[k+2:], true
		}
	}
	return expr, "", false
}

func (s *substitutor) emit(text string) error {
	if s.bytesLeft -= len(text); s.bytesLeft < 0 {
		return tooLarge()
	}
	s.out = append(s.out, text...)
	return nil
}

func cycleError(format string, a ...any) *mlerr.Error {
	return mlerr.IllegalState(format, a...).Wrapping(ErrCycle)
}

func tooLarge() *mlerr.Error {
	return mlerr.IllegalArgument("Parameter substitution would produce more than %d MiB or fill more than %d placeholders",
		maxOutput>>20, maxResolutions).Wrapping(ErrTooLarge)
}
