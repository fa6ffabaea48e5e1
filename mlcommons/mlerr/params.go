package mlerr

import (
	"fmt"
	"sort"
	"strings"
)

// UnrecognizedParams is OpenSearch's 400 for query parameters no handler
// read, each with the known ones most like it (Lucene's Levenshtein
// similarity over 0.5, most similar first).
func UnrecognizedParams(path string, unknown, candidates []string) error {
	sort.Strings(unknown)
	var b strings.Builder
	noun := "parameter"
	if len(unknown) > 1 {
		noun = "parameters"
	}
	fmt.Fprintf(&b, "request [%s] contains unrecognized %s: ", path, noun)
	for i, u := range unknown {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("[" + u + "]")
		type scored struct {
			d    float64
			name string
		}
		var near []scored
		for _, c := range candidates {
			if d := similarity(u, c); d > 0.5 {
				near = append(near, scored{d, c})
			}
		}
		sort.Slice(near, func(i, j int) bool {
			if near[i].d != near[j].d {
				return near[i].d > near[j].d
			}
			return near[i].name < near[j].name
		})
		switch len(near) {
		case 0:
		case 1:
			b.WriteString(" -> did you mean [" + near[0].name + "]?")
		default:
			names := make([]string, len(near))
			for i, n := range near {
				names[i] = n.name
			}
			b.WriteString(" -> did you mean any of [" + strings.Join(names, ", ") + "]?")
		}
	}
	return IllegalArgument("%s", b.String())
}

// similarity is Lucene's LevenshteinDistance.getDistance: 1 minus the edit
// distance over the longer length, in float32 as Java computes it.
func similarity(a, b string) float64 {
	s, t := []rune(a), []rune(b)
	if len(s) == 0 || len(t) == 0 {
		if len(s) == len(t) {
			return 1
		}
		return 0
	}
	prev := make([]int, len(s)+1)
	cur := make([]int, len(s)+1)
	for i := range prev {
		prev[i] = i
	}
	for j := 1; j <= len(t); j++ {
		cur[0] = j
		for i := 1; i <= len(s); i++ {
			cost := 1
			if s[i-1] == t[j-1] {
				cost = 0
			}
			cur[i] = min(cur[i-1]+1, prev[i]+1, prev[i-1]+cost)
		}
		prev, cur = cur, prev
	}
	return float64(1 - float32(prev[len(s)])/float32(max(len(s), len(t))))
}
