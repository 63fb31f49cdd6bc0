// Package proxy wires Weft's sidecar together: the xDS client that keeps
// the config current, the compiled snapshot swapped atomically on every
// accepted update, the listener pool, the HTTP forwarder, the admin server
// and (optionally) the supervised application.
//
// Startup: bind the admin and local upstream ports, connect to the control
// plane, register the workload through the node metadata, and wait for the
// first complete config (listeners, routes, clusters, endpoints). Only then
// is the proxy ready and the app started. A lost control plane changes
// nothing: the proxy keeps serving its last config and reconnects.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"crypto/tls"
	"crypto/x509"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/proxy/accesslog"
	"github.com/weftmesh/weft/proxy/admin"
	"github.com/weftmesh/weft/proxy/authz"
	"github.com/weftmesh/weft/proxy/balancer"
	"github.com/weftmesh/weft/proxy/enroll"
	"github.com/weftmesh/weft/proxy/forward"
	"github.com/weftmesh/weft/proxy/identity"
	"github.com/weftmesh/weft/proxy/listener"
	"github.com/weftmesh/weft/proxy/metrics"
	"github.com/weftmesh/weft/proxy/snapshot"
	"github.com/weftmesh/weft/proxy/stats"
	"github.com/weftmesh/weft/proxy/telemetry"
	"github.com/weftmesh/weft/proxy/tracing"
	"github.com/weftmesh/weft/proxy/xdsclient"
	"github.com/weftmesh/weft/proxy/xdsresource"
)

// Version is the proxy's build version.
var Version = "dev"

// Inbound is one port the proxy accepts mesh traffic on for an app port.
type Inbound struct {
	Port     uint32
	AppPort  uint32
	Protocol string
	// AppAddress is the IP the app listens on ("" means 127.0.0.1).
	AppAddress string
}

// Upstream is a local port that reaches one service: requests to Listen
// are routed as if sent to Host.
type Upstream struct {
	Host   string
	Listen string
}

// Options configure a Proxy.
type Options struct {
	ControlPlane string
	Workload     string
	Namespace    string
	Labels       map[string]string
	// Address is the IP other proxies reach the inbound ports on.
	Address   string
	Inbound   []Inbound
	Outbound  string
	Upstreams []Upstream
	Admin     string
	Logger    *slog.Logger

	// Identity: the workload's identity (SPIFFE ID
	// spiffe://TrustDomain/ns/Namespace/sa/Identity), how it proves it
	// (Token, the first time) and how it authenticates the control plane
	// (CAPin or CARoots).
	TrustDomain string
	Identity    string
	Token       string
	CAPin       string
	CARoots     []*x509.Certificate
	// Issuer is the control plane's certificate issuer (host:port).
	Issuer string

	// AccessLog is where the access log goes ("-" for stdout); "" : off.
	// AccessLogFields chooses and orders its fields (all if empty).
	AccessLog       string
	AccessLogFields []string
	// Tracing, when its Endpoint is set, exports spans there whatever the
	// xDS config says (a workload outside a configured mesh).
	Tracing TracingOverride
	// TelemetryInterval is how often counters are pushed to the control
	// plane (default 2s).
	TelemetryInterval time.Duration
}

// Proxy is a running sidecar. Its methods are safe for concurrent use.
type Proxy struct {
	opts      Options
	log       *slog.Logger
	current   atomic.Pointer[snapshot.Snapshot]
	pool      *balancer.Pool
	listeners *listener.Pool
	fwd       *forward.Forwarder
	stats     *stats.Stats
	client    *xdsclient.Client
	source    *identity.Source
	rotator   *identity.Rotator
	enroller  *enroll.Client

	// Observability: self is this proxy's workload in every label.
	self      metrics.Peer
	metrics   *metrics.Metrics
	accessLog *accesslog.Logger
	tracers   tracers
	pusher    *telemetry.Pusher

	// authzClient sends ext_authz Checks (authz.Options.ExtAuthz).
	authzClient func(ctx context.Context, cluster string, req *authz.Request) (authz.Decision, error)

	// res is the accepted resources; only the xDS handler touches it.
	res snapshot.Resources
	// desiredRoutes are the route configurations last received; res.Routes
	// may hold older ones while new clusters warm.
	desiredRoutes map[string]*xdsresource.RouteConfiguration
	received      map[string]bool

	readyOnce sync.Once
	ready     chan struct{}

	adminLn     net.Listener
	upstreamLns []net.Listener
	servers     []*http.Server
}

// New validates the options and returns a proxy; Start binds its ports.
func New(opts Options) (*Proxy, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	var errs []string
	if opts.ControlPlane == "" {
		errs = append(errs, "--control-plane is required (the control plane's xDS address, e.g. 127.0.0.1:15010)")
	}
	if opts.Workload == "" {
		errs = append(errs, "--workload is required (this instance's name, unique in its namespace)")
	}
	if opts.Namespace == "" {
		errs = append(errs, "--namespace is required")
	}
	if opts.Address != "" && net.ParseIP(opts.Address) == nil {
		errs = append(errs, fmt.Sprintf("--address %q is not an IP address", opts.Address))
	}
	for _, in := range opts.Inbound {
		if in.Port == 0 || in.AppPort == 0 || in.Port > 65535 || in.AppPort > 65535 {
			errs = append(errs, "--inbound ports must be between 1 and 65535")
		}
	}
	for _, u := range opts.Upstreams {
		if u.Host == "" || u.Listen == "" {
			errs = append(errs, "--upstream takes HOST[:PORT]=LISTEN_ADDR, e.g. catalog.shop=127.0.0.1:9001")
		}
	}
	td, err := spiffeid.TrustDomainFromString(opts.TrustDomain)
	if err != nil {
		errs = append(errs, fmt.Sprintf("--trust-domain %q: %v", opts.TrustDomain, err))
	}
	var id spiffeid.ID
	if err == nil {
		if id, err = spiffeid.FromSegments(td, "ns", opts.Namespace, "sa", opts.Identity); err != nil {
			errs = append(errs, fmt.Sprintf("--identity %q: %v", opts.Identity, err))
		}
	}
	if opts.Issuer == "" {
		errs = append(errs, "--issuer is required (the control plane's certificate issuer, e.g. 127.0.0.1:15012)")
	}
	if r := opts.Tracing.SampleRate; !(r >= 0 && r <= 1) {
		errs = append(errs, "--tracing-sample-rate must be between 0 and 1")
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("proxy: %s", strings.Join(errs, "; "))
	}
	p := &Proxy{
		opts: opts,
		log:  opts.Logger,
		pool: balancer.NewPool(),

		stats:    stats.New(),
		received: map[string]bool{},
		ready:    make(chan struct{}),
		res: snapshot.Resources{
			Listeners: map[string]*xdsresource.Listener{},
			Routes:    map[string]*xdsresource.RouteConfiguration{},
			Clusters:  map[string]*xdsresource.Cluster{},
			Endpoints: map[string]*xdsresource.ClusterLoadAssignment{},
			Secrets:   map[string]*xdsresource.Secret{},
			Versions:  map[string]string{},
		},
	}
	// Endpoints are tiered by how much of the proxy's own locality they share.
	p.pool.SetLocality(balancer.LocalityFromLabels(opts.Labels))

	if p.source, err = identity.NewSource(td); err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	p.enroller, err = enroll.New(enroll.Options{Issuer: opts.Issuer, Workload: opts.Workload, Token: opts.Token,
		Pin: opts.CAPin, Roots: opts.CARoots, Source: p.source, TrustDomain: td})
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	p.self = metrics.Peer{Workload: opts.Workload, Namespace: opts.Namespace, Principal: id.String(), Version: opts.Labels["version"]}
	p.metrics = metrics.New(p.self, metrics.Options{})
	if opts.AccessLog != "" {
		if p.accessLog, err = accesslog.New(accesslog.Options{Path: opts.AccessLog, Fields: opts.AccessLogFields}); err != nil {
			return nil, fmt.Errorf("proxy: --access-log: %w", err)
		}
	}
	p.metrics.ObserveAccessLog(func() metrics.AccessLogCounts {
		st := p.accessLog.Stats() // zero without an access log
		return metrics.AccessLogCounts{QueueFull: st.Dropped, WriteError: st.WriteErrors}
	})
	p.metrics.ObserveSpans(func() metrics.SpanCounts {
		st := p.tracers.counters.Stats() // every tracer this proxy had
		return metrics.SpanCounts{Exported: st.Exported, QueueFull: st.Dropped, ExportFailed: st.Failed}
	})
	if o := opts.Tracing; o.Endpoint != "" {
		tr, err := p.newTracer(o.Protocol, []string{o.Endpoint}, 0, o.SampleRate, "")
		if err != nil {
			p.closeObservers()
			return nil, fmt.Errorf("proxy: --tracing-endpoint: %w", err)
		}
		p.tracers.cur.Store(tr)
	}

	// Counters and tap samples go to the control plane's issuer, over
	// mutual TLS with the SVID (pushing starts after the first one).
	p.pusher = telemetry.New(telemetry.Options{
		URL:       "https://" + opts.Issuer + telemetry.Path,
		TLS:       p.source.ClientConfig(identity.ClientOptions{AllowedIDs: []spiffeid.ID{p.enroller.ControlPlaneID()}}),
		Stats:     p.stats,
		Workload:  opts.Workload,
		Namespace: opts.Namespace,
		Labels:    opts.Labels,
		AdminAddr: p.AdminAddr,
		Interval:  opts.TelemetryInterval,
		Logger:    opts.Logger.With("component", "telemetry"),
	})
	p.listeners = listener.NewPool(listener.Options{
		Logger: opts.Logger.With("component", "listener"),
		TLS: func(alpn []string) *tls.Config {
			return p.source.ServerConfig(identity.ServerOptions{NextProtos: alpn})
		},
		Reject: p.source.CountPlaintext,
		TCP: func(name string, c net.Conn) {
			p.fwd.ServeTCP(c, name, "", forward.Inbound)
		},
	})
	p.fwd = forward.New(forward.Options{
		Snapshot:  p.current.Load,
		Stats:     p.stats,
		Logger:    opts.Logger.With("component", "forward"),
		Metrics:   p.metrics,
		AccessLog: p.accessLog,
		Tracer:    p.tracers.cur.Load,
		Telemetry: p.pusher,
		Self:      p.self,
		ClientTLS: func(allowed, alpn []string) *tls.Config {
			ids := make([]spiffeid.ID, 0, len(allowed))
			for _, a := range allowed {
				if id, err := spiffeid.FromString(a); err == nil {
					ids = append(ids, id)
				}
			}
			return p.source.ClientConfig(identity.ClientOptions{AllowedIDs: ids, NextProtos: alpn})
		},
	})
	// ext_authz Checks go to the endpoints of the authorizer's STATIC
	// cluster in the current config, plaintext HTTP/2.
	p.authzClient = authz.NewExtAuthzClient(p.dialAuthz)
	p.rotator, err = identity.NewRotator(identity.RotatorOptions{
		Source: p.source,
		ID:     id,
		Fetch: func(ctx context.Context, csr []byte) ([]*x509.Certificate, error) {
			chain, bundle, err := p.enroller.Fetch(ctx, csr)
			if err != nil {
				return nil, err
			}
			if err := p.source.SetBundle(bundle); err != nil {
				return nil, err
			}
			return chain, nil
		},
		Logger: opts.Logger.With("component", "identity"),
	})
	if err != nil {
		p.closeObservers()
		return nil, fmt.Errorf("proxy: %w", err)
	}
	client, err := xdsclient.New(xdsclient.Options{
		Server:  opts.ControlPlane,
		TLS:     p.source.ClientConfig(identity.ClientOptions{AllowedIDs: []spiffeid.ID{p.enroller.ControlPlaneID()}, NextProtos: []string{"h2"}}),
		Node:    p.node(),
		Handler: p,
		Logger:  opts.Logger.With("component", "xds"),
	})
	if err != nil {
		p.closeObservers()
		return nil, fmt.Errorf("proxy: %w", err)
	}
	p.client = client
	return p, nil
}

func (p *Proxy) node() xdsclient.Node {
	labels := map[string]any{}
	for k, v := range p.opts.Labels {
		labels[k] = v
	}
	inbound := []any{}
	for _, in := range p.opts.Inbound {
		proto := in.Protocol
		if proto == "" {
			proto = xdsmeta.ProtocolHTTP
		}
		entry := map[string]any{
			xdsmeta.InboundPort:     float64(in.Port),
			xdsmeta.InboundAppPort:  float64(in.AppPort),
			xdsmeta.InboundProtocol: proto,
		}
		if in.AppAddress != "" {
			entry[xdsmeta.InboundAppAddress] = in.AppAddress
		}
		inbound = append(inbound, entry)
	}
	md := map[string]any{
		xdsmeta.MetaWorkload:     p.opts.Workload,
		xdsmeta.MetaNamespace:    p.opts.Namespace,
		xdsmeta.MetaLabels:       labels,
		xdsmeta.MetaAddress:      p.opts.Address,
		xdsmeta.MetaInbound:      inbound,
		xdsmeta.MetaOutbound:     p.opts.Outbound,
		xdsmeta.MetaProxyVersion: Version,
		xdsmeta.MetaIdentity:     p.opts.Identity,
	}
	return xdsclient.Node{
		ID:               xdsmeta.NodeID(p.opts.Workload, p.opts.Namespace),
		Cluster:          p.opts.Namespace,
		Metadata:         md,
		UserAgentVersion: Version,
	}
}

// Ready is closed once the first complete config is applied.
func (p *Proxy) Ready() <-chan struct{} { return p.ready }

// Snapshot returns the current config (nil before the first).
func (p *Proxy) Snapshot() *snapshot.Snapshot { return p.current.Load() }

// Stats returns the proxy's traffic counters.
func (p *Proxy) Stats() *stats.Stats { return p.stats }

// Metrics returns the proxy's Prometheus metrics.
func (p *Proxy) Metrics() *metrics.Metrics { return p.metrics }

// Tracer returns the current tracer (nil while tracing is off).
func (p *Proxy) Tracer() *tracing.Tracer { return p.tracers.cur.Load() }

// AdminAddr returns the bound admin address ("" if none).
func (p *Proxy) AdminAddr() string {
	if p.adminLn == nil {
		return ""
	}
	return p.adminLn.Addr().String()
}

// Start binds the admin and local upstream ports. It fails fast on a port
// that is taken.
func (p *Proxy) Start() error {
	if p.opts.Admin != "" {
		ln, err := net.Listen("tcp", p.opts.Admin)
		if err != nil {
			return fmt.Errorf("proxy: admin listener: %w", err)
		}
		p.adminLn = ln
		srv := &http.Server{Handler: admin.New(admin.Options{
			Ready:     p.isReady,
			Snapshot:  p.current.Load,
			Stats:     p.stats,
			XDS:       func() any { return p.client.Status() },
			Listeners: p.listeners.Addrs,
			Identity:  p.identityStatus,
			Metrics:   p.metrics.Handler(),
		}), ReadHeaderTimeout: 10 * time.Second}
		p.servers = append(p.servers, srv)
		go srv.Serve(ln)
	}
	for _, u := range p.opts.Upstreams {
		ln, err := net.Listen("tcp", u.Listen)
		if err != nil {
			p.closeListeners()
			return fmt.Errorf("proxy: upstream %s: %w", u.Host, err)
		}
		p.upstreamLns = append(p.upstreamLns, ln)
		srv := listener.NewServer(p.fwd.Handler(xdsmeta.OutboundListener, forward.Outbound, u.Host))
		p.servers = append(p.servers, srv)
		go srv.Serve(newUpstreamPort(ln, u.Host, p.current.Load, p.fwd))
		p.log.Info("upstream port bound", "host", u.Host, "address", ln.Addr().String())
	}
	return nil
}

// IdentityStatus is the proxy's certificate and refused peers.
type IdentityStatus struct {
	SPIFFEID   string            `json:"spiffeId"`
	Serial     string            `json:"serial"`
	NotAfter   time.Time         `json:"notAfter"`
	Ready      bool              `json:"ready"`
	Rejections map[string]uint64 `json:"rejections"`
}

func (p *Proxy) identityStatus() any {
	id, notAfter, serial := p.source.SVID()
	st := IdentityStatus{NotAfter: notAfter, Ready: p.source.Ready(), Rejections: p.source.Rejections()}
	if !id.IsZero() {
		st.SPIFFEID = id.String()
	}
	if serial != nil {
		st.Serial = serial.Text(16)
	}
	return st
}

func (p *Proxy) closeListeners() {
	for _, ln := range p.upstreamLns {
		ln.Close()
	}
	if p.adminLn != nil {
		p.adminLn.Close()
	}
}

func (p *Proxy) isReady() bool {
	select {
	case <-p.ready:
		return true
	default:
		return false
	}
}

// Run keeps the proxy connected to the control plane until ctx ends, then
// drains: listeners stop accepting and in-flight requests get up to
// drainTimeout to finish.
func (p *Proxy) Run(ctx context.Context, drainTimeout time.Duration) error {
	// The first certificate comes before anything else: without it the
	// control plane does not serve the proxy, and peers refuse it.
	if err := p.rotator.Initial(ctx); err != nil {
		p.Shutdown(drainTimeout)
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("proxy: no certificate: %w", err)
	}
	sid, notAfter, _ := p.source.SVID()
	p.log.Info("certificate obtained", "id", sid.String(), "expires", notAfter)
	go p.rotator.Run(ctx)
	go p.pollHealth(ctx)
	pushCtx, stopPush := context.WithCancel(ctx)
	pushDone := make(chan struct{})
	go func() { defer close(pushDone); p.pusher.Run(pushCtx) }()
	defer func() { stopPush(); <-pushDone }()
	p.client.Subscribe(xdsresource.ClusterType, nil)
	p.client.Subscribe(xdsresource.ListenerType, nil)
	p.client.Subscribe(xdsresource.SecretType, []string{xdsmeta.TrustBundleSecret})
	err := p.client.Run(ctx)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	p.Shutdown(drainTimeout)
	return err
}

// Shutdown stops every listener, waiting up to timeout for requests in
// flight.
func (p *Proxy) Shutdown(timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	p.listeners.Shutdown(ctx)
	for _, s := range p.servers {
		if err := s.Shutdown(ctx); err != nil {
			s.Close()
		}
	}
	p.fwd.Close()
	p.closeObservers()
}

// closeObservers writes out the access log and the spans still queued.
// Safe to call more than once.
func (p *Proxy) closeObservers() {
	if err := p.accessLog.Close(); err != nil {
		p.log.Warn("access log", "error", err)
	}
	if tr := p.tracers.cur.Swap(nil); tr != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tr.Shutdown(ctx); err != nil {
			p.log.Warn("tracing: spans lost at shutdown", "error", err)
		}
	}
}

// OnResources implements xdsclient.Handler: decode and validate every
// resource; any error rejects the whole response (NACK) and the last good
// config keeps serving.
func (p *Proxy) OnResources(typeURL, version string, resources [][]byte) error {
	if err := p.onResources(typeURL, version, resources); err != nil {
		p.metrics.NACK(typeShort(typeURL))
		return err
	}
	p.metrics.SetConfigVersion(typeShort(typeURL), version)
	return nil
}

func (p *Proxy) onResources(typeURL, version string, resources [][]byte) error {
	next := p.res
	var (
		denied    map[string]string // listeners switched to deny-all
		decodeErr error             // why (a NACK, though the update is applied)
	)
	switch typeURL {
	case xdsresource.ListenerType:
		m := make(map[string]*xdsresource.Listener, len(resources))
		var hardErr error
		for _, b := range resources {
			name, v, err := xdsresource.Decode(typeURL, b)
			if err == nil {
				m[name] = v.(*xdsresource.Listener)
				continue
			}
			if name == "" || !carriesAuthz(b) {
				hardErr = errors.Join(hardErr, err)
				continue
			}
			// Its authorization cannot be honoured: deny on it (with
			// the listener last accepted, if any) rather than keep
			// serving an older policy.
			decodeErr = errors.Join(decodeErr, err)
			if denied == nil {
				denied = map[string]string{}
			}
			denied[name] = "listener update rejected"
			if old := p.res.Listeners[name]; old != nil {
				m[name] = old
			}
		}
		if hardErr != nil {
			if len(denied) > 0 {
				p.denyListeners(denied)
			}
			return errors.Join(hardErr, decodeErr)
		}
		next.Listeners = m
		next.Denied = denied
	case xdsresource.RouteType:
		m := make(map[string]*xdsresource.RouteConfiguration, len(resources))
		for _, b := range resources {
			rc, err := xdsresource.DecodeRouteConfiguration(b)
			if err != nil {
				return err
			}
			m[rc.Name] = rc
		}
		p.desiredRoutes = m
	case xdsresource.ClusterType:
		m := make(map[string]*xdsresource.Cluster, len(resources))
		for _, b := range resources {
			c, err := xdsresource.DecodeCluster(b)
			if err != nil {
				return err
			}
			m[c.Name] = c
		}
		next.Clusters = m
	case xdsresource.SecretType:
		m := make(map[string]*xdsresource.Secret, len(resources))
		for _, b := range resources {
			sec, err := xdsresource.DecodeSecret(b)
			if err != nil {
				return err
			}
			m[sec.Name] = sec
		}
		if sec := m[xdsmeta.TrustBundleSecret]; sec != nil {
			b, err := x509bundle.Parse(p.source.TrustDomain(), sec.TrustedCA)
			if err != nil {
				return fmt.Errorf("proxy: secret %s: %w", sec.Name, err)
			}
			roots := b.X509Authorities()
			if err := p.source.SetBundle(roots); err != nil {
				return fmt.Errorf("proxy: secret %s: %w", sec.Name, err)
			}
			p.log.Info("trust bundle updated", "roots", len(roots))
		}
		next.Secrets = m
	case xdsresource.EndpointType:
		m := make(map[string]*xdsresource.ClusterLoadAssignment, len(resources))
		for _, b := range resources {
			cla, err := xdsresource.DecodeClusterLoadAssignment(b)
			if err != nil {
				return err
			}
			m[cla.ClusterName] = cla
		}
		next.Endpoints = m
	default:
		return fmt.Errorf("proxy: unexpected resource type %s", typeURL)
	}
	if p.desiredRoutes != nil {
		next.Routes = effectiveRoutes(p.desiredRoutes, p.res.Routes, next.Clusters, next.Endpoints)
	}
	next.Versions = maps.Clone(p.res.Versions)
	next.Versions[typeURL] = version

	snap, err := snapshot.CompileWith(&next, p.pool, p.compileOptions())
	var nack error
	switch {
	case err == nil:
	case snapshot.IsAuthzOnly(err):
		// Usable: the listeners it names deny every request. Rejected
		// (NACK) when it came with this listener update; an older
		// listener's failure was reported when it arrived.
		if typeURL == xdsresource.ListenerType {
			nack = fmt.Errorf("proxy: %w", err)
			p.log.Warn("authorization config rejected: listeners deny every request", "error", err)
		}
	default:
		return fmt.Errorf("proxy: %w", err)
	}
	if decodeErr != nil {
		nack = errors.Join(decodeErr, nack)
	}
	if typeURL == xdsresource.ListenerType {
		if err := p.listeners.Reconcile(snap, p.listenerHandler); err != nil {
			return err
		}
	}
	p.current.Store(snap)
	p.fwd.Retain(snap)
	p.observeSnapshot(&next, snap)
	p.res = next
	p.received[typeURL] = true

	switch typeURL {
	case xdsresource.ClusterType:
		p.client.Subscribe(xdsresource.EndpointType, nonNil(snapshot.EDSNames(next.Clusters)))
	case xdsresource.ListenerType:
		p.client.Subscribe(xdsresource.RouteType, nonNil(snapshot.RDSNames(next.Listeners)))
	}
	p.checkReady()
	return nack
}

// nonNil keeps an empty subscription explicit (not a wildcard).
func nonNil(names []string) []string {
	if names == nil {
		return []string{}
	}
	return names
}

func (p *Proxy) listenerHandler(l *snapshot.Listener) http.Handler {
	dir := forward.Inbound
	if l.Name == xdsmeta.OutboundListener {
		dir = forward.Outbound
	}
	return p.fwd.Handler(l.Name, dir, "")
}

// checkReady closes ready once listeners and clusters arrived, and routes
// and endpoints did too when anything refers to them.
func (p *Proxy) checkReady() {
	if !p.received[xdsresource.ListenerType] || !p.received[xdsresource.ClusterType] {
		return
	}
	if len(snapshot.RDSNames(p.res.Listeners)) > 0 && !p.received[xdsresource.RouteType] {
		return
	}
	if len(snapshot.EDSNames(p.res.Clusters)) > 0 && !p.received[xdsresource.EndpointType] {
		return
	}
	p.readyOnce.Do(func() {
		p.log.Info("proxy ready", "listeners", len(p.res.Listeners), "clusters", len(p.res.Clusters))
		close(p.ready)
	})
}
