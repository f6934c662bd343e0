// Package peer is the comparison server of the load-test suite: WebSocket
// fan-out built on github.com/centrifugal/centrifuge with its in-memory
// broker and the library's default configuration. cmd/peer serves it.
package peer

import (
	"context"
	"io"
	"net/http"

	"github.com/centrifugal/centrifuge"
)

// New starts a Centrifuge node and returns it with its HTTP handler:
//
//	GET  /connection/websocket   Centrifuge bidirectional WebSocket (JSON protocol)
//	POST /api/publish?channel=CH body = publication data (a JSON value)
//	GET  /readyz                 200
//
// Every connection is accepted anonymously, may subscribe to any channel and
// may publish to any channel from the client side (publish command).
func New() (*centrifuge.Node, http.Handler, error) {
	node, err := centrifuge.New(centrifuge.Config{LogLevel: centrifuge.LogLevelNone})
	if err != nil {
		return nil, nil, err
	}
	node.OnConnecting(func(ctx context.Context, e centrifuge.ConnectEvent) (centrifuge.ConnectReply, error) {
		return centrifuge.ConnectReply{Credentials: &centrifuge.Credentials{UserID: ""}}, nil
	})
	node.OnConnect(func(c *centrifuge.Client) {
		c.OnSubscribe(func(e centrifuge.SubscribeEvent, cb centrifuge.SubscribeCallback) {
			cb(centrifuge.SubscribeReply{}, nil)
		})
		c.OnPublish(func(e centrifuge.PublishEvent, cb centrifuge.PublishCallback) {
			cb(centrifuge.PublishReply{}, nil)
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
		if _, err := node.Publish(ch, body); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "{}")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	return node, mux, nil
}
