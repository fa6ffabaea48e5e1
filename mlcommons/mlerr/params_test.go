package mlerr

import "testing"

// Values from Lucene's LevenshteinDistance.
func TestSimilarity(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want float64
	}{
		{"pretty", "pretty", 1},
		{"prety", "pretty", float64(float32(1) - float32(1)/float32(6))},
		{"model", "model_id", float64(float32(1) - float32(3)/float32(8))},
		{"", "", 1},
		{"", "x", 0},
		{"abc", "xyz", 0},
	} {
		if got := similarity(tt.a, tt.b); got != tt.want {
			t.Errorf("similarity(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

// A body that is JSON but no object is ensureExpectedToken's
// parsing_exception at its first token, as a genuine node answers it.
func TestExpectedObject(t *testing.T) {
	for _, tc := range []struct {
		body      string
		want      string
		line, col int
	}{
		{`{"a":1}`, "", 0, 0},
		{`not json`, "", 0, 0},
		{`5`, `{"error":{"root_cause":[{"type":"parsing_exception","reason":"Failed to parse object: expecting token of type [START_OBJECT] but found [VALUE_NUMBER]","line":1,"col":1}],"type":"parsing_exception","reason":"Failed to parse object: expecting token of type [START_OBJECT] but found [VALUE_NUMBER]","line":1,"col":1},"status":400}`, 1, 1},
		{"\n  [1]", "", 2, 3},
		{` "s"`, "", 1, 2},
	} {
		err := ExpectedObject([]byte(tc.body))
		if tc.line == 0 {
			if err != nil {
				t.Errorf("%q: %v, want nil", tc.body, err)
			}
			continue
		}
		e, ok := From(err)
		if !ok || e.Line != tc.line || e.Col != tc.col || e.Status != 400 {
			t.Errorf("%q: %+v, want a 400 at line %d col %d", tc.body, err, tc.line, tc.col)
			continue
		}
		if tc.want != "" && string(e.Envelope()) != tc.want {
			t.Errorf("%q: envelope %s, want %s", tc.body, e.Envelope(), tc.want)
		}
	}
}
