package loadgen

import (
	"sync"
	"sync/atomic"
	"time"
)

// ConnectResult describes one batch of subscriber connections.
type ConnectResult struct {
	Dialed   int           // handshakes completed and sockets handed to the reader
	Failed   int           // dial or handshake failures
	Attached int64         // reader's attached count when the wait ended
	Elapsed  time.Duration // from the first dial to the last completed subscription (or the wait's end)
	FirstErr string        `json:",omitempty"`
}

// Connect opens one connection per subscriber with at most concurrency
// dials in flight, subscribes each to its channels, and waits until the
// reader counts want subscriptions complete or timeout passes.
func Connect(r *Reader, subs []*Sub, channels []string, concurrency int, want int64, timeout time.Duration) ConnectResult {
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
	res := ConnectResult{Dialed: int(dialed.Load()), Failed: int(failed.Load()), Attached: r.Attached(), FirstErr: firstErr}
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
