package loadgen

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"golang.org/x/sys/unix"
)

// The epoll dialer opens subscriber connections without a goroutine, a
// net.Conn or net/http: non-blocking sockets whose connect, upgrade request,
// 101 response and hello frames are driven by the reader's own epoll loop
// (one goroutine, so the generator's single core does no goroutine hand-offs
// and no descriptor moves between epoll sets). Once the hello is written
// the descriptor becomes one of the reader's connections, already in its
// epoll set with the same events Reader.add registers.
//
// Per connection the generator makes socket, two setsockopts, bind, connect,
// write (request), epoll_ctl, read (101), write (hello), then the reader's
// reads: about 10 system calls.

// wsKey is the Sec-WebSocket-Key of every epoll-dialled connection: RFC 6455
// asks for a fresh random key per connection to keep proxies from replaying
// an upgrade; on loopback against our own servers a constant (a valid
// base64 16-byte value) changes nothing and lets the accept value be
// computed once.
const wsKey = "ZmVlZGdhdGUtbG9hZGdlbg==" // "feedgate-loadgen"

// wsAccept is the Sec-WebSocket-Accept a server must answer wsKey with.
var wsAccept = func() []byte {
	h := sha1.Sum([]byte(wsKey + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return []byte(base64.StdEncoding.EncodeToString(h[:]))
}()

// maxUpgradeResponse bounds the 101 response's status line and headers.
const maxUpgradeResponse = 8 << 10

// upgradeRequest returns the HTTP/1.1 upgrade request for path on addr.
func upgradeRequest(addr, path string) []byte {
	return []byte("GET " + path + " HTTP/1.1\r\nHost: " + addr +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + wsKey +
		"\r\nSec-WebSocket-Version: 13\r\n\r\n")
}

var (
	errNot101    = errors.New("handshake: not a 101 response")
	errBadAccept = errors.New("handshake: missing or wrong Sec-WebSocket-Accept")
	errNoUpgrade = errors.New("handshake: missing Upgrade: websocket")
	errTooLong   = errors.New("handshake: response headers too long")
)

// parseUpgrade checks the server's response to the upgrade request at the
// start of b: the status line must be HTTP/1.1 101, the headers must hold
// Upgrade: websocket and the Sec-WebSocket-Accept for wsKey. It returns the
// length of the status line and headers (the bytes after it are WebSocket
// frames), 0 while the headers are incomplete, or an error.
func parseUpgrade(b []byte) (int, error) {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		if len(b) >= 12 && !bytes.HasPrefix(b, []byte("HTTP/1.1 101 ")) {
			return 0, statusErr(b)
		}
		if len(b) > maxUpgradeResponse {
			return 0, errTooLong
		}
		return 0, nil
	}
	head := b[:end+2] // every line ends with CRLF
	if !bytes.HasPrefix(head, []byte("HTTP/1.1 101 ")) {
		return 0, statusErr(b)
	}
	var accept, upgrade bool
	i := bytes.IndexByte(head, '\n') + 1
	for i < len(head) {
		j := bytes.IndexByte(head[i:], '\n')
		line := bytes.TrimSuffix(head[i:i+j], []byte("\r")) // without the line ending (CRLF or a bare LF)
		i += j + 1
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		value = bytes.TrimSpace(value)
		switch {
		case len(name) == 20 && bytes.EqualFold(name, []byte("Sec-WebSocket-Accept")):
			accept = bytes.Equal(value, wsAccept)
		case len(name) == 7 && bytes.EqualFold(name, []byte("Upgrade")):
			upgrade = bytes.EqualFold(value, []byte("websocket"))
		}
	}
	switch {
	case !accept:
		return 0, errBadAccept
	case !upgrade:
		return 0, errNoUpgrade
	}
	return end + 4, nil
}

func statusErr(b []byte) error {
	line := b
	if i := bytes.IndexByte(b, '\r'); i >= 0 {
		line = b[:i]
	}
	if len(line) > 40 {
		line = line[:40]
	}
	if bytes.HasPrefix(line, []byte("HTTP/")) {
		return fmt.Errorf("%w: %s", errNot101, line)
	}
	return errNot101
}

// Dial states.
const (
	dsConnecting = iota // the request is not (all) written: waiting for EPOLLOUT
	dsUpgrading         // request written: waiting for the 101 response
	dsAttaching         // cycling only: handed to the reader, waiting for the subscription replies
)

// dial is one connection being opened (and, when the job cycles, attached).
type dial struct {
	fd       int
	state    uint8
	sent     int   // bytes of the request written
	start    int64 // unix ns: just before socket()
	deadline int64 // unix ns
	sub      *Sub
	hello    []byte
	want     int
	resp     []byte // an incomplete 101 response
	c        *conn  // dsAttaching: the reader's connection
	idx      int    // position in dialJob.flight
}

// nextDial is what a dial job opens next: the subscriber, its framed hello
// and how many positive replies complete its subscription.
type nextDial struct {
	sub   *Sub
	hello []byte
	want  int
}

// dialJob is one batch of epoll dials, run on the reader goroutine.
type dialJob struct {
	dst      unix.RawSockaddrInet4
	req      []byte
	inFlight int
	timeout  int64 // per dial, ns
	// window, when set, bounds the time (ns) dials start, from the job's
	// start on the reader goroutine; what is in flight then gets timeout
	// more. Without it dials start until hardEnd.
	window  int64
	stopAt  int64 // unix ns: no dial starts after this
	hardEnd int64 // unix ns: whatever is still in flight fails
	// next returns the next dial, false when there is none left. It runs on
	// the reader goroutine.
	next func() (nextDial, bool)
	// cycle keeps each dial in flight until its subscription completes,
	// then closes the connection (and release gets its subscriber back).
	cycle   bool
	release func(*Sub)
	// mark, when set, is called on the reader goroutine as the job starts
	// (false) and when stopAt passes (true).
	mark func(end bool)

	flight    []*dial
	free      []*dial
	exhausted bool
	begun     bool
	ended     bool
	lastScan  int64
	res       DialStats
	done      chan struct{}
}

// DialStats counts one dial job's outcomes.
type DialStats struct {
	Started  int64 `json:"started"`
	Upgraded int64 `json:"upgraded"` // 101 received, hello written, handed to the reader
	// Cycling only: subscriptions completed (then closed), and of those the
	// ones completed before stopAt.
	Attached int64 `json:"attached,omitempty"`
	InWindow int64 `json:"attached_in_window,omitempty"`
	Failed   int64 `json:"failed"`
	// Errors counts failures by kind: "connect: connection refused",
	// "timeout", "handshake: ...", ...
	Errors   map[string]int64 `json:"errors,omitempty"`
	FirstErr string           `json:"first_error,omitempty"`
	Start    time.Time        `json:"-"` // the job's start on the reader goroutine
	End      time.Time        `json:"-"` // stopAt, or when the last dial finished if earlier
}

// srcSockaddrs are the loopback source addresses of nextSource, as
// sockaddrs.
var srcSockaddrs = func() (a [srcAddrs]unix.RawSockaddrInet4) {
	for i := range a {
		a[i] = inet4([4]byte{127, 0, 0, byte(10 + i)}, 0)
	}
	return a
}()

// newDialJob prepares a job against t; it refuses any target outside
// 127.0.0.0/8.
func newDialJob(t Target, inFlight int, timeout time.Duration) (*dialJob, error) {
	if err := checkLoopback(t.Addr); err != nil {
		return nil, err
	}
	host, port, _ := net.SplitHostPort(t.Addr)
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", t.Addr, err)
	}
	j := &dialJob{req: upgradeRequest(t.Addr, t.wsPath()), inFlight: max(inFlight, 1),
		timeout: int64(timeout), done: make(chan struct{})}
	j.dst = inet4([4]byte(net.ParseIP(host).To4()), p)
	j.res.Errors = map[string]int64{}
	return j, nil
}

// run hands j to the reader goroutine and waits until it finished (a
// stopping reader fails what is in flight).
func (r *Reader) run(j *dialJob) DialStats {
	queued := false
	r.Do(func() { r.jobs, queued = append(r.jobs, j), true })
	if !queued {
		j.res.Failed, j.res.FirstErr = 1, "reader closed"
		j.res.Errors["reader closed"] = 1
		return j.res
	}
	<-j.done
	return j.res
}

// pump runs on the reader goroutine after every epoll wait: it starts the
// queued job, starts dials up to the job's in-flight bound (at most that
// many per call), fails dials past their deadline and ends the job when
// nothing is left in flight.
func (r *Reader) pump() {
	if r.job == nil {
		if len(r.jobs) == 0 {
			return
		}
		r.job, r.jobs = r.jobs[0], r.jobs[1:]
	}
	j := r.job
	now := time.Now().UnixNano()
	if !j.begun {
		j.begun = true
		r.attachHist.Reset()
		if j.mark != nil {
			j.mark(false)
			now = time.Now().UnixNano()
		}
		j.res.Start = time.Unix(0, now)
		if j.window > 0 {
			j.stopAt, j.hardEnd = now+j.window, now+j.window+j.timeout
		} else {
			j.stopAt = j.hardEnd
		}
	}
	for k := 0; k < j.inFlight && len(j.flight) < j.inFlight && !j.exhausted && now < j.stopAt; k++ {
		nd, ok := j.next()
		if !ok {
			j.exhausted = true
			break
		}
		r.startDial(j, nd)
		now = time.Now().UnixNano()
	}
	if !j.ended && (now >= j.stopAt || (j.exhausted && len(j.flight) == 0)) {
		j.ended = true
		j.res.End = time.Unix(0, min(now, j.stopAt))
		if j.mark != nil {
			j.mark(true)
		}
	}
	if now-j.lastScan >= int64(10*time.Millisecond) || now >= j.hardEnd {
		j.lastScan = now
		for i := 0; i < len(j.flight); {
			if d := j.flight[i]; now >= d.deadline || now >= j.hardEnd {
				r.failDial(j, d, "timeout")
				continue // d's place now holds another dial
			}
			i++
		}
	}
	if (j.exhausted || now >= j.stopAt) && len(j.flight) == 0 {
		r.job = nil
		close(j.done)
	}
}

// abortJobs fails everything in flight when the reader stops.
func (r *Reader) abortJobs() {
	if r.job != nil {
		r.jobs = append([]*dialJob{r.job}, r.jobs...)
		r.job = nil
	}
	for _, j := range r.jobs {
		for len(j.flight) > 0 {
			r.failDial(j, j.flight[0], "reader closed")
		}
		close(j.done)
	}
	r.jobs = nil
}

// startDial opens one non-blocking connection from the next source address
// and, as a loopback connect has completed by the time connect returns,
// writes the upgrade request right away; only when that finds the socket
// still connecting does it wait for EPOLLOUT.
func (r *Reader) startDial(j *dialJob, nd nextDial) {
	j.res.Started++
	d := j.get()
	d.sub, d.hello, d.want = nd.sub, nd.hello, nd.want
	d.start = time.Now().UnixNano()
	d.deadline = d.start + j.timeout
	d.fd = -1
	d.idx = len(j.flight)
	j.flight = append(j.flight, d)

	fd, err := rawSocketTCP4()
	if err != nil {
		r.failDial(j, d, "socket: "+err.Error())
		return
	}
	d.fd = fd
	if fd >= maxFD {
		r.failDial(j, d, "socket: descriptor beyond the reader's table")
		return
	}
	if err := rawSetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		r.failDial(j, d, "setsockopt TCP_NODELAY: "+err.Error())
		return
	}
	// The port is chosen at connect, by the whole 4-tuple, instead of at
	// bind: a source address then reaches each server from every ephemeral
	// port, and TIME_WAIT ports are reused on loopback (tcp_tw_reuse).
	if err := rawSetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1); err != nil {
		r.failDial(j, d, "setsockopt IP_BIND_ADDRESS_NO_PORT: "+err.Error())
		return
	}
	if err := rawBind(fd, &srcSockaddrs[srcCounter.Add(1)%srcAddrs]); err != nil {
		r.failDial(j, d, "bind: "+err.Error())
		return
	}
	if err := rawConnect(fd, &j.dst); err != nil && err != unix.EINPROGRESS {
		r.failDial(j, d, "connect: "+err.Error())
		return
	}
	r.dials[fd] = d
	if !r.sendRequest(j, d) {
		return
	}
	events := uint32(unix.EPOLLIN | unix.EPOLLRDHUP)
	if d.state == dsConnecting {
		events = unix.EPOLLOUT
	}
	ev := unix.EpollEvent{Events: events, Fd: int32(fd)}
	if err := rawEpollCtl(r.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		r.failDial(j, d, "epoll_ctl: "+err.Error())
	}
}

// sendRequest writes what is left of the upgrade request. It returns false
// when the dial failed.
func (r *Reader) sendRequest(j *dialJob, d *dial) bool {
	for d.sent < len(j.req) {
		n, err := rawWrite(d.fd, j.req[d.sent:])
		if err == unix.EAGAIN || err == unix.EINTR {
			d.state = dsConnecting
			return true
		}
		if err != nil {
			r.failDial(j, d, "connect: "+err.Error())
			return false
		}
		d.sent += n
	}
	d.state = dsUpgrading
	return true
}

// dialEvent handles an epoll event of a descriptor still being dialled.
func (r *Reader) dialEvent(d *dial, events uint32) {
	j := r.job
	if j == nil { // cannot happen: a job ends only with nothing in flight
		rawClose(d.fd)
		r.dials[d.fd] = nil
		return
	}
	switch d.state {
	case dsConnecting:
		if events&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			msg := "connect: failed"
			if e, err := unix.GetsockoptInt(d.fd, unix.SOL_SOCKET, unix.SO_ERROR); err == nil && e != 0 {
				msg = "connect: " + unix.Errno(e).Error()
			}
			r.failDial(j, d, msg)
			return
		}
		if !r.sendRequest(j, d) || d.state == dsConnecting {
			return
		}
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(d.fd)}
		if err := rawEpollCtl(r.epfd, unix.EPOLL_CTL_MOD, d.fd, &ev); err != nil {
			r.failDial(j, d, "epoll_ctl: "+err.Error())
		}
	case dsUpgrading:
		r.readUpgrade(j, d)
	}
}

// readUpgrade reads the server's response to the upgrade request; once it
// is complete and valid it writes the hello frames and makes the descriptor
// one of the reader's connections, with any bytes that followed the headers
// as its first input.
func (r *Reader) readUpgrade(j *dialJob, d *dial) {
	n, err := rawRead(d.fd, r.buf)
	if err == unix.EAGAIN || err == unix.EINTR {
		return
	}
	if err != nil {
		r.failDial(j, d, "handshake: "+err.Error())
		return
	}
	if n == 0 {
		r.failDial(j, d, "handshake: connection closed before the response")
		return
	}
	data := r.buf[:n]
	if len(d.resp) > 0 {
		d.resp = append(d.resp, data...)
		data = d.resp
	}
	h, err := parseUpgrade(data)
	if err != nil {
		r.failDial(j, d, err.Error())
		return
	}
	if h == 0 {
		if len(d.resp) == 0 {
			d.resp = append(d.resp, data...)
		}
		return
	}
	if len(d.hello) > 0 {
		// A new socket's send buffer (16 KB or more) takes the hello whole.
		if k, err := rawWrite(d.fd, d.hello); err != nil || k != len(d.hello) {
			msg := "hello: short write"
			if err != nil {
				msg = "hello: " + err.Error()
			}
			r.failDial(j, d, msg)
			return
		}
	}
	j.res.Upgraded++
	c := &conn{fd: d.fd, sub: d.sub, want: d.want, start: d.start}
	r.dials[d.fd] = nil
	if j.cycle {
		d.state, d.c, c.fl = dsAttaching, c, d
	} else {
		j.finish(d)
	}
	r.register(c, data[h:], time.Now().UnixNano()) // register copies what it keeps of data
}

// failDial counts one failed dial and releases its descriptor and slot.
func (r *Reader) failDial(j *dialJob, d *dial, reason string) {
	j.res.Failed++
	j.res.Errors[reason]++
	if j.res.FirstErr == "" {
		j.res.FirstErr = reason
	}
	switch {
	case d.state == dsAttaching:
		c := d.c
		c.fl = nil // counted here, not again by closeConn
		r.closeConn(c)
	case d.fd >= 0:
		if d.fd < maxFD {
			r.dials[d.fd] = nil
		}
		rawClose(d.fd)
	}
	j.finish(d)
}

// attachedCycle ends a cycling dial whose subscription completed at now:
// it is counted and its connection closed.
func (r *Reader) attachedCycle(c *conn, now int64) {
	j, d := r.job, c.fl
	c.fl = nil
	j.res.Attached++
	if now <= j.stopAt {
		j.res.InWindow++
	}
	r.closeConn(c)
	j.finish(d)
}

// lostCycle ends a cycling dial whose connection closed before its
// subscription completed.
func (r *Reader) lostCycle(c *conn) {
	d := c.fl
	c.fl = nil
	d.state, d.fd = dsUpgrading, -1 // its descriptor is closed already: failDial leaves it
	r.failDial(r.job, d, "closed before the subscription completed")
}

// finish takes d out of flight and keeps it for reuse.
func (j *dialJob) finish(d *dial) {
	last := len(j.flight) - 1
	if d.idx < 0 || d.idx > last || j.flight[d.idx] != d {
		return
	}
	j.flight[d.idx] = j.flight[last]
	j.flight[d.idx].idx = d.idx
	j.flight[last] = nil
	j.flight = j.flight[:last]
	if j.cycle && j.release != nil && d.sub != nil {
		j.release(d.sub)
	}
	*d = dial{resp: d.resp[:0], idx: -1}
	j.free = append(j.free, d)
}

func (j *dialJob) get() *dial {
	if n := len(j.free); n > 0 {
		d := j.free[n-1]
		j.free = j.free[:n-1]
		return d
	}
	return &dial{}
}

// attachQuantiles returns time-to-subscribed percentiles (ms) of the
// reader's attach histogram; it runs on the reader goroutine.
func attachQuantiles(h *hdrhistogram.Histogram) (p50, p90, p99, maxMs float64) {
	if h == nil { // the reader stopped before the histogram could be read
		return 0, 0, 0, 0
	}
	ms := func(q float64) float64 { return float64(h.ValueAtQuantile(q)) / 1000 }
	return ms(50), ms(90), ms(99), float64(h.Max()) / 1000
}
