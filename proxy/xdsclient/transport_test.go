package xdsclient_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	listenerpb "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discoverypb "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weftmesh/weft/proxy/xdsclient"
)

// fakeADS is a scripted ADS server: the test reads what the client sends
// from reqs and sends responses through send.
type fakeADS struct {
	discoverypb.UnimplementedAggregatedDiscoveryServiceServer
	reqs chan *discoverypb.DiscoveryRequest
	send chan *discoverypb.DiscoveryResponse
	end  chan error // ends the stream with this status
}

func (f *fakeADS) StreamAggregatedResources(s discoverypb.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	go func() {
		for {
			req, err := s.Recv()
			if err != nil {
				return
			}
			select {
			case f.reqs <- req:
			case <-s.Context().Done():
				return
			}
		}
	}()
	for {
		select {
		case resp := <-f.send:
			if err := s.Send(resp); err != nil {
				return err
			}
		case err := <-f.end:
			return err
		case <-s.Context().Done():
			return nil
		}
	}
}

func startFakeADS(t *testing.T) (*fakeADS, string) {
	t.Helper()
	f := &fakeADS{
		reqs: make(chan *discoverypb.DiscoveryRequest, 100),
		send: make(chan *discoverypb.DiscoveryResponse),
		end:  make(chan error, 1),
	}
	srv := grpc.NewServer()
	discoverypb.RegisterAggregatedDiscoveryServiceServer(srv, f)
	ln := listen(t, "127.0.0.1:0")
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return f, ln.Addr().String()
}

func (f *fakeADS) next(t *testing.T) *discoverypb.DiscoveryRequest {
	t.Helper()
	select {
	case r := <-f.reqs:
		return r
	case <-time.After(waitTimeout):
		t.Fatal("timed out waiting for a request")
		return nil
	}
}

func (f *fakeADS) respond(t *testing.T, resp *discoverypb.DiscoveryResponse) {
	t.Helper()
	select {
	case f.send <- resp:
	case <-time.After(waitTimeout):
		t.Fatal("timed out sending a response")
	}
}

// Responses of a type that was never subscribed are ignored without a
// reply (as Envoy does); resources of the wrong type NACK the response.
func TestProtocolEdgeCases(t *testing.T) {
	t.Parallel()
	f, addr := startFakeADS(t)
	var calls atomic.Int32
	handler := xdsclient.HandlerFunc(func(typeURL, version string, resources [][]byte) error {
		calls.Add(1)
		if typeURL != typeCDS || version != "2" || len(resources) != 0 {
			t.Errorf("OnResources(%s, %s, %d resources), want only (CDS, 2, 0)", typeURL, version, len(resources))
		}
		return nil
	})
	c, err := xdsclient.New(xdsclient.Options{Server: addr, Node: xdsclient.Node{ID: nodeID}, Handler: handler})
	if err != nil {
		t.Fatal(err)
	}
	c.Subscribe(typeCDS, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	if r := f.next(t); r.GetTypeUrl() != typeCDS || r.GetNode().GetId() != nodeID {
		t.Fatalf("first request = %v, want CDS with the node", r)
	}
	listener, err := anypb.New(&listenerpb.Listener{Name: "outbound"})
	if err != nil {
		t.Fatal(err)
	}
	f.respond(t, &discoverypb.DiscoveryResponse{VersionInfo: "1", TypeUrl: typeLDS, Nonce: "l1", Resources: []*anypb.Any{listener}})
	f.respond(t, &discoverypb.DiscoveryResponse{VersionInfo: "1", TypeUrl: typeCDS, Nonce: "c1", Resources: []*anypb.Any{listener}})

	nack := f.next(t)
	wantMsg := `xdsclient: resource 0 has type "` + typeLDS + `", want "` + typeCDS + `"`
	if nack.GetTypeUrl() != typeCDS || nack.GetResponseNonce() != "c1" || nack.GetVersionInfo() != "" || nack.GetErrorDetail().GetMessage() != wantMsg {
		t.Fatalf("got %v, want a NACK of c1 with message %q", nack, wantMsg)
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("handler called %d times before a valid response", n)
	}

	f.respond(t, &discoverypb.DiscoveryResponse{VersionInfo: "2", TypeUrl: typeCDS, Nonce: "c2"})
	ack := f.next(t)
	if ack.GetTypeUrl() != typeCDS || ack.GetResponseNonce() != "c2" || ack.GetVersionInfo() != "2" || ack.GetErrorDetail() != nil {
		t.Fatalf("got %v, want an ACK of c2", ack)
	}
	// Nothing was sent for the unsubscribed LDS.
	select {
	case r := <-f.reqs:
		t.Fatalf("unexpected request %v", r)
	case <-time.After(100 * time.Millisecond):
	}
	if st := c.Status(); len(st.Types) != 1 || st.Types[typeCDS].Acks != 1 || st.Types[typeCDS].Nacks != 1 {
		t.Errorf("Status.Types = %+v, want only CDS with 1 ACK and 1 NACK", st.Types)
	}

	// Subscribing the same set again sends nothing, and neither does
	// subscribing to none of a type never requested; a new set is sent
	// with the latest nonce and version.
	c.Subscribe(typeCDS, nil)
	c.Subscribe(typeEDS, []string{})
	c.Subscribe(typeCDS, []string{"b", "a", "b"})
	r := f.next(t)
	if r.GetTypeUrl() != typeCDS || r.GetResponseNonce() != "c2" || r.GetVersionInfo() != "2" || !slices.Equal(r.GetResourceNames(), []string{"a", "b"}) {
		t.Fatalf("got %v, want CDS names [a b] with nonce c2 and version 2", r)
	}
	// From names to none: an empty list, which after names means none.
	c.Subscribe(typeCDS, []string{})
	if r := f.next(t); r.GetTypeUrl() != typeCDS || r.GetResponseNonce() != "c2" || len(r.GetResourceNames()) != 0 {
		t.Fatalf("got %v, want CDS with no names and nonce c2", r)
	}
	select {
	case r := <-f.reqs:
		t.Fatalf("unexpected request %v", r)
	case <-time.After(50 * time.Millisecond):
	}
	st := c.Status()
	for _, typeURL := range []string{typeCDS, typeEDS} {
		if names := st.Types[typeURL].Names; names == nil || len(names) != 0 {
			t.Errorf("Status.Types[%s].Names = %#v, want empty and non-nil (none)", typeURL, names)
		}
	}
}

// A status sent in the trailers after messages ends the stream and is
// reported, decoded; the client reconnects and re-subscribes.
func TestStatusInTrailers(t *testing.T) {
	t.Parallel()
	f, addr := startFakeADS(t)
	p := &proxy{}
	c := startClient(t, addr, p)
	for range 2 { // CDS and LDS
		f.next(t)
	}
	f.respond(t, &discoverypb.DiscoveryResponse{VersionInfo: "1", TypeUrl: typeCDS, Nonce: "c1"})
	if r := f.next(t); r.GetResponseNonce() != "c1" {
		t.Fatalf("got %v, want the ACK of c1", r)
	}
	f.end <- status.Error(codes.ResourceExhausted, "100% full: résumé later")

	// The client comes back on a new stream with the version it has.
	r := f.next(t)
	if r.GetNode().GetId() != nodeID || r.GetTypeUrl() != typeCDS || r.GetVersionInfo() != "1" || r.GetResponseNonce() != "" {
		t.Fatalf("got %v, want a fresh CDS request with the node and version 1", r)
	}
	var se *xdsclient.StatusError
	if err := c.Status().LastError; !errors.As(err, &se) || se.Code != int(codes.ResourceExhausted) || se.Message != "100% full: résumé later" {
		t.Fatalf("LastError = %#v, want ResourceExhausted with the message intact", err)
	}
	if got := c.Status().Reconnects; got != 1 {
		t.Errorf("Reconnects = %d, want 1", got)
	}
}

// blackhole is a TCP proxy that can stop forwarding on the connections it
// has, silently, as a dead peer or a broken network path would.
type blackhole struct {
	ln      net.Listener
	backend string

	mu     sync.Mutex
	conns  []net.Conn
	frozen []*atomic.Bool
}

func startBlackhole(t *testing.T, backend string) *blackhole {
	t.Helper()
	b := &blackhole{ln: listen(t, "127.0.0.1:0"), backend: backend}
	go b.serve()
	t.Cleanup(func() {
		b.ln.Close()
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, c := range b.conns {
			c.Close()
		}
	})
	return b
}

func (b *blackhole) serve() {
	for {
		down, err := b.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", b.backend)
		if err != nil {
			down.Close()
			continue
		}
		frozen := new(atomic.Bool)
		b.mu.Lock()
		b.conns = append(b.conns, down, up)
		b.frozen = append(b.frozen, frozen)
		b.mu.Unlock()
		go pump(up, down, frozen)
		go pump(down, up, frozen)
	}
}

// pump copies src to dst, dropping everything once frozen.
func pump(dst, src net.Conn, frozen *atomic.Bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		if frozen.Load() {
			continue
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

// freeze black-holes every connection made so far.
func (b *blackhole) freeze() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, f := range b.frozen {
		f.Store(true)
	}
}

func TestDeadConnectionDetectedByPing(t *testing.T) {
	t.Parallel()
	cp := startControlPlane(t, "127.0.0.1:0", snapshot(t, "1"))
	hole := startBlackhole(t, cp.addr)
	p := &proxy{}
	c := startClient(t, hole.ln.Addr().String(), p, func(o *xdsclient.Options) {
		o.PingInterval = 100 * time.Millisecond
		o.PingTimeout = 200 * time.Millisecond
	})
	waitFor(t, "version 1", func() bool { return p.hasVersion("1") })

	// No FIN, no RST: only the unanswered PING can tell the link is dead.
	hole.freeze()
	start := time.Now()
	waitFor(t, "reconnect", func() bool { st := c.Status(); return st.Reconnects >= 1 && st.Connected })
	waitFor(t, "CDS on the new stream", func() bool { return p.count(typeCDS) >= 2 })
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("dead connection detected after %v, want about PingInterval+PingTimeout", d)
	}
	t.Logf("detected and recovered in %v; last error: %v", time.Since(start), c.Status().LastError)
}

func TestTLS(t *testing.T) {
	t.Parallel()
	cert, pool := selfSigned(t)

	t.Run("h2 over TLS", func(t *testing.T) {
		t.Parallel()
		cp := startControlPlaneTLS(t, cert)
		p := &proxy{}
		startClient(t, cp, p, func(o *xdsclient.Options) {
			o.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		})
		waitFor(t, "all four types over TLS", func() bool { return p.hasVersion("1") })
	})

	t.Run("server without h2 ALPN", func(t *testing.T) {
		t.Parallel()
		ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer conn.Close()
					_ = conn.(*tls.Conn).Handshake()
					_, _ = io.Copy(io.Discard, conn)
				}()
			}
		}()
		c := startClient(t, ln.Addr().String(), &proxy{}, func(o *xdsclient.Options) {
			o.TLS = &tls.Config{RootCAs: pool}
		})
		waitFor(t, "a failed attempt", func() bool { return c.Status().LastError != nil })
		if err := c.Status().LastError; !strings.Contains(err.Error(), "did not negotiate HTTP/2") {
			t.Fatalf("LastError = %v, want the ALPN error", err)
		}
	})

	t.Run("untrusted server", func(t *testing.T) {
		t.Parallel()
		cp := startControlPlaneTLS(t, cert)
		c := startClient(t, cp, &proxy{}, func(o *xdsclient.Options) {
			o.TLS = &tls.Config{RootCAs: x509.NewCertPool()}
		})
		waitFor(t, "a failed attempt", func() bool { return c.Status().LastError != nil })
		var uerr x509.UnknownAuthorityError
		if err := c.Status().LastError; !errors.As(err, &uerr) {
			t.Fatalf("LastError = %v, want x509.UnknownAuthorityError", err)
		}
	})
}

// startControlPlaneTLS starts the ADS server of startControlPlane with
// TLS credentials and returns its address.
func startControlPlaneTLS(t *testing.T, cert tls.Certificate) string {
	t.Helper()
	creds := credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}})
	return startControlPlane(t, "127.0.0.1:0", snapshot(t, "1"), grpc.Creds(creds)).addr
}

// selfSigned returns a certificate for 127.0.0.1 and a pool trusting it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "weft-control-plane"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
