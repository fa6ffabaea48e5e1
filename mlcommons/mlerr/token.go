package mlerr

import (
	"bytes"
	"encoding/json"
	"net/http"
)

// JSONToken names the first token of a JSON text as OpenSearch's
// XContentParser.Token does (what ensureExpectedToken's messages name):
// START_OBJECT, START_ARRAY, VALUE_STRING, VALUE_NUMBER, VALUE_BOOLEAN or
// VALUE_NULL; "null" for no text at all.
func JSONToken(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return "null"
	}
	switch b[0] {
	case '{':
		return "START_OBJECT"
	case '[':
		return "START_ARRAY"
	case '"':
		return "VALUE_STRING"
	case 't', 'f':
		return "VALUE_BOOLEAN"
	case 'n':
		return "VALUE_NULL"
	}
	return "VALUE_NUMBER"
}

// ExpectedObject is XContentParserUtils.ensureExpectedToken(START_OBJECT)
// on a request body: a 400 parsing_exception for JSON that is not an
// object, at the line and column of its first token, nil for an object
// and for text that is not JSON at all (which the body's parser then
// reports).
func ExpectedObject(b []byte) error {
	tok := JSONToken(b)
	if tok == "START_OBJECT" || !json.Valid(b) {
		return nil
	}
	e := NotObject(tok)
	start := len(b) - len(bytes.TrimLeft(b, " \t\r\n"))
	e.Line = 1 + bytes.Count(b[:start], []byte("\n"))
	e.Col = 1 + start - (bytes.LastIndexByte(b[:start], '\n') + 1)
	return e
}

// NotObject is ensureExpectedToken's answer to a found token that is not
// START_OBJECT.
func NotObject(found string) *Error {
	return New(http.StatusBadRequest, "parsing_exception",
		"Failed to parse object: expecting token of type [START_OBJECT] but found ["+found+"]")
}
