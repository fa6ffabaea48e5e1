package provider

import (
	"bytes"
	"encoding/json"

	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

// A batch task is written before its job is submitted, so a replica that
// dies in between leaves a task that another one finishes. Finishing it
// must not create a second job: the submission carries an idempotency key
// derived from the task id where the provider has one, and a resumed
// submission finds the job by it.
//
// How each provider finds it:
//   - OpenAI: the key is in the batch's metadata; the batches are listed
//     (newest first) before anything is resubmitted (see Lister).
//   - Bedrock: the key is the clientRequestToken; Bedrock answers a
//     repeated CreateModelInvocationJob with the job the first one made.
//   - SageMaker: the job name is the key; a repeated CreateTransformJob is
//     refused naming the job that exists (see Adopt).
//   - Cohere has no key: an interrupted submission cannot be finished
//     safely, and the task fails saying so.

// keyed is a provider whose submissions can carry an idempotency key.
type keyed interface {
	// withKey returns body carrying taskID's key and the key; "" when
	// body cannot carry one.
	withKey(body []byte, taskID string) ([]byte, string)
}

// WithKey returns the batch_predict body of task taskID with the provider's
// idempotency key in it, and that key; key is "" when the provider has none
// or the body cannot take it (a body that is not a JSON object, a field the
// connector's template already sets otherwise).
func WithKey(p Provider, body []byte, taskID string) ([]byte, string) {
	if k, ok := p.(keyed); ok {
		return k.withKey(body, taskID)
	}
	return body, ""
}

// Lister is a provider whose job creation is not idempotent: before an
// interrupted submission is repeated, its jobs are listed to find the key.
type Lister interface {
	// ListURL is the URL of the page of jobs after the job id after ("" for
	// the first page), given the batch_predict URL.
	ListURL(base, after string) string
	// Find looks for the job carrying key on a page of jobs. It returns the
	// job when found; otherwise the id to list after, "" when no page
	// could hold it (the last page, or one reaching jobs created before
	// since, in epoch seconds).
	Find(page []byte, key string, since int64) (job []byte, after string, err error)
}

// AsLister is p as a Lister, if it is one.
func AsLister(p Provider) (Lister, bool) {
	l, ok := p.(Lister)
	return l, ok
}

// adopter is a provider that refuses a repeated submission naming the job
// that exists.
type adopter interface {
	adopt(status int, reason, key string) ([]byte, bool)
}

// Adopt reads a provider's refusal of a resubmitted job: when it says the
// job under key exists, that job is returned as the submission would have
// answered it.
func Adopt(p Provider, err error, key string) ([]byte, bool) {
	a, ok := p.(adopter)
	me, isML := mlerr.From(err)
	if !ok || !isML || key == "" {
		return nil, false
	}
	return a.adopt(me.Status, mlerr.Reason(err), key)
}

// addField adds "name": value to a JSON object body that has no field
// name, keeping every byte it had (the connector's template is the
// caller's). It returns false, and body, when body is no JSON object or
// already has the field.
func addField(body []byte, name string, value any) ([]byte, bool) {
	var obj map[string]json.RawMessage
	if json.Unmarshal(body, &obj) != nil || obj == nil {
		return body, false
	}
	if _, ok := obj[name]; ok {
		return body, false
	}
	k, _ := json.Marshal(name)
	v, err := json.Marshal(value)
	if err != nil {
		return body, false
	}
	trimmed := bytes.TrimRight(body, " \t\r\n")
	out := make([]byte, 0, len(body)+len(k)+len(v)+2)
	out = append(out, trimmed[:len(trimmed)-1]...) // without its '}'
	if len(obj) > 0 {
		out = append(out, ',')
	}
	out = append(append(append(append(out, k...), ':'), v...), '}')
	return out, true
}

// field is a JSON object body's string field name, "" if none.
func field(body []byte, name string) string {
	var obj map[string]json.RawMessage
	if json.Unmarshal(body, &obj) != nil {
		return ""
	}
	var s string
	if json.Unmarshal(obj[name], &s) != nil {
		return ""
	}
	return s
}
