package jwt_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"testing"

	"github.com/weftmesh/weft/proxy/jwt"
)

// signer is a test private key with the JWK of its public half.
type signer struct {
	kid string
	key crypto.Signer
	jwk map[string]any
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func newSigner(kid string, k crypto.Signer) *signer {
	s := &signer{kid: kid, key: k, jwk: map[string]any{"kid": kid}}
	switch pub := k.Public().(type) {
	case *rsa.PublicKey:
		s.jwk["kty"] = "RSA"
		s.jwk["n"] = b64(pub.N.Bytes())
		s.jwk["e"] = b64(big.NewInt(int64(pub.E)).Bytes())
	case *ecdsa.PublicKey:
		b, _ := pub.Bytes()
		size := (len(b) - 1) / 2
		s.jwk["kty"] = "EC"
		s.jwk["crv"] = pub.Curve.Params().Name
		s.jwk["x"] = b64(b[1 : 1+size])
		s.jwk["y"] = b64(b[1+size:])
	case ed25519.PublicKey:
		s.jwk["kty"] = "OKP"
		s.jwk["crv"] = "Ed25519"
		s.jwk["x"] = b64(pub)
	}
	return s
}

func genRSA(t testing.TB, kid string, bits int) *signer {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return newSigner(kid, k)
}

func genEC(t testing.TB, kid string, c elliptic.Curve) *signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return newSigner(kid, k)
}

func genEd(t testing.TB, kid string) *signer {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return newSigner(kid, k)
}

func jwks(t testing.TB, keys ...map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	if b, ok := v.([]byte); ok {
		return b
	}
	if s, ok := v.(string); ok {
		return []byte(s)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sign makes a compact JWS of header and claims (maps, or raw JSON as
// string or []byte) with alg; a nil signer gives an empty signature.
func sign(t testing.TB, s *signer, alg string, header, claims any) string {
	t.Helper()
	input := b64(mustJSON(t, header)) + "." + b64(mustJSON(t, claims))
	if s == nil {
		return input + "."
	}
	return input + "." + b64(rawSign(t, s.key, alg, []byte(input)))
}

func hashOf(alg string) crypto.Hash {
	switch alg[2:] {
	case "384":
		return crypto.SHA384
	case "512":
		return crypto.SHA512
	}
	return crypto.SHA256
}

func rawSign(t testing.TB, k crypto.Signer, alg string, input []byte) []byte {
	t.Helper()
	if alg == "EdDSA" || alg == "Ed25519" {
		return ed25519.Sign(k.(ed25519.PrivateKey), input)
	}
	h := hashOf(alg)
	hh := h.New()
	hh.Write(input)
	d := hh.Sum(nil)
	var sig []byte
	var err error
	switch alg[:2] {
	case "RS":
		sig, err = rsa.SignPKCS1v15(rand.Reader, k.(*rsa.PrivateKey), h, d)
	case "PS":
		sig, err = rsa.SignPSS(rand.Reader, k.(*rsa.PrivateKey), h, d, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case "ES":
		ek := k.(*ecdsa.PrivateKey)
		r, s, e := ecdsa.Sign(rand.Reader, ek, d)
		if e != nil {
			t.Fatal(e)
		}
		size := (ek.Curve.Params().BitSize + 7) / 8
		sig = make([]byte, 2*size)
		r.FillBytes(sig[:size])
		s.FillBytes(sig[size:])
	case "DE": // "DER256": ES256 signed in ASN.1 DER
		sig, err = ecdsa.SignASN1(rand.Reader, k.(*ecdsa.PrivateKey), d)
	default:
		t.Fatalf("no signer for %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// hs256 "signs" with HMAC-SHA256 and the given secret: the confusion attack.
func hs256(t testing.TB, secret []byte, header, claims any) string {
	input := b64(mustJSON(t, header)) + "." + b64(mustJSON(t, claims))
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(input))
	return input + "." + b64(m.Sum(nil))
}

func pemPublic(t testing.TB, k crypto.Signer) []byte {
	der, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func parseJWKS(t testing.TB, b []byte) *jwt.KeySet {
	t.Helper()
	ks, err := jwt.ParseJWKS(b)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func b64dec(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }
