package jwt

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Limits on a token.
const (
	// MaxTokenSize bounds a compact token, in bytes.
	MaxTokenSize = 8 << 10
	// MaxDepth bounds the nesting of JSON objects and arrays in a token's
	// header and claims (and in a JWKS).
	MaxDepth = 16
	// DefaultClockSkew is the tolerance on exp, nbf and iat when
	// Provider.ClockSkew is 0.
	DefaultClockSkew = 60 * time.Second
	// MaxClockSkew bounds Provider.ClockSkew.
	MaxClockSkew = 10 * time.Minute
)

// The errors of Verify and Authenticate, to be told apart with errors.Is.
// Each is answered 401 (StatusCode). Their messages never hold token bytes.
var (
	ErrMalformed      = errors.New("jwt: malformed token")
	ErrAlgorithm      = errors.New("jwt: algorithm not allowed")
	ErrUnknownKey     = errors.New("jwt: no key for the token")
	ErrSignature      = errors.New("jwt: bad signature")
	ErrIssuer         = errors.New("jwt: wrong issuer")
	ErrAudience       = errors.New("jwt: wrong audience")
	ErrExpired        = errors.New("jwt: token expired")
	ErrNotYetValid    = errors.New("jwt: token not yet valid")
	ErrMultipleTokens = errors.New("jwt: more than one token in the request")
)

// StatusCode is the HTTP status for an error of this package: 401 for every
// token that does not verify.
func StatusCode(err error) int {
	if err == nil {
		return http.StatusOK
	}
	return http.StatusUnauthorized
}

// defaultAlgorithms are the algorithms of a Provider that names none.
var defaultAlgorithms = []string{"RS256", "ES256"}

// HeaderSource is a request header that may carry a token, after Prefix
// (compared case-insensitively; e.g. "Bearer "). An empty Prefix takes the
// whole value.
type HeaderSource struct {
	Name   string
	Prefix string
}

// Provider is one issuer's RequestAuthentication rule. Fill it in, check it
// with Validate (NewAuthenticator does), then do not modify it: a validated
// Provider is safe for concurrent use.
type Provider struct {
	// Issuer must equal the token's "iss".
	Issuer string
	// Audiences: the token's "aud" must hold one of them. Empty: the
	// audience is not checked.
	Audiences []string
	// Algorithms allowed; nil means RS256 and ES256. "none" and HS* are
	// refused by Validate and never verified.
	Algorithms []string
	// Keys are the issuer's public keys (ParseJWKS). Nil or empty: every
	// token of this issuer fails with ErrUnknownKey.
	Keys *KeySet
	// ClockSkew tolerated on exp, nbf and iat: 0 means DefaultClockSkew,
	// a negative value none.
	ClockSkew time.Duration
	// ExpOptional accepts tokens without "exp" (they never expire).
	ExpOptional bool
	// FromHeaders and FromParams are where tokens are looked for; both
	// empty means "Authorization: Bearer <token>".
	FromHeaders []HeaderSource
	FromParams  []string
	// ForwardClaims maps a top-level claim to the request header it is
	// forwarded to the app in. Client-supplied copies are always removed.
	ForwardClaims map[string]string
	// ForwardToken keeps the token in the request to the app; by default
	// it is removed once verified.
	ForwardToken bool
}

// Validate checks the configuration.
func (p *Provider) Validate() error {
	if p.Issuer == "" {
		return errors.New("jwt: provider without issuer")
	}
	for _, a := range p.Algorithms {
		if algorithms[a] == nil {
			if a == "none" || strings.HasPrefix(strings.ToUpper(a), "HS") {
				return fmt.Errorf("jwt: provider %s: algorithm %q is never allowed: only asymmetric signatures (no shared secrets in the mesh)", p.Issuer, a)
			}
			return fmt.Errorf("jwt: provider %s: unknown algorithm %q", p.Issuer, a)
		}
	}
	if p.Algorithms != nil && len(p.Algorithms) == 0 {
		return fmt.Errorf("jwt: provider %s: empty algorithm list", p.Issuer)
	}
	for _, a := range p.Audiences {
		if a == "" {
			return fmt.Errorf("jwt: provider %s: empty audience", p.Issuer)
		}
	}
	if p.ClockSkew > MaxClockSkew {
		return fmt.Errorf("jwt: provider %s: clock skew %s above %s", p.Issuer, p.ClockSkew, MaxClockSkew)
	}
	for _, h := range p.FromHeaders {
		if !validHeaderName(h.Name) {
			return fmt.Errorf("jwt: provider %s: invalid token header %q", p.Issuer, h.Name)
		}
	}
	for _, q := range p.FromParams {
		if q == "" {
			return fmt.Errorf("jwt: provider %s: empty token query parameter", p.Issuer)
		}
	}
	for c, h := range p.ForwardClaims {
		if c == "" || !validHeaderName(h) {
			return fmt.Errorf("jwt: provider %s: invalid claim header %q for claim %q", p.Issuer, h, c)
		}
	}
	return nil
}

func (p *Provider) skew() time.Duration {
	switch {
	case p.ClockSkew == 0:
		return DefaultClockSkew
	case p.ClockSkew < 0:
		return 0
	}
	return p.ClockSkew
}

func (p *Provider) allows(alg string) bool {
	if p.Algorithms == nil {
		return slices.Contains(defaultAlgorithms, alg)
	}
	return slices.Contains(p.Algorithms, alg)
}

// Claims are the verified claims of a token.
type Claims struct {
	Issuer   string
	Subject  string
	Audience []string
	// Expiry, NotBefore and IssuedAt are zero when the claim is absent.
	Expiry, NotBefore, IssuedAt time.Time
	// Algorithm and KeyID are from the token's header.
	Algorithm, KeyID string
	// Raw holds every claim, decoded with numbers as json.Number.
	Raw map[string]any
}

// Principal is the request principal, "iss/sub" (as in Istio).
func (c *Claims) Principal() string { return c.Issuer + "/" + c.Subject }

var b64 = base64.RawURLEncoding.Strict()

// header holds the protected header members Verify reads. They are
// looked up by exact name (encoding/json would match struct fields
// case-insensitively, so "ALG" would count as "alg").
type header struct {
	Alg  string
	Kid  *string
	Crit bool
}

func parseHeader(b []byte) (*header, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	h := &header{}
	if err := json.Unmarshal(m["alg"], &h.Alg); err != nil || h.Alg == "" {
		return nil, errors.New("alg")
	}
	if raw, ok := m["kid"]; ok {
		h.Kid = new(string)
		if err := json.Unmarshal(raw, h.Kid); err != nil || string(raw) == "null" {
			return nil, errors.New("kid")
		}
	}
	_, h.Crit = m["crit"]
	return h, nil
}

// Verify checks a compact JWS token against p at time now and returns its
// claims. Errors wrap the Err* values of this package.
func (p *Provider) Verify(token string, now time.Time) (*Claims, error) {
	if len(token) == 0 || len(token) > MaxTokenSize {
		return nil, fmt.Errorf("%w: size", ErrMalformed)
	}
	h64, rest, ok1 := strings.Cut(token, ".")
	c64, s64, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.IndexByte(s64, '.') >= 0 {
		return nil, fmt.Errorf("%w: not a compact JWS", ErrMalformed)
	}
	hb, err := b64.DecodeString(h64)
	if err != nil {
		return nil, fmt.Errorf("%w: header encoding", ErrMalformed)
	}
	if err := checkJSON(hb, MaxDepth); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	h, err := parseHeader(hb)
	if err != nil {
		return nil, fmt.Errorf("%w: header", ErrMalformed)
	}
	if h.Crit {
		return nil, fmt.Errorf("%w: critical header extensions", ErrMalformed)
	}
	alg := algorithms[h.Alg]
	if alg == nil || !p.allows(alg.name) {
		return nil, ErrAlgorithm
	}
	sig, err := b64.DecodeString(s64)
	if err != nil {
		return nil, fmt.Errorf("%w: signature encoding", ErrMalformed)
	}
	cb, err := b64.DecodeString(c64)
	if err != nil {
		return nil, fmt.Errorf("%w: claims encoding", ErrMalformed)
	}

	// The signature, before anything of the claims is believed.
	input := token[:len(h64)+1+len(c64)]
	if err := p.verifySignature(alg, h.Kid, []byte(input), sig); err != nil {
		return nil, err
	}

	if err := checkJSON(cb, MaxDepth); err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	dec := json.NewDecoder(bytes.NewReader(cb))
	dec.UseNumber()
	var raw map[string]any
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%w: claims", ErrMalformed)
	}
	c := &Claims{Algorithm: alg.name, Raw: raw}
	if h.Kid != nil {
		c.KeyID = *h.Kid
	}
	if err := p.checkClaims(c, now); err != nil {
		return nil, err
	}
	return c, nil
}

func (p *Provider) verifySignature(alg *algorithm, kid *string, input, sig []byte) error {
	tried := 0
	if p.Keys != nil {
		for i := range p.Keys.keys {
			k := &p.Keys.keys[i]
			if (kid != nil && k.kid != *kid) || !k.suits(alg) {
				continue
			}
			tried++
			if verifyWith(alg, k, input, sig) {
				return nil
			}
		}
	}
	if tried == 0 {
		return ErrUnknownKey
	}
	return ErrSignature
}

// verifyWith checks one signature with one key that suits alg.
func verifyWith(alg *algorithm, k *key, input, sig []byte) bool {
	switch alg.kind {
	case kindEd25519:
		return len(sig) == ed25519.SignatureSize && ed25519.Verify(k.ed, input, sig)
	case kindRSA:
		h := alg.hash.New()
		h.Write(input)
		digest := h.Sum(nil)
		if alg.pss {
			return rsa.VerifyPSS(k.rsa, alg.hash, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: alg.hash}) == nil
		}
		return rsa.VerifyPKCS1v15(k.rsa, alg.hash, digest, sig) == nil
	case kindEC:
		size := (alg.curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size { // JOSE r||s only, never ASN.1 DER
			return false
		}
		h := alg.hash.New()
		h.Write(input)
		r := new(big.Int).SetBytes(sig[:size])
		s := new(big.Int).SetBytes(sig[size:])
		return ecdsa.Verify(k.ec, h.Sum(nil), r, s)
	}
	return false
}

func (p *Provider) checkClaims(c *Claims, now time.Time) error {
	var err error
	if c.Issuer, err = stringClaim(c.Raw, "iss"); err != nil {
		return err
	}
	if c.Issuer != p.Issuer {
		return ErrIssuer
	}
	if c.Subject, err = stringClaim(c.Raw, "sub"); err != nil {
		return err
	}
	var hasExp, hasNbf, hasIat bool
	if c.Expiry, hasExp, err = dateClaim(c.Raw, "exp"); err != nil {
		return err
	}
	if c.NotBefore, hasNbf, err = dateClaim(c.Raw, "nbf"); err != nil {
		return err
	}
	if c.IssuedAt, hasIat, err = dateClaim(c.Raw, "iat"); err != nil {
		return err
	}
	skew := p.skew()
	switch {
	case !hasExp && !p.ExpOptional:
		return fmt.Errorf("%w: no exp", ErrMalformed)
	case hasExp && !now.Before(c.Expiry.Add(skew)):
		return ErrExpired
	case hasNbf && now.Add(skew).Before(c.NotBefore):
		return ErrNotYetValid
	case hasIat && now.Add(skew).Before(c.IssuedAt):
		return fmt.Errorf("%w: issued in the future", ErrNotYetValid)
	}
	switch aud := c.Raw["aud"].(type) {
	case nil:
		if _, present := c.Raw["aud"]; present {
			return fmt.Errorf("%w: aud", ErrMalformed)
		}
	case string:
		c.Audience = []string{aud}
	case []any:
		c.Audience = make([]string, 0, len(aud))
		for _, v := range aud {
			s, ok := v.(string)
			if !ok {
				return fmt.Errorf("%w: aud", ErrMalformed)
			}
			c.Audience = append(c.Audience, s)
		}
	default:
		return fmt.Errorf("%w: aud", ErrMalformed)
	}
	if len(p.Audiences) > 0 && !slices.ContainsFunc(c.Audience, func(a string) bool { return slices.Contains(p.Audiences, a) }) {
		return ErrAudience
	}
	return nil
}

// stringClaim reads an optional string claim.
func stringClaim(raw map[string]any, name string) (string, error) {
	v, ok := raw[name]
	if !ok {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%w: %s is not a string", ErrMalformed, name)
	}
	return s, nil
}

// maxDate bounds NumericDates (seconds), far beyond any real date, so that
// conversions cannot overflow.
const maxDate = 1 << 40

// dateClaim reads an optional NumericDate claim.
func dateClaim(raw map[string]any, name string) (time.Time, bool, error) {
	v, ok := raw[name]
	if !ok {
		return time.Time{}, false, nil
	}
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false, fmt.Errorf("%w: %s is not a number", ErrMalformed, name)
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsNaN(f) {
		return time.Time{}, false, fmt.Errorf("%w: %s is not a number", ErrMalformed, name)
	}
	f = max(min(f, maxDate), -maxDate)
	sec := math.Floor(f)
	return time.Unix(int64(sec), int64((f-sec)*1e9)), true, nil
}

// validHeaderName: an RFC 9110 token without '_' (which normalize refuses).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
