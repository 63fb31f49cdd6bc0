package forward

import (
	"crypto/x509"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/proxy/accesslog"
	"github.com/weftmesh/weft/proxy/metrics"
	"github.com/weftmesh/weft/proxy/stats"
	"github.com/weftmesh/weft/proxy/telemetry"
	"github.com/weftmesh/weft/proxy/tracing"
)

// This file is what the data path tells the observers about each request:
// the edge counters (proxy/stats), Prometheus metrics, the access log, a
// span, and a tap sample. Everything is recorded once per request, at its
// end (done), from fields the handler and the exchange filled in as the
// request went; an observer that is off costs a nil check.

// Headers between the proxies. The outbound proxy names its workload (and
// version) to the inbound one over mutual TLS, for the source_workload
// and source_version labels only: the inbound proxy reads them only from
// an authenticated peer, always strips them, and never decides anything
// on them (the SPIFFE ID is the identity).
const (
	HeaderSourceWorkload = "X-Weft-Source-Workload"
	HeaderSourceVersion  = "X-Weft-Source-Version"
)

// flag is a set of Envoy response flags.
type flag uint16

const (
	flagOverflow flag = 1 << iota
	flagConnect
	flagRetryLimit
	flagNoRoute
	flagNoHealthy
	flagTimeout
	flagDelay
	flagFault
	flagRateLimited
	flagDownstream
	flagNoCluster
	flagUAEX
	flagDenied
)

// flagNames are in Envoy's order of the flags above.
var flagNames = [...]string{
	metrics.FlagOverflow, metrics.FlagUpstreamConnect, metrics.FlagRetryLimit, metrics.FlagNoRoute,
	metrics.FlagNoHealthy, metrics.FlagUpstreamTimeout, metrics.FlagDelayInjected, metrics.FlagFaultInjected,
	metrics.FlagRateLimited, metrics.FlagDownstreamConn, metrics.FlagNoCluster,
	metrics.FlagUnauthorizedExtern, metrics.FlagDenied,
}

// String is the response_flags value: "-", one flag (no allocation), or
// several joined with ",".
func (f flag) String() string {
	if f == 0 {
		return metrics.FlagNone
	}
	if f&(f-1) == 0 {
		for i := range flagNames {
			if f == 1<<i {
				return flagNames[i]
			}
		}
	}
	var b strings.Builder
	for i := range flagNames {
		if f&(1<<i) != 0 {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(flagNames[i])
		}
	}
	return b.String()
}

// flagOf is the flag of a local answer.
func flagOf(le *localError) flag {
	switch le {
	case errOverflow:
		return flagOverflow
	case errConnect:
		return flagConnect
	case errTimeout, errPerTryTimeout:
		return flagTimeout
	case errClientGone:
		return flagDownstream
	}
	return le.flag
}

// countingBody counts the request body bytes read (by the attempts, or a
// tunnel).
type countingBody struct {
	rc io.ReadCloser
	n  atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func (b *countingBody) Close() error { return b.rc.Close() }

// principals caches the SPIFFE ID string of peer certificates: a pooled
// connection's certificate is the same pointer for every request on it,
// so the URI is formatted once per connection, not per request. Bounded:
// past maxPrincipals entries it starts over.
type principals struct {
	m sync.Map // *x509.Certificate → string
	n atomic.Int32
}

const maxPrincipals = 4096

func (p *principals) of(c *x509.Certificate) string {
	if c == nil || len(c.URIs) != 1 {
		return ""
	}
	if v, ok := p.m.Load(c); ok {
		return v.(string)
	}
	s := c.URIs[0].String()
	if p.n.Add(1) > maxPrincipals {
		p.m.Clear()
		p.n.Store(0)
	}
	p.m.Store(c, s)
	return s
}

// peerCert is the verified client certificate of an inbound request.
func peerCert(r *http.Request) *x509.Certificate {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil
	}
	return r.TLS.PeerCertificates[0]
}

// namespaceOf returns the namespace of a SPIFFE ID
// spiffe://TD/ns/NAMESPACE/sa/NAME ("" if it has another shape).
func namespaceOf(principal string) string {
	_, rest, ok := strings.Cut(principal, "/ns/")
	if !ok {
		return ""
	}
	ns, _, ok := strings.Cut(rest, "/")
	if !ok {
		return ""
	}
	return ns
}

// serviceHosts maps every authority a service is reached by (without
// port: name.ns, name.ns.svc.cluster.local, ...) to its name.ns, for the
// inbound side, which sees the authority the client used.
type serviceHosts map[string]string

// SetServiceHosts replaces the host → service map the inbound side
// names its destination service by (call it at every snapshot swap).
func (f *Forwarder) SetServiceHosts(m map[string]string) { f.hosts.Store((*serviceHosts)(&m)) }

func (f *Forwarder) serviceOf(authority string) string {
	m := f.hosts.Load()
	if m == nil {
		return ""
	}
	host := authority
	if i := strings.LastIndexByte(host, ':'); i > 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	return (*m)[host]
}

// done records the finished request with every observer. It runs deferred,
// so a request ReverseProxy aborts (the client went away mid-response) is
// recorded too.
func (h *handler) done(x *exchange, r *http.Request) {
	f := h.f
	d := time.Since(x.start)
	code := x.sw.code
	if code == 0 && x.switched {
		code = http.StatusSwitchingProtocols // ReverseProxy wrote it on the hijacked connection
	}
	if !x.switched && r.Context().Err() != nil {
		x.sw.flags |= flagDownstream
	}
	inbound := h.dir == Inbound
	var (
		version, workload string // of the endpoint that served (outbound)
		peerPrincipal     string // the other side's verified SPIFFE ID
		mtls              bool
	)
	if x.ep != nil {
		version, workload = x.ep.Version, x.ep.Workload
	}
	if inbound {
		mtls = r.TLS != nil
		peerPrincipal = x.peerPrincipal
	} else {
		mtls = x.cluster != nil && x.cluster.TLS != nil
		peerPrincipal = f.principals.of(x.upCert)
	}
	if x.edge {
		sc := code
		if sc == 0 {
			sc = http.StatusBadGateway
		}
		k := stats.EdgeKey{Direction: string(h.dir), Service: x.service, Version: version, MTLS: mtls}
		if inbound {
			k.Peer = peerPrincipal
		}
		f.opts.Stats.Record(k, sc, d)
	}

	flags := x.sw.flags
	var grpcStatus string
	if x.grpc {
		hdr := x.sw.Header()
		if grpcStatus = hdr.Get("Grpc-Status"); grpcStatus == "" {
			if v := hdr[http.TrailerPrefix+"Grpc-Status"]; len(v) > 0 {
				grpcStatus = v[0]
			}
		}
	}
	service := x.service
	if inbound {
		service = f.serviceOf(r.Host)
	}
	var reqBytes int64
	if x.reqBody.rc != nil {
		reqBytes = x.reqBody.n.Load()
	}

	if m := f.opts.Metrics; m != nil {
		ri := metrics.RequestInfo{Reporter: metrics.Source, Service: service, Protocol: metrics.ProtocolHTTP,
			ResponseCode: code, GRPCStatus: grpcStatus, ResponseFlags: flags.String(), MTLS: mtls, Duration: d,
			RequestBytes: reqBytes, ResponseBytes: x.sw.bytes}
		if x.grpc {
			ri.Protocol = metrics.ProtocolGRPC
		}
		if inbound {
			ri.Reporter = metrics.Destination
			ri.Peer = metrics.Peer{Workload: x.peerWorkload, Namespace: namespaceOf(peerPrincipal), Principal: peerPrincipal, Version: x.peerVersion}
		} else if x.ep != nil {
			_, ns, _ := strings.Cut(service, ".")
			ri.Peer = metrics.Peer{Workload: workload, Namespace: ns, Principal: peerPrincipal, Version: version}
		}
		m.Request(ri)
	}

	var traceID string
	if x.span != nil {
		if f.opts.AccessLog != nil {
			traceID = x.span.TraceID()
		}
		if x.span.Recording() {
			attrs := []tracing.Attr{tracing.String(tracing.AttrDirection, string(h.dir)),
				tracing.String(tracing.AttrResponseFlags, flags.String())}
			if x.cluster != nil {
				attrs = append(attrs, tracing.String(tracing.AttrUpstreamCluster, x.cluster.Name))
			}
			if x.ep != nil {
				attrs = append(attrs, tracing.String(tracing.AttrUpstreamHost, x.ep.Address))
			}
			if peerPrincipal != "" {
				attrs = append(attrs, tracing.String(tracing.AttrPeerPrincipal, peerPrincipal))
			}
			if mtls && f.opts.Self.Principal != "" {
				attrs = append(attrs, tracing.String(tracing.AttrSelfPrincipal, f.opts.Self.Principal))
			}
			if id := r.Header.Get("X-Request-Id"); id != "" {
				attrs = append(attrs, tracing.String(tracing.AttrRequestID, id))
			}
			if grpcStatus != "" {
				attrs = append(attrs, tracing.String("rpc.grpc.status_code", grpcStatus))
			}
			x.span.End(code, attrs...)
		}
	}

	if l := f.opts.AccessLog; l != nil {
		e := accesslog.Entry{StartTime: x.start, Duration: d, Method: r.Method, Authority: r.Host, Path: r.URL.RequestURI(),
			Protocol: "HTTP/1.1", Status: code, GRPCStatus: grpcStatus, BytesReceived: reqBytes, BytesSent: x.sw.bytes,
			SourceAddress: r.RemoteAddr, RequestID: r.Header.Get("X-Request-Id"), TraceID: traceID,
			ResponseFlags: flags.String(), UserAgent: r.Header.Get("User-Agent"), XForwardedFor: r.Header.Get("X-Forwarded-For")}
		if r.ProtoMajor == 2 {
			e.Protocol = "HTTP/2"
		}
		if x.rt != nil {
			e.RouteName = x.rt.Name
		}
		if x.cluster != nil {
			e.UpstreamCluster = x.cluster.Name
		}
		if x.ep != nil {
			e.UpstreamHost = x.ep.Address
		}
		if mtls {
			if inbound {
				e.SourcePrincipal, e.DestinationPrincipal = peerPrincipal, f.opts.Self.Principal
			} else {
				e.SourcePrincipal, e.DestinationPrincipal = f.opts.Self.Principal, peerPrincipal
			}
		}
		l.Log(&e)
	}

	if t := f.opts.Telemetry; t.Tapping() {
		s := telemetry.Sample{Time: x.start, Direction: string(h.dir), Method: r.Method, Authority: r.Host, Path: r.URL.Path,
			Status: code, LatencyMS: float64(d) / float64(time.Millisecond), Destination: service, Version: version, MTLS: mtls}
		if inbound {
			s.Source, s.Version = x.peerWorkload, f.opts.Self.Version
			if s.Source == "" {
				s.Source = peerPrincipal
			}
			if s.Destination == "" {
				s.Destination = f.opts.Self.Workload
			}
		} else {
			s.Source = f.opts.Self.Workload
		}
		t.Sample(s)
	}
}

// inboundPeer reads who sent an inbound request: the SPIFFE ID of its
// verified certificate and, only then, the workload and version its proxy
// named. The headers are removed either way: the app never sees them.
func (h *handler) inboundPeer(x *exchange, r *http.Request) {
	wl, hasWL := r.Header[HeaderSourceWorkload]
	v, hasV := r.Header[HeaderSourceVersion]
	if hasWL {
		delete(r.Header, HeaderSourceWorkload)
	}
	if hasV {
		delete(r.Header, HeaderSourceVersion)
	}
	c := peerCert(r)
	if c == nil {
		return
	}
	x.peerPrincipal = h.f.principals.of(c)
	if len(wl) > 0 {
		x.peerWorkload = wl[0]
	}
	if len(v) > 0 {
		x.peerVersion = v[0]
	}
}

// startSpan starts the request's span when tracing is on: it rewrites
// the trace headers so the next hop (the peer's proxy, or the app) sees
// this span as its parent.
func (h *handler) startSpan(x *exchange, r *http.Request) {
	if h.f.opts.Tracer == nil {
		return
	}
	tr := h.f.opts.Tracer()
	if tr == nil {
		return
	}
	kind := tracing.KindClient
	if h.dir == Inbound {
		kind = tracing.KindServer
	}
	x.span = tr.Start(r.Header, kind, r.Method)
	if x.span.Recording() {
		x.span.SetAttributes(tracing.RequestAttributes(r)...)
	}
}
