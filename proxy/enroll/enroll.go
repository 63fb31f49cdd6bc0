// Package enroll gets the proxy its certificate from the control plane's
// issuer: the first one with a join token, over TLS whose server is
// authenticated by a CA pin (the SHA-256 of a root's public key, as
// kubeadm's discovery hash) or a bundle file — never trust on first use —
// and every renewal with the current certificate over mutual TLS.
package enroll

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/proxy/identity"
)

// Options configure a Client.
type Options struct {
	// Issuer is the control plane's issuer address (host:port).
	Issuer   string
	Workload string
	// Token is the join token for the first certificate.
	Token string
	// Pin ("sha256:HEX") or Roots authenticate the control plane before the
	// proxy has a bundle.
	Pin   string
	Roots []*x509.Certificate
	// Source holds the certificate and bundle; renewals use them.
	Source      *identity.Source
	TrustDomain spiffeid.TrustDomain
}

// Client talks to the issuer. Safe for concurrent use.
type Client struct {
	opts Options
	cpID spiffeid.ID

	mu        sync.Mutex
	bootstrap *http.Client
	mtls      *http.Client
}

// New checks the options.
func New(opts Options) (*Client, error) {
	if opts.Pin == "" && len(opts.Roots) == 0 {
		return nil, errors.New("enroll: the control plane must be authenticated: give --ca-pin (printed by `weft token create`) or --ca-bundle")
	}
	if opts.Pin != "" {
		if _, err := parsePin(opts.Pin); err != nil {
			return nil, err
		}
	}
	cpID, err := spiffeid.FromPath(opts.TrustDomain, xdsmeta.ControlPlaneIdentity)
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	c := &Client{opts: opts, cpID: cpID}
	c.bootstrap = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   c.bootstrapTLS(),
		ForceAttemptHTTP2: false,
	}}
	c.mtls = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		TLSClientConfig: opts.Source.ClientConfig(identity.ClientOptions{AllowedIDs: []spiffeid.ID{cpID}}),
	}}
	return c, nil
}

// ControlPlaneID is the SPIFFE ID the control plane must present.
func (c *Client) ControlPlaneID() spiffeid.ID { return c.cpID }

func parsePin(pin string) ([]byte, error) {
	h, ok := strings.CutPrefix(pin, "sha256:")
	b, err := hex.DecodeString(h)
	if !ok || err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("enroll: --ca-pin %q: want sha256:<64 hex digits>", pin)
	}
	return b, nil
}

// Pin returns the pin of a certificate: sha256 over its public key info.
func Pin(c *x509.Certificate) string {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// bootstrapTLS authenticates the issuer by pin or roots, and its SPIFFE
// ID.
func (c *Client) bootstrapTLS() *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // verified below, by pin or roots
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			var certs []*x509.Certificate
			for _, r := range raw {
				cert, err := x509.ParseCertificate(r)
				if err != nil {
					return fmt.Errorf("enroll: control plane certificate: %w", err)
				}
				certs = append(certs, cert)
			}
			if len(certs) == 0 {
				return errors.New("enroll: the control plane presented no certificate")
			}
			roots := x509.NewCertPool()
			found := false
			for _, r := range c.opts.Roots {
				roots.AddCert(r)
				found = true
			}
			if c.opts.Pin != "" {
				for _, cert := range certs {
					if Pin(cert) == c.opts.Pin {
						roots.AddCert(cert)
						found = true
					}
				}
				if !found {
					return fmt.Errorf("enroll: no certificate presented by the control plane matches --ca-pin %s", c.opts.Pin)
				}
			}
			inter := x509.NewCertPool()
			for _, cert := range certs[1:] {
				inter.AddCert(cert)
			}
			if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
				return fmt.Errorf("enroll: control plane certificate does not chain to the pinned CA: %w", err)
			}
			if len(certs[0].URIs) != 1 || certs[0].URIs[0].String() != c.cpID.String() {
				return fmt.Errorf("enroll: the server is not the control plane %s", c.cpID)
			}
			return nil
		},
	}
}

type request struct {
	Workload string `json:"workload"`
	CSR      []byte `json:"csr"`
}

type response struct {
	Chain  [][]byte `json:"chain"`
	Bundle [][]byte `json:"bundle"`
}

// Fetch sends a CSR and returns the signed chain and the trust bundle. It
// uses the join token until the source holds a certificate, then mutual
// TLS.
func (c *Client) Fetch(ctx context.Context, csr []byte) (chain, bundle []*x509.Certificate, err error) {
	body, _ := json.Marshal(request{Workload: c.opts.Workload, CSR: csr})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+c.opts.Issuer+"/v1/svid", bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	hc := c.mtls
	if !c.opts.Source.Ready() {
		if c.opts.Token == "" {
			return nil, nil, errors.New("enroll: no certificate yet and no join token: give --token (create one with `weft token create`)")
		}
		req.Header.Set("Authorization", "Bearer "+c.opts.Token)
		hc = c.bootstrap
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("enroll: issuer %s: %w", c.opts.Issuer, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("enroll: issuer refused: %s: %s", resp.Status, strings.TrimSpace(string(data)))
	}
	var r response
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, nil, fmt.Errorf("enroll: issuer answer: %w", err)
	}
	for _, d := range r.Chain {
		cert, err := x509.ParseCertificate(d)
		if err != nil {
			return nil, nil, fmt.Errorf("enroll: issued chain: %w", err)
		}
		chain = append(chain, cert)
	}
	for _, d := range r.Bundle {
		cert, err := x509.ParseCertificate(d)
		if err != nil {
			return nil, nil, fmt.Errorf("enroll: bundle: %w", err)
		}
		bundle = append(bundle, cert)
	}
	if len(chain) == 0 || len(bundle) == 0 {
		return nil, nil, errors.New("enroll: issuer answered without a certificate or bundle")
	}
	if c.opts.Pin != "" && !c.opts.Source.Ready() {
		ok := false
		for _, b := range bundle {
			if Pin(b) == c.opts.Pin {
				ok = true
			}
		}
		if !ok {
			return nil, nil, fmt.Errorf("enroll: the bundle the control plane sent does not hold the pinned root %s", c.opts.Pin)
		}
	}
	return chain, bundle, nil
}
