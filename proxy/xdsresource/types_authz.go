package xdsresource

import (
	"net/netip"
	"time"
)

// ---- Authorization and end-user authentication (see docs/xds.md,
// "Authorization"). Decoded from Envoy's standard filters:
// envoy.filters.http.rbac / envoy.filters.network.rbac (RBAC),
// envoy.filters.http.jwt_authn (JWT) and envoy.filters.http.ext_authz.

// Filter names of the authorization filters.
const (
	FilterRBAC        = "envoy.filters.http.rbac"
	FilterJWTAuthn    = "envoy.filters.http.jwt_authn"
	FilterExtAuthz    = "envoy.filters.http.ext_authz"
	NetworkFilterRBAC = "envoy.filters.network.rbac"
)

// RBACAction is config.rbac.v3.RBAC.Action.
type RBACAction int

const (
	RBACAllow RBACAction = iota // ALLOW = 0
	RBACDeny                    // DENY = 1
	RBACLog                     // LOG = 2 (AUDIT: match is logged, never blocks)
)

// RBAC is a decoded envoy.config.rbac.v3.RBAC: a request matching any
// policy gets the action (ALLOW: allowed; no match: denied. DENY: denied;
// no match: allowed. LOG: always allowed, matches logged). Policies are
// sorted by name.
type RBAC struct {
	Action   RBACAction
	Policies []RBACPolicy
}

// RBACPolicy is a decoded envoy.config.rbac.v3.Policy: it matches when
// any permission AND any principal match. condition / checked_condition
// (CEL) are refused.
type RBACPolicy struct {
	Name        string
	Permissions []Permission
	Principals  []Principal
}

// PermissionKind says which field of a Permission is set.
type PermissionKind int

const (
	PermAny        PermissionKind = iota + 1 // any: true
	PermAnd                                  // and_rules
	PermOr                                   // or_rules
	PermNot                                  // not_rule (Rules[0])
	PermHeader                               // header (HeaderMatcher; ":method", ":authority", ":path" are pseudo-headers)
	PermURLPath                              // url_path.path (StringMatch on the normalised path without query)
	PermDestPort                             // destination_port
	PermDestIP                               // destination_ip (CidrRange)
	PermServerName                           // requested_server_name
)

// Permission is a decoded envoy.config.rbac.v3.Permission: exactly the
// fields of its Kind are meaningful. metadata, matcher,
// destination_port_range, uri_template are refused.
type Permission struct {
	Kind   PermissionKind
	Rules  []Permission // PermAnd, PermOr, PermNot (one)
	Header HeaderMatcher
	Path   StringMatch
	Port   uint32
	CIDR   netip.Prefix
	// ServerName for PermServerName.
	ServerName StringMatch
}

// PrincipalKind says which field of a Principal is set.
type PrincipalKind int

const (
	PrinAny            PrincipalKind = iota + 1 // any: true
	PrinAnd                                     // and_ids
	PrinOr                                      // or_ids
	PrinNot                                     // not_id (IDs[0])
	PrinAuthenticated                           // authenticated.principal_name: the peer certificate's URI SAN (SPIFFE ID); an unauthenticated (plaintext) peer never matches
	PrinDirectRemoteIP                          // direct_remote_ip: the TCP peer (source_ip, deprecated, is the same: it ignores X-Forwarded-For, and the proxy speaks no PROXY protocol)
	PrinRemoteIP                                // remote_ip: the client IP after trusted X-Forwarded-For hops
	PrinHeader                                  // header
	PrinURLPath                                 // url_path
	PrinMetadata                                // metadata: only filter "envoy.filters.http.jwt_authn" (the verified JWT payload)
)

// Principal is a decoded envoy.config.rbac.v3.Principal. filter_state,
// custom are refused.
type Principal struct {
	Kind   PrincipalKind
	IDs    []Principal
	Name   StringMatch // PrinAuthenticated: principal_name (unset: any authenticated peer)
	CIDR   netip.Prefix
	Header HeaderMatcher
	Path   StringMatch
	// Payload and Claim for PrinMetadata: metadata.filter must be
	// "envoy.filters.http.jwt_authn", metadata.path is
	// [{key: PAYLOAD_NAME}, {key: CLAIM}, {key: SUBCLAIM}...]: Payload is
	// the payload name (JWTProvider.PayloadInMetadata), Claim holds the
	// path after it; Value matches a string claim, or any element of a
	// list claim (value.list_match.one_of) when InList.
	Payload string
	Claim   []string
	Value   StringMatch
	InList  bool
	Invert  bool // metadata.invert
}

// HTTPRBAC is a decoded envoy.extensions.filters.http.rbac.v3.RBAC.
// Rules nil means no enforcement (shadow only). ShadowRules are evaluated
// and recorded (LOG / audit, or the gate of an ext_authz filter, see
// ExtAuthz.EnabledByShadow) but never block.
type HTTPRBAC struct {
	Rules            *RBAC
	ShadowRules      *RBAC
	RulesStatPrefix  string
	ShadowStatPrefix string // shadow_rules_stat_prefix
}

// NetworkRBAC is a decoded envoy.extensions.filters.network.rbac.v3.RBAC
// (L4: only PermAny/And/Or/Not/DestPort/DestIP and
// PrinAny/And/Or/Not/Authenticated/DirectRemoteIP/RemoteIP are accepted).
type NetworkRBAC struct {
	StatPrefix  string
	Rules       *RBAC
	ShadowRules *RBAC
	// Then is the next network RBAC filter of the chain (docs/xds.md:
	// DENY, then ALLOW), evaluated after this one; nil for the last.
	Then *NetworkRBAC
}

// JWTProvider is a decoded
// envoy.extensions.filters.http.jwt_authn.v3.JwtProvider. The keys are
// always inline (local_jwks.inline_string); remote_jwks is refused (the
// control plane fetches and inlines key sets). The allowed algorithms are
// the "alg" members of the keys: a key without "alg" is refused.
type JWTProvider struct {
	Name      string
	Issuer    string
	Audiences []string
	// JWKS is the inline JSON Web Key Set (may be {"keys":[]} when the
	// control plane could not fetch it: every token then fails).
	JWKS []byte
	// Forward keeps the token in the request (forward: true).
	Forward bool
	// FromHeaders (name, value_prefix) and FromParams; when both are empty,
	// Envoy's default: Authorization with prefix "Bearer ".
	FromHeaders []JWTHeader
	FromParams  []string
	// PayloadInMetadata is the name principals' metadata matchers use.
	PayloadInMetadata string
	ClockSkew         time.Duration // clock_skew_seconds (default 60 s)
	// ClaimToHeaders copies claims to request headers (the client's copies
	// of those headers are removed first).
	ClaimToHeaders []JWTClaimHeader
}

// JWTHeader is where a token is read from.
type JWTHeader struct{ Name, Prefix string }

// JWTClaimHeader is one claim_to_headers entry.
type JWTClaimHeader struct{ Header, Claim string }

// JWTAuthn is a decoded
// envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication with the
// one rule shape Weft uses: every request (match prefix "/") requires any
// of Providers or, when AllowMissing, no token at all. A token that is
// present but fails every provider is rejected (401).
type JWTAuthn struct {
	Providers    []JWTProvider
	AllowMissing bool
}

// ExtAuthz is a decoded envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
// (gRPC, transport API v3).
type ExtAuthz struct {
	Cluster string        // grpc_service.envoy_grpc.cluster_name
	Timeout time.Duration // grpc_service.timeout (default 200 ms)
	// FailureModeAllow lets requests through when the authorizer cannot be
	// reached or errs (default false: fail closed, 403).
	FailureModeAllow bool
	// EnabledByShadow, when non-empty, is filter_enabled_metadata
	// {filter: "envoy.filters.http.rbac", path: [{key:
	// "shadow_effective_policy_id"}], value: string prefix EnabledByShadow}:
	// the authorizer is asked only when the shadow rules of the preceding
	// RBAC filter matched a policy whose name starts with this prefix.
	EnabledByShadow string
	// IncludePeerCertificate, WithRequestBody (max bytes; 0: none).
	IncludePeerCertificate bool
	MaxRequestBytes        uint32
	StatusOnError          int // status_on_error (default 403)
}

// AuthzFilters are an HCM's authorization filters, in filter order. Each
// HTTP filter of these kinds appears in HTTPConnectionManager.HTTPFilters
// by name; their configs are here in the same order.
type AuthzFilters struct {
	RBAC     []HTTPRBAC
	JWT      *JWTAuthn
	ExtAuthz []ExtAuthz
	// Order lists the authorization filters in HCM order, each as its
	// filter name (FilterRBAC, FilterJWTAuthn, FilterExtAuthz): the Nth
	// FilterRBAC is RBAC[N-1], and so on. It tells how RBAC and ext_authz
	// filters interleave.
	Order []string
}
