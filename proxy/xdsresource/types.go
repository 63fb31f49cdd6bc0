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
	// NoBind: bind_to_port is false; the proxy does not listen on Address
	// (outbound TCP listeners consulted by local upstream ports).
	NoBind bool
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
	// HTTPFilters are the names of http_filters in order; the last is
	// always FilterRouter. Only FilterFault, FilterLocalRateLimit,
	// FilterRouter and the authorization filters (FilterRBAC,
	// FilterJWTAuthn, FilterExtAuthz; see Authz) are accepted.
	HTTPFilters []string
	// RateLimit is the local_ratelimit filter's own config when it has a
	// token bucket (a limit for the whole listener); nil otherwise.
	RateLimit *LocalRateLimit
	// Authz holds the authorization filters' configs (RBAC, jwt_authn,
	// ext_authz), in the order of HTTPFilters; nil when there is none.
	Authz *AuthzFilters
	// Normalization is how requests are put into canonical form before
	// routing and authorization (zero value: Weft's defaults).
	Normalization Normalization
	// Tracing is the HCM's tracing (provider envoy.tracers.opentelemetry);
	// nil when the HCM traces nothing.
	Tracing *Tracing
}

// Tracing is a decoded HttpConnectionManager.Tracing with an
// envoy.config.trace.v3.OpenTelemetryConfig provider: where the proxy
// exports its spans, and how many traces it starts. Comparable: a change
// is detected with ==.
type Tracing struct {
	// SamplePercent is the share of traces started here that are
	// recorded, 0..100: random_sampling (default 100) times
	// overall_sampling (default 100). An incoming decision is respected.
	SamplePercent float64
	// Protocol is TracingGRPC (grpc_service.envoy_grpc, OTLP/gRPC over
	// h2c) or TracingHTTP (http_service, OTLP/HTTP POST).
	Protocol string
	// Cluster names the collector's cluster (envoy_grpc.cluster_name or
	// http_uri.cluster); exports go to its endpoints.
	Cluster string
	// URI is http_uri.uri (HTTP only), and Path its path (and query), the
	// request path of every export (DefaultTracesPath when it has none).
	URI, Path string
	// Timeout bounds one export (grpc_service.timeout or
	// http_uri.timeout); 0 is the exporter's default.
	Timeout time.Duration
	// ServiceName is OpenTelemetryConfig.service_name, the resource's
	// service.name ("" : the proxy chooses).
	ServiceName string
}

// TCPProxy is a decoded envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.
type TCPProxy struct {
	StatPrefix string
	// Cluster (cluster) or Clusters (weighted_clusters): exactly one is
	// set.
	Cluster  string
	Clusters []WeightedCluster
	// RBAC is the network RBAC filter before the TCP proxy, if any.
	RBAC *NetworkRBAC
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
	RouteExtras
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
	ClusterExtras
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

// ---- Traffic management (see docs/xds.md for the mapping) ----

// RetryPolicy is a decoded envoy.config.route.v3.RetryPolicy.
type RetryPolicy struct {
	// RetryOn holds the retry_on conditions, split on commas:
	// "5xx", "gateway-error", "reset", "connect-failure",
	// "refused-stream", "retriable-4xx", "retriable-status-codes",
	// "cancelled", "deadline-exceeded", "internal", "resource-exhausted",
	// "unavailable". Any other condition is a decode error.
	RetryOn []string
	// NumRetries is num_retries (1 when unset, as Envoy).
	NumRetries uint32
	// PerTryTimeout is per_try_timeout; 0 means none.
	PerTryTimeout time.Duration
	// RetriableStatusCodes for "retriable-status-codes".
	RetriableStatusCodes []uint32
	// BackoffBase and BackoffMax from retry_back_off (defaults 25ms and
	// 10 × base, as Envoy).
	BackoffBase, BackoffMax time.Duration
	// PreviousHosts: retry_host_predicate has
	// envoy.retry_host_predicates.previous_hosts.
	PreviousHosts bool
	// RetriableMethods, when non-nil, lists the only methods that may be
	// retried: from retriable_request_headers with a single ":method"
	// matcher (exact or a safe_regex alternation of plain method names).
	RetriableMethods []string
}

// MirrorPolicy is a decoded RouteAction.RequestMirrorPolicy.
type MirrorPolicy struct {
	Cluster string
	// Fraction of requests mirrored, in millionths (runtime_fraction
	// default_value scaled to per-million; 1000000 when unset).
	PerMillion uint32
}

// HashPolicy is a decoded RouteAction.HashPolicy: exactly one of Header,
// Cookie and SourceIP.
type HashPolicy struct {
	Header     string // header.header_name, lower case
	Cookie     string // cookie.name
	CookieTTL  time.Duration
	CookiePath string
	SourceIP   bool // connection_properties.source_ip
	Terminal   bool
}

// HeaderValueOption is a decoded envoy.config.core.v3.HeaderValueOption.
type HeaderValueOption struct {
	Name  string // lower case
	Value string
	// Append: true adds a value (APPEND_IF_EXISTS_OR_ADD, or the
	// deprecated append = true); false overwrites
	// (OVERWRITE_IF_EXISTS_OR_ADD). ADD_IF_ABSENT sets IfAbsent.
	Append   bool
	IfAbsent bool
}

// HeaderMutation is what a route does to request or response headers.
type HeaderMutation struct {
	Add    []HeaderValueOption
	Remove []string // lower case
}

// Redirect is a decoded envoy.config.route.v3.RedirectAction.
type Redirect struct {
	Scheme        string // scheme_redirect, or "https" for https_redirect
	Host          string // host_redirect
	Port          uint32 // port_redirect
	Path          string // path_redirect (replaces the whole path)
	PrefixRewrite string // prefix_rewrite (replaces the matched prefix)
	HasPrefix     bool   // prefix_rewrite was set (it may be "")
	StatusCode    int    // 301 (default), 302, 303, 307 or 308
	StripQuery    bool
}

// Fault is a decoded envoy.extensions.filters.http.fault.v3.HTTPFault.
type Fault struct {
	// Delay is applied to DelayPerMillion of the requests.
	Delay           time.Duration
	DelayPerMillion uint32
	// AbortStatus (HTTP) or AbortGRPCStatus (gRPC status code, with
	// HasGRPCAbort) answers AbortPerMillion of the requests.
	AbortStatus     int
	AbortGRPCStatus uint32
	HasGRPCAbort    bool
	AbortPerMillion uint32
}

// TokenBucket is a decoded envoy.type.v3.TokenBucket.
type TokenBucket struct {
	MaxTokens     uint32
	TokensPerFill uint32 // 1 when unset
	FillInterval  time.Duration
}

// LocalRateLimit is a decoded
// envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit. A
// limit with a nil Bucket limits nothing (a filter placeholder whose
// routes carry the buckets). Enabled and Enforced are per-million
// (filter_enabled / filter_enforced default_value; 0 when unset, which
// Envoy reads as "not enabled").
type LocalRateLimit struct {
	StatPrefix string
	Bucket     *TokenBucket
	Enabled    uint32
	Enforced   uint32
}

// HTTPFilters the proxy implements, by name in an HCM's http_filters.
const (
	FilterRouter         = "envoy.filters.http.router"
	FilterFault          = "envoy.filters.http.fault"
	FilterLocalRateLimit = "envoy.filters.http.local_ratelimit"
)

// RouteExtras holds a Route's traffic-management fields. It is embedded in
// Route so existing code keeps compiling.
type RouteExtras struct {
	// GRPCOnly: match.grpc was set (content-type application/grpc*).
	GRPCOnly bool
	// Retry is route.retry_policy (nil: none).
	Retry *RetryPolicy
	// Mirrors are route.request_mirror_policies.
	Mirrors []MirrorPolicy
	// HashPolicies are route.hash_policy, in order.
	HashPolicies []HashPolicy
	// PrefixRewrite (HasPrefixRewrite) replaces the matched prefix.
	PrefixRewrite    string
	HasPrefixRewrite bool
	// RegexRewrite replaces every match of the pattern in the path with
	// the substitution (Envoy's \1 references already turned into Go's
	// ${1}); nil when unset.
	RegexRewrite *RegexRewrite
	// HostRewrite is route.host_rewrite_literal.
	HostRewrite string
	// Redirect is set for a redirect route (instead of Clusters).
	Redirect *Redirect
	// RequestHeaders and ResponseHeaders are the Route's
	// request_headers_to_add/remove and response_headers_to_add/remove.
	RequestHeaders, ResponseHeaders HeaderMutation
	// BufferLimit is per_request_buffer_limit_bytes (0: unset).
	BufferLimit uint32
	// Fault and RateLimit come from typed_per_filter_config.
	Fault     *Fault
	RateLimit *LocalRateLimit
}

// RegexRewrite is a decoded envoy.type.matcher.v3.RegexMatchAndSubstitute.
type RegexRewrite struct {
	Pattern      *regexp.Regexp
	Substitution string // Go template syntax (${1})
}

// ClusterExtras holds a Cluster's traffic-management fields. Embedded in
// Cluster.
type ClusterExtras struct {
	// RingHash: ring sizes from ring_hash_lb_config (0: defaults).
	RingMin, RingMax uint64
	// CircuitBreakers is the first threshold of priority DEFAULT (HIGH
	// ones are ignored); limits it leaves unset, or all of them when there
	// is none, are Envoy's defaults: 1024 connections, pending requests and
	// requests, 3 retries. A limit set to 0 stays 0.
	CircuitBreakers CircuitBreakers
	// Outlier is outlier_detection; nil means none.
	Outlier *OutlierDetection
	// IdleTimeout is common_http_protocol_options.idle_timeout (0: unset).
	IdleTimeout time.Duration
}

// CircuitBreakers is a decoded CircuitBreakers.Thresholds.
type CircuitBreakers struct {
	MaxConnections, MaxPendingRequests, MaxRequests, MaxRetries uint32
	// MaxRetriesSet: max_retries was given. Weft then bounds concurrent
	// retries by it even when a retry budget is set (Envoy ignores it
	// then; Weft honours both, so a configured limit is never ignored).
	MaxRetriesSet bool
	// RetryBudget is set when thresholds.retry_budget is (Weft semantics,
	// see docs/xds.md).
	RetryBudget *RetryBudget
}

// RetryBudget: at most Percent % of the requests of the last 10 s may be
// retries, plus MinPerSecond retries per second.
type RetryBudget struct {
	Percent      float64 // budget_percent (default 20)
	MinPerSecond uint32  // min_retry_concurrency (default 3 in Envoy)
}

// OutlierDetection is a decoded envoy.config.cluster.v3.OutlierDetection
// with Envoy's defaults filled in.
type OutlierDetection struct {
	Consecutive5xx            uint32        // default 5
	Enforcing5xx              uint32        // percent, default 100
	ConsecutiveGatewayFailure uint32        // default 5
	EnforcingGatewayFailure   uint32        // percent, default 0
	Interval                  time.Duration // default 10s
	BaseEjectionTime          time.Duration // default 30s
	MaxEjectionTime           time.Duration // default 300s
	MaxEjectionPercent        uint32        // default 10
}
