// Package client is the Go client of the gateway's wire protocol v1
// (docs/protocol.md): connect in JSON or msgpack, subscribe to channels,
// publish with acknowledgement, read history.
//
// # Session
//
// A Session is what applications use. It stays connected: when its edge
// drains, dies, goes quiet (nothing for SessionOptions.DeadAfter) or drops
// the connection, it reconnects with exponential backoff and jitter, to the
// next of SessionOptions.URLs, and re-attaches every channel with the
// resume token of the last message it buffered, so each channel's stream
// goes on with nothing missed and nothing repeated; when the new edge's
// history cannot cover the gap, the subscription is told
// (codec.ContinuityLost) and the application should refetch the channel's
// state. It stops only on Close, when an edge says not to reconnect
// (disconnect with reconnect false, e.g. too_many_errors), or when every
// URL refused its upgrade, in a row, with a client error (4000–4099: a
// wrong API key, a token expired or invalid and no
// SessionOptions.Credentials to get another); Err then says why. Busy or
// draining edges (edge_full, too_many_connections, going_away) are tried
// again, with a backoff.
//
//	s := client.NewSession(client.SessionOptions{URLs: []string{"wss://edge.example.com"}})
//	defer s.Close()
//	sub, err := s.Subscribe(ctx, "odds:match-1", client.SubscribeOptions{
//		OnMessage:    func(m client.Message) { ... },
//		OnContinuity: func(e client.ContinuityEvent) { ... }, // refetch on codec.ContinuityLost
//	})
//	...
//	err = sub.Detach(ctx)
//
// Without OnMessage, a subscription's messages are read from
// Subscription.Messages. Session.Attach is the older form: the messages
// of every channel attached with it come, in order per channel, on
// Session.Messages.
//
// Session.Publish gives every message an ID (unless the caller does) and
// publishes it again, with the same ID, when the connection is lost before
// the ack or the edge answers with a retryable nack; the edges
// deduplicate by ID, so the message is delivered once. Several goroutines
// may publish on one channel at once: publishes are pipelined, and after
// a retryable nack (rate_limited, a backbone refusal) the channel's
// publishes go one at a time, the refused one first once its retry_after
// has passed, then the others in the order they were asked for, so that
// nothing overtakes a refusal and the edge has no reason to count the
// publisher against its error budget (protocol §10, §14.1).
//
// SessionOptions.OnState is told every connection state change
// (connecting, connected, disconnected with the edge's code and reason,
// closed); SessionOptions.Credentials is asked for credentials before
// every connection attempt, the place to fetch a fresh capability token.
// Session.History reads a channel's history from the edge connected to.
//
// # Delivery and slow applications
//
// The connection's reader never waits for the application: it answers
// heartbeats and puts each message in its subscription's buffer
// (SubscribeOptions.Buffer, default Options.Buffer: 4096); a goroutine per
// subscription hands messages to the application in order. A full buffer
// drops the messages that do not fit and, once the application has taken
// half of it, re-attaches the channel resuming after the last buffered
// message: the edge replays what was dropped from its history, or, when
// history no longer holds it, the subscription gets a ContinuityEvent with
// codec.ContinuityLost. A slow handler thus costs its own channel a replay,
// never the connection or the other channels.
//
// Frames of types this client does not know, from later protocol
// versions, are skipped. A mid-stream continuity frame (type
// "continuity": the edge lost messages of a channel) is surfaced to the
// subscription like a lost continuity on a re-attach.
//
// # Client
//
// A Client is one connection, without reconnection or buffering policy:
// for tests and tools. Its messages come on one channel in arrival order;
// a consumer that stops reading it eventually stops the connection's
// reader, and the edge then drops the client as idle or as a slow
// consumer, as it would any client.
//
// # Concurrency
//
// The methods of Session, Subscription and Client are safe to call from
// several goroutines. Handlers (OnMessage, OnContinuity, OnAttached) run on
// their subscription's goroutine, OnState on a goroutine of its own; they
// may call the session's methods, Detach and Close included. Close, which
// from elsewhere waits for every handler to return, returns at once when a
// handler calls it, and the session ends once that handler has returned.
package client
