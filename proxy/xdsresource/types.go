package xdsresource

import (
	"regexp"
	"time"
)

// Type URLs of the resources the proxy consumes.
const (
	ListenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	RouteType    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	ClusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	EndpointType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
)

// Listener is a decoded envoy.config.listener.v3.Listener. Exactly one of
// HTTP and TCP is set.
type Listener struct {
	Name    string
	Address string // host:port from address.socket_address
	HTTP    *HTTPConnectionManager
	TCP     *TCPProxy
}

// HTTPConnectionManager is the decoded
// envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
// of a listener's (only) filter chain. Exactly one of RouteConfigName (RDS)
// and Routes (inline route_config) is set.
type HTTPConnectionManager struct {
	StatPrefix      string
	RouteConfigName string
	Routes          *RouteConfiguration
}

// TCPProxy is a decoded envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.
type TCPProxy struct {
	StatPrefix string
	Cluster    string
}

// RouteConfiguration is a decoded envoy.config.route.v3.RouteConfiguration.
type RouteConfiguration struct {
	Name         string
	VirtualHosts []VirtualHost
}

// VirtualHost is a decoded envoy.config.route.v3.VirtualHost.
type VirtualHost struct {
	Name    string
	Domains []string
	Routes  []Route
}

// Route is a decoded envoy.config.route.v3.Route; routes are matched in
// order and the first match wins.
type Route struct {
	Name   string
	Match  RouteMatch
	Action RouteAction
}

// PathKind says how RouteMatch.Path is compared.
type PathKind int

const (
	PathPrefix          PathKind = iota + 1 // match.prefix
	PathExact                               // match.path
	PathRegex                               // match.safe_regex (full match)
	PathSeparatedPrefix                     // match.path_separated_prefix
)

// RouteMatch is a decoded envoy.config.route.v3.RouteMatch.
type RouteMatch struct {
	PathKind      PathKind
	Path          string         // prefix or exact path
	PathRegex     *regexp.Regexp // for PathRegex; anchored to the whole path
	CaseSensitive bool           // default true
	Headers       []HeaderMatcher
	QueryParams   []QueryParamMatcher
}

// StringMatchKind says how a StringMatch compares.
type StringMatchKind int

const (
	MatchExact StringMatchKind = iota + 1
	MatchPrefix
	MatchSuffix
	MatchContains
	MatchRegex
)

// StringMatch is a decoded envoy.type.matcher.v3.StringMatcher.
type StringMatch struct {
	Kind       StringMatchKind
	Value      string         // for all kinds but MatchRegex
	Regex      *regexp.Regexp // for MatchRegex; anchored to the whole value
	IgnoreCase bool
}

// HeaderMatcher is a decoded envoy.config.route.v3.HeaderMatcher. Name is
// lower case; ":method" and ":authority" are pseudo-headers. Exactly one of
// Present and String is meaningful: Present (present_match) matches when
// the header exists; otherwise String is compared with the header's value.
type HeaderMatcher struct {
	Name    string
	Present bool
	String  StringMatch
	Invert  bool
}

// QueryParamMatcher is a decoded envoy.config.route.v3.QueryParameterMatcher.
type QueryParamMatcher struct {
	Name    string
	Present bool
	String  StringMatch
}

// RouteAction is what a matched route does: send to one cluster
// (route.cluster, as a single entry of weight 1) or split between weighted
// clusters (route.weighted_clusters), or answer directly
// (direct_response, when DirectStatus != 0).
type RouteAction struct {
	Clusters     []WeightedCluster
	Timeout      time.Duration // route.timeout; 0 = none set
	HasTimeout   bool          // whether route.timeout was set (0 disables)
	DirectStatus uint32
	DirectBody   string
}

// WeightedCluster is one cluster of a split; weights are relative.
type WeightedCluster struct {
	Name   string
	Weight uint32
}

// DiscoveryType is a cluster's discovery type.
type DiscoveryType int

const (
	DiscoveryStatic DiscoveryType = iota + 1
	DiscoveryEDS
)

// LBPolicy is a cluster's load-balancing policy.
type LBPolicy int

const (
	LBRoundRobin LBPolicy = iota
	LBLeastRequest
	LBRingHash
	LBRandom
	LBMaglev
)

// Cluster is a decoded envoy.config.cluster.v3.Cluster.
type Cluster struct {
	Name           string
	Discovery      DiscoveryType
	EDSServiceName string // eds_cluster_config.service_name; empty = Name
	ConnectTimeout time.Duration
	LBPolicy       LBPolicy
	// HTTP2 is set when the upstream speaks HTTP/2 (h2c without TLS): from
	// typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
	// explicit_http_config.http2_protocol_options, or the deprecated
	// http2_protocol_options field.
	HTTP2 bool
	// LoadAssignment is the inline load_assignment of a static cluster.
	LoadAssignment *ClusterLoadAssignment
}

// ClusterLoadAssignment is a decoded
// envoy.config.endpoint.v3.ClusterLoadAssignment, flattened: every
// lb_endpoint of every locality becomes one Endpoint.
type ClusterLoadAssignment struct {
	ClusterName string
	Endpoints   []Endpoint
}

// HealthStatus of an endpoint.
type HealthStatus int

const (
	HealthUnknown HealthStatus = iota
	HealthHealthy
	HealthUnhealthy
	HealthDraining
	HealthTimeout
	HealthDegraded
)

// Locality of an endpoint.
type Locality struct {
	Region, Zone, SubZone string
}

// Endpoint is one upstream host.
type Endpoint struct {
	Address  string // host:port
	Weight   uint32 // load_balancing_weight; 1 when unset
	Health   HealthStatus
	Locality Locality
	Priority uint32
	// Metadata holds the string fields of filter_metadata["weft"]
	// (see api/xdsmeta), nil when absent.
	Metadata map[string]string
}
