package loadgen

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// srcAddrs is how many loopback source addresses connections rotate over
// (127.0.0.10 ...). One source address reaches one server address:port from
// about 28k ephemeral ports (ip_local_port_range 32768-60999), and closed
// connections sit in TIME_WAIT for a minute; 16 addresses leave ample room for
// 19k idle connections plus a 10k reconnect storm in the same run.
const srcAddrs = 16

// SourceAddrs is how many loopback source addresses (127.0.0.10 on)
// connections rotate over.
const SourceAddrs = srcAddrs

var srcCounter atomic.Uint64

// nextSource returns the next loopback source address.
func nextSource() *net.TCPAddr {
	i := srcCounter.Add(1) % srcAddrs
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(10+i))}
}

// checkLoopback refuses any target outside 127.0.0.0/8: the suite only ever
// loads servers on this machine.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.To4() == nil || ip.To4()[0] != 127 {
		return fmt.Errorf("target %q is not a 127.0.0.0/8 address", addr)
	}
	return nil
}

// wsConn is an open WebSocket connection right after the handshake.
type wsConn struct {
	nc   *net.TCPConn
	rest []byte // bytes the server sent after the 101 response
	br   *bufio.Reader
}

// dialWS connects to addr from a rotating loopback source address, performs
// the client handshake for path and writes hello (already framed) before
// returning.
func dialWS(addr, path string, hello []byte, timeout time.Duration) (*wsConn, error) {
	if err := checkLoopback(addr); err != nil {
		return nil, err
	}
	d := net.Dialer{LocalAddr: nextSource(), Timeout: timeout}
	c, err := d.Dial("tcp4", addr)
	if err != nil {
		return nil, err
	}
	nc := c.(*net.TCPConn)
	deadline := time.Now().Add(timeout)
	nc.SetDeadline(deadline)
	var k [16]byte
	rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
		"\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := nc.Write([]byte(req)); err != nil {
		nc.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(nc, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		nc.Close()
		return nil, fmt.Errorf("handshake: status %s", resp.Status)
	}
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(h[:]) ||
		!strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") {
		nc.Close()
		return nil, fmt.Errorf("handshake: bad accept/upgrade headers")
	}
	if len(hello) > 0 {
		if _, err := nc.Write(hello); err != nil {
			nc.Close()
			return nil, err
		}
	}
	w := &wsConn{nc: nc, br: br}
	if n := br.Buffered(); n > 0 {
		w.rest, _ = br.Peek(n)
		w.rest = append([]byte(nil), w.rest...)
	}
	return w, nil
}

// detach takes the socket out of the Go netpoller: it returns a duplicated,
// non-blocking descriptor and closes the net.Conn.
func (w *wsConn) detach() (int, error) {
	rc, err := w.nc.SyscallConn()
	if err != nil {
		w.nc.Close()
		return -1, err
	}
	fd := -1
	var derr error
	rc.Control(func(s uintptr) { fd, derr = syscall.Dup(int(s)) })
	w.nc.Close()
	if derr != nil {
		return -1, derr
	}
	syscall.CloseOnExec(fd)
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	return fd, nil
}
