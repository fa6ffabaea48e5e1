// Package fault injects failures into the provider test doubles: a queue of
// faults per operation, each taking one or more requests, so a test can say
// "the next two embedding calls answer 429 with Retry-After: 1, then succeed".
package fault

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
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
	// Stall sends the headers of a 200 (or Status) answer announcing Body
	// (default: a JSON object) whole, then only its first half, and holds
	// the connection until the client goes away: a provider that hangs
	// mid-answer.
	Stall bool
	// EchoHeaders answers Status (default 400) with a JSON error whose
	// message holds every request header, as some gateways do: a client
	// that sends a key gets it back in the body.
	EchoHeaders bool
	// Lose lets the double do the work but loses its answer: nothing is
	// sent and the connection is held until the client goes away, as when
	// the provider acts and the caller dies (or times out) before hearing
	// it. Taken by Withhold, not Apply.
	Lose bool
	// PathContains, when set, limits the fault to requests whose URL path
	// (as sent, escaped) contains it, e.g. one batch's id.
	PathContains string
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
func (in *Injector) Next(op string) *Fault { return in.next(op, "", false) }

// next takes the fault due for op on a request for path: the first queued
// one whose PathContains matches ("" path: any) — if its Lose is lose.
func (in *Injector) next(op, path string, lose bool) *Fault {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, key := range []string{op, "*"} {
		q := in.queued[key]
		i := 0
		for path != "" && i < len(q) && q[i].PathContains != "" && !strings.Contains(path, q[i].PathContains) {
			i++
		}
		if i == len(q) || q[i].Lose != lose {
			continue
		}
		f := *q[i]
		if q[i].Times > 0 {
			q[i].Times--
			if q[i].Times == 0 {
				in.queued[key] = append(q[:i:i], q[i+1:]...)
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
	f := in.next(op, r.URL.EscapedPath(), false)
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
	case f.Stall:
		body := f.Body
		if body == "" {
			body = `{"id":"stalled","object":"batch","status":"in_progress","note":"this answer never ends"}`
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(max(f.Status, http.StatusOK))
		_, _ = w.Write([]byte(body[:len(body)/2]))
		// Through the double's own ResponseWriter wrappers (Unwrap).
		_ = http.NewResponseController(w).Flush()
		<-r.Context().Done()
		return true
	case f.EchoHeaders:
		status := f.Status
		if status == 0 {
			status = http.StatusBadRequest
		}
		headers, _ := json.Marshal(r.Header)
		msg, _ := json.Marshal(map[string]any{"error": map[string]any{
			"message": "Bad request, you sent: " + string(headers), "headers": r.Header}})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(msg)
		return true
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

// Withhold takes a Lose fault due for op. It returns the writer the double
// answers to — one that drops the answer when the fault is due, else w —
// and hold, which the double defers: it keeps a dropped answer's
// connection, silent, until the client has gone.
func (in *Injector) Withhold(op string, w http.ResponseWriter, r *http.Request) (_ http.ResponseWriter, hold func()) {
	if in.next(op, r.URL.EscapedPath(), true) == nil {
		return w, func() {}
	}
	return dropped{header: http.Header{}}, func() { <-r.Context().Done() }
}

// dropped is a ResponseWriter whose answer goes nowhere.
type dropped struct{ header http.Header }

func (d dropped) Header() http.Header       { return d.header }
func (dropped) WriteHeader(int)             {}
func (dropped) Write(b []byte) (int, error) { return len(b), nil }
