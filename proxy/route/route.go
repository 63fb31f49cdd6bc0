// Package route compiles a decoded RouteConfiguration into an immutable
// lookup table and matches requests against it: the virtual host by
// authority (exact, then the longest *.suffix or prefix.* wildcard, then
// "*"), then the first route whose path, headers and query parameters all
// match. A Table is immutable and safe for concurrent use.
package route

import (
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/weftmesh/weft/proxy/xdsresource"
)

// Table is a compiled RouteConfiguration.
type Table struct {
	Name     string
	exact    map[string]*VirtualHost
	suffixes []wildcard // "*.example.com" → ".example.com", longest first
	prefixes []wildcard // "example.*" → "example.", longest first
	any      *VirtualHost
}

type wildcard struct {
	s  string
	vh *VirtualHost
}

// VirtualHost is a compiled virtual host.
type VirtualHost struct {
	Name   string
	Routes []*Route
}

// Route is a compiled route. Everything in it is immutable: the data path
// reads it from many goroutines.
type Route struct {
	Name     string
	match    xdsresource.RouteMatch
	grpcOnly bool
	// Clusters with cumulative weights for the split.
	clusters []weighted
	total    uint32
	// Timeout is the request timeout; 0 means none.
	Timeout time.Duration
	// DirectStatus, when non-zero, answers without an upstream.
	DirectStatus int
	DirectBody   string
	// Redirect, when set, answers with a redirect (see RedirectLocation).
	Redirect *xdsresource.Redirect

	// Rewrites applied before forwarding (see RewritePath).
	prefixRewrite    string
	hasPrefixRewrite bool
	regexRewrite     *xdsresource.RegexRewrite
	// HostRewrite, when set, replaces the outgoing authority.
	HostRewrite string

	// RequestHeaders and ResponseHeaders are the route's header mutations.
	RequestHeaders, ResponseHeaders Headers
	// Retry is the retry policy; nil means no retries.
	Retry *RetryPolicy
	// Mirrors are the request mirror policies.
	Mirrors []xdsresource.MirrorPolicy
	// HashPolicies compute the RING_HASH key, in order.
	HashPolicies []xdsresource.HashPolicy
	// BufferLimit is how much of a request body is kept for retries and
	// mirrors (DefaultBufferLimit when unset).
	BufferLimit int
	// Fault is the fault to inject; nil means none.
	Fault *xdsresource.Fault
	// RateLimit is the route's own local rate limit (inbound); nil means
	// none.
	RateLimit *xdsresource.LocalRateLimit
}

// DefaultBufferLimit is the request buffer limit when a route sets none.
const DefaultBufferLimit = 64 << 10

type weighted struct {
	name       string
	cumulative uint32
}

// Compile builds the table of a validated RouteConfiguration.
func Compile(rc *xdsresource.RouteConfiguration) *Table {
	t := &Table{Name: rc.Name, exact: map[string]*VirtualHost{}}
	for _, vh := range rc.VirtualHosts {
		cvh := &VirtualHost{Name: vh.Name}
		for i := range vh.Routes {
			cvh.Routes = append(cvh.Routes, compileRoute(&vh.Routes[i]))
		}
		for _, d := range vh.Domains {
			d = strings.ToLower(d)
			switch {
			case d == "*":
				if t.any == nil {
					t.any = cvh
				}
			case strings.HasPrefix(d, "*"):
				t.suffixes = append(t.suffixes, wildcard{d[1:], cvh})
			case strings.HasSuffix(d, "*"):
				t.prefixes = append(t.prefixes, wildcard{d[:len(d)-1], cvh})
			default:
				if _, dup := t.exact[d]; !dup {
					t.exact[d] = cvh
				}
			}
		}
	}
	sort.SliceStable(t.suffixes, func(i, j int) bool { return len(t.suffixes[i].s) > len(t.suffixes[j].s) })
	sort.SliceStable(t.prefixes, func(i, j int) bool { return len(t.prefixes[i].s) > len(t.prefixes[j].s) })
	return t
}

func compileRoute(r *xdsresource.Route) *Route {
	cr := &Route{
		Name:             r.Name,
		match:            r.Match,
		grpcOnly:         r.GRPCOnly,
		DirectStatus:     int(r.Action.DirectStatus),
		DirectBody:       r.Action.DirectBody,
		prefixRewrite:    r.PrefixRewrite,
		hasPrefixRewrite: r.HasPrefixRewrite,
		regexRewrite:     r.RegexRewrite,
		HostRewrite:      r.HostRewrite,
		RequestHeaders:   compileHeaders(r.RequestHeaders),
		ResponseHeaders:  compileHeaders(r.ResponseHeaders),
		Retry:            compileRetry(r.Retry),
		Mirrors:          slices.Clone(r.Mirrors),
		HashPolicies:     slices.Clone(r.HashPolicies),
		BufferLimit:      int(r.BufferLimit),
	}
	if cr.BufferLimit <= 0 {
		cr.BufferLimit = DefaultBufferLimit
	}
	if r.Redirect != nil {
		rd := *r.Redirect
		if rd.StatusCode == 0 {
			rd.StatusCode = http.StatusMovedPermanently
		}
		cr.Redirect = &rd
	}
	if r.Fault != nil {
		f := *r.Fault
		cr.Fault = &f
	}
	if r.RateLimit != nil && r.RateLimit.Bucket != nil {
		rl := *r.RateLimit
		b := *rl.Bucket
		rl.Bucket = &b
		cr.RateLimit = &rl
	}
	if r.Action.HasTimeout {
		cr.Timeout = r.Action.Timeout
	}
	for _, c := range r.Action.Clusters {
		if c.Weight == 0 {
			continue
		}
		cr.total += c.Weight
		cr.clusters = append(cr.clusters, weighted{name: c.Name, cumulative: cr.total})
	}
	if cr.DirectStatus == 0 && cr.Redirect == nil && len(cr.clusters) == 0 {
		cr.DirectStatus = http.StatusServiceUnavailable
	}
	return cr
}

// VirtualHost finds the virtual host of an authority (host[:port]),
// compared case-insensitively and without a trailing dot; nil if none.
func (t *Table) VirtualHost(authority string) *VirtualHost {
	host := strings.ToLower(authority)
	if h, port, ok := splitPort(host); ok {
		host = strings.TrimSuffix(h, ".") + ":" + port
	} else {
		host = strings.TrimSuffix(host, ".")
	}
	if vh := t.exact[host]; vh != nil {
		return vh
	}
	for _, w := range t.suffixes {
		if strings.HasSuffix(host, w.s) && len(host) > len(w.s) {
			return w.vh
		}
	}
	for _, w := range t.prefixes {
		if strings.HasPrefix(host, w.s) && len(host) > len(w.s) {
			return w.vh
		}
	}
	return t.any
}

func splitPort(hostport string) (host, port string, ok bool) {
	i := strings.LastIndexByte(hostport, ':')
	if i < 0 || strings.Contains(hostport[i:], "]") {
		return hostport, "", false
	}
	return hostport[:i], hostport[i+1:], true
}

// Match returns the first route of the virtual host matching the request,
// or nil.
func (vh *VirtualHost) Match(r *http.Request) *Route {
	var query url.Values
	for _, rt := range vh.Routes {
		if rt.matches(r, &query) {
			return rt
		}
	}
	return nil
}

func (rt *Route) matches(r *http.Request, query *url.Values) bool {
	m := &rt.match
	if rt.grpcOnly && !IsGRPC(r) {
		return false
	}
	path := r.URL.Path
	if r.URL.RawPath != "" {
		path = r.URL.RawPath
	}
	switch m.PathKind {
	case xdsresource.PathPrefix:
		if !hasPrefix(path, m.Path, m.CaseSensitive) {
			return false
		}
	case xdsresource.PathExact:
		if !equal(path, m.Path, m.CaseSensitive) {
			return false
		}
	case xdsresource.PathSeparatedPrefix:
		if !hasPrefix(path, m.Path, m.CaseSensitive) {
			return false
		}
		if len(path) > len(m.Path) && path[len(m.Path)] != '/' {
			return false
		}
	case xdsresource.PathRegex:
		if !m.PathRegex.MatchString(path) {
			return false
		}
	}
	for i := range m.Headers {
		if !matchHeader(&m.Headers[i], r) {
			return false
		}
	}
	if len(m.QueryParams) > 0 {
		if *query == nil {
			*query = r.URL.Query()
		}
		for i := range m.QueryParams {
			q := &m.QueryParams[i]
			vals, ok := (*query)[q.Name]
			if !ok {
				return false
			}
			if q.Present {
				continue
			}
			if len(vals) == 0 || !matchString(&q.String, vals[0]) {
				return false
			}
		}
	}
	return true
}

func hasPrefix(s, prefix string, caseSensitive bool) bool {
	if caseSensitive {
		return strings.HasPrefix(s, prefix)
	}
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

func equal(a, b string, caseSensitive bool) bool {
	if caseSensitive {
		return a == b
	}
	return strings.EqualFold(a, b)
}

// headerValue returns a request header's value as Envoy sees it: pseudo
// headers from the request line, several values joined with ",".
func headerValue(name string, r *http.Request) (string, bool) {
	switch name {
	case ":method":
		return r.Method, true
	case ":authority", "host":
		return r.Host, true
	case ":path":
		return r.URL.RequestURI(), true
	case ":scheme":
		if r.TLS != nil {
			return "https", true
		}
		return "http", true
	}
	vals := r.Header.Values(name)
	if len(vals) == 0 {
		return "", false
	}
	if len(vals) == 1 {
		return vals[0], true
	}
	return strings.Join(vals, ","), true
}

func matchHeader(h *xdsresource.HeaderMatcher, r *http.Request) bool {
	v, ok := headerValue(h.Name, r)
	var result bool
	if h.Present {
		result = ok
	} else {
		result = ok && matchString(&h.String, v)
	}
	if h.Invert {
		return !result
	}
	return result
}

func matchString(m *xdsresource.StringMatch, v string) bool {
	switch m.Kind {
	case xdsresource.MatchExact:
		return equal(v, m.Value, !m.IgnoreCase)
	case xdsresource.MatchPrefix:
		return hasPrefix(v, m.Value, !m.IgnoreCase)
	case xdsresource.MatchSuffix:
		if m.IgnoreCase {
			return len(v) >= len(m.Value) && strings.EqualFold(v[len(v)-len(m.Value):], m.Value)
		}
		return strings.HasSuffix(v, m.Value)
	case xdsresource.MatchContains:
		if m.IgnoreCase {
			return strings.Contains(strings.ToLower(v), strings.ToLower(m.Value))
		}
		return strings.Contains(v, m.Value)
	case xdsresource.MatchRegex:
		return m.Regex.MatchString(v)
	}
	return false
}

// PickCluster chooses a cluster of the route's split, weighted. It returns
// "" for a direct-response route.
func (rt *Route) PickCluster() string {
	switch len(rt.clusters) {
	case 0:
		return ""
	case 1:
		return rt.clusters[0].name
	}
	n := rand.Uint32N(rt.total)
	for _, c := range rt.clusters {
		if n < c.cumulative {
			return c.name
		}
	}
	return rt.clusters[len(rt.clusters)-1].name
}

// Clusters lists the route's clusters (for config dumps and warming).
func (rt *Route) Clusters() []string {
	out := make([]string, len(rt.clusters))
	for i, c := range rt.clusters {
		out[i] = c.name
	}
	return out
}

// VirtualHostDump describes a virtual host for config dumps.
type VirtualHostDump struct {
	Name    string      `json:"name"`
	Domains []string    `json:"domains"`
	Routes  []RouteDump `json:"routes"`
}

// RouteDump describes a route for config dumps.
type RouteDump struct {
	Name            string        `json:"name"`
	GRPC            bool          `json:"grpc,omitempty"`
	Clusters        []string      `json:"clusters,omitempty"`
	Weights         []uint32      `json:"weights,omitempty"`
	DirectStatus    int           `json:"directStatus,omitempty"`
	Timeout         string        `json:"timeout,omitempty"`
	Redirect        *RedirectDump `json:"redirect,omitempty"`
	PrefixRewrite   *string       `json:"prefixRewrite,omitempty"`
	RegexRewrite    []string      `json:"regexRewrite,omitempty"` // pattern, substitution
	HostRewrite     string        `json:"hostRewrite,omitempty"`
	RequestHeaders  *HeadersDump  `json:"requestHeaders,omitempty"`
	ResponseHeaders *HeadersDump  `json:"responseHeaders,omitempty"`
	Retry           *RetryDump    `json:"retry,omitempty"`
	Mirrors         []MirrorDump  `json:"mirrors,omitempty"`
	HashPolicies    []HashDump    `json:"hashPolicies,omitempty"`
	BufferLimit     int           `json:"bufferLimit,omitempty"`
	Fault           *FaultDump    `json:"fault,omitempty"`
	RateLimit       *RateDump     `json:"rateLimit,omitempty"`
}

// Dump describes the table for config dumps.
func (t *Table) Dump() []VirtualHostDump {
	domains := map[*VirtualHost][]string{}
	var order []*VirtualHost
	add := func(vh *VirtualHost, d string) {
		if _, ok := domains[vh]; !ok {
			order = append(order, vh)
		}
		domains[vh] = append(domains[vh], d)
	}
	for d, vh := range t.exact {
		add(vh, d)
	}
	for _, w := range t.suffixes {
		add(w.vh, "*"+w.s)
	}
	for _, w := range t.prefixes {
		add(w.vh, w.s+"*")
	}
	if t.any != nil {
		add(t.any, "*")
	}
	sort.Slice(order, func(i, j int) bool { return order[i].Name < order[j].Name })
	out := make([]VirtualHostDump, 0, len(order))
	for _, vh := range order {
		ds := domains[vh]
		sort.Strings(ds)
		vd := VirtualHostDump{Name: vh.Name, Domains: ds}
		for _, rt := range vh.Routes {
			rd := rt.dump()
			prev := uint32(0)
			for _, c := range rt.clusters {
				rd.Weights = append(rd.Weights, c.cumulative-prev)
				prev = c.cumulative
			}
			if rt.Timeout > 0 {
				rd.Timeout = rt.Timeout.String()
			}
			vd.Routes = append(vd.Routes, rd)
		}
		out = append(out, vd)
	}
	return out
}

// EachRoute calls fn for every route of the table (a route shared by
// several domains once).
func (t *Table) EachRoute(fn func(*Route)) {
	seen := map[*VirtualHost]bool{}
	visit := func(vh *VirtualHost) {
		if vh == nil || seen[vh] {
			return
		}
		seen[vh] = true
		for _, rt := range vh.Routes {
			fn(rt)
		}
	}
	for _, vh := range t.exact {
		visit(vh)
	}
	for _, w := range t.suffixes {
		visit(w.vh)
	}
	for _, w := range t.prefixes {
		visit(w.vh)
	}
	visit(t.any)
}
