package main

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"sync"
	"time"

	"github.com/feedgate/feedgate/internal/oddsfeed"
)

// job is one update to publish, with its message id.
type job struct {
	u  oddsfeed.Update
	id string
}

// publisher publishes the jobs of one worker's channels, in order, and
// reports each outcome to the tally. run returns when q is closed and
// every job was settled (acked, refused, or left unconfirmed when giveUp
// ends).
type publisher interface {
	run(giveUp context.Context, q <-chan job)
	close()
}

// hooks let the test see what was published.
type hooks struct {
	generated func(j job) // called in generation order, before the job is queued
}

// run generates the feed at o's rate until ctx ends, o.duration passes or
// o.count updates were made, publishes every update, and returns the
// tally. An error means the run could not start or the edge refused the
// publisher as a whole.
func run(ctx context.Context, o options, progress io.Writer, h *hooks) (summary, error) {
	t := newTally()
	feed, err := oddsfeed.New(o.feed)
	if err != nil {
		return t.summary(o, oddsfeed.Stats{}, 0), err
	}
	// giveUp ends retries: at a signal, or o.timeout after generation ends.
	giveUp, abandon := context.WithCancel(context.Background())
	defer abandon()
	fatal := make(chan error, 1)
	pubs := make([]publisher, o.workers)
	for i := range pubs {
		if o.transport == "ws" {
			pubs[i], err = newWSPublisher(o, t, fatal)
		} else {
			pubs[i], err = newHTTPPublisher(o, t)
		}
		if err != nil {
			return t.summary(o, oddsfeed.Stats{}, 0), err
		}
	}
	defer func() {
		for _, p := range pubs {
			p.close()
		}
	}()
	queues := make([]chan job, o.workers)
	var wg sync.WaitGroup
	for i := range queues {
		queues[i] = make(chan job, 1024)
		wg.Add(1)
		go func(p publisher, q chan job) {
			defer wg.Done()
			p.run(giveUp, q)
		}(pubs[i], queues[i])
	}

	start := time.Now()
	var end <-chan time.Time
	if o.duration > 0 {
		tm := time.NewTimer(o.duration)
		defer tm.Stop()
		end = tm.C
	}
	var tick <-chan time.Time
	if o.progress > 0 {
		tk := time.NewTicker(o.progress)
		defer tk.Stop()
		tick = tk.C
	}
	var runErr error
	var n int64
	var us []oddsfeed.Update
	pace := time.NewTimer(0)
	defer pace.Stop()
gen:
	for o.count == 0 || n < o.count {
		// The next step is due when the updates so far, at the rate, are.
		due := start.Add(time.Duration(float64(n) / o.feed.Rate * float64(time.Second)))
		pace.Reset(time.Until(due))
		for waiting := true; waiting; {
			select {
			case <-pace.C:
				waiting = false
			case <-ctx.Done():
				break gen
			case <-end:
				break gen
			case runErr = <-fatal:
				break gen
			case <-tick:
				fmt.Fprintln(progress, t.progressLine(n, time.Since(start)))
			}
		}
		us = feed.Step(us[:0], time.Now())
		for _, u := range us {
			if o.count > 0 && n == o.count {
				break
			}
			n++
			j := job{u: u, id: o.idPrefix + "-" + fmt.Sprint(n)}
			t.generated(len(u.Payload))
			if h != nil && h.generated != nil {
				h.generated(j)
			}
			select { // blocks while the worker's queue is full: the edge sets the pace
			case queues[worker(u.Channel, o.workers)] <- j:
			case <-ctx.Done():
				t.unconfirmed(1)
				break gen
			case runErr = <-fatal:
				t.unconfirmed(1)
				break gen
			}
		}
	}
	genTime := time.Since(start)
	for _, q := range queues {
		close(q)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	deadline := time.NewTimer(o.timeout)
	defer deadline.Stop()
	select {
	case <-done:
	case <-ctx.Done():
		abandon()
		<-done
	case <-deadline.C:
		abandon()
		<-done
	case runErr = <-fatal:
		abandon()
		<-done
	}
	return t.summary(o, feed.Stats(), genTime), runErr
}

// worker is the worker that owns channel ch: all of a channel's updates go
// through one worker, so they are published in order.
func worker(ch string, workers int) int {
	h := fnv.New32a()
	h.Write([]byte(ch))
	return int(h.Sum32() % uint32(workers))
}
