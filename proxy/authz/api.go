// Package authz is the proxy's authorization engine: it compiles the
// authorization filters of a listener (Envoy RBAC, jwt_authn, ext_authz;
// see docs/xds.md "Authorization") into an immutable Engine and decides
// each request on its normalised attributes. It fails closed: anything it
// cannot evaluate is a compile error (the proxy NACKs and the listener
// denies), an authorizer that cannot answer denies unless the filter says
// failure_mode_allow.
package authz

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"time"

	"github.com/weftmesh/weft/proxy/xdsresource"
)

// Request is what authorization sees of one request, after normalisation
// (proxy/normalize): the path is canonical and has no query, the host is
// lower case without a trailing dot or default port.
type Request struct {
	Method string
	Host   string
	Path   string // without the query
	Query  string // raw query, for ext_authz
	Header http.Header
	// Destination: the inbound listener's port and address.
	DestPort uint32
	DestIP   netip.Addr
	// PeerID is the verified SPIFFE ID of the client certificate ("" for
	// a plaintext peer).
	PeerID string
	// DirectIP is the TCP peer; RemoteIP the client after trusted
	// X-Forwarded-For hops (equal to DirectIP when none is trusted).
	DirectIP, RemoteIP netip.Addr
	// Claims are the verified JWT payloads by provider payload name
	// (JWTProvider.PayloadInMetadata); nil when no token was verified.
	Claims map[string]map[string]any
	// PeerCertificate is the PEM of the client certificate, for ext_authz
	// when it asks for it.
	PeerCertificate string
	// TCP marks a connection-level check (network RBAC): only L4
	// attributes are set.
	TCP bool
	// ServerName is the TLS SNI of the connection ("" for plaintext), for
	// requested_server_name permissions.
	ServerName string
	// Scheme ("http" or "https"), Protocol ("HTTP/1.1", "HTTP/2") and ID
	// (x-request-id) are sent to ext_authz authorizers; DestID is this
	// workload's SPIFFE ID (the destination principal).
	Scheme, Protocol, ID string
	DestID               string
	// Body is the buffered request body, at most MaxRequestBytes(), for
	// ext_authz filters with with_request_body (nil otherwise).
	Body []byte
}

// Decision is the outcome of Check.
type Decision struct {
	Allowed bool
	// Status is the HTTP status of a denial: 403, or 401 for a token that
	// failed verification (Authenticate), or the authorizer's own.
	Status int
	// Policy names the policy that denied ("" when the default decided:
	// no ALLOW policy matched), for metrics and logs.
	Policy string
	// Audit lists the LOG (AUDIT) policies that matched.
	Audit []string
	// Headers are added to the upstream request (ext_authz OK response),
	// DeniedHeaders and DeniedBody to the denial (ext_authz denied
	// response).
	Headers       http.Header
	DeniedHeaders http.Header
	DeniedBody    string
	// Reason is a short explanation for logs (never sent to the client).
	Reason string
}

// Options are what an Engine needs from the proxy.
type Options struct {
	// ExtAuthz sends a Check to an ext_authz cluster; it returns the
	// decision, or an error when the authorizer cannot answer (the
	// filter's failure mode then applies). Required when a filter has an
	// ext_authz config.
	ExtAuthz func(ctx context.Context, cluster string, req *Request) (Decision, error)
	// Now is the clock JWTs are checked against; nil is time.Now.
	Now func() time.Time
}

// Engine is a compiled set of authorization filters. Immutable; safe for
// concurrent use. Check blocks only while it asks an ext_authz
// authorizer (bounded by the filter's timeout); Authenticate never blocks.
// A nil *Engine allows everything.
type Engine struct {
	steps []step
	jwt   *jwtAuth
	opts  Options
	// deny, when set, is the reason every request is denied (DenyAll).
	deny string
	// maxBody is the largest with_request_body of the ext_authz filters.
	maxBody uint32
}

// Compile builds the engine of an HCM's authorization filters (nil: an
// engine that allows everything). It fails on anything it cannot
// evaluate.
func Compile(f *xdsresource.AuthzFilters, opts Options) (*Engine, error) {
	e, err := compile(f, opts)
	if err != nil {
		return nil, fmt.Errorf("authz: %w", err)
	}
	return e, nil
}

// CompileNetwork builds the engine of a TCP filter chain's network RBAC
// filters: r and the filters chained by r.Then, in order (nil: an engine
// that allows everything). Check it with Request.TCP set.
func CompileNetwork(r *xdsresource.NetworkRBAC) (*Engine, error) {
	e, err := compileNetwork(r)
	if err != nil {
		return nil, fmt.Errorf("authz: %w", err)
	}
	return e, nil
}

// DenyAll is the engine of a listener whose authorization config could
// not be used: it denies every request (fail closed).
func DenyAll(reason string) *Engine {
	if reason == "" {
		reason = "authorization config unusable"
	}
	return &Engine{deny: reason}
}

// Authenticate verifies the request's JWT (jwt_authn): it returns the
// verified claims by payload name, or a 401 decision for a token that
// fails every provider. It removes the client's copies of claim headers
// and sets them from the verified claims, and removes the token unless
// the provider forwards it.
func (e *Engine) Authenticate(r *http.Request) (map[string]map[string]any, *Decision) {
	if e == nil {
		return nil, nil
	}
	if e.deny != "" {
		return nil, &Decision{Status: http.StatusForbidden, Reason: e.deny}
	}
	if e.jwt == nil {
		return nil, nil
	}
	return e.jwt.authenticate(r, e.now())
}

// Check decides a request: RBAC filters and ext_authz in filter order
// (the first denial wins; LOG matches are collected).
func (e *Engine) Check(ctx context.Context, req *Request) Decision {
	if e == nil {
		return Decision{Allowed: true}
	}
	return e.check(ctx, req)
}
