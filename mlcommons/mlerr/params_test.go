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
