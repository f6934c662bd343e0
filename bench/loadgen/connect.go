package loadgen

import (
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// ConnectResult describes one batch of subscriber connections.
type ConnectResult struct {
	Dialer   string        `json:"dialer"` // "epoll" (Connect) or "goroutines" (ConnectBlocking)
	InFlight int           `json:"dials_in_flight"`
	Dialed   int           // handshakes completed and sockets handed to the reader
	Failed   int           // dial or handshake failures
	Attached int64         // reader's attached count when the wait ended
	Elapsed  time.Duration // from the first dial to the last completed subscription (or the wait's end)
	FirstErr string        `json:",omitempty"`
	// Errors counts the failures by kind (epoll dialer only).
	Errors map[string]int64 `json:"errors,omitempty"`
	// Dial start to completed subscription, ms (epoll dialer only).
	AttachP50Ms float64 `json:"attach_p50_ms,omitempty"`
	AttachP99Ms float64 `json:"attach_p99_ms,omitempty"`
}

// Connect opens one connection per subscriber with the epoll dialer
// (dialer.go), at most concurrency dials in flight, subscribes each to its
// channels, and waits until the reader counts want subscriptions complete or
// timeout passes. A dial is in flight from its socket() until its hello
// frames are written; each may take at most 30 s (and no longer than
// timeout).
func Connect(r *Reader, subs []*Sub, channels []string, concurrency int, want int64, timeout time.Duration) ConnectResult {
	start := time.Now()
	deadline := start.Add(timeout)
	res := ConnectResult{Dialer: "epoll", InFlight: concurrency}
	j, err := newDialJob(r.t, concurrency, min(timeout, 30*time.Second))
	if err != nil {
		res.Failed, res.FirstErr = len(subs), err.Error()
		return res
	}
	j.hardEnd = deadline.UnixNano()
	next := 0
	names := make([]string, 0, 8)
	j.next = func() (nextDial, bool) { // on the reader goroutine
		if next >= len(subs) {
			return nextDial{}, false
		}
		s := subs[next]
		next++
		names = names[:0]
		for _, ci := range s.Channels {
			names = append(names, channels[ci])
		}
		var pos []resumePos
		if r.resume {
			pos = s.pos
		}
		hello, acks := r.t.subscribeFrames(nil, names, pos)
		return nextDial{sub: s, hello: hello, want: acks}, true
	}
	st := r.run(j)
	if !st.Start.IsZero() {
		start = st.Start // the first dial, on the reader goroutine
	}
	res.Dialed, res.Failed, res.FirstErr = int(st.Upgraded), int(st.Failed), st.FirstErr
	if len(st.Errors) > 0 {
		res.Errors = st.Errors
	}
	// Every upgraded connection is registered by now: with fewer open than
	// want, waiting cannot help.
	for r.Attached() < want && r.Open() >= want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	res.Attached = r.Attached()
	res.Elapsed = time.Since(start)
	if res.Attached >= want {
		res.Elapsed = r.LastAttach().Sub(start)
	}
	r.Do(func() {
		if r.attachHist.TotalCount() > 0 {
			res.AttachP50Ms, _, res.AttachP99Ms, _ = attachQuantiles(r.attachHist)
		}
	})
	return res
}

// ConnectBlocking is Connect with the earlier dialer: concurrency
// goroutines, each dialling with net.Dialer, reading the 101 with
// net/http, writing the hello and moving the descriptor (dup) into the
// reader. The reconnect storm keeps it so that its figures stay comparable
// with earlier runs.
func ConnectBlocking(r *Reader, subs []*Sub, channels []string, concurrency int, want int64, timeout time.Duration) ConnectResult {
	start := time.Now()
	deadline := start.Add(timeout)
	var next atomic.Int64
	var dialed, failed atomic.Int64
	var errOnce sync.Once
	var firstErr string
	resume := r.resuming()
	var wg sync.WaitGroup
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			names := make([]string, 0, 8)
			for {
				i := int(next.Add(1) - 1)
				if i >= len(subs) || time.Now().After(deadline) {
					return
				}
				s := subs[i]
				names = names[:0]
				for _, ci := range s.Channels {
					names = append(names, channels[ci])
				}
				var pos []resumePos
				if resume {
					pos = s.pos // the subscriber has no connection: the reader leaves it alone
				}
				hello, want := r.t.subscribeFrames(nil, names, pos)
				fd, rest, err := dialDetached(r.t, hello, time.Until(deadline))
				if err != nil {
					failed.Add(1)
					errOnce.Do(func() { firstErr = err.Error() })
					continue
				}
				dialed.Add(1)
				r.add(&conn{fd: fd, sub: s, want: want}, rest)
			}
		}()
	}
	wg.Wait()
	for r.Attached() < want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	res := ConnectResult{Dialer: "goroutines", InFlight: concurrency, Dialed: int(dialed.Load()), Failed: int(failed.Load()), Attached: r.Attached(), FirstErr: firstErr}
	res.Elapsed = time.Since(start)
	if res.Attached >= want {
		res.Elapsed = r.LastAttach().Sub(start)
	}
	return res
}

func dialDetached(t Target, hello []byte, timeout time.Duration) (int, []byte, error) {
	w, err := dialWS(t.Addr, t.wsPath(), hello, min(timeout, 30*time.Second))
	if err != nil {
		return -1, nil, err
	}
	fd, err := w.detach()
	return fd, w.rest, err
}

// RateOptions configure ConnectRate.
type RateOptions struct {
	Channels    []string      // connection k attaches to one channel, Channels[k mod len]
	InFlight    int           // connections in flight: from socket() until subscribed and closed
	Window      time.Duration // how long new connections start
	DialTimeout time.Duration // per connection, from socket() to its completed subscription
	// Mark, when set, is called on the reader goroutine as the window starts
	// (false) and ends (true), e.g. to read CPU times.
	Mark func(end bool)
}

// RateResult is one ConnectRate run.
type RateResult struct {
	WindowSec float64 `json:"window_sec"` // from the first dial to the window's end
	DialStats
	PerSec float64 `json:"subscribed_per_sec"` // subscriptions completed within the window, per second
	// Dial start to completed subscription, ms, over every subscribed
	// connection (also the ones that completed after the window).
	P50, P90, P99, Max float64
	Hist               *hdrhistogram.Histogram `json:"-"`
}

// ConnectRate measures the sustained rate of new subscribed connections:
// for opt.Window it keeps opt.InFlight connections in flight, each
// connecting, upgrading, subscribing to one channel (our attach, the
// peer's connect + subscribe), and closing (from the client side) as soon
// as its subscription completes. It returns once nothing is in flight, at
// most opt.DialTimeout after the window. The reader must hold no other
// connections' subscriptions in progress while it runs.
func ConnectRate(r *Reader, opt RateOptions) RateResult {
	var res RateResult
	j, err := newDialJob(r.t, opt.InFlight, opt.DialTimeout)
	if err != nil {
		res.Errors = map[string]int64{err.Error(): 1}
		res.Failed, res.FirstErr = 1, err.Error()
		return res
	}
	j.window, j.cycle, j.mark = int64(opt.Window), true, opt.Mark
	type entry struct {
		hello []byte
		want  int
	}
	hellos := make([]entry, len(opt.Channels))
	for i, ch := range opt.Channels {
		h, w := r.t.subscribeFrames(nil, []string{ch}, nil)
		hellos[i] = entry{h, w}
	}
	// One subscriber per connection in flight, reused once it is done.
	free := make([]*Sub, 0, j.inFlight)
	for k := 0; k < j.inFlight; k++ {
		free = append(free, NewSub(k, []int32{int32(k % len(opt.Channels))}))
	}
	j.next = func() (nextDial, bool) {
		if len(free) == 0 { // cannot happen: a subscriber per dial in flight
			return nextDial{}, false
		}
		s := free[len(free)-1]
		free = free[:len(free)-1]
		e := hellos[s.Channels[0]]
		return nextDial{sub: s, hello: e.hello, want: e.want}, true
	}
	j.release = func(s *Sub) { free = append(free, s) }
	res.DialStats = r.run(j)
	res.WindowSec = res.End.Sub(res.Start).Seconds()
	if res.WindowSec > 0 {
		res.PerSec = float64(res.InWindow) / res.WindowSec
	}
	r.Do(func() {
		res.Hist = hdrhistogram.Import(r.attachHist.Export())
	})
	res.P50, res.P90, res.P99, res.Max = attachQuantiles(res.Hist)
	return res
}
