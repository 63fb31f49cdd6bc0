package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Group and version of Weft's own kinds.
const (
	Group      = "weft.dev"
	Version    = "v1alpha1"
	APIVersion = Group + "/" + Version
)

// Service groups workloads by label selector and names the ports they
// serve. Clients address it as NAME.NAMESPACE (optionally with :PORT); an
// HTTPRoute attaches to it with a parentRef of kind Service, as in GAMMA.
type Service struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ServiceSpec `json:"spec"`
}

// ServiceSpec selects workloads and lists ports.
type ServiceSpec struct {
	// Selector matches workload labels; every pair must match. An empty
	// selector selects no workload (routes may still split traffic to
	// other Services).
	Selector map[string]string `json:"selector,omitempty"`
	// Ports the Service serves. At least one.
	Ports []ServicePort `json:"ports"`
}

// ServicePort is one port of a Service.
type ServicePort struct {
	// Name of the port (a DNS label); required when there is more than one.
	Name string `json:"name,omitempty"`
	// Port clients use (1-65535).
	Port int32 `json:"port"`
	// TargetPort is the workload's application port; defaults to Port.
	TargetPort int32 `json:"targetPort,omitempty"`
	// Protocol is HTTP (default), HTTP2, GRPC or TCP.
	Protocol string `json:"protocol,omitempty"`
}

// MTLS modes of MTLSPolicy.
const (
	// MTLSStrict accepts only mutual TLS from meshed peers (the default).
	MTLSStrict = "STRICT"
	// MTLSPermissive accepts mutual TLS and plaintext on the same port (the
	// proxy looks at the first bytes), for migrating clients into the mesh.
	MTLSPermissive = "PERMISSIVE"
	// MTLSDisable accepts plaintext only; meshed clients send plaintext.
	MTLSDisable = "DISABLE"
)

// MeshNamespace is where mesh-wide policies live: an MTLSPolicy without a
// selector in this namespace applies to every workload.
const MeshNamespace = "weft-system"

// MTLSPolicy sets how workloads accept traffic from peers: STRICT (mutual
// TLS only, the default), PERMISSIVE (mutual TLS or plaintext) or DISABLE.
// Scope: with a selector or targetRef, the selected workloads in the
// policy's namespace; without, every workload of the namespace; without
// either in namespace weft-system, the whole mesh. The narrowest scope
// wins; among several matching selector policies, the oldest.
type MTLSPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              MTLSPolicySpec `json:"spec"`
}

// MTLSPolicySpec is the policy's scope and mode.
type MTLSPolicySpec struct {
	// Selector selects workloads by label.
	Selector map[string]string `json:"selector,omitempty"`
	// TargetRef names a Service whose workloads the policy selects.
	TargetRef *LocalServiceRef `json:"targetRef,omitempty"`
	// Mode is STRICT, PERMISSIVE or DISABLE.
	Mode string `json:"mode"`
}

// LocalServiceRef names a Service in the same namespace.
type LocalServiceRef struct {
	// Kind is Service.
	Kind string `json:"kind,omitempty"`
	Name string `json:"name"`
}

// TrafficPolicy sets how clients reach a Service (load balancing,
// connection limits, outlier detection, retries, timeouts, faults) and how
// much traffic its instances accept (rate limit). It attaches to one target
// in its own namespace: a Service (optionally one port) or an HTTPRoute or
// GRPCRoute (optionally one rule, by name). When several policies on the
// same target set the same field, the oldest (creationTimestamp, then
// name) wins, as in the Gateway API's policy attachment; a policy on a
// port or a rule wins over one on the whole Service or route.
type TrafficPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              TrafficPolicySpec `json:"spec"`
	// Status is computed by the control plane when the policy is read;
	// whatever a client writes here is discarded.
	Status gatewayv1.PolicyStatus `json:"status,omitempty"`
}

// TrafficPolicySpec is the policy's target and settings. Every field but
// TargetRef is optional; at least one must be set.
type TrafficPolicySpec struct {
	TargetRef PolicyTargetRef `json:"targetRef"`
	// LoadBalancer, ConnectionPool, OutlierDetection and Retries.Budget
	// apply to Service targets only.
	LoadBalancer     *LoadBalancer     `json:"loadBalancer,omitempty"`
	ConnectionPool   *ConnectionPool   `json:"connectionPool,omitempty"`
	OutlierDetection *OutlierDetection `json:"outlierDetection,omitempty"`
	Retries          *Retries          `json:"retries,omitempty"`
	Timeouts         *Timeouts         `json:"timeouts,omitempty"`
	RateLimit        *RateLimit        `json:"rateLimit,omitempty"`
	Faults           *Faults           `json:"faults,omitempty"`
}

// PolicyTargetRef names what a TrafficPolicy applies to, in the policy's
// namespace.
type PolicyTargetRef struct {
	// Group is "" or weft.dev for a Service, gateway.networking.k8s.io
	// (or "") for a route.
	Group string `json:"group,omitempty"`
	// Kind is Service, HTTPRoute or GRPCRoute.
	Kind string `json:"kind"`
	Name string `json:"name"`
	// SectionName is a Service port's name or a route rule's name.
	SectionName string `json:"sectionName,omitempty"`
	// Port is a Service port number (Service targets only).
	Port int32 `json:"port,omitempty"`
}

// Load-balancing types of LoadBalancer.Type.
const (
	LBRoundRobin   = "ROUND_ROBIN"
	LBRandom       = "RANDOM"
	LBLeastRequest = "LEAST_REQUEST"
	LBRingHash     = "RING_HASH"
)

// LoadBalancer chooses how a client spreads requests over endpoints.
type LoadBalancer struct {
	// Type is ROUND_ROBIN (default), RANDOM, LEAST_REQUEST or RING_HASH.
	Type string `json:"type,omitempty"`
	// Hash is what RING_HASH hashes; required with RING_HASH only.
	Hash *HashPolicy `json:"hash,omitempty"`
	// LocalityAware keeps traffic in the client's locality while it is
	// healthy (default true).
	LocalityAware *bool `json:"localityAware,omitempty"`
}

// HashPolicy is exactly one of a header, a cookie or the source IP.
type HashPolicy struct {
	Header   string      `json:"header,omitempty"`
	Cookie   *HashCookie `json:"cookie,omitempty"`
	SourceIP bool        `json:"sourceIP,omitempty"`
}

// HashCookie hashes a cookie; with a TTL the proxy sets it when absent.
type HashCookie struct {
	Name string `json:"name"`
	// TTL is a Gateway API duration.
	TTL string `json:"ttl,omitempty"`
}

// ConnectionPool holds circuit-breaker limits (per client proxy) and
// connection timeouts; 0 or absent means the default.
type ConnectionPool struct {
	MaxConnections     int32  `json:"maxConnections,omitempty"`
	MaxPendingRequests int32  `json:"maxPendingRequests,omitempty"`
	MaxRequests        int32  `json:"maxRequests,omitempty"`
	MaxRetries         int32  `json:"maxRetries,omitempty"`
	ConnectTimeout     string `json:"connectTimeout,omitempty"`
	IdleTimeout        string `json:"idleTimeout,omitempty"`
}

// OutlierDetection ejects failing endpoints. Given fields override the
// defaults 5 / 0 / 10s / 30s / 10.
type OutlierDetection struct {
	// Consecutive5xxErrors ejects after N consecutive 5xx; 0 turns it off.
	Consecutive5xxErrors     *int32 `json:"consecutive5xxErrors,omitempty"`
	ConsecutiveGatewayErrors *int32 `json:"consecutiveGatewayErrors,omitempty"`
	Interval                 string `json:"interval,omitempty"`
	BaseEjectionTime         string `json:"baseEjectionTime,omitempty"`
	MaxEjectionPercent       *int32 `json:"maxEjectionPercent,omitempty"`
}

// Retries is when and how often a client retries.
type Retries struct {
	// Attempts is the number of retries, 0-10 (default 2).
	Attempts      *int32 `json:"attempts,omitempty"`
	PerTryTimeout string `json:"perTryTimeout,omitempty"`
	// RetryOn lists Envoy retry conditions (default: connect-failure,
	// refused-stream, unavailable, cancelled, retriable-status-codes).
	RetryOn              []string      `json:"retryOn,omitempty"`
	RetriableStatusCodes []int32       `json:"retriableStatusCodes,omitempty"`
	Backoff              *RetryBackoff `json:"backoff,omitempty"`
	Budget               *RetryBudget  `json:"budget,omitempty"`
	RetryNonIdempotent   bool          `json:"retryNonIdempotent,omitempty"`
	MaxBodyBytes         *int32        `json:"maxBodyBytes,omitempty"`
}

// RetryBackoff is the exponential backoff between retries.
type RetryBackoff struct {
	BaseInterval string `json:"baseInterval,omitempty"`
	MaxInterval  string `json:"maxInterval,omitempty"`
}

// RetryBudget caps retries at Percent % of the requests plus
// MinRetriesPerSecond (defaults 20 and 10).
type RetryBudget struct {
	Percent             *float64 `json:"percent,omitempty"`
	MinRetriesPerSecond *int32   `json:"minRetriesPerSecond,omitempty"`
}

// Timeouts of a request.
type Timeouts struct {
	// Request is a Gateway API duration; 0s means none.
	Request string `json:"request"`
}

// RateLimit is a token bucket per instance of the target Service,
// enforced by the server's proxy.
type RateLimit struct {
	RequestsPerSecond int32 `json:"requestsPerSecond"`
	// Burst defaults to RequestsPerSecond.
	Burst int32 `json:"burst,omitempty"`
}

// Faults injects delays and aborts on the client side.
type Faults struct {
	Delay *FaultDelay `json:"delay,omitempty"`
	Abort *FaultAbort `json:"abort,omitempty"`
}

// FaultDelay delays Percent % of requests by FixedDelay.
type FaultDelay struct {
	FixedDelay string `json:"fixedDelay"`
	// Percent is 0-100, decimals allowed (default 100).
	Percent *float64 `json:"percent,omitempty"`
}

// FaultAbort answers Percent % of requests with an HTTP status or a gRPC
// status (exactly one).
type FaultAbort struct {
	HTTPStatus int32  `json:"httpStatus,omitempty"`
	GRPCStatus string `json:"grpcStatus,omitempty"`
	// Percent is 0-100, decimals allowed (default 100).
	Percent *float64 `json:"percent,omitempty"`
}

// MeshConfigName is the name of the mesh's one MeshConfig, which lives in
// MeshNamespace.
const MeshConfigName = "mesh"

// OTLP protocols of MeshConfig's tracing exporter.
const (
	OTLPGRPC = "grpc"
	OTLPHTTP = "http"
)

// MeshConfig holds the settings of the whole mesh. There is at most one,
// named "mesh" in namespace weft-system. Each feature is one optional
// section of its spec; an absent section leaves the feature off (or at its
// defaults).
type MeshConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              MeshConfigSpec `json:"spec"`
}

// MeshConfigSpec is the mesh-wide settings, one section per feature.
type MeshConfigSpec struct {
	// Tracing turns on distributed tracing in every sidecar.
	Tracing *Tracing `json:"tracing,omitempty"`
	// Authorization sets the default action, external authorizers and
	// request normalisation of AuthorizationPolicy.
	Authorization *Authorization `json:"authorization,omitempty"`
}

// Tracing is where and how much the sidecars trace.
type Tracing struct {
	// SampleRate is the percentage (0-100) of traces started without a
	// sampling decision that are sampled; a decision that arrives with the
	// request is respected. Default 1.
	SampleRate *float64 `json:"sampleRate,omitempty"`
	// OTLP is the receiver spans are exported to.
	OTLP OTLPExporter `json:"otlp"`
	// ServiceName is the service.name of the sidecars' spans (default: the
	// workload's app label, else its name).
	ServiceName string `json:"serviceName,omitempty"`
}

// OTLPExporter is an OpenTelemetry protocol receiver.
type OTLPExporter struct {
	// Endpoint is HOST:PORT of the receiver (an OpenTelemetry Collector,
	// Jaeger, Tempo...).
	Endpoint string `json:"endpoint"`
	// Protocol is grpc (default; port 4317 by convention) or http
	// (OTLP/HTTP with protobuf; port 4318).
	Protocol string `json:"protocol,omitempty"`
	// Path is the OTLP/HTTP request path (default /v1/traces); only with
	// protocol http.
	Path string `json:"path,omitempty"`
}

// Actions of AuthorizationPolicy.Spec.Action.
const (
	AuthzAllow  = "ALLOW"
	AuthzDeny   = "DENY"
	AuthzAudit  = "AUDIT"
	AuthzCustom = "CUSTOM"
)

// AuthorizationPolicy allows, denies, audits or delegates (CUSTOM, to an
// external authorizer) requests and connections reaching workloads; it is
// enforced by the server's proxy. Scope: with a targetRef, the workloads
// of that Service (optionally one port); without, every workload of the
// policy's namespace, or of the mesh in namespace weft-system. Evaluation
// order: CUSTOM, DENY, ALLOW (a request must match an ALLOW policy when
// any applies), then MeshConfig's authorization.defaultAction; AUDIT never
// blocks.
type AuthorizationPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              AuthorizationPolicySpec `json:"spec"`
	// Status is computed by the control plane when the policy is read.
	Status gatewayv1.PolicyStatus `json:"status,omitempty"`
}

// AuthorizationPolicySpec is the policy's scope, action and rules.
type AuthorizationPolicySpec struct {
	TargetRef *AuthzTargetRef `json:"targetRef,omitempty"`
	// Action is ALLOW (default), DENY, AUDIT or CUSTOM.
	Action string `json:"action,omitempty"`
	// Provider names the external authorizer (MeshConfig
	// spec.authorization.providers) of a CUSTOM policy.
	Provider *AuthzProviderRef `json:"provider,omitempty"`
	// Rules are ORed. ALLOW without rules matches nothing; DENY needs
	// at least one rule.
	Rules []AuthzRule `json:"rules,omitempty"`
}

// AuthzTargetRef names a Service in the policy's namespace, optionally
// one of its ports.
type AuthzTargetRef struct {
	// Kind is Service (the default).
	Kind string `json:"kind,omitempty"`
	Name string `json:"name"`
	// Port is a Service port number; 0: every port.
	Port int32 `json:"port,omitempty"`
}

// AuthzProviderRef names an authorization provider.
type AuthzProviderRef struct {
	Name string `json:"name"`
}

// AuthzRule matches when any of From, any of To and every When match (an
// absent part matches everything).
type AuthzRule struct {
	From []AuthzFrom      `json:"from,omitempty"`
	To   []AuthzTo        `json:"to,omitempty"`
	When []AuthzCondition `json:"when,omitempty"`
}

// AuthzFrom holds a source.
type AuthzFrom struct {
	Source AuthzSource `json:"source"`
}

// AuthzSource is who sends: every field set must match; values of a field
// are ORed.
type AuthzSource struct {
	Principals           []string `json:"principals,omitempty"`
	NotPrincipals        []string `json:"notPrincipals,omitempty"`
	Namespaces           []string `json:"namespaces,omitempty"`
	NotNamespaces        []string `json:"notNamespaces,omitempty"`
	IPBlocks             []string `json:"ipBlocks,omitempty"`
	NotIPBlocks          []string `json:"notIpBlocks,omitempty"`
	RemoteIPBlocks       []string `json:"remoteIpBlocks,omitempty"`
	NotRemoteIPBlocks    []string `json:"notRemoteIpBlocks,omitempty"`
	RequestPrincipals    []string `json:"requestPrincipals,omitempty"`
	NotRequestPrincipals []string `json:"notRequestPrincipals,omitempty"`
}

// AuthzTo holds an operation.
type AuthzTo struct {
	Operation AuthzOperation `json:"operation"`
}

// AuthzOperation is what is asked: every field set must match.
type AuthzOperation struct {
	Methods    []string `json:"methods,omitempty"`
	NotMethods []string `json:"notMethods,omitempty"`
	Hosts      []string `json:"hosts,omitempty"`
	NotHosts   []string `json:"notHosts,omitempty"`
	Ports      []string `json:"ports,omitempty"`
	NotPorts   []string `json:"notPorts,omitempty"`
	Paths      []string `json:"paths,omitempty"`
	NotPaths   []string `json:"notPaths,omitempty"`
}

// AuthzCondition is one more condition: the attribute named by Key must
// have one of Values (if given) and none of NotValues.
type AuthzCondition struct {
	Key       string   `json:"key"`
	Values    []string `json:"values,omitempty"`
	NotValues []string `json:"notValues,omitempty"`
}

// RequestAuthentication declares which JSON Web Tokens the selected
// workloads accept (same scope rules as AuthorizationPolicy). A request
// with a token that no rule verifies is refused (401); a request without a
// token passes (use an AuthorizationPolicy with requestPrincipals to
// require one).
type RequestAuthentication struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              RequestAuthenticationSpec `json:"spec"`
	// Status is computed by the control plane when the object is read.
	Status RequestAuthenticationStatus `json:"status,omitempty"`
}

// RequestAuthenticationStatus is the Gateway API policy status (one
// ancestor, conditions Accepted and ResolvedRefs) and the state of each
// rule's key set.
type RequestAuthenticationStatus struct {
	gatewayv1.PolicyStatus `json:",inline"`
	// JWKS holds one entry per jwtRule, in order.
	JWKS []JWKSStatus `json:"jwks,omitempty"`
}

// Key set states of a JWKSStatus.
const (
	// JWKSReady: the key set is fetched (or inline) and has keys usable
	// with the rule's algorithms.
	JWKSReady = "Ready"
	// JWKSStale: fetching fails; the keys fetched before are served.
	JWKSStale = "Stale"
	// JWKSFailed: never fetched; the issuer's tokens are refused (401).
	JWKSFailed = "Failed"
	// JWKSPending: not fetched yet (the first attempt has not ended).
	JWKSPending = "Pending"
	// JWKSNoUsableKeys: no key of the set suits the rule's algorithms;
	// the issuer's tokens are refused (401).
	JWKSNoUsableKeys = "NoUsableKeys"
)

// JWKSStatus is the state of one jwtRule's key set.
type JWKSStatus struct {
	Issuer string `json:"issuer"`
	// JWKSURI is the rule's jwksUri ("" for an inline jwks).
	JWKSURI string `json:"jwksUri,omitempty"`
	// State is Ready, Stale, Failed, Pending or NoUsableKeys.
	State string `json:"state"`
	// Keys is the number of keys served that suit the rule's algorithms.
	Keys int `json:"keys"`
	// FetchedAt is the last successful fetch of jwksUri.
	FetchedAt *metav1.Time `json:"fetchedAt,omitempty"`
	// FailingSince is the first failed fetch since the last success;
	// Error the last failure.
	FailingSince *metav1.Time `json:"failingSince,omitempty"`
	Error        string       `json:"error,omitempty"`
	// NextAttempt is when the control plane fetches jwksUri again.
	NextAttempt *metav1.Time `json:"nextAttempt,omitempty"`
}

// RequestAuthenticationSpec is the scope and the accepted issuers.
type RequestAuthenticationSpec struct {
	TargetRef *AuthzTargetRef `json:"targetRef,omitempty"`
	JWTRules  []JWTRule       `json:"jwtRules"`
}

// JWTRule is one accepted issuer.
type JWTRule struct {
	Issuer    string   `json:"issuer"`
	Audiences []string `json:"audiences,omitempty"`
	// JWKS is an inline JSON Web Key Set; JWKSURI is fetched by the
	// control plane (exactly one of the two).
	JWKS    string `json:"jwks,omitempty"`
	JWKSURI string `json:"jwksUri,omitempty"`
	// Algorithms accepted (default RS256, ES256).
	Algorithms []string `json:"algorithms,omitempty"`
	// ClockSkew tolerated on exp/nbf (default 60s).
	ClockSkew   string          `json:"clockSkew,omitempty"`
	FromHeaders []JWTFromHeader `json:"fromHeaders,omitempty"`
	FromParams  []string        `json:"fromParams,omitempty"`
	// OutputClaimToHeaders copies claims to request headers.
	OutputClaimToHeaders []JWTClaimToHeader `json:"outputClaimToHeaders,omitempty"`
	// ForwardOriginalToken keeps the token in the request to the app.
	ForwardOriginalToken bool `json:"forwardOriginalToken,omitempty"`
}

// JWTFromHeader is a header a token is read from, after a prefix.
type JWTFromHeader struct {
	Name   string `json:"name"`
	Prefix string `json:"prefix,omitempty"`
}

// JWTClaimToHeader copies a claim to a request header.
type JWTClaimToHeader struct {
	Header string `json:"header"`
	Claim  string `json:"claim"`
}

// Authorization is MeshConfig's spec.authorization.
type Authorization struct {
	// DefaultAction applies when no ALLOW policy applies: ALLOW (default)
	// or DENY.
	DefaultAction string `json:"defaultAction,omitempty"`
	// Providers are the external authorizers CUSTOM policies name.
	Providers []AuthzProvider `json:"providers,omitempty"`
	// Normalization of requests before they are authorized.
	Normalization *AuthzNormalization `json:"normalization,omitempty"`
}

// AuthzProvider is an external authorizer.
type AuthzProvider struct {
	Name     string        `json:"name"`
	ExtAuthz *ExtAuthzGRPC `json:"extAuthz"`
}

// ExtAuthzGRPC is an Envoy ext_authz gRPC service (such as weft
// authz-server or OPA-Envoy).
type ExtAuthzGRPC struct {
	// Service is HOST:PORT of the authorizer.
	Service string `json:"service"`
	// Timeout of one check (default 200ms).
	Timeout string `json:"timeout,omitempty"`
	// FailOpen lets requests through when the authorizer cannot answer
	// (default false: denied).
	FailOpen               bool `json:"failOpen,omitempty"`
	IncludePeerCertificate bool `json:"includePeerCertificate,omitempty"`
}

// Slash encodings of AuthzNormalization.
const (
	SlashReject = "REJECT"
	SlashDecode = "DECODE"
)

// AuthzNormalization says how requests are normalised.
type AuthzNormalization struct {
	// SlashEncoding: REJECT (default) answers 400 to a path with %2F or
	// %5C; DECODE decodes them into / and \ first.
	SlashEncoding string `json:"slashEncoding,omitempty"`
	// TrustedHops is how many X-Forwarded-For hops are trusted for
	// remoteIpBlocks / remote.ip (default 0: the TCP peer).
	TrustedHops int32 `json:"trustedHops,omitempty"`
}
