// Package client is the Go client of the gateway's wire protocol v1
// (docs/protocol.md): connect in JSON or msgpack, attach and detach
// channels, publish with acknowledgement, receive messages.
//
// A Client's methods are safe to call from several goroutines. Messages are
// delivered on one channel in arrival order; a consumer that stops reading
// it eventually stops the connection's reader, and the edge then drops the
// client as a slow consumer, as it would any client.
package client
