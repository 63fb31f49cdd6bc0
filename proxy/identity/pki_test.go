package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/url"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// The trust domain of the tests, and a few workloads in it.
var (
	testTD      = spiffeid.RequireTrustDomainFromString("weft.test")
	catalogID   = spiffeid.RequireFromString("spiffe://weft.test/ns/shop/sa/catalog")
	frontendID  = spiffeid.RequireFromString("spiffe://weft.test/ns/shop/sa/frontend")
	paymentsID  = spiffeid.RequireFromString("spiffe://weft.test/ns/shop/sa/payments")
	foreignID   = spiffeid.RequireFromString("spiffe://other.test/ns/shop/sa/frontend")
	serialLimit = new(big.Int).Lsh(big.NewInt(1), 127)
)

// testCA is a two-level CA: a self-signed root and an intermediate that
// signs the leaves. Its methods are safe for concurrent use.
type testCA struct {
	root     *x509.Certificate
	inter    *x509.Certificate
	interKey crypto.Signer
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	rootKey := newTestKey(t)
	root := createCert(t, &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{name}, CommonName: name + " root"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, nil, rootKey.Public(), rootKey)
	interKey := newTestKey(t)
	inter := createCert(t, &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{name}, CommonName: name + " intermediate"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, root, interKey.Public(), rootKey)
	return &testCA{root: root, inter: inter, interKey: interKey}
}

// issue returns a leaf chain [leaf, intermediate] with a new key. The leaf
// is a valid SVID for id (which may be zero: no URI SAN) until mod changes
// it.
func (ca *testCA) issue(t testing.TB, id spiffeid.ID, mod func(*x509.Certificate)) ([]*x509.Certificate, crypto.Signer) {
	t.Helper()
	key := newTestKey(t)
	tmpl := leafTemplate(id)
	if mod != nil {
		mod(tmpl)
	}
	leaf := createCert(t, tmpl, ca.inter, key.Public(), ca.interKey)
	return []*x509.Certificate{leaf, ca.inter}, key
}

// sign is a Rotator Fetch-like signer: it issues the CSR's URI for ttl.
// It is safe for concurrent use and reports failures as errors, so that it
// can run outside the test goroutine.
func (ca *testCA) sign(csrDER []byte, ttl time.Duration) ([]*x509.Certificate, error) {
	notBefore := time.Now().Truncate(time.Second) // what x509 keeps
	return ca.signFor(csrDER, notBefore, notBefore.Add(ttl))
}

// signFor is sign with an explicit validity period.
func (ca *testCA) signFor(csrDER []byte, notBefore, notAfter time.Time) ([]*x509.Certificate, error) {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, err
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		URIs:        csr.URIs,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	tmpl.SerialNumber, err = rand.Int(rand.Reader, serialLimit)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.inter, csr.PublicKey, ca.interKey)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return []*x509.Certificate{leaf, ca.inter}, nil
}

// selfSigned returns a self-signed leaf for id.
func selfSigned(t testing.TB, id spiffeid.ID) ([]*x509.Certificate, crypto.Signer) {
	t.Helper()
	key := newTestKey(t)
	return []*x509.Certificate{createCert(t, leafTemplate(id), nil, key.Public(), key)}, key
}

func leafTemplate(id spiffeid.ID) *x509.Certificate {
	tmpl := &x509.Certificate{
		NotBefore:   time.Now().Add(-time.Minute),
		NotAfter:    time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if !id.IsZero() {
		tmpl.URIs = []*url.URL{id.URL()}
	}
	return tmpl
}

// createCert signs tmpl with signerKey as parent, or self-signs it when
// parent is nil.
func createCert(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, signerKey crypto.Signer) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, serialLimit)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = serial
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signerKey)
	if err != nil {
		t.Fatalf("create certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse certificate: %v", err)
	}
	return cert
}

func newTestKey(t testing.TB) crypto.Signer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// newTestSource returns a Source of testTD trusting roots, with an SVID for
// id issued by ca.
func newTestSource(t testing.TB, ca *testCA, id spiffeid.ID, roots ...*x509.Certificate) *Source {
	t.Helper()
	src, err := NewSource(testTD)
	if err != nil {
		t.Fatal(err)
	}
	if len(roots) == 0 {
		roots = []*x509.Certificate{ca.root}
	}
	if err := src.SetBundle(roots); err != nil {
		t.Fatal(err)
	}
	chain, key := ca.issue(t, id, nil)
	if err := src.SetSVID(chain, key); err != nil {
		t.Fatal(err)
	}
	return src
}

// rawCertificate is chain and key as crypto/tls wants them, for peers that
// do not use a Source (rogue or broken ones).
func rawCertificate(chain []*x509.Certificate, key crypto.Signer) tls.Certificate {
	c := tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, cert := range chain {
		c.Certificate = append(c.Certificate, cert.Raw)
	}
	return c
}
