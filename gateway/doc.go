// Package gateway is the client-facing side of an edge: WebSocket
// connections (fasthttp + fasthttp/websocket), the channel → subscribers
// hub, fan-out with per-connection bounded send queues and coalesced writes,
// and the HTTP endpoints (batch publish, health, readiness).
//
// gateway is the only package that imports fasthttp. It reaches the backbone
// and the authorizer through the small interfaces declared in backbone.go and
// auth.go. Server's exported methods are safe to call concurrently.
//
// Lock order: a hub shard's mu, then a channel's mu, then a connection's mu,
// then a flusher's mu. Fan-out enqueues to connections under the channel's
// lock; a connection schedules itself on a flusher under its own.
package gateway
