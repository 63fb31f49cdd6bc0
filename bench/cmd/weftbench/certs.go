package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// writePKI writes, for the nginx and HAProxy pairs, the same kind of PKI
// Weft uses: an ECDSA P-256 root and intermediate, and P-256 leaves with a
// SPIFFE URI SAN (plus a DNS name, which nginx and HAProxy verify), each
// served with the intermediate. Files: ca.crt, {server,client}.{crt,key}
// and {server,client}.pem (chain and key, for HAProxy).
func writePKI(dir string) error {
	now := time.Now().Add(-time.Minute)
	serial := func() *big.Int {
		n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
		return n
	}
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	rootTmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: "weftbench root"},
		NotBefore: now, NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		MaxPathLen: 1, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	if err != nil {
		return err
	}
	root, _ := x509.ParseCertificate(rootDER)
	intKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	intTmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: "weftbench intermediate"},
		NotBefore: now, NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		MaxPathLen: 0, MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	intDER, err := x509.CreateCertificate(rand.Reader, intTmpl, root, &intKey.PublicKey, rootKey)
	if err != nil {
		return err
	}
	inter, _ := x509.ParseCertificate(intDER)
	certPEM := func(der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}) }
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), certPEM(rootDER), 0o644); err != nil {
		return err
	}
	for _, name := range []string{"server", "client"} {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		id, _ := url.Parse("spiffe://bench.local/ns/bench/sa/" + name)
		tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: name, Organization: []string{"weftbench"}},
			NotBefore: now, NotAfter: now.Add(24 * time.Hour), DNSNames: []string{name + ".bench"}, URIs: []*url.URL{id},
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, inter, &key.PublicKey, intKey)
		if err != nil {
			return err
		}
		kb, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return err
		}
		keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
		chain := append(certPEM(der), certPEM(intDER)...)
		if err := os.WriteFile(filepath.Join(dir, name+".crt"), chain, 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name+".key"), keyPEM, 0o600); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name+".pem"), append(chain, keyPEM...), 0o600); err != nil {
			return err
		}
	}
	return nil
}
