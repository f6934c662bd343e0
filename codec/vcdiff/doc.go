// Package vcdiff encodes and decodes binary deltas in the VCDIFF format
// (RFC 3284), the delta format of the wire protocol's `delta: "vcdiff"`
// option.
//
// The encoder emits a deliberately small subset that plain RFC 3284
// decoders read (the tests decode every delta with xdelta3 and with Ably's
// @ably/vcdiff-decoder): the RFC header
// with Hdr_Indicator 0, exactly one window whose source segment is the whole
// source (no source segment when the source is empty), the default code
// table with its address caches, no secondary compression and no checksum.
// docs/protocol.md, "Appendix: the VCDIFF subset", is the client-facing
// description.
//
// The decoder reads any delta made with the default code table and no
// secondary compression: one or more windows, VCD_SOURCE or VCD_TARGET
// segments, and the Adler-32 window checksum of xdelta3 and open-vcdiff
// (verified when present). It treats its input as hostile: every length and
// address is checked before use, it never allocates more than the caller's
// target limit for the output, and bad input is an error wrapping
// ErrCorrupt, ErrTooLarge or ErrUnsupported, never a panic.
//
// The package is pure: no goroutines, no I/O. Encode and Decode are safe to
// call concurrently; an Encoder is not, it holds scratch state for one
// goroutine at a time.
package vcdiff
