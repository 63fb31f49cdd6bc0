package authzserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and a SPIFFE
// client certificate.
type testPKI struct {
	caFile, certFile, keyFile string
	ca                        *x509.CertPool
	client                    tls.Certificate
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, server bool) ([]byte, *ecdsa.PrivateKey) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature,
		}
		if server {
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		} else {
			u, _ := url.Parse("spiffe://weft.local/ns/shop/sa/catalog")
			tmpl.URIs = []*url.URL{u}
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := testPKI{ca: x509.NewCertPool()}
	p.ca.AddCert(caCert)
	p.caFile = write("ca.pem", "CERTIFICATE", caDER)
	sDER, sKey := leaf(2, true)
	p.certFile = write("server.pem", "CERTIFICATE", sDER)
	kDER, _ := x509.MarshalECPrivateKey(sKey)
	p.keyFile = write("server-key.pem", "EC PRIVATE KEY", kDER)
	cDER, cKey := leaf(3, false)
	p.client = tls.Certificate{Certificate: [][]byte{cDER}, PrivateKey: cKey}
	return p
}

func TestMutualTLS(t *testing.T) {
	pki := newTestPKI(t)
	dir := writePolicy(t, "", examplePolicy(t))
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan Ready, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, RunOptions{
			Listen: "127.0.0.1:0", TLSCert: pki.certFile, TLSKey: pki.keyFile, ClientCA: pki.caFile,
			Options: Options{Policy: []string{dir}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
			Ready:   func(r Ready) { ready <- r },
		})
	}()
	r := <-ready
	defer func() { cancel(); <-done }()
	if !r.MTLS {
		t.Fatal("not mutual TLS")
	}
	check := func(cfg *tls.Config) error {
		conn, err := grpc.NewClient(r.Listen, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			return err
		}
		defer conn.Close()
		_, err = authv3.NewAuthorizationClient(conn).Check(ctx, checkRequest("GET", "/public", "", nil))
		return err
	}
	if err := check(&tls.Config{RootCAs: pki.ca, Certificates: []tls.Certificate{pki.client}}); err != nil {
		t.Errorf("with a client certificate: %v", err)
	}
	if err := check(&tls.Config{RootCAs: pki.ca}); err == nil {
		t.Error("without a client certificate: accepted")
	}
}
