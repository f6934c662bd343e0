// Package loadgen is the load generator of the feedgate load-test suite: many
// WebSocket subscribers and a few publishers in one process, all on loopback.
//
// Subscribers are read by one epoll loop (Reader) over raw non-blocking
// sockets: after a client handshake done with ordinary blocking I/O, the
// socket's descriptor is duplicated out of the Go netpoller and the loop only
// parses WebSocket frame headers and pulls the timestamp, sequence number and
// channel index out of each payload. That keeps the generator's cost per
// delivery far below a goroutine per connection.
//
// The generator speaks three server protocols (Kind): our edge's wire
// protocol v1 (json or msgpack), Centrifuge's JSON protocol (the peer) and the
// ceiling server's trivial one. Reader is driven by one goroutine; its
// statistics are read and reset through Reader.Do, which runs a function on
// that goroutine. Publishers and Dialer methods are safe for concurrent use
// unless their doc says otherwise.
package loadgen
