package authz

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/weftmesh/weft/proxy/jwt"
	"github.com/weftmesh/weft/proxy/xdsresource"
)

// jwtAuth is a compiled jwt_authn filter. It uses proxy/jwt to verify a
// token with one provider (Provider.Verify) but finds the token and picks
// the providers itself: jwt.Authenticator allows one provider per issuer,
// while several RequestAuthentications may name the same issuer (each
// with its own audiences, locations and payload name), and it has no
// allow_missing.
type jwtAuth struct {
	providers    []*jwtProvider
	allowMissing bool
	headers      []xdsresource.JWTHeader // every provider's (canonical names)
	params       []string
	claimHeaders []string // lower case
}

type jwtProvider struct {
	cfg     xdsresource.JWTProvider
	v       *jwt.Provider
	headers []xdsresource.JWTHeader // where this provider looks (canonical names)
}

// bearer is where a provider that names no place looks for a token.
var bearer = xdsresource.JWTHeader{Name: "Authorization", Prefix: "Bearer "}

func compileJWT(j *xdsresource.JWTAuthn) (*jwtAuth, error) {
	if len(j.Providers) == 0 {
		return nil, errors.New("no provider")
	}
	a := &jwtAuth{allowMissing: j.AllowMissing}
	for _, p := range j.Providers {
		keys, err := jwt.ParseJWKS(p.JWKS)
		if err != nil {
			return nil, fmt.Errorf("provider %q: %w", p.Name, err)
		}
		algs, err := jwksAlgorithms(p.JWKS)
		if err != nil {
			return nil, fmt.Errorf("provider %q: %w", p.Name, err)
		}
		skew := p.ClockSkew
		if skew == 0 {
			skew = xdsresource.DefaultJWTClockSkew
		}
		v := &jwt.Provider{
			Issuer:     p.Issuer,
			Audiences:  p.Audiences,
			Algorithms: algs,
			Keys:       keys,
			ClockSkew:  skew,
		}
		if err := v.Validate(); err != nil {
			return nil, fmt.Errorf("provider %q: %w", p.Name, err)
		}
		jp := &jwtProvider{cfg: p, v: v}
		hs := p.FromHeaders
		if len(hs) == 0 && len(p.FromParams) == 0 {
			hs = []xdsresource.JWTHeader{bearer}
		}
		for _, h := range hs {
			h.Name = http.CanonicalHeaderKey(h.Name)
			jp.headers = append(jp.headers, h)
			if !slices.Contains(a.headers, h) {
				a.headers = append(a.headers, h)
			}
		}
		for _, q := range p.FromParams {
			if q == "" {
				return nil, fmt.Errorf("provider %q: empty token parameter", p.Name)
			}
			if !slices.Contains(a.params, q) {
				a.params = append(a.params, q)
			}
		}
		for _, c := range p.ClaimToHeaders {
			h := strings.ToLower(c.Header)
			if c.Claim == "" || h == "" || strings.HasPrefix(h, ":") {
				return nil, fmt.Errorf("provider %q: invalid claim_to_headers %q → %q", p.Name, c.Claim, c.Header)
			}
			if !slices.Contains(a.claimHeaders, h) {
				a.claimHeaders = append(a.claimHeaders, h)
			}
		}
		a.providers = append(a.providers, jp)
	}
	slices.Sort(a.claimHeaders)
	return a, nil
}

// jwksAlgorithms returns the "alg" members of a key set's keys: the
// algorithms its provider allows. A key without "alg" is an error; an
// empty set allows the defaults (it verifies nothing anyway).
func jwksAlgorithms(b []byte) ([]string, error) {
	var set struct {
		Keys []struct {
			Alg string `json:"alg"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("JWKS: %v", err)
	}
	var algs []string
	for i, k := range set.Keys {
		if k.Alg == "" {
			return nil, fmt.Errorf("JWKS key %d has no \"alg\"", i)
		}
		if !slices.Contains(algs, k.Alg) {
			algs = append(algs, k.Alg)
		}
	}
	return algs, nil
}

// token is a token found in a request, and where.
type token struct {
	value  string
	header xdsresource.JWTHeader // Name "" for a query parameter
	param  string
}

func unauthenticated(reason string) *Decision {
	return &Decision{
		Status:        http.StatusUnauthorized,
		DeniedHeaders: http.Header{"Www-Authenticate": {"Bearer"}},
		Reason:        reason,
	}
}

// authenticate implements Engine.Authenticate.
func (a *jwtAuth) authenticate(r *http.Request, now time.Time) (map[string]map[string]any, *Decision) {
	for _, h := range a.claimHeaders {
		r.Header.Del(h)
	}
	var toks []token
	for _, hs := range a.headers {
		for _, v := range r.Header.Values(hs.Name) {
			if len(v) < len(hs.Prefix) || !strings.EqualFold(v[:len(hs.Prefix)], hs.Prefix) {
				continue
			}
			toks = append(toks, token{value: strings.TrimSpace(v[len(hs.Prefix):]), header: hs})
		}
	}
	if len(a.params) > 0 && r.URL != nil && r.URL.RawQuery != "" {
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			return nil, unauthenticated("jwt: malformed query")
		}
		for _, name := range a.params {
			for _, v := range q[name] {
				toks = append(toks, token{value: v, param: name})
			}
		}
	}
	if len(toks) == 0 {
		if a.allowMissing {
			return nil, nil
		}
		return nil, unauthenticated("jwt: no token")
	}
	for _, t := range toks[1:] {
		if t.value != toks[0].value {
			return nil, unauthenticated(jwt.ErrMultipleTokens.Error())
		}
	}
	iss, ok := unverifiedIssuer(toks[0].value)
	if !ok {
		return nil, unauthenticated(jwt.ErrMalformed.Error())
	}
	err := jwt.ErrIssuer
	for _, p := range a.providers {
		if p.cfg.Issuer != iss || !p.looksAt(toks) {
			continue
		}
		c, verr := p.v.Verify(toks[0].value, now)
		if verr != nil {
			err = verr
			continue
		}
		if !p.cfg.Forward {
			removeTokens(r, toks)
		}
		for _, ch := range p.cfg.ClaimToHeaders {
			if v, ok := claimHeaderValue(c.Raw, ch.Claim); ok {
				r.Header.Set(ch.Header, v)
			}
		}
		if p.cfg.PayloadInMetadata == "" {
			return map[string]map[string]any{}, nil
		}
		return map[string]map[string]any{p.cfg.PayloadInMetadata: c.Raw}, nil
	}
	return nil, unauthenticated(err.Error())
}

// looksAt says whether the provider reads tokens where one was found.
func (p *jwtProvider) looksAt(toks []token) bool {
	for _, t := range toks {
		if t.param != "" {
			if slices.Contains(p.cfg.FromParams, t.param) {
				return true
			}
		} else if slices.Contains(p.headers, t.header) {
			return true
		}
	}
	return false
}

// unverifiedIssuer reads "iss" from a token's payload without verifying
// anything, only to choose the providers that may verify it (proxy/jwt
// does the same internally but does not export it).
func unverifiedIssuer(tok string) (string, bool) {
	if len(tok) > jwt.MaxTokenSize {
		return "", false
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", false
	}
	var c struct {
		Iss *string `json:"iss"`
	}
	if json.Unmarshal(b, &c) != nil || c.Iss == nil {
		return "", false
	}
	return *c.Iss, true
}

// removeTokens removes the headers and query parameters a token was
// found in.
func removeTokens(r *http.Request, toks []token) {
	for _, t := range toks {
		if t.param == "" {
			r.Header.Del(t.header.Name)
			continue
		}
		if r.URL == nil {
			continue
		}
		parts := strings.Split(r.URL.RawQuery, "&")
		kept := parts[:0]
		for _, part := range parts {
			k, _, _ := strings.Cut(part, "=")
			if uk, err := url.QueryUnescape(k); err == nil && uk == t.param {
				continue
			}
			kept = append(kept, part)
		}
		r.URL.RawQuery = strings.Join(kept, "&")
		if r.RequestURI != "" {
			r.RequestURI = r.URL.RequestURI()
		}
	}
}

// claimHeaderValue renders the claim at name ("a.b" for nested objects)
// as a header value: strings as they are, numbers and booleans as JSON
// text, lists of those joined by ",". Objects and values with control
// characters are not copied.
func claimHeaderValue(raw map[string]any, name string) (string, bool) {
	v, ok := claimAt(raw, []string{name})
	if !ok && strings.Contains(name, ".") {
		v, ok = claimAt(raw, strings.Split(name, "."))
	}
	if !ok {
		return "", false
	}
	var s string
	if list, isList := v.([]any); isList {
		parts := make([]string, 0, len(list))
		for _, e := range list {
			p, ok := scalarText(e)
			if !ok {
				return "", false
			}
			parts = append(parts, p)
		}
		s = strings.Join(parts, ",")
	} else if s, ok = scalarText(v); !ok {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return "", false
		}
	}
	return s, true
}
