// Package forward is the proxy's HTTP data path: for each request it reads
// the current config snapshot once, finds the route (virtual host by
// authority, then the first matching route), picks a cluster of the
// route's weighted split and an endpoint of the cluster, and forwards the
// request over a pooled upstream connection, streaming bodies both ways
// with trailers intact (gRPC passes through).
//
// Errors map to status codes at this one boundary: no virtual host or
// route 404, a cluster the route names but the config lacks 500 (the
// Gateway API's answer for an invalid backend), no usable endpoint 503,
// upstream connect failure 503, request timeout 504, other upstream
// failures 502. Every such answer carries x-weft-error with the reason.
//
// A Forwarder is safe for concurrent use; its Handlers never block on
// config changes.
package forward

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"time"

	"github.com/weftmesh/weft/proxy/snapshot"
	"github.com/weftmesh/weft/proxy/stats"
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
	// long. Keep it below the upstream server's own keep-alive timeout so
	// a pooled connection never races the server's close.
	UpstreamIdleTimeout time.Duration
	// ClientTLS returns the client TLS config for upstreams that must
	// present one of allowedIDs, offering alpn. Required for mTLS clusters.
	ClientTLS func(allowedIDs, alpn []string) *tls.Config
}

// Forwarder forwards requests per the current snapshot.
type Forwarder struct {
	opts  Options
	h1    *httputil.ReverseProxy
	h2    *httputil.ReverseProxy
	h1t   *http.Transport
	h2t   *http.Transport
	bufs  sync.Pool
	close sync.Once

	dialer *net.Dialer
	tlsMu  sync.Mutex
	tlsRPs map[string]*tlsUpstream // by HTTP2 + UpstreamTLS.Key
}

// tlsUpstream is a pool of mutual TLS connections to upstreams of one
// identity set: state that outlives config snapshots.
type tlsUpstream struct {
	rp *httputil.ReverseProxy
	t  *http.Transport
}

type bufferPool struct{ p *sync.Pool }

func (b bufferPool) Get() []byte  { return *(b.p.Get().(*[]byte)) }
func (b bufferPool) Put(x []byte) { b.p.Put(&x) }

// New returns a Forwarder with its upstream connection pools.
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
	f := &Forwarder{opts: opts}
	f.bufs.New = func() any { b := make([]byte, 32*1024); return &b }
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	f.dialer = dialer
	f.tlsRPs = map[string]*tlsUpstream{}
	f.h1t = &http.Transport{
		DialContext:         dialer.DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     opts.UpstreamIdleTimeout,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	f.h2t = &http.Transport{
		DialContext:        dialer.DialContext,
		IdleConnTimeout:    opts.UpstreamIdleTimeout,
		DisableCompression: true,
		Protocols:          new(http.Protocols),
		HTTP2:              &http.HTTP2Config{SendPingTimeout: 15 * time.Second, PingTimeout: 10 * time.Second},
	}
	f.h2t.Protocols.SetUnencryptedHTTP2(true)
	f.h1 = f.reverseProxy(f.h1t)
	f.h2 = f.reverseProxy(f.h2t)
	return f
}

// Close releases idle upstream connections.
func (f *Forwarder) Close() {
	f.close.Do(func() {
		f.h1t.CloseIdleConnections()
		f.h2t.CloseIdleConnections()
		f.tlsMu.Lock()
		for _, u := range f.tlsRPs {
			u.t.CloseIdleConnections()
		}
		f.tlsMu.Unlock()
	})
}

func (f *Forwarder) reverseProxy(t http.RoundTripper) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Transport:  t,
		BufferPool: bufferPool{&f.bufs},
		// Keep the authority the client used: Out is a copy of In, and
		// only its URL (scheme, endpoint) was changed by the handler.
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.Host = pr.In.Host
		},
		// Streaming responses (no Content-Length: gRPC, server-sent
		// events) are flushed as data arrives by ReverseProxy itself. A
		// fixed -1 here would also flush the headers of a bodiless
		// response early, splitting a gRPC trailers-only response into
		// headers and an empty end of stream, which clients reject.
		FlushInterval: 0,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			code, reason := classify(r.Context(), err)
			f.opts.Logger.Debug("upstream error", "host", r.Host, "endpoint", r.URL.Host, "error", err)
			fail(w, code, reason)
		},
	}
}

func classify(ctx context.Context, err error) (int, string) {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return http.StatusGatewayTimeout, "request timeout"
	}
	if errors.Is(err, context.Canceled) {
		// The client went away; the status is for the logs only.
		return 499, "client closed request"
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return http.StatusServiceUnavailable, "upstream connect error"
	}
	return http.StatusBadGateway, "upstream error"
}

func fail(w http.ResponseWriter, code int, reason string) {
	h := w.Header()
	h.Set("x-weft-error", reason)
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	io.WriteString(w, "weft: "+reason+"\n")
}

// Handler returns the handler of one listener. hostOverride, when set,
// replaces the request's authority before routing (local upstream ports).
func (f *Forwarder) Handler(listener string, dir Direction, hostOverride string) http.Handler {
	return &handler{f: f, listener: listener, dir: dir, host: hostOverride}
}

type handler struct {
	f        *Forwarder
	listener string
	dir      Direction
	host     string
}

// statusWriter records the status code; Unwrap keeps Flush and Hijack
// reachable through http.ResponseController.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) Flush() {
	if fl, ok := w.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if h.host != "" {
		r.Host = h.host
	}
	snap := h.f.opts.Snapshot()
	if snap == nil {
		fail(w, http.StatusServiceUnavailable, "no configuration yet")
		return
	}
	l := snap.Listeners[h.listener]
	if l == nil {
		fail(w, http.StatusServiceUnavailable, "listener "+h.listener+" not configured")
		return
	}
	table := snap.RouteTable(l)
	if table == nil {
		fail(w, http.StatusServiceUnavailable, "routes "+l.RDS+" not received yet")
		return
	}
	vh := table.VirtualHost(r.Host)
	if vh == nil {
		fail(w, http.StatusNotFound, "no route for host "+r.Host)
		return
	}
	rt := vh.Match(r)
	if rt == nil {
		fail(w, http.StatusNotFound, "no route matched")
		return
	}
	if rt.DirectStatus != 0 {
		if rt.DirectBody != "" {
			w.WriteHeader(rt.DirectStatus)
			io.WriteString(w, rt.DirectBody)
			return
		}
		fail(w, rt.DirectStatus, "route answers directly")
		return
	}
	clusterName := rt.PickCluster()
	// The edge is named for the service the client asked for (the
	// virtual host); the endpoint's version says which one served.
	service := vh.Name
	if i := strings.LastIndexByte(service, ':'); i > 0 {
		service = service[:i]
	}
	cluster := snap.Clusters[clusterName]
	if cluster == nil {
		fail(w, http.StatusInternalServerError, "backend "+clusterName+" does not exist")
		h.record(service, "", false, http.StatusInternalServerError, start)
		return
	}
	ep := cluster.Picker.Pick()
	if ep == nil {
		fail(w, http.StatusServiceUnavailable, "no healthy upstream for "+service)
		h.record(service, "", cluster.TLS != nil, http.StatusServiceUnavailable, start)
		return
	}

	ctx := r.Context()
	if rt.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, rt.Timeout)
		defer cancel()
	}
	out := r.WithContext(ctx)
	u := *r.URL
	u.Scheme = "http"
	u.Host = ep.Address
	out.URL = &u
	if out.Header.Get("x-request-id") == "" {
		out.Header.Set("x-request-id", requestID())
	}
	sw := &statusWriter{ResponseWriter: w}
	switch {
	case cluster.TLS != nil:
		u.Scheme = "https"
		rp, err := h.f.tlsProxy(cluster.HTTP2, cluster.TLS)
		if err != nil {
			fail(w, http.StatusServiceUnavailable, err.Error())
			h.record(service, ep.Version, true, http.StatusServiceUnavailable, start)
			return
		}
		rp.ServeHTTP(sw, out)
	case cluster.HTTP2:
		h.f.h2.ServeHTTP(sw, out)
	default:
		h.f.h1.ServeHTTP(sw, out)
	}
	code := sw.code
	if code == 0 {
		code = http.StatusBadGateway
	}
	if h.dir == Inbound {
		// Inbound, the hop that matters is the one that arrived: was it
		// mutual TLS, and from whom.
		peer := ""
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 && len(r.TLS.PeerCertificates[0].URIs) == 1 {
			peer = r.TLS.PeerCertificates[0].URIs[0].String()
		}
		h.f.opts.Stats.Record(stats.EdgeKey{Direction: string(h.dir), Service: service, Version: ep.Version, MTLS: r.TLS != nil, Peer: peer}, code, time.Since(start))
		return
	}
	h.record(service, ep.Version, cluster.TLS != nil, code, start)
}

// tlsProxy returns the reverse proxy over mutual TLS for upstreams of one
// identity set, creating its connection pool on first use.
func (f *Forwarder) tlsProxy(http2 bool, t *snapshot.UpstreamTLS) (*httputil.ReverseProxy, error) {
	key := t.Key
	if http2 {
		key = "h2|" + key
	}
	f.tlsMu.Lock()
	defer f.tlsMu.Unlock()
	if u := f.tlsRPs[key]; u != nil {
		return u.rp, nil
	}
	if f.opts.ClientTLS == nil {
		return nil, errors.New("mutual TLS asked for but the proxy has no identity")
	}
	alpn := t.ALPN
	tr := &http.Transport{
		DialContext:         f.dialer.DialContext,
		TLSClientConfig:     f.opts.ClientTLS(t.AllowedIDs, alpn),
		TLSHandshakeTimeout: 5 * time.Second,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     f.opts.UpstreamIdleTimeout,
		DisableCompression:  true,
		Protocols:           new(http.Protocols),
	}
	if http2 {
		tr.Protocols.SetHTTP2(true)
		tr.HTTP2 = &http.HTTP2Config{SendPingTimeout: 15 * time.Second, PingTimeout: 10 * time.Second}
	} else {
		tr.Protocols.SetHTTP1(true)
	}
	u := &tlsUpstream{rp: f.reverseProxy(tr), t: tr}
	f.tlsRPs[key] = u
	return u.rp, nil
}

// Retain drops the mutual TLS pools no cluster of the snapshot uses.
func (f *Forwarder) Retain(s *snapshot.Snapshot) {
	keep := map[string]bool{}
	for _, c := range s.Clusters {
		if c.TLS != nil {
			k := c.TLS.Key
			if c.HTTP2 {
				k = "h2|" + k
			}
			keep[k] = true
		}
	}
	f.tlsMu.Lock()
	defer f.tlsMu.Unlock()
	for k, u := range f.tlsRPs {
		if !keep[k] {
			u.t.CloseIdleConnections()
			delete(f.tlsRPs, k)
		}
	}
}

func (h *handler) record(service, version string, mtls bool, code int, start time.Time) {
	h.f.opts.Stats.Record(stats.EdgeKey{Direction: string(h.dir), Service: service, Version: version, MTLS: mtls}, code, time.Since(start))
}

func requestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
