// Package auth decides what clients may do. For now: static API keys for
// publishers and an explicit open policy for subscribers; signed capability
// tokens come later, behind the same gateway.Authorizer seam.
//
// auth imports only codec; it knows nothing of the gateway's transport. Its
// types are safe for concurrent use once built.
package auth
