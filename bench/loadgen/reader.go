package loadgen

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"golang.org/x/sys/unix"
)

// maxFD bounds the descriptor table: the process may hold at most 20,000
// open files here, so every descriptor it can get is below 1<<16.
const maxFD = 1 << 16

// conn is one subscriber connection, owned by the reader goroutine.
type conn struct {
	fd       int
	sub      *Sub
	carry    []byte // an incomplete frame from the previous read
	acks     int    // positive subscription replies so far
	want     int    // replies that make the subscription complete
	attached bool
	dead     bool
	start    int64 // epoll-dialled: unix ns when its dial began (0 otherwise)
	fl       *dial // cycling dial job: the dial this connection completes
}

// Reader reads every subscriber socket from one goroutine with epoll.
type Reader struct {
	t     Target
	bin   bool
	epfd  int
	conns []*conn // by descriptor
	reqs  chan func()
	stop  chan struct{}
	done  chan struct{}
	buf   []byte

	st        Stats
	hist      *hdrhistogram.Histogram
	stepStart []int64 // per channel: lower sequences belong to an earlier window

	resume bool        // track each subscriber's position per channel and resume from it on reconnect
	dt     *deltaTrack // rebuild and check delta frames (delta.go); nil when off
	cont   Continuity  // subscription answers since the start

	// The epoll dialer's state (dialer.go), owned by the loop.
	dials      []*dial // by descriptor: connections being opened
	job        *dialJob
	jobs       []*dialJob              // queued behind job
	attachHist *hdrhistogram.Histogram // dial start to completed subscription, µs, since the job began

	attached atomic.Int64 // connections whose subscription is complete
	open     atomic.Int64 // connections registered and not closed
	lastAtt  atomic.Int64 // unix ns of the latest completed subscription
}

// NewReader starts the epoll loop for subscribers of t on nChannels channels.
func NewReader(t Target, nChannels int) (*Reader, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	r := &Reader{
		t: t, bin: t.binary(), epfd: epfd,
		conns:      make([]*conn, maxFD),
		dials:      make([]*dial, maxFD),
		attachHist: NewHist(),
		reqs:       make(chan func(), 1024),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
		buf:        make([]byte, 256<<10),
		hist:       NewHist(),
		stepStart:  make([]int64, nChannels),
	}
	go r.loop()
	return r, nil
}

// EnableResume makes the reader keep, per subscriber and channel, the
// position of the last message received (our pos token; the peer's epoch and
// offset), or of the subscription reply before any message, and makes
// Connect subscribe from it: our attach with options.resume, the peer's
// subscribe with recover. Call it before Connect.
func (r *Reader) EnableResume() { r.Do(func() { r.resume = true }) }

// resuming reports whether positions are tracked. Connect reads it after
// EnableResume returned, so the Do hand-over orders the accesses.
func (r *Reader) resuming() bool {
	var on bool
	r.Do(func() { on = r.resume })
	return on
}

// Continuity returns the subscription answers counted since the start.
func (r *Reader) Continuity() Continuity {
	var c Continuity
	r.Do(func() { c = r.cont })
	return c
}

// Attached reports how many connections have completed their subscription.
func (r *Reader) Attached() int64 { return r.attached.Load() }

// Open reports how many connections are registered and open.
func (r *Reader) Open() int64 { return r.open.Load() }

// LastAttach reports when the latest subscription completed.
func (r *Reader) LastAttach() time.Time { return time.Unix(0, r.lastAtt.Load()) }

// Do runs f on the reader goroutine and waits for it.
func (r *Reader) Do(f func()) {
	done := make(chan struct{})
	select {
	case r.reqs <- func() { f(); close(done) }:
		select { // a loop that stops meanwhile may never run f
		case <-done:
		case <-r.done:
		}
	case <-r.done:
	}
}

// Take returns the current window's figures and starts a new window.
func (r *Reader) Take() Window {
	var w Window
	r.Do(func() {
		w = Window{Stats: r.st, Hist: r.hist}
		r.st, r.hist = Stats{}, NewHist()
	})
	return w
}

// Peek returns the current window's counters without resetting them.
func (r *Reader) Peek() Stats {
	var st Stats
	r.Do(func() { st = r.st })
	return st
}

// SetWindowStart makes messages with a sequence below start[ci] count as
// late from now on (they were published in an earlier window).
func (r *Reader) SetWindowStart(start []int64) {
	r.Do(func() { copy(r.stepStart, start) })
}

// Stale counts the subscriptions (subscriber and channel) whose latest
// message has a sequence below last[ci], the channel's last published one:
// with conflation, the latest message of every channel must still arrive.
func (r *Reader) Stale(last []int64) int64 {
	var n int64
	r.Do(func() {
		for _, c := range r.conns {
			if c == nil {
				continue
			}
			for i, ci := range c.sub.Channels {
				if t := c.sub.track[i]; last[ci] > 0 && (!t.seen || t.last < last[ci]) {
					n++
				}
			}
		}
	})
	return n
}

// DropAll closes every subscriber connection from the client side and
// returns how many it closed.
func (r *Reader) DropAll() int {
	n := 0
	r.Do(func() {
		for _, c := range r.conns {
			if c != nil {
				r.closeConn(c)
				n++
			}
		}
	})
	return n
}

// Close stops the loop and closes every connection.
func (r *Reader) Close() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	<-r.done
}

// add registers an open connection; rest holds bytes that arrived with the
// handshake response. The registration runs on the reader goroutine.
func (r *Reader) add(c *conn, rest []byte) {
	f := func() {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(c.fd)}
		if err := unix.EpollCtl(r.epfd, unix.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
			unix.Close(c.fd)
			r.st.Errors++
			return
		}
		r.register(c, rest, time.Now().UnixNano())
	}
	select {
	case r.reqs <- f:
	case <-r.done:
		unix.Close(c.fd)
	}
}

// register makes c, whose descriptor is in the epoll set for EPOLLIN and
// EPOLLRDHUP, one of the reader's connections and parses rest, the bytes
// that followed the handshake response. It does not keep rest.
func (r *Reader) register(c *conn, rest []byte, now int64) {
	r.conns[c.fd] = c
	c.sub.live = c
	r.open.Add(1)
	if len(rest) > 0 {
		r.consume(c, rest, now)
	}
}

func (r *Reader) loop() {
	defer close(r.done)
	events := make([]unix.EpollEvent, 1024)
	for {
		n, err := unix.EpollWait(r.epfd, events, 5)
		if err != nil && err != unix.EINTR {
			panic(fmt.Sprintf("epoll_wait: %v", err))
		}
		for i := 0; i < n; i++ {
			fd := events[i].Fd
			if c := r.conns[fd]; c != nil {
				r.readConn(c)
			} else if d := r.dials[fd]; d != nil {
				r.dialEvent(d, events[i].Events)
			}
		}
	reqs:
		for {
			select {
			case f := <-r.reqs:
				f()
			default:
				break reqs
			}
		}
		r.pump()
		select {
		case <-r.stop:
			r.abortJobs()
			for _, c := range r.conns {
				if c != nil {
					r.closeConn(c)
				}
			}
			unix.Close(r.epfd)
			return
		default:
		}
	}
}

func (r *Reader) readConn(c *conn) {
	n, err := rawRead(c.fd, r.buf)
	if err == unix.EAGAIN || err == unix.EINTR {
		return
	}
	if n <= 0 {
		r.st.Disconnects++
		r.closeConn(c)
		return
	}
	r.st.RxBytes += int64(n)
	r.consume(c, r.buf[:n], time.Now().UnixNano())
}

// consume parses every complete frame of data (after any carried bytes) and
// carries the incomplete rest to the next read.
func (r *Reader) consume(c *conn, data []byte, now int64) {
	inCarry := len(c.carry) > 0
	if inCarry {
		c.carry = append(c.carry, data...)
		data = c.carry
	}
	off := 0
	var f frame
	for !c.dead {
		k := parseFrame(data[off:], &f)
		if k == 0 {
			break
		}
		if k < 0 {
			r.st.Errors++
			r.closeConn(c)
			return
		}
		off += k
		r.onFrame(c, &f, now)
	}
	if c.dead {
		return
	}
	rest := data[off:]
	switch {
	case len(rest) == 0 && cap(c.carry) > 64<<10:
		c.carry = nil // do not pin a large buffer on an idle connection
	case len(rest) == 0:
		c.carry = c.carry[:0]
	case inCarry:
		c.carry = c.carry[:copy(c.carry, rest)]
	default:
		c.carry = append(c.carry[:0], rest...)
	}
}

func (r *Reader) onFrame(c *conn, f *frame, now int64) {
	r.st.Frames++
	switch f.op {
	case opText, opBinary, opCont:
		if r.t.Kind != Peer {
			r.onUnit(c, f.payload, now)
			return
		}
		// Centrifuge's JSON protocol may batch several replies in one frame,
		// one per line.
		p := f.payload
		for len(p) > 0 {
			line := p
			if i := bytes.IndexByte(p, '\n'); i >= 0 {
				line, p = p[:i], p[i+1:]
			} else {
				p = nil
			}
			if len(line) > 0 {
				r.onUnit(c, line, now)
			}
		}
	case opPing:
		r.write(c, appendClientFrame(nil, opPong, f.payload))
	case opClose:
		r.st.Disconnects++
		r.closeConn(c)
	}
}

func (r *Reader) onUnit(c *conn, u []byte, now int64) {
	if r.dt != nil && r.deltaUnit(c, u, now) {
		return
	}
	// A Centrifuge reply may hold recovered publications: not a message.
	if r.t.Kind != Peer || !bytes.HasPrefix(u, peerReply) {
		if s, ok := extract(u, r.bin); ok {
			if i := r.record(c, s, now); i >= 0 && r.resume {
				r.notePos(c.sub, i, u)
			}
			return
		}
	}
	r.st.Controls++
	r.control(c, u, now)
}

// record counts one delivered message and returns the index of its channel
// in the subscriber's channels, or -1 when the subscriber does not hold it.
func (r *Reader) record(c *conn, s sample, now int64) int {
	if s.ci < 0 || s.ci >= int64(len(r.stepStart)) {
		r.st.Unexpected++
		return -1
	}
	i := c.sub.index(s.ci)
	if i < 0 {
		r.st.Unexpected++
		return -1
	}
	if s.seq < r.stepStart[s.ci] {
		r.st.Late++
		return i
	}
	lat := max((now-s.ts)/1000, 1)
	r.hist.RecordValue(min(lat, r.hist.HighestTrackableValue()))
	r.st.Received++
	c.sub.track[i].observe(s.seq, &r.st)
	return i
}

// notePos keeps the position of message u, just received on the
// subscriber's channel i.
func (r *Reader) notePos(sub *Sub, i int, u []byte) {
	switch r.t.Kind {
	case Ours:
		if tok := posToken(u, r.bin); len(tok) > 0 {
			sub.setTok(i, tok)
		} else {
			r.st.Unexpected++ // a message without a position
		}
	case Peer:
		if off, ok := peerOffsetLast(u); ok {
			p := sub.posAt(i)
			p.off = max(p.off, off)
		}
	}
}

// Heartbeat replies of our protocol, per format.
var (
	heartbeatJSON = appendClientFrame(nil, opText, []byte(`{"type":"heartbeat"}`))
	heartbeatMP   = appendClientFrame(nil, opBinary, []byte("\x81\xa4type\xa9heartbeat"))
	peerPong      = appendClientFrame(nil, opText, []byte(`{}`))
)

func (r *Reader) control(c *conn, u []byte, now int64) {
	switch r.t.Kind {
	case Ours:
		attached, heartbeat, errm, nack, disc := jsonAttached, jsonHeartbeat, jsonError, jsonNack, jsonDisconnect
		hb := heartbeatJSON
		if r.bin {
			attached, heartbeat, errm, nack, disc = mpAttached, mpHeartbeat, mpError, mpNack, mpDisconnect
			hb = heartbeatMP
		}
		switch {
		case bytes.Contains(u, attached):
			r.oursAttached(c, u)
			r.ack(c, now)
		case bytes.Contains(u, heartbeat):
			r.write(c, hb)
		case bytes.Contains(u, errm), bytes.Contains(u, nack):
			r.st.Errors++
		case bytes.Contains(u, disc):
			r.st.Disconnects++
		}
	case Peer:
		switch {
		case len(u) == 2 && u[0] == '{' && u[1] == '}': // server ping
			r.write(c, peerPong)
		case bytes.HasPrefix(u, peerReply):
			if bytes.Contains(u, jsonError) {
				r.st.Errors++
			} else {
				if bytes.Contains(u, peerSubscribe) {
					r.peerSubscribed(c, u, now)
				}
				r.ack(c, now)
			}
		case bytes.Contains(u, []byte(`"disconnect"`)):
			r.st.Disconnects++
		}
	case Ceiling:
		if bytes.Contains(u, ceilingAck) {
			r.ack(c, now)
		}
	}
}

// oursAttached counts an attached reply's continuity and, when positions
// are tracked, starts the channel's position from its pos unless it resumed:
// then the messages after the token we sent follow, and the token stays
// until the first of them.
func (r *Reader) oursAttached(c *conn, u []byte) {
	cont := continuityOf(u, r.bin)
	switch string(cont) {
	case "resumed":
		r.cont.Resumed++
	case "lost":
		r.cont.Lost++
	default:
		r.cont.Fresh++
	}
	if !r.resume || string(cont) == "resumed" {
		return
	}
	intAfter, key := jsonIntAfter, jsonRef
	if r.bin {
		intAfter, key = mpIntAfter, mpRef
	}
	ref, ok := intAfter(u, key)
	i := int(ref) - 1
	if tok := posToken(u, r.bin); ok && i >= 0 && i < len(c.sub.Channels) && len(tok) > 0 {
		c.sub.setTok(i, tok)
	} else {
		r.st.Unexpected++
	}
}

// peerSubscribed handles a Centrifuge subscribe reply: it counts whether the
// subscription recovered, records the publications recovered in it, and,
// when positions are tracked, takes the stream's epoch and the highest
// offset (the reply's own, or its last recovered publication's).
func (r *Reader) peerSubscribed(c *conn, u []byte, now int64) {
	recovering := bytes.Contains(u, peerRecovering)
	switch {
	case recovering && bytes.Contains(u, peerRecovered):
		r.cont.Resumed++
	case recovering:
		r.cont.Lost++
	default:
		r.cont.Fresh++
	}
	if k := bytes.Index(u, peerPubs); k >= 0 {
		// Recovered publications: {"data":{...},"offset":N}, comma-separated.
		// The payloads hold no {"data": of their own.
		p := u[k+len(peerPubs):]
		for {
			j := bytes.Index(p, peerPubStart)
			if j < 0 {
				break
			}
			p = p[j+len(peerPubStart):]
			one := p
			if e := bytes.Index(p, peerPubStart); e >= 0 {
				one = p[:e]
			}
			if s, ok := extract(one, false); ok {
				r.record(c, s, now)
			} else {
				r.st.Unexpected++
			}
		}
	}
	if !r.resume {
		return
	}
	id, ok := jsonIntAfter(u, peerReply[1:]) // "id": opens the reply
	i := int(id) - 2                         // subscribe ids are 2, 3, ...
	epoch := jsonStrAfterLast(u, peerEpoch)
	off, _ := peerOffsetMax(u)
	if !ok || i < 0 || i >= len(c.sub.Channels) || len(epoch) == 0 {
		r.st.Unexpected++
		return
	}
	p := c.sub.posAt(i)
	p.tok, p.off, p.ok = append(p.tok[:0], epoch...), off, true
}

func (r *Reader) ack(c *conn, now int64) {
	c.acks++
	if !c.attached && c.acks >= c.want {
		c.attached = true
		r.attached.Add(1)
		r.lastAtt.Store(now)
		if c.start != 0 {
			r.attachHist.RecordValue(min(max((now-c.start)/1000, 1), r.attachHist.HighestTrackableValue()))
		}
		if c.fl != nil {
			r.attachedCycle(c, now)
		}
	}
}

// write sends a small control frame; a full socket buffer drops it (counted
// as an error), which a heartbeat reply can afford.
func (r *Reader) write(c *conn, b []byte) {
	if n, err := rawWrite(c.fd, b); err != nil || n != len(b) {
		r.st.Errors++
	}
}

func (r *Reader) closeConn(c *conn) {
	if c.dead {
		return
	}
	c.dead = true
	rawClose(c.fd) // also removes it from the epoll set
	r.conns[c.fd] = nil
	r.open.Add(-1)
	if c.attached {
		r.attached.Add(-1)
	}
	if c.sub.live == c {
		c.sub.live = nil
	}
	if c.fl != nil {
		r.lostCycle(c)
	}
}
