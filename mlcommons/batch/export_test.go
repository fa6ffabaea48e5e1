package batch

import "time"

// SetPollMargin shortens what a worker's poll may take beyond its status
// call's deadline, so a test of a stalled provider ends in seconds.
func SetPollMargin(w *Worker, d time.Duration) { w.margin = d }
