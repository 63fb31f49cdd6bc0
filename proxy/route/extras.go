package route

import (
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/weftmesh/weft/proxy/xdsresource"
)

// IsGRPC reports whether a request is gRPC: its content-type starts with
// application/grpc (Envoy's match.grpc).
func IsGRPC(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	return len(ct) >= 16 && strings.EqualFold(ct[:16], "application/grpc")
}

// Headers is a compiled header mutation: removals, then additions (as
// Envoy: remove before add). Immutable.
type Headers struct {
	remove []string // canonical keys
	add    []headerOp
}

type headerOp struct {
	key, value       string // canonical key
	append, ifAbsent bool
}

func compileHeaders(m xdsresource.HeaderMutation) Headers {
	var h Headers
	for _, name := range m.Remove {
		if strings.HasPrefix(name, ":") {
			continue
		}
		h.remove = append(h.remove, textproto.CanonicalMIMEHeaderKey(name))
	}
	for _, o := range m.Add {
		// Pseudo-headers and Host are not headers here: they cannot be
		// set this way (host_rewrite_literal sets the authority).
		if strings.HasPrefix(o.Name, ":") || strings.EqualFold(o.Name, "host") {
			continue
		}
		h.add = append(h.add, headerOp{key: textproto.CanonicalMIMEHeaderKey(o.Name), value: o.Value, append: o.Append, ifAbsent: o.IfAbsent})
	}
	return h
}

// Empty reports whether the mutation does nothing.
func (m *Headers) Empty() bool { return len(m.remove) == 0 && len(m.add) == 0 }

// Apply mutates h.
func (m *Headers) Apply(h http.Header) {
	for _, k := range m.remove {
		delete(h, k)
	}
	for i := range m.add {
		a := &m.add[i]
		switch {
		case a.ifAbsent:
			if len(h[a.key]) == 0 {
				h[a.key] = []string{a.value}
			}
		case a.append:
			h[a.key] = append(h[a.key], a.value)
		default:
			h[a.key] = []string{a.value}
		}
	}
}

// RetryOn is a set of retry conditions.
type RetryOn uint32

// Retry conditions (Envoy's retry_on names in the comments).
const (
	Retry5xx             RetryOn = 1 << iota // 5xx (and resets, connect failures, per-try timeouts)
	RetryGatewayError                        // gateway-error: 502, 503, 504 (and resets, connect failures, per-try timeouts)
	RetryReset                               // reset: no answer (reset, EOF, per-try timeout)
	RetryConnectFailure                      // connect-failure
	RetryRefusedStream                       // refused-stream (HTTP/2 REFUSED_STREAM)
	RetryRetriable4xx                        // retriable-4xx: 409
	RetryStatusCodes                         // retriable-status-codes
	RetryGRPCCancelled                       // cancelled: grpc-status 1
	RetryGRPCDeadline                        // deadline-exceeded: grpc-status 4
	RetryGRPCResource                        // resource-exhausted: grpc-status 8
	RetryGRPCInternal                        // internal: grpc-status 13
	RetryGRPCUnavailable                     // unavailable: grpc-status 14
)

var retryNames = []struct {
	name string
	on   RetryOn
}{
	{"5xx", Retry5xx}, {"gateway-error", RetryGatewayError}, {"reset", RetryReset},
	{"connect-failure", RetryConnectFailure}, {"refused-stream", RetryRefusedStream},
	{"retriable-4xx", RetryRetriable4xx}, {"retriable-status-codes", RetryStatusCodes},
	{"cancelled", RetryGRPCCancelled}, {"deadline-exceeded", RetryGRPCDeadline},
	{"resource-exhausted", RetryGRPCResource}, {"internal", RetryGRPCInternal},
	{"unavailable", RetryGRPCUnavailable},
}

// RetryPolicy is a compiled retry policy. Immutable.
type RetryPolicy struct {
	On            RetryOn
	NumRetries    int
	PerTryTimeout time.Duration
	StatusCodes   []int
	// BackoffBase and BackoffMax bound the exponential backoff with full
	// jitter between attempts.
	BackoffBase, BackoffMax time.Duration
	// PreviousHosts: a retry prefers an endpoint not tried yet.
	PreviousHosts bool
	// Methods, when non-nil, are the only methods retried.
	Methods []string
}

func compileRetry(p *xdsresource.RetryPolicy) *RetryPolicy {
	if p == nil {
		return nil
	}
	rp := &RetryPolicy{
		NumRetries:    int(p.NumRetries),
		PerTryTimeout: p.PerTryTimeout,
		BackoffBase:   p.BackoffBase,
		BackoffMax:    p.BackoffMax,
		PreviousHosts: p.PreviousHosts,
		Methods:       slices.Clone(p.RetriableMethods),
	}
	if p.RetriableMethods != nil && rp.Methods == nil {
		rp.Methods = []string{}
	}
	for _, c := range p.RetryOn {
		for _, n := range retryNames {
			if n.name == strings.TrimSpace(c) {
				rp.On |= n.on
			}
		}
	}
	for _, c := range p.RetriableStatusCodes {
		rp.StatusCodes = append(rp.StatusCodes, int(c))
	}
	if rp.BackoffBase <= 0 {
		rp.BackoffBase = 25 * time.Millisecond
	}
	if rp.BackoffMax <= 0 {
		rp.BackoffMax = 10 * rp.BackoffBase
	}
	if rp.BackoffMax < rp.BackoffBase {
		rp.BackoffMax = rp.BackoffBase
	}
	return rp
}

// MethodAllowed reports whether requests of the method may be retried.
func (p *RetryPolicy) MethodAllowed(method string) bool {
	return p.Methods == nil || slices.Contains(p.Methods, method)
}

// RetryStatus reports whether an upstream answer (status code and, for
// gRPC, a grpc-status in the headers of a trailers-only answer) is to be
// retried under the policy.
func (p *RetryPolicy) RetryStatus(code int, h http.Header) bool {
	if code >= 500 && p.On&Retry5xx != 0 {
		return true
	}
	if (code == 502 || code == 503 || code == 504) && p.On&RetryGatewayError != 0 {
		return true
	}
	if code == 409 && p.On&RetryRetriable4xx != 0 {
		return true
	}
	if p.On&RetryStatusCodes != 0 && slices.Contains(p.StatusCodes, code) {
		return true
	}
	const grpcOn = RetryGRPCCancelled | RetryGRPCDeadline | RetryGRPCResource | RetryGRPCInternal | RetryGRPCUnavailable
	if p.On&grpcOn != 0 {
		gs := h["Grpc-Status"]
		if len(gs) == 0 {
			return false
		}
		switch gs[0] {
		case "1":
			return p.On&RetryGRPCCancelled != 0
		case "4":
			return p.On&RetryGRPCDeadline != 0
		case "8":
			return p.On&RetryGRPCResource != 0
		case "13":
			return p.On&RetryGRPCInternal != 0
		case "14":
			return p.On&RetryGRPCUnavailable != 0
		}
	}
	return false
}

// RedirectLocation builds the Location of a redirect route's answer, per
// the Gateway API: scheme, host and port replaced as configured (the port
// of a changed scheme is its default; default ports are left out), the
// path replaced whole or the matched prefix replaced, and the query kept
// unless stripped.
func (rt *Route) RedirectLocation(r *http.Request) string {
	rd := rt.Redirect
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host, port, hasPort := splitPort(r.Host)
	if !hasPort {
		host = r.Host
	}
	if rd.Scheme != "" {
		scheme = strings.ToLower(rd.Scheme)
		port = ""
	}
	if rd.Host != "" {
		host = rd.Host
	}
	if rd.Port != 0 {
		port = strconv.FormatUint(uint64(rd.Port), 10)
	}
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	path := r.URL.EscapedPath()
	switch {
	case rd.Path != "":
		path = rd.Path
	case rd.HasPrefix:
		path = rt.replacePrefix(path, rd.PrefixRewrite)
	}
	var b strings.Builder
	b.Grow(len(scheme) + len(host) + len(path) + len(r.URL.RawQuery) + 16)
	b.WriteString(scheme)
	b.WriteString("://")
	b.WriteString(host)
	if port != "" {
		b.WriteByte(':')
		b.WriteString(port)
	}
	b.WriteString(path)
	if !rd.StripQuery && r.URL.RawQuery != "" {
		b.WriteByte('?')
		b.WriteString(r.URL.RawQuery)
	}
	return b.String()
}

// replacePrefix replaces the route's matched prefix of path (escaped) with
// repl, joining the two with exactly one slash where the match ended at a
// segment boundary: "/foo" → "/bar" makes "/foo/x" "/bar/x", "/foo" → "/"
// makes it "/x".
func (rt *Route) replacePrefix(path, repl string) string {
	n := 0
	switch rt.match.PathKind {
	case xdsresource.PathPrefix, xdsresource.PathSeparatedPrefix, xdsresource.PathExact:
		n = min(len(rt.match.Path), len(path))
	default:
		return path
	}
	prefix, rest := path[:n], path[n:]
	switch {
	case rest == "":
		if repl == "" {
			return "/"
		}
		return repl
	case strings.HasSuffix(repl, "/") && strings.HasPrefix(rest, "/"):
		return repl + rest[1:]
	case strings.HasSuffix(prefix, "/") && !strings.HasSuffix(repl, "/") && !strings.HasPrefix(rest, "/"):
		return repl + "/" + rest
	case repl == "" && !strings.HasPrefix(rest, "/"):
		return "/" + rest
	}
	return repl + rest
}

// Rewrites reports whether the route rewrites the path.
func (rt *Route) Rewrites() bool { return rt.hasPrefixRewrite || rt.regexRewrite != nil }

// RewritePath applies the route's prefix_rewrite or regex_rewrite to u
// (the outgoing URL, a copy the caller owns).
func (rt *Route) RewritePath(u *url.URL) {
	path := u.EscapedPath()
	switch {
	case rt.hasPrefixRewrite:
		path = rt.replacePrefix(path, rt.prefixRewrite)
	case rt.regexRewrite != nil:
		path = rt.regexRewrite.Pattern.ReplaceAllString(path, rt.regexRewrite.Substitution)
	default:
		return
	}
	if path == "" || path[0] != '/' {
		path = "/" + path
	}
	if !strings.Contains(path, "%") {
		u.Path, u.RawPath = path, ""
		return
	}
	if p, err := url.PathUnescape(path); err == nil {
		u.Path, u.RawPath = p, path
	} else {
		u.Path, u.RawPath = path, ""
	}
}

// Dump types (config dumps).
type (
	RedirectDump struct {
		Scheme        string  `json:"scheme,omitempty"`
		Host          string  `json:"host,omitempty"`
		Port          uint32  `json:"port,omitempty"`
		Path          string  `json:"path,omitempty"`
		PrefixRewrite *string `json:"prefixRewrite,omitempty"`
		StatusCode    int     `json:"statusCode"`
		StripQuery    bool    `json:"stripQuery,omitempty"`
	}
	HeadersDump struct {
		Set    map[string]string `json:"set,omitempty"`
		Add    map[string]string `json:"add,omitempty"`
		Remove []string          `json:"remove,omitempty"`
	}
	RetryDump struct {
		RetryOn       []string `json:"retryOn"`
		NumRetries    int      `json:"numRetries"`
		PerTryTimeout string   `json:"perTryTimeout,omitempty"`
		StatusCodes   []int    `json:"statusCodes,omitempty"`
		Backoff       string   `json:"backoff"`
		PreviousHosts bool     `json:"previousHosts,omitempty"`
		Methods       []string `json:"methods,omitempty"`
	}
	MirrorDump struct {
		Cluster    string `json:"cluster"`
		PerMillion uint32 `json:"perMillion"`
	}
	HashDump struct {
		Header    string `json:"header,omitempty"`
		Cookie    string `json:"cookie,omitempty"`
		CookieTTL string `json:"cookieTtl,omitempty"`
		SourceIP  bool   `json:"sourceIp,omitempty"`
	}
	FaultDump struct {
		Delay           string  `json:"delay,omitempty"`
		DelayPerMillion uint32  `json:"delayPerMillion,omitempty"`
		AbortStatus     int     `json:"abortStatus,omitempty"`
		AbortGRPCStatus *uint32 `json:"abortGrpcStatus,omitempty"`
		AbortPerMillion uint32  `json:"abortPerMillion,omitempty"`
	}
	RateDump struct {
		MaxTokens     uint32 `json:"maxTokens"`
		TokensPerFill uint32 `json:"tokensPerFill"`
		FillInterval  string `json:"fillInterval"`
		Enabled       uint32 `json:"enabledPerMillion"`
		Enforced      uint32 `json:"enforcedPerMillion"`
	}
)

func (m *Headers) dump() *HeadersDump {
	if m.Empty() {
		return nil
	}
	d := &HeadersDump{Remove: m.remove}
	for _, a := range m.add {
		if a.append {
			if d.Add == nil {
				d.Add = map[string]string{}
			}
			d.Add[a.key] = a.value
		} else {
			if d.Set == nil {
				d.Set = map[string]string{}
			}
			d.Set[a.key] = a.value
		}
	}
	return d
}

func (rt *Route) dump() RouteDump {
	rd := RouteDump{Name: rt.Name, GRPC: rt.grpcOnly, Clusters: rt.Clusters(), DirectStatus: rt.DirectStatus,
		HostRewrite: rt.HostRewrite, RequestHeaders: rt.RequestHeaders.dump(), ResponseHeaders: rt.ResponseHeaders.dump()}
	if rt.BufferLimit != DefaultBufferLimit {
		rd.BufferLimit = rt.BufferLimit
	}
	if r := rt.Redirect; r != nil {
		d := &RedirectDump{Scheme: r.Scheme, Host: r.Host, Port: r.Port, Path: r.Path, StatusCode: r.StatusCode, StripQuery: r.StripQuery}
		if r.HasPrefix {
			p := r.PrefixRewrite
			d.PrefixRewrite = &p
		}
		rd.Redirect = d
	}
	if rt.hasPrefixRewrite {
		p := rt.prefixRewrite
		rd.PrefixRewrite = &p
	}
	if rt.regexRewrite != nil {
		rd.RegexRewrite = []string{rt.regexRewrite.Pattern.String(), rt.regexRewrite.Substitution}
	}
	if p := rt.Retry; p != nil {
		d := &RetryDump{NumRetries: p.NumRetries, StatusCodes: p.StatusCodes, PreviousHosts: p.PreviousHosts, Methods: p.Methods,
			Backoff: p.BackoffBase.String() + ".." + p.BackoffMax.String()}
		if p.PerTryTimeout > 0 {
			d.PerTryTimeout = p.PerTryTimeout.String()
		}
		for _, n := range retryNames {
			if p.On&n.on != 0 {
				d.RetryOn = append(d.RetryOn, n.name)
			}
		}
		rd.Retry = d
	}
	for _, m := range rt.Mirrors {
		rd.Mirrors = append(rd.Mirrors, MirrorDump{Cluster: m.Cluster, PerMillion: m.PerMillion})
	}
	for _, h := range rt.HashPolicies {
		d := HashDump{Header: h.Header, Cookie: h.Cookie, SourceIP: h.SourceIP}
		if h.CookieTTL > 0 {
			d.CookieTTL = h.CookieTTL.String()
		}
		rd.HashPolicies = append(rd.HashPolicies, d)
	}
	if f := rt.Fault; f != nil {
		d := &FaultDump{DelayPerMillion: f.DelayPerMillion, AbortStatus: f.AbortStatus, AbortPerMillion: f.AbortPerMillion}
		if f.Delay > 0 {
			d.Delay = f.Delay.String()
		}
		if f.HasGRPCAbort {
			c := f.AbortGRPCStatus
			d.AbortGRPCStatus = &c
		}
		rd.Fault = d
	}
	if l := rt.RateLimit; l != nil && l.Bucket != nil {
		rd.RateLimit = &RateDump{MaxTokens: l.Bucket.MaxTokens, TokensPerFill: l.Bucket.TokensPerFill, FillInterval: l.Bucket.FillInterval.String(),
			Enabled: l.Enabled, Enforced: l.Enforced}
	}
	return rd
}
