package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

const (
	// backdate is how far before "now" a certificate becomes valid, so
	// that peers whose clocks run a little behind accept it.
	backdate = time.Minute
	// rootYears and intermediateYears are the lifetimes of the CA
	// certificates the managed PKI creates.
	rootYears         = 10
	intermediateYears = 1
	// renewBefore is how long before its expiry the managed intermediate
	// is re-certified.
	renewBefore = 30 * 24 * time.Hour
	// organization is the subject O of every certificate the CA creates.
	organization = "weft"
	// maxCommonName is the longest CN RFC 5280 allows (ub-common-name).
	maxCommonName = 64
	// minRSABits and maxRSABits bound the RSA keys the CA certifies; the
	// upper bound keeps one request from costing seconds of CPU.
	minRSABits = 2048
	maxRSABits = 8192
)

// PinOf returns the pin of a certificate's public key: "sha256:" followed by
// the lowercase hex SHA-256 of its DER SubjectPublicKeyInfo, the format of
// kubeadm's --discovery-token-ca-cert-hash. A pin identifies a root across
// re-issues of the same key.
func PinOf(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// newKey returns a new ECDSA P-256 key, the CA's only key type.
func newKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ca: generate key: %w", err)
	}
	return k, nil
}

// newSerial returns a random positive 128-bit serial number (its top bit
// set, so every serial has the same length).
func newSerial() (*big.Int, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("ca: serial number: %w", err)
	}
	b[0] |= 0x80
	return new(big.Int).SetBytes(b), nil
}

// newRoot creates generation gen's self-signed root.
func newRoot(gen int, td spiffeid.TrustDomain, key crypto.Signer, now time.Time) (*x509.Certificate, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{organization}, CommonName: fmt.Sprintf("weft root CA %d", gen)},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.AddDate(rootYears, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
		URIs:                  []*url.URL{td.ID().URL()},
	}
	return createCert(tmpl, tmpl, key.Public(), key)
}

// newIntermediate certifies pub as generation gen's intermediate under
// root, valid for a year or until the root expires, whichever is first.
func newIntermediate(gen int, td spiffeid.TrustDomain, root *x509.Certificate, rootKey crypto.Signer, pub crypto.PublicKey, now time.Time) (*x509.Certificate, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	notAfter := now.AddDate(intermediateYears, 0, 0)
	if notAfter.After(root.NotAfter) {
		notAfter = root.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{organization}, CommonName: fmt.Sprintf("weft intermediate CA %d", gen)},
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		URIs:                  []*url.URL{td.ID().URL()},
	}
	return createCert(tmpl, root, pub, rootKey)
}

// createCert signs tmpl with parent's key and parses the result.
func createCert(tmpl, parent *x509.Certificate, pub crypto.PublicKey, parentKey crypto.Signer) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		return nil, fmt.Errorf("ca: create certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("ca: parse created certificate: %w", err)
	}
	return cert, nil
}

// checkPublicKey enforces the key policy for certified keys: ECDSA P-256 or
// P-384, or RSA of 2048 to 8192 bits.
func checkPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384():
			return nil
		}
		return refuse(ReasonKey, fmt.Sprintf("ECDSA curve %s is not accepted (want P-256 or P-384)", k.Curve.Params().Name), nil)
	case *rsa.PublicKey:
		switch bits := k.N.BitLen(); {
		case bits < minRSABits:
			return refuse(ReasonKey, fmt.Sprintf("RSA key of %d bits is too weak (want at least %d)", bits, minRSABits), nil)
		case bits > maxRSABits:
			return refuse(ReasonKey, fmt.Sprintf("RSA key of %d bits is too large (at most %d)", bits, maxRSABits), nil)
		}
		return nil
	case nil:
		return refuse(ReasonKey, "no public key", nil)
	default:
		return refuse(ReasonKey, fmt.Sprintf("key type %T is not accepted (want ECDSA P-256/P-384 or RSA)", pub), nil)
	}
}

// keyMatches reports whether key is the private half of pub.
func keyMatches(key crypto.Signer, pub crypto.PublicKey) bool {
	k, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(pub)
}

// encodeCerts returns certs as concatenated PEM CERTIFICATE blocks.
func encodeCerts(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// parseCerts reads every PEM CERTIFICATE block of data; it fails on any
// other block or on no certificate at all.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("unexpected PEM block %q", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return certs, nil
}

// encodeKey returns key as a PEM PKCS #8 block.
func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("ca: encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// parseKey reads the first PEM private key of data: PKCS #8, SEC 1 (EC
// PRIVATE KEY) or PKCS #1 (RSA PRIVATE KEY). Its errors never quote the
// key's bytes.
func parseKey(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PEM private key")
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			continue // e.g. EC PARAMETERS before the key
		}
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", block.Type, err)
		}
		s, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("private key of type %T cannot sign", key)
		}
		return s, nil
	}
}
