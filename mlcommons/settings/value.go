package settings

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

// OpenSearch keeps every setting value as text: JSON numbers and booleans
// become their literal text, a list setting may hold a list of texts or one
// comma-separated text. normalize turns a value a caller sent into that
// form (a JSON string or a JSON list of strings), after checking it as
// ML Commons' setting would, with OpenSearch's messages; values are parsed
// from that form again where they are used.

// normalize checks raw, a non-null value given for s, and returns it as
// OpenSearch keeps it.
func (s *setting) normalize(raw json.RawMessage) (json.RawMessage, error) {
	key := Prefix + s.key
	if s.kind == kindList {
		items, ok := listTexts(raw)
		if !ok {
			return nil, mlerr.IllegalArgument("Failed to parse value [%s] for setting [%s]", display(raw), key)
		}
		for _, item := range s.split(items) {
			if err := s.check(item); err != nil {
				return nil, err
			}
		}
		return encodeTexts(items), nil
	}
	text, ok := scalarText(raw)
	if !ok {
		text = display(raw) // a list, parsed as the text Java makes of it
	}
	if err := s.parse(text); err != nil {
		return nil, err
	}
	if !ok {
		return nil, mlerr.IllegalArgument("Failed to parse value [%s] for setting [%s]", text, key)
	}
	return encodeTexts(text), nil
}

// encodeTexts is a JSON string, or a JSON list of strings for a slice.
func encodeTexts(v any) json.RawMessage {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // strings always encode
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// parse checks text as a value of s, with OpenSearch's messages.
func (s *setting) parse(text string) error {
	key := Prefix + s.key
	switch s.kind {
	case kindBool:
		if text != "true" && text != "false" {
			return mlerr.IllegalArgument("Failed to parse value [%s] as only [true] or [false] are allowed.", text)
		}
	case kindInt, kindLong:
		bits := 32
		if s.kind == kindLong {
			bits = 64
		}
		n, err := strconv.ParseInt(text, 10, bits)
		if err != nil {
			return mlerr.IllegalArgument("Failed to parse value [%s] for setting [%s]", text, key)
		}
		if err := s.inRange(text, float64(n), strconv.FormatFloat(s.lo, 'f', -1, 64), strconv.FormatFloat(s.hi, 'f', -1, 64)); err != nil {
			return err
		}
	case kindFloat:
		f, err := strconv.ParseFloat(strings.TrimSpace(text), 32)
		if err != nil || math.IsNaN(f) {
			return mlerr.IllegalArgument("Failed to parse value [%s] for setting [%s]", text, key)
		}
		if err := s.inRange(text, f, javaFloat(s.lo), javaFloat(s.hi)); err != nil {
			return err
		}
	case kindBytes:
		return parseBytes(key, text)
	}
	return s.check(text)
}

// inRange is the bounds check of Setting.intSetting and its kin.
func (s *setting) inRange(text string, v float64, lo, hi string) error {
	key := Prefix + s.key
	switch {
	case v < s.lo:
		return mlerr.IllegalArgument("Failed to parse value [%s] for setting [%s] must be >= %s", text, key, lo)
	case v > s.hi:
		return mlerr.IllegalArgument("Failed to parse value [%s] for setting [%s] must be <= %s", text, key, hi)
	}
	return nil
}

// javaFloat formats a bound as Java's Float.toString does ("1.0").
func javaFloat(f float64) string {
	s := strconv.FormatFloat(f, 'f', -1, 32)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

// check runs what mlsidecar checks beyond ML Commons: that a regex setting
// compiles here, so a bad pattern is the caller's 400 and not a failure of
// every connector call later.
func (s *setting) check(text string) error {
	var err error
	switch {
	case s.key == "trusted_connector_endpoints_regex":
		_, err = trustedRegexp(text)
	case strings.HasPrefix(s.key, "remote_job.status_regex."):
		_, err = statusRegexp(text)
	default:
		return nil
	}
	if err != nil {
		return mlerr.IllegalArgument("Failed to parse value [%s] for setting [%s]: not a regular expression mlsidecar can run (RE2 syntax): %s",
			text, Prefix+s.key, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
	}
	return nil
}

// trustedRegexp compiles a trusted endpoint regex so that it matches a whole
// URL, as Java's String.matches does (as config.TrustedRegexp does).
func trustedRegexp(expr string) (*regexp.Regexp, error) {
	return regexp.Compile(`^(?:` + expr + `)$`)
}

// statusRegexp compiles a status regex as ML Commons does: case-insensitive,
// found anywhere in the status.
func statusRegexp(expr string) (*regexp.Regexp, error) { return regexp.Compile("(?i)" + expr) }

// split is the list a list setting holds: a text is split at commas, each
// item trimmed and empty ones dropped (Settings.getAsList).
func (s *setting) split(items any) []string {
	switch v := items.(type) {
	case []string:
		return v
	case string:
		var out []string
		for _, item := range strings.Split(v, ",") {
			if item = strings.TrimSpace(item); item != "" {
				out = append(out, item)
			}
		}
		return out
	}
	return nil
}

// scalarText is the text OpenSearch keeps for a JSON string, number or
// boolean; false for anything else.
func scalarText(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", false
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		return s, true
	case '{', '[', 'n':
		return "", false
	}
	return string(raw), true // a number, true or false: its literal text
}

// listTexts is the value of a list setting: a list of scalars (each as its
// text) or one scalar (kept as its text); false for nested lists, objects,
// null items.
func listTexts(raw json.RawMessage) (any, bool) {
	if text, ok := scalarText(raw); ok {
		return text, true
	}
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		return nil, false
	}
	out := make([]string, 0, len(items))
	for _, item := range items {
		text, ok := scalarText(item)
		if !ok {
			return nil, false
		}
		out = append(out, text)
	}
	return out, true
}

// display is a value as OpenSearch's messages show it: a scalar's text, a
// list as Java's List.toString ("[a, b]").
func display(raw json.RawMessage) string {
	if text, ok := scalarText(raw); ok {
		return text
	}
	var items []json.RawMessage
	if isNull(raw) {
		return "null"
	}
	if json.Unmarshal(raw, &items) == nil {
		parts := make([]string, len(items))
		for i, item := range items {
			parts[i] = display(item)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return string(bytes.TrimSpace(raw))
}

// parseBytes checks a byte size as ByteSizeValue.parseBytesSizeValue does.
func parseBytes(key, text string) error {
	v := strings.ToLower(strings.TrimSpace(text))
	if v == "-1" || v == "0" {
		return nil
	}
	for _, unit := range []string{"kb", "mb", "gb", "tb", "pb", "k", "m", "g", "t", "p", "b"} {
		number, ok := strings.CutSuffix(v, unit)
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(number), 10, 64)
		if err != nil || n < 0 && !(n == -1 && unit == "b") || n > math.MaxInt64/unitBytes(unit) {
			return mlerr.IllegalArgument("failed to parse setting [%s] with value [%s] as a size in bytes", key, text)
		}
		return nil
	}
	return mlerr.IllegalArgument("failed to parse setting [%s] with value [%s] as a size in bytes: unit is missing or unrecognized", key, text)
}

func unitBytes(unit string) int64 {
	switch unit[0] {
	case 'k':
		return 1 << 10
	case 'm':
		return 1 << 20
	case 'g':
		return 1 << 30
	case 't':
		return 1 << 40
	case 'p':
		return 1 << 50
	}
	return 1
}

// Typed readers of stored values, already checked by normalize.

func boolOf(raw json.RawMessage) (bool, error) {
	text, _ := scalarText(raw)
	switch text {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("not a boolean: %s", raw)
}

func intOf(raw json.RawMessage) (int, error) {
	text, _ := scalarText(raw)
	n, err := strconv.ParseInt(text, 10, 32)
	return int(n), err
}

func textOf(raw json.RawMessage) (string, error) {
	text, ok := scalarText(raw)
	if !ok {
		return "", fmt.Errorf("not a text: %s", raw)
	}
	return text, nil
}

func (s *setting) listOf(raw json.RawMessage) ([]string, error) {
	items, ok := listTexts(raw)
	if !ok {
		return nil, fmt.Errorf("not a list: %s", raw)
	}
	return s.split(items), nil
}
