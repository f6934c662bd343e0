// Package auth decides what clients may do: API keys (id:secret, with
// capabilities, from flags or a keys file reloaded on SIGHUP), capability
// tokens (JWTs signed with Ed25519, ES256 or HMAC, verified with configured
// keys or a JWKS URL), the token endpoint's issuing, and the revocation
// list the edges share through the backbone. Capabilities map channel
// patterns to operations (capability.go has the exact pattern rules).
//
// auth imports codec and golang-jwt only; it knows nothing of the
// gateway's transport. Authorizer implements gateway.Authorizer, and its
// IssueToken and Revoke methods the gateway's token and revocation
// endpoints. Every type is safe for concurrent use once built. Secrets and
// tokens are never logged: keys are named by ID, tokens by jti.
package auth
