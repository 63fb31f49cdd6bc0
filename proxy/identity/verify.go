package identity

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Reason is why a peer was refused. Its String form is the metric label.
// It is a plain value.
type Reason uint8

// The reasons a peer is refused; see the package documentation.
const (
	ReasonExpired Reason = iota
	ReasonNotYetValid
	ReasonUntrusted
	ReasonForeignTrustDomain
	ReasonBadSAN
	ReasonNoClientCert
	ReasonUnauthorizedID
	ReasonTLSVersion
	// ReasonPlaintext: plaintext on a port that takes mutual TLS only.
	ReasonPlaintext

	numReasons = iota
)

var reasonNames = [numReasons]string{
	ReasonExpired:            "expired",
	ReasonNotYetValid:        "not_yet_valid",
	ReasonUntrusted:          "untrusted",
	ReasonForeignTrustDomain: "foreign_trust_domain",
	ReasonBadSAN:             "bad_san",
	ReasonNoClientCert:       "no_client_cert",
	ReasonUnauthorizedID:     "unauthorized_id",
	ReasonTLSVersion:         "tls_version",
	ReasonPlaintext:          "plaintext",
}

// String returns the reason's metric label, e.g. "foreign_trust_domain".
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// RejectionError is the error a handshake fails with on the side that
// refused its peer. ID is the peer's SPIFFE ID when one could be read.
// It is not modified after it is returned and may be shared.
type RejectionError struct {
	Reason Reason
	ID     spiffeid.ID
	Err    error
}

func (e *RejectionError) Error() string {
	var b strings.Builder
	b.WriteString("identity: peer rejected (")
	b.WriteString(e.Reason.String())
	b.WriteString(")")
	if !e.ID.IsZero() {
		b.WriteString(" ")
		b.WriteString(e.ID.String())
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *RejectionError) Unwrap() error { return e.Err }

// rejections counts refused peers by reason. The zero value is ready; it is
// safe for concurrent use and never blocks.
type rejections [numReasons]atomic.Uint64

func (c *rejections) snapshot() map[string]uint64 {
	m := make(map[string]uint64, numReasons)
	for r := range Reason(numReasons) {
		m[r.String()] = c[r].Load()
	}
	return m
}

// svidError is a verification failure before it is attributed to a peer
// (rejection) or to our own SVID (SetSVID).
type svidError struct {
	reason Reason
	id     spiffeid.ID
	err    error
}

// verifySVID checks that certs (leaf first, then the intermediates as sent)
// is an X.509-SVID of td that chains to a root of b at time now. The leaf
// and trust domain are checked first, so that each failure gets the most
// specific reason; the chain itself is verified by go-spiffe's x509svid.
func verifySVID(certs []*x509.Certificate, td spiffeid.TrustDomain, b *x509bundle.Bundle, now time.Time) (spiffeid.ID, *svidError) {
	leaf := certs[0]
	id, err := leafID(leaf)
	if err != nil {
		return spiffeid.ID{}, &svidError{reason: ReasonBadSAN, err: err}
	}
	if id.TrustDomain() != td {
		return id, &svidError{reason: ReasonForeignTrustDomain, id: id,
			err: fmt.Errorf("trust domain %q, want %q", id.TrustDomain().Name(), td.Name())}
	}
	if b == nil {
		return id, &svidError{reason: ReasonUntrusted, id: id, err: errors.New("no trust bundle")}
	}
	if _, _, err := x509svid.Verify(certs, b, x509svid.WithTime(now)); err != nil {
		return id, &svidError{reason: chainReason(err, now), id: id, err: err}
	}
	return id, nil
}

// leafID returns the SPIFFE ID of an X.509-SVID leaf: its one URI SAN.
// Other SAN types may accompany it (the X.509-SVID specification allows
// them) but never replace it.
func leafID(leaf *x509.Certificate) (spiffeid.ID, error) {
	switch n := len(leaf.URIs); {
	case n == 0:
		return spiffeid.ID{}, fmt.Errorf("certificate has no uri san%s", otherSANs(leaf))
	case n > 1:
		return spiffeid.ID{}, fmt.Errorf("certificate has %d uri sans, want exactly one", n)
	}
	id, err := spiffeid.FromURI(leaf.URIs[0])
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("uri san %q is not a spiffe id: %w", leaf.URIs[0].String(), err)
	}
	return id, nil
}

// otherSANs describes the non-URI SANs of cert, for error messages.
func otherSANs(cert *x509.Certificate) string {
	var parts []string
	if len(cert.DNSNames) > 0 {
		parts = append(parts, fmt.Sprintf("dns %q", cert.DNSNames))
	}
	if len(cert.EmailAddresses) > 0 {
		parts = append(parts, fmt.Sprintf("email %q", cert.EmailAddresses))
	}
	if len(cert.IPAddresses) > 0 {
		parts = append(parts, fmt.Sprintf("ip %v", cert.IPAddresses))
	}
	if len(parts) == 0 {
		return ""
	}
	return " (has " + strings.Join(parts, ", ") + ")"
}

// chainReason classifies a chain verification error.
func chainReason(err error, now time.Time) Reason {
	var invalid x509.CertificateInvalidError
	if errors.As(err, &invalid) && invalid.Reason == x509.Expired {
		if invalid.Cert != nil && now.Before(invalid.Cert.NotBefore) {
			return ReasonNotYetValid
		}
		return ReasonExpired
	}
	// Unknown authority (another CA, self-signed), a leaf with the CA flag
	// or certificate-signing usage, a broken signature: none leads to us.
	return ReasonUntrusted
}
