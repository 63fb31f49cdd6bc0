// Package identity is the proxy's workload identity: its SPIFFE X.509-SVID,
// the trust bundle of its trust domain, and the mutual-TLS configurations
// built from them.
//
// The private key is generated in memory (NewKey) and never leaves the
// process: the proxy sends a certificate signing request (NewCSR) to the
// control plane's CA and keeps the returned chain with the key in a Source.
// A Rotator renews the SVID at about half of its lifetime.
//
// # Rotation without restart
//
// The tls.Configs returned by ServerConfig and ClientConfig are built once
// and read the Source at every handshake (GetCertificate,
// GetClientCertificate, VerifyPeerCertificate), so a new SVID or a new trust
// bundle applies to the next handshake; established connections keep the
// identity they were made with. Session tickets are disabled on the server
// and clients keep no session cache, so every handshake is verified against
// the bundle of that moment, never resumed from an earlier one.
//
// # Peer verification
//
// A peer is accepted when it presents an X.509-SVID (leaf not a CA, exactly
// one URI SAN, a spiffe:// ID in the Source's trust domain) that chains to
// one of the bundle's roots through the intermediates it sent, and, where
// configured, its ID is authorised. Servers offer TLS 1.3 and accept
// TLS 1.2; nothing older.
//
// # Metrics
//
// Every refused peer is counted once, by reason, in the Source
// ((*Source).Rejections, lock-free):
//
//	expired               a certificate of the chain is past its NotAfter
//	not_yet_valid         a certificate of the chain is before its NotBefore
//	untrusted             the chain does not lead to a root of the bundle
//	                      (another CA, self-signed, CA leaf, no bundle yet)
//	foreign_trust_domain  a SPIFFE ID of another trust domain
//	bad_san               no URI SAN (only DNS, email or IP SANs), several
//	                      URI SANs, or a URI that is not a SPIFFE ID
//	no_client_cert        a client that sent no certificate
//	unauthorized_id       an ID refused by ServerOptions.Authorize or absent
//	                      from ClientOptions.AllowedIDs
//	tls_version           a client offering nothing newer than TLS 1.1
//	                      (counted by servers only: a client's own refusal
//	                      of an old server happens inside crypto/tls)
//
// The refusing side's handshake fails with a *RejectionError that carries the
// reason (except tls_version, refused by crypto/tls itself with a
// protocol_version alert).
package identity
