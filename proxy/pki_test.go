package proxy_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// testPKI is a root CA, a control plane certificate and a tiny issuer:
// just enough control plane for the proxy to enroll over TLS.
type testPKI struct {
	root    *x509.Certificate
	rootKey *ecdsa.PrivateKey
	server  tls.Certificate
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{}
	p.rootKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, p.rootKey.Public(), p.rootKey)
	if err != nil {
		t.Fatal(err)
	}
	p.root, _ = x509.ParseCertificate(der)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cp, _ := url.Parse("spiffe://weft.local/ns/weft-system/sa/control-plane")
	leaf := p.sign(t, key.Public(), cp, []net.IP{net.ParseIP("127.0.0.1")})
	p.server = tls.Certificate{Certificate: [][]byte{leaf.Raw, p.root.Raw}, PrivateKey: key, Leaf: leaf}
	return p
}

func (p *testPKI) sign(t *testing.T, pub any, id *url.URL, ips []net.IP) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		URIs: []*url.URL{id}, IPAddresses: ips, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.root, pub, p.rootKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func (p *testPKI) pin() string {
	sum := sha256.Sum256(p.root.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func (p *testPKI) serverTLS() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(p.root)
	return &tls.Config{Certificates: []tls.Certificate{p.server}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, NextProtos: []string{"h2"}}
}

// serveIssuer signs any CSR (the real issuer checks tokens; not the
// subject of these tests).
func (p *testPKI) serveIssuer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			CSR []byte `json:"csr"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		csr, err := x509.ParseCertificateRequest(req.CSR)
		if err != nil || len(csr.URIs) != 1 {
			http.Error(w, "bad csr", 400)
			return
		}
		leaf := p.sign(t, csr.PublicKey, csr.URIs[0], nil)
		json.NewEncoder(w).Encode(map[string]any{"chain": [][]byte{leaf.Raw}, "bundle": [][]byte{p.root.Raw}})
	}), TLSConfig: &tls.Config{Certificates: []tls.Certificate{p.server}}}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}
