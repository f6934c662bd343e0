// Package peer is the comparison server of the load-test suite: WebSocket
// fan-out built on github.com/centrifugal/centrifuge with its in-memory
// broker and the library's default configuration. cmd/peer serves it.
package peer

import (
	"context"
	"io"
	"net/http"
	"time"

	"github.com/centrifugal/centrifuge"
)

// Options configure the peer. The zero value is the library's defaults: no
// history, no recovery.
type Options struct {
	// HistorySize and HistoryTTL, both set, keep each channel's last
	// HistorySize publications for HistoryTTL in the in-memory broker and
	// turn on recovery (SubscribeOptions.EnableRecovery, stream mode): a
	// client that re-subscribes with recover:true and the epoch and offset
	// it had gets the publications it missed in the subscribe reply, or
	// recovered:false when history no longer covers the gap.
	HistorySize int
	HistoryTTL  time.Duration
}

func (o Options) history() bool { return o.HistorySize > 0 && o.HistoryTTL > 0 }

// New starts a Centrifuge node and returns it with its HTTP handler:
//
//	GET  /connection/websocket   Centrifuge bidirectional WebSocket (JSON protocol)
//	POST /api/publish?channel=CH body = publication data (a JSON value)
//	GET  /readyz                 200
//
// Every connection is accepted anonymously, may subscribe to any channel and
// may publish to any channel from the client side (publish command).
func New(opt Options) (*centrifuge.Node, http.Handler, error) {
	node, err := centrifuge.New(centrifuge.Config{LogLevel: centrifuge.LogLevelNone})
	if err != nil {
		return nil, nil, err
	}
	node.OnConnecting(func(ctx context.Context, e centrifuge.ConnectEvent) (centrifuge.ConnectReply, error) {
		return centrifuge.ConnectReply{Credentials: &centrifuge.Credentials{UserID: ""}}, nil
	})
	node.OnConnect(func(c *centrifuge.Client) {
		c.OnSubscribe(func(e centrifuge.SubscribeEvent, cb centrifuge.SubscribeCallback) {
			var rep centrifuge.SubscribeReply
			rep.Options.EnableRecovery = opt.history()
			cb(rep, nil)
		})
		c.OnPublish(func(e centrifuge.PublishEvent, cb centrifuge.PublishCallback) {
			var rep centrifuge.PublishReply
			if opt.history() {
				rep.Options.HistorySize, rep.Options.HistoryTTL = opt.HistorySize, opt.HistoryTTL
			}
			cb(rep, nil)
		})
	})
	if err := node.Run(); err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/connection/websocket", centrifuge.NewWebsocketHandler(node, centrifuge.WebsocketConfig{
		CheckOrigin: func(*http.Request) bool { return true },
	}))
	mux.HandleFunc("POST /api/publish", func(w http.ResponseWriter, r *http.Request) {
		ch := r.URL.Query().Get("channel")
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if ch == "" || err != nil || len(body) == 0 {
			http.Error(w, "need ?channel= and a body", http.StatusBadRequest)
			return
		}
		var po []centrifuge.PublishOption
		if opt.history() {
			po = append(po, centrifuge.WithHistory(opt.HistorySize, opt.HistoryTTL))
		}
		if _, err := node.Publish(ch, body, po...); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "{}")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	return node, mux, nil
}
