package codec

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Code is a stable, documented error code (docs/protocol.md, "Error codes").
// Codes live in 4000–4999 so that a code that ends a connection can be used
// as the WebSocket close code unchanged.
type Code int

// Error codes. The numbers are part of the wire protocol: never renumber.
const (
	// Client errors: the frame was refused, the connection goes on.
	CodeBadFrame          Code = 4000 // not valid JSON/msgpack, or not a frame object
	CodeUnknownType       Code = 4001 // "type" is missing or not a known frame type
	CodeFrameTooLarge     Code = 4002 // frame larger than the edge's frame limit
	CodeInvalidChannel    Code = 4003 // channel name empty, too long or with a forbidden character
	CodeTooManyChannels   Code = 4004 // attach would exceed the per-connection channel limit
	CodeNotAttached       Code = 4005 // publish or detach on a channel this connection has not attached
	CodeBadRequest        Code = 4006 // a field is missing, of the wrong type or out of range
	CodeUnsupportedOption Code = 4007 // an attach option this edge does not implement yet
	CodeUnauthorized      Code = 4010 // no or unknown credentials for the operation
	CodeForbidden         Code = 4030 // credentials valid, operation not allowed
	CodeOriginNotAllowed  Code = 4035 // the browser page's Origin is not on the edge's allow-list

	// Connection-level reasons, sent in a disconnect frame and as the close code.
	CodeTooManyErrors Code = 4100 // the client kept sending bad frames
	CodeSlowConsumer  Code = 4101 // the client did not read fast enough; its send queue overflowed
	CodeGoingAway     Code = 4102 // the edge is draining or shutting down; reconnect elsewhere
	CodeIdleTimeout   Code = 4103 // nothing was read from the client for too long

	// Server-side errors: the request may be retried.
	CodeInternal            Code = 4500 // unexpected failure inside the edge
	CodeBackboneUnavailable Code = 4503 // the backbone did not accept the publish (down, paused or rejected)
	CodePublishTimeout      Code = 4504 // the backbone did not answer within the publish timeout
	CodeEdgeFull            Code = 4505 // the edge holds as many connections as it may; connect to another edge
	CodeTooManyConnections  Code = 4528 // the key or subject holds as many connections on this edge as it may
	CodeRateLimited         Code = 4529 // over a publish or attach rate limit; retry later
)

var codeNames = map[Code]string{
	CodeBadFrame:            "bad_frame",
	CodeUnknownType:         "unknown_type",
	CodeFrameTooLarge:       "frame_too_large",
	CodeInvalidChannel:      "invalid_channel",
	CodeTooManyChannels:     "too_many_channels",
	CodeNotAttached:         "not_attached",
	CodeBadRequest:          "bad_request",
	CodeUnsupportedOption:   "unsupported_option",
	CodeUnauthorized:        "unauthorized",
	CodeForbidden:           "forbidden",
	CodeOriginNotAllowed:    "origin_not_allowed",
	CodeTooManyErrors:       "too_many_errors",
	CodeSlowConsumer:        "slow_consumer",
	CodeGoingAway:           "going_away",
	CodeIdleTimeout:         "idle_timeout",
	CodeInternal:            "internal",
	CodeBackboneUnavailable: "backbone_unavailable",
	CodePublishTimeout:      "publish_timeout",
	CodeEdgeFull:            "edge_full",
	CodeTooManyConnections:  "too_many_connections",
	CodeRateLimited:         "rate_limited",
}

// String returns the code's stable short name, e.g. "invalid_channel".
func (c Code) String() string {
	if n, ok := codeNames[c]; ok {
		return n
	}
	return fmt.Sprintf("code_%d", int(c))
}

// Retryable reports whether a request refused with c may succeed if sent again
// unchanged.
func (c Code) Retryable() bool {
	return c >= 4500
}

// Error is the one error type of the protocol: a stable code and a human
// message. It is what nack, error and disconnect frames carry.
type Error struct {
	Code    Code
	Message string
	// RetryAfter, when not zero, is how long to wait before sending the
	// refused request again (rate_limited says when the bucket holds
	// enough again). On the wire: retry_after, whole milliseconds, rounded
	// up; at most MaxRetryAfter.
	RetryAfter time.Duration
}

// MaxRetryAfter bounds a wire retry_after: a larger value is read as this.
const MaxRetryAfter = time.Hour

// RetryAfterMillis is e's RetryAfter in whole milliseconds, rounded up (a
// wait of 1 ns is 1 ms, never 0, which means none), at most MaxRetryAfter.
func (e *Error) RetryAfterMillis() int64 {
	if e == nil || e.RetryAfter <= 0 {
		return 0
	}
	d := min(e.RetryAfter, MaxRetryAfter)
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (%d): %s", e.Code, int(e.Code), e.Message)
}

// Is makes errors.Is match any *Error with the same code, so callers can test
// against the sentinels below.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Message == ""
}

// Errorf returns an *Error with code c and a formatted message.
func Errorf(c Code, format string, args ...any) *Error {
	return &Error{Code: c, Message: fmt.Sprintf(format, args...)}
}

// Sentinels for errors.Is; they carry no message.
var (
	ErrBadFrame            = &Error{Code: CodeBadFrame}
	ErrUnknownType         = &Error{Code: CodeUnknownType}
	ErrInvalidChannel      = &Error{Code: CodeInvalidChannel}
	ErrBadRequest          = &Error{Code: CodeBadRequest}
	ErrUnauthorized        = &Error{Code: CodeUnauthorized}
	ErrForbidden           = &Error{Code: CodeForbidden}
	ErrBackboneUnavailable = &Error{Code: CodeBackboneUnavailable}
	ErrPublishTimeout      = &Error{Code: CodePublishTimeout}
)

// AsError returns err as an *Error, mapping anything else to CodeInternal.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternal, Message: err.Error()}
}

// maxEcho bounds how much client input an error message repeats: a refusal
// names what was wrong, it does not send a 60 KB number back.
const maxEcho = 64

// Clip returns s cut to at most 64 bytes, on a UTF-8 boundary, with an
// ellipsis if it was cut. Every error message built from client data
// passes that data through it.
func Clip(s string) string {
	if len(s) <= maxEcho {
		return s
	}
	n := maxEcho
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
