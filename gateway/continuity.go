package gateway

// ContinuityStats counts what an edge could not deliver in order: the
// continuity signals it sent and the messages that broke its lateness
// bound (docs/protocol.md §7.5, §11).
type ContinuityStats struct {
	// Gaps: messages delivered after a predecessor from the same origin
	// that never reached this edge; each put a continuity frame before it
	// in the stream of every subscriber of its channel.
	Gaps uint64
	// Broken: continuity frames sent to one subscriber that had resumed
	// ahead of this edge, when a message it lacked could not be sent.
	Broken uint64
	// Late: messages that arrived at or below their channel's watermark
	// (more than the lateness bound behind the channel's newest message).
	Late uint64
}

// ContinuityStats returns the server's continuity counters.
func (s *Server) ContinuityStats() ContinuityStats {
	return ContinuityStats{Gaps: s.hub.gaps.Load(), Broken: s.hub.broken.Load(), Late: s.hub.late.Load()}
}
