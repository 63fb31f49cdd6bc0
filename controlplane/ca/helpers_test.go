package ca_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/weftmesh/weft/controlplane/ca"
)

var (
	td      = spiffeid.RequireTrustDomainFromString("weft.local")
	catalog = spiffeid.RequireFromString("spiffe://weft.local/ns/shop/sa/catalog")
	t0      = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

// clock is a settable time source, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func openCA(t testing.TB, dir string, clk *clock) *ca.CA {
	t.Helper()
	c, err := ca.Open(ca.Options{Dir: dir, TrustDomain: td, Now: clk.Now})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return c
}

func ecKey(t testing.TB, curve elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// csrSpec is what a test CSR asks for.
type csrSpec struct {
	uris   []string
	dns    []string
	emails []string
	ips    []net.IP
}

func newCSR(t testing.TB, key crypto.Signer, spec csrSpec) []byte {
	t.Helper()
	tmpl := &x509.CertificateRequest{DNSNames: spec.dns, EmailAddresses: spec.emails, IPAddresses: spec.ips}
	for _, u := range spec.uris {
		p, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, p)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatalf("CreateCertificateRequest: %v", err)
	}
	return der
}

// csrFor is a well-formed P-256 CSR for id.
func csrFor(t testing.TB, id spiffeid.ID) []byte {
	t.Helper()
	return newCSR(t, ecKey(t, elliptic.P256()), csrSpec{uris: []string{id.String()}})
}

// sign signs a fresh CSR for id and fails the test on error.
func sign(t testing.TB, c *ca.CA, id spiffeid.ID) []*x509.Certificate {
	t.Helper()
	chain, err := c.Sign(csrFor(t, id), id, 0)
	if err != nil {
		t.Fatalf("Sign(%s): %v", id, err)
	}
	return chain
}

// verify checks chain against roots with go-spiffe, at now.
func verify(chain []*x509.Certificate, roots []*x509.Certificate, now time.Time) (spiffeid.ID, error) {
	id, _, err := x509svid.Verify(chain, x509bundle.FromX509Authorities(td, roots), x509svid.WithTime(now))
	return id, err
}
