package client

import "github.com/feedgate/feedgate/codec"

// handleFrame routes the frames of connection gen that concern
// subscriptions; it runs on the connection's read loop and never blocks.
// It consumes (returns true for) messages and continuity frames; the
// answers to attaches are noted here in stream order, then go on to the
// request that waits for them.
func (s *Session) handleFrame(gen uint64, fr *codec.Frame) bool {
	s.onAuthFrame(fr)
	switch fr.Type {
	case codec.FrameAck, codec.FrameNack:
		s.publishReply(gen, fr)
	case codec.FrameMessage:
		if sub := s.subscription(fr.Channel); sub != nil {
			fr.Msg.Channel = fr.Channel
			sub.onMessage(gen, Message{Message: fr.Msg, Pos: fr.Pos})
		}
		return true
	case codec.FrameAttached:
		if sub := s.subscription(fr.Channel); sub != nil {
			sub.onAttached(gen, fr)
		}
	case codec.FrameError:
		if sub := s.subscription(fr.Channel); sub != nil && fr.Ref != 0 {
			sub.onRefused(gen, fr.Ref)
		}
	case codec.FrameContinuity:
		// {"type":"continuity","channel":c,"continuity":"lost","pos":p}:
		// messages of channel c were lost on the edge and could not be
		// recovered; the stream goes on from p (docs/protocol.md §5.9).
		s.continuityFrame(gen, fr)
		return true
	}
	return false
}

// continuityFrame surfaces a mid-stream continuity frame to the channel's
// subscription, exactly like a lost continuity on a re-attach.
func (s *Session) continuityFrame(gen uint64, fr *codec.Frame) {
	if sub := s.subscription(fr.Channel); sub != nil && fr.Continuity != "" {
		sub.onLost(gen, fr.Continuity, fr.Pos)
	}
}

func (s *Session) subscription(channel string) *Subscription {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subs[channel]
}

// deltaFailed handles a delta frame of connection gen that did not apply:
// the message is not shown; the subscription drops what follows and
// resyncs, resuming after its last buffered message, as after an overflow.
func (s *Session) deltaFailed(gen uint64, channel string, err error) {
	if sub := s.subscription(channel); sub != nil {
		s.o.Logger.Warn("session: delta frame did not apply; resyncing", "channel", channel, "err", err)
		sub.onDeltaError(gen)
	}
}
