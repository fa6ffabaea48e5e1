package differential

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
)

// outcome is one probe as both implementations answered it.
type outcome struct {
	probe            probe
	request          string // as sent to genuine ML Commons, variables named
	genuine, sidecar answer
	diffs            []difference
	accepted         []*accepted // per diff; nil where not accepted
}

// Given a genuine ML Commons node and mlsidecar in front of a plain node,
// both calling the same OpenAI double, when every probe is sent to both in
// the same order, then their answers have the same status, JSON shape,
// types, enumerated values and error texts, except for the accepted
// differences of accepted_test.go.
func TestDifferential(t *testing.T) {
	input := uploadInput(t)
	vars := map[string]map[string]string{}
	for _, tg := range []target{env.genuine, env.sidecar} {
		vars[tg.name] = map[string]string{"double": env.double.URL(), "input_file": input, "unknown": unknownID, "node": tg.nodeID,
			"trusted": strings.ReplaceAll(env.trusted, `\`, `\\`)} // inside a JSON string
	}

	var outcomes []*outcome
	for _, p := range probes {
		o := &outcome{probe: p}
		outcomes = append(outcomes, o)
		t.Run(p.name, func(t *testing.T) {
			o.request = describe(p, vars["genuine"])
			o.genuine = p.run(t, env.genuine, vars["genuine"])
			o.sidecar = p.run(t, env.sidecar, vars["mlsidecar"])
			o.diffs = diff(flatten(o.genuine, newNormaliser(vars["genuine"])), flatten(o.sidecar, newNormaliser(vars["mlsidecar"])))
			var unexplained []string
			for _, d := range o.diffs {
				a := accept(p.name, d)
				o.accepted = append(o.accepted, a)
				if a == nil {
					unexplained = append(unexplained, "  "+d.String())
				}
			}
			if len(unexplained) > 0 {
				t.Errorf("%s: answers differ:\n%s\ngenuine %d: %s\nmlsidecar %d: %s", o.request, strings.Join(unexplained, "\n"),
					o.genuine.status, trim(o.genuine.body, 1500), o.sidecar.status, trim(o.sidecar.body, 1500))
			}
		})
	}

	var equal, onlyListed, other, listed, todo int
	for _, o := range outcomes {
		acc, td, bad := o.counts()
		listed, todo = listed+acc+td, todo+td
		switch {
		case len(o.diffs) == 0:
			equal++
		case bad == 0:
			onlyListed++
		default:
			other++
		}
	}
	t.Logf("%d probes: %d equal, %d differing only as listed, %d differing otherwise; %d listed differences (%d of them TODO)",
		len(outcomes), equal, onlyListed, other, listed, todo)
	for _, a := range unusedAccepted(outcomes) {
		t.Logf("accepted difference no longer seen, remove it: %s %s (%s)", a.probe, a.path, a.why)
	}
	if path := os.Getenv("DIFFERENTIAL_REPORT"); path != "" {
		if err := os.WriteFile(path, report(outcomes), 0o644); err != nil {
			t.Errorf("writing the report: %v", err)
		}
	}
}

// run sends the probe to one implementation (repeating it while until does
// not hold) and saves the variables it names.
func (p probe) run(t *testing.T, tg target, vars map[string]string) answer {
	t.Helper()
	url := tg.url + "/_plugins/_ml" + expand(p.path, vars)
	if p.root {
		url = tg.url + expand(p.path, vars)
	}
	pick := ""
	if tg.name == "genuine" && p.genuinePath != "" {
		url, pick = tg.node+expand(p.genuinePath, vars), p.genuinePick
	}
	body := []byte(expand(p.body, vars))
	if p.gzip {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(body)
		_ = zw.Close()
		body = buf.Bytes()
	}
	var a answer
	once := func(ctx context.Context) bool {
		req, err := http.NewRequestWithContext(ctx, p.method, url, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if p.gzip {
			req.Header.Set("Content-Encoding", "gzip")
		}
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return false // the wait is over; reported below
			}
			t.Fatalf("%s %s: %v", p.method, url, err)
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(resp.Body)
		a = newAnswer(resp.StatusCode, resp.Header.Get("Content-Type"), buf.Bytes())
		if pick != "" {
			a.json, _ = lookup(a.json, pick)
		}
		// Without the ids it needs (an earlier probe failed) there is nothing to wait for.
		return p.until == nil || p.until(a) || variable.MatchString(url)
	}
	if err := poll(t.Context(), untilTimeout, once); err != nil {
		t.Errorf("%s: %s %s: the wanted state was %v; last answer %d %s", tg.name, p.method, url, err, a.status, trim(a.body, 500))
	}
	for name, path := range p.save {
		v, ok := lookup(a.json, path)
		if !ok {
			t.Errorf("%s: no %s in the answer to save as %s: %s", tg.name, path, name, trim(a.body, 500))
			continue
		}
		vars[name] = fmt.Sprint(v)
	}
	return a
}

var variable = regexp.MustCompile(`\{\{([a-z0-9_]+)\}\}`)

func expand(s string, vars map[string]string) string {
	return variable.ReplaceAllStringFunc(s, func(m string) string {
		if v, ok := vars[m[2:len(m)-2]]; ok {
			return v
		}
		return m
	})
}

// describe is the request as the report shows it: ids by their variable names.
func describe(p probe, vars map[string]string) string {
	n := newNormaliser(map[string]string{"double": vars["double"], "input_file": vars["input_file"]})
	s := p.method + " /_plugins/_ml" + p.path
	if p.root {
		s = p.method + " " + p.path
	}
	if p.genuinePath != "" {
		s += fmt.Sprintf(" (genuine: GET %s, field %s)", p.genuinePath, p.genuinePick)
	}
	if p.body != "" {
		s += " " + n.r.Replace(compact(p.body))
	}
	return s
}

// uploadInput puts a two-line batch input file into the double.
func uploadInput(t *testing.T) string {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	_ = w.WriteField("purpose", "batch")
	f, err := w.CreateFormFile("file", "input.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"hello", "world"} {
		fmt.Fprintf(f, `{"custom_id":%q,"method":"POST","url":"/v1/embeddings","body":{"model":"text-embedding-ada-002","input":%q}}`+"\n", text, text)
	}
	_ = w.Close()
	req, err := http.NewRequestWithContext(t.Context(), "POST", env.double.URL()+"/v1/files", &buf)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", w.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+openAIKey)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	_, _ = out.ReadFrom(resp.Body)
	a := newAnswer(resp.StatusCode, "", out.Bytes())
	id, _ := lookup(a.json, "id")
	if resp.StatusCode != http.StatusOK || id == nil {
		t.Fatalf("uploading the batch input: %d %s", resp.StatusCode, out.Bytes())
	}
	return id.(string)
}

// trim shortens a body for messages and the report.
func trim(b []byte, n int) string {
	s := compact(string(b))
	if len(s) > n {
		return s[:n] + fmt.Sprintf("… (%d bytes)", len(s))
	}
	return s
}

func compact(s string) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(s)); err == nil {
		return buf.String()
	}
	return strings.TrimSpace(s)
}
