package gateway

import (
	"math"
	"strconv"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"

	"github.com/feedgate/feedgate/codec"
)

// checkOrigin refuses (403, origin_not_allowed) an upgrade from a browser
// page whose Origin is not on the allow-list.
func (s *Server) checkOrigin(ctx *fasthttp.RequestCtx) bool {
	if s.origins.allow(ctx.Request.Header.Peek("Origin")) {
		return true
	}
	s.stats.refused[RefusedOrigin].Add(1)
	writeError(ctx, fasthttp.StatusForbidden, codec.Errorf(codec.CodeOriginNotAllowed,
		"origin %q may not connect to this edge", codec.Clip(string(ctx.Request.Header.Peek("Origin")))))
	return false
}

// checkConnect refuses an upgrade over the edge's connection cap (503,
// edge_full) or over its principal's (429, too_many_connections), before
// the handshake. It reserves nothing: admit decides once the connection is
// upgraded, so connections racing past this check are refused there.
func (s *Server) checkConnect(ctx *fasthttp.RequestCtx, principal string) bool {
	r, e := s.lim.canConnect(principal)
	if e == nil {
		return true
	}
	s.stats.refused[r].Add(1)
	writeError(ctx, httpStatus(e.Code), e)
	return false
}

// admit counts an upgraded connection against the caps, or closes it with
// the refusal's code as the close code (the rare case of connections of
// one key that passed checkConnect together). Once admitted, the
// connection is released exactly once (conn.run, or the drain check).
func (s *Server) admit(ws *websocket.Conn, principal string) (*principal, bool) {
	p, r, e := s.lim.acquire(principal, s.cfg.Now())
	if e == nil {
		return p, true
	}
	s.stats.refused[r].Add(1)
	msg := websocket.FormatCloseMessage(int(e.Code), e.Message)
	_ = ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
	ws.Close()
	return nil, false
}

// limitHTTPPublish takes a batch of n messages from its principal's
// publish bucket, or refuses the whole batch (429, rate_limited, with
// Retry-After in whole seconds): nothing of it is published. A request
// without a key or subject counts against its client address.
func (s *Server) limitHTTPPublish(ctx *fasthttp.RequestCtx, access codec.Access, n int) bool {
	lim := s.cfg.Limits.PublishPerKey
	if lim.Off() {
		return true
	}
	name := principalName(access, credentials(ctx))
	if name == "" {
		name = "addr:" + ctx.RemoteIP().String()
	}
	now := s.cfg.Now()
	p := s.lim.principal(name, now)
	which, retry := take(now, n, nil, p.pub)
	if which == 0 {
		return true
	}
	s.stats.refused[RefusedPublishKey].Add(1)
	ctx.Response.Header.Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(retry.Seconds())))))
	writeError(ctx, fasthttp.StatusTooManyRequests, rateLimited("this key's publish", lim, retry))
	return false
}
