package loadgen

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Publisher sends messages on the channels it owns.
type Publisher interface {
	// Send stamps the current time into a new message (ci, seq) and sends
	// it, or queues it for sending. Messages on one channel go out in
	// Send order.
	Send(ci int, seq int64) error
	// Stats reports what was sent and acknowledged so far.
	Stats() PubStats
	// AddFailures adds, per channel index, the messages refused so far
	// (failed requests, nacks, error replies) to dst.
	AddFailures(dst []int64)
	// Close waits for queued messages (bounded) and closes the connections.
	Close()
}

// PubStats are a publisher's counters.
type PubStats struct {
	Sent    int64 // messages written (WebSocket) or answered 200 (HTTP)
	Acked   int64 // acknowledgements received (WebSocket)
	Errors  int64 // nacks, error replies, failed requests
	TxBytes int64 // payload bytes written, frames or request bodies
	MaxLag  time.Duration
}

func (a *PubStats) add(b PubStats) {
	a.Sent += b.Sent
	a.Acked += b.Acked
	a.Errors += b.Errors
	a.TxBytes += b.TxBytes
	a.MaxLag = max(a.MaxLag, b.MaxLag)
}

// Sum adds up the stats of several publishers.
func Sum(pubs []Publisher) PubStats {
	var s PubStats
	for _, p := range pubs {
		s.add(p.Stats())
	}
	return s
}

type pubCounters struct {
	sent, acked, errs, tx atomic.Int64
	failed                []atomic.Int64 // per channel index
}

func (c *pubCounters) fail(ci int) {
	c.errs.Add(1)
	if ci >= 0 && ci < len(c.failed) {
		c.failed[ci].Add(1)
	}
}

func (c *pubCounters) AddFailures(dst []int64) {
	for i := range c.failed {
		dst[i] += c.failed[i].Load()
	}
}

func (c *pubCounters) stats() PubStats {
	return PubStats{Sent: c.sent.Load(), Acked: c.acked.Load(), Errors: c.errs.Load(), TxBytes: c.tx.Load()}
}

// ---------------------------------------------------------------------------
// HTTP

type httpJob struct {
	ci  int
	seq int64
}

// httpPub posts each message as one HTTP request. When ordered, channel ci
// is always served by worker ci%workers, so one channel's messages stay in
// order; otherwise every worker takes the next message, which keeps several
// requests in flight on one channel (and may reorder them).
type httpPub struct {
	t        Target
	channels []string
	payload  Payload
	client   *http.Client
	queues   []chan httpJob
	wg       sync.WaitGroup
	pubCounters
}

// NewHTTPPublisher returns a publisher using the target's HTTP publish
// endpoint with the given number of keep-alive connections.
func NewHTTPPublisher(t Target, channels []string, payload Payload, workers int, ordered bool) (Publisher, error) {
	if err := checkLoopback(t.Addr); err != nil {
		return nil, err
	}
	p := &httpPub{t: t, channels: channels, payload: payload,
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers, DisableCompression: true}}}
	p.failed = make([]atomic.Int64, len(channels))
	queues := workers
	if !ordered {
		queues = 1
	}
	for q := 0; q < queues; q++ {
		p.queues = append(p.queues, make(chan httpJob, 4096))
	}
	for w := 0; w < workers; w++ {
		p.wg.Add(1)
		go p.worker(p.queues[w%queues])
	}
	return p, nil
}

func (p *httpPub) Send(ci int, seq int64) error {
	select {
	case p.queues[ci%len(p.queues)] <- httpJob{ci, seq}:
		return nil
	default: // not counted as sent by the caller either
		p.errs.Add(1)
		return errors.New("http publisher queue full")
	}
}

func (p *httpPub) url(ci int) string {
	ch := p.channels[ci]
	switch p.t.Kind {
	case Ours:
		return "http://" + p.t.Addr + "/v1/channels/" + url.PathEscape(ch) + "/messages"
	case Peer:
		return "http://" + p.t.Addr + "/api/publish?channel=" + url.QueryEscape(ch)
	default:
		return "http://" + p.t.Addr + "/publish"
	}
}

func (p *httpPub) worker(q chan httpJob) {
	defer p.wg.Done()
	var body []byte
	for j := range q {
		body = body[:0]
		if p.t.Kind == Ours {
			body = append(body, `{"data":`...)
		}
		body = p.payload(body, time.Now().UnixNano(), j.seq, j.ci)
		if p.t.Kind == Ours {
			body = append(body, '}')
		}
		resp, err := p.client.Post(p.url(j.ci), "application/json", bytes.NewReader(body))
		if err != nil {
			p.fail(j.ci)
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			p.fail(j.ci)
			continue
		}
		p.sent.Add(1)
		p.acked.Add(1)
		p.tx.Add(int64(len(body)))
	}
}

func (p *httpPub) Stats() PubStats { return p.stats() }

func (p *httpPub) Close() {
	for _, q := range p.queues {
		close(q)
	}
	p.wg.Wait()
	p.client.CloseIdleConnections()
}

// ---------------------------------------------------------------------------
// WebSocket

// wsPub publishes over one WebSocket connection: our protocol's publish
// message (after attaching its channels publish_only) or Centrifuge's
// publish command. A goroutine reads acknowledgements and answers
// heartbeats.
type wsPub struct {
	t        Target
	channels []string
	payload  Payload
	w        *wsConn

	mu      sync.Mutex // guards the fields below and writes on w
	ref     int64
	pending map[int64]int // ref -> channel index, until acknowledged
	msg     []byte
	out     []byte
	done    chan struct{}

	attached atomic.Int64
	pubCounters
}

// NewWSPublisher connects one publisher that will publish on the channels
// in owned (indices into channels).
func NewWSPublisher(t Target, channels []string, owned []int, payload Payload) (Publisher, error) {
	t.Format = "json"
	var hello []byte
	want := int64(0)
	switch t.Kind {
	case Ours:
		for i, ci := range owned {
			hello = t.oursFrame(hello, fmt.Sprintf(`{"type":"attach","ref":%d,"channel":%q,"options":{"publish_only":true}}`, i+1, channels[ci]))
		}
		want = int64(len(owned))
	case Peer:
		hello = appendClientFrame(hello, opText, []byte(`{"id":1,"connect":{}}`))
		want = 1
	default:
		return nil, errors.New("the ceiling server has no WebSocket publish")
	}
	w, err := dialWS(t.Addr, t.wsPath(), hello, 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("publisher: %w", err)
	}
	w.nc.SetDeadline(time.Time{})
	p := &wsPub{t: t, channels: channels, payload: payload, w: w, ref: 1 << 20, done: make(chan struct{}),
		pending: make(map[int64]int)}
	p.failed = make([]atomic.Int64, len(channels))
	go p.readLoop()
	deadline := time.Now().Add(10 * time.Second)
	for p.attached.Load() < want && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	if p.attached.Load() < want {
		p.Close()
		return nil, fmt.Errorf("publisher: %d of %d attach/connect replies", p.attached.Load(), want)
	}
	return p, nil
}

func (p *wsPub) Send(ci int, seq int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ref++
	m := p.msg[:0]
	if p.t.Kind == Ours {
		m = append(m, `{"type":"publish","ref":`...)
		m = strconv.AppendInt(m, p.ref, 10)
		m = append(m, `,"channel":`...)
		m = strconv.AppendQuote(m, p.channels[ci])
		m = append(m, `,"data":`...)
	} else {
		m = append(m, `{"id":`...)
		m = strconv.AppendInt(m, p.ref, 10)
		m = append(m, `,"publish":{"channel":`...)
		m = strconv.AppendQuote(m, p.channels[ci])
		m = append(m, `,"data":`...)
	}
	m = p.payload(m, time.Now().UnixNano(), seq, ci)
	m = append(m, '}')
	if p.t.Kind == Peer {
		m = append(m, '}')
	}
	p.msg = m
	p.out = appendClientFrame(p.out[:0], opText, m)
	p.w.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := p.w.nc.Write(p.out); err != nil {
		p.errs.Add(1) // not counted as sent by the caller either
		return err
	}
	p.pending[p.ref] = ci
	p.sent.Add(1)
	p.tx.Add(int64(len(p.out)))
	return nil
}

func (p *wsPub) writeControl(b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.w.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	p.w.nc.Write(b)
}

func (p *wsPub) readLoop() {
	defer close(p.done)
	buf := append(make([]byte, 0, 64<<10), p.w.rest...)
	tmp := make([]byte, 32<<10)
	var f frame
	for {
		off := 0
		for {
			k := parseFrame(buf[off:], &f)
			if k <= 0 {
				if k < 0 {
					return
				}
				break
			}
			off += k
			switch f.op {
			case opClose:
				return
			case opPing:
				p.writeControl(appendClientFrame(nil, opPong, f.payload))
			case opText, opBinary:
				for _, line := range bytes.Split(f.payload, []byte{'\n'}) {
					p.onReply(line)
				}
			}
		}
		buf = buf[:copy(buf, buf[off:])]
		n, err := p.w.br.Read(tmp)
		if err != nil {
			return
		}
		buf = append(buf, tmp[:n]...)
	}
}

func (p *wsPub) onReply(u []byte) {
	refKey := []byte(`"ref":`)
	if p.t.Kind == Peer {
		refKey = []byte(`"id":`)
	}
	ref, hasRef := jsonIntAfter(u, refKey)
	if p.t.Kind == Ours {
		switch {
		case bytes.Contains(u, []byte(`"type":"ack"`)):
			p.settle(ref, true)
		case bytes.Contains(u, jsonAttached):
			p.attached.Add(1)
		case bytes.Contains(u, jsonHeartbeat):
			p.writeControl(heartbeatJSON)
		case bytes.Contains(u, jsonNack), bytes.Contains(u, jsonError):
			if !hasRef || !p.settle(ref, false) {
				p.errs.Add(1)
			}
		}
		return
	}
	switch {
	case len(u) == 2 && u[0] == '{' && u[1] == '}':
		p.writeControl(peerPong)
	case bytes.Contains(u, jsonError):
		if !hasRef || !p.settle(ref, false) {
			p.errs.Add(1)
		}
	case bytes.HasPrefix(u, []byte(`{"id":1,"connect"`)):
		p.attached.Add(1)
	case bytes.HasPrefix(u, peerReply):
		p.settle(ref, true)
	}
}

// settle records the reply to the message with reference ref; it reports
// whether that message was outstanding.
func (p *wsPub) settle(ref int64, ok bool) bool {
	p.mu.Lock()
	ci, found := p.pending[ref]
	delete(p.pending, ref)
	p.mu.Unlock()
	switch {
	case !found:
		return false
	case ok:
		p.acked.Add(1)
	default:
		p.fail(ci)
	}
	return true
}

func (p *wsPub) Stats() PubStats { return p.stats() }

// Close waits up to two seconds for outstanding acknowledgements, then
// closes the connection.
func (p *wsPub) Close() {
	deadline := time.Now().Add(2 * time.Second)
	for p.acked.Load()+p.errs.Load() < p.sent.Load() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	p.writeControl(appendClientFrame(nil, opClose, []byte{0x03, 0xe8}))
	p.w.nc.Close()
	<-p.done
}
