package gateway_test

import (
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/feedgate/feedgate/gateway"
	"github.com/feedgate/feedgate/internal/edgetest"
)

// TestGoroutinesReturnAfterConnectionChurn: connections come and go in the
// ways mobile clients do (abrupt TCP close while attached with conflation
// and deltas, a reader that stops reading on a hot channel, a publish
// followed at once by a close, a half-written frame), while the channel is
// hot. Once every connection is gone, the edge's goroutines return to what
// they were before. (From a fault probe, where it held; kept as a
// regression test.)
func TestGoroutinesReturnAfterConnectionChurn(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{Authorizer: mustStatic(t, keyA), SendQueueBytes: 32 << 10, WriteTimeout: 300 * time.Millisecond}, nil)
	stop := make(chan struct{})
	var pubWG sync.WaitGroup
	pubWG.Add(1)
	go func() {
		defer pubWG.Done()
		pad := strings.Repeat("z", 1500)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			req, _ := http.NewRequest("POST", e.API+"/v1/channels/odds:leak/messages", strings.NewReader(fmt.Sprintf(`{"data":{"k":"m%d","v":%d,"pad":%q}}`, i%4, i, pad)))
			req.Header.Set("Authorization", "Bearer "+keyA)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	}()
	// Warm up the edge's own goroutines (flushers, timers, HTTP workers).
	for range 5 {
		ws := edgetest.MustDialRaw(t, e.URL)
		_ = ws.WriteJSON(map[string]any{"type": "attach", "ref": 1, "channel": "odds:leak"})
		readReply(t, ws)
		ws.Close()
	}
	edgetest.WaitFor(t, "warm-up connections to end", func() bool { return e.Srv.Stats().Connections == 0 })
	base := goroutinesBesidesIdleWorkers()
	var wg sync.WaitGroup
	for i := range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ws := edgetest.MustDialRaw(t, e.URL)
			defer ws.Close()
			switch i % 4 {
			case 0: // conflated delta subscriber, gone without a close frame
				_ = ws.WriteJSON(map[string]any{"type": "attach", "ref": 1, "channel": "odds:leak", "options": map[string]any{"delta": "vcdiff", "conflate": "100ms", "conflate_key": "k", "rewind": 50}})
				time.Sleep(50 * time.Millisecond) // let it receive a little
			case 1: // stops reading on the hot channel
				_ = ws.WriteJSON(map[string]any{"type": "attach", "ref": 1, "channel": "odds:leak", "options": map[string]any{"delta": "vcdiff"}})
				time.Sleep(400 * time.Millisecond)
			case 2: // publishes and leaves before the ack
				_ = ws.WriteJSON(map[string]any{"type": "attach", "ref": 1, "channel": "odds:leak", "options": map[string]any{"publish_only": true}})
				_ = ws.WriteJSON(map[string]any{"type": "publish", "ref": 2, "channel": "odds:leak", "data": 1})
			case 3: // a frame header promising more than is sent
				nc := ws.NetConn()
				_, _ = nc.Write([]byte{0x81, 0xfe, 0x10, 0x00, 1, 2, 3, 4, 'x'})
			}
		}()
	}
	wg.Wait()
	close(stop)
	pubWG.Wait()
	edgetest.WaitFor(t, "every connection to end", func() bool { return e.Srv.Stats().Connections == 0 })
	deadline := time.Now().Add(10 * time.Second)
	for goroutinesBesidesIdleWorkers() > base+2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := goroutinesBesidesIdleWorkers(); n > base+2 {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("goroutines %d, %d before the churn:\n%s", n, base, buf)
	}
}

// goroutinesBesidesIdleWorkers counts goroutines other than fasthttp's idle workers
// (a pool that keeps them for MaxIdleWorkerDuration, not a leak).
func goroutinesBesidesIdleWorkers() int {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.TrimSpace(g) != "" && !strings.Contains(g, "fasthttp.(*workerPool).workerFunc") {
			n++
		}
	}
	return n
}
