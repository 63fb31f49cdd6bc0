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
	SecretType   = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
)

// Listener is a decoded envoy.config.listener.v3.Listener.
//
// A connection is served by the filter chain whose TransportProtocol it
// matches: "tls" or "raw_buffer" as the TLS inspector detects it, or else
// the chain with TransportProtocol "". No two chains have the same
// TransportProtocol, and a chain with one set requires TLSInspector.
type Listener struct {
	Name    string
	Address string // host:port from address.socket_address
	// TLSInspector: the listener has the envoy.filters.listener.tls_inspector
	// listener filter (required when a filter chain matches on
	// transport_protocol).
	TLSInspector bool
	// FilterChains, in order (at least one); each has exactly one of HTTP
	// and TCP.
	FilterChains []FilterChain
}

// Transport protocols a filter chain may match on
// (FilterChain.TransportProtocol).
const (
	TransportAny       = ""
	TransportTLS       = "tls"
	TransportRawBuffer = "raw_buffer"
)

// FilterChain is a decoded envoy.config.listener.v3.FilterChain.
type FilterChain struct {
	Name string
	// TransportProtocol is filter_chain_match.transport_protocol: ""
	// (any), "tls" or "raw_buffer". A "tls" chain has TLS, a "raw_buffer"
	// chain has not.
	TransportProtocol string
	// TLS is the transport_socket "envoy.transport_sockets.tls" with a
	// DownstreamTlsContext; nil means plaintext.
	TLS  *DownstreamTLS
	HTTP *HTTPConnectionManager
	TCP  *TCPProxy
}

// DownstreamTLS is a decoded
// envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext: how a
// listener's filter chain terminates TLS. When RequireClientCertificate is
// set, Common.ValidationSecret is too.
type DownstreamTLS struct {
	RequireClientCertificate bool // require_client_certificate
	Common                   CommonTLS
}

// UpstreamTLS is a decoded
// envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext: how a
// cluster originates TLS. Common.ValidationSecret is always set: the proxy
// verifies every upstream it speaks TLS to.
type UpstreamTLS struct {
	SNI    string // sni; "" sends none
	Common CommonTLS
}

// CommonTLS is a decoded
// envoy.extensions.transport_sockets.tls.v3.CommonTlsContext. Certificates
// and trusted CAs are never inline: they are named here and come as
// Secrets over ADS.
type CommonTLS struct {
	// CertificateSecret names the SDS secret with the certificate
	// (tls_certificate_sds_secret_configs[0].name; exactly one; its
	// sds_config must be ADS). Always set.
	CertificateSecret string
	// ValidationSecret names the SDS secret with the trusted CA:
	// combined_validation_context.validation_context_sds_secret_config.name,
	// or validation_context_sds_secret_config.name; "" when none.
	ValidationSecret string
	// MatchSANs from
	// combined_validation_context.default_validation_context.match_typed_subject_alt_names
	// (or validation_context's); a peer must match one. Empty means any
	// peer the trusted CA vouches for; non-empty requires
	// ValidationSecret.
	MatchSANs []SANMatcher
	ALPN      []string // alpn_protocols
	// MinVersion and MaxVersion come from tls_params as TLS version
	// numbers (tls.VersionTLS12 = 0x0303, tls.VersionTLS13 = 0x0304); 0 is
	// unset. Both are 0 or at least TLS 1.2: weft requires TLS 1.2 or later.
	MinVersion, MaxVersion uint16
}

// SAN types of a SANMatcher.
const (
	SANEmail     = "EMAIL"
	SANDNS       = "DNS"
	SANURI       = "URI"
	SANIPAddress = "IP_ADDRESS"
)

// SANMatcher is a decoded
// envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher: it
// matches a peer certificate with a subject alternative name of type Type
// that Match matches.
type SANMatcher struct {
	Type  string // SANURI, SANDNS, SANEmail or SANIPAddress
	Match StringMatch
}

// Secret is a decoded envoy.extensions.transport_sockets.tls.v3.Secret. The
// proxy takes only trusted CAs by SDS: it generates its own key, so
// certificates are not delivered this way.
type Secret struct {
	Name string
	// TrustedCA is the PEM bundle of validation_context.trusted_ca, which
	// holds at least one certificate and nothing but certificates.
	TrustedCA []byte
}

// HTTPConnectionManager is the decoded
// envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
// of a filter chain. Exactly one of RouteConfigName (RDS) and Routes
// (inline route_config) is set.
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
	// HTTP2 is set when the upstream speaks HTTP/2 (h2 with TLS, h2c
	// without): from
	// typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
	// explicit_http_config.http2_protocol_options, or the deprecated
	// http2_protocol_options field.
	HTTP2 bool
	// LoadAssignment is the inline load_assignment of a static cluster.
	LoadAssignment *ClusterLoadAssignment
	// TLS is the transport_socket "envoy.transport_sockets.tls" with an
	// UpstreamTlsContext; nil means plaintext.
	TLS *UpstreamTLS
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
