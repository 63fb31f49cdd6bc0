package ca_test

import (
	"crypto/elliptic"
	"errors"
	"net"
	"testing"

	"github.com/weftmesh/weft/controlplane/ca"
)

// FuzzSign feeds Sign arbitrary CSR bytes: it must either refuse them with
// a *RequestError or issue a certificate that verifies as catalog.
func FuzzSign(f *testing.F) {
	key := ecKey(f, elliptic.P256())
	f.Add(csrFor(f, catalog))
	f.Add(newCSR(f, key, csrSpec{uris: []string{catalog.String()}, dns: []string{"catalog.shop"}}))
	f.Add(newCSR(f, key, csrSpec{uris: []string{"spiffe://weft.local/ns/shop/sa/orders"}}))
	f.Add(newCSR(f, key, csrSpec{ips: []net.IP{net.IPv6loopback}}))
	f.Add([]byte{0x30, 0x82, 0x01, 0x00})
	f.Add([]byte{})

	clk := newClock()
	c := openCA(f, f.TempDir(), clk)
	f.Fuzz(func(t *testing.T, csr []byte) {
		chain, err := c.Sign(csr, catalog, 0)
		if err != nil {
			var re *ca.RequestError
			if !errors.As(err, &re) {
				t.Fatalf("error %v (%T), want *ca.RequestError", err, err)
			}
			return
		}
		id, err := verify(chain, c.Bundle(), clk.Now())
		if err != nil || id != catalog {
			t.Fatalf("issued a certificate that verifies as %s, %v", id, err)
		}
	})
}
