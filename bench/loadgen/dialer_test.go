package loadgen

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/feedgate/feedgate/bench/peer"
)

func TestParseUpgrade(t *testing.T) {
	ok := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + string(wsAccept) + "\r\n\r\n"
	lower := "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\nsec-websocket-accept:" + string(wsAccept) + "\r\n\r\n"
	frame := "\x81\x05hello"
	cases := []struct {
		name string
		in   string
		n    int
		err  error
	}{
		{"complete", ok, len(ok), nil},
		{"with frames after", ok + frame, len(ok), nil},
		{"lower-case names", lower, len(lower), nil},
		{"incomplete", ok[:len(ok)-1], 0, nil},
		{"status only", "HTTP/1.1 101 Swi", 0, nil},
		{"short", "HTTP/1", 0, nil},
		{"refused", "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", 0, errNot101},
		{"refused, incomplete", "HTTP/1.1 400 Bad Request\r\nCont", 0, errNot101},
		{"wrong accept", strings.Replace(ok, string(wsAccept[:4]), "AAAA", 1), 0, errBadAccept},
		{"no accept", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", 0, errBadAccept},
		{"no upgrade", "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: " + string(wsAccept) + "\r\n\r\n", 0, errNoUpgrade},
		{"too long", "HTTP/1.1 101 Switching Protocols\r\nX: " + strings.Repeat("x", maxUpgradeResponse), 0, errTooLong},
	}
	for _, c := range cases {
		n, err := parseUpgrade([]byte(c.in))
		if n != c.n || !errors.Is(err, c.err) {
			t.Errorf("%s: got %d, %v; want %d, %v", c.name, n, err, c.n, c.err)
		}
	}
	if !bytes.Contains(upgradeRequest("127.0.0.1:1", "/x"), []byte("Sec-WebSocket-Key: "+wsKey+"\r\n")) {
		t.Fatal("request without the key")
	}
}

// rawServer is a minimal WebSocket server speaking just enough of our
// protocol for the dialer: it answers the upgrade and each attach frame
// with an attached frame. split sends the 101 in two writes, the second
// one carrying an attached frame before the client's attach arrived (the
// reader must find it in the bytes after the headers). status, when not
// 101, refuses the upgrade.
type rawServer struct {
	ln     net.Listener
	split  bool
	status int
	wg     sync.WaitGroup
}

func newRawServer(t *testing.T, split bool, status int) *rawServer {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln, split: split, status: status}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() { defer s.wg.Done(); s.serve(c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func serverFrame(payload string) []byte {
	return append([]byte{0x81, byte(len(payload))}, payload...)
}

func (s *rawServer) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	if s.status != 101 {
		fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Length: 0\r\n\r\n", s.status, http.StatusText(s.status))
		return
	}
	if req.Header.Get("Sec-WebSocket-Key") != wsKey {
		return
	}
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + string(wsAccept) + "\r\n\r\n"
	early := s.split
	if s.split {
		c.Write([]byte(resp[:30]))
		time.Sleep(20 * time.Millisecond)
		c.Write(append([]byte(resp[30:]), serverFrame(`{"type":"attached","ref":1,"channel":"early","pos":"1.a-0","continuity":"fresh"}`)...))
	} else {
		c.Write([]byte(resp))
	}
	for { // client frames: masked, short
		var h [6]byte
		if _, err := io.ReadFull(br, h[:2]); err != nil {
			return
		}
		n := int(h[1] & 0x7f)
		if n >= 126 {
			return
		}
		if _, err := io.ReadFull(br, h[2:6]); err != nil {
			return
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(br, p); err != nil {
			return
		}
		for i := range p {
			p[i] ^= h[2+i&3]
		}
		if bytes.Contains(p, []byte(`"attach"`)) && !early {
			c.Write(serverFrame(`{"type":"attached","ref":1,"channel":"c","pos":"1.a-0","continuity":"fresh"}`))
		}
	}
}

func oneChannelSubs(n int) []*Sub {
	subs := make([]*Sub, n)
	for i := range subs {
		subs[i] = NewSub(i, []int32{0})
	}
	return subs
}

func TestEpollDialRawServer(t *testing.T) {
	for _, split := range []bool{false, true} {
		t.Run(fmt.Sprintf("split=%v", split), func(t *testing.T) {
			s := newRawServer(t, split, 101)
			r, err := NewReader(Target{Name: "raw", Kind: Ours, Addr: s.ln.Addr().String(), Format: "json"}, 1)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			cr := Connect(r, oneChannelSubs(30), []string{"c"}, 8, 30, 10*time.Second)
			if cr.Attached != 30 || cr.Dialed != 30 || cr.Failed != 0 || len(cr.Errors) != 0 {
				t.Fatalf("%+v", cr)
			}
			if cr.AttachP50Ms <= 0 || r.Open() != 30 {
				t.Fatalf("attach p50 %v ms, open %d", cr.AttachP50Ms, r.Open())
			}
		})
	}
}

func TestEpollDialErrors(t *testing.T) {
	s := newRawServer(t, false, 403)
	r, err := NewReader(Target{Name: "raw", Kind: Ours, Addr: s.ln.Addr().String()}, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cr := Connect(r, oneChannelSubs(10), []string{"c"}, 4, 10, 5*time.Second)
	if cr.Failed != 10 || cr.Dialed != 0 || cr.Attached != 0 || cr.Errors["handshake: not a 101 response: HTTP/1.1 403 Forbidden"] != 10 {
		t.Fatalf("%+v", cr)
	}

	// A port nobody listens on.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r2, err := NewReader(Target{Name: "none", Kind: Ours, Addr: addr}, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	cr = Connect(r2, oneChannelSubs(10), []string{"c"}, 4, 10, 5*time.Second)
	if cr.Failed != 10 || cr.Errors["connect: connection refused"] != 10 {
		t.Fatalf("%+v", cr)
	}

	// Only loopback targets.
	r3, err := NewReader(Target{Name: "far", Kind: Ours, Addr: "192.0.2.1:80"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r3.Close()
	if cr = Connect(r3, oneChannelSubs(2), []string{"c"}, 4, 2, time.Second); cr.Failed != 2 || cr.Dialed != 0 {
		t.Fatalf("%+v", cr)
	}
}

// TestEpollDialTimeout: a server that accepts and never answers makes every
// dial time out.
func TestEpollDialTimeout(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	}()
	r, err := NewReader(Target{Name: "mute", Kind: Ours, Addr: ln.Addr().String()}, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cr := Connect(r, oneChannelSubs(5), []string{"c"}, 8, 5, 300*time.Millisecond)
	if cr.Failed != 5 || cr.Errors["timeout"] != 5 {
		t.Fatalf("%+v", cr)
	}
}

func startPeer(t *testing.T) Target {
	node, h, err := peer.New(peer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close(); node.Shutdown(t.Context()) })
	return Target{Name: "peer", Kind: Peer, Addr: ln.Addr().String()}
}

// checkRate runs ConnectRate briefly against tg: every connection it
// started must end subscribed (and closed) or failed, none may fail, and
// none may stay open.
func checkRate(t *testing.T, tg Target) {
	t.Helper()
	r, err := NewReader(tg, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var marks []bool
	rr := ConnectRate(r, RateOptions{Channels: []string{"rate:a", "rate:b"}, InFlight: 16, Window: 300 * time.Millisecond,
		DialTimeout: 10 * time.Second, Mark: func(end bool) { marks = append(marks, end) }})
	if rr.Failed != 0 || rr.Attached == 0 || rr.Attached != rr.Started || rr.InWindow > rr.Attached || rr.Upgraded != rr.Started {
		t.Fatalf("%+v", rr)
	}
	if rr.Hist.TotalCount() != rr.Attached || rr.P50 <= 0 || rr.P99 < rr.P50 || rr.PerSec <= 0 {
		t.Fatalf("hist %d of %d, p50 %v p99 %v, %v/s", rr.Hist.TotalCount(), rr.Attached, rr.P50, rr.P99, rr.PerSec)
	}
	if len(marks) != 2 || marks[0] || !marks[1] {
		t.Fatalf("marks %v", marks)
	}
	if r.Open() != 0 || r.Attached() != 0 {
		t.Fatalf("open %d, attached %d after the run", r.Open(), r.Attached())
	}
	t.Logf("%s: %d subscribed in %.2fs (%.0f/s), p50 %.2f ms p99 %.2f ms", tg.Name, rr.Attached, rr.WindowSec, rr.PerSec, rr.P50, rr.P99)
}

func TestConnectRatePeer(t *testing.T) { checkRate(t, startPeer(t)) }

// startEdge starts the edge binary FEEDGATE_EDGE names (go build -o
// /tmp/edge ./cmd/edge at the repository root) on a free loopback port, or
// skips the test.
func startEdge(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("FEEDGATE_EDGE")
	if bin == "" {
		t.Skip("FEEDGATE_EDGE not set")
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "-addr", addr, "-log-level", "warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(fmt.Sprintf("http://%s/readyz", addr))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("edge not ready: %v", err)
		}
	}
	return addr
}

// TestEdgeEpollDial opens 200 connections with the epoll dialer to our
// edge in each format; every one must get its attached reply. Then a short
// connect-rate run.
func TestEdgeEpollDial(t *testing.T) {
	addr := startEdge(t)
	for _, f := range []string{"json", "msgpack"} {
		t.Run(f, func(t *testing.T) {
			tg := Target{Name: "ours-" + f, Kind: Ours, Addr: addr, Format: f}
			r, err := NewReader(tg, 10)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			channels := make([]string, 10)
			for i := range channels {
				channels[i] = fmt.Sprintf("dial:%s:%d", f, i)
			}
			subs := make([]*Sub, 200)
			for i := range subs {
				subs[i] = NewSub(i, []int32{int32(i % 10)})
			}
			cr := Connect(r, subs, channels, 64, 200, 20*time.Second)
			if cr.Attached != 200 || cr.Dialed != 200 || cr.Failed != 0 || len(cr.Errors) != 0 {
				t.Fatalf("%+v", cr)
			}
			if c := r.Continuity(); c.Fresh != 200 {
				t.Fatalf("continuity %+v", c)
			}
			if st := r.Peek(); st.Errors != 0 || st.Disconnects != 0 {
				t.Fatalf("reader stats %+v", st)
			}
		})
	}
	t.Run("rate", func(t *testing.T) { checkRate(t, Target{Name: "ours-json", Kind: Ours, Addr: addr, Format: "json"}) })
}

// TestConnectClosedReader: dialling through a reader that was closed fails
// at once instead of waiting for a loop that is gone.
func TestConnectClosedReader(t *testing.T) {
	s := newRawServer(t, false, 101)
	r, err := NewReader(Target{Name: "raw", Kind: Ours, Addr: s.ln.Addr().String()}, 1)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	done := make(chan ConnectResult, 1)
	go func() { done <- Connect(r, oneChannelSubs(3), []string{"c"}, 4, 3, 5*time.Second) }()
	select {
	case cr := <-done:
		if cr.Attached != 0 || cr.FirstErr != "reader closed" {
			t.Fatalf("%+v", cr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Connect on a closed reader did not return")
	}
}
