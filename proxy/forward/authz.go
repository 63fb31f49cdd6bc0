package forward

import (
	"bytes"
	"context"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/weftmesh/weft/proxy/authz"
	"github.com/weftmesh/weft/proxy/metrics"
	"github.com/weftmesh/weft/proxy/normalize"
	"github.com/weftmesh/weft/proxy/snapshot"
)

// This file is the inbound side's authorization (docs/xds.md,
// "Authorization and end-user authentication"): after normalisation and
// before routing, the listener's engine authenticates the request's JWT
// (401) and checks it (403, or the external authorizer's answer). A
// denial has no detail in its body; its reason goes to the debug log.

// Policy-name prefixes of denials by an external authorizer (the CUSTOM
// gate's shadow policies, or the ext_authz cluster): response flag UAEX
// instead of DENY.
var extAuthzPrefixes = [...]string{"weft-ext-authz/", "weft-authz|"}

// authorize runs the listener's engine on the normalised request n. It
// reports whether the request may go on; otherwise it has answered. The
// headers an external authorizer returned are set on r, the request
// forwarded upstream.
func (h *handler) authorize(x *exchange, w *statusWriter, r *http.Request, l *snapshot.Listener, n *normalize.Result) bool {
	e := l.Authz
	claims, d := e.Authenticate(r)
	if d != nil && !d.Allowed {
		if d.Status == 0 {
			d.Status = http.StatusUnauthorized
		}
		policy := d.Policy
		if d.Status == http.StatusUnauthorized && policy == "" {
			policy = metrics.PolicyJWT
		}
		h.deny(x, w, r, d, policy)
		return false
	}
	req := authz.Request{
		Method:   r.Method,
		Host:     r.Host,
		Path:     r.URL.EscapedPath(),
		Query:    r.URL.RawQuery,
		Header:   r.Header,
		PeerID:   x.peerPrincipal,
		Claims:   claims,
		Scheme:   "http",
		Protocol: r.Proto,
		ID:       r.Header.Get("X-Request-Id"),
		DestID:   h.f.opts.Self.Principal,
	}
	if r.TLS != nil {
		req.Scheme, req.ServerName = "https", r.TLS.ServerName
	}
	if max := e.MaxRequestBytes(); max > 0 && r.Body != nil && r.Body != http.NoBody {
		req.Body = peekBody(r, int64(max))
	}
	if n != nil {
		req.Path, req.RemoteIP = n.Path, n.ClientIP
	}
	req.Path = withoutParams(req.Path)
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		req.DirectIP = ap.Addr().Unmap()
	}
	if !req.RemoteIP.IsValid() {
		req.RemoteIP = req.DirectIP
	}
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		req.DestIP, req.DestPort = addrPort(a)
	}
	if l.AuthzPeerCert {
		if c := peerCert(r); c != nil {
			req.PeerCertificate = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
		}
	}
	dec := e.Check(r.Context(), &req)
	h.audit(dec.Audit, &req)
	if !dec.Allowed {
		if dec.Status == 0 {
			dec.Status = http.StatusForbidden
		}
		h.deny(x, w, r, &dec, dec.Policy)
		return false
	}
	for name, values := range dec.Headers {
		r.Header[http.CanonicalHeaderKey(name)] = values
	}
	return true
}

// peekBody reads up to max bytes of the request body for the authorizer
// and puts them back in front of the rest.
func peekBody(r *http.Request, max int64) []byte {
	b, err := io.ReadAll(io.LimitReader(r.Body, max))
	if err != nil {
		b = nil
	}
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(b), r.Body), r.Body}
	return b
}

// deny answers a denied request: the status without detail (401 with
// www-authenticate: Bearer), or the external authorizer's own headers and
// body; a gRPC request gets a trailers-only answer (PERMISSION_DENIED for
// 403, UNAUTHENTICATED for 401). It counts the denial and flags the
// request (UAEX for an external authorizer's denial, DENY otherwise).
func (h *handler) deny(x *exchange, w *statusWriter, r *http.Request, d *authz.Decision, policy string) {
	if isExtAuthz(d.Policy) {
		w.flags |= flagUAEX
	} else {
		w.flags |= flagDenied
	}
	h.f.opts.Metrics.AuthzDenied(policy)
	h.f.opts.Logger.Debug("request denied", "listener", h.listener, "status", d.Status, "policy", d.Policy,
		"reason", d.Reason, "peer", x.peerPrincipal, "method", r.Method, "path", r.URL.EscapedPath())
	hdr := w.Header()
	for name, values := range d.DeniedHeaders {
		hdr[http.CanonicalHeaderKey(name)] = values
	}
	reason := "access denied"
	if d.Status == http.StatusUnauthorized {
		reason = "unauthenticated"
		if hdr.Get("Www-Authenticate") == "" {
			hdr.Set("Www-Authenticate", "Bearer")
		}
	}
	if x.grpc {
		writeGRPC(w, d.Status, grpcFromHTTP(d.Status), reason, reason)
		return
	}
	hdr.Set("x-weft-error", reason)
	if d.DeniedBody == "" {
		hdr.Set("Content-Length", "0")
		w.WriteHeader(d.Status)
		return
	}
	if hdr.Get("Content-Type") == "" {
		hdr.Set("Content-Type", "text/plain; charset=utf-8")
	}
	w.WriteHeader(d.Status)
	io.WriteString(w, d.DeniedBody)
}

// audit logs and counts the AUDIT (RBAC LOG) policies a request matched.
func (h *handler) audit(policies []string, req *authz.Request) {
	for _, p := range policies {
		h.f.opts.Metrics.AuthzAudit(p)
		h.f.opts.Logger.Info("authz audit", "listener", h.listener, "policy", p, "peer", req.PeerID,
			"method", req.Method, "host", req.Host, "path", req.Path, "source_ip", req.RemoteIP.String())
	}
}

func isExtAuthz(policy string) bool {
	for _, p := range extAuthzPrefixes {
		if strings.HasPrefix(policy, p) {
			return true
		}
	}
	return false
}

// addrPort is the IP and port of a socket address.
func addrPort(a net.Addr) (netip.Addr, uint32) {
	if t, ok := a.(*net.TCPAddr); ok {
		ap := t.AddrPort()
		return ap.Addr().Unmap(), uint32(ap.Port())
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}, 0
	}
	return ap.Addr().Unmap(), uint32(ap.Port())
}

// authorizeConn checks an inbound TCP connection against the listener's
// network RBAC, after the TLS handshake. It reports whether the
// connection may be proxied.
func (f *Forwarder) authorizeConn(c net.Conn, l *snapshot.Listener, o *tcpObs) bool {
	req := authz.Request{TCP: true, PeerID: o.peerPrincipal}
	req.DirectIP, _ = addrPort(c.RemoteAddr())
	req.RemoteIP = req.DirectIP
	req.DestIP, req.DestPort = addrPort(c.LocalAddr())
	// No request context: the connection's own life bounds the check,
	// and network RBAC never calls out.
	dec := l.Authz.Check(context.Background(), &req)
	for _, p := range dec.Audit {
		f.opts.Metrics.AuthzAudit(p)
		f.opts.Logger.Info("authz audit", "listener", l.Name, "policy", p, "peer", req.PeerID, "source_ip", req.DirectIP.String())
	}
	if dec.Allowed {
		return true
	}
	o.flags |= flagDenied
	f.opts.Metrics.AuthzDenied(dec.Policy)
	f.opts.Logger.Debug("connection denied", "listener", l.Name, "policy", dec.Policy, "reason", dec.Reason,
		"peer", req.PeerID, "source_ip", req.DirectIP.String())
	return false
}

// withoutParams removes the ";parameters" of every path segment, for
// authorization only: servlet containers (Tomcat, Jetty, Spring) serve
// /admin;x=1 as /admin, so a rule on /admin must see /admin. The app still
// receives the path as normalised.
func withoutParams(p string) string {
	if strings.IndexByte(p, ';') < 0 {
		return p
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if j := strings.IndexByte(s, ';'); j >= 0 {
			segs[i] = s[:j]
		}
	}
	return strings.Join(segs, "/")
}
