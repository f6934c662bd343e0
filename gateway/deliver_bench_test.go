package gateway

import (
	"fmt"
	"testing"
	"time"

	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/internal/oddsfeed"
)

// BenchmarkChannelDeliver measures the fan-out loop alone: history append,
// one encode, and the enqueue to every subscriber, without sockets (each
// connection's writer is held busy, so nothing is flushed) and with the
// connections scattered over the heap as they are on a live edge. It is
// where cache misses on member and connection structs show.
//
// full: every subscriber takes full frames; delta: every subscriber asked
// for VCDIFF deltas (the payloads are one odds market's successive
// documents, so after the first message every one gets a delta frame,
// computed once per message per format). It logs the delta/full ratio of
// ns/delivery per subscriber count.
func BenchmarkChannelDeliver(b *testing.B) {
	feed, err := oddsfeed.New(oddsfeed.Config{Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	var docs [][]byte
	for i := 0; i < 256; i++ {
		docs = append(docs, feed.Move(0, time.Unix(1767225600, 0).Add(time.Duration(i)*time.Millisecond)).Payload)
	}
	for _, n := range []int{1000, 5000} {
		res := map[string]float64{}
		for _, mode := range []string{"full", "delta"} {
			b.Run(fmt.Sprintf("subs=%d/%s", n, mode), func(b *testing.B) {
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
					ch.members[c] = &member{sub: c, v: c.wire(), delta: mode == "delta"}
					ballast = append(ballast, make([]byte, 2048)) // a live edge has buffers between them
				}
				_ = ballast
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					ch.deliver(&codec.Message{Channel: "bench", ID: fmt.Sprint(i), Data: docs[i%len(docs)], Time: 1, Origin: "o", Seq: uint64(i + 1), Prev: uint64(i)})
					if i%64 == 63 {
						b.StopTimer()
						for _, c := range conns {
							clear(c.queue)
							c.queue, c.queued = c.queue[:0], 0
						}
						b.StartTimer()
					}
				}
				ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N) / float64(n)
				b.ReportMetric(ns, "ns/delivery")
				res[mode] = ns
				if mode == "delta" && b.N > 1 && h.deltas.Load() == 0 {
					b.Fatal("no delta frame was sent")
				}
			})
		}
		if res["full"] > 0 && res["delta"] > 0 {
			b.Logf("subs=%d: full %.1f ns/delivery, delta %.1f ns/delivery, delta/full %.3f", n, res["full"], res["delta"], res["delta"]/res["full"])
		}
	}
}
