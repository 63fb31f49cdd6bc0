package forward

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/proxy/accesslog"
	"github.com/weftmesh/weft/proxy/balancer"
	"github.com/weftmesh/weft/proxy/metrics"
	"github.com/weftmesh/weft/proxy/snapshot"
	"github.com/weftmesh/weft/proxy/stats"
)

// ServeTCP proxies one connection as an opaque byte stream to a cluster:
// the listener's TCP cluster (listener set; with weighted clusters, one
// picked per connection by weight), or the named cluster. It
// returns when both directions are done. Mutual TLS to the upstream is used
// when the cluster asks for it; an incoming *tls.Conn is handshaken first,
// so an unauthenticated peer never reaches an upstream.
func (f *Forwarder) ServeTCP(c net.Conn, listener, cluster string, dir Direction) {
	defer c.Close()
	o := tcpObs{f: f, dir: dir, start: time.Now(), client: c}
	if tc, ok := c.(*tls.Conn); ok {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			f.opts.Logger.Debug("inbound TLS handshake failed", "listener", listener, "remote", c.RemoteAddr().String(), "error", err)
			return
		}
		o.mtls = true
		if st := tc.ConnectionState(); len(st.PeerCertificates) > 0 {
			o.peerPrincipal = f.principals.of(st.PeerCertificates[0])
		}
	}
	snap := f.opts.Snapshot()
	if snap == nil {
		return
	}
	var l *snapshot.Listener
	if cluster == "" {
		l = snap.Listeners[listener]
		if l == nil || !l.IsTCP() {
			return
		}
		cluster = pickTCPCluster(l)
	}
	o.cluster = cluster
	o.service = cluster
	if name, ns, _, ok := xdsmeta.ParseOutboundCluster(cluster); ok {
		o.service = name + "." + ns
	}
	if dir == Inbound && l != nil && l.Authz != nil && !f.authorizeConn(c, l, &o) {
		o.end(403, nil)
		return
	}
	cl := snap.Clusters[cluster]
	if cl == nil {
		o.flags = flagNoCluster
		o.end(500, nil)
		f.opts.Logger.Debug("TCP: no such cluster", "cluster", cluster)
		return
	}
	if dir == Outbound {
		o.mtls = cl.TLS != nil
	}
	ep := cl.Picker.PickFor(balancer.Request{})
	if ep == nil {
		o.flags = flagNoHealthy
		o.end(503, nil)
		f.opts.Logger.Debug("TCP: no healthy upstream", "cluster", cluster)
		return
	}
	o.ep = ep
	timeout := cl.ConnectTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	up, err := f.dialer.DialContext(ctx, "tcp", ep.Address)
	if err == nil && cl.TLS != nil {
		if f.opts.ClientTLS == nil {
			up.Close()
			err = errors.New("mutual TLS asked for but the proxy has no identity")
		} else {
			tc := tls.Client(up, f.opts.ClientTLS(cl.TLS.AllowedIDs, cl.TLS.ALPN))
			if err = tc.HandshakeContext(ctx); err != nil {
				up.Close()
			} else {
				up = tc
				if st := tc.ConnectionState(); len(st.PeerCertificates) > 0 {
					o.peerPrincipal = f.principals.of(st.PeerCertificates[0])
				}
			}
		}
	}
	cancel()
	done := ep.Begin()
	if err != nil {
		done(balancer.ResultConnectFailure)
		o.flags = flagConnect
		o.end(503, nil)
		f.opts.Logger.Debug("TCP: upstream connect failed", "cluster", cluster, "endpoint", ep.Address, "error", err)
		return
	}
	defer up.Close()
	f.recordTCP(dir, o.service, ep.Version, o.mtls, o.peerIfInbound(), 200, o.start)
	conn := o.open()
	f.pipe(c, up, &o, conn)
	o.end(0, conn)
	done(balancer.ResultSuccess)
}

// tcpObs is what the observers are told about one TCP connection.
type tcpObs struct {
	f             *Forwarder
	dir           Direction
	start         time.Time
	client        net.Conn
	cluster       string
	service       string
	ep            *balancer.Endpoint
	mtls          bool
	peerPrincipal string
	flags         flag
	sent, recv    atomic.Int64 // bytes to and from the client
}

func (o *tcpObs) peerIfInbound() string {
	if o.dir == Inbound {
		return o.peerPrincipal
	}
	return ""
}

// open counts the connection opened (metrics); nil when metrics are off.
func (o *tcpObs) open() *metrics.TCPConn {
	m := o.f.opts.Metrics
	if m == nil {
		return nil
	}
	ci := metrics.ConnInfo{Reporter: metrics.Source, Service: o.service, ResponseFlags: o.flags.String(), MTLS: o.mtls}
	if o.dir == Inbound {
		ci.Reporter = metrics.Destination
		ci.Peer = metrics.Peer{Namespace: namespaceOf(o.peerPrincipal), Principal: o.peerPrincipal}
	} else if o.ep != nil {
		_, ns, _ := strings.Cut(o.service, ".")
		ci.Peer = metrics.Peer{Workload: o.ep.Workload, Namespace: ns, Principal: o.peerPrincipal, Version: o.ep.Version}
	}
	return m.TCPOpen(ci)
}

// end records the connection's end: a refused one (code: the edge
// stats' status) is opened and closed at once; conn is the metrics handle
// of one that was piped.
func (o *tcpObs) end(code int, conn *metrics.TCPConn) {
	if code != 0 {
		version := ""
		if o.ep != nil {
			version = o.ep.Version
		}
		o.f.recordTCP(o.dir, o.service, version, o.mtls, o.peerIfInbound(), code, o.start)
		conn = o.open()
	}
	conn.Close()
	l := o.f.opts.AccessLog
	if l == nil {
		return
	}
	e := accesslog.Entry{StartTime: o.start, Duration: time.Since(o.start), Protocol: "tcp", BytesReceived: o.recv.Load(),
		BytesSent: o.sent.Load(), UpstreamCluster: o.cluster, SourceAddress: o.client.RemoteAddr().String(), ResponseFlags: o.flags.String()}
	if o.ep != nil {
		e.UpstreamHost = o.ep.Address
	}
	if o.mtls {
		if o.dir == Inbound {
			e.SourcePrincipal, e.DestinationPrincipal = o.peerPrincipal, o.f.opts.Self.Principal
		} else {
			e.SourcePrincipal, e.DestinationPrincipal = o.f.opts.Self.Principal, o.peerPrincipal
		}
	}
	l.Log(&e)
}

// pickTCPCluster picks the listener's cluster, by weight when it has
// several.
func pickTCPCluster(l *snapshot.Listener) string {
	if l.TCPCluster != "" || len(l.TCPClusters) == 0 {
		return l.TCPCluster
	}
	var total uint64
	for _, c := range l.TCPClusters {
		total += uint64(c.Weight)
	}
	if total == 0 {
		return l.TCPClusters[0].Name
	}
	n := rand.Uint64N(total)
	for _, c := range l.TCPClusters {
		if n < uint64(c.Weight) {
			return c.Name
		}
		n -= uint64(c.Weight)
	}
	return l.TCPClusters[len(l.TCPClusters)-1].Name
}

// pipe copies both ways between the client a and the upstream b; when one
// side finishes sending, the other's write half is closed so the end of
// stream travels through. Bytes are counted as they flow (o, and conn's
// metrics while the connection lives).
func (f *Forwarder) pipe(a, b net.Conn, o *tcpObs, conn *metrics.TCPConn) {
	var wg sync.WaitGroup
	wg.Add(2)
	cp := func(dst, src net.Conn, toClient bool) {
		defer wg.Done()
		var err error
		counted := conn != nil || f.opts.AccessLog != nil
		if counted && isTCP(dst) && isTCP(src) {
			// Two plaintext sockets: copy in chunks through an
			// io.LimitedReader, which dst.ReadFrom still splices
			// (zero-copy), and count each chunk after it.
			c := countReader{o: o, conn: conn, toClient: toClient}
			for {
				var n int64
				n, err = io.CopyN(dst, src, spliceChunk)
				c.count(int(n))
				if err != nil {
					break
				}
			}
			if err == io.EOF {
				err = nil
			}
		} else {
			var r io.Reader = src
			if counted {
				// Counting hides src's type from dst.ReadFrom: only
				// when someone reads it.
				r = &countReader{r: src, o: o, conn: conn, toClient: toClient}
			}
			buf := f.bufs.Get().(*[]byte)
			_, err = io.CopyBuffer(dst, r, *buf)
			f.bufs.Put(buf)
		}
		if err != nil {
			// A reset or timeout on one side ends both.
			a.Close()
			b.Close()
			return
		}
		closeWrite(dst)
	}
	go cp(a, b, true)
	go cp(b, a, false)
	wg.Wait()
}

// countReader counts the bytes read from one side of a TCP connection.
type countReader struct {
	r        io.Reader
	o        *tcpObs
	conn     *metrics.TCPConn
	toClient bool
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.count(n)
	return n, err
}

func (c *countReader) count(n int) {
	if n <= 0 {
		return
	}
	if c.toClient {
		c.o.sent.Add(int64(n))
		c.conn.Sent(n)
	} else {
		c.o.recv.Add(int64(n))
		c.conn.Received(n)
	}
}

// spliceChunk is how many bytes a spliced copy moves between two counts.
const spliceChunk = 256 << 10

func isTCP(c net.Conn) bool {
	_, ok := c.(*net.TCPConn)
	return ok
}

func closeWrite(c net.Conn) {
	switch v := c.(type) {
	case *net.TCPConn:
		_ = v.CloseWrite()
	case *tls.Conn:
		_ = v.CloseWrite()
	case interface{ CloseWrite() error }:
		_ = v.CloseWrite()
	default:
		_ = c.Close()
	}
}

func (f *Forwarder) recordTCP(dir Direction, service, version string, mtls bool, peer string, code int, start time.Time) {
	f.opts.Stats.Record(stats.EdgeKey{Direction: string(dir), Service: service, Version: version, MTLS: mtls, Peer: peer}, code, time.Since(start))
}
