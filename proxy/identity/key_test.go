package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

func TestNewKey(t *testing.T) {
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		t.Fatalf("NewKey() = %T, want an ECDSA P-256 key", key)
	}
	other, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if ec.Equal(other) {
		t.Error("two calls returned the same key")
	}
}

func TestNewCSR(t *testing.T) {
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	der, err := NewCSR(key, catalogID)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Errorf("signature: %v", err)
	}
	if !key.Public().(*ecdsa.PublicKey).Equal(csr.PublicKey) {
		t.Error("csr public key is not the key's")
	}
	if len(csr.URIs) != 1 || csr.URIs[0].String() != catalogID.String() {
		t.Errorf("uri sans = %v, want [%v]", csr.URIs, catalogID)
	}
	if len(csr.DNSNames)+len(csr.EmailAddresses)+len(csr.IPAddresses) != 0 {
		t.Errorf("other sans: dns %v, email %v, ip %v; want none", csr.DNSNames, csr.EmailAddresses, csr.IPAddresses)
	}
	if len(csr.Subject.Names) != 0 {
		t.Errorf("subject = %q, want empty", csr.Subject)
	}
}

func TestNewCSRErrors(t *testing.T) {
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		call func() ([]byte, error)
	}{
		{"nil key", func() ([]byte, error) { return NewCSR(nil, catalogID) }},
		{"zero id", func() ([]byte, error) { return NewCSR(key, spiffeid.ID{}) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.call(); err == nil {
				t.Fatal("no error")
			}
		})
	}
}
