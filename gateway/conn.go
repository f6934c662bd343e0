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
	"time"

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
// Exactly one goroutine writes to the socket at a time.
type conn struct {
	srv    *Server
	id     uint64
	ws     *websocket.Conn
	nc     net.Conn        // the socket, written directly with writev
	rc     syscall.RawConn // nc's file descriptor, for non-blocking writes; nil if unavailable
	format codec.Format
	access codec.Access
	remote string // the client's address, for logs

	lastRead atomic.Int64 // Unix nanoseconds of the last frame read
	// writeSince is when the write in progress began (Unix nanoseconds), 0
	// when none: the server's watchdog closes a connection stuck in one
	// write for WriteTimeout. (A deadline set before every write cost 9% of
	// the edge's CPU at the fan-out knee.)
	writeSince atomic.Int64

	// Owned by the reader goroutine.
	attached  map[string]codec.AttachOptions
	order     publishOrder // refusals not yet retried, per channel
	errCount  int
	errWindow time.Time

	writers sync.WaitGroup // the blocking writer goroutine, while one runs

	mu       sync.Mutex // guards the fields below
	queue    [][]byte   // complete WebSocket frames waiting to be written
	spare    [][]byte   // the previous batch's slice, reused
	queued   int        // bytes in queue
	writing  bool       // a flusher or a blocking writer owns writing
	closing  bool       // no more frames accepted; the socket closes once queue is written
	sockDone bool       // the socket has been closed
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

// enqueue queues one complete frame for writing; the bytes are shared and
// never modified. It never blocks. A connection whose queue would exceed
// SendQueueBytes is disconnected as a slow consumer.
func (c *conn) enqueue(frame []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	if c.queued+len(frame) > c.srv.cfg.SendQueueBytes {
		c.srv.stats.slowConsumers.Add(1)
		c.disconnectLocked(codec.Errorf(codec.CodeSlowConsumer, "send queue overflowed (%d bytes waiting)", c.queued), true, true)
		return
	}
	c.pushLocked(frame)
}

// disconnectLocked queues a disconnect frame and a close frame, after which
// the writer closes the socket. With drop, frames still queued are discarded
// first (a slow consumer would never get to the disconnect otherwise).
func (c *conn) disconnectLocked(reason *codec.Error, reconnect, drop bool) {
	if c.closing {
		return
	}
	if drop {
		clear(c.queue)
		c.queue, c.queued = c.queue[:0], 0
	}
	c.pushLocked(c.encode(&codec.Frame{Type: codec.FrameDisconnect, Err: reason, Reconnect: reconnect}))
	c.pushLocked(closeFrame(int(reason.Code), reason.Code.String()))
	c.closing = true
	c.log(slog.LevelInfo, "disconnecting client", "code", int(reason.Code), "reason", reason.Message)
}

// disconnect ends the connection with a reason the client is told.
func (c *conn) disconnect(reason *codec.Error, reconnect bool) {
	c.mu.Lock()
	c.disconnectLocked(reason, reconnect, false)
	c.mu.Unlock()
}

// finish is called by the reader when it stops: it lets the writer flush
// what is queued (a close echo, a disconnect), waits for it, and releases the
// connection's subscriptions.
func (c *conn) finish() {
	c.mu.Lock()
	c.closing = true
	if !c.writing {
		c.closeSocketLocked()
	}
	c.mu.Unlock()
	c.writers.Wait()
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

// send queues one frame for this connection only.
func (c *conn) send(fr *codec.Frame) { c.enqueue(c.encode(fr)) }

// readLoop reads and handles client frames until the connection ends.
func (c *conn) readLoop() {
	for {
		_, r, err := c.ws.NextReader()
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
			if tooBig {
				c.refuse(codec.FrameInvalid, 0, "", codec.Errorf(codec.CodeFrameTooLarge, "frame exceeds %d bytes", c.srv.cfg.MaxFrameSize))
			} else {
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
