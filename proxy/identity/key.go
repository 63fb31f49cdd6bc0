package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// NewKey returns a new ECDSA P-256 private key. It exists only in memory;
// nothing in this package ever serialises it.
func NewKey() (crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("identity: generate key: %w", err)
	}
	return key, nil
}

// NewCSR returns a DER-encoded certificate signing request for id, signed by
// key. Its only subject alternative name is the URI of id; its subject is
// empty (the CA decides what else goes into the certificate).
func NewCSR(key crypto.Signer, id spiffeid.ID) ([]byte, error) {
	switch {
	case key == nil:
		return nil, errors.New("identity: create csr: no key")
	case id.IsZero():
		return nil, errors.New("identity: create csr: empty spiffe id")
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		URIs: []*url.URL{id.URL()},
	}, key)
	if err != nil {
		return nil, fmt.Errorf("identity: create csr for %s: %w", id, err)
	}
	return der, nil
}
