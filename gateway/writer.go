package gateway

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Writing, measured on the fan-out path (bench/, 5,000 subscribers on one
// channel): a goroutine started per flush spent 10% of the edge's CPU
// creating and scheduling goroutines and 9% setting write deadlines, beside
// the writev itself. Flushers write instead: a few long-lived goroutines that
// take connections with something queued and write all of it in one
// non-blocking writev each, with no deadline. Everything queued for a
// connection while it waits goes out in the same write, so under load many
// messages share one syscall. A socket that is full (a slow reader) is handed
// to a goroutine of its own, writeLoop, that blocks until the client reads,
// with a write deadline of WriteTimeout on each write: only that rare path
// pays for deadlines.
//
// A connection's reader, writer and socket end together. The writing role
// (writing, held by a flusher or by writeLoop) is counted in conn.writer,
// which finish waits for. Once the reader has ended (the client sent Close,
// half-closed or reset), nothing more is written that would wait for the
// client: a flusher that finds the socket full closes it instead of starting
// writeLoop, and a writeLoop blocked in a write is woken by a deadline in the
// past. So no writer outlives its connection, and every blocked write ends
// within WriteTimeout, or sooner during a drain (Server.drain).
//
// Queues: control frames (replies, heartbeats, pongs) go to ctrl and are
// written before the messages waiting in queue, at the next frame boundary;
// a blocked writer holds at most writeChunk bytes of messages, so a control
// frame waits behind that much at most, not behind the whole queue. Frames
// whose promise is their place among the messages (detached: nothing of its
// channel follows it; disconnect and close: they are the last) are queued
// with the messages; while one of them is waiting (ordered), control frames
// queue behind it too, so replies keep their order. ordered clears when the
// writer finds nothing left to write: a connection whose queue never empties
// after a detach keeps its replies in line with its messages until it does.

// writeChunk bounds the message bytes one blocking write takes, so that
// control frames queued meanwhile wait behind that much at most. 64 KiB is
// a few kernel socket buffers: large enough that the chunking costs no
// throughput to a slow but reading client.
const writeChunk = 64 << 10

// aLongTimeAgo is a deadline in the past: setting it wakes a blocked write.
var aLongTimeAgo = time.Unix(1, 0)

// iovMax is the most buffers one writev takes (Linux IOV_MAX).
const iovMax = 1024

// flusher writes the queues of scheduled connections.
type flusher struct {
	mu    sync.Mutex // guards ready
	ready []*conn
	wake  chan struct{}
}

func newFlushers() []*flusher {
	fs := make([]*flusher, runtime.GOMAXPROCS(0))
	for i := range fs {
		fs[i] = &flusher{wake: make(chan struct{}, 1)}
	}
	return fs
}

func (f *flusher) schedule(c *conn) {
	f.mu.Lock()
	f.ready = append(f.ready, c)
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// run flushes scheduled connections until stop is closed.
func (f *flusher) run(stop <-chan struct{}) {
	var batch []*conn
	for {
		select {
		case <-f.wake:
		case <-stop:
			return
		}
		for {
			f.mu.Lock()
			batch, f.ready = f.ready, batch[:0]
			f.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			for _, c := range batch {
				c.flush(f)
			}
			clear(batch)
		}
	}
}

// scheduleLocked makes sure someone will write what is queued.
func (c *conn) scheduleLocked() {
	if !c.writing {
		c.writing = true
		c.writer.Add(1)
		c.srv.flushers[c.id%uint64(len(c.srv.flushers))].schedule(c)
	}
}

// releaseLocked gives up the writing role, and closes the socket if the
// connection is closing.
func (c *conn) releaseLocked() {
	c.writing, c.blocking, c.ordered = false, false, false
	c.writer.Done()
	if c.closing {
		c.closeSocketLocked()
	}
}

// takeLocked takes frames for the writer, in the order they must be written:
// the tail of a frame already partly written, then every control frame, then
// the queued frames (all of them, or with limit > 0 at least one and about
// limit bytes). h and k say how many of the batch are that tail (0 or 1)
// and control frames; size is the batch's bytes. It returns nil when there
// is nothing to write or the socket is closed.
func (c *conn) takeLocked(limit int) (b [][]byte, h, k, size int) {
	if c.sockDone || (len(c.ctrl) == 0 && len(c.queue) == 0) {
		return nil, 0, 0, 0
	}
	if limit <= 0 && len(c.ctrl) == 0 && !c.partial {
		// Everything queued is the batch: nothing else is being written,
		// so its size is queued.
		b = c.queue
		c.queue, c.spare = c.spare[:0], nil
		return b, 0, 0, c.queued
	}
	b = c.spare[:0]
	c.spare = nil
	q := c.queue
	i := 0
	if c.partial {
		b = append(b, q[0])
		size += len(q[0])
		i, h, c.partial = 1, 1, false
	}
	for _, f := range c.ctrl {
		size += len(f)
	}
	b = append(b, c.ctrl...)
	k = len(c.ctrl)
	clear(c.ctrl)
	c.ctrl = c.ctrl[:0]
	j, taken := i, 0
	for j < len(q) && (limit <= 0 || taken < limit) {
		taken += len(q[j])
		j++
	}
	b = append(b, q[i:j]...)
	size += taken
	clear(q[:j])
	if j == len(q) {
		c.queue = q[:0]
	} else {
		c.queue = q[j:]
	}
	return b, h, k, size
}

// recycleLocked keeps a written batch's slice for the next one.
func (c *conn) recycleLocked(b [][]byte) {
	clear(b)
	if cap(b) > cap(c.spare) {
		c.spare = b[:0]
	}
}

// requeueLocked puts back the part of batch b (taken with h and k) that a
// write did not take: done buffers were written whole, and the next one in
// part if partial. Each frame goes back where it came from, ahead of what
// was queued meanwhile; a frame begun goes first.
func (c *conn) requeueLocked(b [][]byte, h, k, done int, partial bool) {
	i := done
	front := make([][]byte, 0, len(b)-done+len(c.queue))
	if i < h || partial {
		front = append(front, b[i])
		c.partial = true
		if i >= h && i < h+k {
			// A control frame begun goes to the queue's front: it counts
			// as one of the queue's frames once written (sent).
			c.sent--
		}
		i++
	}
	if i < h+k {
		ctl := make([][]byte, 0, h+k-i+len(c.ctrl))
		c.ctrl = append(append(ctl, b[i:h+k]...), c.ctrl...)
		i = h + k
	}
	c.queue = append(append(front, b[i:]...), c.queue...)
}

// flush writes what is queued without blocking. Called by flusher f.
func (c *conn) flush(f *flusher) {
	c.mu.Lock()
	b, h, k, size := c.takeLocked(0)
	if b == nil {
		c.releaseLocked()
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	n, done, partial, err := c.tryWrite(b)

	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err != nil:
		c.queued -= size
		c.endLocked(EndWriteError)
		c.srv.stats.drop(c.reason, len(b)-done)
		c.recycleLocked(b)
		c.closeSocketLocked()
		c.releaseLocked()
	case done < len(b):
		// The socket is full: what is left goes first, written by a
		// goroutine that waits for the client to read; unless the client
		// has gone (the reader ended), which it would wait for in vain.
		c.queued -= n
		whole := max(0, done-(h+k)) // queue frames written whole
		if h == 1 && done > 0 {
			whole++
		}
		c.wroteLocked(whole)
		c.requeueLocked(b, h, k, done, partial)
		c.recycleLocked(b)
		if c.readDone {
			c.closeSocketLocked()
			c.releaseLocked()
			return
		}
		c.blocking = true
		go c.writeLoop()
	case len(c.queue) > 0 || len(c.ctrl) > 0:
		// More arrived meanwhile: write it on a later round, after the
		// other connections waiting on this flusher.
		c.queued -= size
		c.wroteLocked(len(b) - k)
		c.recycleLocked(b)
		f.schedule(c)
	default:
		c.queued -= size
		c.wroteLocked(len(b) - k)
		c.recycleLocked(b)
		c.releaseLocked()
	}
}

// tryWrite writes b with non-blocking writevs until all of it is written or
// the socket is full. It returns the bytes written, how many buffers were
// written whole, and whether the next one was written in part (it is then
// resliced in place to its unwritten tail; the frame bytes themselves are
// shared and never modified). Without a raw file descriptor it writes
// nothing.
func (c *conn) tryWrite(b [][]byte) (n, done int, partial bool, err error) {
	if c.rc == nil {
		return 0, 0, false, nil
	}
	for done < len(b) {
		chunk := b[done:min(len(b), done+iovMax)]
		want := 0
		for _, x := range chunk {
			want += len(x)
		}
		var w int
		var werr error
		if err := c.rc.Write(func(fd uintptr) bool {
			w, werr = unix.Writev(int(fd), chunk)
			return true // never wait here: a full socket goes to writeLoop
		}); err != nil {
			return n, done, partial, err
		}
		switch {
		case errors.Is(werr, unix.EINTR):
			continue
		case errors.Is(werr, unix.EAGAIN):
			return n, done, partial, nil
		case werr != nil:
			return n, done, partial, werr
		}
		n += w
		for left := w; left > 0; {
			if left >= len(b[done]) {
				left -= len(b[done])
				done++
				partial = false
			} else {
				b[done] = b[done][left:]
				left = 0
				partial = true
			}
		}
		if w < want {
			return n, done, partial, nil
		}
	}
	return n, done, partial, nil
}

// writeLoop writes with blocking writes until nothing is queued: it runs
// only for a connection whose socket was full. Each write has a deadline of
// WriteTimeout; a write that makes no progress for that long ends the
// connection. It writes control frames first and at most writeChunk bytes
// of messages per write.
func (c *conn) writeLoop() {
	for {
		c.mu.Lock()
		b, _, k, size := c.takeLocked(writeChunk)
		if b == nil || c.readDone {
			if b != nil {
				// The client has gone: what it did not take is dropped.
				c.queued -= size
				c.srv.stats.drop(c.reason, len(b))
				c.recycleLocked(b)
			}
			_ = c.nc.SetWriteDeadline(time.Time{}) // back to non-blocking writes, which must not see it
			c.releaseLocked()
			c.mu.Unlock()
			return
		}
		// The deadline is for the runtime's poller, which runs on the real
		// clock (or synctest's), not on Config.Now. A drain may bound it
		// sooner (Server.drain).
		dl := time.Now().Add(c.srv.cfg.WriteTimeout).UnixNano()
		if lb := c.srv.leaveBy.Load(); lb != 0 {
			dl = min(dl, lb)
		}
		c.deadline = dl
		_ = c.nc.SetWriteDeadline(time.Unix(0, dl))
		c.mu.Unlock()

		bufs := net.Buffers(b)
		_, err := bufs.WriteTo(c.nc)

		c.mu.Lock()
		c.queued -= size // written, or abandoned below
		if err != nil {
			why := EndWriteError
			if errors.Is(err, os.ErrDeadlineExceeded) {
				why = EndWriteTimeout
			}
			if !c.closing && why == EndWriteTimeout {
				c.log(slog.LevelInfo, "dropping client: a write made no progress", "for", c.srv.cfg.WriteTimeout)
			}
			c.endLocked(why)
			c.srv.stats.drop(c.reason, len(bufs))
			c.recycleLocked(b)
			c.closeSocketLocked()
			c.releaseLocked()
			c.mu.Unlock()
			return
		}
		c.wroteLocked(len(b) - k)
		c.recycleLocked(b)
		c.mu.Unlock()
	}
}

// capDeadline brings the blocked writer's deadline forward to lb (Unix
// nanoseconds), if it is later.
func (c *conn) capDeadline(lb int64) {
	c.mu.Lock()
	if c.blocking && c.deadline > lb {
		c.deadline = lb
		_ = c.nc.SetWriteDeadline(time.Unix(0, lb))
	}
	c.mu.Unlock()
}

// closeSocketLocked closes the socket; frames still queued are dropped. The
// connection must be closing (endLocked).
func (c *conn) closeSocketLocked() {
	if c.sockDone {
		return
	}
	c.sockDone = true
	c.dropQueuedLocked(0)
	_ = c.nc.Close()
}

// dropQueuedLocked drops the queued frames, except the first keep of queue
// (a frame begun must be finished before anything else is written). They
// count as dropped for the connection's end reason.
func (c *conn) dropQueuedLocked(keep int) {
	keep = min(keep, len(c.queue))
	c.srv.stats.drop(c.reason, len(c.ctrl)+len(c.queue)-keep)
	for _, f := range c.ctrl {
		c.queued -= len(f)
	}
	for _, f := range c.queue[keep:] {
		c.queued -= len(f)
	}
	clear(c.ctrl)
	clear(c.queue[keep:])
	c.ctrl, c.queue = c.ctrl[:0], c.queue[:keep]
	// The connection is closing: no frame is taken any more, and the
	// replays' allowance is moot.
	c.replays, c.extra = nil, 0
}
