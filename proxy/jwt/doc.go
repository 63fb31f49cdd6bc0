// Package jwt authenticates requests by JSON Web Tokens (RequestAuthentication,
// issue #6): compact JWS tokens verified with the standard library's crypto
// against per-issuer key sets, with the claims checked and forwarded.
//
// # What is accepted
//
// A token is three base64url (unpadded, canonical) parts of at most
// MaxTokenSize bytes together. Its header and claims are JSON objects
// nested at most MaxDepth deep and with no member name twice at the top
// level (two "alg"s or two "iss"s would let two parsers disagree). The
// header's "alg" must be in the Provider's allowlist, and the list can
// only hold asymmetric algorithms: RS256/384/512, PS256/384/512,
// ES256/384/512 and EdDSA (also spelled Ed25519, RFC 9864), Ed25519 only.
// The default allowlist is RS256 and ES256.
//
// "none" and the HMAC algorithms (HS256/384/512) are never accepted, not
// even when listed. An HMAC key is a shared secret: every proxy that
// verifies with it could also mint tokens, so distributing it to every
// sidecar hands token forgery to any compromised workload. It also
// invites the classic confusion attack, where a token "signed" with HS256
// using the issuer's public RSA key as the secret passes a verifier that
// picks the algorithm from the token. Here the algorithm only selects
// among keys whose type it requires (RSA for RS/PS, EC on the matching
// curve for ES, OKP Ed25519 for EdDSA), and there is no code path that
// uses key bytes as an HMAC secret. A "crit" header is refused (no
// extension is understood); "jku", "jwk", "x5u" and "x5c" are ignored:
// keys come only from the configured key set, never from the token.
//
// ES* signatures are the JOSE form, r||s of fixed length (64, 96 or 132
// bytes); an ASN.1 DER signature is refused. PS* use a salt as long as the
// hash (RFC 7518 §3.5). RSA keys need at least 2048 bits.
//
// Key selection: with a "kid", only the keys with that kid whose type suits
// the alg (and whose own "alg", if any, is the token's); no such key is
// ErrUnknownKey. Without a "kid", every key that suits the alg is tried.
//
// Claims: "iss" must equal Provider.Issuer; "aud" (a string or an array
// of strings) must hold one of Provider.Audiences when any are set (when
// none are set the audience is not checked, as in Istio: set them, or a
// token for one service is good at every service of the issuer); "exp" is
// required (unless Provider.ExpOptional) and "exp", "nbf" and "iat" (a
// token issued in the future) are checked with Provider.ClockSkew of
// tolerance (default 60 s). The principal is "iss/sub".
//
// # Requests
//
// An Authenticator holds the providers of one workload. Authenticate finds
// the token (Authorization: Bearer — one header, scheme case-insensitive —
// or the providers' configured headers and query parameters), picks the
// provider by the token's issuer, verifies, removes the token unless the
// provider forwards it, removes every client-supplied copy of the claim
// headers and sets them from the verified claims. No token at all is not
// an error: the request is unauthenticated and authorization policies
// decide. Any token that does not verify — or two different tokens — is
// an error, to be answered 401 (StatusCode maps every error here to it).
//
// # Keys, fetching and refresh (the control plane's side)
//
// The proxy never fetches keys: it has no network path of its own to an
// identity provider, and a sidecar fetching JWKS would multiply the load
// on the provider by the number of pods. As istiod does, the control plane
// resolves every RequestAuthentication's jwksUri, caches the JWKS per URI,
// refreshes it periodically (Istio: every 20 minutes, with retries on
// failure), and inlines the JSON into the xDS it pushes, so a key
// rotation reaches every sidecar as a config update. The proxy parses it
// once, at snapshot compilation (ParseJWKS), into an immutable KeySet.
// When the control plane cannot fetch a JWKS it pushes an empty key set
// (`{"keys":[]}`) for that issuer rather than no provider: every request
// with a token of that issuer then fails with ErrUnknownKey (401), closed,
// while requests without tokens are left to the policies, as when the
// provider works. A KeySet is immutable and safe for concurrent use, like
// Provider and Authenticator once built; nothing here blocks.
package jwt
