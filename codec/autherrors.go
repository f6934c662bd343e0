package codec

// Access-control codes (docs/protocol.md §15). Like every code they are
// part of the wire protocol: never renumber. 4010–4019 say why credentials
// were refused; each refuses the upgrade (HTTP 401), an attach, a publish,
// a history read, a token request or an auth frame, and, where it ends a
// connection, is its disconnect and close code.
const (
	CodeTokenInvalid       Code = 4011 // malformed, bad signature, "none" or wrong algorithm, missing claim, lifetime too long
	CodeTokenExpired       Code = 4012 // exp passed (also the disconnect when a token expired unrenewed)
	CodeTokenNotYetValid   Code = 4013 // nbf or iat in the future
	CodeTokenWrongIssuer   Code = 4014 // iss is not the issuer the edge trusts
	CodeTokenWrongAudience Code = 4015 // aud does not include the edge's audience
	CodeTokenUnknownKey    Code = 4016 // kid names no key the edge knows
	CodeTokenTooLarge      Code = 4017 // token longer than the edge's limit (4 KiB by default)
	CodeRevoked            Code = 4018 // the API key, token (jti) or subject was revoked
	CodeTokenExpiring      Code = 4019 // warning: the token expires soon; renew it with an auth frame
)

// Sentinels for errors.Is.
var (
	ErrTokenInvalid = &Error{Code: CodeTokenInvalid}
	ErrTokenExpired = &Error{Code: CodeTokenExpired}
	ErrRevoked      = &Error{Code: CodeRevoked}
)

func init() {
	for c, n := range map[Code]string{
		CodeTokenInvalid:       "token_invalid",
		CodeTokenExpired:       "token_expired",
		CodeTokenNotYetValid:   "token_not_yet_valid",
		CodeTokenWrongIssuer:   "token_wrong_issuer",
		CodeTokenWrongAudience: "token_wrong_audience",
		CodeTokenUnknownKey:    "token_unknown_key",
		CodeTokenTooLarge:      "token_too_large",
		CodeRevoked:            "revoked",
		CodeTokenExpiring:      "token_expiring",
	} {
		codeNames[c] = n
	}
}

// IsAuthCode reports whether c refuses credentials (unauthorized and the
// codes above): the HTTP edge answers them with 401.
func IsAuthCode(c Code) bool {
	return c >= CodeUnauthorized && c <= CodeTokenExpiring
}
