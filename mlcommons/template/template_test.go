package template

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// checkErr compares err with want (nil for success) and, when wantIs is set,
// checks that err wraps it.
func checkErr(t *testing.T, err error, want *mlerr.Error, wantIs error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("got error %v, want none", err)
		}
		return
	}
	var got *mlerr.Error
	if !errors.As(err, &got) {
		t.Fatalf("got error %v (%T), want *mlerr.Error %+v", err, err, want)
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreUnexported(mlerr.Error{})); diff != "" {
		t.Errorf("error mismatch (-want +got):\n%s", diff)
	}
	if wantIs != nil && !errors.Is(err, wantIs) {
		t.Errorf("errors.Is(%v, %v) = false, want true", err, wantIs)
	}
}

func badRequest(reason string) *mlerr.Error {
	return &mlerr.Error{Status: 400, Type: "illegal_argument_exception", Reason: reason}
}

func illegalState(reason string) *mlerr.Error {
	return &mlerr.Error{Status: 500, Type: "illegal_state_exception", Reason: reason}
}

// chain returns n parameters p0 -> p1 -> ... -> p(n-1) = "end".
func chain(n int) map[string]string {
	params := make(map[string]string, n)
	for i := range n - 1 {
		params[fmt.Sprintf("p%d", i)] = fmt.Sprintf("${parameters.p%d}", i+1)
	}
	params[fmt.Sprintf("p%d", n-1)] = "end"
	return params
}

// doubling returns n parameters each referencing the next one twice, the
// last holding leaf: the expansion of p0 is 2^(n-1) copies of leaf.
func doubling(n int, leaf string) map[string]string {
	params := make(map[string]string, n)
	for i := range n - 1 {
		params[fmt.Sprintf("p%d", i)] = fmt.Sprintf("${parameters.p%d}${parameters.p%d}", i+1, i+1)
	}
	params[fmt.Sprintf("p%d", n-1)] = leaf
	return params
}

func TestEscapeJSON(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "empty", in: "", want: ""},
		{name: "printable ASCII unchanged", in: "Hello, world! 1+1=2 <ok> 'x' ~", want: "Hello, world! 1+1=2 <ok> 'x' ~"},
		{name: "quote backslash and slash", in: `a"b\c/d`, want: `a\"b\\c\/d`},
		{name: "short control escapes", in: "\b\f\n\r\t", want: `\b\f\n\r\t`},
		{name: "other controls as upper-case unicode", in: "\x00\x01\x1f", want: `\u0000\u0001\u001F`},
		{name: "DEL is escaped", in: "\x7f", want: `\u007F`},
		{name: "latin-1", in: "café", want: `caf\u00E9`},
		{name: "BMP", in: "中文", want: `\u4E2D\u6587`},
		{name: "astral as surrogate pair", in: "😀", want: `\uD83D\uDE00`},
		{name: "line separator", in: "\u2028", want: `\u2028`},
		{name: "invalid UTF-8 byte", in: "a\xffb", want: `a\uFFFDb`},
		{name: "mixed", in: "say \"hi\" / ok\né 😀", want: `say \"hi\" \/ ok\n\u00E9 \uD83D\uDE00`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := EscapeJSON(tt.in); got != tt.want {
				t.Errorf("EscapeJSON(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestRequestParameters(t *testing.T) {
	tests := []struct {
		name string
		body string // the "parameters" object of a _predict body; "" for nil
		want map[string]string
	}{
		{
			name: "nil",
			want: nil,
		},
		{
			name: "string escaped with Commons Text rules",
			body: `{"prompt":"say \"hi\" / ok\né 😀"}`,
			want: map[string]string{"prompt": `say \"hi\" \/ ok\n\u00E9 \uD83D\uDE00`},
		},
		{
			name: "array inserted raw",
			body: `{"input":["a","b"]}`,
			want: map[string]string{"input": `["a","b"]`},
		},
		{
			name: "object compact with sorted keys",
			body: `{"o":{ "b" : 1, "a" : "x" }}`,
			want: map[string]string{"o": `{"a":"x","b":1}`},
		},
		{
			name: "number text preserved",
			body: `{"temperature":0.70,"big":1e2,"n":42,"neg":-0.0}`,
			want: map[string]string{"temperature": "0.70", "big": "1e2", "n": "42", "neg": "-0.0"},
		},
		{
			name: "bool and null as JSON text",
			body: `{"stream":true,"off":false,"none":null}`,
			want: map[string]string{"stream": "true", "off": "false", "none": "null"},
		},
		{
			name: "string holding a JSON object is not escaped",
			body: `{"s":"{\"a\":\"/\"}"}`,
			want: map[string]string{"s": `{"a":"/"}`},
		},
		{
			name: "string holding a JSON string is escaped",
			body: `{"s":"\"quoted\""}`,
			want: map[string]string{"s": `\"quoted\"`},
		},
		{
			name: "string holding broken JSON is escaped",
			body: `{"s":"[1,"}`,
			want: map[string]string{"s": `[1,`},
		},
		{
			name: "string holding an object with a repeated key is escaped",
			body: `{"s":"{\"a\":1,\"a\":2}"}`,
			want: map[string]string{"s": `{\"a\":1,\"a\":2}`},
		},
		{
			name: "no_escape_params",
			body: `{"no_escape_params":"raw, other","raw":"a\"b","other":"x/y","esc":"x/y"}`,
			want: map[string]string{"no_escape_params": "raw, other", "raw": `a"b`, "other": "x/y", "esc": `x\/y`},
		},
		{
			name: "strings inside arrays escaped as Gson does",
			body: `{"a":["<it's>","é/","a\"b"]}`,
			want: map[string]string{"a": `["\u003cit\u0027s\u003e","é/","a\"b"]`},
		},
		{
			name: "null object members dropped, null array elements kept",
			body: `{"o":{"a":null,"b":[null,1.50]}}`,
			want: map[string]string{"o": `{"b":[null,1.50]}`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var raw map[string]any
			if tt.body != "" {
				dec := json.NewDecoder(strings.NewReader(tt.body))
				dec.UseNumber()
				if err := dec.Decode(&raw); err != nil {
					t.Fatal(err)
				}
			}
			if diff := cmp.Diff(tt.want, RequestParameters(raw)); diff != "" {
				t.Errorf("RequestParameters mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	tests := []struct {
		name                           string
		connector, request, preprocess map[string]string
		want                           map[string]string
	}{
		{
			name: "all nil",
			want: map[string]string{},
		},
		{
			name:      "union",
			connector: map[string]string{"model": "m"},
			request:   map[string]string{"prompt": "p"},
			want:      map[string]string{"model": "m", "prompt": "p"},
		},
		{
			name:      "request beats connector",
			connector: map[string]string{"model": "m", "max_tokens": "10"},
			request:   map[string]string{"model": "override"},
			want:      map[string]string{"model": "override", "max_tokens": "10"},
		},
		{
			name:       "pre-process output beats connector",
			connector:  map[string]string{"input": "connector"},
			preprocess: map[string]string{"input": `["doc"]`},
			want:       map[string]string{"input": `["doc"]`},
		},
		{
			name:       "request beats pre-process output",
			connector:  map[string]string{"input": "connector"},
			request:    map[string]string{"input": "request"},
			preprocess: map[string]string{"input": "preprocessed", "extra": "x"},
			want:       map[string]string{"input": "request", "extra": "x"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Merge(tt.connector, tt.request, tt.preprocess)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Merge mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSubstitute(t *testing.T) {
	tests := []struct {
		name    string
		tmpl    string
		params  map[string]string
		want    string
		wantErr *mlerr.Error
		wantIs  error
	}{
		{name: "empty template", tmpl: "", params: map[string]string{"a": "x"}, want: ""},
		{name: "nil params leave placeholders", tmpl: `{"a":"${parameters.a}"}`, want: `{"a":"${parameters.a}"}`},
		{
			name:   "quoted string parameter",
			tmpl:   `{"model":"${parameters.model}"}`,
			params: map[string]string{"model": "gpt-4o"},
			want:   `{"model":"gpt-4o"}`,
		},
		{
			name:   "array parameter inserted raw",
			tmpl:   `{"input": ${parameters.input}}`,
			params: map[string]string{"input": `["a","b"]`},
			want:   `{"input": ["a","b"]}`,
		},
		{
			name:   "missing key left as is",
			tmpl:   `{"a":"${parameters.a}","b":"${parameters.b}"}`,
			params: map[string]string{"a": "x"},
			want:   `{"a":"x","b":"${parameters.b}"}`,
		},
		{
			name: "default used when missing",
			tmpl: `{"n":${parameters.n:-1}}`,
			want: `{"n":1}`,
		},
		{
			name:   "default ignored when present, even if empty",
			tmpl:   `[${parameters.n:-1}]`,
			params: map[string]string{"n": ""},
			want:   `[]`,
		},
		{name: "empty default", tmpl: `"${parameters.x:-}"`, want: `""`},
		{name: "default split at the first :-", tmpl: `${parameters.x:-a:-b}`, want: `a:-b`},
		{
			name: "default cannot hold a variable: the first } ends it",
			tmpl: `${parameters.missing:-${parameters.b}}`, params: map[string]string{"b": "B"},
			want: `${parameters.b}`,
		},
		{
			name:   "$$ escapes a placeholder",
			tmpl:   `{"a":"$${parameters.x}"}`,
			params: map[string]string{"x": "filled"},
			want:   `{"a":"${parameters.x}"}`,
		},
		{
			name:   "$$$ keeps one escape",
			tmpl:   `$$${parameters.x}`,
			params: map[string]string{"x": "filled"},
			want:   `$${parameters.x}`,
		},
		{
			name:   "escape of an unterminated variable is kept",
			tmpl:   `$${parameters.x`,
			params: map[string]string{"x": "filled"},
			want:   `$${parameters.x`,
		},
		{
			name:   "lone dollars untouched",
			tmpl:   `$5 $ ${other} $$`,
			params: map[string]string{"x": "filled"},
			want:   `$5 $ ${other} $$`,
		},
		{
			name:   "scanning resumes inside an escaped variable",
			tmpl:   `$${parameters.a ${parameters.b}}`,
			params: map[string]string{"a": "A", "b": "B"},
			want:   `${parameters.a B}`,
		},
		{
			name:   "a value ending in $ escapes the next variable (upstream quirk)",
			tmpl:   `${parameters.a}${parameters.b}`,
			params: map[string]string{"a": "US$", "b": "B"},
			want:   `US${parameters.b}`,
		},
		{
			name:   "values expanded recursively",
			tmpl:   `{"p":"${parameters.a}"}`,
			params: map[string]string{"a": "${parameters.b}", "b": "x"},
			want:   `{"p":"x"}`,
		},
		{
			name:   "same parameter twice is not a cycle",
			tmpl:   `${parameters.a}-${parameters.a}`,
			params: map[string]string{"a": "${parameters.b}", "b": "x"},
			want:   `x-x`,
		},
		{
			name:   "escape inside a value",
			tmpl:   `${parameters.a}`,
			params: map[string]string{"a": "$${parameters.b}", "b": "x"},
			want:   `${parameters.b}`,
		},
		{
			name:   "variables do not nest",
			tmpl:   `${parameters.a${parameters.b}}`,
			params: map[string]string{"b": "x", "ax": "y"},
			want:   `${parameters.a${parameters.b}}`,
		},
		{
			name:    "two-step cycle",
			tmpl:    `${parameters.a}`,
			params:  map[string]string{"a": "${parameters.b}", "b": "${parameters.a}"},
			wantErr: illegalState("Infinite loop in property interpolation of template: a->b"),
			wantIs:  ErrCycle,
		},
		{
			name:    "self reference",
			tmpl:    `{"p":"${parameters.a}"}`,
			params:  map[string]string{"a": "x${parameters.a}"},
			wantErr: illegalState("Infinite loop in property interpolation of template: a"),
			wantIs:  ErrCycle,
		},
		{
			name:   "100 nested parameters are fine",
			tmpl:   `${parameters.p0}`,
			params: chain(100),
			want:   "end",
		},
		{
			name: "a missing 101st parameter is left in place",
			tmpl: `${parameters.p0}`,
			params: func() map[string]string {
				p := chain(100)
				p["p99"] = "${parameters.p100}"
				return p
			}(),
			want: `${parameters.p100}`,
		},
		{
			name:    "101 nested parameters exceed the depth bound",
			tmpl:    `${parameters.p0}`,
			params:  chain(101),
			wantErr: illegalState("Infinite loop in property interpolation of template: more than 100 nested parameters"),
			wantIs:  ErrCycle,
		},
		{
			name:    "exponential growth in size is refused",
			tmpl:    `${parameters.p0}`,
			params:  doubling(20, strings.Repeat("x", 1024)),
			wantErr: badRequest("Parameter substitution would produce more than 16 MiB or fill more than 262144 placeholders"),
			wantIs:  ErrTooLarge,
		},
		{
			name:    "exponential growth in work is refused",
			tmpl:    `${parameters.p0}`,
			params:  doubling(20, ""),
			wantErr: badRequest("Parameter substitution would produce more than 16 MiB or fill more than 262144 placeholders"),
			wantIs:  ErrTooLarge,
		},
		{
			name: ".toString() inside a parameter value",
			tmpl: `{"prompt":"${parameters.prompt}"}`,
			params: map[string]string{
				"prompt":   "Answer: ${parameters.question.toString()}",
				"question": "line1\nline2 <b> \"é\"",
			},
			want: `{"prompt":"Answer: line1\nline2 \u003cb\u003e \"é\""}`,
		},
		{
			name: ".toString() after an ordinary placeholder in the same value",
			tmpl: `{"prompt":"${parameters.prompt}"}`,
			params: map[string]string{
				"prompt":  "${parameters.context} ${parameters.q.toString()}",
				"context": "C",
				"q":       `a"b`,
			},
			want: `{"prompt":"C a\"b"}`,
		},
		{
			name:   ".toString() written in the template itself is not resolved",
			tmpl:   `{"q":"${parameters.q.toString()}"}`,
			params: map[string]string{"q": `a"b`},
			want:   `{"q":"${parameters.q.toString()}"}`,
		},
		{
			name:   ".toString() of a missing parameter stays",
			tmpl:   `${parameters.prompt}`,
			params: map[string]string{"prompt": "${parameters.nope.toString()}"},
			want:   `${parameters.nope.toString()}`,
		},
		{
			name:   "credential placeholders are not parameters",
			tmpl:   `Bearer ${credential.key} ${parameters.a}`,
			params: map[string]string{"a": "x", "key": "k"},
			want:   `Bearer ${credential.key} x`,
		},
		{
			name:   "non-ASCII text passes through",
			tmpl:   `{"t":"héllo ${parameters.a} 😀"}`,
			params: map[string]string{"a": "wörld"},
			want:   `{"t":"héllo wörld 😀"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Substitute(tt.tmpl, tt.params)
			checkErr(t, err, tt.wantErr, tt.wantIs)
			if got != tt.want {
				t.Errorf("Substitute(%q) = %q, want %q", tt.tmpl, got, tt.want)
			}
		})
	}
}

func TestSubstituteCredentials(t *testing.T) {
	tests := []struct {
		name    string
		tmpl    string
		cred    map[string]string
		want    string
		wantErr *mlerr.Error
		wantIs  error
	}{
		{
			name: "bearer header",
			tmpl: "Bearer ${credential.openAI_key}",
			cred: map[string]string{"openAI_key": "sk-123"},
			want: "Bearer sk-123",
		},
		{name: "missing left as is", tmpl: "Bearer ${credential.key}", want: "Bearer ${credential.key}"},
		{
			name: "parameters placeholders untouched",
			tmpl: "${parameters.key} ${credential.key}",
			cred: map[string]string{"key": "k"},
			want: "${parameters.key} k",
		},
		{name: "default", tmpl: "${credential.region:-us-east-1}", want: "us-east-1"},
		{
			name: "escape",
			tmpl: "$${credential.key}",
			cred: map[string]string{"key": "k"},
			want: "${credential.key}",
		},
		{
			name:    "cycle",
			tmpl:    "${credential.a}",
			cred:    map[string]string{"a": "${credential.a}"},
			wantErr: illegalState("Infinite loop in property interpolation of template: a"),
			wantIs:  ErrCycle,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SubstituteCredentials(tt.tmpl, tt.cred)
			checkErr(t, err, tt.wantErr, tt.wantIs)
			if got != tt.want {
				t.Errorf("SubstituteCredentials(%q) = %q, want %q", tt.tmpl, got, tt.want)
			}
		})
	}
}

// Header fills parameters before credentials and names the header, never
// its text, in an error: with credentials first, a parameter cycle quoted
// the header with the key in it.
func TestHeader(t *testing.T) {
	const key = "sk-secret-123456"
	cred := map[string]string{"openAI_key": key}
	tests := []struct {
		name    string
		tmpl    string
		params  map[string]string
		cred    map[string]string // nil: cred
		want    string
		wantErr *mlerr.Error
		wantIs  error
	}{
		{name: "credential", tmpl: "Bearer ${credential.openAI_key}", want: "Bearer " + key},
		{
			name:   "parameter and credential",
			tmpl:   "${parameters.scheme} ${credential.openAI_key}",
			params: map[string]string{"scheme": "Bearer"},
			want:   "Bearer " + key,
		},
		{
			name:    "parameter cycle names the header only",
			tmpl:    "Bearer ${credential.openAI_key} ${parameters.a}",
			params:  map[string]string{"a": "${parameters.b}", "b": "${parameters.a}"},
			wantErr: illegalState("Infinite loop in property interpolation of header Authorization: a->b"),
			wantIs:  ErrCycle,
		},
		{
			name:   "a credential value is not expanded as a parameter",
			tmpl:   "${credential.k}",
			params: map[string]string{"x": "X"},
			cred:   map[string]string{"k": "${parameters.x}"},
			want:   "${parameters.x}",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cred
			if tt.cred != nil {
				c = tt.cred
			}
			got, err := Header("Authorization", tt.tmpl, tt.params, c)
			checkErr(t, err, tt.wantErr, tt.wantIs)
			if err != nil && strings.Contains(err.Error(), key) {
				t.Errorf("error %q shows the credential", err)
			}
			if got != tt.want {
				t.Errorf("Header(%q) = %q, want %q", tt.tmpl, got, tt.want)
			}
		})
	}
}

func TestPayload(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		params  map[string]string
		want    string
		wantErr *mlerr.Error
		wantIs  error
	}{
		{
			name:   "OpenAI chat body",
			body:   `{"model":"${parameters.model}","messages":${parameters.messages},"temperature":${parameters.temperature}}`,
			params: map[string]string{"model": "gpt-4o", "messages": `[{"role":"user","content":"hi"}]`, "temperature": "0.70"},
			want:   `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"temperature":0.70}`,
		},
		{
			name:   "quoted :-null becomes bare null when missing",
			body:   `{"a":"${parameters.a:-null}","b":"${parameters.b:-null}"}`,
			params: map[string]string{"b": "v"},
			want:   `{"a":null,"b":"v"}`,
		},
		{
			name: "every occurrence of the quoted :-null is replaced",
			body: `["${parameters.a:-null}","${parameters.a:-null}"]`,
			want: `[null,null]`,
		},
		{
			name: "unquoted :-null is an ordinary default",
			body: `{"a":${parameters.a:-null}}`,
			want: `{"a":null}`,
		},
		{
			name: "quoted :-nothing is an ordinary default",
			body: `{"a":"${parameters.a:-}"}`,
			want: `{"a":""}`,
		},
		{
			name:    "missing placeholders named in order",
			body:    `{"b":"${parameters.b}","a":"${parameters.a}"}`,
			wantErr: badRequest("Some parameter placeholder not filled in payload: b, a"),
		},
		{
			name:    "a repeated missing placeholder is named each time",
			body:    `{"a":"${parameters.a}","again":"${parameters.a}"}`,
			wantErr: badRequest("Some parameter placeholder not filled in payload: a, a"),
		},
		{
			name:   "skip_validating_missing_parameters",
			body:   `{"a":"${parameters.a}"}`,
			params: map[string]string{"skip_validating_missing_parameters": "true"},
			want:   `{"a":"${parameters.a}"}`,
		},
		{
			name:   "skip_validating_missing_parameters is a Java boolean",
			body:   `{"a":"${parameters.a}"}`,
			params: map[string]string{"skip_validating_missing_parameters": "TRUE"},
			want:   `{"a":"${parameters.a}"}`,
		},
		{
			name:    "skip_validating_missing_parameters other than true",
			body:    `{"a":"${parameters.a}"}`,
			params:  map[string]string{"skip_validating_missing_parameters": "yes"},
			wantErr: badRequest("Some parameter placeholder not filled in payload: a"),
		},
		{
			name:    "an escaped placeholder is then refused by the scan",
			body:    `{"a":"$${parameters.x}"}`,
			params:  map[string]string{"x": "v"},
			wantErr: badRequest("Some parameter placeholder not filled in payload: x"),
		},
		{
			name:    "a prefix without a complete placeholder is still refused",
			body:    `{"a":"${parameters"}`,
			wantErr: badRequest("Some parameter placeholder not filled in payload: "),
		},
		{
			name:   "NDJSON",
			body:   "{\"index\":{}}\n{\"text\":\"${parameters.text}\"}\n\n",
			params: map[string]string{"text": "t"},
			want:   "{\"index\":{}}\n{\"text\":\"t\"}\n\n",
		},
		{
			name:   "NDJSON with CRLF and padding",
			body:   "  {\"a\":1}\r\n\t[2]  \r\n",
			params: map[string]string{},
			want:   "  {\"a\":1}\r\n\t[2]  \r\n",
		},
		{
			name:    "NDJSON with one bad line",
			body:    "{\"a\":1}\nnope\n",
			wantErr: badRequest("Invalid payload: {\"a\":1}\nnope\n"),
		},
		{
			name:    "escaped string parameter not quoted in the template",
			body:    `{"input": ${parameters.input}}`,
			params:  map[string]string{"input": "hello"},
			wantErr: badRequest(`Invalid payload: {"input": hello}`),
		},
		{
			name:    "an unfilled unquoted placeholder is an invalid payload first",
			body:    `{"input": ${parameters.input}}`,
			wantErr: badRequest(`Invalid payload: {"input": ${parameters.input}}`),
		},
		{
			name:    "top-level JSON string is not a payload",
			body:    `"${parameters.x}"`,
			params:  map[string]string{"x": "v"},
			wantErr: badRequest(`Invalid payload: "v"`),
		},
		{
			name:    "repeated key is not a payload",
			body:    `{"a":1,"a":${parameters.x}}`,
			params:  map[string]string{"x": "2"},
			wantErr: badRequest(`Invalid payload: {"a":1,"a":2}`),
		},
		{
			name:    "blank payload",
			body:    `${parameters.x}`,
			params:  map[string]string{"x": "  "},
			wantErr: badRequest("Invalid payload:   "),
		},
		{
			name:   "no template: http_body",
			params: map[string]string{"http_body": "raw text, not JSON"},
			want:   "raw text, not JSON",
		},
		{name: "no template and no http_body", want: ""},
		{
			name:    "no template: http_body is still scanned",
			params:  map[string]string{"http_body": `{"a":"${parameters.a}"}`},
			wantErr: badRequest("Some parameter placeholder not filled in payload: a"),
		},
		{
			// Credentials belong in headers: Payload leaves ${credential.x}
			// as text. Inside a JSON string it is sent as is.
			name:   "credential placeholder in a quoted body field stays",
			body:   `{"key":"${credential.api_key}"}`,
			params: map[string]string{"api_key": "from-parameters"},
			want:   `{"key":"${credential.api_key}"}`,
		},
		{
			name:    "credential placeholder outside a string makes the payload invalid",
			body:    `{"key":${credential.api_key}}`,
			wantErr: badRequest(`Invalid payload: {"key":${credential.api_key}}`),
		},
		{
			name:    "cycle",
			body:    `{"a":"${parameters.a}"}`,
			params:  map[string]string{"a": "${parameters.b}", "b": "${parameters.a}"},
			wantErr: illegalState("Infinite loop in property interpolation of request_body: a->b"),
			wantIs:  ErrCycle,
		},
		{
			name: "request parameters end to end",
			body: `{"model":"${parameters.model}","input":${parameters.input},"prompt":"${parameters.prompt}"}`,
			params: Merge(
				map[string]string{"model": "text-embedding-3-small", "prompt": "default"},
				RequestParameters(map[string]any{"input": []any{"a/b", "é"}, "prompt": "say \"hi\"\n"}),
				nil,
			),
			want: `{"model":"text-embedding-3-small","input":["a/b","é"],"prompt":"say \"hi\"\n"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Payload(tt.body, tt.params)
			checkErr(t, err, tt.wantErr, tt.wantIs)
			if got != tt.want {
				t.Errorf("Payload(%q) = %q, want %q", tt.body, got, tt.want)
			}
		})
	}
}

func TestURL(t *testing.T) {
	uriErr := badRequest("Encountered error when trying to create uri from endpoint in ml connector. " +
		"Please update the endpoint in connection configuration: ")
	tests := []struct {
		name    string
		tmpl    string
		params  map[string]string
		want    string
		wantErr *mlerr.Error
		wantIs  error
	}{
		{
			name:   "filled",
			tmpl:   "https://${parameters.endpoint}/model/${parameters.model}/invoke?x=${parameters.x}",
			params: map[string]string{"endpoint": "bedrock-runtime.us-east-1.amazonaws.com", "model": "amazon.titan-embed-text-v2:0", "x": "a%20b"},
			want:   "https://bedrock-runtime.us-east-1.amazonaws.com/model/amazon.titan-embed-text-v2:0/invoke?x=a%20b",
		},
		{name: "no placeholders", tmpl: "https://api.openai.com/v1/embeddings", want: "https://api.openai.com/v1/embeddings"},
		{name: "IPv6 host and port", tmpl: "http://[::1]:9200/_predict", want: "http://[::1]:9200/_predict"},
		{name: "single-label host", tmpl: "http://localhost:8080/v1", want: "http://localhost:8080/v1"},
		{
			name:    "unresolved placeholder",
			tmpl:    "https://api.openai.com/v1/${parameters.path}",
			params:  map[string]string{"model": "m"},
			wantErr: uriErr,
		},
		{
			name:    "nothing is substituted when params is empty",
			tmpl:    "https://${parameters.host:-example.com}/",
			wantErr: uriErr,
		},
		{
			name:   "default when params is not empty",
			tmpl:   "https://${parameters.host:-example.com}/",
			params: map[string]string{"other": "x"},
			want:   "https://example.com/",
		},
		{
			name:    "space from a parameter value",
			tmpl:    "https://example.com/${parameters.q}",
			params:  map[string]string{"q": "a b"},
			wantErr: uriErr,
		},
		{name: "malformed percent escape", tmpl: "https://example.com/%zz", wantErr: uriErr},
		{name: "underscore in host", tmpl: "http://my_service:8080/", wantErr: uriErr},
		{name: "numeric top label", tmpl: "http://host.123/", wantErr: uriErr},
		{name: "no scheme", tmpl: "localhost:9200/_predict", wantErr: uriErr},
		{name: "relative", tmpl: "/v1/embeddings", wantErr: uriErr},
		{name: "empty", tmpl: "", wantErr: uriErr},
		{name: "bracket in path", tmpl: "https://example.com/a[0]", wantErr: uriErr},
		{
			name:    "cycle",
			tmpl:    "https://${parameters.a}/",
			params:  map[string]string{"a": "${parameters.a}"},
			wantErr: illegalState("Infinite loop in property interpolation of url: a"),
			wantIs:  ErrCycle,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := URL(tt.tmpl, tt.params)
			checkErr(t, err, tt.wantErr, tt.wantIs)
			if got != tt.want {
				t.Errorf("URL(%q) = %q, want %q", tt.tmpl, got, tt.want)
			}
		})
	}
}

func FuzzSubstitute(f *testing.F) {
	seeds := []struct{ tmpl, k1, v1, k2, v2 string }{
		{`{"a":"${parameters.a}"}`, "a", "x", "b", "y"},
		{`${parameters.a}`, "a", "${parameters.b}", "b", "${parameters.a}"},
		{`${parameters.a}`, "a", "${parameters.a}${parameters.a}", "b", ""},
		{`$${parameters.a} $$${parameters.b}`, "a", "x", "b", "$"},
		{`${parameters.a:-${parameters.b}}`, "b", "x", "a", "$"},
		{`${parameters.p}`, "p", "${parameters.q.toString()}", "q", "\"é\n"},
		{`${parameters.a${parameters.b}}`, "b", "}", "a}", "{"},
		{`"${parameters.x:-null}"`, "y", "1", "z", "2"},
		{"${credential.k} ${parameters", "k", "v", "", ""},
	}
	for _, s := range seeds {
		f.Add(s.tmpl, s.k1, s.v1, s.k2, s.v2)
	}
	f.Fuzz(func(t *testing.T, tmpl, k1, v1, k2, v2 string) {
		params := map[string]string{k1: v1, k2: v2}
		check := func(what, got string, err error) {
			if err != nil {
				var e *mlerr.Error
				if !errors.As(err, &e) {
					t.Fatalf("%s: got error %v (%T), want *mlerr.Error", what, err, err)
				}
				if got != "" {
					t.Fatalf("%s: got %q with error %v, want empty", what, got, err)
				}
			}
		}
		got, err := Substitute(tmpl, params)
		check("Substitute", got, err)
		if err == nil && !strings.Contains(tmpl, "$") && got != tmpl {
			t.Fatalf("Substitute(%q) = %q, want the template unchanged", tmpl, got)
		}
		got, err = SubstituteCredentials(tmpl, params)
		check("SubstituteCredentials", got, err)
		got, err = Payload(tmpl, params)
		check("Payload", got, err)
		got, err = URL(tmpl, params)
		check("URL", got, err)
	})
}

func FuzzEscapeJSON(f *testing.F) {
	for _, s := range []string{"", "plain", `"\/`, "\b\f\n\r\t\x00\x1f\x7f", "é中😀", "\u2028<>&='", "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := EscapeJSON(s)
		for i := 0; i < len(out); i++ {
			if out[i] < 0x20 || out[i] > 0x7e {
				t.Fatalf("EscapeJSON(%q) = %q: byte %#x outside 0x20..0x7E", s, out, out[i])
			}
		}
		if !utf8.ValidString(s) {
			return
		}
		for name, escaped := range map[string]string{"EscapeJSON": out, "GsonEscape": GsonEscape(s)} {
			var back string
			if err := json.Unmarshal([]byte(`"`+escaped+`"`), &back); err != nil {
				t.Fatalf("%s(%q) = %q is not a JSON string body: %v", name, s, escaped, err)
			}
			if back != s {
				t.Fatalf("%s(%q) decodes to %q, want the input", name, s, back)
			}
		}
	})
}

// A caller's parameters are text, never templates: values that reference
// each other are not expanded (a few KiB would otherwise become many MiB);
// the payload check then finds the placeholder text and refuses the call,
// and a value without placeholders passes through.
func TestRequestParametersAreLiterals(t *testing.T) {
	req := RequestParameters(map[string]any{
		"a": strings.Repeat("${parameters.b}", 4),
		"b": strings.Repeat("${parameters.c}", 4),
		"c": strings.Repeat("x", 1000),
	})
	params := Merge(map[string]string{"model": "m"}, req, nil)
	got, err := Payload(`{"a":"${parameters.a}","model":"${parameters.model}"}`, params)
	if e, ok := mlerr.From(err); !ok || e.Status != 400 || len(got) > 0 {
		t.Errorf("got %d bytes, %v; want a 400 and no payload", len(got), err)
	}
	got, err = Payload(`{"c":"${parameters.c}","model":"${parameters.model}"}`, params)
	if err != nil || got != `{"c":"`+strings.Repeat("x", 1000)+`","model":"m"}` {
		t.Errorf("got %.60q, %v; want c and model filled", got, err)
	}
}
