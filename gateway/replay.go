package gateway

import "time"

// Replays and the send queue. An attach with rewind, or a resume, queues its
// replay at once, under the channel's lock, so that nothing is lost or
// repeated at the seam with live messages. A maximal replay (1,000 messages
// of history) is far more than SendQueueBytes (1,000 odds markets of 2 KB
// are 2 MB, the queue 1 MiB): counted against it, it ended a client that
// reads as fast as it can as a slow consumer, before it could read anything,
// and again on every resume. A replay is not falling behind: its frames are
// the history's own prepared frames (shared, not copies) and the client has
// not had the chance to read them yet.
//
// So a replay's frames are admitted under an allowance of their own, beyond
// SendQueueBytes: the bytes of replay frames not yet written, up to
// replayAllowance per connection. Live messages, and control frames, are
// still bounded by SendQueueBytes on top of what the replays hold (queued ≤
// SendQueueBytes + extra): a client that does not read its replay is ended
// as a slow consumer by the live traffic behind it, or by the write timeout.
// A replay frame beyond the allowance counts as a live one.
//
// The allowance of a replay is given back when its frames have been written
// (wroteLocked): the queue's frames are numbered in the order they are
// appended (enq), and written in that order from its front (sent), so a span
// of replay frames is written once sent reaches its end. The one frame that
// joins the queue elsewhere, a control frame begun and requeued at the front
// (requeueLocked), is not numbered, and sent is corrected for it.
//
// The bound: a connection holds at most SendQueueBytes + replayAllowance
// bytes of frames (65 MiB with the defaults), and most of the replay's are
// shared with history.

// replaySpan is a run of replay frames in the queue: its frames end before
// frame number end, and hold bytes.
type replaySpan struct {
	end   uint64
	bytes int
}

// replayAllowance is how many bytes of replay frames one connection may
// hold beyond SendQueueBytes: a history's worth of the largest messages
// (HistorySize × MaxFrameSize: 64 MiB by default), so that a rewind or a
// resume over the whole history of any channel fits, and several smaller
// ones at once (a client re-attaching its channels with resume).
func (s *Server) replayAllowance() int {
	return s.cfg.HistorySize * s.cfg.MaxFrameSize
}

// roomLocked reports whether n bytes more of live messages or control
// frames fit the queue.
func (c *conn) roomLocked(n int) bool {
	return c.queued+n <= c.srv.cfg.SendQueueBytes+c.extra
}

// enqueueReplay queues one frame of a replay: within the replays'
// allowance, whatever live traffic is queued; beyond it, like enqueue.
func (c *conn) enqueueReplay(frame []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(frame)
	if c.closing || c.extra+n > c.srv.replayAllowance() {
		if c.acceptLocked(n) {
			c.appendLocked(frame)
		}
		return
	}
	c.appendLocked(frame)
	c.extra += n
	if k := len(c.replays); k > 0 && c.replays[k-1].end == c.enq-1 {
		c.replays[k-1].end = c.enq
		c.replays[k-1].bytes += n
		return
	}
	c.replays = append(c.replays, replaySpan{end: c.enq, bytes: n})
}

// wroteLocked counts n more of the queue's frames written whole, and gives
// back the allowance of the replays written.
func (c *conn) wroteLocked(n int) {
	c.sent += uint64(n)
	i := 0
	for i < len(c.replays) && c.replays[i].end <= c.sent {
		c.extra -= c.replays[i].bytes
		i++
	}
	if i > 0 {
		n := copy(c.replays, c.replays[i:])
		c.replays = c.replays[:n]
		c.wakeRoomLocked()
	}
}

// wakeRoomLocked wakes a reader in waitReplayRoom.
func (c *conn) wakeRoomLocked() {
	if c.roomWait != nil {
		close(c.roomWait)
		c.roomWait = nil
	}
}

// waitReplayRoom holds the reader, before an attach that replays, while
// more than half the replays' allowance is taken: a client re-attaching
// many channels with rewind or resume at once (as after a reconnection)
// would otherwise queue replays beyond the allowance, which count as live
// traffic and end it as a slow consumer however fast it reads, again on
// every retry. Holding the reader slows down what the client sends, not
// what it gets. It gives up after WriteTimeout (a client that does not
// read) or when the connection closes.
func (c *conn) waitReplayRoom() {
	half := c.srv.replayAllowance() / 2
	var timeout <-chan time.Time
	for {
		c.mu.Lock()
		if c.extra <= half || c.closing {
			c.mu.Unlock()
			return
		}
		if c.roomWait == nil {
			c.roomWait = make(chan struct{})
		}
		wait := c.roomWait
		c.mu.Unlock()
		if timeout == nil {
			t := time.NewTimer(c.srv.cfg.WriteTimeout)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-wait:
		case <-timeout:
			return
		}
	}
}
