package doublekit

import (
	"sync"
	"time"
)

// epoch is where a Clock given no start stands: a fixed instant, so the
// timestamps of a test are the same on every run.
var epoch = time.Date(2025, time.January, 1, 0, 0, 0, 0, time.UTC)

// Clock is a double's job clock. It stands still until Advance, so a job
// changes state exactly when the test says and never because the machine
// was slow. The zero Clock stands at 2025-01-01T00:00:00Z. It is safe for
// concurrent use: handlers read it while the test advances it.
type Clock struct {
	mu  sync.Mutex
	now time.Time // zero until first used: epoch
}

// NewClock returns a Clock standing at start (zero: 2025-01-01T00:00:00Z).
// Times are kept in UTC, the zone the provider APIs answer in.
func NewClock(start time.Time) *Clock { return &Clock{now: start.UTC()} }

// NewClockOrNow is NewClock, but a zero start is the current time, for the
// doubles whose Options promise "zero: now". It is cut to the second so that
// times survive every API's format exactly (SageMaker's are float seconds).
func NewClockOrNow(start time.Time) *Clock {
	if start.IsZero() {
		start = time.Now().Truncate(time.Second)
	}
	return NewClock(start)
}

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.current()
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.current().Add(d)
}

// current is the time, putting a clock that was given no start at epoch;
// the caller holds c.mu.
func (c *Clock) current() time.Time {
	if c.now.IsZero() {
		c.now = epoch
	}
	return c.now
}
