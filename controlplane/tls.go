package controlplane

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/controlplane/ca"
)

// servingCert keeps the control plane's own certificate fresh: it is signed
// by the mesh CA for spiffe://TD/ns/weft-system/sa/control-plane, renewed
// at half its lifetime, and read at every handshake.
type servingCert struct {
	ca      *ca.CA
	id      spiffeid.ID
	dns     []string
	ips     []net.IP
	ttl     time.Duration
	current atomic.Pointer[tls.Certificate]
	log     *slog.Logger
}

func newServingCert(c *ca.CA, addrs []string, log *slog.Logger) (*servingCert, error) {
	id, err := spiffeid.FromPath(c.TrustDomain(), xdsmeta.ControlPlaneIdentity)
	if err != nil {
		return nil, err
	}
	s := &servingCert{ca: c, id: id, dns: []string{"localhost"}, ttl: 24 * time.Hour, log: log}
	seen := map[string]bool{}
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			continue
		}
		if ip := net.ParseIP(host); ip != nil {
			if !seen[ip.String()] {
				seen[ip.String()] = true
				s.ips = append(s.ips, ip)
			}
		} else if host != "" && !seen[host] {
			seen[host] = true
			s.dns = append(s.dns, host)
		}
	}
	if err := s.renew(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *servingCert) renew() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	chain, err := s.ca.SignServing(key.Public(), s.id, s.dns, s.ips, s.ttl)
	if err != nil {
		return fmt.Errorf("control plane certificate: %w", err)
	}
	cert := &tls.Certificate{PrivateKey: crypto.Signer(key), Leaf: chain[0]}
	for _, c := range chain {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	// Send the root too: a proxy with only a pin finds it in the chain.
	if root, ok := s.ca.RootOf(chain[0]); ok {
		cert.Certificate = append(cert.Certificate, root.Raw)
	}
	s.current.Store(cert)
	return nil
}

// run renews the certificate at half its lifetime until stop closes.
func (s *servingCert) run(stop <-chan struct{}) {
	for {
		leaf := s.current.Load().Leaf
		wait := time.Until(leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2))
		if wait < time.Second {
			wait = time.Second
		}
		select {
		case <-stop:
			return
		case <-time.After(wait):
		}
		if err := s.renew(); err != nil {
			s.log.Error("could not renew the control plane's certificate", "error", err)
		}
	}
}

// reissue replaces the certificate now (after a root rotation).
func (s *servingCert) reissue() {
	if err := s.renew(); err != nil {
		s.log.Error("could not reissue the control plane's certificate", "error", err)
	}
}

// verifyMeshPeer checks a peer certificate against the current bundle.
func verifyMeshPeer(c *ca.CA, raw [][]byte) (spiffeid.ID, error) {
	var certs []*x509.Certificate
	for _, r := range raw {
		cert, err := x509.ParseCertificate(r)
		if err != nil {
			return spiffeid.ID{}, err
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return spiffeid.ID{}, errors.New("no client certificate")
	}
	id, _, err := x509svid.Verify(certs, x509bundle.FromX509Authorities(c.TrustDomain(), c.Bundle()))
	return id, err
}

// serverTLS is the TLS of the control plane's listeners. With
// requireClient, a client must present a valid mesh certificate (xDS);
// otherwise one is verified when given (the issuer also takes join tokens).
func (s *servingCert) serverTLS(requireClient bool, alpn []string) *tls.Config {
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     alpn,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.current.Load(), nil },
		ClientAuth:     tls.RequestClientCert,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				if requireClient {
					return errors.New("a mesh certificate is required")
				}
				return nil
			}
			_, err := verifyMeshPeer(s.ca, raw)
			return err
		},
	}
	if requireClient {
		cfg.ClientAuth = tls.RequireAnyClientCert
	}
	return cfg
}
