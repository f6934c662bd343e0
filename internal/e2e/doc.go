// Package e2e tests whole edges: several gateway servers sharing one real
// Pub/Sub API server (pstest, and Google's emulator when installed), in one
// process and as separate processes, driven by the Go client over loopback.
package e2e
