package client

import (
	"fmt"
	"sync"

	"github.com/feedgate/feedgate/codec"
)

// State is a Session's connection state.
type State int

// Connection states, in the order a session goes through them: Connecting
// before every attempt, then Connected or Disconnected (a failed attempt,
// or a connection that ended), again and again until Closed.
const (
	StateConnecting State = iota
	StateConnected
	StateDisconnected
	StateClosed
)

func (s State) String() string {
	switch s {
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateDisconnected:
		return "disconnected"
	case StateClosed:
		return "closed"
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// StateEvent is one change of a Session's connection state.
type StateEvent struct {
	State State
	// URL is the edge being tried, connected to or left.
	URL string
	// Code and Reason, on StateDisconnected, say why: the edge's disconnect
	// code and message (codec.CodeGoingAway when it drains), the WebSocket
	// close code, the code of an upgrade the edge refused (unauthorized,
	// a token's code, edge_full, ...), or Code 0 and what failed (a dial,
	// a silent edge, a dropped connection). On StateClosed, Reason is Err's text, if any.
	Code   codec.Code
	Reason string
	// Reconnect, on StateDisconnected, tells whether the session will
	// connect again. It does unless the edge said not to (a disconnect
	// with reconnect false), or every URL refused the upgrade in a row with
	// a code that trying again with the same credentials cannot turn (a
	// client error, 4000–4099: a wrong key, an expired or invalid token
	// when SessionOptions.Credentials is not set to renew it, an origin
	// not allowed); the session then ends, with that refusal as its Err.
	Reconnect bool
	// Err, on StateClosed, is why the session ended (nil after Close).
	Err error
}

func (e StateEvent) String() string {
	switch e.State {
	case StateDisconnected:
		if e.Code != 0 {
			return fmt.Sprintf("disconnected from %s: %s (%d): %s", e.URL, e.Code, int(e.Code), e.Reason)
		}
		return fmt.Sprintf("disconnected from %s: %s", e.URL, e.Reason)
	case StateClosed:
		if e.Err != nil {
			return "closed: " + e.Err.Error()
		}
		return "closed"
	}
	return fmt.Sprintf("%s %s", e.State, e.URL)
}

// serial runs functions one at a time, in order, on a goroutine of its
// own, so that the session's own goroutines never wait for a callback.
type serial struct {
	wake chan struct{}
	done chan struct{}

	mu     sync.Mutex // guards the fields below
	q      []func()
	closed bool
}

func newSerial(g *goroutines) *serial {
	s := &serial{wake: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer g.enter()()
		s.run()
	}()
	return s
}

// do queues f; after close it is dropped.
func (s *serial) do(f func()) {
	s.mu.Lock()
	if !s.closed {
		s.q = append(s.q, f)
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// close runs what is queued, then ends; it does not wait.
func (s *serial) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *serial) run() {
	defer close(s.done)
	for {
		s.mu.Lock()
		q, closed := s.q, s.closed
		s.q = nil
		s.mu.Unlock()
		for _, f := range q {
			f()
		}
		if len(q) > 0 {
			continue
		}
		if closed {
			return
		}
		<-s.wake
	}
}
