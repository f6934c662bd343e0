package codec

// Credentials are what a client presents when connecting or publishing over
// HTTP.
type Credentials struct {
	APIKey string // "id:secret", from "Authorization: Bearer <key>"
	Token  string // a capability token, from the "token" query parameter
}

// Access is what one authenticated client may do. Each method returns nil
// or an *Error (CodeUnauthorized, CodeForbidden).
type Access interface {
	CanAttach(channel string) error
	CanPublish(channel string) error
}
