// Package snapshot is the proxy's runtime configuration: the decoded xDS
// resources compiled into one immutable Snapshot (route tables, clusters
// with their endpoint pickers, listeners) that the data path reads through
// an atomic pointer. A new Snapshot is compiled on every accepted xDS
// update and swapped in whole; a published Snapshot is never mutated.
package snapshot

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/weftmesh/weft/proxy/authz"
	"github.com/weftmesh/weft/proxy/balancer"
	"github.com/weftmesh/weft/proxy/normalize"
	"github.com/weftmesh/weft/proxy/route"
	"github.com/weftmesh/weft/proxy/xdsresource"
)

// Resources is the proxy's current set of decoded resources, by name.
type Resources struct {
	Listeners map[string]*xdsresource.Listener
	Routes    map[string]*xdsresource.RouteConfiguration
	Clusters  map[string]*xdsresource.Cluster
	Endpoints map[string]*xdsresource.ClusterLoadAssignment
	Secrets   map[string]*xdsresource.Secret
	// Denied are listeners that deny every request whatever their config,
	// with why: their last update could not be decoded (the listener here
	// is the one accepted before). Cleared by a listener update that
	// decodes.
	Denied map[string]string
	// Versions of each type URL, as last accepted.
	Versions map[string]string
}

// Snapshot is a compiled configuration. Immutable; safe for concurrent use.
type Snapshot struct {
	Listeners map[string]*Listener
	Routes    map[string]*route.Table
	Clusters  map[string]*Cluster
	Versions  map[string]string
	Created   time.Time
}

// Accept is how a listener takes connections.
type Accept int

const (
	// AcceptPlain takes plaintext only (mTLS DISABLE).
	AcceptPlain Accept = iota
	// AcceptMTLS takes mutual TLS only (STRICT).
	AcceptMTLS
	// AcceptBoth takes mutual TLS or plaintext, told apart by the first
	// byte (PERMISSIVE).
	AcceptBoth
)

func (a Accept) String() string {
	switch a {
	case AcceptMTLS:
		return "mtls"
	case AcceptBoth:
		return "mtls+plaintext"
	}
	return "plaintext"
}

// Listener is a compiled listener.
type Listener struct {
	Name    string
	Address string
	Accept  Accept
	// ALPN offered on TLS connections.
	ALPN []string
	// Inline is the listener's own route table; nil when it uses RDS.
	Inline *route.Table
	// RDS names the RouteConfiguration it uses.
	RDS string
	// TCPCluster is set for a TCP proxy listener.
	TCPCluster string
	// TCPClusters is set instead for a TCP proxy listener with weighted
	// clusters (weights relative; zero weights left out).
	TCPClusters []xdsresource.WeightedCluster
	// NoBind: the listener is not bound (bind_to_port false); a local
	// upstream port consults it (outbound-tcp|PORT||NAME.NS).
	NoBind bool
	// RateLimit is the HCM's local rate limit for the whole listener; nil
	// when none (or when it has no token bucket).
	RateLimit *xdsresource.LocalRateLimit
	// Tracing is the HCM's tracing config (the first chain's that has
	// one); nil when the listener traces nothing.
	Tracing *xdsresource.Tracing
	// Normalizer puts every request into canonical form before routing
	// and authorization; nil for a TCP listener.
	Normalizer *normalize.Normalizer
	// Authz is the listener's authorization (HCM filters or network
	// RBAC), enforced on inbound listeners: nil when it has none,
	// authz.DenyAll when its config could not be used.
	Authz *authz.Engine
	// AuthzPeerCert: an ext_authz filter wants the client certificate.
	AuthzPeerCert bool
}

// IsTCP reports whether the listener proxies opaque TCP.
func (l *Listener) IsTCP() bool { return l.TCPCluster != "" || len(l.TCPClusters) > 0 }

// Cluster is a compiled cluster.
type Cluster struct {
	Name  string
	HTTP2 bool
	// TLS is set when upstream connections use mutual TLS.
	TLS            *UpstreamTLS
	ConnectTimeout time.Duration
	// IdleTimeout closes pooled upstream connections idle this long (0:
	// the forwarder's default).
	IdleTimeout time.Duration
	// Config is the cluster's balancing configuration (policy, circuit
	// breakers, outlier detection), as Picker uses it.
	Config balancer.Config
	Picker *balancer.Picker
}

// UpstreamTLS says whom a cluster's upstreams must be.
type UpstreamTLS struct {
	// AllowedIDs are the SPIFFE IDs an upstream may present (none: refuse).
	AllowedIDs []string
	ALPN       []string
	// Key identifies the TLS settings, for connection pools.
	Key string
}

// RouteTable returns the listener's route table, or nil when its RDS
// config has not arrived.
func (s *Snapshot) RouteTable(l *Listener) *route.Table {
	if l.Inline != nil {
		return l.Inline
	}
	return s.Routes[l.RDS]
}

// Compile is CompileWith without options (no ext_authz client).
func Compile(res *Resources, pool *balancer.Pool) (*Snapshot, error) {
	return CompileWith(res, pool, Options{})
}

// CompileWith builds a snapshot of the resources; cluster state comes from
// the pool (and the pool forgets clusters that are gone). It fails on what
// the proxy cannot honour, naming the resource. A listener whose
// authorization cannot be compiled (or that res.Denied names) is not a
// failure of the snapshot: it gets authz.DenyAll, and CompileWith returns
// the snapshot together with an *AuthzError naming it.
func CompileWith(res *Resources, pool *balancer.Pool, opts Options) (*Snapshot, error) {
	s := &Snapshot{
		Listeners: make(map[string]*Listener, len(res.Listeners)),
		Routes:    make(map[string]*route.Table, len(res.Routes)),
		Clusters:  make(map[string]*Cluster, len(res.Clusters)),
		Versions:  map[string]string{},
		Created:   time.Now(),
	}
	for k, v := range res.Versions {
		s.Versions[k] = v
	}
	for name, rc := range res.Routes {
		s.Routes[name] = route.Compile(rc)
	}
	var authzErr *AuthzError
	for name, l := range res.Listeners {
		cl, err := compileListener(l)
		if err != nil {
			return nil, err
		}
		if err := compileAuthz(cl, l, res.Denied[name], opts); err != nil {
			if authzErr == nil {
				authzErr = &AuthzError{Listeners: map[string]error{}}
			}
			authzErr.Listeners[name] = err
		}
		s.Listeners[name] = cl
	}
	keep := make(map[string]bool, len(res.Clusters))
	for name, c := range res.Clusters {
		keep[name] = true
		var eps []xdsresource.Endpoint
		switch c.Discovery {
		case xdsresource.DiscoveryStatic:
			if c.LoadAssignment != nil {
				eps = c.LoadAssignment.Endpoints
			}
		case xdsresource.DiscoveryEDS:
			svc := c.EDSServiceName
			if svc == "" {
				svc = name
			}
			if cla := res.Endpoints[svc]; cla != nil {
				eps = cla.Endpoints
			}
		}
		var utls *UpstreamTLS
		if c.TLS != nil {
			var err error
			if utls, err = compileUpstreamTLS(c.TLS); err != nil {
				return nil, fmt.Errorf("cluster %q: %w", name, err)
			}
		}
		cfg := balancerConfig(c)
		s.Clusters[name] = &Cluster{
			Name:           name,
			HTTP2:          c.HTTP2,
			TLS:            utls,
			ConnectTimeout: c.ConnectTimeout,
			IdleTimeout:    c.IdleTimeout,
			Config:         cfg,
			Picker:         balancer.NewPicker(eps, pool.Get(name), cfg),
		}
	}
	pool.Retain(keep)
	if authzErr != nil {
		return s, authzErr
	}
	return s, nil
}

// balancerConfig is a cluster's balancing configuration.
func balancerConfig(c *xdsresource.Cluster) balancer.Config {
	return balancer.Config{
		Policy:  c.LBPolicy,
		RingMin: c.RingMin,
		RingMax: c.RingMax,
		Limits:  c.CircuitBreakers,
		Outlier: c.Outlier,
		HTTP1:   !c.HTTP2,
	}
}

// compileListener turns a listener's filter chains into how it accepts
// connections and what it does with them. Every chain must do the same
// (PERMISSIVE differs only in the transport).
func compileListener(l *xdsresource.Listener) (*Listener, error) {
	cl := &Listener{Name: l.Name, Address: l.Address, NoBind: l.NoBind}
	if len(l.FilterChains) == 0 {
		return nil, fmt.Errorf("listener %q: no filter chain", l.Name)
	}
	var tlsChain, plainChain bool
	var sig string
	for i, fc := range l.FilterChains {
		if fc.TLS != nil {
			if !fc.TLS.RequireClientCertificate {
				return nil, fmt.Errorf("listener %q: filter_chains[%d]: TLS without a client certificate is not supported (mesh traffic is mutual TLS)", l.Name, i)
			}
			tlsChain = true
			cl.ALPN = fc.TLS.Common.ALPN
		} else {
			plainChain = true
		}
		var this string
		switch {
		case fc.HTTP != nil && fc.HTTP.Routes != nil:
			this = "inline:" + fc.HTTP.Routes.Name
			if cl.Inline == nil {
				cl.Inline = route.Compile(fc.HTTP.Routes)
			}
		case fc.HTTP != nil:
			this = "rds:" + fc.HTTP.RouteConfigName
			cl.RDS = fc.HTTP.RouteConfigName
		case fc.TCP != nil && len(fc.TCP.Clusters) > 0:
			this = "tcp-weighted:" + fmt.Sprint(fc.TCP.Clusters)
			cl.TCPClusters = cl.TCPClusters[:0]
			for _, wc := range fc.TCP.Clusters {
				if wc.Weight > 0 {
					cl.TCPClusters = append(cl.TCPClusters, wc)
				}
			}
			if len(cl.TCPClusters) == 0 {
				return nil, fmt.Errorf("listener %q: filter_chains[%d]: weighted clusters all have weight 0", l.Name, i)
			}
		case fc.TCP != nil:
			this = "tcp:" + fc.TCP.Cluster
			cl.TCPCluster = fc.TCP.Cluster
		}
		if fc.HTTP != nil && fc.HTTP.Tracing != nil && cl.Tracing == nil {
			tr := *fc.HTTP.Tracing
			cl.Tracing = &tr
		}
		if fc.HTTP != nil && fc.HTTP.RateLimit != nil && fc.HTTP.RateLimit.Bucket != nil && cl.RateLimit == nil {
			rl := *fc.HTTP.RateLimit
			b := *rl.Bucket
			rl.Bucket = &b
			cl.RateLimit = &rl
		}
		if i > 0 && this != sig {
			return nil, fmt.Errorf("listener %q: filter chains that do different things are not supported", l.Name)
		}
		sig = this
	}
	n, err := compileNormalizer(l)
	if err != nil {
		return nil, fmt.Errorf("listener %q: %w", l.Name, err)
	}
	cl.Normalizer = n
	switch {
	case tlsChain && plainChain:
		if !l.TLSInspector {
			return nil, fmt.Errorf("listener %q: plaintext and TLS chains need the tls_inspector listener filter", l.Name)
		}
		cl.Accept = AcceptBoth
	case tlsChain:
		cl.Accept = AcceptMTLS
	default:
		cl.Accept = AcceptPlain
	}
	return cl, nil
}

func compileUpstreamTLS(t *xdsresource.UpstreamTLS) (*UpstreamTLS, error) {
	u := &UpstreamTLS{ALPN: t.Common.ALPN}
	for i, m := range t.Common.MatchSANs {
		if m.Type != "URI" || m.Match.Kind != xdsresource.MatchExact || !strings.HasPrefix(m.Match.Value, "spiffe://") {
			return nil, fmt.Errorf("match_typed_subject_alt_names[%d]: only exact URI SPIFFE IDs are supported", i)
		}
		u.AllowedIDs = append(u.AllowedIDs, m.Match.Value)
	}
	sort.Strings(u.AllowedIDs)
	u.Key = strings.Join(u.AllowedIDs, ",") + "|" + strings.Join(u.ALPN, ",")
	return u, nil
}

// EDSNames returns the EDS resource names the clusters need, sorted.
func EDSNames(clusters map[string]*xdsresource.Cluster) []string {
	var out []string
	for name, c := range clusters {
		if c.Discovery != xdsresource.DiscoveryEDS {
			continue
		}
		if c.EDSServiceName != "" {
			name = c.EDSServiceName
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// RDSNames returns the RouteConfiguration names the listeners need, sorted.
func RDSNames(listeners map[string]*xdsresource.Listener) []string {
	seen := map[string]bool{}
	var out []string
	for _, l := range listeners {
		for _, fc := range l.FilterChains {
			if fc.HTTP != nil && fc.HTTP.RouteConfigName != "" && !seen[fc.HTTP.RouteConfigName] {
				seen[fc.HTTP.RouteConfigName] = true
				out = append(out, fc.HTTP.RouteConfigName)
			}
		}
	}
	sort.Strings(out)
	return out
}
