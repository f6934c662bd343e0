package client

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/feedgate/feedgate/auth"
	"github.com/feedgate/feedgate/backbone"
	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/gateway"
)

// proxy is a TCP relay on loopback between sessions and an edge. While
// holding, what clients send is read and kept, not forwarded (a network
// that stopped carrying the uplink); cut closes every relayed connection.
type proxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	holding bool
	conns   []net.Conn
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: strings.TrimPrefix(target, "ws://")}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go io.Copy(c, u) // downlink
			go func() {      // uplink
				buf := make([]byte, 32<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						p.mu.Lock()
						hold := p.holding
						p.mu.Unlock()
						if !hold {
							if _, err := u.Write(buf[:n]); err != nil {
								return
							}
						}
					}
					if err != nil {
						u.Close()
						return
					}
				}
			}()
		}
	}()
	return p
}

func (p *proxy) url() string { return "ws://" + p.ln.Addr().String() }

func (p *proxy) hold(on bool) {
	p.mu.Lock()
	p.holding = on
	p.mu.Unlock()
}

func (p *proxy) cut() {
	p.mu.Lock()
	cs := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
}

// TestReconnectKeepsPublishOrder: publishes 0…7 on one channel are
// sent, in that order (each once the one before is on the wire), from
// eight goroutines of one Session; the connection is lost before the
// edge read any of them. Each is published again on the next connection
// (package doc), and the lane's rule is that nothing goes out of the order
// the publishes were first sent in ("in the order they were first sent
// (or asked for)", publish.go). Before, each caller got ErrClosed and
// published again as a new ticket with a new key, in whatever order the
// goroutines woke: the subscriber saw them reordered (3 of 3 runs); now
// the cut-off publishes go back to the lane's queue in their places.
func TestReconnectKeepsPublishOrder(t *testing.T) {
	_, edge := startEdge(t, gateway.Config{})
	sub, err := Dial(ctx10(t), edge, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	if err := sub.Attach(ctx10(t), "o", codec.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, edge)
	s := NewSession(SessionOptions{URLs: []string{p.url()}, Logger: quiet(), MinBackoff: time.Millisecond})
	t.Cleanup(func() { s.Close() })
	if _, err := s.Attach(ctx10(t), "o", codec.AttachOptions{PublishOnly: true}); err != nil {
		t.Fatal(err)
	}
	inflight := func() int {
		s.pmu.Lock()
		defer s.pmu.Unlock()
		if l := s.lanes["o"]; l != nil {
			return len(l.inflight)
		}
		return 0
	}
	const n = 8
	p.hold(true)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := s.Publish(ctx10(t), "o", []byte(strconv.Itoa(i)), PublishOptions{})
			errs <- err
		}()
		waitFor(t, "publish "+strconv.Itoa(i)+" on the wire", func() bool { return inflight() == i+1 })
	}
	p.hold(false)
	p.cut()
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for range n {
		select {
		case m := <-sub.Messages():
			got = append(got, string(m.Data))
		case <-time.After(10 * time.Second):
			t.Fatalf("got %v, then nothing", got)
		}
	}
	if g := strings.Join(got, ","); g != "0,1,2,3,4,5,6,7" {
		t.Fatalf("subscriber got %s, want 0,1,2,3,4,5,6,7 (the order they were sent in)", g)
	}
}

// TestNoLaneLeftOnInvalidChannel: a Session publishes on a channel
// name the edge rejects (too long). The edge's nack for invalid_channel
// carries no channel (protocol §3, §5.4), so publishReply finds no lane
// for it and the ticket (with its payload) stays in the lane's inflight
// map, and the lane in s.lanes, for the connection's life: one entry per
// such publish, for hours on a long-lived session. Publish now checks the
// name first, as attach does.
func TestNoLaneLeftOnInvalidChannel(t *testing.T) {
	_, edge := startEdge(t, gateway.Config{})
	s := NewSession(SessionOptions{URLs: []string{edge}, Logger: quiet()})
	t.Cleanup(func() { s.Close() })
	bad := strings.Repeat("x", 200)
	_, err := s.Publish(ctx10(t), bad, []byte(`1`), PublishOptions{})
	var e *codec.Error
	if !errors.As(err, &e) || e.Code != codec.CodeInvalidChannel {
		t.Fatalf("publish on a 200-byte channel name: %v, want invalid_channel", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		s.pmu.Lock()
		n := len(s.lanes)
		s.pmu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d lane(s) left 2s after the only publish ended, want 0", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stallingBackbone is the in-process backbone with Cloud Pub/Sub's
// behaviour under an outage, for one channel: once stalled, publishes are
// held (the ordering key's queue) until fail, which refuses every held one
// in order with publish_timeout (the key is paused, then resumed).
type stallingBackbone struct {
	*backbone.Local
	mu    sync.Mutex
	stall bool
	held  []func(error)
}

func (b *stallingBackbone) Publish(m *codec.Message, done func(error)) {
	b.mu.Lock()
	if b.stall {
		b.held = append(b.held, done)
		b.mu.Unlock()
		return
	}
	b.mu.Unlock()
	b.Local.Publish(m, done)
}

func (b *stallingBackbone) heldCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.held)
}

func (b *stallingBackbone) fail() {
	b.mu.Lock()
	held := b.held
	b.held, b.stall = nil, false
	b.mu.Unlock()
	for _, done := range held {
		done(codec.Errorf(codec.CodePublishTimeout, "the backbone did not accept the message in time"))
	}
}

// TestBackboneNackAfterRateNack: a publisher over its rate while the
// backbone is slow (a Pub/Sub outage: publishes time out after 5 s). A
// goes to the backbone and hangs; B, right behind it, is refused at once
// with rate_limited. The edge answers B before A (its own checks answer at
// once, backbone answers come later, although protocol §3 says answers to
// one channel's publishes come in publish order). The lane drives B first;
// after its retry_after B goes to the backbone behind A; then both time
// out. The lane now puts A first (by key) and publishes A; the edge holds
// the channel for B (the retry that lifted its block was refused again,
// gateway/requests.go publishOrder.refused) and refused A for order, again
// and again: neither was ever published, both Publish calls hung. Now the
// edge's block is on the refused publish it received first, whatever the
// order of the refusals, which is the lane's order too.
func TestBackboneNackAfterRateNack(t *testing.T) {
	bb := &stallingBackbone{Local: backbone.NewLocal(backbone.LocalConfig{})}
	a, err := auth.NewStatic(nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := gateway.New(gateway.Config{Authorizer: a, Logger: quiet(), DrainPeriod: 50 * time.Millisecond,
		Limits: gateway.Limits{PublishPerConn: gateway.Rate{PerSecond: 5, Burst: 1}}}, bb)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := gateway.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(context.Background(), ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	url := "ws://" + ln.Addr().String()
	s := NewSession(SessionOptions{URLs: []string{url}, Logger: quiet()})
	t.Cleanup(func() { s.Close() })
	if _, err := s.Attach(ctx10(t), "o", codec.AttachOptions{PublishOnly: true}); err != nil {
		t.Fatal(err)
	}
	bb.mu.Lock()
	bb.stall = true
	bb.mu.Unlock()
	errs := make(chan error, 2)
	pub := func(d string) {
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
		defer cancel()
		_, err := s.Publish(ctx, "o", []byte(d), PublishOptions{})
		errs <- err
	}
	go pub("0")
	waitFor(t, "A held by the backbone", func() bool { return bb.heldCount() == 1 })
	go pub("1")
	// B: rate_limited, then after its retry_after (200 ms) sent again,
	// and held behind A.
	waitFor(t, "B's retry held by the backbone", func() bool { return bb.heldCount() == 2 })
	bb.fail()
	for range 2 {
		if err := <-errs; err != nil {
			s.pmu.Lock()
			var q []string
			if l := s.lanes["o"]; l != nil {
				for _, tk := range l.queue {
					q = append(q, string(tk.data))
				}
			}
			s.pmu.Unlock()
			t.Fatalf("publish: %v; lane queue %v; %d refusals counted against the error budget", err, q, srv.Stats().BadFrames)
		}
	}
}
