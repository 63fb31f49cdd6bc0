package identity

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// outcome is what each side of one handshake saw.
type outcome struct {
	serverErr   error // the server's Handshake
	clientErr   error // the client's Handshake, or its first Read after it
	server      tls.ConnectionState
	client      tls.ConnectionState
	clientWrote bool
}

// handshake runs one TLS handshake over loopback TCP. After a successful
// handshake the server writes one byte and the client reads it: in TLS 1.3
// the client's Handshake returns before the server has checked the client's
// certificate, so a refusal by the server reaches the client on that Read.
func handshake(t *testing.T, serverCfg, clientCfg *tls.Config) outcome {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	deadline := time.Now().Add(5 * time.Second)

	type serverResult struct {
		err   error
		state tls.ConnectionState
	}
	done := make(chan serverResult, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- serverResult{err: err}
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(deadline)
		tc := tls.Server(conn, serverCfg)
		err = tc.Handshake()
		if err == nil {
			_, _ = tc.Write([]byte{1})
		}
		done <- serverResult{err: err, state: tc.ConnectionState()}
	}()

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(deadline)
	tc := tls.Client(conn, clientCfg)
	var out outcome
	out.clientErr = tc.Handshake()
	if out.clientErr == nil {
		var b [1]byte
		_, out.clientErr = io.ReadFull(tc, b[:])
	}
	out.client = tc.ConnectionState()
	_ = conn.Close() // unblock a server still waiting for us
	res := <-done
	out.serverErr, out.server = res.err, res.state
	return out
}

func TestHandshakeGood(t *testing.T) {
	ca := newTestCA(t, "weft")
	for _, tt := range []struct {
		name        string
		maxVersion  uint16
		wantVersion uint16
	}{
		{"tls13", 0, tls.VersionTLS13},
		{"tls12", tls.VersionTLS12, tls.VersionTLS12},
	} {
		t.Run(tt.name, func(t *testing.T) {
			server := newTestSource(t, ca, catalogID)
			client := newTestSource(t, ca, frontendID)
			var authorized []spiffeid.ID
			serverCfg := server.ServerConfig(ServerOptions{
				NextProtos: []string{"h2", "http/1.1"},
				Authorize: func(id spiffeid.ID) error {
					authorized = append(authorized, id)
					return nil
				},
			})
			clientCfg := client.ClientConfig(ClientOptions{
				AllowedIDs: []spiffeid.ID{paymentsID, catalogID},
				NextProtos: []string{"h2"},
			})
			clientCfg.MaxVersion = tt.maxVersion

			out := handshake(t, serverCfg, clientCfg)
			if out.serverErr != nil || out.clientErr != nil {
				t.Fatalf("handshake failed: server: %v; client: %v", out.serverErr, out.clientErr)
			}
			if out.client.Version != tt.wantVersion {
				t.Errorf("version = %x, want %x", out.client.Version, tt.wantVersion)
			}
			if out.client.NegotiatedProtocol != "h2" || out.server.NegotiatedProtocol != "h2" {
				t.Errorf("alpn = %q (client) / %q (server), want h2",
					out.client.NegotiatedProtocol, out.server.NegotiatedProtocol)
			}
			if id, ok := PeerID(out.client); !ok || id != catalogID {
				t.Errorf("client's PeerID = %v, %v; want %v", id, ok, catalogID)
			}
			if id, ok := PeerID(out.server); !ok || id != frontendID {
				t.Errorf("server's PeerID = %v, %v; want %v", id, ok, frontendID)
			}
			if len(authorized) != 1 || authorized[0] != frontendID {
				t.Errorf("Authorize saw %v, want [%v]", authorized, frontendID)
			}
			wantNoRejections(t, "server", server)
			wantNoRejections(t, "client", client)
		})
	}
}

// TestHandshakeRefused checks that each bad peer is refused by the side
// that must refuse it, with the right reason, counted once on that side.
func TestHandshakeRefused(t *testing.T) {
	ca := newTestCA(t, "weft")
	otherCA := newTestCA(t, "other")
	h2 := []string{"h2"}

	// The sides that follow the rules.
	goodServer := func(t *testing.T, opts ServerOptions) (*Source, *tls.Config) {
		src := newTestSource(t, ca, catalogID)
		opts.NextProtos = h2
		return src, src.ServerConfig(opts)
	}
	goodClient := func(t *testing.T, allowed ...spiffeid.ID) (*Source, *tls.Config) {
		src := newTestSource(t, ca, frontendID)
		return src, src.ClientConfig(ClientOptions{AllowedIDs: allowed, NextProtos: h2})
	}
	// The sides that do not: they present any certificate and check
	// nothing of their peer.
	rogueClient := func(chain []*x509.Certificate, key crypto.Signer) *tls.Config {
		cfg := &tls.Config{InsecureSkipVerify: true, NextProtos: h2}
		if chain != nil {
			cfg.Certificates = []tls.Certificate{rawCertificate(chain, key)}
		}
		return cfg
	}
	rogueServer := func(chain []*x509.Certificate, key crypto.Signer) *tls.Config {
		return &tls.Config{Certificates: []tls.Certificate{rawCertificate(chain, key)}, NextProtos: h2}
	}
	expired := func(c *x509.Certificate) {
		c.NotBefore, c.NotAfter = time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)
	}
	notYetValid := func(c *x509.Certificate) {
		c.NotBefore, c.NotAfter = time.Now().Add(time.Hour), time.Now().Add(2*time.Hour)
	}

	type setup struct {
		server, client  *tls.Config
		refuser, passer *Source // passer may be nil (a rogue peer)
	}
	// clientRefusedBy builds a case where a good server meets a bad client.
	clientRefusedBy := func(chain []*x509.Certificate, key crypto.Signer) func(t *testing.T) setup {
		return func(t *testing.T) setup {
			src, cfg := goodServer(t, ServerOptions{})
			return setup{server: cfg, client: rogueClient(chain, key), refuser: src}
		}
	}
	// serverRefusedBy builds a case where a good client meets a bad server.
	serverRefusedBy := func(chain []*x509.Certificate, key crypto.Signer) func(t *testing.T) setup {
		return func(t *testing.T) setup {
			src, cfg := goodClient(t, catalogID)
			return setup{server: rogueServer(chain, key), client: cfg, refuser: src}
		}
	}

	tests := []struct {
		name      string
		setup     func(t *testing.T) setup
		refusedBy string // "server" or "client"
		reason    Reason
	}{
		// Clients the server must refuse.
		{"client expired", clientRefusedBy(ca.issue(t, frontendID, expired)), "server", ReasonExpired},
		{"client not yet valid", clientRefusedBy(ca.issue(t, frontendID, notYetValid)), "server", ReasonNotYetValid},
		{"client of foreign trust domain", clientRefusedBy(ca.issue(t, foreignID, nil)), "server", ReasonForeignTrustDomain},
		{"client self-signed", clientRefusedBy(selfSigned(t, frontendID)), "server", ReasonUntrusted},
		{"client of another ca", clientRefusedBy(otherCA.issue(t, frontendID, nil)), "server", ReasonUntrusted},
		{"client leaf is a ca", clientRefusedBy(ca.issue(t, frontendID, func(c *x509.Certificate) {
			c.IsCA, c.BasicConstraintsValid = true, true
		})), "server", ReasonUntrusted},
		{"client with dns san", clientRefusedBy(ca.issue(t, spiffeid.ID{}, func(c *x509.Certificate) {
			c.DNSNames = []string{"frontend.shop.svc.cluster.local"}
		})), "server", ReasonBadSAN},
		{"client with email san", clientRefusedBy(ca.issue(t, spiffeid.ID{}, func(c *x509.Certificate) {
			c.EmailAddresses = []string{"frontend@weft.test"}
		})), "server", ReasonBadSAN},
		{"client with ip san", clientRefusedBy(ca.issue(t, spiffeid.ID{}, func(c *x509.Certificate) {
			c.IPAddresses = []net.IP{netip.MustParseAddr("10.1.2.3").AsSlice()}
		})), "server", ReasonBadSAN},
		{"client with no san", clientRefusedBy(ca.issue(t, spiffeid.ID{}, nil)), "server", ReasonBadSAN},
		{"client with two uri sans", clientRefusedBy(ca.issue(t, frontendID, func(c *x509.Certificate) {
			c.URIs = append(c.URIs, paymentsID.URL())
		})), "server", ReasonBadSAN},
		{"client with a non-spiffe uri", clientRefusedBy(ca.issue(t, spiffeid.ID{}, func(c *x509.Certificate) {
			c.URIs = []*url.URL{{Scheme: "https", Host: "frontend.weft.test"}}
		})), "server", ReasonBadSAN},
		{"no client certificate", clientRefusedBy(nil, nil), "server", ReasonNoClientCert},
		{"client capped at tls 1.1", func(t *testing.T) setup {
			src, cfg := goodServer(t, ServerOptions{})
			client, ccfg := goodClient(t, catalogID)
			ccfg.MinVersion, ccfg.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
			return setup{server: cfg, client: ccfg, refuser: src, passer: client}
		}, "server", ReasonTLSVersion},
		{"client id not authorized", func(t *testing.T) setup {
			src, cfg := goodServer(t, ServerOptions{Authorize: func(id spiffeid.ID) error {
				if id != paymentsID {
					return errors.New("only payments may call")
				}
				return nil
			}})
			client, ccfg := goodClient(t, catalogID)
			return setup{server: cfg, client: ccfg, refuser: src, passer: client}
		}, "server", ReasonUnauthorizedID},

		// Servers the client must refuse.
		{"server with the wrong id", func(t *testing.T) setup {
			server, cfg := goodServer(t, ServerOptions{})
			src, ccfg := goodClient(t, paymentsID)
			return setup{server: cfg, client: ccfg, refuser: src, passer: server}
		}, "client", ReasonUnauthorizedID},
		{"empty allowed ids", func(t *testing.T) setup {
			server, cfg := goodServer(t, ServerOptions{})
			src, ccfg := goodClient(t)
			return setup{server: cfg, client: ccfg, refuser: src, passer: server}
		}, "client", ReasonUnauthorizedID},
		{"server of another ca", serverRefusedBy(otherCA.issue(t, catalogID, nil)), "client", ReasonUntrusted},
		{"server self-signed", serverRefusedBy(selfSigned(t, catalogID)), "client", ReasonUntrusted},
		{"server expired", serverRefusedBy(ca.issue(t, catalogID, expired)), "client", ReasonExpired},
		{"server of foreign trust domain", serverRefusedBy(ca.issue(t, spiffeid.RequireFromString("spiffe://other.test/ns/shop/sa/catalog"), nil)), "client", ReasonForeignTrustDomain},
		{"server with dns san", serverRefusedBy(ca.issue(t, spiffeid.ID{}, func(c *x509.Certificate) {
			c.DNSNames = []string{"catalog.shop"}
		})), "client", ReasonBadSAN},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.setup(t)
			out := handshake(t, s.server, s.client)

			refuserErr, otherErr := out.serverErr, out.clientErr
			if tt.refusedBy == "client" {
				refuserErr, otherErr = out.clientErr, out.serverErr
			}
			if refuserErr == nil {
				t.Fatalf("%s accepted the handshake", tt.refusedBy)
			}
			if otherErr == nil {
				t.Errorf("the other side saw no error")
			}
			var rej *RejectionError
			switch {
			case tt.reason == ReasonTLSVersion:
				// Refused by crypto/tls itself, counted by us.
			case !errors.As(refuserErr, &rej):
				t.Errorf("%s error is %T (%v), want *RejectionError", tt.refusedBy, refuserErr, refuserErr)
			case rej.Reason != tt.reason:
				t.Errorf("reason = %v (%v), want %v", rej.Reason, refuserErr, tt.reason)
			}
			t.Logf("%s: %v", tt.refusedBy, refuserErr)

			want := map[string]uint64{}
			for r := range Reason(numReasons) {
				want[r.String()] = 0
			}
			want[tt.reason.String()] = 1
			if got := s.refuser.Rejections(); !maps.Equal(got, want) {
				t.Errorf("%s rejections = %v, want %v", tt.refusedBy, got, want)
			}
			if s.passer != nil {
				wantNoRejections(t, "other side", s.passer)
			}
		})
	}
}

func wantNoRejections(t *testing.T, side string, src *Source) {
	t.Helper()
	for reason, n := range src.Rejections() {
		if n != 0 {
			t.Errorf("%s counted %d %s rejections, want none", side, n, reason)
		}
	}
}
