package codec

// Credentials are what a client presents when connecting or publishing over
// HTTP.
type Credentials struct {
	// APIKey is what follows "Authorization: Bearer ": an API key
	// ("id:secret") or a capability token (a JWT), told apart by shape.
	APIKey string
	// Token is a capability token, from the "token" query parameter.
	Token string
}

// Access is what one authenticated client may do. Each Can method returns
// nil or an *Error (CodeUnauthorized, CodeForbidden, CodeTokenExpired,
// CodeRevoked).
type Access interface {
	// CanAttach: may the client subscribe to channel (receive its messages)?
	CanAttach(channel string) error
	// CanPublish: may the client publish on channel?
	CanPublish(channel string) error
	// CanHistory: may the client read channel's history (the history
	// endpoint, rewind on attach)?
	CanHistory(channel string) error
	// Subject is a stable name of the principal ("key:<id>", "sub:<jwt
	// subject>", AnonymousSubject), for per-principal limits and logs. It
	// is never a secret.
	Subject() string
}

// AnonymousSubject is the Subject of a client without credentials: not a
// principal that limits are shared across.
const AnonymousSubject = "anonymous"
