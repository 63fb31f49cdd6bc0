// Package forward is the proxy's HTTP data path: for each request it reads
// the current config snapshot once, finds the route (virtual host by
// authority, then the first matching route), applies the route's traffic
// management (rate limit, fault, redirect, rewrites, header mutations),
// picks a cluster of the route's weighted split, and forwards the request
// over a pooled upstream connection, streaming bodies both ways with
// trailers intact (gRPC passes through).
//
// Response copying (trailers, flushing, 1xx, Upgrade/101 tunnels) is
// httputil.ReverseProxy's; the upstream attempts are an exchange's, a
// small per-request http.RoundTripper that picks endpoints, applies
// circuit breakers, retries (with a replayable, bounded copy of the
// request body) and reports each attempt's outcome to outlier detection.
// No attempt is retried once a response was handed to ReverseProxy, so a
// retry never follows a response byte sent to the client.
//
// Errors map to status codes at this one boundary: no virtual host or
// route 404, a cluster the route names but the config lacks 500 (the
// Gateway API's answer for an invalid backend), no usable endpoint 503,
// a circuit breaker's limit 503 (overflow), upstream connect failure 503,
// request timeout 504, rate limited 429, other upstream failures 502.
// Every such answer carries x-weft-error with the reason. A gRPC request
// gets them as trailers-only gRPC answers (HTTP 200, grpc-status mapped
// from the HTTP status as Envoy does; a timeout is DEADLINE_EXCEEDED).
//
// A Forwarder is safe for concurrent use; its Handlers never block on
// config changes.
package forward

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/proxy/accesslog"
	"github.com/weftmesh/weft/proxy/metrics"
	"github.com/weftmesh/weft/proxy/ratelimit"
	"github.com/weftmesh/weft/proxy/route"
	"github.com/weftmesh/weft/proxy/snapshot"
	"github.com/weftmesh/weft/proxy/stats"
	"github.com/weftmesh/weft/proxy/telemetry"
	"github.com/weftmesh/weft/proxy/tracing"
)

// Direction of a listener's traffic.
type Direction string

const (
	Outbound Direction = "outbound"
	Inbound  Direction = "inbound"
)

// Options configure a Forwarder.
type Options struct {
	// Snapshot returns the current config; it must be cheap (an atomic load).
	Snapshot func() *snapshot.Snapshot
	Stats    *stats.Stats
	Logger   *slog.Logger
	// UpstreamIdleTimeout closes pooled upstream connections idle this
	// long, for clusters that set no idle timeout of their own. Keep it
	// below the upstream server's own keep-alive timeout so a pooled
	// connection never races the server's close.
	UpstreamIdleTimeout time.Duration
	// ClientTLS returns the client TLS config for upstreams that must
	// present one of allowedIDs, offering alpn. Required for mTLS clusters.
	ClientTLS func(allowedIDs, alpn []string) *tls.Config
	// RateLimits keeps the token buckets of local rate limits across
	// snapshots; nil: the Forwarder keeps its own.
	RateLimits *ratelimit.Pool
	// MaxMirrors bounds the mirrored requests in flight (default 64);
	// copies beyond it are dropped.
	MaxMirrors int

	// Observers; each is optional (nil: off).
	//
	// Metrics records every request and TCP connection (Prometheus).
	Metrics *metrics.Metrics
	// AccessLog writes one entry per request and per TCP connection.
	AccessLog *accesslog.Logger
	// Tracer returns the current tracer, nil while tracing is off. It must
	// be cheap (an atomic load): it is called once per request.
	Tracer func() *tracing.Tracer
	// Telemetry receives a sample of each request while someone taps.
	Telemetry *telemetry.Pusher
	// Self is this proxy's workload: the source of outbound requests and
	// the destination of inbound ones (labels, access log, tap). On mTLS
	// hops to HTTP clusters, Workload and Version are sent to the peer
	// proxy (HeaderSourceWorkload, HeaderSourceVersion).
	Self metrics.Peer
}

// Forwarder forwards requests per the current snapshot.
type Forwarder struct {
	opts Options
	// rp is the template every exchange copies (with itself as the
	// Transport): ReverseProxy holds no state of its own.
	rp    httputil.ReverseProxy
	bufs  sync.Pool
	close sync.Once

	dialer *net.Dialer
	// transports are the upstream connection pools, state that outlives
	// snapshots: copy on write, read without a lock on every request.
	transports atomic.Pointer[map[transportKey]*http.Transport]
	tmu        sync.Mutex

	rl      *ratelimit.Pool
	mirrors chan struct{} // semaphore of mirrored requests in flight

	principals principals
	hosts      atomic.Pointer[serviceHosts]
	// srcWorkload and srcVersion are the values of HeaderSourceWorkload
	// and HeaderSourceVersion (nil: not sent). Shared by every request:
	// ReverseProxy sends a clone of the request's headers.
	srcWorkload, srcVersion []string
}

// transportKey identifies one upstream connection pool.
type transportKey struct {
	proto proto
	tls   string // snapshot.UpstreamTLS.Key; "" for plaintext
	idle  time.Duration
}

type proto uint8

const (
	protoH1      proto = iota // HTTP/1.1
	protoH2                   // HTTP/2 (h2 over TLS, h2c in plaintext)
	protoUpgrade              // HTTP/1.1 only, for Upgrade requests to HTTP/2 clusters
)

type bufferPool struct{ p *sync.Pool }

func (b bufferPool) Get() []byte  { return *(b.p.Get().(*[]byte)) }
func (b bufferPool) Put(x []byte) { b.p.Put(&x) }

// New returns a Forwarder; its connection pools are made on first use.
func New(opts Options) *Forwarder {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Stats == nil {
		opts.Stats = stats.New()
	}
	if opts.UpstreamIdleTimeout <= 0 {
		opts.UpstreamIdleTimeout = 30 * time.Second
	}
	if opts.RateLimits == nil {
		opts.RateLimits = ratelimit.NewPool()
	}
	if opts.MaxMirrors <= 0 {
		opts.MaxMirrors = 64
	}
	f := &Forwarder{opts: opts, rl: opts.RateLimits, mirrors: make(chan struct{}, opts.MaxMirrors)}
	if opts.Self.Workload != "" {
		f.srcWorkload = []string{opts.Self.Workload}
	}
	if opts.Self.Version != "" {
		f.srcVersion = []string{opts.Self.Version}
	}
	f.bufs.New = func() any { b := make([]byte, 32*1024); return &b }
	f.dialer = &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	f.transports.Store(&map[transportKey]*http.Transport{})
	f.rp = httputil.ReverseProxy{
		BufferPool: bufferPool{&f.bufs},
		// Keep the authority the handler chose (the client's, or the
		// route's host rewrite): Out is a copy of In.
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.Host = pr.In.Host
		},
		// Streaming responses (no Content-Length: gRPC, server-sent
		// events) are flushed as data arrives by ReverseProxy itself. A
		// fixed -1 here would also flush the headers of a bodiless
		// response early, splitting a gRPC trailers-only response into
		// headers and an empty end of stream, which clients reject.
		FlushInterval: 0,
		ErrorHandler:  f.errorHandler,
	}
	return f
}

// Close releases idle upstream connections.
func (f *Forwarder) Close() {
	f.close.Do(func() {
		for _, t := range *f.transports.Load() {
			t.CloseIdleConnections()
		}
	})
}

// errorHandler answers a failed exchange. The exchange's errors are
// *localError already; anything else (ReverseProxy's own, such as a
// failed upgrade) is classified here.
func (f *Forwarder) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	var le *localError
	if !errors.As(err, &le) {
		le = classifyError(r.Context(), err, false)
	}
	if sw, ok := w.(*statusWriter); ok {
		sw.flags |= flagOf(le)
	}
	f.opts.Logger.Debug("upstream error", "host", r.Host, "endpoint", r.URL.Host, "error", err)
	reply(w, isGRPC(r), le.code, le.reason, le.grpc)
}

// transport returns the connection pool for a cluster's upstreams, and
// the URL scheme to use. Upgrade requests to an HTTP/2 cluster go over
// HTTP/1.1 (WebSocket needs the connection).
func (f *Forwarder) transport(c *snapshot.Cluster, upgrade bool) (*http.Transport, string, error) {
	k := transportKey{proto: protoH1, idle: c.IdleTimeout}
	if k.idle <= 0 {
		k.idle = f.opts.UpstreamIdleTimeout
	}
	if c.HTTP2 {
		k.proto = protoH2
		if upgrade {
			k.proto = protoUpgrade
		}
	}
	scheme := "http"
	if c.TLS != nil {
		k.tls = c.TLS.Key
		scheme = "https"
	}
	if t := (*f.transports.Load())[k]; t != nil {
		return t, scheme, nil
	}
	if c.TLS != nil && f.opts.ClientTLS == nil {
		return nil, "", errors.New("mutual TLS asked for but the proxy has no identity")
	}
	f.tmu.Lock()
	defer f.tmu.Unlock()
	cur := *f.transports.Load()
	if t := cur[k]; t != nil {
		return t, scheme, nil
	}
	t := f.newTransport(k, c.TLS)
	next := make(map[transportKey]*http.Transport, len(cur)+1)
	for kk, tt := range cur {
		next[kk] = tt
	}
	next[k] = t
	f.transports.Store(&next)
	return t, scheme, nil
}

func (f *Forwarder) newTransport(k transportKey, ut *snapshot.UpstreamTLS) *http.Transport {
	t := &http.Transport{
		DialContext:         f.dialer.DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     k.idle,
		DisableCompression:  true,
		Protocols:           new(http.Protocols),
	}
	h2 := &http.HTTP2Config{SendPingTimeout: 15 * time.Second, PingTimeout: 10 * time.Second}
	switch {
	case k.proto == protoH2 && ut == nil:
		t.Protocols.SetUnencryptedHTTP2(true)
		t.HTTP2 = h2
	case k.proto == protoH2:
		t.Protocols.SetHTTP2(true)
		t.HTTP2 = h2
	default:
		t.Protocols.SetHTTP1(true)
	}
	if ut != nil {
		alpn := ut.ALPN
		if k.proto != protoH2 {
			// An HTTP/1.1 pool must not be offered h2.
			alpn = slices.DeleteFunc(slices.Clone(alpn), func(p string) bool { return p == "h2" })
			if len(ut.ALPN) > 0 && len(alpn) == 0 || k.proto == protoUpgrade {
				alpn = []string{"http/1.1"}
			}
		}
		t.TLSClientConfig = f.opts.ClientTLS(ut.AllowedIDs, alpn)
		t.TLSHandshakeTimeout = 5 * time.Second
	}
	return t
}

// Retain drops the connection pools and rate-limit buckets no part of the
// snapshot uses.
func (f *Forwarder) Retain(s *snapshot.Snapshot) {
	type use struct {
		tls  string
		idle time.Duration
	}
	keep := map[use]bool{{"", f.opts.UpstreamIdleTimeout}: true}
	for _, c := range s.Clusters {
		u := use{idle: c.IdleTimeout}
		if u.idle <= 0 {
			u.idle = f.opts.UpstreamIdleTimeout
		}
		if c.TLS != nil {
			u.tls = c.TLS.Key
		}
		keep[u] = true
	}
	f.tmu.Lock()
	cur := *f.transports.Load()
	next := make(map[transportKey]*http.Transport, len(cur))
	var drop []*http.Transport
	for k, t := range cur {
		if keep[use{k.tls, k.idle}] {
			next[k] = t
		} else {
			drop = append(drop, t)
		}
	}
	f.transports.Store(&next)
	f.tmu.Unlock()
	for _, t := range drop {
		t.CloseIdleConnections()
	}

	keys := map[string]bool{}
	for _, l := range s.Listeners {
		if l.RateLimit != nil {
			keys[l.Name] = true
		}
		if l.IsTCP() {
			continue
		}
		if t := s.RouteTable(l); t != nil {
			t.EachRoute(func(rt *route.Route) {
				if rt.RateLimit != nil {
					keys[routeLimitKey(l.Name, rt.Name)] = true
				}
			})
		}
	}
	f.rl.Retain(keys)
}

func routeLimitKey(listener, route string) string { return listener + "|" + route }

func requestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
