package ca

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Sign issues a workload certificate (X.509 SVID) for id to the key of a
// DER certificate signing request. It refuses, with a *RequestError, a CSR
// that does not parse or verify, whose key is not ECDSA P-256/P-384 or RSA
// of at least 2048 bits, or whose subject alternative names are anything but
// exactly one URI equal to id; and an id outside the CA's trust domain. The
// CSR's subject and requested extensions are ignored.
//
// The certificate is valid from a minute ago for ttl (Options.WorkloadTTL
// if ttl is 0), never past the issuing intermediate. It has a random 128-bit
// serial, the URI SAN id, key usages DigitalSignature and KeyEncipherment,
// and extended key usages ServerAuth and ClientAuth. Sign returns it
// followed by the intermediate chain (never the root: peers get it from
// Bundle).
func (c *CA) Sign(csrDER []byte, id spiffeid.ID, ttl time.Duration) ([]*x509.Certificate, error) {
	if err := c.checkID(id); err != nil {
		return nil, err
	}
	ttl, err := c.lifetime(ttl)
	if err != nil {
		return nil, err
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, refuse(ReasonMalformed, "parse CSR", err)
	}
	if err := checkPublicKey(csr.PublicKey); err != nil {
		return nil, err
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, refuse(ReasonSignature, "CSR signature does not verify", err)
	}
	if err := checkCSRNames(csr, id); err != nil {
		return nil, err
	}
	return c.issue(leafTemplate(id, commonName(id)), csr.PublicKey, ttl)
}

// SignServing issues the control plane's own serving certificate for pub:
// the URI SAN id (in the CA's trust domain) plus the given DNS names and IP
// addresses, so that proxies can verify it both as a SPIFFE ID and as a
// host name. Lifetime, usages and chain are as for Sign.
func (c *CA) SignServing(pub crypto.PublicKey, id spiffeid.ID, dnsNames []string, ips []net.IP, ttl time.Duration) ([]*x509.Certificate, error) {
	if err := c.checkID(id); err != nil {
		return nil, err
	}
	ttl, err := c.lifetime(ttl)
	if err != nil {
		return nil, err
	}
	if err := checkPublicKey(pub); err != nil {
		return nil, err
	}
	for _, name := range dnsNames {
		if msgs := validation.IsDNS1123Subdomain(name); len(msgs) > 0 {
			return nil, refuse(ReasonSAN, fmt.Sprintf("DNS name %q: %s", name, strings.Join(msgs, "; ")), nil)
		}
	}
	for _, ip := range ips {
		if len(ip) != net.IPv4len && len(ip) != net.IPv6len {
			return nil, refuse(ReasonSAN, fmt.Sprintf("invalid IP address %v", ip), nil)
		}
	}
	cn := commonName(id)
	if len(dnsNames) > 0 && len(dnsNames[0]) <= maxCommonName {
		cn = dnsNames[0]
	}
	tmpl := leafTemplate(id, cn)
	tmpl.DNSNames = dnsNames
	tmpl.IPAddresses = ips
	return c.issue(tmpl, pub, ttl)
}

func (c *CA) checkID(id spiffeid.ID) error {
	switch {
	case id.IsZero():
		return refuse(ReasonTrustDomain, "empty SPIFFE ID", nil)
	case !id.MemberOf(c.td):
		return refuse(ReasonTrustDomain, fmt.Sprintf("%s is not in trust domain %s", id, c.td.Name()), nil)
	case id.Path() == "":
		return refuse(ReasonTrustDomain, fmt.Sprintf("%s is the trust domain's own ID, not a workload's", id), nil)
	}
	return nil
}

func (c *CA) lifetime(ttl time.Duration) (time.Duration, error) {
	switch {
	case ttl < 0:
		return 0, refuse(ReasonTTL, fmt.Sprintf("negative lifetime %s", ttl), nil)
	case ttl == 0:
		return c.ttl, nil
	}
	return ttl, nil
}

// checkCSRNames checks that the CSR's only name is the URI id.
func checkCSRNames(csr *x509.CertificateRequest, id spiffeid.ID) error {
	switch {
	case len(csr.DNSNames) > 0:
		return refuse(ReasonSAN, fmt.Sprintf("CSR has DNS SANs %q; only the SPIFFE ID is allowed", csr.DNSNames), nil)
	case len(csr.EmailAddresses) > 0:
		return refuse(ReasonSAN, fmt.Sprintf("CSR has email SANs %q; only the SPIFFE ID is allowed", csr.EmailAddresses), nil)
	case len(csr.IPAddresses) > 0:
		return refuse(ReasonSAN, fmt.Sprintf("CSR has IP SANs %v; only the SPIFFE ID is allowed", csr.IPAddresses), nil)
	case len(csr.URIs) == 0:
		return refuse(ReasonSAN, "CSR has no URI SAN; it must name "+id.String(), nil)
	case len(csr.URIs) > 1:
		return refuse(ReasonSAN, fmt.Sprintf("CSR has %d URI SANs; it must name only %s", len(csr.URIs), id), nil)
	}
	got, err := spiffeid.FromURI(csr.URIs[0])
	if err != nil {
		return refuse(ReasonIDMismatch, fmt.Sprintf("CSR URI %q is not a SPIFFE ID", csr.URIs[0].String()), err)
	}
	if got != id {
		return refuse(ReasonIDMismatch, fmt.Sprintf("CSR names %s, not %s", got, id), nil)
	}
	return nil
}

// commonName returns the last segment of id's path if it fits in a CN, or
// "" (no CN: the URI SAN is the name that counts).
func commonName(id spiffeid.ID) string {
	p := id.Path()
	cn := p[strings.LastIndexByte(p, '/')+1:]
	if len(cn) > maxCommonName {
		return ""
	}
	return cn
}

func leafTemplate(id spiffeid.ID, cn string) *x509.Certificate {
	return &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{organization}, CommonName: cn},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{id.URL()},
	}
}

// issue completes tmpl (serial, validity) and signs it for pub with the
// current intermediate.
func (c *CA) issue(tmpl *x509.Certificate, pub crypto.PublicKey, ttl time.Duration) ([]*x509.Certificate, error) {
	now := c.now()
	is := c.issuerFor(now)
	notAfter := now.Add(ttl)
	if notAfter.After(is.notAfter) {
		notAfter = is.notAfter
	}
	if !notAfter.After(now) {
		return nil, fmt.Errorf("%w (at %s)", ErrExpired, is.notAfter.UTC().Format(time.RFC3339))
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	// Backdate for clock skew, but by no more than a tenth of the lifetime:
	// a proxy renews at half of NotBefore..NotAfter, and a short-lived
	// certificate must not be born half used.
	bd := backdate
	if ttl/10 < bd {
		bd = ttl / 10
	}
	tmpl.NotBefore = now.Add(-bd)
	tmpl.NotAfter = notAfter
	leaf, err := createCert(tmpl, is.chain[0], pub, is.key)
	if err != nil {
		return nil, err
	}
	chain := make([]*x509.Certificate, 0, 1+len(is.chain))
	return append(append(chain, leaf), is.chain...), nil
}
