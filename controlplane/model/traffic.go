package model

import "time"

// Traffic management in the model (see docs/xds.md for how generation
// maps it onto xDS). Converted once from validated API objects.

// HeaderModifier is a RequestHeaderModifier or ResponseHeaderModifier.
// Names are lower case.
type HeaderModifier struct {
	Set    []Header
	Add    []Header
	Remove []string
}

// Header is one name and value.
type Header struct{ Name, Value string }

// PathRewrite replaces the path: the whole path (FullPath) or the matched
// prefix (PrefixMatch); exactly one is set when non-nil.
type PathRewrite struct {
	FullPath    *string
	PrefixMatch *string
}

// Redirect is a RequestRedirect filter. Empty fields keep the request's.
type Redirect struct {
	Scheme     string
	Hostname   string
	Port       uint32
	Path       *PathRewrite
	StatusCode int // 302 (the Gateway API default) or 301, 303, 307, 308
}

// URLRewrite is a URLRewrite filter.
type URLRewrite struct {
	Hostname string
	Path     *PathRewrite
}

// Mirror is a RequestMirror filter.
type Mirror struct {
	Backend Backend // Weight unused
	// PerMillion of the requests are mirrored (1000000 when the filter
	// gives no percent or fraction).
	PerMillion uint32
}

// Filters are a rule's filters, at most one of each kind but mirrors.
type Filters struct {
	RequestHeaders  *HeaderModifier
	ResponseHeaders *HeaderModifier
	Redirect        *Redirect
	Rewrite         *URLRewrite
	Mirrors         []Mirror
}

// Retry is when and how often a route retries.
type Retry struct {
	// Attempts is the number of retries (not counting the first try).
	Attempts uint32
	// On lists Envoy retry_on conditions (connect-failure, reset,
	// refused-stream, 5xx, gateway-error, retriable-4xx,
	// retriable-status-codes, cancelled, deadline-exceeded, internal,
	// resource-exhausted, unavailable).
	On []string
	// Codes are the retriable status codes (with retriable-status-codes).
	Codes []uint32
	// PerTryTimeout bounds each attempt (0: none).
	PerTryTimeout time.Duration
	// BackoffBase and BackoffMax (0: 25ms and 10 × base).
	BackoffBase, BackoffMax time.Duration
	// NonIdempotent allows retrying POST, PATCH and CONNECT.
	NonIdempotent bool
	// MaxBodyBytes is the largest request body buffered for a retry.
	MaxBodyBytes uint32
}

// Fault injects delays and aborts.
type Fault struct {
	Delay           time.Duration
	DelayPerMillion uint32
	// AbortStatus (HTTP) or AbortGRPC (gRPC code name, e.g. UNAVAILABLE).
	AbortStatus     int
	AbortGRPC       string
	AbortPerMillion uint32
}

// RateLimit is a token bucket per instance of the target service.
type RateLimit struct {
	RequestsPerSecond uint32
	Burst             uint32
}

// HashOn is what RING_HASH hashes: exactly one of the fields.
type HashOn struct {
	Header    string
	Cookie    string
	CookieTTL time.Duration
	SourceIP  bool
}

// Load-balancing types.
const (
	LBRoundRobin   = "ROUND_ROBIN"
	LBRandom       = "RANDOM"
	LBLeastRequest = "LEAST_REQUEST"
	LBRingHash     = "RING_HASH"
)

// ConnectionPool holds circuit-breaker limits and connection timeouts; 0
// means "the default".
type ConnectionPool struct {
	MaxConnections, MaxPendingRequests, MaxRequests, MaxRetries uint32
	ConnectTimeout, IdleTimeout                                 time.Duration
}

// OutlierDetection ejects failing endpoints. Consecutive5xx 0 turns
// 5xx-based ejection off.
type OutlierDetection struct {
	Consecutive5xx, ConsecutiveGatewayErrors uint32
	Interval, BaseEjectionTime               time.Duration
	MaxEjectionPercent                       uint32
}

// RetryBudget: retries may add Percent % of requests plus MinPerSecond
// retries per second.
type RetryBudget struct {
	Percent      float64
	MinPerSecond uint32
}

// PolicyTarget is what a TrafficPolicy applies to: a Service (optionally
// one port) or a route (optionally one rule, by name).
type PolicyTarget struct {
	Kind      string // "Service", "HTTPRoute" or "GRPCRoute"
	Name      string
	Namespace string
	// Port (Service) or SectionName (a Service port's name, or a route
	// rule's name).
	Port        uint32
	SectionName string
}

// TrafficPolicy is a compiled TrafficPolicy. Nil fields are not set by
// this policy. Cluster-level fields (LB, pool, outlier) apply only to
// Service targets; validation refuses them on route targets.
type TrafficPolicy struct {
	Name      string
	Namespace string
	Created   time.Time
	Target    PolicyTarget

	LBType     string // "" or one of the LB* constants
	Hash       *HashOn
	NoLocality bool // locality-aware routing turned off
	Pool       *ConnectionPool
	Outlier    *OutlierDetection
	Retry      *Retry
	Budget     *RetryBudget
	Timeout    *time.Duration // request timeout
	RateLimit  *RateLimit
	Fault      *Fault
}

// GRPCMethodMatch matches /Service/Method; empty parts match any.
type GRPCMethodMatch struct {
	Service, Method string
	Regex           bool
}

// TCPRoute is a compiled Gateway API TCPRoute: weighted backends for a
// Service's TCP port.
type TCPRoute struct {
	Name      string
	Namespace string
	Created   time.Time
	Parents   []ParentRef
	Backends  []Backend
}
