// Package template fills ML Commons connector templates: the ${parameters.x}
// placeholders of an action's url and request_body, and the ${credential.x}
// placeholders of its headers. It reproduces Apache Commons Text's
// StringSubstitutor and the rules ML Commons layers on top of it (request
// parameter escaping, merge order, the quoted null default, .toString(), the
// payload checks), so a remote service receives the same bytes from the
// sidecar as from a Java node.
package template

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

const illegalArgument = "illegal_argument_exception"

func invalid(reason string, cause error) *mlerr.Error {
	return mlerr.IllegalArgument(reason).Wrapping(cause)
}

// RequestParameters converts the "parameters" object of a _predict or
// _batch_predict body, decoded with UseNumber, into the string map ML Commons
// works with (StringUtils.getParameterMap, then
// ConnectorUtils.escapeRemoteInferenceInputData):
//
//   - non-string values become JSON text: numbers keep the client's exact text
//     (Java would reprint them as doubles, "0.70" as "0.7"), null is "null",
//     arrays and objects are compact JSON (see writeCompactJSON);
//   - a value that is a JSON object or array, including a string holding one,
//     is left raw, so `${parameters.input}` with ["a","b"] inserts the array;
//   - keys named in the comma-separated "no_escape_params" are left raw;
//   - everything else goes through EscapeJSON, so templates must quote string
//     placeholders ("${parameters.model}");
//   - placeholders in a value are not expanded (ML Commons expands them; see
//     COMPATIBILITY.md).
func RequestParameters(raw map[string]any) map[string]string {
	if raw == nil {
		return nil
	}
	text := make(map[string]string, len(raw))
	for k, v := range raw {
		text[k] = jsonText(v)
	}
	noEscape := make(map[string]bool)
	if list := text["no_escape_params"]; list != "" {
		for _, k := range strings.Split(list, ",") {
			noEscape[strings.TrimSpace(k)] = true
		}
	}
	out := make(map[string]string, len(text))
	for k, v := range text {
		if !IsJSON(v) && !noEscape[k] {
			v = EscapeJSON(v)
		}
		// A caller's value is text, never a template: "${" in it is
		// emitted as it is, so parameters cannot expand one another (a few
		// KiB that reference each other would expand to many MiB).
		out[k] = strings.ReplaceAll(v, "${", "$${")
	}
	return out
}

// Merge returns the parameters a remote call is built from, in ML Commons'
// order (RemoteConnectorExecutor.preparePayloadAndInvoke), later maps winning:
// connector parameters, request parameters, the pre-process output, then the
// request parameters again, so a request value always beats both the
// connector and the pre-process function. Upstream runs the pre-process output
// through the same escaping as request parameters; preprocessed must already
// be in that final form. None of the inputs is modified.
func Merge(connector, request, preprocessed map[string]string) map[string]string {
	out := make(map[string]string, len(connector)+len(request)+len(preprocessed))
	for _, m := range []map[string]string{connector, request, preprocessed, request} {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

var (
	// nullDefaultRef is HttpConnector.findStringParametersWithNullDefaultValue.
	nullDefaultRef = regexp.MustCompile(`"\$\{parameters\.(\w+):-null\}"`)
	// placeholderRef is Connector.validatePayload's pattern.
	placeholderRef = regexp.MustCompile(`\$\{parameters\.([^}]+)\}`)
)

// Payload builds a remote request body the way HttpConnector.createPayload
// and Connector.validatePayload do, in their order:
//
//  1. An empty request_body template means the body is params["http_body"]
//     (or empty), unvalidated as JSON.
//  2. Otherwise "${parameters.x:-null}" including its quotes becomes a bare
//     null when x is missing, then Substitute fills the template, and the
//     result must be a JSON object or array, or NDJSON whose non-empty lines
//     each are one; if not: 400 "Invalid payload: <payload>". This check comes
//     first, so an unquoted placeholder left unfilled reports an invalid
//     payload rather than a missing parameter, as upstream.
//  3. Unless params["skip_validating_missing_parameters"] is "true" (any
//     case), any "${parameters" left over gives 400 "Some parameter
//     placeholder not filled in payload: a, b", names in order of appearance
//     and repeated as often as they appear, as upstream.
//
// ${credential.x} in a request body is never filled (credentials are only for
// headers): it stays as text, which is valid inside a JSON string and an
// invalid payload outside one.
func Payload(requestBody string, params map[string]string) (string, error) {
	payload := params["http_body"]
	if requestBody != "" {
		body := requestBody
		for _, m := range nullDefaultRef.FindAllStringSubmatch(requestBody, -1) {
			if _, ok := params[m[1]]; !ok {
				body = strings.ReplaceAll(body, m[0], "null")
			}
		}
		var err error
		if payload, err = substitute("request_body", parametersPrefix, body, withToString(params)); err != nil {
			return "", err
		}
		if !isJSONOrNDJSON(payload) {
			return "", invalid("Invalid payload: "+payload, nil)
		}
	}
	if !strings.EqualFold(params["skip_validating_missing_parameters"], "true") &&
		strings.Contains(payload, "${parameters") {
		var names []string
		for _, m := range placeholderRef.FindAllStringSubmatch(payload, -1) {
			names = append(names, m[1])
		}
		// Upstream fails with a StringIndexOutOfBoundsException (500) when
		// "${parameters" is there but no complete placeholder is; refusing
		// with an empty list is the message it meant to give.
		return "", invalid("Some parameter placeholder not filled in payload: "+strings.Join(names, ", "), nil)
	}
	return payload, nil
}

// uriReason is ML Commons' reason for an endpoint it cannot turn into a URI.
// Upstream does not append the endpoint, and neither do we: after
// substitution it can hold parameter values such as keys.
const uriReason = "Encountered error when trying to create uri from endpoint in ml connector. " +
	"Please update the endpoint in connection configuration: "

// URL fills an action's url template. Unlike the body it is not scanned for
// unfilled placeholders: as in ML Commons, whatever is left must parse as an
// absolute URI with a host by java.net.URI's rules (which refuse the "{" of
// a leftover placeholder), else 400 with uriReason. As upstream, nothing is
// substituted, not even "$" escapes or defaults, when params is empty.
func URL(tmpl string, params map[string]string) (string, error) {
	u := tmpl
	if len(params) > 0 {
		var err error
		if u, err = substitute("url", parametersPrefix, tmpl, withToString(params)); err != nil {
			return "", err
		}
	}
	if err := checkURI(u); err != nil {
		return "", invalid(uriReason, err)
	}
	return u, nil
}

// checkURI approximates java.net.URI.create plus ML Commons' host check:
// characters URI refuses, malformed %-escapes, a missing scheme or host, and
// host names URI would not treat as a server (for example with "_").
func checkURI(s string) error {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return fmt.Errorf("malformed escape pair at index %d", i)
			}
		case r < utf8.RuneSelf && (r <= ' ' || r == 0x7F || strings.ContainsRune("\"<>\\^`{|}", r)):
			return fmt.Errorf("illegal character at index %d", i)
		case r >= utf8.RuneSelf && (r == utf8.RuneError || unicode.IsSpace(r) || unicode.IsControl(r)):
			return fmt.Errorf("illegal character at index %d", i)
		}
		i += size
	}
	if strings.Count(s, "#") > 1 {
		return errors.New("illegal character in fragment")
	}
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("unparsable URI")
	}
	if u.Scheme == "" || u.Opaque != "" || u.Host == "" {
		return errors.New("invalid URI: no host")
	}
	rest := s[strings.Index(s, "//")+2:]
	if k := strings.IndexAny(rest, "/?#"); k >= 0 && strings.ContainsAny(rest[k:], "[]") {
		return errors.New("illegal character outside the host")
	}
	if !javaHost(u.Hostname()) {
		return errors.New("invalid URI: no server host")
	}
	return nil
}

// javaHost reports whether java.net.URI accepts h as a server host: an IP
// address, or labels of letters, digits and inner hyphens whose last label
// starts with a letter when there are several.
func javaHost(h string) bool {
	if net.ParseIP(h) != nil {
		return true
	}
	labels := strings.Split(strings.TrimSuffix(h, "."), ".")
	for _, l := range labels {
		if l == "" || !isAlnum(l[0]) || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			if !isAlnum(l[i]) && l[i] != '-' {
				return false
			}
		}
	}
	last := labels[len(labels)-1][0]
	return len(labels) == 1 || ('a' <= last|0x20 && last|0x20 <= 'z')
}

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c|0x20 && c|0x20 <= 'z'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c|0x20 && c|0x20 <= 'f'
}

// IsJSON is StringUtils.isJson: one JSON object or array, nothing else. As
// with org.json, a repeated key in any object makes the text invalid. Upstream
// also tolerates org.json's lenient syntax (single quotes, unquoted keys); we
// accept strict JSON only.
func IsJSON(s string) bool {
	t := strings.TrimLeft(s, " \t\r\n")
	if t == "" || (t[0] != '{' && t[0] != '[') || !json.Valid([]byte(t)) {
		return false
	}
	return !hasDuplicateKey(t)
}

// isJSONOrNDJSON is StringUtils.isJsonOrNdjson: not blank, and either JSON or
// lines that are each blank or JSON after Java's trim().
func isJSONOrNDJSON(s string) bool {
	if strings.TrimFunc(s, unicode.IsSpace) == "" {
		return false
	}
	if IsJSON(s) {
		return true
	}
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimFunc(line, func(r rune) bool { return r <= ' ' })
		if line != "" && !IsJSON(line) {
			return false
		}
	}
	return true
}

// hasDuplicateKey walks valid JSON and reports whether some object repeats a
// key.
func hasDuplicateKey(s string) bool {
	type container struct {
		keys    map[string]bool // nil for arrays
		wantKey bool
	}
	dec := json.NewDecoder(strings.NewReader(s))
	var stack []container
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			continue
		}
		if n := len(stack); n > 0 && stack[n-1].keys != nil {
			top := &stack[n-1]
			if top.wantKey {
				k := tok.(string)
				if top.keys[k] {
					return true
				}
				top.keys[k] = true
				top.wantKey = false
				continue
			}
			top.wantKey = true
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, container{keys: make(map[string]bool), wantKey: true})
		case json.Delim('['):
			stack = append(stack, container{})
		}
	}
}
