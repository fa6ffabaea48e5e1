//go:build !bench

package e2e

// measurePollWindows is off in the default suite: its wall-clock windows
// are measurements, which make bench-batch runs.
const measurePollWindows = false
