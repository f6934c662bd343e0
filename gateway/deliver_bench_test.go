package gateway

import (
	"fmt"
	"testing"
	"time"

	"github.com/feedgate/feedgate/codec"
)

// BenchmarkChannelDeliver measures the fan-out loop alone: history append,
// one encode, and the enqueue to every subscriber, without sockets (each
// connection's writer is held busy, so nothing is flushed) and with the
// connections scattered over the heap as they are on a live edge. It is
// where cache misses on member and connection structs show.
func BenchmarkChannelDeliver(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			srv := &Server{cfg: Config{SendQueueBytes: 1 << 30}}
			srv.flushers = newFlushers()
			h := newHub(1000, time.Minute, time.Now, func(*codec.Message, codec.Format, error) {})
			ch := h.get("bench", true)
			conns := make([]*conn, n)
			var ballast [][]byte
			for i := range conns {
				c := &conn{srv: srv, id: uint64(i), format: codec.Format(i % 2), attached: map[string]codec.AttachOptions{}}
				c.writing = true // no flusher: the queue only grows
				conns[i] = c
				ch.members[c] = &member{c: c}
				ballast = append(ballast, make([]byte, 2048)) // a live edge has buffers between them
			}
			_ = ballast
			payload := []byte(`{"market":"1x2","sel":[{"id":1,"p":1.95},{"id":2,"p":3.4}]}`)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ch.deliver(&codec.Message{Channel: "bench", ID: "m", Data: payload, Time: 1, Origin: "o", Seq: uint64(i + 1)})
				if i%64 == 63 {
					b.StopTimer()
					for _, c := range conns {
						clear(c.queue)
						c.queue, c.queued = c.queue[:0], 0
					}
					b.StartTimer()
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/delivery")
		})
	}
}
