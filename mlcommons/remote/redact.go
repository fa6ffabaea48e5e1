package remote

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

// Redacted replaces a credential value in anything a provider call gives
// back.
const Redacted = "[REDACTED]"

// minSecret is the shortest value redacted: replacing every "ab" of an
// answer would mangle it, and so short a value is no real secret.
const minSecret = 4

// secretForms are the ways a secret can appear in a provider's answer: as
// is, and JSON-escaped the ways JSON encoders do it (with and without HTML
// escaping, with "/" escaped as "\/").
func secretForms(secret string) []string {
	forms := []string{secret}
	add := func(f string) {
		for _, g := range []string{f, strings.ReplaceAll(f, "/", `\/`)} {
			if !contains(forms, g) {
				forms = append(forms, g)
			}
		}
	}
	b, _ := json.Marshal(secret)
	add(string(b[1 : len(b)-1]))
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(secret)
	add(strings.TrimSuffix(strings.TrimSpace(buf.String()), `"`)[1:])
	return forms
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Redact replaces every secret in b, in each of its forms, by Redacted.
// Longer secrets go first, so one that contains another is replaced whole.
func Redact(b []byte, secrets []string) []byte {
	for _, s := range usable(secrets) {
		for _, f := range secretForms(s) {
			if bytes.Contains(b, []byte(f)) {
				b = bytes.ReplaceAll(b, []byte(f), []byte(Redacted))
			}
		}
	}
	return b
}

func redactString(s string, secrets []string) string { return string(Redact([]byte(s), secrets)) }

func usable(secrets []string) []string {
	var out []string
	for _, s := range secrets {
		if len(s) >= minSecret {
			out = append(out, s)
		}
	}
	// Longest first (insertion sort: a connector has a handful).
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && len(out[j]) > len(out[j-1]); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// RedactError returns err with every secret redacted from the text a caller
// or a log line can see: the reason of its *mlerr.Error and its Error(). An
// error without a secret comes back as it is; errors.Is keeps working.
func RedactError(err error, secrets []string) error {
	if err == nil || len(usable(secrets)) == 0 {
		return err
	}
	text := err.Error()
	me, ok := mlerr.From(err)
	if ok {
		if reason := redactString(me.Reason, secrets); reason != me.Reason {
			c := *me
			c.Reason = reason
			if error(me) == err {
				return &c
			}
			return &redactedError{text: redactString(text, secrets), err: &c}
		}
	}
	if clean := redactString(text, secrets); clean != text {
		return &redactedError{text: clean, err: err}
	}
	return err
}

// redactedError shows redacted text and unwraps to the original error (or
// its redacted *mlerr.Error), so errors.Is and mlerr.From still work.
type redactedError struct {
	text string
	err  error
}

func (e *redactedError) Error() string { return e.text }
func (e *redactedError) Unwrap() error { return e.err }
