// Package codec owns the gateway's vocabulary: the message model, channel
// names, error codes, the client wire frames in their two encodings (JSON and
// msgpack) and the backbone envelope that carries a message through Pub/Sub.
//
// codec is pure: it starts no goroutines, touches no network and imports no
// transport. Every function is safe to call concurrently; values returned by
// the encoders are owned by the caller and, once built, may be shared
// read-only by any number of goroutines (a prepared message frame is written
// to every subscriber of a channel).
package codec
