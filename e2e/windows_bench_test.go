//go:build bench

package e2e

// measurePollWindows: bench runs measure the replicas' polling windows.
const measurePollWindows = true
