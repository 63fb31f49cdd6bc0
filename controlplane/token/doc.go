// Package token manages join tokens: short-lived bearer secrets that let a
// proxy prove which workload identity it may have before it holds a
// certificate, like kubeadm's bootstrap tokens. An operator creates a token
// for a namespace and an identity (`weft token create`), hands it to the
// proxy, and the proxy presents it once to get its first certificate; every
// renewal after that authenticates with the certificate itself.
//
// A token reads weft1.<id>.<secret>: the id (8 characters) names the token
// and may be shown and logged; the secret (32 characters, 160 random bits)
// proves possession and is shown once, by Create. Both use the lowercase
// base32 alphabet (a-z, 2-7).
//
// The store keeps, under /tokens/<id>, the token's namespace, identity,
// lifetime and revocation, and only the SHA-256 of the secret: reading the
// store does not reveal a usable token. (The secret is random and long, so
// a plain hash resists guessing; no salt or slow hash is needed.)
//
// Validate compares hashes in constant time and reports a refusal as an
// *InvalidError whose Reason (malformed, unknown, mismatch, expired,
// revoked) the caller maps to a status. It checks the secret before
// revocation and expiry, so a caller without the secret learns nothing but
// whether the id exists. No error message contains a secret.
package token
