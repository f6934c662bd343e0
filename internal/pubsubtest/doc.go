// Package pubsubtest starts real Pub/Sub API servers for tests: the client
// library's pstest server, and Google's Pub/Sub emulator when the Google
// Cloud SDK is installed. It also has a TCP proxy that can cut the path to a
// server, to test a backbone outage.
//
// pstest runs in a child process (internal/cmd/pstestd, built without
// -race), never in the test binary: it has data races of its own that would
// fail a `go test -race` run at random. Tests reach what they need of it
// beyond the Pub/Sub API (its clock, lost acks) through Server.Fake. This
// package must not import pstest; TestNoPstestInTestBinaries checks that.
package pubsubtest
