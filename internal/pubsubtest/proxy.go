package pubsubtest

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy forwards TCP connections from a loopback port to a target. Down cuts
// every connection and refuses new ones, as an unreachable server would; Up
// restores service on the same port; Cut drops some connections at random;
// Freeze silently swallows everything.
type Proxy struct {
	tb     testing.TB
	target string
	Addr   string

	frozen atomic.Bool // drop every byte, close nothing: a silent dead peer

	mu    sync.Mutex // guards the fields below
	ln    net.Listener
	conns map[net.Conn]net.Conn // client side -> upstream side
}

// Freeze makes the proxy swallow all traffic without closing anything, as
// a peer that died without a FIN or a network that black-holes packets.
func (p *Proxy) Freeze() { p.frozen.Store(true) }

// MustStartProxy starts a proxy to target, closed at the end of the test.
func MustStartProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	p := &Proxy{tb: tb, target: target, conns: make(map[net.Conn]net.Conn)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p.Addr = ln.Addr().String()
	p.serve(ln)
	tb.Cleanup(p.Down)
	return p
}

func (p *Proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.pipe(c)
		}
	}()
}

func (p *Proxy) pipe(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	if !p.track(c, up) {
		return
	}
	go func() { p.copy(up, c); up.Close() }()
	p.copy(c, up)
	c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// copy forwards src to dst, dropping the bytes while frozen.
func (p *Proxy) copy(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.frozen.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *Proxy) track(c, up net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		c.Close()
		up.Close()
		return false
	}
	p.conns[c] = up
	return true
}

// Cut closes up to n of the proxied connections, chosen at random (Go's map
// order), as a flaky network would. It returns how many it cut.
func (p *Proxy) Cut(n int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	cut := 0
	for c, up := range p.conns {
		if cut == n {
			break
		}
		c.Close()
		up.Close()
		delete(p.conns, c)
		cut++
	}
	return cut
}

// Conns is the number of connections being proxied.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Down closes the listener and every proxied connection.
func (p *Proxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c, up := range p.conns {
		c.Close()
		up.Close()
		delete(p.conns, c)
	}
}

// Up listens again on the same address.
func (p *Proxy) Up() {
	p.tb.Helper()
	ln, err := net.Listen("tcp", p.Addr)
	if err != nil {
		p.tb.Fatalf("proxy up: %v", err)
	}
	p.serve(ln)
}
