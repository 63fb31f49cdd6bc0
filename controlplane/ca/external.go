package ca

import (
	"crypto/x509"
	"fmt"
	"os"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// loadExternal reads and checks an intermediate of an existing PKI: it must
// be a CA certificate, match its key, chain to the bundle (through the
// certificates that follow it in CertFile) and be able to issue SPIFFE
// certificates in the trust domain, which is proven by issuing a probe.
func loadExternal(opts Options) (*snapshot, error) {
	certs, err := readExternal(opts.CertFile, parseCerts)
	if err != nil {
		return nil, err
	}
	key, err := readExternal(opts.KeyFile, parseKey)
	if err != nil {
		return nil, err
	}
	roots, err := readExternal(opts.BundleFile, parseCerts)
	if err != nil {
		return nil, err
	}
	inter := certs[0]
	switch {
	case !inter.BasicConstraintsValid || !inter.IsCA:
		return nil, fmt.Errorf("ca: %s: %q is not a CA certificate", opts.CertFile, inter.Subject)
	case inter.KeyUsage != 0 && inter.KeyUsage&x509.KeyUsageCertSign == 0:
		return nil, fmt.Errorf("ca: %s: %q may not sign certificates (no CertSign key usage)", opts.CertFile, inter.Subject)
	case !keyMatches(key, inter.PublicKey):
		return nil, fmt.Errorf("ca: %s does not hold the key of %s", opts.KeyFile, opts.CertFile)
	}
	if err := checkPublicKey(inter.PublicKey); err != nil {
		return nil, fmt.Errorf("ca: %s: %w", opts.CertFile, err)
	}

	now := opts.Now()
	rootPool, rest := x509.NewCertPool(), x509.NewCertPool()
	var bundle []*x509.Certificate
	for _, r := range roots {
		if !containsCert(bundle, r) {
			bundle = append(bundle, r)
			rootPool.AddCert(r)
		}
	}
	for _, c := range certs[1:] {
		rest.AddCert(c)
	}
	chains, err := inter.Verify(x509.VerifyOptions{
		Roots:         rootPool,
		Intermediates: rest,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, fmt.Errorf("ca: %s does not chain to %s: %w", opts.CertFile, opts.BundleFile, err)
	}
	chain := chains[0] // [inter, ..., root]
	s := &snapshot{roots: bundle}
	s.issuer = newIssuer(chain[:len(chain)-1], key, chain[len(chain)-1])
	s.paths = []path{{chain: s.issuer.chain, root: s.issuer.root}}

	// A name constraint or an extended key usage of the external PKI can
	// forbid what the CA issues; find out now rather than at the first Sign.
	probeID := opts.TrustDomain.ID()
	probeID, err = probeID.AppendSegments("weft", "ca-probe")
	if err != nil {
		return nil, fmt.Errorf("ca: probe ID: %w", err)
	}
	probe := leafTemplate(probeID, "ca-probe")
	if probe.SerialNumber, err = newSerial(); err != nil {
		return nil, err
	}
	probe.NotBefore, probe.NotAfter = now.Add(-backdate), now.Add(backdate)
	leaf, err := createCert(probe, inter, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("ca: %s cannot sign: %w", opts.CertFile, err)
	}
	b := x509bundle.FromX509Authorities(opts.TrustDomain, bundle)
	if _, _, err := x509svid.Verify(append([]*x509.Certificate{leaf}, s.issuer.chain...), b, x509svid.WithTime(now)); err != nil {
		return nil, fmt.Errorf("ca: %s cannot issue SPIFFE certificates in %s: %w", opts.CertFile, opts.TrustDomain.Name(), err)
	}
	return s, nil
}

// readExternal reads and parses one of the external PKI's files. Errors
// name the file but never quote its content.
func readExternal[T any](file string, parse func([]byte) (T, error)) (T, error) {
	var zero T
	data, err := os.ReadFile(file)
	if err != nil {
		return zero, fmt.Errorf("ca: read external PKI: %w", err)
	}
	v, err := parse(data)
	if err != nil {
		return zero, fmt.Errorf("ca: %s: %w", file, err)
	}
	return v, nil
}

func containsCert(certs []*x509.Certificate, c *x509.Certificate) bool {
	for _, x := range certs {
		if x.Equal(c) {
			return true
		}
	}
	return false
}
