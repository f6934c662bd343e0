package gateway

import (
	"errors"
	"net"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// Writing, measured on the fan-out path (bench/, 5,000 subscribers on one
// channel): a goroutine started per flush spent 10% of the edge's CPU
// creating and scheduling goroutines and 9% setting write deadlines, beside
// the writev itself. Flushers write instead: a few long-lived goroutines that
// take connections with something queued and write all of it in one
// non-blocking writev each. Everything queued for a connection while it
// waits goes out in the same write, so under load many messages share one
// syscall. A socket that is full (a slow reader) is handed to a goroutine
// of its own that blocks until the client reads or the write watchdog gives
// up on it.

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

// pushLocked appends a frame and makes sure someone will write it.
func (c *conn) pushLocked(frame []byte) {
	c.queue = append(c.queue, frame)
	c.queued += len(frame)
	if !c.writing {
		c.writing = true
		c.srv.flushers[c.id%uint64(len(c.srv.flushers))].schedule(c)
	}
}

// flush writes what is queued without blocking. Called by flusher f.
func (c *conn) flush(f *flusher) {
	batch := c.takeBatch()
	if batch == nil {
		return
	}
	rest, err := c.tryWrite(batch)

	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err != nil:
		c.closing = true
		c.closeSocketLocked()
		c.writing = false
	case len(rest) > 0:
		// The socket is full: what is left goes first, written by a
		// goroutine that waits for the client to read.
		q := make([][]byte, 0, len(rest)+len(c.queue))
		q = append(append(q, rest...), c.queue...)
		for _, b := range rest {
			c.queued += len(b)
		}
		c.queue = q
		c.writers.Add(1)
		go c.writeLoop()
	case len(c.queue) > 0:
		// More arrived meanwhile: write it on a later round, after the
		// other connections waiting on this flusher.
		clear(batch)
		c.spare = batch[:0]
		f.schedule(c)
	default:
		clear(batch)
		c.spare = batch[:0]
		c.doneWritingLocked()
	}
}

// takeBatch takes everything queued, for the caller to write. With nothing
// to write it gives up the writing role and returns nil.
func (c *conn) takeBatch() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) == 0 || c.sockDone {
		c.doneWritingLocked()
		return nil
	}
	batch := c.queue
	c.queue, c.spare = c.spare[:0], nil
	c.queued = 0
	return batch
}

func (c *conn) doneWritingLocked() {
	c.writing = false
	if c.closing {
		c.closeSocketLocked()
	}
}

// tryWrite writes batch with non-blocking writevs and returns what did not
// fit in the socket (its first buffer possibly a frame's tail). Without a
// raw file descriptor it writes nothing and returns batch.
func (c *conn) tryWrite(batch [][]byte) (rest [][]byte, err error) {
	if c.rc == nil {
		return batch, nil
	}
	for len(batch) > 0 {
		chunk := batch[:min(len(batch), iovMax)]
		want := 0
		for _, b := range chunk {
			want += len(b)
		}
		var n int
		var werr error
		if err := c.rc.Write(func(fd uintptr) bool {
			n, werr = unix.Writev(int(fd), chunk)
			return true // never wait here: a full socket goes to writeLoop
		}); err != nil {
			return nil, err
		}
		switch {
		case errors.Is(werr, unix.EINTR):
			continue
		case errors.Is(werr, unix.EAGAIN):
			return batch, nil
		case werr != nil:
			return nil, werr
		}
		wrote := n
		for wrote > 0 {
			if wrote >= len(batch[0]) {
				wrote -= len(batch[0])
				batch = batch[1:]
			} else {
				batch[0] = batch[0][wrote:] // the frame's bytes are shared: reslice, never modify
				wrote = 0
			}
		}
		if n < want {
			return batch, nil
		}
	}
	return nil, nil
}

// writeLoop writes with blocking writes until the queue is empty: it runs
// only for a connection whose socket was full. The write watchdog closes
// the connection if one write makes no progress for WriteTimeout.
func (c *conn) writeLoop() {
	defer c.writers.Done()
	for {
		batch := c.takeBatch()
		if batch == nil {
			return
		}
		c.writeSince.Store(c.srv.cfg.Now().UnixNano())
		bufs := net.Buffers(batch)
		_, err := bufs.WriteTo(c.nc)
		c.writeSince.Store(0)
		clear(batch)

		c.mu.Lock()
		c.spare = batch[:0]
		if err != nil {
			c.closing = true
			c.writing = false
			c.closeSocketLocked()
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
	}
}

func (c *conn) closeSocketLocked() {
	if !c.sockDone {
		c.sockDone = true
		clear(c.queue)
		c.queue, c.queued = nil, 0
		_ = c.nc.Close()
	}
}
