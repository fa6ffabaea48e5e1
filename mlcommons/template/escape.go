package template

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

const hexDigits = "0123456789ABCDEF"

// EscapeJSON is Commons Text StringEscapeUtils.escapeJson, which ML Commons
// applies to request parameters: `"`, `\` and `/` get a backslash, \b \f \n \r
// \t keep their short forms, and every other character outside 0x20..0x7E
// (DEL included) becomes \uXXXX in upper-case hex, astral characters as a
// UTF-16 surrogate pair. The output is pure ASCII, so a remote service sees the
// same bytes a Java node would send. Bytes that are not valid UTF-8 cannot
// occur in a Java string; each one is escaped as \uFFFD.
func EscapeJSON(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if writeShortEscape(&b, r) {
			continue
		}
		switch r {
		case '/':
			b.WriteString(`\/`)
		default:
			switch {
			case r >= 0x20 && r <= 0x7E:
				b.WriteByte(byte(r))
			case r > 0xFFFF:
				r -= 0x10000
				writeUnicodeEscape(&b, 0xD800+(r>>10), hexDigits)
				writeUnicodeEscape(&b, 0xDC00+(r&0x3FF), hexDigits)
			default:
				writeUnicodeEscape(&b, r, hexDigits)
			}
		}
	}
	return b.String()
}

// writeShortEscape writes the two-character escapes both escapers share and
// reports whether r was one of them.
func writeShortEscape(b *strings.Builder, r rune) bool {
	switch r {
	case '"':
		b.WriteString(`\"`)
	case '\\':
		b.WriteString(`\\`)
	case '\b':
		b.WriteString(`\b`)
	case '\f':
		b.WriteString(`\f`)
	case '\n':
		b.WriteString(`\n`)
	case '\r':
		b.WriteString(`\r`)
	case '\t':
		b.WriteString(`\t`)
	default:
		return false
	}
	return true
}

func writeUnicodeEscape(b *strings.Builder, r rune, digits string) {
	b.WriteString(`\u`)
	b.WriteByte(digits[r>>12&0xF])
	b.WriteByte(digits[r>>8&0xF])
	b.WriteByte(digits[r>>4&0xF])
	b.WriteByte(digits[r&0xF])
}

// GsonEscape is the inside of a JSON string as ML Commons' Gson instance
// writes it (StringUtils.processTextDoc, and gson.toJson for list and map
// parameters). It differs from EscapeJSON, and ML Commons uses both: only `"`,
// `\`, control characters, the HTML-sensitive < > & = ' and U+2028/U+2029 are
// escaped, with lower-case hex; `/` and non-ASCII text stay as they are.
func GsonEscape(s string) string {
	const lowerHex = "0123456789abcdef"
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if writeShortEscape(&b, r) {
			continue
		}
		switch r {
		case '<', '>', '&', '=', '\'', '\u2028', '\u2029':
			writeUnicodeEscape(&b, r, lowerHex)
		default:
			if r < 0x20 {
				writeUnicodeEscape(&b, r, lowerHex)
			} else {
				b.WriteRune(r)
			}
		}
	}
	return b.String()
}

// jsonText turns one decoded request parameter into the string ML Commons
// keeps for it (StringUtils.getParameterMap): strings as they are, everything
// else as JSON text.
func jsonText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	var b strings.Builder
	writeCompactJSON(&b, v)
	return b.String()
}

// GsonJSON writes v as ML Commons' Gson instance does (see writeCompactJSON):
// the JSON text of pre-process outputs and of non-string parameters.
func GsonJSON(v any) string {
	var b strings.Builder
	writeCompactJSON(&b, v)
	return b.String()
}

// writeCompactJSON writes v the way Gson's toJson does for the values an
// XContent parser produces, with two deliberate differences: number text is
// kept exactly as the client sent it (Java reparses it as a double, so "0.70"
// would become "0.7"), and object keys are sorted (Java's HashMap order is
// arbitrary). Like Gson, null members of objects are dropped; null array
// elements are kept.
func writeCompactJSON(b *strings.Builder, v any) {
	switch v := v.(type) {
	case nil:
		b.WriteString("null")
	case string:
		b.WriteByte('"')
		b.WriteString(GsonEscape(v))
		b.WriteByte('"')
	case *string:
		if v == nil {
			b.WriteString("null")
			return
		}
		writeCompactJSON(b, *v)
	case []*string:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			writeCompactJSON(b, e)
		}
		b.WriteByte(']')
	case int:
		fmt.Fprint(b, v)
	case json.Number:
		b.WriteString(v.String())
	case bool:
		fmt.Fprint(b, v)
	case []any:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			writeCompactJSON(b, e)
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k, e := range v {
			if e != nil {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writeCompactJSON(b, k)
			b.WriteByte(':')
			writeCompactJSON(b, v[k])
		}
		b.WriteByte('}')
	default:
		// Not produced by a decoder using UseNumber; encoding/json is the
		// closest equivalent for anything else a caller hands in.
		out, err := json.Marshal(v)
		if err != nil {
			fmt.Fprint(b, v)
			return
		}
		b.Write(out)
	}
}
