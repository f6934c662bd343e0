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
	// Delta lets subscribers negotiate fossil deltas (subscribe with
	// "delta":"fossil"; SubscribeOptions.AllowedDeltaTypes) and publishes
	// every client publication with centrifuge.WithDelta. The in-memory
	// broker finds a publication's delta base in the channel's history, so
	// delta mode keeps at least the last publication (deltaHistory) when no
	// larger history is configured, and turns on positioning (Centrifuge
	// sends deltas only to positioned subscribers here).
	Delta bool
}

// deltaHistory is the history a delta-mode peer keeps without -history-size:
// one publication per channel, the base of the next delta, for a minute.
var deltaHistory = struct {
	size int
	ttl  time.Duration
}{1, time.Minute}

func (o Options) history() bool { return o.HistorySize > 0 && o.HistoryTTL > 0 }

// publishOptions are the options of every publication.
func (o Options) publishOptions() []centrifuge.PublishOption {
	var po []centrifuge.PublishOption
	switch {
	case o.history():
		po = append(po, centrifuge.WithHistory(o.HistorySize, o.HistoryTTL))
	case o.Delta:
		po = append(po, centrifuge.WithHistory(deltaHistory.size, deltaHistory.ttl))
	}
	if o.Delta {
		po = append(po, centrifuge.WithDelta(true))
	}
	return po
}

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
			if opt.Delta {
				// Centrifuge sends a positioned subscriber deltas against
				// the broker's previous publication; without positioning
				// it looks for the node's own previous one, which only its
				// channel medium keeps, and sends everything in full.
				rep.Options.AllowedDeltaTypes = []centrifuge.DeltaType{centrifuge.DeltaTypeFossil}
				rep.Options.EnablePositioning = true
			}
			cb(rep, nil)
		})
		c.OnPublish(func(e centrifuge.PublishEvent, cb centrifuge.PublishCallback) {
			var rep centrifuge.PublishReply
			if opt.history() {
				rep.Options.HistorySize, rep.Options.HistoryTTL = opt.HistorySize, opt.HistoryTTL
			}
			if opt.Delta {
				// A client publication carries no delta flag: publish it
				// here, with one, and hand Centrifuge the result.
				res, err := node.Publish(e.Channel, e.Data, opt.publishOptions()...)
				if err != nil {
					cb(rep, err)
					return
				}
				rep.Result = &res
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
		if _, err := node.Publish(ch, body, opt.publishOptions()...); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "{}")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	return node, mux, nil
}
