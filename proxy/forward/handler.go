package forward

import (
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/weftmesh/weft/proxy/balancer"
	"github.com/weftmesh/weft/proxy/route"
	"github.com/weftmesh/weft/proxy/stats"
	"github.com/weftmesh/weft/proxy/xdsresource"
)

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
	if w.code == 0 && code >= 200 {
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

// Per-million draws for fault and rate-limit percentages.
const million = 1_000_000

func draw(perMillion uint32) bool {
	return perMillion >= million || (perMillion > 0 && rand.Uint32N(million) < perMillion)
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if h.host != "" {
		r.Host = h.host
	}
	grpc := isGRPC(r)
	snap := h.f.opts.Snapshot()
	if snap == nil {
		reply(w, grpc, http.StatusServiceUnavailable, "no configuration yet", -1)
		return
	}
	l := snap.Listeners[h.listener]
	if l == nil {
		reply(w, grpc, http.StatusServiceUnavailable, "listener "+h.listener+" not configured", -1)
		return
	}
	if l.RateLimit != nil && h.f.limited(w, l.Name, l.RateLimit, grpc) {
		return
	}
	table := snap.RouteTable(l)
	if table == nil {
		reply(w, grpc, http.StatusServiceUnavailable, "routes "+l.RDS+" not received yet", -1)
		return
	}
	vh := table.VirtualHost(r.Host)
	if vh == nil {
		reply(w, grpc, http.StatusNotFound, "no route for host "+r.Host, -1)
		return
	}
	rt := vh.Match(r)
	if rt == nil {
		reply(w, grpc, http.StatusNotFound, "no route matched", -1)
		return
	}
	// The edge is named for the service the client asked for (the
	// virtual host); the endpoint's version says which one served.
	service := vh.Name
	if i := strings.LastIndexByte(service, ':'); i > 0 {
		service = service[:i]
	}
	if rt.Fault != nil && h.fault(w, r, rt.Fault, grpc) {
		return
	}
	if rt.RateLimit != nil && h.f.limited(w, routeLimitKey(l.Name, rt.Name), rt.RateLimit, grpc) {
		h.record(service, "", false, http.StatusTooManyRequests, start)
		return
	}
	if rt.Redirect != nil {
		w.Header().Set("Location", rt.RedirectLocation(r))
		w.WriteHeader(rt.Redirect.StatusCode)
		return
	}
	if rt.DirectStatus != 0 {
		if rt.DirectBody != "" {
			w.WriteHeader(rt.DirectStatus)
			io.WriteString(w, rt.DirectBody)
			return
		}
		reply(w, grpc, rt.DirectStatus, "route answers directly", -1)
		return
	}
	clusterName := rt.PickCluster()
	cluster := snap.Clusters[clusterName]
	if cluster == nil {
		reply(w, grpc, http.StatusInternalServerError, "backend "+clusterName+" does not exist", -1)
		h.record(service, "", false, http.StatusInternalServerError, start)
		return
	}
	release, ok := cluster.Picker.AcquireRequest()
	if !ok {
		reply(w, grpc, http.StatusServiceUnavailable, errOverflow.reason, -1)
		h.record(service, "", cluster.TLS != nil, http.StatusServiceUnavailable, start)
		return
	}
	defer release()
	cluster.Picker.RecordRequest()

	upgrade := isUpgrade(r.Header)
	tr, scheme, err := h.f.transport(cluster, upgrade)
	if err != nil {
		reply(w, grpc, http.StatusServiceUnavailable, err.Error(), -1)
		h.record(service, "", cluster.TLS != nil, http.StatusServiceUnavailable, start)
		return
	}

	x := &exchange{f: h.f, snap: snap, rt: rt, cluster: cluster, service: service,
		transport: tr, scheme: scheme, grpc: grpc, upgrade: upgrade}
	x.rp = h.f.rp
	x.rp.Transport = x
	x.sw.ResponseWriter = w

	ctx := r.Context()
	timeout := rt.Timeout
	if grpc {
		if d, ok := grpcTimeout(r.Header.Get("Grpc-Timeout")); ok && (timeout == 0 || d < timeout) {
			timeout = d
		}
	}
	if timeout > 0 {
		if upgrade {
			// The timeout bounds the handshake, not the tunnel: the
			// exchange stops the timer on 101 Switching Protocols.
			c, cancel := context.WithCancelCause(ctx)
			ctx = c
			x.timer = time.AfterFunc(timeout, func() { cancel(context.DeadlineExceeded) })
			defer cancel(nil)
		} else {
			c, cancel := context.WithTimeout(ctx, timeout)
			ctx = c
			defer cancel()
		}
	}
	out := r.WithContext(ctx)
	x.url = *r.URL
	out.URL = &x.url
	if rt.Rewrites() {
		rt.RewritePath(&x.url)
	}
	if rt.HostRewrite != "" {
		out.Host = rt.HostRewrite
	}
	if out.Header.Get("x-request-id") == "" {
		out.Header.Set("x-request-id", requestID())
	}
	rt.RequestHeaders.Apply(out.Header)
	if len(rt.HashPolicies) > 0 {
		x.hashKey(r)
	}

	func() {
		defer x.finish()
		x.rp.ServeHTTP(&x.sw, out)
	}()
	if x.body != nil && len(rt.Mirrors) > 0 && x.out != nil {
		if b, ok := x.body.complete(); ok {
			h.f.mirror(x, x.out, b)
		}
	}

	code := x.sw.code
	switch {
	case code == 0 && x.switched:
		code = http.StatusSwitchingProtocols // ReverseProxy wrote it on the hijacked connection
	case code == 0:
		code = http.StatusBadGateway
	}
	version := ""
	if x.ep != nil {
		version = x.ep.Version
	}
	if h.dir == Inbound {
		// Inbound, the hop that matters is the one that arrived: was it
		// mutual TLS, and from whom.
		peer := ""
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 && len(r.TLS.PeerCertificates[0].URIs) == 1 {
			peer = r.TLS.PeerCertificates[0].URIs[0].String()
		}
		h.f.opts.Stats.Record(stats.EdgeKey{Direction: string(h.dir), Service: service, Version: version, MTLS: r.TLS != nil, Peer: peer}, code, time.Since(start))
		return
	}
	h.record(service, version, cluster.TLS != nil, code, start)
}

func (h *handler) record(service, version string, mtls bool, code int, start time.Time) {
	h.f.opts.Stats.Record(stats.EdgeKey{Direction: string(h.dir), Service: service, Version: version, MTLS: mtls}, code, time.Since(start))
}

// fault injects the route's fault: a delay first, then an abort. It
// reports whether the request was answered (or the client went away).
func (h *handler) fault(w http.ResponseWriter, r *http.Request, f *xdsresource.Fault, grpc bool) bool {
	if f.Delay > 0 && draw(f.DelayPerMillion) {
		t := time.NewTimer(f.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return true
		}
	}
	if (f.HasGRPCAbort || f.AbortStatus > 0) && draw(f.AbortPerMillion) {
		if f.HasGRPCAbort {
			// Envoy's grpc_status abort: a trailers-only gRPC answer.
			writeGRPC(w, http.StatusServiceUnavailable, int(f.AbortGRPCStatus), "fault injected", "fault injected")
		} else {
			reply(w, grpc, f.AbortStatus, "fault injected", -1)
		}
		return true
	}
	return false
}

// limited applies a local rate limit: when the bucket has no token (and
// the limit is enabled and enforced for this request) it answers 429 with
// Retry-After and reports true.
func (f *Forwarder) limited(w http.ResponseWriter, key string, l *xdsresource.LocalRateLimit, grpc bool) bool {
	// Envoy: filter_enabled and filter_enforced unset mean off.
	if l.Bucket == nil || l.Enabled == 0 || l.Enforced == 0 || !draw(l.Enabled) {
		return false
	}
	ok, after := f.rl.Bucket(key, *l.Bucket).Allow()
	if ok || !draw(l.Enforced) {
		return false
	}
	secs := int64((after + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	reply(w, grpc, http.StatusTooManyRequests, "rate limited", -1)
	return true
}

// hashKey computes the RING_HASH key from the first hash policy that
// yields a value. A cookie policy with a TTL and no cookie on the request
// makes one up, and the response sets it (Envoy's behaviour).
func (x *exchange) hashKey(r *http.Request) {
	for i := range x.rt.HashPolicies {
		hp := &x.rt.HashPolicies[i]
		switch {
		case hp.Header != "":
			if v := r.Header.Get(hp.Header); v != "" {
				x.hash, x.hasHash = balancer.HashKey(v), true
				return
			}
		case hp.Cookie != "":
			if c, err := r.Cookie(hp.Cookie); err == nil && c.Value != "" {
				x.hash, x.hasHash = balancer.HashKey(c.Value), true
				return
			}
			if hp.CookieTTL > 0 {
				v := requestID()
				c := &http.Cookie{Name: hp.Cookie, Value: v, Path: hp.CookiePath, MaxAge: int(hp.CookieTTL / time.Second), HttpOnly: true}
				if c.MaxAge <= 0 {
					c.MaxAge = 1
				}
				x.setCookie = c.String()
				x.hash, x.hasHash = balancer.HashKey(v), true
				return
			}
		case hp.SourceIP:
			if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
				x.hash, x.hasHash = balancer.HashKey(host), true
				return
			}
		}
	}
}

func isGRPC(r *http.Request) bool { return route.IsGRPC(r) }

// isUpgrade reports whether the request asks to switch protocols
// (Connection: Upgrade with an Upgrade header).
func isUpgrade(h http.Header) bool {
	if len(h["Upgrade"]) == 0 {
		return false
	}
	for _, v := range h["Connection"] {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(textproto.TrimString(tok), "upgrade") {
				return true
			}
		}
	}
	return false
}

// grpcTimeout parses a grpc-timeout header value: up to 8 digits and a
// unit (H, M, S, m, u, n).
func grpcTimeout(v string) (time.Duration, bool) {
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	n, err := strconv.ParseUint(v[:len(v)-1], 10, 64)
	if err != nil {
		return 0, false
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	d := time.Duration(n) * unit
	if d <= 0 {
		d = time.Nanosecond
	}
	return d, true
}
