package identity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// ServerOptions configures ServerConfig, which copies what it needs:
// changing the options afterwards has no effect.
type ServerOptions struct {
	// Authorize, if set, decides whether a client whose SVID verified may
	// connect; an error refuses it (counted as unauthorized_id). Nil admits
	// every ID of the trust domain. It is called during handshakes, from
	// many goroutines at once, and must not block.
	Authorize func(id spiffeid.ID) error

	// NextProtos are the ALPN protocols offered, in order of preference,
	// e.g. "h2", "http/1.1".
	NextProtos []string
}

// ClientOptions configures ClientConfig, which copies what it needs:
// changing the options afterwards has no effect.
type ClientOptions struct {
	// AllowedIDs is the set of server IDs the client accepts; order and
	// duplicates do not matter. Empty refuses every server: a client must
	// say whom it expects to reach.
	AllowedIDs []spiffeid.ID

	// NextProtos are the ALPN protocols offered, in order of preference.
	NextProtos []string
}

// ServerConfig returns a TLS server configuration that presents the current
// SVID and requires a client SVID of the trust domain. It reads the Source
// at every handshake, so SetSVID and SetBundle apply without rebuilding it.
// The config is safe for any number of concurrent handshakes; it may be
// cloned and adjusted, but its callbacks must stay.
//
// The client certificate is requested (tls.RequestClientCert) and then
// required by VerifyPeerCertificate, rather than required by crypto/tls
// (tls.RequireAnyClientCert), so that a client without one is counted as
// no_client_cert: crypto/tls would refuse it before any callback runs.
func (s *Source) ServerConfig(opts ServerOptions) *tls.Config {
	authorize := opts.Authorize
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		GetConfigForClient: s.checkClientHello,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.certificate()
		},
		ClientAuth: tls.RequestClientCert,
		VerifyPeerCertificate: func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
			id, err := s.verifyPeer(rawCerts, ReasonNoClientCert)
			if err != nil {
				return err
			}
			if authorize != nil {
				if err := authorize(id); err != nil {
					return s.reject(ReasonUnauthorizedID, id, err)
				}
			}
			return nil
		},
		NextProtos: slices.Clone(opts.NextProtos),
		// A resumed session skips VerifyPeerCertificate: it would outlive a
		// bundle rotation. Sidecar connections are long-lived and pooled,
		// so full handshakes cost little.
		SessionTicketsDisabled: true,
	}
}

// ClientConfig returns a TLS client configuration that presents the current
// SVID and accepts only a server whose SVID verifies against the bundle and
// whose ID is one of opts.AllowedIDs. The server name plays no part. It
// reads the Source at every handshake, so SetSVID and SetBundle apply
// without rebuilding it. It keeps no session cache, so no handshake is
// resumed without verification. The config is safe for any number of
// concurrent handshakes; it may be cloned and adjusted (a ServerName, as
// net/http sets, is harmless), but its callbacks must stay.
func (s *Source) ClientConfig(opts ClientOptions) *tls.Config {
	allowed := make(map[spiffeid.ID]struct{}, len(opts.AllowedIDs))
	for _, id := range opts.AllowedIDs {
		allowed[id] = struct{}{}
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return s.certificate()
		},
		// The WebPKI verification (server name, system roots) does not apply;
		// VerifyPeerCertificate does the SPIFFE verification instead.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
			// A TLS server always sends a certificate; crypto/tls refuses an
			// empty one before calling us.
			id, err := s.verifyPeer(rawCerts, ReasonUntrusted)
			if err != nil {
				return err
			}
			if _, ok := allowed[id]; !ok {
				if len(allowed) == 0 {
					return s.reject(ReasonUnauthorizedID, id, errors.New("no server id is allowed"))
				}
				return s.reject(ReasonUnauthorizedID, id, fmt.Errorf("server id is not one of the %d allowed", len(allowed)))
			}
			return nil
		},
		NextProtos: slices.Clone(opts.NextProtos),
	}
}

// checkClientHello counts clients that offer no TLS version we accept. It
// leaves the refusal itself to crypto/tls (MinVersion), which answers with
// the protocol_version alert.
func (s *Source) checkClientHello(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	if !slices.ContainsFunc(hello.SupportedVersions, func(v uint16) bool {
		return v == tls.VersionTLS12 || v == tls.VersionTLS13
	}) {
		s.rejections[ReasonTLSVersion].Add(1)
	}
	return nil, nil // keep the config
}

// PeerID returns the SPIFFE ID of the peer of a completed handshake made
// with ServerConfig or ClientConfig (where it was verified), for logs and
// metrics. It reports false if the state has no peer SVID.
func PeerID(cs tls.ConnectionState) (spiffeid.ID, bool) {
	if !cs.HandshakeComplete || len(cs.PeerCertificates) == 0 {
		return spiffeid.ID{}, false
	}
	id, err := x509svid.IDFromCert(cs.PeerCertificates[0])
	if err != nil {
		return spiffeid.ID{}, false
	}
	return id, true
}
