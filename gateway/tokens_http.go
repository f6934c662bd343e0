package gateway

import (
	"github.com/valyala/fasthttp"

	"github.com/feedgate/feedgate/codec"
)

// TokenIssuer is an optional ability of an Authorizer: it serves POST
// /v1/tokens.
type TokenIssuer interface {
	// IssueToken checks c (an API key) and answers the JSON request body
	// with a JSON response holding a signed token, or an *codec.Error.
	IssueToken(c codec.Credentials, body []byte) (resp []byte, err error)
}

// Revoker is an optional ability of an Authorizer: revocations, shared by
// the edges on codec.RevocationsChannel.
type Revoker interface {
	// Revoke checks c (an API key with the admin operation), applies the
	// revocation in the JSON body here, and returns the announcement to
	// publish to the other edges and the JSON answer for the client.
	Revoke(c codec.Credentials, body []byte) (announce, resp []byte, err error)
	// ApplyAnnouncement applies an announcement from the backbone:
	// changed reports new entries (connections are then checked), sync a
	// request to announce the whole list.
	ApplyAnnouncement(b []byte) (changed, sync bool, err error)
	// Announcement is the whole list as an announcement (nil if empty).
	Announcement() []byte
	// SyncRequest is the announcement asking every edge for its list.
	SyncRequest() []byte
}

// serveAuth serves POST /v1/tokens and POST /v1/revocations.
func (s *Server) serveAuth(ctx *fasthttp.RequestCtx, path string) {
	if !ctx.IsPost() {
		ctx.Response.Header.Set("Allow", "POST")
		writeError(ctx, fasthttp.StatusMethodNotAllowed, codec.Errorf(codec.CodeBadRequest, "use POST"))
		return
	}
	ctx.Response.Header.Set("Cache-Control", "no-store") // tokens are credentials
	if queryToken(ctx) {
		return
	}
	creds := credentials(ctx)
	if path == "/v1/tokens" {
		ti, ok := s.cfg.Authorizer.(TokenIssuer)
		if !ok {
			writeError(ctx, fasthttp.StatusNotFound, codec.Errorf(codec.CodeBadRequest, "this edge does not issue tokens"))
			return
		}
		resp, err := ti.IssueToken(creds, ctx.PostBody())
		if err != nil {
			writeError(ctx, httpStatus(codec.AsError(err).Code), codec.AsError(err))
			return
		}
		writeRaw(ctx, resp)
		return
	}
	rv, ok := s.cfg.Authorizer.(Revoker)
	if !ok {
		writeError(ctx, fasthttp.StatusNotFound, codec.Errorf(codec.CodeBadRequest, "this edge has no revocations"))
		return
	}
	announce, resp, err := rv.Revoke(creds, ctx.PostBody())
	if err != nil {
		writeError(ctx, httpStatus(codec.AsError(err).Code), codec.AsError(err))
		return
	}
	s.enforceRevocations()
	// Answer once the backbone has taken the announcement: a 200 means
	// every edge will apply it. Revoking again is harmless, so a client
	// that got an error retries.
	done := make(chan error, 1)
	s.announce(announce, func(err error) { done <- err })
	if err := <-done; err != nil {
		e := codec.AsError(err)
		writeError(ctx, httpStatus(e.Code), codec.Errorf(e.Code, "revoked on this edge, but not announced to the others (%s): send the request again", e.Message))
		return
	}
	writeRaw(ctx, resp)
}

func writeRaw(ctx *fasthttp.RequestCtx, body []byte) {
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("X-Content-Type-Options", "nosniff")
	ctx.SetBody(append(body, '\n'))
}
