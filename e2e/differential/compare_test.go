package differential

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// answer is what one implementation answered to one probe.
type answer struct {
	status      int
	contentType string
	body        []byte
	json        any // nil when the body is not JSON
}

func newAnswer(status int, contentType string, body []byte) answer {
	a := answer{status: status, contentType: contentType, body: body}
	if err := json.Unmarshal(body, &a.json); err != nil {
		a.json = nil
	}
	return a
}

// leaf is one compared position of an answer: its JSON type, and its
// normalised value where values are compared.
type leaf struct {
	kind  string // object, array, string, number, bool, null
	value string // "" when only the kind is compared
}

func (l leaf) String() string {
	if l.value == "" {
		return l.kind
	}
	return l.value
}

// difference is one position where the answers differ.
type difference struct {
	path             string
	genuine, sidecar string // "absent" where one side has nothing there
}

func (d difference) String() string {
	return fmt.Sprintf("%s: genuine %s, mlsidecar %s", d.path, d.genuine, d.sidecar)
}

// Keys whose values differ by nature (ids, clocks, versions, encrypted
// credentials, node names): only their type is compared.
var volatileKey = regexp.MustCompile(`^(_id|id|.*_ids?|.*_time|.*_at|_seq_no|_primary_term|_version|took|_score|max_score|ml_jvm_heap_usage|data)$`)

// Numbers whose values are compared: statuses, counts of what the probes made.
var countedKey = regexp.MustCompile(`^(status|status_code|value|total|successful|failed|skipped|shape|ml_model_count|ml_connector_count|ml_deployed_model_count)$`)

// idToken finds candidates for generated ids (OpenSearch's 20-character
// auto-id shape, which ML Commons and mlsidecar use) in text.
var idToken = regexp.MustCompile(`[A-Za-z0-9_-]{20,}`)

// isID tells a generated id from a word of the same length
// ("json_parse_exception"): ids have capitals or digits.
func isID(s string) bool {
	return len(s) == 20 && strings.ContainsAny(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
}

// normaliser replaces each implementation's own ids by the probe variable
// that holds them, so "Failed to find model <model>" compares equal.
type normaliser struct{ r *strings.Replacer }

func newNormaliser(vars map[string]string) normaliser {
	names := make([]string, 0, len(vars))
	for k, v := range vars {
		if len(v) >= 6 || k == "node" {
			names = append(names, k)
		}
	}
	// Longest values first, so no value is replaced inside a longer one.
	sort.Slice(names, func(i, j int) bool { return len(vars[names[i]]) > len(vars[names[j]]) })
	var pairs []string
	for _, k := range names {
		pairs = append(pairs, vars[k], "<"+k+">")
	}
	return normaliser{strings.NewReplacer(pairs...)}
}

// javaIdentity is the identity hash Java appends to an object's class name
// ("RemoteModel@d16cd7b" in profiles).
var javaIdentity = regexp.MustCompile(`([A-Za-z])@[0-9a-f]{4,8}\b`)

func (n normaliser) text(s string) string {
	s = javaIdentity.ReplaceAllString(s, "$1")
	return idToken.ReplaceAllStringFunc(n.r.Replace(s), func(m string) string {
		if isID(m) {
			return "<id>"
		}
		return m
	})
}

// key normalises an object key: ids used as keys (models in stats and
// profile) and node names (OpenSearch's node ids, the sidecar's --node-id).
func (n normaliser) key(k string) string {
	if r := n.r.Replace(k); r != k {
		return r
	}
	if isID(k) {
		return "<id>"
	}
	return k
}

// flatten lists every position of an answer: pseudo-paths in angle brackets
// for the status and framing, JSON paths for the body.
func flatten(a answer, n normaliser) map[string]leaf {
	out := map[string]leaf{
		"<status>":       {kind: "number", value: strconv.Itoa(a.status)},
		"<content-type>": {kind: "string", value: strings.ToLower(strings.ReplaceAll(a.contentType, " ", ""))},
	}
	if len(a.body) == 0 {
		out["<body>"] = leaf{kind: "empty", value: "empty"}
		return out
	}
	layout := "one line"
	if strings.Contains(strings.TrimSpace(string(a.body)), "\n") {
		layout = "multi-line"
	}
	out["<layout>"] = leaf{kind: "string", value: layout}
	if a.json == nil {
		out["<body>"] = leaf{kind: "text", value: strconv.Quote(n.text(strings.TrimSpace(string(a.body))))}
		return out
	}
	walk(out, "", "", a.json, n)
	return out
}

func walk(out map[string]leaf, path, key string, v any, n normaliser) {
	here := func(l leaf) {
		if path != "" {
			out[path] = l
		}
	}
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	switch v := v.(type) {
	case map[string]any:
		here(leaf{kind: "object"})
		for k, c := range v {
			walk(out, join(n.key(k)), k, c, n)
		}
	case []any:
		here(leaf{kind: "array"})
		for i, c := range v {
			walk(out, fmt.Sprintf("%s[%d]", path, i), key, c, n)
		}
	case string:
		l := leaf{kind: "string"}
		if !volatileKey.MatchString(key) && !strings.Contains(path, "credential.") {
			l.value = strconv.Quote(n.text(v))
		}
		here(l)
	case float64:
		l := leaf{kind: "number"}
		if countedKey.MatchString(key) {
			l.value = strconv.FormatFloat(v, 'g', -1, 64)
		}
		here(l)
	case bool:
		here(leaf{kind: "bool", value: strconv.FormatBool(v)})
	case nil:
		here(leaf{kind: "null", value: "null"})
	}
}

// diff compares two flattened answers. A position below one that already
// differs (a missing object's fields) is not listed again.
func diff(genuine, sidecar map[string]leaf) []difference {
	var paths []string
	for p := range genuine {
		paths = append(paths, p)
	}
	for p := range sidecar {
		if _, ok := genuine[p]; !ok {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	var out []difference
	for _, p := range paths {
		g, gok := genuine[p]
		s, sok := sidecar[p]
		if gok && sok && g == s {
			continue
		}
		if slices.ContainsFunc(out, func(d difference) bool { return isBelow(p, d.path) }) {
			continue
		}
		d := difference{path: p, genuine: "absent", sidecar: "absent"}
		if gok {
			d.genuine = g.String()
		}
		if sok {
			d.sidecar = s.String()
		}
		out = append(out, d)
	}
	return out
}

func isBelow(p, parent string) bool {
	return strings.HasPrefix(p, parent+".") || strings.HasPrefix(p, parent+"[")
}

// lookup follows a dotted path ("hits.hits.0._id") into decoded JSON.
func lookup(v any, path string) (any, bool) {
	if path == "" {
		return v, true
	}
	for _, part := range strings.Split(path, ".") {
		switch c := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = c[part]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			v = c[i]
		default:
			return nil, false
		}
	}
	return v, true
}
