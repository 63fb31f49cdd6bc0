package ca_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/controlplane/ca"
)

// testCA is a CA certificate of a test PKI with its key.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

var serialCounter int64

// newTestCA issues a CA certificate named cn, signed by parent (self-signed
// if parent is nil); edit may change the template first.
func newTestCA(t *testing.T, cn string, parent *testCA, edit func(*x509.Certificate)) *testCA {
	t.Helper()
	serialCounter++
	key := ecKey(t, elliptic.P256())
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serialCounter),
		Subject:               pkix.Name{Organization: []string{"Example Corp"}, CommonName: cn},
		NotBefore:             t0.Add(-time.Hour),
		NotAfter:              t0.AddDate(5, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	if edit != nil {
		edit(tmpl)
	}
	signer, signerKey := tmpl, crypto.Signer(key)
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, key.Public(), signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key}
}

func certsPEM(certs ...*testCA) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.cert.Raw})...)
	}
	return out
}

func pkcs8PEM(t *testing.T, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func sec1PEM(t *testing.T, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

// externalFiles writes the external PKI's three files and returns Options
// that use them.
func externalFiles(t *testing.T, clk *clock, cert, key, bundle []byte) ca.Options {
	t.Helper()
	dir := t.TempDir()
	opts := ca.Options{
		CertFile:    filepath.Join(dir, "intermediate.crt"),
		KeyFile:     filepath.Join(dir, "intermediate.key"),
		BundleFile:  filepath.Join(dir, "roots.crt"),
		TrustDomain: td,
		Now:         clk.Now,
	}
	for name, data := range map[string][]byte{opts.CertFile: cert, opts.KeyFile: key, opts.BundleFile: bundle} {
		if data == nil {
			continue
		}
		if err := os.WriteFile(name, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return opts
}

func TestExternalIntermediate(t *testing.T) {
	root := newTestCA(t, "Example Root", nil, nil)
	inter := newTestCA(t, "Example Mesh Intermediate", root, nil)
	policyCA := newTestCA(t, "Example Policy CA", root, func(c *x509.Certificate) { c.MaxPathLen = 1 })
	deepInter := newTestCA(t, "Example Deep Intermediate", policyCA, nil)

	for _, tc := range []struct {
		name      string
		cert, key []byte
		wantChain []*x509.Certificate // after the leaf
	}{
		{"intermediate", certsPEM(inter), pkcs8PEM(t, inter.key), []*x509.Certificate{inter.cert}},
		{"SEC 1 key", certsPEM(inter), sec1PEM(t, inter.key), []*x509.Certificate{inter.cert}},
		{"intermediate and its chain", certsPEM(deepInter, policyCA), pkcs8PEM(t, deepInter.key), []*x509.Certificate{deepInter.cert, policyCA.cert}},
		{"chain that includes the root", certsPEM(inter, root), pkcs8PEM(t, inter.key), []*x509.Certificate{inter.cert}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			c, err := ca.Open(externalFiles(t, clk, tc.cert, tc.key, certsPEM(root)))
			if err != nil {
				t.Fatal(err)
			}
			chain := sign(t, c, catalog)
			if len(chain) != 1+len(tc.wantChain) {
				t.Fatalf("chain of %d certificates, want %d", len(chain), 1+len(tc.wantChain))
			}
			for i, want := range tc.wantChain {
				if !chain[1+i].Equal(want) {
					t.Errorf("chain[%d] is %q, want %q", 1+i, chain[1+i].Subject, want.Subject)
				}
			}
			// Verified against the operator's root alone, not the CA's view.
			id, err := verify(chain, []*x509.Certificate{root.cert}, clk.Now())
			if err != nil || id != catalog {
				t.Fatalf("leaf verifies as %s, %v; want %s chaining to the given root", id, err, catalog)
			}
			if b := c.Bundle(); len(b) != 1 || !b[0].Equal(root.cert) {
				t.Errorf("bundle is not the given root")
			}
			if got, ok := c.RootOf(chain[0]); !ok || !got.Equal(root.cert) {
				t.Error("RootOf does not find the given root")
			}
			if c.Pin() != ca.PinOf(root.cert) {
				t.Error("Pin is not the given root's")
			}
			checkStatus(t, c, []ca.RootInfo{{Pin: ca.PinOf(root.cert), NotAfter: root.cert.NotAfter, Issuing: true}})
			if !chain[0].NotAfter.Equal(clk.Now().Add(24 * time.Hour)) {
				t.Errorf("leaf NotAfter %v, want the default TTL", chain[0].NotAfter)
			}
			if err := c.Rotate(); !errors.Is(err, ca.ErrExternal) {
				t.Errorf("Rotate: %v, want ErrExternal", err)
			}
			if err := c.FinishRotation(); !errors.Is(err, ca.ErrExternal) {
				t.Errorf("FinishRotation: %v, want ErrExternal", err)
			}
		})
	}
}

func TestExternalIntermediateRefused(t *testing.T) {
	root := newTestCA(t, "Example Root", nil, nil)
	inter := newTestCA(t, "Example Mesh Intermediate", root, nil)
	otherRoot := newTestCA(t, "Other Root", nil, nil)
	notCA := newTestCA(t, "Example Server", root, func(c *x509.Certificate) {
		c.IsCA = false
		c.KeyUsage = x509.KeyUsageDigitalSignature
	})
	noCertSign := newTestCA(t, "Example Signer", root, func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageDigitalSignature })
	expired := newTestCA(t, "Example Expired", root, func(c *x509.Certificate) { c.NotAfter = t0.Add(-time.Minute) })
	constrained := newTestCA(t, "Example Constrained", root, func(c *x509.Certificate) {
		c.PermittedURIDomains = []string{"other.org"}
	})
	for _, tc := range []struct {
		name              string
		cert, key, bundle []byte
		want              string
	}{
		{"mismatched key", certsPEM(inter), pkcs8PEM(t, otherRoot.key), certsPEM(root), "does not hold the key"},
		{"not a CA certificate", certsPEM(notCA), pkcs8PEM(t, notCA.key), certsPEM(root), "not a CA certificate"},
		{"no CertSign usage", certsPEM(noCertSign), pkcs8PEM(t, noCertSign.key), certsPEM(root), "may not sign certificates"},
		{"does not chain to the bundle", certsPEM(inter), pkcs8PEM(t, inter.key), certsPEM(otherRoot), "does not chain"},
		{"expired", certsPEM(expired), pkcs8PEM(t, expired.key), certsPEM(root), "does not chain"},
		{"name constraints exclude the trust domain", certsPEM(constrained), pkcs8PEM(t, constrained.key), certsPEM(root), "cannot issue SPIFFE certificates"},
		{"missing key file", certsPEM(inter), nil, certsPEM(root), "read external PKI"},
		{"key file without a key", certsPEM(inter), certsPEM(inter), certsPEM(root), "no PEM private key"},
		{"bundle without certificates", certsPEM(inter), pkcs8PEM(t, inter.key), []byte("not PEM"), "no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ca.Open(externalFiles(t, newClock(), tc.cert, tc.key, tc.bundle))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "ca: ") {
				t.Fatalf("Open: %v, want an error about %q", err, tc.want)
			}
		})
	}
}
