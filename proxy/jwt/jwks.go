package jwt

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	_ "crypto/sha256" // SHA-256 for RS256, PS256, ES256
	_ "crypto/sha512" // SHA-384 and SHA-512
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"
	"strings"
)

// keyKind is the type of key an algorithm needs.
type keyKind uint8

const (
	kindRSA keyKind = iota + 1
	kindEC
	kindEd25519
)

// algorithm is one JWS algorithm this package can verify.
type algorithm struct {
	name  string
	kind  keyKind
	hash  crypto.Hash    // RSA and EC
	pss   bool           // PS*
	curve elliptic.Curve // ES*
}

// algorithms are the only algorithms that can ever be verified: no "none",
// no HMAC (see the package documentation).
var algorithms = map[string]*algorithm{
	"RS256":   {name: "RS256", kind: kindRSA, hash: crypto.SHA256},
	"RS384":   {name: "RS384", kind: kindRSA, hash: crypto.SHA384},
	"RS512":   {name: "RS512", kind: kindRSA, hash: crypto.SHA512},
	"PS256":   {name: "PS256", kind: kindRSA, hash: crypto.SHA256, pss: true},
	"PS384":   {name: "PS384", kind: kindRSA, hash: crypto.SHA384, pss: true},
	"PS512":   {name: "PS512", kind: kindRSA, hash: crypto.SHA512, pss: true},
	"ES256":   {name: "ES256", kind: kindEC, hash: crypto.SHA256, curve: elliptic.P256()},
	"ES384":   {name: "ES384", kind: kindEC, hash: crypto.SHA384, curve: elliptic.P384()},
	"ES512":   {name: "ES512", kind: kindEC, hash: crypto.SHA512, curve: elliptic.P521()},
	"EdDSA":   {name: "EdDSA", kind: kindEd25519},
	"Ed25519": {name: "Ed25519", kind: kindEd25519},
}

// Limits on a JWKS.
const (
	MaxJWKSSize = 1 << 20
	MaxKeys     = 100
	minRSABits  = 2048
	maxRSABits  = 8192
)

// key is one usable public key.
type key struct {
	kid  string
	alg  string // the key's own "alg", or ""
	kind keyKind
	rsa  *rsa.PublicKey
	ec   *ecdsa.PublicKey
	ed   ed25519.PublicKey
}

// suits reports whether k may verify a signature of algorithm a: the key
// type (and curve) the algorithm needs, and the key's own alg if it has one.
func (k *key) suits(a *algorithm) bool {
	if k.kind != a.kind {
		return false
	}
	if a.kind == kindEC && k.ec.Curve != a.curve {
		return false
	}
	if k.alg == "" || k.alg == a.name {
		return true
	}
	return a.kind == kindEd25519 // "EdDSA" and "Ed25519" name the same algorithm here
}

// KeySet is a parsed JWKS: the public keys of one issuer. It is immutable
// and safe for concurrent use. A nil or empty KeySet verifies nothing.
type KeySet struct {
	keys []key
	// skipped describes the keys that could not be used (malformed).
	skipped []string
}

// Skipped describes the keys of the set that were malformed and are not
// used, one line each.
func (s *KeySet) Skipped() []string {
	if s == nil {
		return nil
	}
	return s.skipped
}

// Len is the number of usable keys.
func (s *KeySet) Len() int {
	if s == nil {
		return 0
	}
	return len(s.keys)
}

// KeyIDs are the kids of the usable keys, in order ("" for none), for
// config dumps.
func (s *KeySet) KeyIDs() []string {
	if s == nil {
		return nil
	}
	ids := make([]string, len(s.keys))
	for i, k := range s.keys {
		ids[i] = k.kid
	}
	return ids
}

// jwk holds the members of a JWK this package reads. Private members
// ("d", "p", "q", ...) are never read.
type jwk struct {
	Kty    string   `json:"kty"`
	Kid    string   `json:"kid"`
	Use    string   `json:"use"`
	KeyOps []string `json:"key_ops"`
	Alg    string   `json:"alg"`
	Crv    string   `json:"crv"`
	N      string   `json:"n"`
	E      string   `json:"e"`
	X      string   `json:"x"`
	Y      string   `json:"y"`
}

// ErrJWKS is the error of every JWKS ParseJWKS refuses.
var ErrJWKS = errors.New("jwt: invalid JWKS")

// ParseJWKS parses a JSON Web Key Set (RFC 7517) of public signing keys.
//
// Keys that cannot serve to verify here are skipped: unknown "kty" or
// "crv" (oct, Ed448, X25519, secp256k1 ...), "use" other than "sig",
// "key_ops" without "verify", an "alg" that is not an allowed algorithm
// (such as HS256 or RSA-OAEP), an "alg" the key type cannot do, RSA keys
// of fewer than 2048 bits. A key of a known type that is malformed (bad
// base64url, wrong coordinate length, a point not on its curve, a bad
// exponent) makes the whole set an error, so a broken JWKS is noticed
// (NACKed) instead of silently shrinking. Private key members are never
// read. An empty set is valid: it verifies nothing.
func ParseJWKS(b []byte) (*KeySet, error) {
	if len(b) > MaxJWKSSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrJWKS, MaxJWKSSize)
	}
	if err := checkJSON(b, MaxDepth); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrJWKS, err)
	}
	var set struct {
		Keys *[]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrJWKS, err)
	}
	if set.Keys == nil {
		return nil, fmt.Errorf("%w: no \"keys\" member", ErrJWKS)
	}
	if len(*set.Keys) > MaxKeys {
		return nil, fmt.Errorf("%w: more than %d keys", ErrJWKS, MaxKeys)
	}
	ks := &KeySet{}
	for i, raw := range *set.Keys {
		var j jwk
		if err := json.Unmarshal(raw, &j); err != nil {
			return nil, fmt.Errorf("%w: key %d: %v", ErrJWKS, i, err)
		}
		k, err := parseKey(&j)
		if err != nil {
			// One malformed key must not lock out the others (an
			// identity provider's set is not ours to fix): it is
			// skipped, and tokens it would verify fail.
			ks.skipped = append(ks.skipped, fmt.Sprintf("key %d: %v", i, err))
			continue
		}
		if k != nil {
			ks.keys = append(ks.keys, *k)
		}
	}
	return ks, nil
}

// parseKey returns the key, nil for a key to skip, or an error.
func parseKey(j *jwk) (*key, error) {
	if j.Use != "" && j.Use != "sig" {
		return nil, nil
	}
	if j.KeyOps != nil && !slices.Contains(j.KeyOps, "verify") {
		return nil, nil
	}
	var a *algorithm
	if j.Alg != "" {
		if a = algorithms[j.Alg]; a == nil {
			return nil, nil
		}
	}
	k := &key{kid: j.Kid, alg: j.Alg}
	switch j.Kty {
	case "RSA":
		k.kind = kindRSA
		n, err := b64Key(j.N)
		if err != nil || len(n) == 0 {
			return nil, errors.New("bad RSA modulus")
		}
		e, err := b64Key(j.E)
		if err != nil || len(e) == 0 || len(e) > 4 {
			return nil, errors.New("bad RSA exponent")
		}
		nn := new(big.Int).SetBytes(n)
		ev := new(big.Int).SetBytes(e)
		if nn.Bit(0) == 0 || nn.BitLen() > maxRSABits {
			return nil, errors.New("bad RSA modulus")
		}
		if !ev.IsInt64() || ev.Int64() < 3 || ev.Int64() > 1<<31-1 || ev.Bit(0) == 0 {
			return nil, errors.New("bad RSA exponent")
		}
		if nn.BitLen() < minRSABits {
			return nil, nil
		}
		k.rsa = &rsa.PublicKey{N: nn, E: int(ev.Int64())}
	case "EC":
		k.kind = kindEC
		var curve elliptic.Curve
		switch j.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return nil, nil
		}
		size := (curve.Params().BitSize + 7) / 8
		x, errX := b64Key(j.X)
		y, errY := b64Key(j.Y)
		if errX != nil || errY != nil || len(x) != size || len(y) != size {
			return nil, errors.New("bad EC coordinates")
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, errors.New("EC point not on its curve")
		}
		k.ec = pub
	case "OKP":
		k.kind = kindEd25519
		if j.Crv != "Ed25519" {
			return nil, nil
		}
		x, err := b64Key(j.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("bad Ed25519 key")
		}
		k.ed = ed25519.PublicKey(x)
	default:
		return nil, nil
	}
	if a != nil && !k.suits(a) {
		return nil, nil
	}
	return k, nil
}

// b64Key decodes a base64url member of a JWK. Keys come from the trusted
// control plane, so padding is tolerated here (some providers pad); token
// parts are held to the strict form.
func b64Key(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if s == "" {
		return nil, nil
	}
	return base64.RawURLEncoding.DecodeString(s)
}

// checkJSON checks that b is one JSON object and nothing else, nested at
// most maxDepth deep, with no member name twice at the top level.
func checkJSON(b []byte, maxDepth int) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	t, err := dec.Token()
	if err != nil || t != json.Delim('{') {
		return errors.New("not a JSON object")
	}
	depth := 1
	seen := map[string]bool{}
	expectKey := true // at depth 1, the next string token is a member name
	for depth > 0 {
		t, err := dec.Token()
		if err != nil {
			return errors.New("not a JSON object")
		}
		if depth == 1 && expectKey {
			if d, ok := t.(json.Delim); ok && d == '}' {
				depth--
				continue
			}
			name, ok := t.(string)
			if !ok {
				return errors.New("not a JSON object")
			}
			if seen[name] {
				return errors.New("duplicate member name")
			}
			seen[name] = true
			expectKey = false
			continue
		}
		switch t {
		case json.Delim('{'), json.Delim('['):
			if depth++; depth > maxDepth {
				return errors.New("JSON nested too deeply")
			}
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 1 {
			expectKey = true // a value at depth 1 ended
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON object")
	}
	return nil
}
