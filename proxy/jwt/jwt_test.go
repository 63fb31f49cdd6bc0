package jwt_test

import (
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/proxy/jwt"
)

const iss = "https://idp.example"

var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func claims(mod func(map[string]any)) map[string]any {
	c := map[string]any{
		"iss": iss, "sub": "alice", "aud": "catalog",
		"exp": now.Add(time.Hour).Unix(), "nbf": now.Add(-time.Minute).Unix(), "iat": now.Add(-time.Minute).Unix(),
		"groups": []string{"dev", "ops"}, "email": "alice@example.com",
	}
	if mod != nil {
		mod(c)
	}
	return c
}

func hdr(alg, kid string) map[string]any {
	h := map[string]any{"alg": alg, "typ": "JWT"}
	if kid != "" {
		h["kid"] = kid
	}
	return h
}

func TestVerify(t *testing.T) {
	rs := genRSA(t, "rs", 2048)
	rs2 := genRSA(t, "rs2", 2048) // not in the key set
	ec := genEC(t, "ec", elliptic.P256())
	ec384 := genEC(t, "ec384", elliptic.P384())
	ec521 := genEC(t, "ec521", elliptic.P521())
	ed := genEd(t, "ed")
	keys := parseJWKS(t, jwks(t, rs.jwk, ec.jwk, ec384.jwk, ec521.jwk, ed.jwk))
	all := []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"}

	def := &jwt.Provider{Issuer: iss, Audiences: []string{"catalog", "reviews"}, Keys: keys}
	every := &jwt.Provider{Issuer: iss, Audiences: []string{"catalog"}, Keys: keys, Algorithms: all}
	noAud := &jwt.Provider{Issuer: iss, Keys: keys}
	noSkew := &jwt.Provider{Issuer: iss, Keys: keys, ClockSkew: -1}
	expOpt := &jwt.Provider{Issuer: iss, Keys: keys, ExpOptional: true}
	empty := &jwt.Provider{Issuer: iss, Keys: parseJWKS(t, []byte(`{"keys":[]}`))}
	nilKeys := &jwt.Provider{Issuer: iss}
	for _, p := range []*jwt.Provider{def, every, noAud, noSkew, expOpt, empty, nilKeys} {
		if err := p.Validate(); err != nil {
			t.Fatal(err)
		}
	}

	valid := sign(t, rs, "RS256", hdr("RS256", "rs"), claims(nil))
	parts := strings.Split(valid, ".")
	flip := func(s string, i int) string { // change one character of s
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	tamperedClaims := parts[0] + "." + b64(mustJSON(t, claims(func(c map[string]any) { c["sub"] = "admin" }))) + "." + parts[2]

	type tc struct {
		name  string
		p     *jwt.Provider
		token string
		err   error // nil: accepted
	}
	cases := []tc{
		{"RS256", def, valid, nil},
		{"ES256", def, sign(t, ec, "ES256", hdr("ES256", "ec"), claims(nil)), nil},
		{"RS256 no kid", def, sign(t, rs, "RS256", hdr("RS256", ""), claims(nil)), nil},
		{"ES256 no kid", def, sign(t, ec, "ES256", hdr("ES256", ""), claims(nil)), nil},
		{"aud array", def, sign(t, rs, "RS256", hdr("RS256", "rs"), claims(func(c map[string]any) { c["aud"] = []string{"x", "reviews"} })), nil},
		{"fractional dates", def, sign(t, rs, "RS256", hdr("RS256", "rs"), claims(func(c map[string]any) { c["exp"] = float64(now.Unix()) + 0.5 })), nil},
		{"expired within skew", def, sign(t, rs, "RS256", hdr("RS256", "rs"), claims(func(c map[string]any) { c["exp"] = now.Add(-59 * time.Second).Unix() })), nil},
		{"nbf within skew", def, sign(t, rs, "RS256", hdr("RS256", "rs"), claims(func(c map[string]any) { c["nbf"] = now.Add(59 * time.Second).Unix() })), nil},
		{"no aud, not checked", noAud, sign(t, rs, "RS256", hdr("RS256", "rs"), claims(func(c map[string]any) { delete(c, "aud") })), nil},
		{"no exp, optional", expOpt, sign(t, rs, "RS256", hdr("RS256", "rs"), claims(func(c map[string]any) { delete(c, "exp") })), nil},
		{"no sub", def, sign(t, rs, "RS256", hdr("RS256", "rs"), claims(func(c map[string]any) { delete(c, "sub") })), nil},
		{"unknown header ignored", def, sign(t, rs, "RS256", map[string]any{"alg": "RS256", "kid": "rs", "typ": "at+jwt", "x5u": "https://evil/"}, claims(nil)), nil},

		// Time.
		{"expired", def, sign(t, rs, "RS256", hdr("RS256", "rs"), claims(func(c map[string]any) { c["exp"] = now.Add(-61 * time.Second).Unix() })), jwt.ErrExpired},
		{"expired no skew", noSkew, sign(t, rs, "RS256", hdr("RS256", "rs"), claims(func(c map[string]any) { c["exp"] = now.Unix() })), jwt.ErrExpired},
		{"not yet valid", def, sign(t, rs, "RS256", hdr("RS256", "rs"), claims(func(c map[string]any) { c["nbf"] = now.Add(2 * time.Minute).Unix() })), jwt.ErrNotYetValid},
		{"issued in the future", def, sign(t, rs, "RS256", hdr("RS256", "rs"), claims(func(c map[string]any) { c["iat"] = now.Add(2 * time.Minute).Unix() })), jwt.ErrNotYetValid},
		{"no exp", def, sign(t, rs, "RS256", hdr("RS256", "rs"), claims(func(c map[string]any) { delete(c, "exp") })), jwt.ErrMalformed},
		{"exp string", def, sign(t, rs, "RS256", hdr("RS256", "rs"), claims(func(c map[string]any) { c["exp"] = "9999999999" })), jwt.ErrMalformed},
		{"exp huge", def, sign(t, rs, "RS256", hdr("RS256", "rs"), `{"iss":"`+iss+`","aud":"catalog","exp":1e400}`), jwt.ErrMalformed},

		// Issuer and audience.
		{"wrong issuer", def, sign(t, rs, "RS256", hdr("RS256", "rs"), claims(func(c map[string]any) { c["iss"] = "https://evil.example" })), jwt.ErrIssuer},
		{"issuer prefix", def, sign(t, rs, "RS256", hdr("RS256", "rs"), claims(func(c map[string]any) { c["iss"] = iss + "/" })), jwt.ErrIssuer},
		{"no issuer", def, sign(t, rs, "RS256", hdr("RS256", "rs"), claims(func(c map[string]any) { delete(c, "iss") })), jwt.ErrIssuer},
		{"issuer not a string", def, sign(t, rs, "RS256", hdr("RS256", "rs"), claims(func(c map[string]any) { c["iss"] = []string{iss} })), jwt.ErrMalformed},
		{"wrong audience", def, sign(t, rs, "RS256", hdr("RS256", "rs"), claims(func(c map[string]any) { c["aud"] = "billing" })), jwt.ErrAudience},
		{"wrong audiences", def, sign(t, rs, "RS256", hdr("RS256", "rs"), claims(func(c map[string]any) { c["aud"] = []string{"billing", "CATALOG"} })), jwt.ErrAudience},
		{"no audience", def, sign(t, rs, "RS256", hdr("RS256", "rs"), claims(func(c map[string]any) { delete(c, "aud") })), jwt.ErrAudience},
		{"audience not strings", def, sign(t, rs, "RS256", hdr("RS256", "rs"), claims(func(c map[string]any) { c["aud"] = []any{"catalog", 1} })), jwt.ErrMalformed},
		{"audience null", def, sign(t, rs, "RS256", hdr("RS256", "rs"), claims(func(c map[string]any) { c["aud"] = nil })), jwt.ErrMalformed},

		// Algorithms.
		{"alg none", def, sign(t, nil, "", hdr("none", ""), claims(nil)), jwt.ErrAlgorithm},
		{"alg none, every alg allowed", every, sign(t, nil, "", hdr("none", ""), claims(nil)), jwt.ErrAlgorithm},
		{"alg None", every, sign(t, nil, "", hdr("None", ""), claims(nil)), jwt.ErrAlgorithm},
		{"HS256 with the RSA public key (PEM) as secret", every, hs256(t, pemPublic(t, rs.key), hdr("HS256", "rs"), claims(nil)), jwt.ErrAlgorithm},
		{"HS256 with the RSA modulus as secret", every, hs256(t, rs.key.Public().(*rsa.PublicKey).N.Bytes(), hdr("HS256", ""), claims(nil)), jwt.ErrAlgorithm},
		{"HS256 with the JWK as secret", every, hs256(t, mustJSON(t, rs.jwk), hdr("HS256", "rs"), claims(nil)), jwt.ErrAlgorithm},
		{"RS384 not in default allowlist", def, sign(t, rs, "RS384", hdr("RS384", "rs"), claims(nil)), jwt.ErrAlgorithm},
		{"EdDSA not in default allowlist", def, sign(t, ed, "EdDSA", hdr("EdDSA", "ed"), claims(nil)), jwt.ErrAlgorithm},
		{"alg lower case", every, sign(t, rs, "RS256", hdr("rs256", "rs"), claims(nil)), jwt.ErrAlgorithm},
		{"alg missing", def, sign(t, rs, "RS256", map[string]any{"kid": "rs"}, claims(nil)), jwt.ErrMalformed},
		{"alg in upper-case member name", def, sign(t, rs, "RS256", map[string]any{"ALG": "RS256", "kid": "rs"}, claims(nil)), jwt.ErrMalformed},
		{"alg twice", def, sign(t, rs, "RS256", `{"alg":"none","alg":"RS256","kid":"rs"}`, claims(nil)), jwt.ErrMalformed},
		{"alg not a string", def, sign(t, rs, "RS256", `{"alg":["RS256"],"kid":"rs"}`, claims(nil)), jwt.ErrMalformed},
		{"crit", def, sign(t, rs, "RS256", map[string]any{"alg": "RS256", "kid": "rs", "crit": []string{"b64"}, "b64": false}, claims(nil)), jwt.ErrMalformed},

		// Keys.
		{"unknown kid", def, sign(t, rs2, "RS256", hdr("RS256", "rs2"), claims(nil)), jwt.ErrUnknownKey},
		{"other key, no kid", def, sign(t, rs2, "RS256", hdr("RS256", ""), claims(nil)), jwt.ErrSignature},
		{"other key, our kid", def, sign(t, rs2, "RS256", hdr("RS256", "rs"), claims(nil)), jwt.ErrSignature},
		{"kid null", def, sign(t, rs, "RS256", `{"alg":"RS256","kid":null}`, claims(nil)), jwt.ErrMalformed},
		{"kid of an EC key with RS256", def, sign(t, rs, "RS256", hdr("RS256", "ec"), claims(nil)), jwt.ErrUnknownKey},
		{"kid of an RSA key with ES256", def, sign(t, ec, "ES256", hdr("ES256", "rs"), claims(nil)), jwt.ErrUnknownKey},
		{"ES256 by a P-384 key", every, sign(t, ec384, "ES256", hdr("ES256", "ec384"), claims(nil)), jwt.ErrUnknownKey},
		{"ES384 header, P-256 key", every, sign(t, ec, "ES384", hdr("ES384", "ec"), claims(nil)), jwt.ErrUnknownKey},
		{"ES256 in DER", def, sign(t, ec, "DER256", hdr("ES256", "ec"), claims(nil)), jwt.ErrSignature},
		{"PS256 signature as RS256", every, sign(t, rs, "PS256", hdr("RS256", "rs"), claims(nil)), jwt.ErrSignature},
		{"RS256 signature as PS256", every, sign(t, rs, "RS256", hdr("PS256", "rs"), claims(nil)), jwt.ErrSignature},
		{"empty key set", empty, valid, jwt.ErrUnknownKey},
		{"nil key set", nilKeys, valid, jwt.ErrUnknownKey},

		// Tampering and form.
		{"tampered claims", def, tamperedClaims, jwt.ErrSignature},
		{"tampered header", def, b64(mustJSON(t, map[string]any{"alg": "RS256", "kid": "rs", "x": 1})) + "." + parts[1] + "." + parts[2], jwt.ErrSignature},
		{"tampered signature", def, parts[0] + "." + parts[1] + "." + flip(parts[2], 10), jwt.ErrSignature},
		{"truncated signature", def, parts[0] + "." + parts[1] + "." + b64(mustB64(t, parts[2])[:255]), jwt.ErrSignature},
		{"empty signature", def, parts[0] + "." + parts[1] + ".", jwt.ErrSignature},
		{"padded", def, valid + "==", jwt.ErrMalformed},
		{"standard base64", def, strings.NewReplacer("-", "+", "_", "/").Replace(valid), jwt.ErrMalformed},
		{"two parts", def, parts[0] + "." + parts[1], jwt.ErrMalformed},
		{"four parts", def, valid + ".x", jwt.ErrMalformed},
		{"JWE", def, "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d", jwt.ErrMalformed},
		{"empty", def, "", jwt.ErrMalformed},
		{"too large", def, sign(t, rs, "RS256", hdr("RS256", "rs"), claims(func(c map[string]any) { c["x"] = strings.Repeat("a", jwt.MaxTokenSize) })), jwt.ErrMalformed},
		{"claims too deep", def, sign(t, rs, "RS256", hdr("RS256", "rs"), `{"iss":"`+iss+`","x":`+strings.Repeat("[", 17)+strings.Repeat("]", 17)+`}`), jwt.ErrMalformed},
		{"claims twice", def, sign(t, rs, "RS256", hdr("RS256", "rs"), `{"iss":"https://evil","iss":"`+iss+`","aud":"catalog","exp":9999999999}`), jwt.ErrMalformed},
		{"claims not an object", def, sign(t, rs, "RS256", hdr("RS256", "rs"), `["iss"]`), jwt.ErrMalformed},
		{"claims trailing data", def, sign(t, rs, "RS256", hdr("RS256", "rs"), `{"iss":"`+iss+`","aud":"catalog","exp":9999999999} {}`), jwt.ErrMalformed},
		{"header not JSON", def, b64([]byte("RS256")) + "." + parts[1] + "." + parts[2], jwt.ErrMalformed},
	}
	for _, alg := range all {
		var s *signer
		kid := ""
		switch alg[:2] {
		case "RS", "PS":
			s, kid = rs, "rs"
		case "ES":
			s, kid = map[string]*signer{"256": ec, "384": ec384, "512": ec521}[alg[2:]], "ec"+map[string]string{"256": "", "384": "384", "512": "521"}[alg[2:]]
		default:
			s, kid = ed, "ed"
		}
		cases = append(cases, tc{"every alg " + alg, every, sign(t, s, alg, hdr(alg, kid), claims(nil)), nil})
		cases = append(cases, tc{"every alg, no kid " + alg, every, sign(t, s, alg, hdr(alg, ""), claims(nil)), nil})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.p.Verify(c.token, now)
			if c.err == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if got.Issuer != iss || got.Raw["iss"] != iss {
					t.Fatalf("claims %+v", got)
				}
				return
			}
			if !errors.Is(err, c.err) {
				t.Fatalf("got %v, want %v", err, c.err)
			}
			if got != nil {
				t.Fatal("claims returned with an error")
			}
			if len(c.token) > 20 && strings.Contains(err.Error(), c.token[:20]) {
				t.Fatal("error echoes the token")
			}
			if jwt.StatusCode(err) != http.StatusUnauthorized {
				t.Fatal("not a 401")
			}
		})
	}

	c, err := def.Verify(valid, now)
	if err != nil {
		t.Fatal(err)
	}
	if c.Principal() != iss+"/alice" || c.Subject != "alice" || c.KeyID != "rs" || c.Algorithm != "RS256" ||
		len(c.Audience) != 1 || c.Audience[0] != "catalog" || !c.Expiry.Equal(now.Add(time.Hour)) || !c.NotBefore.Equal(now.Add(-time.Minute)) {
		t.Fatalf("claims %+v", c)
	}
}

func TestProviderValidate(t *testing.T) {
	for _, p := range []*jwt.Provider{
		{},
		{Issuer: iss, Algorithms: []string{"none"}},
		{Issuer: iss, Algorithms: []string{"HS256"}},
		{Issuer: iss, Algorithms: []string{"RS256", "HS512"}},
		{Issuer: iss, Algorithms: []string{"RS1"}},
		{Issuer: iss, Algorithms: []string{}},
		{Issuer: iss, Audiences: []string{""}},
		{Issuer: iss, ClockSkew: time.Hour},
		{Issuer: iss, FromHeaders: []jwt.HeaderSource{{Name: "x_token"}}},
		{Issuer: iss, FromParams: []string{""}},
		{Issuer: iss, ForwardClaims: map[string]string{"sub": "x user"}},
		{Issuer: iss, ForwardClaims: map[string]string{"": "x-user"}},
	} {
		if err := p.Validate(); err == nil {
			t.Errorf("Validate(%+v) accepted", p)
		}
	}
	_, err := jwt.NewAuthenticator(&jwt.Provider{Issuer: iss}, &jwt.Provider{Issuer: iss})
	if err == nil {
		t.Error("two providers for one issuer accepted")
	}
}

func TestParseJWKS(t *testing.T) {
	rs := genRSA(t, "rs", 2048)
	weak := genRSA(t, "weak", 1024)
	ec := genEC(t, "ec", elliptic.P256())
	ed := genEd(t, "ed")
	with := func(k map[string]any, kv ...any) map[string]any {
		m := map[string]any{}
		for a, b := range k {
			m[a] = b
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	skipped := []map[string]any{
		{"kty": "oct", "kid": "h", "k": "c2VjcmV0"},
		with(rs.jwk, "kid", "enc", "use", "enc"),
		with(rs.jwk, "kid", "ops", "key_ops", []string{"encrypt"}),
		with(rs.jwk, "kid", "hs", "alg", "HS256"),
		with(rs.jwk, "kid", "oaep", "alg", "RSA-OAEP"),
		with(rs.jwk, "kid", "mismatch", "alg", "ES256"),
		with(ec.jwk, "kid", "ec-rs", "alg", "RS256"),
		with(ec.jwk, "kid", "ec384", "alg", "ES384"), // a P-256 key cannot do ES384
		weak.jwk,
		{"kty": "OKP", "crv": "Ed448", "x": b64(make([]byte, 57))},
		{"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA"},
		{"kty": "XYZ"},
	}
	usable := []map[string]any{rs.jwk, ec.jwk, ed.jwk, with(rs.jwk, "kid", "rs-sig", "use", "sig", "alg", "RS256", "key_ops", []string{"verify"}), with(ed.jwk, "kid", "ed-alg", "alg", "Ed25519")}
	ks, err := jwt.ParseJWKS(jwks(t, append(skipped, usable...)...))
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(ks.KeyIDs()); got != "[rs ec ed rs-sig ed-alg]" {
		t.Fatalf("usable keys %s", got)
	}
	// Private members are never read: a JWK with "d" is its public key.
	if ks, err := jwt.ParseJWKS(jwks(t, with(ec.jwk, "d", b64(make([]byte, 32))))); err != nil || ks.Len() != 1 {
		t.Fatalf("key with private part: %v %v", ks.Len(), err)
	}

	ecBytes := func(k *signer) (x, y []byte) {
		return mustB64(t, k.jwk["x"].(string)), mustB64(t, k.jwk["y"].(string))
	}
	x, y := ecBytes(ec)
	offCurve := append([]byte(nil), y...)
	offCurve[31] ^= 1
	for name, in := range map[string]string{
		"not JSON":          "{",
		"not an object":     "[]",
		"no keys":           `{}`,
		"keys null":         `{"keys":null}`,
		"keys not an array": `{"keys":{}}`,
		"key not an object": `{"keys":[1]}`,
		"kid not a string":  string(jwks(t, with(rs.jwk, "kid", 1))),
		"too deep":          `{"keys":[],"x":` + strings.Repeat("[", 20) + strings.Repeat("]", 20) + `}`,
		"duplicate keys":    `{"keys":[],"keys":[]}`,
		"too many": string(jwks(t, func() []map[string]any {
			m := make([]map[string]any, jwt.MaxKeys+1)
			for i := range m {
				m[i] = ed.jwk
			}
			return m
		}()...)),
	} {
		if _, err := jwt.ParseJWKS([]byte(in)); !errors.Is(err, jwt.ErrJWKS) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A malformed key is skipped, not the whole set: the other keys of an
	// identity provider keep working, tokens of the bad key fail.
	for name, in := range map[string]string{
		"bad modulus":   string(jwks(t, with(rs.jwk, "n", "!!"))),
		"even modulus":  string(jwks(t, with(rs.jwk, "n", b64(append(mustB64(t, rs.jwk["n"].(string))[:255], 2))))),
		"no exponent":   string(jwks(t, with(rs.jwk, "e", ""))),
		"exponent 1":    string(jwks(t, with(rs.jwk, "e", "AQ"))),
		"even exponent": string(jwks(t, with(rs.jwk, "e", "AQAA"))),
		"huge exponent": string(jwks(t, with(rs.jwk, "e", b64([]byte{1, 0, 0, 0, 1})))),
		"off curve":     string(jwks(t, with(ec.jwk, "y", b64(offCurve)))),
		"short x":       string(jwks(t, with(ec.jwk, "x", b64(x[1:])))),
		"long y":        string(jwks(t, with(ec.jwk, "y", b64(append([]byte{0}, y...))))),
		"short Ed25519": string(jwks(t, with(ed.jwk, "x", b64(make([]byte, 31))))),
	} {
		ks, err := jwt.ParseJWKS([]byte(in))
		if err != nil || ks.Len() != 0 || len(ks.Skipped()) != 1 {
			t.Errorf("%s: err %v, %d keys, skipped %v", name, err, ks.Len(), ks.Skipped())
		}
	}
	if ks, err := jwt.ParseJWKS([]byte(`{"keys":[]}`)); err != nil || ks.Len() != 0 {
		t.Fatalf("empty set: %v", err)
	}
}

func mustB64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := b64dec(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAuthenticate(t *testing.T) {
	rs := genRSA(t, "rs", 2048)
	other := genEC(t, "o", elliptic.P256())
	p := &jwt.Provider{
		Issuer: iss, Audiences: []string{"catalog"}, Keys: parseJWKS(t, jwks(t, rs.jwk)),
		ForwardClaims: map[string]string{"sub": "x-jwt-sub", "groups": "X-Jwt-Groups", "email_verified": "x-jwt-verified", "nested": "x-jwt-nested", "evil": "x-jwt-evil"},
	}
	q := &jwt.Provider{
		Issuer: "https://other.example", Keys: parseJWKS(t, jwks(t, other.jwk)),
		FromHeaders: []jwt.HeaderSource{{Name: "x-token"}}, FromParams: []string{"access_token"}, ForwardToken: false,
	}
	a, err := jwt.NewAuthenticator(p, q)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(a.ClaimHeaders()); got != "[X-Jwt-Evil X-Jwt-Groups X-Jwt-Nested X-Jwt-Sub X-Jwt-Verified]" {
		t.Fatalf("claim headers %s", got)
	}
	tok := sign(t, rs, "RS256", hdr("RS256", "rs"), claims(func(c map[string]any) {
		c["email_verified"] = true
		c["nested"] = map[string]any{"a": 1}
		c["evil"] = "a\r\nx-admin: 1"
	}))
	otherTok := sign(t, other, "ES256", hdr("ES256", "o"), map[string]any{"iss": "https://other.example", "sub": "bob", "exp": now.Add(time.Hour).Unix()})

	req := func(target string, h ...string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, target, nil)
		for i := 0; i < len(h); i += 2 {
			r.Header.Add(h[i], h[i+1])
		}
		return r
	}

	// No token: unauthenticated, but client claim headers are gone.
	r := req("/", "X-Jwt-Sub", "admin", "Authorization", "Basic dXNlcjpwYXNz")
	if c, err := a.Authenticate(r, now); c != nil || err != nil {
		t.Fatalf("no token: %v %v", c, err)
	}
	if r.Header.Get("X-Jwt-Sub") != "" || r.Header.Get("Authorization") == "" {
		t.Fatalf("headers %v", r.Header)
	}

	// A valid token: claims forwarded, forged copies replaced, token removed.
	r = req("/?a=1", "Authorization", "bearer  "+tok, "X-Jwt-Sub", "admin", "x-jwt-groups", "root")
	c, err := a.Authenticate(r, now)
	if err != nil {
		t.Fatal(err)
	}
	if c.Principal() != iss+"/alice" {
		t.Fatalf("principal %s", c.Principal())
	}
	if got := r.Header.Values("X-Jwt-Sub"); len(got) != 1 || got[0] != "alice" {
		t.Fatalf("x-jwt-sub %q", got)
	}
	if got := r.Header.Values("X-Jwt-Groups"); len(got) != 1 || got[0] != "dev,ops" {
		t.Fatalf("x-jwt-groups %q", got)
	}
	if r.Header.Get("X-Jwt-Verified") != "true" || r.Header.Get("X-Jwt-Nested") != "" || r.Header.Get("X-Jwt-Evil") != "" {
		t.Fatalf("headers %v", r.Header)
	}
	if r.Header.Get("Authorization") != "" {
		t.Fatal("token forwarded")
	}

	// Query parameter token, removed with the rest of the query kept.
	r = req("/p?x=1&access_token=" + otherTok + "&y=%2F")
	if c, err := a.Authenticate(r, now); err != nil || c.Subject != "bob" {
		t.Fatalf("query token: %v %v", c, err)
	}
	if r.URL.RawQuery != "x=1&y=%2F" || r.RequestURI != "/p?x=1&y=%2F" {
		t.Fatalf("query %q, request URI %q", r.URL.RawQuery, r.RequestURI)
	}
	// Custom header without prefix.
	r = req("/", "X-Token", otherTok)
	if c, err := a.Authenticate(r, now); err != nil || c.Subject != "bob" || r.Header.Get("X-Token") != "" {
		t.Fatalf("header token: %v %v", c, err)
	}
	// The same token twice is one token.
	r = req("/?access_token="+otherTok, "X-Token", otherTok)
	if _, err := a.Authenticate(r, now); err != nil {
		t.Fatalf("same token twice: %v", err)
	}

	for name, r := range map[string]*http.Request{
		"two tokens":         req("/", "Authorization", "Bearer "+tok, "Authorization", "Bearer "+otherTok),
		"two places":         req("/", "Authorization", "Bearer "+tok, "X-Token", otherTok),
		"garbage":            req("/", "Authorization", "Bearer abc"),
		"empty bearer":       req("/", "Authorization", "Bearer "),
		"unknown issuer":     req("/", "Authorization", "Bearer "+sign(t, rs, "RS256", hdr("RS256", "rs"), claims(func(c map[string]any) { c["iss"] = "https://evil" }))),
		"other issuer's key": req("/", "Authorization", "Bearer "+sign(t, rs, "RS256", hdr("RS256", "rs"), map[string]any{"iss": "https://other.example", "exp": now.Add(time.Hour).Unix()})),
		"expired":            req("/", "Authorization", "Bearer "+sign(t, rs, "RS256", hdr("RS256", "rs"), claims(func(c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() }))),
	} {
		r.Header.Set("X-Jwt-Sub", "admin")
		c, err := a.Authenticate(r, now)
		if err == nil || c != nil || jwt.StatusCode(err) != http.StatusUnauthorized {
			t.Errorf("%s: %v %v", name, c, err)
		}
		if r.Header.Get("X-Jwt-Sub") != "" {
			t.Errorf("%s: forged claim header kept", name)
		}
	}

	// ForwardToken keeps it.
	p2 := *p
	p2.ForwardToken = true
	a2, err := jwt.NewAuthenticator(&p2)
	if err != nil {
		t.Fatal(err)
	}
	r = req("/", "Authorization", "Bearer "+tok)
	if _, err := a2.Authenticate(r, now); err != nil || r.Header.Get("Authorization") == "" {
		t.Fatalf("forward token: %v", err)
	}
}
