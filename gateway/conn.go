package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"unicode/utf8"

	"github.com/fasthttp/websocket"

	"github.com/feedgate/feedgate/codec"
)

// conn is one client WebSocket connection.
//
// Goroutines: a reader for the whole life of the connection, and no writer
// of its own: when the queue goes from empty to non-empty the connection is
// scheduled on one of the server's flushers, which writes everything queued
// in one non-blocking writev. Only a connection whose socket is full gets a
// goroutine of its own, which blocks until the client reads (see writer.go).
// Exactly one goroutine writes to the socket at a time, and the reader's end
// ends the writer and closes the socket (finish).
type conn struct {
	srv    *Server
	format codec.Format
	// deflate: permessage-deflate was negotiated; message frames go out
	// compressed (replies and control frames do not need to).
	deflate bool

	// mu and what the fan-out touches for each delivery (closing, queued,
	// queue, writing) come first, in the struct's first cache line:
	// BenchmarkChannelDeliver is bound by cache misses on connections.
	mu       sync.Mutex // guards the fields up to the blank line
	writing  bool       // a flusher or a blocking writer owns writing
	closing  bool       // no more frames accepted; the socket closes once queue is written
	partial  bool       // queue[0] is the rest of a frame begun: nothing may be written before it
	ordered  bool       // a frame that keeps its place is queued or being written: control frames queue behind it
	blocking bool       // the owner is writeLoop
	readDone bool       // the reader has ended: nothing more is written that would wait for the client
	sockDone bool       // the socket has been closed
	reason   EndReason  // why the connection ends, once closing
	// queued counts the bytes of ctrl, queue and the batch a writer holds,
	// until its write returns: what SendQueueBytes bounds, beyond the
	// replays' allowance (extra).
	queued int
	// Replays (replay.go): enq counts the frames ever appended to queue,
	// sent those of them written whole (from its front), so frame i of the
	// queue's stream is written once sent > i. replays are the spans of
	// replay frames not yet written whole, in order; extra is their bytes.
	enq, sent uint64
	replays   []replaySpan
	extra     int
	roomWait  chan struct{} // closed when replay allowance is given back, for waitReplayRoom
	// queue holds messages, and the control frames that keep their place
	// among them (see writer.go); complete WebSocket frames, except that
	// queue[0] is the tail of a frame already partly written if partial.
	queue [][]byte
	// ctrl holds control frames (replies, heartbeats, pongs): they are
	// written before the frames waiting in queue.
	ctrl     [][]byte
	spare    [][]byte // the previous batch's slice, reused
	deadline int64    // the blocking writer's write deadline (Unix nanoseconds), while blocking

	id     uint64
	ws     *websocket.Conn
	nc     net.Conn                 // the socket, written directly with writev
	rc     syscall.RawConn          // nc's file descriptor, for non-blocking writes; nil if unavailable
	access codec.Access             // the credential in force; owned by the reader goroutine
	auth   atomic.Pointer[connAuth] // the same, for the expiry checker and revocations
	remote string                   // the client's address, for logs

	principal *principal  // the key or subject limits count against; nil: the connection is its own. Owned by the reader (a renewal may change it)
	lim       *connLimits // made on first use; owned by the reader

	lastRead atomic.Int64 // Unix nanoseconds of the last frame read

	// Owned by the reader goroutine.
	attached  map[string]codec.AttachOptions
	order     publishOrder // refusals not yet retried, per channel
	errCount  int
	errWindow int64 // Unix nanoseconds: when the error budget's window began (a time.Time costs 16 bytes more)

	writer sync.WaitGroup // counts the writing role while someone holds it
}

// log logs about the connection, with its identity. No logger is kept per
// connection (a logger with formatted attributes held by every idle
// connection cost 215 B of heap each), and nothing is formatted for a level
// that is off.
func (c *conn) log(level slog.Level, msg string, args ...any) {
	l := c.srv.cfg.Logger
	if !l.Enabled(context.Background(), level) {
		return
	}
	l.Log(context.Background(), level, msg, append([]any{"conn", c.id, "remote", c.remote}, args...)...)
}

// enqueue queues one message frame for writing; the bytes are shared and
// never modified. It never blocks. A connection whose queue would exceed
// SendQueueBytes (beyond the replays in it) is disconnected as a slow
// consumer.
func (c *conn) enqueue(frame []byte) {
	c.mu.Lock()
	if c.acceptLocked(len(frame)) {
		c.appendLocked(frame)
	}
	c.mu.Unlock()
}

// appendLocked appends frame to queue, counted in queued and enq.
func (c *conn) appendLocked(frame []byte) {
	c.queue = append(c.queue, frame)
	c.queued += len(frame)
	c.enq++
	c.scheduleLocked()
}

// enqueueCtrl queues a control frame: it is written before the messages
// already waiting, unless a frame that keeps its place is waiting.
func (c *conn) enqueueCtrl(frame []byte) {
	c.mu.Lock()
	if c.acceptLocked(len(frame)) {
		c.pushCtrlLocked(frame)
	}
	c.mu.Unlock()
}

func (c *conn) pushCtrlLocked(frame []byte) {
	if c.ordered {
		c.appendLocked(frame)
		return
	}
	c.ctrl = append(c.ctrl, frame)
	c.queued += len(frame)
	c.scheduleLocked()
}

// pushOrderedLocked queues a control frame behind every frame queued before
// it: detached, disconnect, close.
func (c *conn) pushOrderedLocked(frame []byte) {
	c.ordered = true
	c.appendLocked(frame)
}

// acceptLocked reports whether a frame of n bytes may be queued. A closing
// connection takes nothing more; a frame that would overflow the queue
// disconnects the connection as a slow consumer.
func (c *conn) acceptLocked(n int) bool {
	if c.closing {
		c.srv.stats.drop(c.reason, 1)
		return false
	}
	if !c.roomLocked(n) {
		c.disconnectLocked(EndSlowConsumer, codec.Errorf(codec.CodeSlowConsumer, "send queue overflowed (%d bytes waiting)", c.queued), true, true)
		c.srv.stats.drop(EndSlowConsumer, 1)
		return false
	}
	return true
}

// endLocked marks the connection closing for reason why, unless it already
// is; it takes no frame after this.
func (c *conn) endLocked(why EndReason) {
	if !c.closing {
		c.closing, c.reason = true, why
		c.srv.stats.ends[why].Add(1)
		c.wakeRoomLocked()
	}
}

// disconnectLocked queues a disconnect frame and a close frame, after which
// the writer closes the socket. With drop, frames still queued are discarded
// first (a slow consumer would never get to the disconnect otherwise).
func (c *conn) disconnectLocked(why EndReason, reason *codec.Error, reconnect, drop bool) {
	if c.closing {
		return
	}
	c.endLocked(why)
	if drop {
		keep := 0
		if c.partial {
			keep = 1
		}
		c.dropQueuedLocked(keep)
	}
	c.pushOrderedLocked(c.encode(&codec.Frame{Type: codec.FrameDisconnect, Err: reason, Reconnect: reconnect}))
	c.pushOrderedLocked(closeFrame(int(reason.Code), reason.Code.String()))
	c.log(slog.LevelInfo, "disconnecting client", "code", int(reason.Code), "reason", reason.Message)
}

// disconnect ends the connection with a reason the client is told.
func (c *conn) disconnect(why EndReason, reason *codec.Error, reconnect bool) {
	c.mu.Lock()
	c.disconnectLocked(why, reason, reconnect, false)
	c.mu.Unlock()
}

// finish is called by the reader when it stops. The client has gone (or the
// socket was closed): what is queued is written as far as the socket takes
// it without waiting (a close echo, a disconnect), then the socket closes.
// finish waits for the writer to end, and releases the connection's
// subscriptions.
func (c *conn) finish() {
	c.mu.Lock()
	c.readDone = true
	c.endLocked(EndClientClosed)
	switch {
	case !c.writing:
		c.closeSocketLocked()
	case c.blocking:
		c.deadline = aLongTimeAgo.UnixNano()
		_ = c.nc.SetWriteDeadline(aLongTimeAgo) // wakes the blocked write
	}
	c.mu.Unlock()
	c.writer.Wait()
	for name := range c.attached {
		if ch := c.srv.hub.get(name, false); ch != nil {
			ch.remove(c)
		}
	}
	c.attached = nil
}

func (c *conn) encode(fr *codec.Frame) []byte {
	payload, err := c.format.Encode(fr)
	if err != nil {
		// Our own frames always encode; this is a bug, not client input.
		c.log(slog.LevelError, "encode frame", "type", fr.Type.String(), "err", err)
		payload, _ = c.format.Encode(&codec.Frame{Type: codec.FrameError, Ref: fr.Ref, Err: codec.Errorf(codec.CodeInternal, "internal error")})
	}
	return appendFrame(make([]byte, 0, len(payload)+10), dataOpcode(c.format), payload)
}

// send queues one control frame for this connection only. attached and
// detached keep their place behind the messages queued before them: what
// comes before attached belongs to the channel's previous attachment, what
// comes after it to the new one (a re-attach that resumes relies on that
// cut), and nothing of a channel follows its detached. Every other reply is
// written before waiting messages.
func (c *conn) send(fr *codec.Frame) {
	frame := c.encode(fr)
	if fr.Type != codec.FrameDetached && fr.Type != codec.FrameAttached {
		c.enqueueCtrl(frame)
		return
	}
	c.mu.Lock()
	if c.acceptLocked(len(frame)) {
		c.pushOrderedLocked(frame)
	}
	c.mu.Unlock()
}

// readLoop reads and handles client frames until the connection ends.
func (c *conn) readLoop() {
	for {
		mt, r, err := c.ws.NextReader()
		if err != nil {
			if !isNormalClose(err) {
				c.log(slog.LevelDebug, "read ended", "err", err)
			}
			return
		}
		c.lastRead.Store(c.srv.cfg.Now().UnixNano())
		// Read buffers are pooled, not kept per connection: most
		// connections are idle most of the time.
		bp := readBufs.Get().(*[]byte)
		buf, tooBig, err := readMessage(r, (*bp)[:0], c.srv.cfg.MaxFrameSize)
		if err == nil {
			switch {
			case tooBig:
				c.refuse(codec.FrameInvalid, 0, "", codec.Errorf(codec.CodeFrameTooLarge, "frame exceeds %d bytes", c.srv.cfg.MaxFrameSize))
			case mt == websocket.TextMessage && !utf8.Valid(buf):
				// RFC 6455 §8.1: an endpoint that receives a text message
				// that is not UTF-8 fails the connection, with 1007
				// (§7.4.1). Nothing more is read from it.
				c.failInvalidPayload()
				err = errInvalidPayload
			default:
				c.handle(buf)
			}
		}
		if cap(buf) <= 64<<10 {
			*bp = buf
			readBufs.Put(bp)
		}
		if err != nil {
			return
		}
	}
}

var errInvalidPayload = errors.New("text message is not valid UTF-8")

// failInvalidPayload ends the connection with close code 1007 (invalid frame
// payload data) behind what is already queued. No disconnect frame: 1007 is
// a WebSocket code, not one of the protocol's.
func (c *conn) failInvalidPayload() {
	c.mu.Lock()
	if !c.closing {
		c.endLocked(EndInvalidPayload)
		c.pushOrderedLocked(closeFrame(websocket.CloseInvalidFramePayloadData, errInvalidPayload.Error()))
		c.log(slog.LevelInfo, "closing client: invalid UTF-8 in a text message", "code", websocket.CloseInvalidFramePayloadData)
	}
	c.mu.Unlock()
}

var readBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// readMessage reads one WebSocket message into buf. If it exceeds max bytes,
// the rest is read and discarded and tooBig is set: the connection goes on.
func readMessage(r io.Reader, buf []byte, max int) (_ []byte, tooBig bool, err error) {
	for {
		if len(buf) == cap(buf) {
			if len(buf) > max {
				_, err := io.Copy(io.Discard, r)
				return buf[:0], true, err
			}
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			if len(buf) > max {
				return buf[:0], true, nil
			}
			return buf, false, nil
		}
		if err != nil {
			return buf, false, err
		}
	}
}

func isNormalClose(err error) bool {
	return websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF)
}
