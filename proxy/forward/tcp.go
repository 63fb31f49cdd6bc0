package forward

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/proxy/balancer"
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
	start := time.Now()
	if tc, ok := c.(*tls.Conn); ok {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			f.opts.Logger.Debug("inbound TLS handshake failed", "listener", listener, "remote", c.RemoteAddr().String(), "error", err)
			return
		}
	}
	snap := f.opts.Snapshot()
	if snap == nil {
		return
	}
	if cluster == "" {
		l := snap.Listeners[listener]
		if l == nil || !l.IsTCP() {
			return
		}
		cluster = pickTCPCluster(l)
	}
	service := cluster
	if name, ns, _, ok := xdsmeta.ParseOutboundCluster(cluster); ok {
		service = name + "." + ns
	}
	cl := snap.Clusters[cluster]
	if cl == nil {
		f.recordTCP(dir, service, "", false, 500, start)
		f.opts.Logger.Debug("TCP: no such cluster", "cluster", cluster)
		return
	}
	ep := cl.Picker.PickFor(balancer.Request{})
	if ep == nil {
		f.recordTCP(dir, service, "", cl.TLS != nil, 503, start)
		f.opts.Logger.Debug("TCP: no healthy upstream", "cluster", cluster)
		return
	}
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
			}
		}
	}
	cancel()
	done := ep.Begin()
	if err != nil {
		done(balancer.ResultConnectFailure)
		f.recordTCP(dir, service, ep.Version, cl.TLS != nil, 503, start)
		f.opts.Logger.Debug("TCP: upstream connect failed", "cluster", cluster, "endpoint", ep.Address, "error", err)
		return
	}
	defer up.Close()
	f.recordTCP(dir, service, ep.Version, cl.TLS != nil, 200, start)
	f.pipe(c, up)
	done(balancer.ResultSuccess)
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

// pipe copies both ways; when one side finishes sending, the other's write
// half is closed so the end of stream travels through.
func (f *Forwarder) pipe(a, b net.Conn) {
	var wg sync.WaitGroup
	wg.Add(2)
	cp := func(dst, src net.Conn) {
		defer wg.Done()
		buf := f.bufs.Get().(*[]byte)
		_, err := io.CopyBuffer(dst, src, *buf)
		f.bufs.Put(buf)
		if err != nil {
			// A reset or timeout on one side ends both.
			a.Close()
			b.Close()
			return
		}
		closeWrite(dst)
	}
	go cp(a, b)
	go cp(b, a)
	wg.Wait()
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

func (f *Forwarder) recordTCP(dir Direction, service, version string, mtls bool, code int, start time.Time) {
	f.opts.Stats.Record(stats.EdgeKey{Direction: string(dir), Service: service, Version: version, MTLS: mtls}, code, time.Since(start))
}
