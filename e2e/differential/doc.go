// Package differential holds mlsidecar's differential tests: the same ML
// Commons REST requests are sent to a genuine ML Commons 2.19.6 node and to
// the real mlsidecar binary in front of a plain node, both calling one OpenAI
// double, and the answers are compared by status, JSON shape, types,
// enumerated values and error texts. Differences either appear in the table
// of accepted differences (accepted_test.go), each tied to a row of
// COMPATIBILITY.md, or fail the test.
package differential
