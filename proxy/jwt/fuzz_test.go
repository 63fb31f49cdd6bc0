package jwt_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/proxy/jwt"
)

var update = flag.Bool("update", false, "rewrite the seed corpus under testdata/fuzz")

// fuzzRSAPEM is a test-only RSA key, fixed so that every fuzz worker
// process verifies with the same keys ("TESTING KEY" keeps secret scanners
// quiet; it protects nothing).
var fuzzRSAPEM = `
-----BEGIN TESTING KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCBuqdKJ5m6+z19
ZnWWLSE+eSJ5dzMVYUKQuj4V45KhxJDgKbrBXO6ow8LiZ5GW7g1xfxUZN6mUIU9a
thgWyozaDBnygtaW3SY7laOpZj94tiEnZU4ocOURAIvLHlVUUWEHhjsGckp8KDuy
D0ig3j9vZzPfFlrnGBbxVmsbe4LwJ+DdLv3hHaypCYQVK/YGpZG9+9CIp9NB+ujU
gGjF3h3U1vUa4C+w7Gu6SVQ8NHFmbJZSZOTsYs+jrAr2xyFHc0SdD31RJ9JGAqlR
vP00VoepxpgndbmXcBm5A73tdpJpoYiP2ZbXeEoPyCwitFzW7ASadVC9uWdrzgOW
/WEbKoptAgMBAAECggEAAQB/jUTmsjksMufpLZVApfpf3Un3OjQ2RDw5Vt2bQtDs
ANyMUDUBtN+k2tnLl+ZTx+t1hBctd0hAlCXxjq+Bd1JTmvoOt+Xnsdsd2KTtBZIm
ibwwZoM6Ca++5Kfh0dUPvPP48xD2k/noPXT9GHJO/B3Ib/HSFunVN4egK9Cq5LmZ
+YXC9KRIQ9eINhlUFzwFVqdBA4pW4ywBFliljgWbt1Tuc/aDRIfjYTvrBBDkWsyq
82iOEVI+8DgEUiOQ/uhh3SUuRQW/5+7Ay4ENe1VIAFfhDe7LC2B3DZ7L+/SkmBXY
apzntlQeyI8uvxbdV5aBc2oGb/8aPeD+USEAlXwYEQKBgQC2ah8En2dSxSZ1m0Rl
l7GtLSwHK2/C33ACc305klCHHv9V5FrBjAt4Fh1xzPWX+my06z6jAhFku0usTBBx
98l5wiCz/sJr9iN0HyQrJcfqxnLnCSH19Y1L6S7+2V9/GNSIKRiYU8Gy6aGa0wIX
UV0GVpY77JFboobcXRDho+5wtQKBgQC2D7qt8nCv+bzCoT/kcUGotpzfeAOresoo
X0riUxSs6O8UhNju1qjbeLGd09q/nY2JMXORITQJUD+6YkcuL7F+jjPzSBo+8F73
XVOfXqvyTIBrVYhKapWgVZjCvne8NYUusyFDAumzNlorWNQGEpMaoNwJmFJ+b2Lf
AkwQSfad2QKBgQCv8uCEZvUUo1Gbcu6gR5d8AOxM5hrhDwBNfPQ2yeiezMlhIehg
dCLD7CDumdHyi/y67YX3WZFJZldxk9Tw+R7/ML62n28ND9fWtAsBC2owDMbcDrUR
N47Yv80yyJ0STPMDexBcLb3SQwQ8AHgt4a8m4/H5TxBOIRCQEbysyKC/WQKBgGmp
OUuIv9OxmdZPJTicbmHPEb4z9dVInxjNLTWqx/4N9esvqoL6u+cb5eFWOccpViJA
O/UHkx6wnzu5m9v3PAjZ2NahivHqKQNg+44rsJkfwwwICOA/eXUjGFQ1nGHzocbX
mT896oniynQLyol3sD4tC2baK05LsNMCj0iI1IMJAoGAB/Zw1QCcRLa256rwyf0h
ddJuteBzjyCTMeTBrRhqsmC/FW8RIzZyfC7cYfterk3TDFVBVPm/2z1peKTWPBez
87NPprDiw7oLgs5Pxw9bb/axJvO4WoAe/f6bdA5hZe/qGFqfW2ums9XbR+sgJ8yS
INGZuQ4jnNdEjZVAggjwhes=
-----END TESTING KEY-----
`

// fuzzKeys are the fixed keys of the fuzz targets: RSA, P-256, Ed25519.
func fuzzKeys(t testing.TB) []*signer {
	block, _ := pem.Decode([]byte(strings.ReplaceAll(fuzzRSAPEM, "TESTING KEY", "PRIVATE KEY")))
	if block == nil {
		t.Fatal("no PEM")
	}
	rk, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	scalar := make([]byte, 32)
	scalar[31] = 7
	scalar[0] = 0x42
	ek, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), scalar)
	if err != nil {
		t.Fatal(err)
	}
	seed := make([]byte, ed25519.SeedSize)
	copy(seed, "weft jwt fuzz test key, ed25519")
	return []*signer{
		newSigner("rsa", rk.(*rsa.PrivateKey)),
		newSigner("ec", ek),
		newSigner("ed", ed25519.NewKeyFromSeed(seed)),
	}
}

// fuzzNow is the time of the fuzz targets' checks.
var fuzzNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// fuzzTokens signs the seed tokens with the fixed keys; it returns them
// and the set of signing inputs (header.claims) signed.
func fuzzTokens(t testing.TB) ([]string, map[string]bool, *jwt.Provider) {
	keys := fuzzKeys(t)
	var ks []map[string]any
	for _, k := range keys {
		ks = append(ks, k.jwk)
	}
	p := &jwt.Provider{Issuer: iss, Audiences: []string{"catalog"}, Keys: parseJWKS(t, jwks(t, ks...)),
		Algorithms: []string{"RS256", "RS512", "PS256", "ES256", "EdDSA"}}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	exp := fuzzNow.Add(time.Hour).Unix()
	bodies := []string{
		fmt.Sprintf(`{"iss":%q,"sub":"alice","aud":"catalog","exp":%d}`, iss, exp),
		fmt.Sprintf(`{"iss":%q,"sub":"bob","aud":["x","catalog"],"exp":%d,"nbf":%d,"iat":%d,"groups":["a","b"],"n":{"m":[1,2.5,true,null]}}`, iss, exp, exp-7200, exp-7200),
		fmt.Sprintf(`{"iss":%q,"sub":"carol","aud":"catalog","exp":%d}`, iss, exp-7200), // expired
		fmt.Sprintf(`{"iss":"https://evil","sub":"mallory","aud":"catalog","exp":%d}`, exp),
	}
	var tokens []string
	inputs := map[string]bool{}
	for _, k := range keys {
		algs := map[string][]string{"rsa": {"RS256", "RS512", "PS256"}, "ec": {"ES256"}, "ed": {"EdDSA"}}[k.kid]
		for _, alg := range algs {
			for i, body := range bodies {
				h := fmt.Sprintf(`{"alg":%q,"kid":%q}`, alg, k.kid)
				if i%2 == 1 {
					h = fmt.Sprintf(`{"alg":%q,"typ":"JWT"}`, alg)
				}
				tok := sign(t, k, alg, h, body)
				tokens = append(tokens, tok)
				inputs[tok[:strings.LastIndexByte(tok, '.')]] = true
			}
		}
	}
	tokens = append(tokens,
		sign(t, nil, "", `{"alg":"none"}`, bodies[0]),
		hs256(t, pemPublic(t, keys[0].key), `{"alg":"HS256","kid":"rsa"}`, bodies[0]),
		sign(t, keys[1], "DER256", `{"alg":"ES256","kid":"ec"}`, bodies[0]),
		"eyJhbGciOiJSUzI1NiJ9.e30.",
		"a.b.c",
		"",
	)
	return tokens, inputs, p
}

var verifyErrors = []error{jwt.ErrMalformed, jwt.ErrAlgorithm, jwt.ErrUnknownKey, jwt.ErrSignature,
	jwt.ErrIssuer, jwt.ErrAudience, jwt.ErrExpired, jwt.ErrNotYetValid}

// FuzzVerify: no input panics; every error is one of the package's; and
// nothing is accepted that the fixed keys did not sign: an accepted
// token's signing input must be one the test signed.
func FuzzVerify(f *testing.F) {
	tokens, inputs, p := fuzzTokens(f)
	for _, tok := range tokens {
		f.Add(tok)
	}
	f.Fuzz(func(t *testing.T, token string) {
		c, err := p.Verify(token, fuzzNow)
		if err != nil {
			if c != nil {
				t.Fatal("claims with an error")
			}
			for _, e := range verifyErrors {
				if errors.Is(err, e) {
					return
				}
			}
			t.Fatalf("unexpected error %v", err)
		}
		i := strings.LastIndexByte(token, '.')
		if i < 0 || !inputs[token[:i]] {
			t.Fatalf("accepted a token the test keys did not sign: %q", token)
		}
		if c.Issuer != iss || c.Principal() == "" {
			t.Fatalf("claims %+v", c)
		}
	})
}

// FuzzParseJWKS: no input panics, and any key set it accepts can be used
// to verify tokens of every algorithm without panicking.
func FuzzParseJWKS(f *testing.F) {
	tokens, _, _ := fuzzTokens(f)
	for _, s := range jwksSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ks, err := jwt.ParseJWKS(b)
		if err != nil {
			if !errors.Is(err, jwt.ErrJWKS) || ks != nil {
				t.Fatalf("error %v, set %v", err, ks)
			}
			return
		}
		if ks.Len() > jwt.MaxKeys || len(ks.KeyIDs()) != ks.Len() {
			t.Fatalf("%d keys", ks.Len())
		}
		p := &jwt.Provider{Issuer: iss, Keys: ks, Algorithms: []string{"RS256", "RS512", "PS256", "ES256", "EdDSA"}}
		for _, tok := range tokens[:12] {
			_, _ = p.Verify(tok, fuzzNow)
		}
	})
}

func jwksSeeds(t testing.TB) [][]byte {
	keys := fuzzKeys(t)
	var ks []map[string]any
	for _, k := range keys {
		ks = append(ks, k.jwk)
	}
	withUse := map[string]any{"use": "sig", "alg": "ES256", "key_ops": []string{"verify"}}
	for k, v := range keys[1].jwk {
		withUse[k] = v
	}
	return [][]byte{
		jwks(t, ks...),
		jwks(t, keys[0].jwk),
		jwks(t, withUse),
		jwks(t, map[string]any{"kty": "oct", "k": "c2VjcmV0"}, map[string]any{"kty": "OKP", "crv": "Ed448", "x": "AA"}),
		[]byte(`{"keys":[]}`),
		[]byte(`{"keys":[{"kty":"EC","crv":"P-384","x":"AA","y":"AA"}]}`),
		[]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}],"x":[[[[]]]]}`),
	}
}

// TestFuzzSeeds checks the checked-in seed corpus (and with -update
// writes it from the seeds above).
func TestFuzzSeeds(t *testing.T) {
	tokens, _, _ := fuzzTokens(t)
	seeds := map[string][]string{}
	for _, tok := range tokens {
		seeds["FuzzVerify"] = append(seeds["FuzzVerify"], "string("+strconv.Quote(tok)+")")
	}
	for _, b := range jwksSeeds(t) {
		seeds["FuzzParseJWKS"] = append(seeds["FuzzParseJWKS"], "[]byte("+strconv.Quote(string(b))+")")
	}
	for target, values := range seeds {
		dir := filepath.Join("testdata", "fuzz", target)
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for i, v := range values {
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte("go test fuzz v1\n"+v+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		entries, err := os.ReadDir(dir)
		if err != nil || len(entries) < len(values) {
			t.Fatalf("seed corpus %s: %d files, %v (run go test -run TestFuzzSeeds -update)", dir, len(entries), err)
		}
	}
}
