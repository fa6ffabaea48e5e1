// Package fault injects failures into the provider test doubles: a queue of
// faults per operation, each taking one or more requests, so a test can say
// "the next two embedding calls answer 429 with Retry-After: 1, then succeed".
package fault

import (
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Fault is one injected misbehaviour.
type Fault struct {
	// Status answers with this status (0: no error answer, e.g. only Delay).
	Status int
	// Body is the answer body for Status; empty means the provider's usual
	// error body for that status.
	Body string
	// RetryAfter, when set, is sent as the Retry-After header (seconds).
	RetryAfter time.Duration
	// Delay holds the request this long before anything else happens.
	Delay time.Duration
	// Times is how many requests the fault takes (0 means 1; -1 forever).
	Times int
	// Garbage answers 200 with a body that is not JSON.
	Garbage bool
}

// Injector holds the queued faults of one double, by operation name.
type Injector struct {
	mu     sync.Mutex
	queued map[string][]*Fault
}

// Inject queues f for op (an operation name the double documents, e.g.
// "embeddings", or "*" for every operation).
func (in *Injector) Inject(op string, f Fault) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.queued == nil {
		in.queued = map[string][]*Fault{}
	}
	if f.Times == 0 {
		f.Times = 1
	}
	in.queued[op] = append(in.queued[op], &f)
}

// Reset drops every queued fault.
func (in *Injector) Reset() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.queued = nil
}

// Next takes the fault due for op, if any.
func (in *Injector) Next(op string) *Fault {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, key := range []string{op, "*"} {
		q := in.queued[key]
		if len(q) == 0 {
			continue
		}
		f := *q[0]
		if q[0].Times > 0 {
			q[0].Times--
			if q[0].Times == 0 {
				in.queued[key] = q[1:]
			}
		}
		return &f
	}
	return nil
}

// Apply runs the fault due for op against w. It reports true when it has
// answered the request; the double then does nothing more. errBody builds the
// provider's usual error body for a status.
func (in *Injector) Apply(op string, w http.ResponseWriter, r *http.Request, errBody func(status int) string) bool {
	f := in.Next(op)
	if f == nil {
		return false
	}
	if f.Delay > 0 {
		select {
		case <-time.After(f.Delay):
		case <-r.Context().Done():
			return true
		}
	}
	switch {
	case f.Garbage:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("<html>not json</html>"))
		return true
	case f.Status != 0:
		if f.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(f.RetryAfter/time.Second)))
		}
		body := f.Body
		if body == "" && errBody != nil {
			body = errBody(f.Status)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(f.Status)
		_, _ = w.Write([]byte(body))
		return true
	}
	return false // a pure delay: the double answers normally afterwards
}
