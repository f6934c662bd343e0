// Command sink is the load generator's yardstick for connection rates: a
// minimal WebSocket server, one goroutine over raw descriptors and epoll,
// that answers the upgrade and each of our attach frames with an attached
// frame and does nothing else (no channels, no heartbeats, no publishing).
// Pinned to the server's core it costs so little per connection that the
// idle and connect-rate scenarios run into the generator's own limit: its
// figures say how fast the generator can open connections, so a server
// measured well below them is measured, not the generator.
//
// GET without an Upgrade header (the suite's readiness check) gets 200 "ok".
package main

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

type sconn struct {
	in       []byte // incomplete request or frame
	upgraded bool
}

var (
	conns   = map[int]*sconn{}
	buf     = make([]byte, 64<<10)
	out     = make([]byte, 0, 512)
	lastKey string
	lastAcc string
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8300", "listen address (loopback)")
	flag.Parse()
	ln, bound, err := listen(*addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "sink listening on %s\n", bound)
	log.Fatal(serve(ln))
}

// listen opens a non-blocking listening socket on addr, which must be on
// 127.0.0.0/8 (port 0 picks one), and returns it with its address.
func listen(addr string) (int, string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return -1, "", err
	}
	ip := net.ParseIP(host).To4()
	p, err := strconv.Atoi(port)
	if ip == nil || ip[0] != 127 || err != nil {
		return -1, "", fmt.Errorf("sink: address %q: want a 127.0.0.0/8 host:port", addr)
	}
	ln, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, "", err
	}
	unix.SetsockoptInt(ln, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err := unix.Bind(ln, &unix.SockaddrInet4{Port: p, Addr: [4]byte(ip)}); err != nil {
		unix.Close(ln)
		return -1, "", err
	}
	if err := unix.Listen(ln, 4096); err != nil {
		unix.Close(ln)
		return -1, "", err
	}
	sa, err := unix.Getsockname(ln)
	if err != nil {
		unix.Close(ln)
		return -1, "", err
	}
	a := sa.(*unix.SockaddrInet4)
	return ln, net.JoinHostPort(net.IP(a.Addr[:]).String(), strconv.Itoa(a.Port)), nil
}

// serve runs the epoll loop on listening socket ln; it returns only on an
// epoll failure.
func serve(ln int) error {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, ln, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(ln)}); err != nil {
		return err
	}
	events := make([]unix.EpollEvent, 512)
	for {
		n, err := unix.EpollWait(ep, events, -1)
		if err != nil && err != unix.EINTR {
			return err
		}
		for i := 0; i < n; i++ {
			fd := int(events[i].Fd)
			if fd == ln {
				accept(ep, ln)
				continue
			}
			if c := conns[fd]; c != nil {
				read(fd, c)
			}
		}
	}
}

func accept(ep, ln int) {
	for {
		fd, _, err := unix.Accept4(ln, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			return // EAGAIN, or out of descriptors until some close
		}
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}); err != nil {
			unix.Close(fd)
			continue
		}
		conns[fd] = &sconn{}
	}
}

func closeConn(fd int) {
	delete(conns, fd)
	unix.Close(fd)
}

func read(fd int, c *sconn) {
	n, err := unix.Read(fd, buf)
	if err == unix.EAGAIN || err == unix.EINTR {
		return
	}
	if n <= 0 {
		closeConn(fd)
		return
	}
	data := buf[:n]
	if len(c.in) > 0 {
		c.in = append(c.in, data...)
		data = c.in
	}
	if !c.upgraded {
		end := bytes.Index(data, []byte("\r\n\r\n"))
		if end < 0 {
			if len(data) > 16<<10 {
				closeConn(fd)
				return
			}
			c.in = append(c.in[:0], data...)
			return
		}
		key := header(data[:end+2], "sec-websocket-key")
		if key == nil {
			unix.Write(fd, []byte("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"))
			closeConn(fd)
			return
		}
		if string(key) != lastKey {
			h := sha1.Sum([]byte(string(key) + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
			lastKey, lastAcc = string(key), base64.StdEncoding.EncodeToString(h[:])
		}
		out = append(out[:0], "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
		out = append(out, lastAcc...)
		out = append(out, "\r\n\r\n"...)
		if !write(fd, out) {
			return
		}
		c.upgraded = true
		data = data[end+4:]
	}
	off := frames(fd, data)
	if off < 0 {
		return // closed
	}
	c.in = append(c.in[:0], data[off:]...)
}

// frames answers every complete client frame in data and returns the
// bytes consumed, or -1 when the connection was closed.
func frames(fd int, data []byte) int {
	off := 0
	for {
		b := data[off:]
		if len(b) < 2 {
			return off
		}
		op, n, h := b[0]&0x0f, int(b[1]&0x7f), 2
		switch n {
		case 126:
			if len(b) < 4 {
				return off
			}
			n, h = int(b[2])<<8|int(b[3]), 4
		case 127:
			closeConn(fd) // no client frame of ours is that large
			return -1
		}
		masked := b[1]&0x80 != 0
		if masked {
			h += 4
		}
		if len(b) < h+n {
			return off
		}
		p := b[h : h+n]
		if masked {
			m := b[h-4 : h]
			for i := range p {
				p[i] ^= m[i&3]
			}
		}
		off += h + n
		switch op {
		case 0x8:
			closeConn(fd)
			return -1
		case 0x1:
			if bytes.Contains(p, []byte(`"type":"attach"`)) {
				ref := []byte("1")
				if i := bytes.Index(p, []byte(`"ref":`)); i >= 0 {
					j := i + 6
					for j < len(p) && p[j] >= '0' && p[j] <= '9' {
						j++
					}
					if j > i+6 {
						ref = p[i+6 : j]
					}
				}
				msg := append(append([]byte(`{"type":"attached","ref":`), ref...), `,"pos":"0-0","continuity":"fresh"}`...)
				out = append(out[:0], 0x81, byte(len(msg)))
				out = append(out, msg...)
				if !write(fd, out) {
					return -1
				}
			}
		}
	}
}

func write(fd int, b []byte) bool {
	if k, err := unix.Write(fd, b); err != nil || k != len(b) {
		closeConn(fd)
		return false
	}
	return true
}

// header returns the value of the named header (lower-case name) in head,
// or nil.
func header(head []byte, name string) []byte {
	for len(head) > 0 {
		i := bytes.IndexByte(head, '\n')
		if i < 0 {
			return nil
		}
		line := bytes.TrimRight(head[:i], "\r")
		head = head[i+1:]
		k, v, ok := bytes.Cut(line, []byte(":"))
		if ok && bytes.EqualFold(bytes.TrimSpace(k), []byte(name)) {
			return bytes.TrimSpace(v)
		}
	}
	return nil
}
