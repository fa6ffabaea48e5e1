package process

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/mlsidecar/mlsidecar/mlcommons/template"
)

// object is a JSON object whose keys keep their order when serialised.
type object []field

type field struct {
	key   string
	value any
}

// gsonJSON writes v as ML Commons 2.19's Gson instance (new Gson()) does:
// compact, HTML-safe string escaping. v is nil, a string, *string, int,
// []*string, []any or object; the builders in pre.go never put a null in an
// object, where Gson would drop the member.
func gsonJSON(v any) string {
	var b strings.Builder
	writeGSON(&b, v)
	return b.String()
}

func writeGSON(b *strings.Builder, v any) {
	switch v := v.(type) {
	case nil:
		b.WriteString("null")
	case string:
		writeGSONString(b, v)
	case *string:
		if v == nil {
			b.WriteString("null")
		} else {
			writeGSONString(b, *v)
		}
	case int:
		b.WriteString(strconv.Itoa(v))
	case []*string:
		b.WriteByte('[')
		for i, s := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			writeGSON(b, s)
		}
		b.WriteByte(']')
	case []any:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			writeGSON(b, e)
		}
		b.WriteByte(']')
	case object:
		b.WriteByte('{')
		for i, f := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			writeGSONString(b, f.key)
			b.WriteByte(':')
			writeGSON(b, f.value)
		}
		b.WriteByte('}')
	default:
		// Only the builders in pre.go call this, with the types above.
		panic(fmt.Sprintf("process: gsonJSON of %T", v))
	}
}

// writeGSONString quotes s as Gson's HTML-safe JsonWriter does.
func writeGSONString(b *strings.Builder, s string) {
	b.WriteByte('"')
	b.WriteString(template.GsonEscape(s))
	b.WriteByte('"')
}

// escapeParameter is ConnectorUtils.escapeRemoteInferenceInputData for one
// value: JSON objects and arrays stay as they are, anything else is escaped
// with Commons Text escapeJson.
func escapeParameter(s string) string {
	if isJSON(s) {
		return s
	}
	return template.EscapeJSON(s)
}

// isJSON reports whether s is a JSON object or array (ML Commons'
// StringUtils.isJson; its parsers are somewhat more lenient).
func isJSON(s string) bool {
	t := bytes.TrimSpace([]byte(s))
	if len(t) == 0 || (t[0] != '{' && t[0] != '[') {
		return false
	}
	return json.Valid(t)
}
