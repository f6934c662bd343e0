// Package pubsubtest starts real Pub/Sub API servers for tests: the client
// library's in-process pstest server, and Google's Pub/Sub emulator when the
// Google Cloud SDK is installed. It also has a TCP proxy that can cut the
// path to a server, to test a backbone outage.
package pubsubtest
