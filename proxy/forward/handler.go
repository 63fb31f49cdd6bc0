package forward

import (
	"context"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/weftmesh/weft/proxy/balancer"
	"github.com/weftmesh/weft/proxy/normalize"
	"github.com/weftmesh/weft/proxy/route"
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

// statusWriter records the status code, the body bytes written and the
// response flags of the request; Unwrap keeps Flush and Hijack reachable
// through http.ResponseController.
type statusWriter struct {
	http.ResponseWriter
	code  int
	bytes int64
	flags flag
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
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
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

func (h *handler) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	// One allocation holds the request's state: its ReverseProxy, status
	// writer, attempts and what the observers are told at the end.
	x := &exchange{f: h.f, start: time.Now()}
	x.sw.ResponseWriter = rw
	w := &x.sw
	defer h.done(x, r)
	if h.host != "" {
		r.Host = h.host
	}
	if r.Body != nil && r.Body != http.NoBody {
		x.reqBody.rc = r.Body
		r.Body = &x.reqBody
	}
	if h.dir == Inbound {
		h.inboundPeer(x, r)
	}
	h.startSpan(x, r)
	grpc := isGRPC(r)
	x.grpc = grpc
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
	// Canonical form first: routing, authorization and the upstream all
	// see the same request.
	var norm *normalize.Result
	if l.Normalizer != nil {
		n, err := l.Normalizer.Request(r)
		if err != nil {
			code, reason := http.StatusBadRequest, "invalid request"
			if ne, ok := err.(*normalize.Error); ok {
				code, reason = ne.Status, ne.Reason
			}
			reply(w, grpc, code, reason, -1)
			return
		}
		norm = n
	}
	if h.dir == Inbound && l.Authz != nil && !h.authorize(x, w, r, l, norm) {
		return
	}
	table := snap.RouteTable(l)
	if table == nil {
		reply(w, grpc, http.StatusServiceUnavailable, "routes "+l.RDS+" not received yet", -1)
		return
	}
	vh := table.VirtualHost(r.Host)
	if vh == nil {
		w.flags |= flagNoRoute
		reply(w, grpc, http.StatusNotFound, "no route for host "+r.Host, -1)
		return
	}
	// The edge is named for the service the client asked for (the
	// virtual host); the endpoint's version says which one served.
	service := vh.Name
	if i := strings.LastIndexByte(service, ':'); i > 0 {
		service = service[:i]
	}
	x.service = service
	rt := vh.Match(r)
	if rt == nil {
		w.flags |= flagNoRoute
		reply(w, grpc, http.StatusNotFound, "no route matched", -1)
		return
	}
	x.rt = rt
	if rt.Fault != nil && h.fault(w, r, rt.Fault, grpc) {
		return
	}
	// A route's own bucket replaces the port's (as Envoy's per-route
	// local rate limit does).
	if rt.RateLimit != nil {
		if h.f.limited(w, routeLimitKey(l.Name, rt.Name), rt.RateLimit, grpc) {
			x.edge = true
			return
		}
	} else if l.RateLimit != nil && h.f.limited(w, l.Name, l.RateLimit, grpc) {
		x.edge = true
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
	x.edge = true
	if cluster == nil {
		w.flags |= flagNoCluster
		reply(w, grpc, http.StatusInternalServerError, "backend "+clusterName+" does not exist", -1)
		return
	}
	x.cluster = cluster
	release, ok := cluster.Picker.AcquireRequest()
	if !ok {
		w.flags |= flagOverflow
		reply(w, grpc, http.StatusServiceUnavailable, errOverflow.reason, -1)
		return
	}
	defer release()
	cluster.Picker.RecordRequest()

	upgrade := isUpgrade(r.Header)
	if upgrade && !isWebSocket(r.Header) {
		// Only WebSocket is tunnelled (as Envoy's default upgrade_configs):
		// a tunnel of another protocol (h2c above all) would carry
		// requests no policy sees. The request goes on as a plain one.
		dropUpgrade(r.Header)
		upgrade = false
	}
	tr, scheme, err := h.f.transport(cluster, upgrade)
	if err != nil {
		reply(w, grpc, http.StatusServiceUnavailable, err.Error(), -1)
		return
	}
	x.snap, x.transport, x.scheme, x.upgrade = snap, tr, scheme, upgrade
	x.rp = h.f.rp
	x.rp.Transport = x

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
	if h.dir == Outbound {
		// Only this proxy names the source: never what the app sent.
		delete(out.Header, HeaderSourceWorkload)
		delete(out.Header, HeaderSourceVersion)
	}
	if cluster.TLS != nil && h.dir == Outbound {
		// Named to the peer's proxy over mutual TLS only (a label there).
		if h.f.srcWorkload != nil {
			out.Header[HeaderSourceWorkload] = h.f.srcWorkload
		}
		if h.f.srcVersion != nil {
			out.Header[HeaderSourceVersion] = h.f.srcVersion
		}
	}
	rt.RequestHeaders.Apply(out.Header)
	if len(rt.HashPolicies) > 0 {
		x.hashKey(r)
	}

	func() {
		defer x.finish()
		x.rp.ServeHTTP(w, out)
	}()
	if x.body != nil && len(rt.Mirrors) > 0 && x.out != nil {
		if b, ok := x.body.complete(); ok {
			h.f.mirror(x, x.out, b)
		}
	}
}

// fault injects the route's fault: a delay first, then an abort. It
// reports whether the request was answered (or the client went away).
func (h *handler) fault(w *statusWriter, r *http.Request, f *xdsresource.Fault, grpc bool) bool {
	if f.Delay > 0 && draw(f.DelayPerMillion) {
		w.flags |= flagDelay
		t := time.NewTimer(f.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return true
		}
	}
	if (f.HasGRPCAbort || f.AbortStatus > 0) && draw(f.AbortPerMillion) {
		w.flags |= flagFault
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
func (f *Forwarder) limited(w *statusWriter, key string, l *xdsresource.LocalRateLimit, grpc bool) bool {
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
	w.flags |= flagRateLimited
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
// isWebSocket reports whether the upgrade asked for is WebSocket.
func isWebSocket(h http.Header) bool {
	for _, v := range h["Upgrade"] {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(textproto.TrimString(tok), "websocket") {
				return true
			}
		}
	}
	return false
}

// dropUpgrade turns an upgrade request into a plain one.
func dropUpgrade(h http.Header) {
	h.Del("Upgrade")
	var keep []string
	for _, v := range h["Connection"] {
		for _, tok := range strings.Split(v, ",") {
			if t := textproto.TrimString(tok); t != "" && !strings.EqualFold(t, "upgrade") {
				keep = append(keep, t)
			}
		}
	}
	h.Del("Connection")
	if len(keep) > 0 {
		h.Set("Connection", strings.Join(keep, ", "))
	}
}

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
	if n > uint64(math.MaxInt64/unit) {
		return 0, false // longer than time.Duration holds: no deadline
	}
	d := time.Duration(n) * unit
	if d <= 0 {
		d = time.Nanosecond
	}
	return d, true
}
