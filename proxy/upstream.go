package proxy

import (
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/proxy/forward"
	"github.com/weftmesh/weft/proxy/snapshot"
)

// upstreamPort is a local port for one service. Each connection goes where
// the service's protocol says, decided at accept time from the current
// config: an HTTP service to the HTTP server (routing with the service as
// authority), an opaque TCP service to a cluster: the one its unbound
// outbound-tcp listener picks (by weight, per connection) when there is
// one, else its cluster by naming convention.
type upstreamPort struct {
	net.Listener
	host        string
	cluster     string
	tcpListener string
	current     func() *snapshot.Snapshot
	fwd         *forward.Forwarder
	httpc       chan net.Conn
	done        chan struct{}
	once        sync.Once
}

func newUpstreamPort(ln net.Listener, host string, current func() *snapshot.Snapshot, fwd *forward.Forwarder) *upstreamPort {
	u := &upstreamPort{Listener: ln, host: host, current: current, fwd: fwd,
		httpc: make(chan net.Conn), done: make(chan struct{})}
	name, port := host, uint32(80)
	if h, p, err := net.SplitHostPort(host); err == nil {
		if n, err := strconv.ParseUint(p, 10, 16); err == nil {
			name, port = h, uint32(n)
		}
	}
	if svc, ns, ok := strings.Cut(strings.TrimSuffix(name, ".svc.cluster.local"), "."); ok {
		u.cluster = xdsmeta.OutboundCluster(svc, ns, port)
		u.tcpListener = xdsmeta.OutboundTCPListener(svc, ns, port)
	}
	go u.acceptLoop()
	return u
}

// isTCP reports whether the service is opaque TCP now: it has a cluster but
// no HTTP virtual host.
func (u *upstreamPort) isTCP() bool {
	s := u.current()
	if s == nil || u.cluster == "" || s.Clusters[u.cluster] == nil {
		return false
	}
	if l := s.Listeners[xdsmeta.OutboundListener]; l != nil {
		if t := s.RouteTable(l); t != nil && t.VirtualHost(u.host) != nil {
			return false
		}
	}
	return true
}

// hasTCPListener reports whether the config has the service's TCP
// listener (outbound-tcp|PORT||NAME.NS).
func (u *upstreamPort) hasTCPListener() bool {
	s := u.current()
	if s == nil || u.tcpListener == "" {
		return false
	}
	l := s.Listeners[u.tcpListener]
	return l != nil && l.IsTCP()
}

func (u *upstreamPort) acceptLoop() {
	for {
		c, err := u.Listener.Accept()
		if err != nil {
			u.once.Do(func() { close(u.done) })
			return
		}
		if u.hasTCPListener() {
			go u.fwd.ServeTCP(c, u.tcpListener, "", forward.Outbound)
			continue
		}
		if u.isTCP() {
			go u.fwd.ServeTCP(c, "", u.cluster, forward.Outbound)
			continue
		}
		select {
		case u.httpc <- c:
		case <-u.done:
			c.Close()
			return
		}
	}
}

// Accept hands the HTTP server its connections.
func (u *upstreamPort) Accept() (net.Conn, error) {
	select {
	case c := <-u.httpc:
		return c, nil
	case <-u.done:
		return nil, net.ErrClosed
	}
}

func (u *upstreamPort) Close() error {
	err := u.Listener.Close()
	u.once.Do(func() { close(u.done) })
	return err
}
