package identity

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

func TestNewSourceNeedsTrustDomain(t *testing.T) {
	if _, err := NewSource(spiffeid.TrustDomain{}); err == nil {
		t.Fatal("NewSource accepted an empty trust domain")
	}
}

func TestSourceLifecycle(t *testing.T) {
	ca := newTestCA(t, "weft")
	src, err := NewSource(testTD)
	if err != nil {
		t.Fatal(err)
	}
	if src.Ready() {
		t.Error("empty source is ready")
	}
	if id, notAfter, serial := src.SVID(); !id.IsZero() || !notAfter.IsZero() || serial != nil {
		t.Errorf("empty source SVID() = %v, %v, %v; want zeros", id, notAfter, serial)
	}
	if _, err := src.certificate(); err == nil {
		t.Error("empty source gave a certificate")
	}

	chain, key := ca.issue(t, catalogID, nil)
	if err := src.SetSVID(chain, key); err == nil || !strings.Contains(err.Error(), "no trust bundle") {
		t.Errorf("SetSVID before SetBundle: err = %v, want no trust bundle", err)
	}
	if err := src.SetBundle([]*x509.Certificate{ca.root}); err != nil {
		t.Fatal(err)
	}
	if src.Ready() {
		t.Error("source with a bundle but no svid is ready")
	}
	if err := src.SetSVID(chain, key); err != nil {
		t.Fatal(err)
	}
	if !src.Ready() {
		t.Error("source with bundle and svid is not ready")
	}
	id, notAfter, serial := src.SVID()
	if id != catalogID || !notAfter.Equal(chain[0].NotAfter) || serial.Cmp(chain[0].SerialNumber) != 0 {
		t.Errorf("SVID() = %v, %v, %v; want %v, %v, %v", id, notAfter, serial, catalogID, chain[0].NotAfter, chain[0].SerialNumber)
	}
	serial.SetInt64(0) // a copy: the leaf must not change
	if chain[0].SerialNumber.Sign() == 0 {
		t.Error("SVID() returned the leaf's own serial number")
	}
	cert, err := src.certificate()
	if err != nil {
		t.Fatal(err)
	}
	if cert.Leaf != chain[0] || len(cert.Certificate) != 2 || cert.PrivateKey != key {
		t.Errorf("certificate = %+v, want the chain and key set", cert)
	}
}

func TestSetSVIDErrors(t *testing.T) {
	ca := newTestCA(t, "weft")
	otherCA := newTestCA(t, "other")
	good, goodKey := ca.issue(t, catalogID, nil)
	for _, tt := range []struct {
		name  string
		chain func(t *testing.T) ([]*x509.Certificate, crypto.Signer)
		want  string
	}{
		{"empty chain", func(t *testing.T) ([]*x509.Certificate, crypto.Signer) { return nil, goodKey }, "empty certificate chain"},
		{"nil key", func(t *testing.T) ([]*x509.Certificate, crypto.Signer) { return good, nil }, "no private key"},
		{"nil certificate", func(t *testing.T) ([]*x509.Certificate, crypto.Signer) {
			return []*x509.Certificate{good[0], nil}, goodKey
		}, "certificate 1 is nil"},
		{"key of another certificate", func(t *testing.T) ([]*x509.Certificate, crypto.Signer) {
			return good, newTestKey(t)
		}, "does not match"},
		{"missing intermediate", func(t *testing.T) ([]*x509.Certificate, crypto.Signer) {
			return good[:1], goodKey
		}, "untrusted"},
		{"another ca", func(t *testing.T) ([]*x509.Certificate, crypto.Signer) {
			return otherCA.issue(t, catalogID, nil)
		}, "untrusted"},
		{"foreign trust domain", func(t *testing.T) ([]*x509.Certificate, crypto.Signer) {
			return ca.issue(t, foreignID, nil)
		}, "foreign_trust_domain"},
		{"dns san only", func(t *testing.T) ([]*x509.Certificate, crypto.Signer) {
			return ca.issue(t, spiffeid.ID{}, func(c *x509.Certificate) { c.DNSNames = []string{"catalog"} })
		}, "bad_san"},
		{"expired", func(t *testing.T) ([]*x509.Certificate, crypto.Signer) {
			return ca.issue(t, catalogID, func(c *x509.Certificate) { c.NotAfter = time.Now().Add(-time.Second) })
		}, "expired"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := newTestSource(t, ca, frontendID)
			chain, key := tt.chain(t)
			err := src.SetSVID(chain, key)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "identity: ") {
				t.Fatalf("SetSVID: err = %v, want an identity error about %q", err, tt.want)
			}
			if id, _, _ := src.SVID(); id != frontendID {
				t.Errorf("after a failed SetSVID the id is %v, want the previous %v", id, frontendID)
			}
			wantNoRejections(t, "source", src) // our own svid is no peer
		})
	}
}

func TestSetBundleErrors(t *testing.T) {
	ca := newTestCA(t, "weft")
	leaf, _ := ca.issue(t, catalogID, nil)
	for _, tt := range []struct {
		name  string
		roots []*x509.Certificate
		want  string
	}{
		{"no roots", nil, "no roots"},
		{"nil root", []*x509.Certificate{ca.root, nil}, "root 1 is nil"},
		{"leaf as root", []*x509.Certificate{leaf[0]}, "not a ca"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := newTestSource(t, ca, catalogID)
			err := src.SetBundle(tt.roots)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("SetBundle: err = %v, want %q", err, tt.want)
			}
			// The previous bundle is still in force.
			if err := src.SetSVID(ca.issue(t, catalogID, nil)); err != nil {
				t.Errorf("previous bundle lost: %v", err)
			}
		})
	}
}

// TestSVIDRotation checks that a config built once serves the SVID set
// after it, at the next handshake.
func TestSVIDRotation(t *testing.T) {
	ca := newTestCA(t, "weft")
	server := newTestSource(t, ca, catalogID)
	client := newTestSource(t, ca, frontendID)
	serverCfg := server.ServerConfig(ServerOptions{})
	clientCfg := client.ClientConfig(ClientOptions{AllowedIDs: []spiffeid.ID{catalogID}})

	for i := range 3 {
		if i > 0 {
			chain, key := ca.issue(t, catalogID, nil)
			if err := server.SetSVID(chain, key); err != nil {
				t.Fatal(err)
			}
			chain, key = ca.issue(t, frontendID, nil)
			if err := client.SetSVID(chain, key); err != nil {
				t.Fatal(err)
			}
		}
		out := handshake(t, serverCfg, clientCfg)
		if out.serverErr != nil || out.clientErr != nil {
			t.Fatalf("handshake %d: server: %v; client: %v", i, out.serverErr, out.clientErr)
		}
		_, _, serverSerial := server.SVID()
		_, _, clientSerial := client.SVID()
		if got := out.client.PeerCertificates[0].SerialNumber; got.Cmp(serverSerial) != 0 {
			t.Errorf("handshake %d: server presented serial %x, want the current %x", i, got, serverSerial)
		}
		if got := out.server.PeerCertificates[0].SerialNumber; got.Cmp(clientSerial) != 0 {
			t.Errorf("handshake %d: client presented serial %x, want the current %x", i, got, clientSerial)
		}
	}
}

// TestBundleRotation rotates a server's trust from an old root to a new one
// through a bundle that holds both, with one config built at the start.
func TestBundleRotation(t *testing.T) {
	oldCA := newTestCA(t, "weft-2025")
	newCA := newTestCA(t, "weft-2026")
	both := []*x509.Certificate{oldCA.root, newCA.root}
	server := newTestSource(t, oldCA, catalogID, both...)
	serverCfg := server.ServerConfig(ServerOptions{})

	// Clients trust both roots throughout; one holds an SVID of each root.
	oldClient := newTestSource(t, oldCA, frontendID, both...)
	newClient := newTestSource(t, newCA, frontendID, both...)
	clients := map[string]*tls.Config{
		"old": oldClient.ClientConfig(ClientOptions{AllowedIDs: []spiffeid.ID{catalogID}}),
		"new": newClient.ClientConfig(ClientOptions{AllowedIDs: []spiffeid.ID{catalogID}}),
	}

	for _, step := range []struct {
		bundle []*x509.Certificate
		pass   map[string]bool
	}{
		{[]*x509.Certificate{oldCA.root}, map[string]bool{"old": true, "new": false}},
		{[]*x509.Certificate{oldCA.root, newCA.root}, map[string]bool{"old": true, "new": true}},
		{[]*x509.Certificate{newCA.root}, map[string]bool{"old": false, "new": true}},
	} {
		if err := server.SetBundle(step.bundle); err != nil {
			t.Fatal(err)
		}
		for name, pass := range step.pass {
			before := server.Rejections()["untrusted"]
			out := handshake(t, serverCfg, clients[name])
			ok := out.serverErr == nil && out.clientErr == nil
			if ok != pass {
				t.Errorf("bundle of %d roots, %s client: handshake ok = %v (server: %v), want %v",
					len(step.bundle), name, ok, out.serverErr, pass)
			}
			if got := server.Rejections()["untrusted"] - before; !pass && got != 1 {
				t.Errorf("bundle of %d roots, %s client: counted %d untrusted, want 1", len(step.bundle), name, got)
			}
		}
	}
}

// TestConcurrentRotation handshakes while SVID and bundle change, for the
// race detector.
func TestConcurrentRotation(t *testing.T) {
	ca := newTestCA(t, "weft")
	server := newTestSource(t, ca, catalogID)
	client := newTestSource(t, ca, frontendID)
	serverCfg := server.ServerConfig(ServerOptions{})
	clientCfg := client.ClientConfig(ClientOptions{AllowedIDs: []spiffeid.ID{catalogID}})

	type svid struct {
		chain []*x509.Certificate
		key   crypto.Signer
	}
	var svids []svid
	for range 4 {
		chain, key := ca.issue(t, catalogID, nil)
		svids = append(svids, svid{chain, key})
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			next := svids[i%len(svids)]
			if err := server.SetSVID(next.chain, next.key); err != nil {
				t.Error(err)
			}
			if err := client.SetBundle([]*x509.Certificate{ca.root}); err != nil {
				t.Error(err)
			}
			_ = server.Ready()
			_ = server.Rejections()
		}
	})
	for range 10 {
		out := handshake(t, serverCfg, clientCfg)
		if out.serverErr != nil || out.clientErr != nil {
			t.Errorf("handshake: server: %v; client: %v", out.serverErr, out.clientErr)
		}
	}
	close(stop)
	wg.Wait()
}
