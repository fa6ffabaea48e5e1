package openai

import (
	"sync"
	"time"
)

// defaultStart is where a zero Clock starts: a fixed instant, so timestamps
// in a test are the same on every run.
var defaultStart = time.Date(2025, time.January, 1, 0, 0, 0, 0, time.UTC)

// Clock is a time source that only moves when told to. The zero Clock starts
// at 2025-01-01T00:00:00Z. It is safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock standing at start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now is the clock's current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.now.IsZero() {
		c.now = defaultStart
	}
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.now.IsZero() {
		c.now = defaultStart
	}
	c.now = c.now.Add(d)
}
