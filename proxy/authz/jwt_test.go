package authz

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	x "github.com/weftmesh/weft/proxy/xdsresource"
)

var (
	keyOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

func testKey(t testing.TB) *rsa.PrivateKey {
	keyOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return rsaKey
}

func testJWKS(t testing.TB, kid string) []byte {
	k := testKey(t)
	b64 := base64.RawURLEncoding.EncodeToString
	set := map[string]any{"keys": []any{map[string]any{
		"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
		"n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes()),
	}}}
	b, _ := json.Marshal(set)
	return b
}

// sign makes a token with header h and claims c (alg "none" is left
// unsigned).
func sign(t testing.TB, h, c map[string]any) string {
	hb, _ := json.Marshal(h)
	cb, _ := json.Marshal(c)
	input := base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(cb)
	if h["alg"] == "none" {
		return input + "."
	}
	sum := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, testKey(t), crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

var testNow = time.Unix(1_800_000_000, 0)

func TestAuthenticate(t *testing.T) {
	jwks := testJWKS(t, "k1")
	providers := []x.JWTProvider{
		{Name: "ns/ra/0", Issuer: "https://issuer", Audiences: []string{"svc"}, JWKS: jwks, PayloadInMetadata: "ns/ra/0",
			ClaimToHeaders: []x.JWTClaimHeader{{Header: "x-sub", Claim: "sub"}, {Header: "x-org", Claim: "org.name"}}},
		{Name: "ns/down/0", Issuer: "https://down", JWKS: []byte(`{"keys":[]}`), PayloadInMetadata: "ns/down/0"},
		{Name: "ns/param/0", Issuer: "https://param", JWKS: jwks, PayloadInMetadata: "ns/param/0", FromParams: []string{"token"}, Forward: true},
	}
	engine := func(allowMissing bool) *Engine {
		return mustCompile(t, &x.AuthzFilters{JWT: &x.JWTAuthn{Providers: providers, AllowMissing: allowMissing}},
			Options{Now: func() time.Time { return testNow }})
	}
	hdr := map[string]any{"alg": "RS256", "kid": "k1", "typ": "JWT"}
	claims := func(mod func(c map[string]any)) map[string]any {
		c := map[string]any{"iss": "https://issuer", "sub": "alice", "aud": "svc", "exp": testNow.Add(time.Hour).Unix(),
			"org": map[string]any{"name": "acme"}}
		if mod != nil {
			mod(c)
		}
		return c
	}
	valid := sign(t, hdr, claims(nil))
	tests := []struct {
		name         string
		token        string // Authorization: Bearer
		url          string
		allowMissing bool
		status       int // 0: authenticated (or unauthenticated when allowed)
		payload      string
	}{
		{name: "valid", token: valid, payload: "ns/ra/0"},
		{name: "expired", token: sign(t, hdr, claims(func(c map[string]any) { c["exp"] = testNow.Add(-time.Hour).Unix() })), status: 401},
		{name: "expired within skew", token: sign(t, hdr, claims(func(c map[string]any) { c["exp"] = testNow.Add(-30 * time.Second).Unix() })), payload: "ns/ra/0"},
		{name: "wrong issuer", token: sign(t, hdr, claims(func(c map[string]any) { c["iss"] = "https://other" })), status: 401},
		{name: "wrong audience", token: sign(t, hdr, claims(func(c map[string]any) { c["aud"] = "other" })), status: 401},
		{name: "alg none", token: sign(t, map[string]any{"alg": "none"}, claims(nil)), status: 401},
		{name: "unknown kid", token: sign(t, map[string]any{"alg": "RS256", "kid": "k2"}, claims(nil)), status: 401},
		{name: "empty key set (JWKS down)", token: sign(t, hdr, claims(func(c map[string]any) { c["iss"] = "https://down" })), status: 401},
		{name: "bad signature", token: valid[:len(valid)-4] + "AAAA", status: 401},
		{name: "garbage", token: "not-a-token", status: 401},
		{name: "missing, required", status: 401},
		{name: "missing, allowed", allowMissing: true},
		{name: "bad token, missing allowed", token: "x.y.z", allowMissing: true, status: 401},
		{name: "query param", url: "/?a=1&token=" + sign(t, hdr, claims(func(c map[string]any) { c["iss"] = "https://param" })), payload: "ns/param/0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := tt.url
			if u == "" {
				u = "/"
			}
			r := httptest.NewRequest("GET", u, nil)
			r.Header.Set("X-Sub", "forged")
			if tt.token != "" {
				r.Header.Set("Authorization", "Bearer "+tt.token)
			}
			got, d := engine(tt.allowMissing).Authenticate(r)
			if r.Header.Get("X-Sub") == "forged" {
				t.Fatal("client copy of a claim header kept")
			}
			if tt.status != 0 {
				if d == nil || d.Status != tt.status || d.Allowed || d.DeniedHeaders.Get("Www-Authenticate") != "Bearer" {
					t.Fatalf("got %+v %v, want status %d", d, got, tt.status)
				}
				return
			}
			if d != nil {
				t.Fatalf("denied: %+v", d)
			}
			if tt.payload == "" {
				if got != nil {
					t.Fatalf("claims %v without a token", got)
				}
				return
			}
			if got[tt.payload] == nil {
				t.Fatalf("no payload %q in %v", tt.payload, got)
			}
			if tt.payload == "ns/ra/0" {
				if r.Header.Get("Authorization") != "" {
					t.Fatal("token not removed")
				}
				if r.Header.Get("X-Sub") != "alice" || r.Header.Get("X-Org") != "acme" {
					t.Fatalf("claim headers: %v", r.Header)
				}
			}
			if tt.payload == "ns/param/0" && !strings.Contains(r.URL.RawQuery, "token=") {
				t.Fatal("forwarded token removed")
			}
		})
	}
}

func TestAuthenticateRemovesParam(t *testing.T) {
	e := mustCompile(t, &x.AuthzFilters{JWT: &x.JWTAuthn{Providers: []x.JWTProvider{
		{Name: "p", Issuer: "https://issuer", JWKS: testJWKS(t, "k1"), PayloadInMetadata: "p", FromParams: []string{"access_token"}},
	}}}, Options{Now: func() time.Time { return testNow }})
	tok := sign(t, map[string]any{"alg": "RS256", "kid": "k1"}, map[string]any{"iss": "https://issuer", "sub": "a", "exp": testNow.Add(time.Hour).Unix()})
	r := httptest.NewRequest("GET", "/p?a=1&access_token="+tok+"&b=2", nil)
	if _, d := e.Authenticate(r); d != nil {
		t.Fatalf("denied: %+v", d)
	}
	if r.URL.RawQuery != "a=1&b=2" || r.RequestURI != "/p?a=1&b=2" {
		t.Fatalf("query %q, RequestURI %q", r.URL.RawQuery, r.RequestURI)
	}
	// The Authorization header is not where this provider looks.
	r = httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	if c, d := e.Authenticate(r); d == nil || c != nil {
		t.Fatalf("got %v %+v, want the token refused (no provider reads it there)", c, d)
	}
	_ = http.StatusOK
}
