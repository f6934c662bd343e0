package loadgen

import (
	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Stats are the receive-side counters of one measurement window.
type Stats struct {
	Received    int64 // messages delivered to subscribers in this window
	Dups        int64 // of those, already received by that subscriber
	Reorders    int64 // of those, older than one already received
	Late        int64 // messages of an earlier window (not counted above)
	Unexpected  int64 // messages on a channel the subscriber does not hold, or unparsable
	RxBytes     int64 // bytes read from subscriber sockets
	Frames      int64 // WebSocket frames read
	Controls    int64 // non-message frames (heartbeats, replies)
	Errors      int64 // error or nack replies
	Disconnects int64 // server-side closes or disconnect messages

	// With deltas on (Reader.EnableDelta):
	DeltaFrames  int64 // delta frames received (the rest of Received came in full)
	DeltaChecked int64 // messages rebuilt and compared with the published payload
	DeltaErrors  int64 // failed checks: wrong base, undecodable delta, payload not the published one
}

// NewHist returns the latency histogram every window uses: microseconds from
// 1 µs to 100 s with 3 significant digits.
func NewHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, 100_000_000, 3)
}

// Window is a snapshot of one measurement window, taken by Reader.Take.
type Window struct {
	Stats
	Hist *hdrhistogram.Histogram // end-to-end latency, µs
}
