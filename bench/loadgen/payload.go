package loadgen

import (
	"strconv"
	"sync"
	"time"

	"github.com/feedgate/feedgate/internal/oddsfeed"
)

// Payload appends the data of one message: a JSON object whose first keys are
// "ts" (unix ns at send), "seq" (per-channel sequence) and "ci" (channel
// index), which the reader extracts.
type Payload func(dst []byte, ts, seq int64, ci int) []byte

func appendHead(dst []byte, ts, seq int64, ci int) []byte {
	dst = append(dst, `{"ts":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendInt(dst, seq, 10)
	dst = append(dst, `,"ci":`...)
	return strconv.AppendInt(dst, int64(ci), 10)
}

// Padded returns a payload of exactly size bytes (for size >= 64): the head
// and a "pad" string of letters.
func Padded(size int) Payload {
	return func(dst []byte, ts, seq int64, ci int) []byte {
		start := len(dst)
		dst = appendHead(dst, ts, seq, ci)
		dst = append(dst, `,"pad":"`...)
		for len(dst)-start < size-2 {
			dst = append(dst, 'a'+byte((len(dst)-start)%26))
		}
		return append(dst, `"}`...)
	}
}

// Odds returns the payloads of a simulated odds feed (internal/oddsfeed):
// message seq on channel ci is the feed's next price move of market slot
// ci (feed.Channel(ci) is the channel's name), its full JSON document with
// the head keys first. Each market moves on its own random source, so
// the k-th message of a channel is the same document in every run,
// whichever order the publishers' goroutines ask in; the stamp changes.
// Safe for concurrent use (one lock around the feed).
func Odds(feed *oddsfeed.Feed) Payload {
	var mu sync.Mutex
	return func(dst []byte, ts, seq int64, ci int) []byte {
		mu.Lock()
		u := feed.Move(ci, time.Unix(0, ts))
		mu.Unlock()
		dst = appendHead(dst, ts, seq, ci)
		dst = append(dst, ',')
		return append(dst, u.Payload[1:]...)
	}
}
