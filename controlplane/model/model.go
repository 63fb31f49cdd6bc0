package model

import (
	"maps"
	"sort"
	"time"
)

// Service is a set of workloads chosen by labels, with ports.
type Service struct {
	Name      string
	Namespace string
	Selector  map[string]string
	Ports     []ServicePort
}

// Host returns the Service's host name, NAME.NAMESPACE.
func (s *Service) Host() string { return s.Name + "." + s.Namespace }

// Port returns the port with the number, or nil.
func (s *Service) Port(port uint32) *ServicePort {
	for i := range s.Ports {
		if s.Ports[i].Port == port {
			return &s.Ports[i]
		}
	}
	return nil
}

// Selects reports whether the workload's labels satisfy the selector. An
// empty selector selects nothing.
func (s *Service) Selects(w *Workload) bool {
	if len(s.Selector) == 0 || w.Namespace != s.Namespace {
		return false
	}
	for k, v := range s.Selector {
		if w.Labels[k] != v {
			return false
		}
	}
	return true
}

// ServicePort is one port of a Service.
type ServicePort struct {
	Name       string
	Port       uint32
	TargetPort uint32
	Protocol   string
}

// PathMatchType is how a route compares the request path.
type PathMatchType int

const (
	PathPrefix PathMatchType = iota + 1
	PathExact
	PathRegex
)

// StringMatch compares a header or query value: exactly or by RE2 regex.
type StringMatch struct {
	Name  string
	Value string
	Regex bool
}

// RouteMatch is one match of a route rule; all its conditions must hold.
type RouteMatch struct {
	PathType    PathMatchType
	Path        string
	Headers     []StringMatch
	QueryParams []StringMatch
	Method      string
	// GRPC, for a GRPCRoute match: only gRPC requests match, and GRPC
	// holds the method match (Path and PathType are derived from it).
	GRPC *GRPCMethodMatch
}

// Backend is a weighted destination of a rule.
type Backend struct {
	Service   string
	Namespace string
	Port      uint32
	Weight    uint32
}

// RouteRule is one rule: matches (empty: everything) and backends.
type RouteRule struct {
	Name     string
	Matches  []RouteMatch
	Backends []Backend
	// Timeout is the request timeout; 0 means none set.
	Timeout time.Duration
	// BackendTimeout is timeouts.backendRequest (per try); 0: none set.
	BackendTimeout time.Duration
	// Filters of the rule.
	Filters Filters
	// Retry is the rule's own retry stanza (nil: the TrafficPolicy's or
	// the mesh default applies).
	Retry *Retry
}

// ParentRef is a Service (and optionally one port) a route attaches to.
type ParentRef struct {
	Service   string
	Namespace string
	// Port is 0 for every port of the Service.
	Port uint32
	// SectionName names a port instead of Port.
	SectionName string
}

// HTTPRoute is a compiled Gateway API HTTPRoute.
type HTTPRoute struct {
	// Kind is "HTTPRoute" or "GRPCRoute".
	Kind      string
	Name      string
	Namespace string
	Created   time.Time
	Parents   []ParentRef
	Rules     []RouteRule
}

// InboundPort is one port a workload's proxy accepts mesh traffic on.
type InboundPort struct {
	// Port is the proxy's inbound listener port.
	Port uint32 `json:"port"`
	// AppPort is the application's port behind it.
	AppPort  uint32 `json:"appPort"`
	Protocol string `json:"protocol"`
	// AppAddress is the IP the app listens on ("" means 127.0.0.1).
	AppAddress string `json:"appAddress,omitempty"`
}

// Workload is one registered instance: a proxy and the app beside it.
type Workload struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	Labels    map[string]string `json:"labels,omitempty"`
	// Address is where other proxies reach the inbound ports.
	Address string        `json:"address"`
	Inbound []InboundPort `json:"inbound,omitempty"`
	// Outbound is the proxy's outbound listener address ("" for none).
	Outbound string `json:"outbound,omitempty"`
	// Identity is the workload's identity (its SPIFFE ID's last segment:
	// spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/IDENTITY).
	Identity     string `json:"identity,omitempty"`
	ProxyVersion string `json:"proxyVersion,omitempty"`
	// Connected is false while the workload's proxy is away but inside its
	// grace period; its endpoints stay so a restart does not flap them.
	Connected bool `json:"connected"`
}

// NodeID is the xDS node id of the workload's proxy.
func (w *Workload) NodeID() string { return w.Name + "." + w.Namespace }

// InboundFor returns the inbound port serving an app port, or nil.
func (w *Workload) InboundFor(appPort uint32) *InboundPort {
	for i := range w.Inbound {
		if w.Inbound[i].AppPort == appPort {
			return &w.Inbound[i]
		}
	}
	return nil
}

// Clone returns a deep copy.
func (w *Workload) Clone() *Workload {
	c := *w
	c.Labels = maps.Clone(w.Labels)
	c.Inbound = append([]InboundPort(nil), w.Inbound...)
	return &c
}

// State is everything configuration is generated from. Slices are sorted
// (Services and routes by namespace/name, workloads by namespace/name) so
// generation is deterministic.
type State struct {
	Services     []*Service
	Routes       []*HTTPRoute
	MTLSPolicies []*MTLSPolicy
	// Routes above holds HTTPRoutes and GRPCRoutes.
	TCPRoutes       []*TCPRoute
	TrafficPolicies []*TrafficPolicy
	// AuthzPolicies and RequestAuthns are the AuthorizationPolicies and
	// RequestAuthentications, by namespace/name.
	AuthzPolicies []*AuthzPolicy
	RequestAuthns []*RequestAuthn
	// JWKS holds the key sets the control plane fetched, by jwksUri (a URI
	// missing here has not been fetched yet).
	JWKS      map[string]string
	Workloads []*Workload
	// Mesh is the mesh-wide configuration (the MeshConfig; zero without).
	Mesh Mesh
	// TrustDomain of the mesh's SPIFFE IDs ("" disables mTLS generation).
	TrustDomain string
	// TrustBundle is the PEM of the mesh's trusted roots.
	TrustBundle []byte
}

// MTLS modes.
const (
	MTLSStrict     = "STRICT"
	MTLSPermissive = "PERMISSIVE"
	MTLSDisable    = "DISABLE"
)

// MeshNamespace holds mesh-wide policies.
const MeshNamespace = "weft-system"

// MTLSPolicy is a compiled MTLSPolicy: a scope and a mode.
type MTLSPolicy struct {
	Name      string
	Namespace string
	Created   time.Time
	// Selector selects workloads (nil: the whole namespace, or the mesh in
	// MeshNamespace).
	Selector map[string]string
	// Service, when set, selects the workloads of that Service.
	Service string
	Mode    string
}

// MTLSMode returns the mode a workload accepts traffic with: the oldest
// matching selector (or Service) policy of its namespace, else its
// namespace's policy, else the mesh's, else STRICT.
func (s *State) MTLSMode(w *Workload) string {
	var selected, namespace, mesh *MTLSPolicy
	for _, p := range s.MTLSPolicies {
		switch {
		case p.Namespace == w.Namespace && (p.Selector != nil || p.Service != ""):
			if s.policySelects(p, w) && (selected == nil || p.Created.Before(selected.Created)) {
				selected = p
			}
		case p.Namespace == w.Namespace:
			if namespace == nil || p.Created.Before(namespace.Created) {
				namespace = p
			}
		case p.Namespace == MeshNamespace && p.Selector == nil && p.Service == "":
			if mesh == nil || p.Created.Before(mesh.Created) {
				mesh = p
			}
		}
	}
	for _, p := range []*MTLSPolicy{selected, namespace, mesh} {
		if p != nil {
			return p.Mode
		}
	}
	return MTLSStrict
}

func (s *State) policySelects(p *MTLSPolicy, w *Workload) bool {
	sel := p.Selector
	if p.Service != "" {
		svc := s.Service(p.Namespace, p.Service)
		if svc == nil {
			return false
		}
		return svc.Selects(w)
	}
	for k, v := range sel {
		if w.Labels[k] != v {
			return false
		}
	}
	return true
}

// SPIFFEID returns the workload's SPIFFE ID in the State's trust domain.
func (s *State) SPIFFEID(w *Workload) string {
	return "spiffe://" + s.TrustDomain + "/ns/" + w.Namespace + "/sa/" + w.Identity
}

// Service returns the named Service, or nil.
func (s *State) Service(namespace, name string) *Service {
	i := sort.Search(len(s.Services), func(i int) bool {
		sv := s.Services[i]
		return sv.Namespace > namespace || (sv.Namespace == namespace && sv.Name >= name)
	})
	if i < len(s.Services) && s.Services[i].Namespace == namespace && s.Services[i].Name == name {
		return s.Services[i]
	}
	return nil
}

// Sort puts the State's slices in their canonical order.
func (s *State) Sort() {
	sort.Slice(s.Services, func(i, j int) bool {
		return less(s.Services[i].Namespace, s.Services[i].Name, s.Services[j].Namespace, s.Services[j].Name)
	})
	sort.Slice(s.Routes, func(i, j int) bool {
		a, b := s.Routes[i], s.Routes[j]
		if a.Namespace == b.Namespace && a.Name == b.Name {
			return a.Kind < b.Kind
		}
		return less(a.Namespace, a.Name, b.Namespace, b.Name)
	})
	sort.Slice(s.TCPRoutes, func(i, j int) bool {
		return less(s.TCPRoutes[i].Namespace, s.TCPRoutes[i].Name, s.TCPRoutes[j].Namespace, s.TCPRoutes[j].Name)
	})
	sort.Slice(s.TrafficPolicies, func(i, j int) bool {
		return less(s.TrafficPolicies[i].Namespace, s.TrafficPolicies[i].Name, s.TrafficPolicies[j].Namespace, s.TrafficPolicies[j].Name)
	})
	sort.Slice(s.AuthzPolicies, func(i, j int) bool {
		return less(s.AuthzPolicies[i].Namespace, s.AuthzPolicies[i].Name, s.AuthzPolicies[j].Namespace, s.AuthzPolicies[j].Name)
	})
	sort.Slice(s.RequestAuthns, func(i, j int) bool {
		return less(s.RequestAuthns[i].Namespace, s.RequestAuthns[i].Name, s.RequestAuthns[j].Namespace, s.RequestAuthns[j].Name)
	})
	sort.Slice(s.Workloads, func(i, j int) bool {
		return less(s.Workloads[i].Namespace, s.Workloads[i].Name, s.Workloads[j].Namespace, s.Workloads[j].Name)
	})
}

func less(ns1, n1, ns2, n2 string) bool {
	if ns1 != ns2 {
		return ns1 < ns2
	}
	return n1 < n2
}

// Mesh is the compiled MeshConfig: one field per feature, nil when the
// feature is off.
type Mesh struct {
	Tracing *Tracing
	// Authorization is nil without spec.authorization (default action
	// ALLOW, no providers).
	Authorization *Authorization
}

// OTLP protocols.
const (
	OTLPGRPC = "grpc"
	OTLPHTTP = "http"
)

// Tracing is where the sidecars export spans and how many traces they
// start.
type Tracing struct {
	// SampleRate is the percentage (0-100) of new traces sampled.
	SampleRate float64
	// Endpoint is the OTLP receiver's HOST:PORT.
	Endpoint string
	// Protocol is OTLPGRPC or OTLPHTTP.
	Protocol string
	// Path is the OTLP/HTTP path (OTLPHTTP only).
	Path        string
	ServiceName string
}
