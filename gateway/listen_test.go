package gateway_test

import (
	"context"
	"net"
	"syscall"
	"testing"

	"github.com/feedgate/feedgate/gateway"
)

// TestListenNoKeepAlive: accepted connections skip TCP keep-alive (the edge
// has heartbeats) and keep TCP_NODELAY.
func TestListenNoKeepAlive(t *testing.T) {
	ln, err := gateway.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	rc, err := a.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var keepalive, nodelay int
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		keepalive, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
		if gerr == nil {
			nodelay, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_NODELAY)
		}
	}); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	if keepalive != 0 || nodelay == 0 {
		t.Fatalf("SO_KEEPALIVE=%d TCP_NODELAY=%d, want 0 and 1", keepalive, nodelay)
	}
}
