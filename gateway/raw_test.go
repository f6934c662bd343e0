package gateway_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// MustDialRaw opens a WebSocket connection that the test drives by hand
// (it never answers heartbeats and reads only when told to).
func MustDialRaw(tb testing.TB, url string) *websocket.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := websocket.Dialer{NetDialContext: (&net.Dialer{}).DialContext}
	ws, _, err := d.DialContext(ctx, url+"/v1/ws", nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ws.Close() })
	return ws
}
