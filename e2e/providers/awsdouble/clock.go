package awsdouble

import (
	"sync"
	"time"
)

// Clock is a double's job clock: it stands still until a test advances it,
// so job state changes happen exactly when the test says.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock starts a clock at start (zero: the current time, to the second).
func NewClock(start time.Time) *Clock {
	if start.IsZero() {
		start = time.Now().Truncate(time.Second)
	}
	return &Clock{now: start.UTC()}
}

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
