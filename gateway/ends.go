package gateway

import "sync/atomic"

// EndReason says why a connection ended. Each connection ends for exactly
// one reason, the first that applied (a connection told to go away whose
// write then times out ended going_away). Frames that were queued for it
// and never written count against the same reason (derp's dropReason*).
type EndReason uint8

const (
	// EndClientClosed: the client ended the connection: it sent Close,
	// half-closed, or its side failed (reset). What its socket would not
	// take without waiting at that moment is not written.
	EndClientClosed EndReason = iota
	// EndSlowConsumer: the send queue overflowed (SendQueueBytes).
	EndSlowConsumer
	// EndWriteTimeout: one socket write made no progress for WriteTimeout.
	EndWriteTimeout
	// EndWriteError: a socket write failed.
	EndWriteError
	// EndIdleTimeout: nothing was read from the client for IdleTimeout.
	EndIdleTimeout
	// EndTooManyErrors: the client spent its error budget.
	EndTooManyErrors
	// EndGoingAway: the edge is draining or shutting down.
	EndGoingAway
	// EndInvalidPayload: the client sent a text message that is not valid
	// UTF-8; the edge failed the connection with close code 1007.
	EndInvalidPayload
	// EndTokenExpired: the connection's token expired and was not renewed
	// within the grace period.
	EndTokenExpired
	// EndRevoked: the connection's API key, token or subject was revoked.
	EndRevoked

	// NumEndReasons is the number of EndReason values.
	NumEndReasons
)

var endReasonNames = [NumEndReasons]string{"client_closed", "slow_consumer", "write_timeout", "write_error", "idle_timeout", "too_many_errors", "going_away", "invalid_payload", "token_expired", "revoked"}

// String returns the reason's name, as used for metric labels.
func (r EndReason) String() string {
	if r < NumEndReasons {
		return endReasonNames[r]
	}
	return "unknown"
}

// endStats counts connection ends and dropped frames by reason.
type endStats struct {
	ends    [NumEndReasons]atomic.Uint64
	dropped [NumEndReasons]atomic.Uint64
}

// drop counts n frames that were queued (or offered) and will never be
// written, for reason r.
func (s *endStats) drop(r EndReason, n int) {
	if n > 0 {
		s.dropped[r].Add(uint64(n))
	}
}
