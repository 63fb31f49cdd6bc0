package identity

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Source holds the proxy's current X.509-SVID and the trust bundle of its
// trust domain, and counts the peers refused by the TLS configurations built
// from it.
//
// A Source is safe for concurrent use. SetSVID and SetBundle replace an
// immutable snapshot atomically; every read (a handshake, SVID, Ready,
// Rejections) is lock-free and never blocks. The zero value is not usable:
// create one with NewSource.
type Source struct {
	td         spiffeid.TrustDomain
	svid       atomic.Pointer[svid]
	bundle     atomic.Pointer[x509bundle.Bundle]
	rejections rejections
}

// svid is one published SVID. It is never modified once stored.
type svid struct {
	id   spiffeid.ID
	cert *tls.Certificate // Leaf is set
}

// NewSource returns an empty Source for the trust domain td: it has neither
// SVID nor bundle yet, and refuses every handshake until it has both.
func NewSource(td spiffeid.TrustDomain) (*Source, error) {
	if td.IsZero() {
		return nil, errors.New("identity: new source: empty trust domain")
	}
	return &Source{td: td}, nil
}

// TrustDomain returns the Source's trust domain.
func (s *Source) TrustDomain() spiffeid.TrustDomain { return s.td }

// SetBundle replaces the trust bundle: the X.509 roots that peers' (and our
// own) SVIDs must chain to. To rotate a root without breaking connections,
// set [old, new], then reissue SVIDs from the new root, then set [new].
//
// Every root must be a CA certificate. The current SVID is not rechecked
// against the new bundle: a bundle may well arrive before the SVID issued
// under it.
func (s *Source) SetBundle(roots []*x509.Certificate) error {
	if len(roots) == 0 {
		return errors.New("identity: set bundle: no roots")
	}
	for i, root := range roots {
		switch {
		case root == nil:
			return fmt.Errorf("identity: set bundle: root %d is nil", i)
		case !root.BasicConstraintsValid || !root.IsCA:
			return fmt.Errorf("identity: set bundle: root %d (%q) is not a ca certificate", i, root.Subject.String())
		}
	}
	s.bundle.Store(x509bundle.FromX509Authorities(s.td, roots))
	return nil
}

// SetSVID replaces the SVID: chain is the leaf first, then the intermediates
// up to (and optionally including) a root; key is the leaf's private key.
// It refuses a key that does not match the leaf, a leaf that is not an
// X.509-SVID of the Source's trust domain, and a chain that does not verify
// against the current bundle now (so the bundle must be set first).
// On error the previous SVID stays in use.
func (s *Source) SetSVID(chain []*x509.Certificate, key crypto.Signer) error {
	switch {
	case len(chain) == 0:
		return errors.New("identity: set svid: empty certificate chain")
	case key == nil:
		return errors.New("identity: set svid: no private key")
	}
	for i, cert := range chain {
		if cert == nil {
			return fmt.Errorf("identity: set svid: certificate %d is nil", i)
		}
	}
	leaf := chain[0]
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return errors.New("identity: set svid: private key does not match the leaf certificate")
	}
	id, verr := verifySVID(chain, s.td, s.bundle.Load(), time.Now())
	if verr != nil {
		return fmt.Errorf("identity: set svid: %s: %w", verr.reason, verr.err)
	}
	raw := make([][]byte, len(chain))
	for i, cert := range chain {
		raw[i] = cert.Raw
	}
	s.svid.Store(&svid{id: id, cert: &tls.Certificate{
		Certificate: raw,
		PrivateKey:  key,
		Leaf:        leaf,
	}})
	return nil
}

// SVID describes the current SVID: its SPIFFE ID, expiry and serial number
// (a copy). All are zero (serial nil) before the first SetSVID.
func (s *Source) SVID() (id spiffeid.ID, notAfter time.Time, serial *big.Int) {
	cur := s.svid.Load()
	if cur == nil {
		return spiffeid.ID{}, time.Time{}, nil
	}
	return cur.id, cur.cert.Leaf.NotAfter, new(big.Int).Set(cur.cert.Leaf.SerialNumber)
}

// Ready reports whether the Source can take part in a handshake: it has a
// trust bundle and an SVID that has not expired.
func (s *Source) Ready() bool {
	cur := s.svid.Load()
	return cur != nil && s.bundle.Load() != nil && time.Now().Before(cur.cert.Leaf.NotAfter)
}

// Rejections returns how many peers were refused, by reason label (every
// reason is present, most at zero). The counts only grow.
func (s *Source) Rejections() map[string]uint64 { return s.rejections.snapshot() }

// CountPlaintext counts a plaintext connection refused on a port that takes
// mutual TLS only.
func (s *Source) CountPlaintext() { s.rejections[ReasonPlaintext].Add(1) }

// certificate returns the current SVID for a handshake.
func (s *Source) certificate() (*tls.Certificate, error) {
	cur := s.svid.Load()
	if cur == nil {
		return nil, errors.New("identity: no svid yet")
	}
	return cur.cert, nil
}

// reject counts a refused peer and returns the handshake's error.
func (s *Source) reject(reason Reason, id spiffeid.ID, err error) error {
	s.rejections[reason].Add(1)
	return &RejectionError{Reason: reason, ID: id, Err: err}
}

// verifyPeer verifies the certificates a peer sent (leaf first) and returns
// its SPIFFE ID. A refusal is counted and returned as a *RejectionError;
// none is reason the peer sent no certificate at all.
func (s *Source) verifyPeer(rawCerts [][]byte, none Reason) (spiffeid.ID, error) {
	if len(rawCerts) == 0 {
		return spiffeid.ID{}, s.reject(none, spiffeid.ID{}, errors.New("no certificate"))
	}
	certs := make([]*x509.Certificate, len(rawCerts))
	for i, raw := range rawCerts {
		cert, err := x509.ParseCertificate(raw)
		if err != nil {
			return spiffeid.ID{}, s.reject(ReasonUntrusted, spiffeid.ID{}, fmt.Errorf("parse certificate %d: %w", i, err))
		}
		certs[i] = cert
	}
	id, verr := verifySVID(certs, s.td, s.bundle.Load(), time.Now())
	if verr != nil {
		return spiffeid.ID{}, s.reject(verr.reason, verr.id, verr.err)
	}
	return id, nil
}
