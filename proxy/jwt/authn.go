package jwt

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// bearer is where tokens are looked for when a provider names no place.
var bearer = HeaderSource{Name: "Authorization", Prefix: "Bearer "}

// Authenticator holds the JWT providers of one workload (one per issuer).
// It is immutable and safe for concurrent use; Authenticate never blocks.
type Authenticator struct {
	byIssuer     map[string]*Provider
	headers      []HeaderSource
	params       []string
	claimHeaders []string // canonical names
}

// NewAuthenticator validates the providers and compiles them. The
// providers must not be modified afterwards.
func NewAuthenticator(providers ...*Provider) (*Authenticator, error) {
	a := &Authenticator{byIssuer: make(map[string]*Provider, len(providers))}
	for _, p := range providers {
		if err := p.Validate(); err != nil {
			return nil, err
		}
		if a.byIssuer[p.Issuer] != nil {
			return nil, fmt.Errorf("jwt: two providers for issuer %s", p.Issuer)
		}
		a.byIssuer[p.Issuer] = p
		headers := p.FromHeaders
		if len(headers) == 0 && len(p.FromParams) == 0 {
			headers = []HeaderSource{bearer}
		}
		for _, h := range headers {
			h.Name = http.CanonicalHeaderKey(h.Name)
			if !slices.Contains(a.headers, h) {
				a.headers = append(a.headers, h)
			}
		}
		for _, q := range p.FromParams {
			if !slices.Contains(a.params, q) {
				a.params = append(a.params, q)
			}
		}
		for _, h := range p.ForwardClaims {
			h = http.CanonicalHeaderKey(h)
			if !slices.Contains(a.claimHeaders, h) {
				a.claimHeaders = append(a.claimHeaders, h)
			}
		}
	}
	slices.Sort(a.claimHeaders)
	return a, nil
}

// ClaimHeaders are the headers claims are forwarded in, for
// normalize.Options.StripHeaders.
func (a *Authenticator) ClaimHeaders() []string { return slices.Clone(a.claimHeaders) }

// found is one token and where it was.
type found struct {
	token  string
	header string // canonical header name, or ""
	param  string // query parameter, or ""
}

// Authenticate authenticates r at time now. It first removes every
// client-supplied claim header. Then:
//
//   - no token in any configured place: (nil, nil), the request is
//     unauthenticated and policies decide;
//   - a token that verifies with the provider of its issuer: its claims;
//     the token is removed from the request unless the provider has
//     ForwardToken, and the provider's ForwardClaims headers are set;
//   - anything else (a token that does not verify, an unknown issuer, two
//     different tokens): an error, to be answered with StatusCode (401).
//
// Headers are the first place looked in, then query parameters; an
// Authorization header with another scheme (Basic ...) is not a token.
func (a *Authenticator) Authenticate(r *http.Request, now time.Time) (*Claims, error) {
	for _, h := range a.claimHeaders {
		r.Header.Del(h)
	}
	var tokens []found
	for _, hs := range a.headers {
		for _, v := range r.Header.Values(hs.Name) {
			tok, ok := cutPrefixFold(v, hs.Prefix)
			if !ok {
				continue
			}
			tokens = append(tokens, found{token: strings.TrimSpace(tok), header: hs.Name})
		}
	}
	if len(a.params) > 0 && r.URL != nil && r.URL.RawQuery != "" {
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			return nil, fmt.Errorf("%w: query", ErrMalformed)
		}
		for _, name := range a.params {
			for _, v := range q[name] {
				tokens = append(tokens, found{token: v, param: name})
			}
		}
	}
	if len(tokens) == 0 {
		return nil, nil
	}
	tok := tokens[0].token
	for _, f := range tokens[1:] {
		if f.token != tok {
			return nil, ErrMultipleTokens
		}
	}
	iss, err := unverifiedIssuer(tok)
	if err != nil {
		return nil, err
	}
	p := a.byIssuer[iss]
	if p == nil {
		return nil, ErrIssuer
	}
	c, err := p.Verify(tok, now)
	if err != nil {
		return nil, err
	}
	if !p.ForwardToken {
		for _, f := range tokens {
			if f.header != "" {
				r.Header.Del(f.header)
			} else {
				removeParam(r, f.param)
			}
		}
	}
	for claim, h := range p.ForwardClaims {
		if v, ok := claimValue(c.Raw[claim]); ok {
			r.Header.Set(h, v)
		}
	}
	return c, nil
}

// cutPrefixFold cuts a case-insensitive prefix.
func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return "", false
	}
	return s[len(prefix):], true
}

// unverifiedIssuer reads "iss" from a token's claims without verifying
// anything, only to choose the provider that will verify it.
func unverifiedIssuer(tok string) (string, error) {
	if len(tok) > MaxTokenSize {
		return "", fmt.Errorf("%w: size", ErrMalformed)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "", fmt.Errorf("%w: not a compact JWS", ErrMalformed)
	}
	cb, err := base64.RawURLEncoding.Strict().DecodeString(parts[1])
	if err != nil {
		return "", fmt.Errorf("%w: claims encoding", ErrMalformed)
	}
	if err := checkJSON(cb, MaxDepth); err != nil {
		return "", fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	var m map[string]json.RawMessage
	var iss string
	if json.Unmarshal(cb, &m) != nil || json.Unmarshal(m["iss"], &iss) != nil {
		return "", ErrIssuer
	}
	return iss, nil
}

// removeParam removes every value of a query parameter, keeping the rest
// of the query byte for byte.
func removeParam(r *http.Request, name string) {
	parts := strings.Split(r.URL.RawQuery, "&")
	kept := parts[:0]
	for _, part := range parts {
		k, _, _ := strings.Cut(part, "=")
		if uk, err := url.QueryUnescape(k); err == nil && uk == name {
			continue
		}
		kept = append(kept, part)
	}
	r.URL.RawQuery = strings.Join(kept, "&")
	if r.RequestURI != "" {
		r.RequestURI = r.URL.RequestURI()
	}
}

// claimValue renders a claim as a header value: strings as they are,
// numbers and booleans as in JSON, arrays of those joined by ",". Objects,
// and values with control characters, are not forwarded.
func claimValue(v any) (string, bool) {
	var s string
	switch v := v.(type) {
	case string:
		s = v
	case json.Number:
		s = v.String()
	case bool:
		s = strconv.FormatBool(v)
	case []any:
		parts := make([]string, 0, len(v))
		for _, e := range v {
			if _, isArray := e.([]any); isArray {
				return "", false
			}
			p, ok := claimValue(e)
			if !ok {
				return "", false
			}
			parts = append(parts, p)
		}
		s = strings.Join(parts, ",")
	default:
		return "", false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return "", false
		}
	}
	return s, true
}
