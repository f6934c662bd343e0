package gateway

import (
	"bytes"
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"

	"github.com/feedgate/feedgate/codec"
)

func (s *Server) route(ctx *fasthttp.RequestCtx) {
	path := string(ctx.Path())
	switch {
	case path == "/v1/ws":
		s.serveWS(ctx)
	case strings.HasPrefix(path, "/v1/channels/") && strings.HasSuffix(path, "/messages"):
		if !ctx.IsPost() {
			ctx.Response.Header.Set("Allow", "POST")
			writeError(ctx, fasthttp.StatusMethodNotAllowed, codec.Errorf(codec.CodeBadRequest, "use POST to publish"))
			return
		}
		s.servePublish(ctx, strings.TrimSuffix(strings.TrimPrefix(path, "/v1/channels/"), "/messages"))
	case strings.HasPrefix(path, "/v1/channels/") && strings.HasSuffix(path, "/history"):
		if !ctx.IsGet() {
			ctx.Response.Header.Set("Allow", "GET")
			writeError(ctx, fasthttp.StatusMethodNotAllowed, codec.Errorf(codec.CodeBadRequest, "use GET for history"))
			return
		}
		s.serveHistory(ctx, strings.TrimSuffix(strings.TrimPrefix(path, "/v1/channels/"), "/history"))
	case path == "/v1/tokens" || path == "/v1/revocations":
		s.serveAuth(ctx, path)
	case path == "/healthz":
		ctx.SetBodyString("ok\n")
	case path == "/readyz":
		if !s.ready.Load() {
			ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
			ctx.SetBodyString("not ready\n")
			return
		}
		// scope=local (Kubernetes readiness, the load balancer's per-pod
		// check) leaves the backbone out: a global Pub/Sub blip must not
		// take every pod of every region out of service at once. The full
		// answer is for GeoDNS, which moves a region's clients elsewhere
		// and fails open when every region is unhealthy.
		local := string(ctx.QueryArgs().Peek("scope")) == "local"
		if hc, ok := s.bb.(HealthChecker); ok && !local {
			if err := hc.Healthy(); err != nil {
				ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
				ctx.SetBodyString("not ready: backbone unreachable\n")
				return
			}
		}
		ctx.SetBodyString("ready\n")
	default:
		writeError(ctx, fasthttp.StatusNotFound, codec.Errorf(codec.CodeBadRequest, "no such endpoint: %s", codec.Clip(path)))
	}
}

// wsCredentials returns the credentials of a WebSocket upgrade: the
// Authorization header, and the token query parameter (browsers cannot set
// headers on a WebSocket).
func wsCredentials(ctx *fasthttp.RequestCtx) codec.Credentials {
	c := credentials(ctx)
	c.Token = string(ctx.QueryArgs().Peek("token"))
	return c
}

// credentials returns the credentials of an HTTP request: the
// Authorization header only. A client of the HTTP endpoints can always set
// it, and a token in a URL ends up in access logs and proxies' logs, so
// these endpoints refuse a token query parameter (queryToken) instead of
// reading it.
func credentials(ctx *fasthttp.RequestCtx) codec.Credentials {
	var c codec.Credentials
	if scheme, key, ok := strings.Cut(string(ctx.Request.Header.Peek("Authorization")), " "); ok && strings.EqualFold(scheme, "Bearer") {
		c.APIKey = strings.TrimSpace(key)
	}
	return c
}

// queryToken refuses (400 bad_request) an HTTP request other than the
// WebSocket upgrade that carries a token query parameter, and reports
// whether it did.
func queryToken(ctx *fasthttp.RequestCtx) bool {
	if !ctx.QueryArgs().Has("token") {
		return false
	}
	writeError(ctx, fasthttp.StatusBadRequest, codec.Errorf(codec.CodeBadRequest,
		"the token query parameter is accepted by GET /v1/ws only: send the token in the Authorization header (a URL ends up in logs)"))
	return true
}

func (s *Server) serveWS(ctx *fasthttp.RequestCtx) {
	if s.draining.Load() {
		writeError(ctx, fasthttp.StatusServiceUnavailable, codec.Errorf(codec.CodeGoingAway, "edge is draining; connect to another edge"))
		return
	}
	format, err := codec.ParseFormat(string(ctx.QueryArgs().Peek("format")))
	if err != nil {
		writeError(ctx, fasthttp.StatusBadRequest, codec.AsError(err))
		return
	}
	if !s.checkOrigin(ctx) {
		return
	}
	creds := wsCredentials(ctx)
	access, err := s.cfg.Authorizer.Authorize(creds)
	if err != nil {
		writeError(ctx, httpStatus(codec.AsError(err).Code), codec.AsError(err))
		return
	}
	pname := principalName(access, creds)
	if !s.checkConnect(ctx, pname) {
		return
	}
	remote := ctx.RemoteAddr().String()
	deflate := s.cfg.Deflate && offersDeflate(ctx.Request.Header.Peek("Sec-WebSocket-Extensions"))
	err = s.upgrader.Upgrade(ctx, func(ws *websocket.Conn) {
		p, ok := s.admit(ws, pname)
		if !ok {
			return
		}
		s.admitMu.Lock()
		if s.draining.Load() {
			// Shutdown began after the check above: tell the client to go
			// elsewhere rather than start a connection the drain missed.
			s.admitMu.Unlock()
			s.lim.release(p, s.cfg.Now())
			msg := websocket.FormatCloseMessage(int(codec.CodeGoingAway), "edge is draining; connect to another edge")
			_ = ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
			ws.Close()
			return
		}
		s.readers.Add(1)
		s.admitMu.Unlock()
		c := s.newConn(ws, format, access, remote)
		c.principal = p
		c.deflate = deflate
		// Hand the connection to a goroutine of its own and return: fasthttp
		// then releases the request context and its worker goroutine (with
		// KeepHijackedConns it leaves the socket to us), instead of holding
		// both for the connection's whole life.
		go func() {
			defer s.readers.Done()
			c.run()
		}()
	})
	if err != nil {
		s.cfg.Logger.Debug("websocket upgrade failed", "remote", remote, "err", err)
	}
}

func (s *Server) newConn(ws *websocket.Conn, format codec.Format, access codec.Access, remote string) *conn {
	c := &conn{
		srv:      s,
		id:       s.connSeq.Add(1),
		ws:       ws,
		format:   format,
		access:   access,
		attached: make(map[string]codec.AttachOptions),
	}
	c.auth.Store(newConnAuth(access))
	c.remote = remote
	var tc *net.TCPConn
	c.nc, tc = socketOf(rawConn(ws.NetConn())) // under TLS: no raw writes (c.rc stays nil)
	if tc != nil {
		if s.cfg.SocketSendBuffer > 0 {
			_ = tc.SetWriteBuffer(s.cfg.SocketSendBuffer)
		}
		if rc, err := tc.SyscallConn(); err == nil && c.nc == net.Conn(tc) {
			c.rc = rc
		}
	}
	c.lastRead.Store(s.cfg.Now().UnixNano())
	ws.SetPingHandler(func(data string) error {
		c.lastRead.Store(s.cfg.Now().UnixNano()) // a ping is a sign of life too
		c.enqueueCtrl(appendFrame(nil, opPong, []byte(data)))
		return nil
	})
	ws.SetCloseHandler(func(code int, _ string) error {
		if code == websocket.CloseNoStatusReceived {
			code = websocket.CloseNormalClosure
		}
		c.mu.Lock()
		if !c.closing {
			c.endLocked(EndClientClosed)
			c.pushOrderedLocked(closeFrame(code, ""))
		}
		c.mu.Unlock()
		return nil
	})
	return c
}

// run serves the connection until it ends.
func (c *conn) run() {
	s := c.srv
	s.conns.Store(c, struct{}{})
	s.nconns.Add(1)
	defer func() {
		s.conns.Delete(c)
		s.nconns.Add(-1)
		s.lim.release(c.principal, s.cfg.Now())
	}()
	if s.draining.Load() {
		c.disconnect(EndGoingAway, codec.Errorf(codec.CodeGoingAway, "edge is shutting down"), true)
	}
	c.revalidate()
	c.readLoop()
	c.finish()
}

// rawConn returns the TCP connection under fasthttp's hijacked wrapper, so
// that net.Buffers writes use writev.
func rawConn(c net.Conn) net.Conn {
	if u, ok := c.(interface{ UnsafeConn() net.Conn }); ok {
		return u.UnsafeConn()
	}
	return c
}

type httpMessage struct {
	ID   string          `json:"id"`
	Name string          `json:"name"`
	Data json.RawMessage `json:"data"`
}

type httpPublishBody struct {
	httpMessage
	Messages []httpMessage `json:"messages"`
}

type httpResult struct {
	ID    string     `json:"id,omitempty"`
	Error *httpError `json:"error,omitempty"`
}

type httpError struct {
	Code       int    `json:"code"`
	Name       string `json:"name"`
	Message    string `json:"message"`
	RetryAfter int64  `json:"retry_after,omitempty"` // milliseconds, as on the WebSocket
}

func newHTTPError(e *codec.Error) *httpError {
	return &httpError{Code: int(e.Code), Name: e.Code.String(), Message: e.Message, RetryAfter: e.RetryAfterMillis()}
}

// servePublish publishes one message or a batch on a channel and answers
// once the backbone has accepted (or refused) every message.
func (s *Server) servePublish(ctx *fasthttp.RequestCtx, channel string) {
	if s.draining.Load() {
		writeError(ctx, fasthttp.StatusServiceUnavailable, codec.Errorf(codec.CodeGoingAway, "edge is draining; publish to another edge"))
		return
	}
	access, ok := s.allowHTTP(ctx, channel, codec.Access.CanPublish)
	if !ok {
		return
	}
	var body httpPublishBody
	dec := json.NewDecoder(bytes.NewReader(ctx.PostBody()))
	if err := dec.Decode(&body); err != nil {
		writeError(ctx, fasthttp.StatusBadRequest, codec.Errorf(codec.CodeBadFrame, "body is not a JSON publish request: %s", codec.Clip(err.Error())))
		return
	}
	msgs := body.Messages
	if len(msgs) == 0 {
		msgs = []httpMessage{body.httpMessage}
	}
	if len(msgs) > s.cfg.MaxBatch {
		writeError(ctx, fasthttp.StatusRequestEntityTooLarge, codec.Errorf(codec.CodeFrameTooLarge, "batch has %d messages; the limit is %d: split it, and send the next part once this one is acknowledged", len(msgs), s.cfg.MaxBatch))
		return
	}
	batch := make([]codec.Message, len(msgs))
	for i, hm := range msgs {
		if len(hm.Data) > s.cfg.MaxFrameSize {
			writeError(ctx, fasthttp.StatusRequestEntityTooLarge, codec.Errorf(codec.CodeFrameTooLarge, "message %d: data exceeds %d bytes", i, s.cfg.MaxFrameSize))
			return
		}
		batch[i] = codec.Message{Channel: channel, ID: hm.ID, Name: hm.Name, Data: compact(hm.Data)}
		if err := codec.ValidatePublish(&batch[i]); err != nil {
			writeError(ctx, fasthttp.StatusBadRequest, codec.Errorf(codec.CodeBadRequest, "message %d: %s", i, codec.AsError(err).Message))
			return
		}
	}
	if !s.limitHTTPPublish(ctx, access, len(batch)) {
		return
	}
	if !s.waitWarm(s.stop) { // as for a WebSocket publish (conn.publish)
		writeError(ctx, fasthttp.StatusServiceUnavailable, codec.Errorf(codec.CodeGoingAway, "the edge is shutting down; publish to another edge"))
		return
	}
	results := make([]httpResult, len(batch))
	var wg sync.WaitGroup
	wg.Add(len(batch))
	s.publishBatch(batch, func(i int, id string, err error) {
		if err != nil {
			e := codec.AsError(err)
			results[i].Error = newHTTPError(e)
		} else {
			results[i].ID = id
		}
		wg.Done()
	})
	wg.Wait()
	status := fasthttp.StatusOK
	for _, r := range results {
		if r.Error != nil {
			status = httpStatus(codec.Code(r.Error.Code))
			break
		}
	}
	writeJSON(ctx, status, map[string]any{"results": results})
}

// publishBatch publishes a batch on one channel as one step (see
// Backbone.PublishBatch): IDs assigned where missing, stamped with the time.
func (s *Server) publishBatch(batch []codec.Message, done func(i int, id string, err error)) {
	now := s.cfg.Now()
	ms := make([]*codec.Message, len(batch))
	for i := range batch {
		m := &batch[i]
		if m.ID == "" {
			m.ID = s.newID()
		}
		m.Time = now.UnixMilli()
		ms[i] = m
	}
	obs := s.cfg.Observer
	report := func(i int, err error) {
		if obs != nil {
			obs.Published(s.cfg.Now().Sub(now), err)
		}
		done(i, ms[i].ID, err)
	}
	if bp, ok := s.bb.(BatchPublisher); ok {
		bp.PublishBatch(ms, report)
		return
	}
	var refused atomic.Bool
	for i, m := range ms {
		if refused.Load() {
			report(i, errBatchRefused)
			continue
		}
		s.bb.Publish(m, func(err error) {
			if err != nil {
				refused.Store(true)
			}
			report(i, err)
		})
	}
}

var errBatchRefused = codec.Errorf(codec.CodeBackboneUnavailable, "an earlier message of this batch was refused; publish again from the first refused message")

func compact(raw json.RawMessage) []byte {
	if len(raw) == 0 {
		return nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return raw
	}
	return b.Bytes()
}

// httpStatus maps a protocol code to an HTTP status, only at this edge of the
// package.
func httpStatus(c codec.Code) int {
	if codec.IsAuthCode(c) {
		return fasthttp.StatusUnauthorized
	}
	switch c {
	case codec.CodeFrameTooLarge:
		return fasthttp.StatusRequestEntityTooLarge
	case codec.CodeUnauthorized:
		return fasthttp.StatusUnauthorized
	case codec.CodeForbidden, codec.CodeOriginNotAllowed:
		return fasthttp.StatusForbidden
	case codec.CodeRateLimited, codec.CodeTooManyConnections:
		return fasthttp.StatusTooManyRequests
	case codec.CodeBackboneUnavailable, codec.CodeGoingAway, codec.CodeEdgeFull:
		return fasthttp.StatusServiceUnavailable
	case codec.CodePublishTimeout:
		return fasthttp.StatusGatewayTimeout
	case codec.CodeInternal:
		return fasthttp.StatusInternalServerError
	}
	return fasthttp.StatusBadRequest
}

// httpReadBufferSize is the HTTP server's read buffer, which bounds a
// request's line and headers together. It stays 4 KiB, not more: with
// ReduceMemoryUsage and KeepHijackedConns, an upgraded WebSocket
// connection keeps this buffer for its whole life, and 4 KiB already holds
// a URL with the longest channel name (codec.MaxChannelLen) many times over.
const httpReadBufferSize = 4096

// httpReadError answers a request the HTTP server could not read. A request
// line and headers larger than httpReadBufferSize (an over-long channel name
// in the path, say) get the protocol's JSON error, with 431; anything else
// gets what fasthttp's default handler answers (plain text).
func httpReadError(ctx *fasthttp.RequestCtx, err error) {
	if _, ok := err.(*fasthttp.ErrSmallBuffer); ok {
		writeError(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge, codec.Errorf(codec.CodeBadRequest,
			"request line and headers exceed %d bytes (a channel name is at most %d bytes)", httpReadBufferSize, codec.MaxChannelLen))
		return
	}
	if ne, ok := err.(*net.OpError); ok && ne.Timeout() {
		ctx.Error("Request timeout", fasthttp.StatusRequestTimeout)
		return
	}
	ctx.Error("Error when parsing request", fasthttp.StatusBadRequest)
}

func writeError(ctx *fasthttp.RequestCtx, status int, e *codec.Error) {
	writeJSON(ctx, status, map[string]any{"error": newHTTPError(e)})
}

// writeJSON writes v as the response body, without HTML escaping (payloads
// keep their "<", ">" and "&" as published, as on WebSocket connections).
func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	// Bodies carry payloads and echoed input unescaped: never let a browser
	// sniff them as HTML.
	ctx.Response.Header.Set("X-Content-Type-Options", "nosniff")
	enc := json.NewEncoder(ctx) // appends the newline
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

type historyMessage struct {
	ID     string          `json:"id"`
	Name   string          `json:"name,omitempty"`
	Data   json.RawMessage `json:"data"`
	Time   int64           `json:"time"`
	Pos    string          `json:"pos"`
	Cursor string          `json:"cursor"`
}

// serveHistory answers GET /v1/channels/{channel}/history?limit=N&before=C:
// the channel's history on this edge, newest first, paged by cursor.
func (s *Server) serveHistory(ctx *fasthttp.RequestCtx, channel string) {
	if _, ok := s.allowHTTP(ctx, channel, codec.Access.CanHistory); !ok {
		return
	}
	q := ctx.QueryArgs()
	limit, before, err := parseHistoryQuery(q.Peek("limit"), q.Peek("before"))
	if err != nil {
		writeError(ctx, fasthttp.StatusBadRequest, codec.AsError(err))
		return
	}
	if !s.waitWarm(s.stop) {
		writeError(ctx, fasthttp.StatusServiceUnavailable, codec.Errorf(codec.CodeGoingAway, "the edge is shutting down"))
		return
	}
	out := []historyMessage{}
	if ch := s.hub.get(channel, false); ch != nil {
		for _, e := range ch.history(limit, before) {
			out = append(out, historyMessage{ID: e.m.ID, Name: e.m.Name, Data: e.m.Data, Time: e.m.Time, Pos: e.pos, Cursor: strconv.FormatUint(e.serial, 10)})
		}
	}
	resp := map[string]any{"messages": out}
	if len(out) == limit && out[len(out)-1].Cursor != "1" {
		resp["next"] = out[len(out)-1].Cursor
	}
	writeJSON(ctx, fasthttp.StatusOK, resp)
}

// allowHTTP checks an HTTP request's channel name and credentials against
// the operation (an Access method) and returns the access; if refused, it
// writes the error.
func (s *Server) allowHTTP(ctx *fasthttp.RequestCtx, channel string, op func(codec.Access, string) error) (codec.Access, bool) {
	if err := codec.ValidateChannel(channel); err != nil {
		writeError(ctx, fasthttp.StatusBadRequest, codec.AsError(err))
		return nil, false
	}
	if queryToken(ctx) {
		return nil, false
	}
	access, err := s.cfg.Authorizer.Authorize(credentials(ctx))
	if err == nil {
		err = op(access, channel)
	}
	if err != nil {
		writeError(ctx, httpStatus(codec.AsError(err).Code), codec.AsError(err))
		return nil, false
	}
	return access, true
}

// parseHistoryQuery reads the history endpoint's limit (default 100, 1 to
// maxHistoryPage) and before (a cursor, 0 when absent).
func parseHistoryQuery(limitArg, beforeArg []byte) (limit int, before uint64, err error) {
	limit = 100
	if len(limitArg) > 0 {
		n, err := strconv.Atoi(string(limitArg))
		if err != nil || n < 1 || n > maxHistoryPage {
			return 0, 0, codec.Errorf(codec.CodeBadRequest, "limit must be an integer from 1 to %d", maxHistoryPage)
		}
		limit = n
	}
	if len(beforeArg) > 0 {
		n, err := strconv.ParseUint(string(beforeArg), 10, 64)
		if err != nil || n == 0 {
			return 0, 0, codec.Errorf(codec.CodeBadRequest, "before must be a cursor from an earlier page")
		}
		before = n
	}
	return limit, before, nil
}

// maxHistoryPage bounds one history page.
const maxHistoryPage = 1000
