package loadgen

import (
	"strconv"
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

var selectionNames = []string{"Home", "Draw", "Away", "Over 2.5", "Under 2.5", "Both teams score"}

// Odds returns an odds-shaped payload: one market with two to six selections
// (depending on the channel) whose prices move with the sequence number.
// Typical size is 250-600 bytes.
func Odds() Payload {
	return func(dst []byte, ts, seq int64, ci int) []byte {
		dst = appendHead(dst, ts, seq, ci)
		dst = append(dst, `,"market":{"id":"mkt-`...)
		dst = strconv.AppendInt(dst, int64(ci), 10)
		dst = append(dst, `","event":"ev-`...)
		dst = strconv.AppendInt(dst, int64(ci/3), 10)
		dst = append(dst, `","name":"Match Result","status":"open","inplay":true,"selections":[`...)
		n := 2 + ci%5
		for i := 0; i < n; i++ {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"id":"sel-`...)
			dst = strconv.AppendInt(dst, int64(i+1), 10)
			dst = append(dst, `","name":"`...)
			dst = append(dst, selectionNames[i]...)
			dst = append(dst, `","price":`...)
			price := 1.2 + float64((seq*7+int64(i)*13+int64(ci))%900)/100
			dst = strconv.AppendFloat(dst, price, 'f', 2, 64)
			dst = append(dst, `,"suspended":false}`...)
		}
		return append(dst, "]}}"...)
	}
}
