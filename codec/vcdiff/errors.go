package vcdiff

import "errors"

// Sentinel errors. Every error Decode returns wraps exactly one of them,
// with context (which field, at which offset of the delta).
var (
	// ErrCorrupt: the delta is not valid VCDIFF, is truncated, or does not
	// fit the source it is applied to (an address or length out of range).
	ErrCorrupt = errors.New("vcdiff: corrupt delta")
	// ErrTooLarge: the delta declares more target bytes than the caller's
	// limit allows.
	ErrTooLarge = errors.New("vcdiff: target too large")
	// ErrUnsupported: valid VCDIFF that uses a feature this decoder does not
	// implement: secondary compression, a custom code table, or a format
	// extension other than xdelta3's application header and the Adler-32
	// window checksum.
	ErrUnsupported = errors.New("vcdiff: unsupported feature")
)
