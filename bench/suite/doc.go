// Package suite runs the load-test scenarios of bench/: it builds and starts
// each server under test (our edge, the Centrifuge peer, the ceiling server)
// pinned to one core, drives it with package loadgen from the other core,
// and writes results (JSON, a Markdown summary and PNG plots).
//
// Nothing here is safe for concurrent use: one scenario runs at a time.
package suite
