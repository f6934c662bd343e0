package gateway

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"github.com/feedgate/feedgate/codec"
)

// These tests drive one connection's write path over net.Pipe inside a
// synctest bubble. A pipe has no buffer: a write blocks until the other end
// reads, so a peer that does not read is a client whose socket is full, and
// synctest.Wait says when every goroutine (flushers, writer) is blocked.
// Without a raw file descriptor the flusher treats every batch as not fitting
// the socket, so the blocking writer is what these tests exercise.

// mustPipeConn returns a connection whose socket is one end of a pipe, the
// pipe's other end (the client), and its server, whose flushers run once
// start is called. It must be called inside a bubble.
func mustPipeConn(t *testing.T, cfg Config) (srv *Server, c *conn, client net.Conn, start func()) {
	t.Helper()
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = time.Hour // nothing in these tests ends by a write timeout unless it says so
	}
	if cfg.SendQueueBytes == 0 {
		cfg.SendQueueBytes = 1 << 20
	}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Now = time.Now
	srv = &Server{
		cfg:      cfg,
		hub:      newHub(10, time.Minute, time.Now, func(*codec.Message, codec.Format, error) {}),
		flushers: newFlushers(),
	}
	client, server := net.Pipe()
	c = &conn{srv: srv, id: 1, nc: server, format: codec.FormatJSON, attached: map[string]codec.AttachOptions{}}
	stop := make(chan struct{})
	t.Cleanup(func() {
		client.Close() // fails a write still blocked, if any
		close(stop)
	})
	start = func() {
		for _, f := range srv.flushers {
			go f.run(stop)
		}
	}
	return srv, c, client, start
}

// textFrame is a server text frame with n bytes of payload.
func textFrame(n int, fill byte) []byte {
	return appendFrame(nil, opText, bytes.Repeat([]byte{fill}, n))
}

// readFrames reads n server frames from r and returns their payloads.
func readFrames(t *testing.T, r *bufio.Reader, n int) [][]byte {
	t.Helper()
	var out [][]byte
	for range n {
		var h [2]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			t.Fatalf("frame %d: %v", len(out), err)
		}
		size := uint64(h[1] & 0x7f)
		switch size {
		case 126:
			var b [2]byte
			io.ReadFull(r, b[:])
			size = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			io.ReadFull(r, b[:])
			size = binary.BigEndian.Uint64(b[:])
		}
		p := make([]byte, size)
		if _, err := io.ReadFull(r, p); err != nil {
			t.Fatalf("frame %d: %v", len(out), err)
		}
		out = append(out, p)
	}
	return out
}

// TestWriterEndsWithReader: the reader ends (the client sent Close or
// half-closed) while a flusher holds the connection's writing and has not
// yet found the socket full. The flusher must then close the socket rather
// than start a blocking writer that nothing would ever end, and finish must
// wait for that.
func TestWriterEndsWithReader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, c, _, start := mustPipeConn(t, Config{})
		c.enqueue(textFrame(1000, 'm')) // scheduled on a flusher that does not run yet

		finished := make(chan struct{})
		go func() {
			c.finish()
			close(finished)
		}()
		synctest.Wait() // finish has marked the connection closing, and waits or returned

		start() // the flusher meets a full socket: nobody reads the pipe
		synctest.Wait()

		c.mu.Lock()
		sockDone := c.sockDone
		c.mu.Unlock()
		if !sockDone {
			t.Fatal("the reader has ended but the socket is still open (a writer outlives the connection)")
		}
		select {
		case <-finished:
		default:
			t.Fatal("finish has not returned although the socket is closed")
		}
	})
}

// TestQueueBoundCountsBytesBeingWritten: bytes count against SendQueueBytes
// until their write returns, not only until a writer takes them.
func TestQueueBoundCountsBytesBeingWritten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const frames = 10
		f := textFrame(996, 'm') // 1000 bytes with its header
		srv, c, _, start := mustPipeConn(t, Config{SendQueueBytes: frames * len(f)})
		start()
		for range frames {
			c.enqueue(f) // exactly the bound
		}
		synctest.Wait() // the writer holds them, blocked: the client reads nothing
		if got := srv.Stats().SlowConsumers; got != 0 {
			t.Fatalf("dropped at the bound: %d", got)
		}
		c.enqueue(f) // one frame over the bound
		if got := srv.Stats().SlowConsumers; got != 1 {
			t.Fatalf("slow consumers %d, want 1: the bytes being written were not counted", got)
		}
	})
}

// TestControlFramesOvertakeQueuedMessages: an ack, an error, a heartbeat
// and a nack queued behind a long message queue are written before the
// messages that are still waiting (after the frames a blocked write already
// holds), and in the order they were queued; an attached keeps its place.
func TestControlFramesOvertakeQueuedMessages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, c, client, start := mustPipeConn(t, Config{})
		start()
		const n = 100
		msg := textFrame(4000, 'm')
		for range n {
			c.enqueue(msg) // 400 KB
		}
		synctest.Wait() // the writer is blocked on the first of them
		c.send(&codec.Frame{Type: codec.FrameAck, Ref: 7, Channel: "x", Msg: codec.Message{ID: "a"}})
		c.send(&codec.Frame{Type: codec.FrameError, Ref: 8, Err: codec.Errorf(codec.CodeBadRequest, "no")})
		c.enqueueCtrl(appendFrame(nil, opText, []byte(`{"type":"heartbeat","time":1}`))) // as Server.heartbeats does
		c.send(&codec.Frame{Type: codec.FrameNack, Ref: 9, Channel: "x", Err: codec.Errorf(codec.CodeBackboneUnavailable, "later")})
		// attached keeps its place (what precedes it belongs to the
		// channel's previous attachment): it comes after every message.
		c.send(&codec.Frame{Type: codec.FrameAttached, Ref: 10, Channel: "y", Continuity: codec.ContinuityFresh, Pos: "1."})
		want := []string{`"ref":7`, `"ref":8`, `"heartbeat"`, `"ref":9`}

		got := readFrames(t, bufio.NewReader(client), n+len(want)+1)
		if last := got[len(got)-1]; !bytes.Contains(last, []byte(`"ref":10`)) {
			t.Fatalf("last frame is %s, want the attached (ref 10) behind every message", last)
		}
		got = got[:len(got)-1]
		var ctrl []int
		for i, p := range got {
			if p[0] != 'm' {
				ctrl = append(ctrl, i)
			}
		}
		if len(ctrl) != len(want) {
			t.Fatalf("control frames at %v, want %d of them", ctrl, len(want))
		}
		// One blocked write holds at most 64 KiB of messages (17 of these).
		if ctrl[0] > 17 {
			t.Fatalf("first control frame is frame %d of %d: it waited behind the message queue", ctrl[0], len(got))
		}
		for i, want := range want {
			if p := got[ctrl[i]]; !bytes.Contains(p, []byte(want)) || ctrl[i] != ctrl[0]+i {
				t.Fatalf("control frame %d at %d is %s, want %s right after the previous one", i, ctrl[i], p, want)
			}
		}
	})
}

// TestOrderedRepliesKeepTheirPlace: detached promises that nothing of its
// channel follows it, so it is written after the messages queued before it;
// and replies after it (an attached) do not overtake it.
func TestOrderedRepliesKeepTheirPlace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, c, client, start := mustPipeConn(t, Config{})
		start()
		const n = 40
		msg := textFrame(4000, 'm')
		for range n {
			c.enqueue(msg)
		}
		synctest.Wait()
		c.send(&codec.Frame{Type: codec.FrameDetached, Ref: 1, Channel: "x"})
		c.send(&codec.Frame{Type: codec.FrameAttached, Ref: 2, Channel: "x", Continuity: codec.ContinuityFresh, Pos: "1."})
		c.enqueue(msg)
		got := readFrames(t, bufio.NewReader(client), n+3)
		for i := range n {
			if got[i][0] != 'm' {
				t.Fatalf("frame %d is %s, want a message", i, got[i])
			}
		}
		if !bytes.Contains(got[n], []byte(`"detached"`)) || !bytes.Contains(got[n+1], []byte(`"attached"`)) || got[n+2][0] != 'm' {
			t.Fatalf("after the messages: %s, %s, %.10s; want detached, attached, message", got[n], got[n+1], got[n+2])
		}
	})
}

// TestBlockedWriterEndsWithReader: the reader ends while a writer is blocked
// in a write to a client that does not read: the write is abandoned at once,
// not at its deadline.
func TestBlockedWriterEndsWithReader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, c, _, start := mustPipeConn(t, Config{WriteTimeout: time.Hour})
		start()
		c.enqueue(textFrame(1000, 'm'))
		synctest.Wait() // the writer is blocked: nobody reads the pipe
		began := time.Now()
		c.finish()
		if d := time.Since(began); d != 0 {
			t.Fatalf("finish took %v (of the bubble's clock): it waited for the write deadline", d)
		}
		c.mu.Lock()
		sockDone := c.sockDone
		c.mu.Unlock()
		if st := srv.Stats(); !sockDone || st.Ends[EndClientClosed] != 1 || st.Dropped[EndClientClosed] != 1 {
			t.Fatalf("socket closed %v, ends %v, dropped %v: want closed, one client_closed end and its frame dropped", sockDone, st.Ends, st.Dropped)
		}
	})
}

// TestBlockedWriteTimesOut: a write that makes no progress for WriteTimeout
// ends the connection, and the reader with it (the socket is closed).
func TestBlockedWriteTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, c, _, start := mustPipeConn(t, Config{WriteTimeout: 10 * time.Second})
		start()
		c.enqueue(textFrame(1000, 'm'))
		synctest.Wait()
		time.Sleep(10*time.Second - time.Nanosecond)
		synctest.Wait()
		if st := srv.Stats(); st.WriteTimeouts != 0 {
			t.Fatalf("timed out before WriteTimeout: %v", st.Ends)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		c.mu.Lock()
		sockDone := c.sockDone
		c.mu.Unlock()
		if st := srv.Stats(); !sockDone || st.WriteTimeouts != 1 || st.Dropped[EndWriteTimeout] != 1 {
			t.Fatalf("socket closed %v, ends %v, dropped %v: want closed, one write_timeout end and its frame dropped", sockDone, st.Ends, st.Dropped)
		}
		c.finish() // the reader, failing on the closed socket
	})
}

// TestReplayAllowance: a replay's frames are admitted beyond
// SendQueueBytes, within the replays' allowance; live frames behind it are
// still bounded by SendQueueBytes on top of the replay; once the replay has
// been written, its allowance is given back and the bound is
// SendQueueBytes again.
func TestReplayAllowance(t *testing.T) {
	f := textFrame(996, 'm') // 1000 bytes with its header
	cfg := Config{SendQueueBytes: 10 * len(f), HistorySize: 100, MaxFrameSize: len(f)}
	t.Run("live traffic behind a replay that is not read", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			srv, c, _, start := mustPipeConn(t, cfg)
			start()
			for range 50 {
				c.enqueueReplay(f) // 5 × SendQueueBytes
			}
			for range 10 {
				c.enqueue(f) // SendQueueBytes of live frames on top
			}
			synctest.Wait()
			if got := srv.Stats().SlowConsumers; got != 0 {
				t.Fatalf("dropped within the bound: %d", got)
			}
			c.enqueue(f)
			if got := srv.Stats().SlowConsumers; got != 1 {
				t.Fatalf("slow consumers %d, want 1: live frames past SendQueueBytes on top of the replay", got)
			}
		})
	})
	t.Run("the allowance is given back once the replay is written", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			srv, c, client, start := mustPipeConn(t, cfg)
			start()
			heartbeat := appendFrame(nil, opText, []byte(`{"type":"heartbeat","time":1}`))
			for i := range 50 {
				c.enqueueReplay(f)
				if i%7 == 0 {
					c.enqueueCtrl(heartbeat) // control frames jump the queue
				}
			}
			c.mu.Lock()
			if c.extra != 50*len(f) {
				t.Errorf("allowance in use %d, want %d", c.extra, 50*len(f))
			}
			c.mu.Unlock()
			readFrames(t, bufio.NewReader(client), 50+8)
			synctest.Wait()
			c.mu.Lock()
			queued, extra, spans, sent, enq := c.queued, c.extra, len(c.replays), c.sent, c.enq
			c.mu.Unlock()
			if queued != 0 || extra != 0 || spans != 0 || sent != enq {
				t.Fatalf("after the replay was read: queued %d, allowance in use %d in %d spans, %d of %d frames counted written", queued, extra, spans, sent, enq)
			}
			for range 10 {
				c.enqueue(f)
			}
			synctest.Wait()
			if got := srv.Stats().SlowConsumers; got != 0 {
				t.Fatalf("dropped within the bound: %d", got)
			}
			c.enqueue(f)
			if got := srv.Stats().SlowConsumers; got != 1 {
				t.Fatalf("slow consumers %d, want 1: the replay's allowance outlived it", got)
			}
		})
	})
}

// TestReplayAllowanceOverPartialWrites: over a real socket with small
// buffers, where writes end within frames and control frames begun are
// requeued at the queue's front, every replay's allowance is given back
// exactly once everything has been read.
func TestReplayAllowanceOverPartialWrites(t *testing.T) {
	cfg := Config{SendQueueBytes: 64 << 10, HistorySize: 1000, MaxFrameSize: 4 << 10, WriteTimeout: time.Minute,
		Logger: slog.New(slog.DiscardHandler), Now: time.Now}
	srv := &Server{cfg: cfg, flushers: newFlushers()}
	stop := make(chan struct{})
	defer close(stop)
	for _, f := range srv.flushers {
		go f.run(stop)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cl, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	tc := sc.(*net.TCPConn)
	_ = tc.SetWriteBuffer(4096)
	rc, err := tc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	c := &conn{srv: srv, id: 1, nc: tc, rc: rc, format: codec.FormatJSON, attached: map[string]codec.AttachOptions{}}
	defer func() {
		c.mu.Lock()
		c.endLocked(EndClientClosed)
		c.closeSocketLocked()
		c.mu.Unlock()
	}()

	var total int64
	read := make(chan int64, 1)
	go func() {
		n, _ := io.Copy(io.Discard, cl)
		read <- n
	}()
	frame := textFrame(1500, 'r')
	ctl := appendFrame(nil, opText, []byte(`{"type":"ack","ref":1}`))
	live := textFrame(100, 'l') // 280 of them with the control frames: under SendQueueBytes, even if none is written meanwhile
	for round := range 20 {
		for i := range 40 {
			c.enqueueReplay(frame)
			total += int64(len(frame))
			if i%5 == 0 {
				c.enqueueCtrl(ctl)
				total += int64(len(ctl))
			}
			if i%3 == 0 {
				c.enqueue(live)
				total += int64(len(live))
			}
		}
		if round%4 == 0 {
			time.Sleep(time.Millisecond) // let writes end part way, not a wait for a condition
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c.mu.Lock()
		queued, extra, spans, sent, enq, closing := c.queued, c.extra, len(c.replays), c.sent, c.enq, c.closing
		c.mu.Unlock()
		if closing {
			t.Fatalf("the connection ended (%v): a fast reader of replays was dropped", c.reason)
		}
		if queued == 0 && extra == 0 && spans == 0 && sent == enq {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("queued %d, allowance in use %d in %d spans, %d of %d frames counted written\n%s", queued, extra, spans, sent, enq, buf)
		}
		time.Sleep(time.Millisecond)
	}
	cl.(*net.TCPConn).CloseWrite()
	c.mu.Lock()
	c.endLocked(EndClientClosed)
	c.closeSocketLocked()
	c.mu.Unlock()
	if n := <-read; n != total {
		t.Fatalf("client read %d bytes, %d queued", n, total)
	}
}
