package loadgen

import "time"

// Schedule is an open-loop publishing plan: message i is due at
// start + i/Rate and goes to channel Pick(i).
type Schedule struct {
	Rate float64       // messages per second, all channels together
	Dur  time.Duration // length of the window
	Pick func(i int64) int
}

// DriveResult reports one window of publishing.
type DriveResult struct {
	Sent      int64         // messages handed to publishers without error
	Failed    int64         // messages a publisher refused
	Unsent    int64         // messages not sent because the window overran (publishers blocked)
	Elapsed   time.Duration // actual length of the window
	MaxBehind time.Duration // worst lateness of a send against its due time
}

// overrun bounds how long a window may run past its nominal length when
// publishers block.
const overrun = 5 * time.Second

// Drive runs one window. seq holds the last sequence per channel and sent the
// count of messages sent per channel; both are updated. Channel ci is
// published by pubs[ci%len(pubs)].
func Drive(pubs []Publisher, seq, sent []int64, s Schedule) DriveResult {
	var res DriveResult
	start := time.Now()
	n := int64(s.Rate * s.Dur.Seconds())
	for i := int64(0); i < n; i++ {
		due := start.Add(time.Duration(float64(i) / s.Rate * 1e9))
		now := time.Now()
		if d := due.Sub(now); d > 0 {
			time.Sleep(d)
		} else {
			res.MaxBehind = max(res.MaxBehind, -d)
			if -d > overrun {
				res.Unsent = n - i
				break
			}
		}
		ci := s.Pick(i)
		seq[ci]++
		if err := pubs[ci%len(pubs)].Send(ci, seq[ci]); err != nil {
			res.Failed++
			continue
		}
		sent[ci]++
		res.Sent++
	}
	res.Elapsed = time.Since(start)
	return res
}
