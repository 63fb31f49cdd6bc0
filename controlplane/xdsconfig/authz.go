package xdsconfig

import (
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	jwtauthnv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	httprbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	netrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/api/resource"
	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/controlplane/model"
)

// Authorization and end-user authentication (docs/xds.md, last section).
// Inbound HCM http_filters, each only when needed, before local_ratelimit:
//
//	envoy.filters.http.jwt_authn   every RequestAuthentication of the workload
//	envoy.filters.http.rbac        CUSTOM gate (shadow ALLOW, "weft-ext-authz/NS/NAME/rule-i")
//	envoy.filters.http.ext_authz   per CUSTOM provider, enabled by the gate
//	envoy.filters.http.rbac        DENY
//	envoy.filters.http.rbac        ALLOW (any ALLOW policy, or defaultAction DENY)
//	envoy.filters.http.rbac        AUDIT (shadow LOG)
//
// TCP inbound chains get envoy.filters.network.rbac DENY, ALLOW, then
// AUDIT (shadow LOG) before tcp_proxy, with L4 fields only: on a TCP port an ALLOW or AUDIT rule
// using an L7 field matches nothing, a DENY (or CUSTOM, which cannot be
// asked over TCP) rule is kept without its L7 fields, so it denies more
// (Istio's behaviour).
const (
	FilterRBAC        = "envoy.filters.http.rbac"
	FilterJWTAuthn    = "envoy.filters.http.jwt_authn"
	FilterExtAuthz    = "envoy.filters.http.ext_authz"
	NetworkFilterRBAC = "envoy.filters.network.rbac"
	// ExtAuthzPolicyPrefix starts the name of every gate policy; the
	// ext_authz filter is enabled when the gate matched one.
	ExtAuthzPolicyPrefix = "weft-ext-authz/"
	// ExtAuthzStatPrefix is the gate's shadow_rules_stat_prefix.
	ExtAuthzStatPrefix = "weft_ext_authz_"
	// AuthzClusterPrefix + provider name is a provider's cluster.
	AuthzClusterPrefix = "weft-authz|"
	// EmptyJWKS is inlined until a key set has been fetched.
	EmptyJWKS = `{"keys":[]}`
)

// AuthzCluster is the cluster of an authorization provider.
func AuthzCluster(provider string) string { return AuthzClusterPrefix + provider }

// inboundAuthz is the authorization of one inbound port: the HTTP filters
// before local_ratelimit, or the network filters before tcp_proxy, and
// the provider clusters they use.
type inboundAuthz struct {
	http      []*hcmv3.HttpFilter
	tcp       []*listenerv3.Filter
	providers []string
}

// authzProblems reports CUSTOM policies whose provider does not exist.
func (g *Generation) authzProblems() {
	for _, p := range g.state.AuthzPolicies {
		if p.Action == model.AuthzCustom && g.state.Mesh.Authorization.Provider(p.Provider) == nil {
			g.problems = append(g.problems, fmt.Sprintf("authorizationpolicy %s/%s: provider %q is not in MeshConfig spec.authorization.providers; its targets deny every request",
				p.Namespace, p.Name, p.Provider))
		}
	}
}

func defaultDeny(st *model.State) bool {
	return st.Mesh.Authorization != nil && st.Mesh.Authorization.DefaultAction == model.AuthzDeny
}

// authzFor builds the authorization of a workload's inbound port.
func (g *Generation) authzFor(w *model.Workload, in model.InboundPort) inboundAuthz {
	st := g.state
	policies := st.AuthzPolicies
	if len(policies) == 0 && len(st.RequestAuthns) == 0 && !defaultDeny(st) {
		return inboundAuthz{}
	}
	policies = st.AuthzPoliciesFor(w, in)
	tcp := in.Protocol == xdsmeta.ProtocolTCP
	var out inboundAuthz
	b := &ruleBuilder{trustDomain: st.TrustDomain, listenerPort: in.Port, appPort: in.AppPort}
	if !tcp {
		var jwt *jwtauthnv3.JwtAuthentication
		jwt, b.payloads = jwtAuthn(st, st.RequestAuthnsFor(w, in))
		if jwt != nil {
			out.http = append(out.http, httpFilter(FilterJWTAuthn, jwt))
		}
	}
	deny := map[string]*rbacv3.Policy{}
	allow := map[string]*rbacv3.Policy{}
	audit := map[string]*rbacv3.Policy{}
	custom := map[string]map[string]*rbacv3.Policy{}
	anyAllow, anyAudit := false, false
	for _, p := range policies {
		action := p.Action
		if action == model.AuthzCustom {
			if st.Mesh.Authorization.Provider(p.Provider) == nil {
				// Fail closed: the target denies everything.
				deny[policyID(p)+"/provider-missing"] = anyPolicy()
				continue
			}
			if tcp {
				// An authorizer cannot be asked about a connection:
				// deny what it would have been asked about.
				action = model.AuthzDeny
			}
		}
		switch action {
		case model.AuthzAllow:
			anyAllow = true
		case model.AuthzAudit:
			anyAudit = true
		}
		for i, r := range p.Rules {
			if tcp && r.L7 && (action == model.AuthzAllow || action == model.AuthzAudit) {
				continue // matches nothing on a TCP port
			}
			pol := b.policy(r, tcp)
			name := fmt.Sprintf("%s/rule-%d", policyID(p), i)
			switch action {
			case model.AuthzAllow:
				allow[name] = pol
			case model.AuthzDeny:
				deny[name] = pol
			case model.AuthzAudit:
				audit[name] = pol
			case model.AuthzCustom:
				if custom[p.Provider] == nil {
					custom[p.Provider] = map[string]*rbacv3.Policy{}
				}
				custom[p.Provider][ExtAuthzPolicyPrefix+name] = pol
			}
		}
	}
	allowOn := anyAllow || defaultDeny(st)
	if tcp {
		prefix := xdsmeta.InboundCluster(in.AppPort)
		if len(deny) > 0 {
			out.tcp = append(out.tcp, networkRBAC(prefix, &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: deny}))
		}
		if allowOn {
			out.tcp = append(out.tcp, networkRBAC(prefix, &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: allow}))
		}
		if anyAudit && len(audit) > 0 {
			out.tcp = append(out.tcp, &listenerv3.Filter{
				Name: NetworkFilterRBAC,
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(&netrbacv3.RBAC{
					StatPrefix: prefix, ShadowRules: &rbacv3.RBAC{Action: rbacv3.RBAC_LOG, Policies: audit}})},
			})
		}
		return out
	}
	providers := make([]string, 0, len(custom))
	for name := range custom {
		providers = append(providers, name)
	}
	sort.Strings(providers)
	for _, name := range providers {
		pr := st.Mesh.Authorization.Provider(name)
		out.http = append(out.http, httpFilter(FilterRBAC, &httprbacv3.RBAC{
			ShadowRules:           &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: custom[name]},
			ShadowRulesStatPrefix: ExtAuthzStatPrefix,
		}))
		out.http = append(out.http, httpFilter(FilterExtAuthz, extAuthz(pr)))
		out.providers = append(out.providers, name)
	}
	if len(deny) > 0 {
		out.http = append(out.http, httpFilter(FilterRBAC, &httprbacv3.RBAC{Rules: &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: deny}}))
	}
	if allowOn {
		out.http = append(out.http, httpFilter(FilterRBAC, &httprbacv3.RBAC{Rules: &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: allow}}))
	}
	if anyAudit && len(audit) > 0 {
		out.http = append(out.http, httpFilter(FilterRBAC, &httprbacv3.RBAC{ShadowRules: &rbacv3.RBAC{Action: rbacv3.RBAC_LOG, Policies: audit}}))
	}
	return out
}

func policyID(p *model.AuthzPolicy) string { return p.Namespace + "/" + p.Name }

func anyPolicy() *rbacv3.Policy {
	return &rbacv3.Policy{
		Permissions: []*rbacv3.Permission{permAny()},
		Principals:  []*rbacv3.Principal{prinAny()},
	}
}

func networkRBAC(statPrefix string, rules *rbacv3.RBAC) *listenerv3.Filter {
	return &listenerv3.Filter{
		Name:       NetworkFilterRBAC,
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(&netrbacv3.RBAC{StatPrefix: statPrefix, Rules: rules})},
	}
}

func extAuthz(pr *model.AuthzProvider) *extauthzv3.ExtAuthz {
	return &extauthzv3.ExtAuthz{
		Services: &extauthzv3.ExtAuthz_GrpcService{GrpcService: &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: AuthzCluster(pr.Name)}},
			Timeout:         durationpb.New(pr.Timeout),
		}},
		TransportApiVersion:    corev3.ApiVersion_V3,
		FailureModeAllow:       pr.FailOpen,
		IncludePeerCertificate: pr.IncludePeerCertificate,
		FilterEnabledMetadata: &matcherv3.MetadataMatcher{
			Filter: FilterRBAC,
			Path:   []*matcherv3.MetadataMatcher_PathSegment{pathKey("shadow_effective_policy_id")},
			Value: &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: ExtAuthzPolicyPrefix},
			}}},
		},
	}
}

// authzProviderCluster is a provider's STATIC HTTP/2 cluster, or nil when
// its service does not parse.
func authzProviderCluster(pr *model.AuthzProvider) *clusterv3.Cluster {
	host, portStr, err := net.SplitHostPort(pr.Service)
	if err != nil {
		return nil
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return nil
	}
	name := AuthzCluster(pr.Name)
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(ConnectTimeout),
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Address: socketAddress(host, uint32(port)),
				}},
			}}}},
		},
		TypedExtensionProtocolOptions: protocolOptions(true, OutboundIdleTimeout),
	}
}

// jwtAuthn is the jwt_authn filter of the RequestAuthentications of a
// port, and the payload metadata names of its providers (nil, nil when
// none applies).
func jwtAuthn(st *model.State, ras []*model.RequestAuthn) (*jwtauthnv3.JwtAuthentication, []string) {
	if len(ras) == 0 {
		return nil, nil
	}
	cfg := &jwtauthnv3.JwtAuthentication{Providers: map[string]*jwtauthnv3.JwtProvider{}}
	var names []string
	for _, ra := range ras {
		for i, r := range ra.Rules {
			name := fmt.Sprintf("%s/%s/%d", ra.Namespace, ra.Name, i)
			names = append(names, name)
			p := &jwtauthnv3.JwtProvider{
				Issuer:    r.Issuer,
				Audiences: r.Audiences,
				JwksSourceSpecifier: &jwtauthnv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{
					Specifier: &corev3.DataSource_InlineString{InlineString: inlineJWKS(st, r)},
				}},
				Forward:           r.Forward,
				FromParams:        r.FromParams,
				PayloadInMetadata: name,
				ClockSkewSeconds:  uint32(r.ClockSkew.Seconds()),
			}
			for _, h := range r.FromHeaders {
				p.FromHeaders = append(p.FromHeaders, &jwtauthnv3.JwtHeader{Name: h.Name, ValuePrefix: h.Prefix})
			}
			for _, c := range r.ClaimToHeaders {
				p.ClaimToHeaders = append(p.ClaimToHeaders, &jwtauthnv3.JwtClaimToHeader{HeaderName: c.Header, ClaimName: c.Claim})
			}
			cfg.Providers[name] = p
		}
	}
	var reqs []*jwtauthnv3.JwtRequirement
	for _, n := range names {
		reqs = append(reqs, &jwtauthnv3.JwtRequirement{RequiresType: &jwtauthnv3.JwtRequirement_ProviderName{ProviderName: n}})
	}
	reqs = append(reqs, &jwtauthnv3.JwtRequirement{RequiresType: &jwtauthnv3.JwtRequirement_AllowMissing{AllowMissing: &emptypb.Empty{}}})
	cfg.Rules = []*jwtauthnv3.RequirementRule{{
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		RequirementType: &jwtauthnv3.RequirementRule_Requires{Requires: &jwtauthnv3.JwtRequirement{
			RequiresType: &jwtauthnv3.JwtRequirement_RequiresAny{RequiresAny: &jwtauthnv3.JwtRequirementOrList{Requirements: reqs}},
		}},
	}}
	return cfg, names
}

// inlineJWKS returns the rule's key set with an "alg" on every key: keys
// whose alg is not allowed are dropped; a key without alg gets the one
// allowed algorithm of its type, or is dropped when there is not exactly
// one. A key set not fetched yet, or that does not parse, is empty.
func inlineJWKS(st *model.State, r model.JWTRule) string {
	src := r.JWKS
	if r.JWKSURI != "" {
		src = st.JWKS[r.JWKSURI]
	}
	return FilterJWKS(src, r.Algorithms)
}

// FilterJWKS keeps the keys of a JSON Web Key Set usable with the allowed
// algorithms, each with its "alg" set; it returns {"keys":[]} for a set
// that does not parse.
func FilterJWKS(src string, allowed []string) string {
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if src == "" || json.Unmarshal([]byte(src), &set) != nil {
		return EmptyJWKS
	}
	keys := []map[string]any{}
	for _, k := range set.Keys {
		if use, _ := k["use"].(string); use != "" && use != "sig" {
			continue
		}
		kty, _ := k["kty"].(string)
		if alg, ok := k["alg"].(string); ok {
			if slices.Contains(allowed, alg) && algFitsKey(alg, k) {
				keys = append(keys, k)
			}
			continue
		}
		var fits []string
		for _, a := range allowed {
			if algFitsKey(a, k) {
				fits = append(fits, a)
			}
		}
		if len(fits) == 1 && kty != "" {
			k["alg"] = fits[0]
			keys = append(keys, k)
		}
	}
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		return EmptyJWKS
	}
	return string(b)
}

// algFitsKey reports whether a JWS algorithm can be used with a key.
func algFitsKey(alg string, k map[string]any) bool {
	kty, _ := k["kty"].(string)
	crv, _ := k["crv"].(string)
	switch {
	case strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS"):
		return kty == "RSA"
	case alg == "ES256":
		return kty == "EC" && crv == "P-256"
	case alg == "ES384":
		return kty == "EC" && crv == "P-384"
	case alg == "ES512":
		return kty == "EC" && crv == "P-521"
	case alg == "EdDSA":
		return kty == "OKP" && crv == "Ed25519"
	}
	return false
}

// ---- Rule translation (Istio's).

// ruleBuilder translates rules for one inbound port.
type ruleBuilder struct {
	trustDomain string
	// listenerPort and appPort are the inbound port's: a policy names the
	// app port (as Istio names the workload's port), the listener sees
	// its own local port.
	listenerPort, appPort uint32
	// payloads are the jwt_authn payload metadata names of the port's
	// providers (none: JWT conditions never match).
	payloads []string
}

func permAny() *rbacv3.Permission { return &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}} }
func prinAny() *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}
}

// prinNone never matches.
func prinNone() *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: prinAny()}}
}

func permOr(ps []*rbacv3.Permission) *rbacv3.Permission {
	if len(ps) == 1 {
		return ps[0]
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: ps}}}
}

func permAnd(ps []*rbacv3.Permission) *rbacv3.Permission {
	switch len(ps) {
	case 0:
		return permAny()
	case 1:
		return ps[0]
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: ps}}}
}

func permNot(p *rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_NotRule{NotRule: p}}
}

func prinOr(ps []*rbacv3.Principal) *rbacv3.Principal {
	switch len(ps) {
	case 0:
		return prinNone()
	case 1:
		return ps[0]
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: ps}}}
}

func prinAnd(ps []*rbacv3.Principal) *rbacv3.Principal {
	switch len(ps) {
	case 0:
		return prinAny()
	case 1:
		return ps[0]
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: ps}}}
}

func prinNot(p *rbacv3.Principal) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: p}}
}

// stringMatch is a wildcard value as a StringMatcher: exact, prefix,
// suffix, or any non-empty value ("*").
func stringMatch(v string, ignoreCase bool) *matcherv3.StringMatcher {
	kind, lit, _ := resource.WildcardPattern(v)
	m := &matcherv3.StringMatcher{IgnoreCase: ignoreCase}
	switch kind {
	case "prefix":
		m.MatchPattern = &matcherv3.StringMatcher_Prefix{Prefix: lit}
	case "suffix":
		m.MatchPattern = &matcherv3.StringMatcher_Suffix{Suffix: lit}
	case "any":
		m.IgnoreCase = false
		m.MatchPattern = &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: ".+"}}
	default:
		m.MatchPattern = &matcherv3.StringMatcher_Exact{Exact: lit}
	}
	return m
}

func headerMatch(name, v string, ignoreCase bool) *routev3.HeaderMatcher {
	if v == "*" {
		return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}
	}
	return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: stringMatch(v, ignoreCase)}}
}

// canonicalPath writes a policy path (with its leading or trailing '*')
// in the form sidecars normalise request paths to, so that the two
// compare: percent-encoded unreserved characters decoded, other
// encodings in upper case, characters outside RFC 3986's pchar (e.g.
// non-ASCII) percent-encoded.
func canonicalPath(v string) string {
	lead, trail := strings.HasPrefix(v, "*"), strings.HasSuffix(v, "*") && len(v) > 1
	lit := strings.TrimPrefix(v, "*")
	if trail {
		lit = strings.TrimSuffix(lit, "*")
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(lit); i++ {
		c := lit[i]
		switch {
		case c == '%' && i+2 < len(lit) && isHex(lit[i+1]) && isHex(lit[i+2]):
			d := unhex(lit[i+1])<<4 | unhex(lit[i+2])
			if isUnreserved(d) {
				b.WriteByte(d)
			} else {
				b.WriteByte('%')
				b.WriteByte(hex[d>>4])
				b.WriteByte(hex[d&15])
			}
			i += 2
		case c == '/' || isPchar(c):
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	out := b.String()
	if lead {
		out = "*" + out
	}
	if trail {
		out += "*"
	}
	return out
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

func isUnreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// isPchar: unreserved, sub-delims, ':' and '@' (RFC 3986 §3.3), as
// proxy/normalize keeps them literal.
func isPchar(c byte) bool {
	return isUnreserved(c) || strings.IndexByte("!$&'()*+,;=:@", c) >= 0
}

// hostMatch matches the :authority against a host with or without a port
// (a port must not let a request slip past a host rule): "a.b" matches
// a.b and a.b:PORT, "*.b" any subdomain of b, "a.*" any host starting
// with "a.", case-insensitively.
func hostMatch(v string) *routev3.HeaderMatcher {
	var re string
	switch {
	case strings.HasPrefix(v, "*"):
		re = "(?i).*" + regexp.QuoteMeta(v[1:]) + "(:[0-9]+)?"
	case strings.HasSuffix(v, "*"):
		re = "(?i)" + regexp.QuoteMeta(v[:len(v)-1]) + ".*"
	default:
		re = "(?i)" + regexp.QuoteMeta(v) + "(:[0-9]+)?"
	}
	return &routev3.HeaderMatcher{Name: ":authority", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
		MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: re}},
	}}}
}

func cidr(v string) *corev3.CidrRange {
	p, err := resource.ParseIPBlock(v)
	if err != nil {
		return nil
	}
	return &corev3.CidrRange{AddressPrefix: p.Addr().String(), PrefixLen: wrapperspb.UInt32(uint32(p.Bits()))}
}

func pathKey(k string) *matcherv3.MetadataMatcher_PathSegment {
	return &matcherv3.MetadataMatcher_PathSegment{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: k}}
}

// fieldPerm builds the permission of one field: any of values and none of
// notValues (nil when neither is set).
func fieldPerm(values, notValues []string, one func(string) *rbacv3.Permission) []*rbacv3.Permission {
	var out []*rbacv3.Permission
	conv := func(vs []string) []*rbacv3.Permission {
		var ps []*rbacv3.Permission
		for _, v := range vs {
			if p := one(v); p != nil {
				ps = append(ps, p)
			}
		}
		return ps
	}
	if ps := conv(values); len(values) > 0 {
		if len(ps) == 0 {
			out = append(out, permNot(permAny()))
		} else {
			out = append(out, permOr(ps))
		}
	}
	if ps := conv(notValues); len(ps) > 0 {
		out = append(out, permNot(permOr(ps)))
	}
	return out
}

func fieldPrin(values, notValues []string, one func(string) *rbacv3.Principal) []*rbacv3.Principal {
	var out []*rbacv3.Principal
	conv := func(vs []string) []*rbacv3.Principal {
		var ps []*rbacv3.Principal
		for _, v := range vs {
			if p := one(v); p != nil {
				ps = append(ps, p)
			}
		}
		return ps
	}
	if len(values) > 0 {
		out = append(out, prinOr(conv(values)))
	}
	if ps := conv(notValues); len(ps) > 0 {
		out = append(out, prinNot(prinOr(ps)))
	}
	return out
}

func (b *ruleBuilder) principalName(v string) *rbacv3.Principal {
	kind, lit, _ := resource.WildcardPattern(v)
	m := stringMatch(v, false)
	if (kind == "exact" || kind == "prefix") && !strings.HasPrefix(lit, "spiffe:") {
		// Istio's form TRUST_DOMAIN/ns/NS/sa/SA.
		m = stringMatch("spiffe://"+v, false)
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{PrincipalName: m}}}
}

func (b *ruleBuilder) namespace(v string) *rbacv3.Principal {
	kind, lit, _ := resource.WildcardPattern(v)
	var ns string
	switch kind {
	case "prefix":
		ns = regexp.QuoteMeta(lit) + "[^/]*"
	case "suffix":
		ns = "[^/]*" + regexp.QuoteMeta(lit)
	case "any":
		ns = "[^/]+"
	default:
		ns = regexp.QuoteMeta(lit)
	}
	re := "spiffe://" + regexp.QuoteMeta(b.trustDomain) + "/ns/" + ns + "/sa/[^/]+"
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{
		PrincipalName: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: re}}},
	}}}
}

func directIP(v string) *rbacv3.Principal {
	c := cidr(v)
	if c == nil {
		return nil
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: c}}
}

func remoteIP(v string) *rbacv3.Principal {
	c := cidr(v)
	if c == nil {
		return nil
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_RemoteIp{RemoteIp: c}}
}

// claim matches a claim of the verified token of any of the port's
// providers: a string claim equal to the pattern or, when list, a list
// claim holding it.
func (b *ruleBuilder) claim(path []string, v string, list bool) *rbacv3.Principal {
	var ids []*rbacv3.Principal
	for _, payload := range b.payloads {
		segs := []*matcherv3.MetadataMatcher_PathSegment{pathKey(payload)}
		for _, p := range path {
			segs = append(segs, pathKey(p))
		}
		str := &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: stringMatch(v, false)}}
		ids = append(ids, &rbacv3.Principal{Identifier: &rbacv3.Principal_Metadata{Metadata: &matcherv3.MetadataMatcher{
			Filter: FilterJWTAuthn, Path: segs, Value: str,
		}}})
		if list {
			ids = append(ids, &rbacv3.Principal{Identifier: &rbacv3.Principal_Metadata{Metadata: &matcherv3.MetadataMatcher{
				Filter: FilterJWTAuthn, Path: segs,
				Value: &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_ListMatch{ListMatch: &matcherv3.ListMatcher{
					MatchPattern: &matcherv3.ListMatcher_OneOf{OneOf: str},
				}}},
			}}})
		}
	}
	return prinOr(ids)
}

// requestPrincipal matches ISSUER/SUBJECT: the token's iss and sub.
func (b *ruleBuilder) requestPrincipal(v string) *rbacv3.Principal {
	iss, sub, err := resource.SplitRequestPrincipal(v)
	if err != nil || len(b.payloads) == 0 {
		return prinNone()
	}
	var ids []*rbacv3.Principal
	for _, payload := range b.payloads {
		one := &ruleBuilder{payloads: []string{payload}}
		match := []*rbacv3.Principal{one.claim([]string{"iss"}, iss, false)}
		if sub != "*" {
			// A "*" subject is any verified token of the issuer, with
			// or without a sub claim (a missing sub must not slip past
			// a DENY on ISSUER/*).
			match = append(match, one.claim([]string{"sub"}, sub, false))
		}
		ids = append(ids, prinAnd(match))
	}
	return prinOr(ids)
}

func (b *ruleBuilder) source(s model.AuthzSource, tcp bool) *rbacv3.Principal {
	var and []*rbacv3.Principal
	and = append(and, fieldPrin(s.Principals, s.NotPrincipals, b.principalName)...)
	and = append(and, fieldPrin(s.Namespaces, s.NotNamespaces, b.namespace)...)
	and = append(and, fieldPrin(s.IPBlocks, s.NotIPBlocks, directIP)...)
	if !tcp {
		and = append(and, fieldPrin(s.RemoteIPBlocks, s.NotRemoteIPBlocks, remoteIP)...)
		and = append(and, fieldPrin(s.RequestPrincipals, s.NotRequestPrincipals, b.requestPrincipal)...)
	}
	return prinAnd(and)
}

// portPerm matches a destination port. The RBAC filter sits on one
// inbound listener, whose local port is what destination_port sees: the
// app port it serves (or the listener's own port) becomes the listener's
// port, any other port can never match there.
func (b *ruleBuilder) portPerm(v string) *rbacv3.Permission {
	n, err := strconv.ParseUint(v, 10, 16)
	if err != nil || n == 0 {
		return nil
	}
	if uint32(n) != b.appPort && uint32(n) != b.listenerPort {
		return permNot(permAny())
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: b.listenerPort}}
}

func (b *ruleBuilder) operation(o model.AuthzOperation, tcp bool) *rbacv3.Permission {
	var and []*rbacv3.Permission
	if !tcp {
		and = append(and, fieldPerm(o.Methods, o.NotMethods, func(v string) *rbacv3.Permission {
			if v == "*" {
				return permAny()
			}
			return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: headerMatch(":method", v, false)}}
		})...)
		and = append(and, fieldPerm(o.Hosts, o.NotHosts, func(v string) *rbacv3.Permission {
			if v == "*" {
				return permAny()
			}
			return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: hostMatch(v)}}
		})...)
	}
	and = append(and, fieldPerm(o.Ports, o.NotPorts, b.portPerm)...)
	if !tcp {
		and = append(and, fieldPerm(o.Paths, o.NotPaths, func(v string) *rbacv3.Permission {
			if v == "*" {
				return permAny()
			}
			return &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{
				Rule: &matcherv3.PathMatcher_Path{Path: stringMatch(canonicalPath(v), false)},
			}}}
		})...)
	}
	return permAnd(and)
}

// condition translates a `when` condition into permissions (destination
// port, SNI) or principals (everything else).
func (b *ruleBuilder) condition(c model.AuthzCondition, tcp bool) ([]*rbacv3.Permission, []*rbacv3.Principal) {
	if tcp && !c.Key.L4() {
		return nil, nil
	}
	switch c.Key.Attr {
	case resource.AttrDestPort:
		return fieldPerm(c.Values, c.NotValues, b.portPerm), nil
	case resource.AttrSNI:
		return fieldPerm(c.Values, c.NotValues, func(v string) *rbacv3.Permission {
			return &rbacv3.Permission{Rule: &rbacv3.Permission_RequestedServerName{RequestedServerName: stringMatch(v, true)}}
		}), nil
	}
	var one func(string) *rbacv3.Principal
	switch c.Key.Attr {
	case resource.AttrRequestHeader:
		name := c.Key.Name[0]
		one = func(v string) *rbacv3.Principal {
			return &rbacv3.Principal{Identifier: &rbacv3.Principal_Header{Header: headerMatch(name, v, false)}}
		}
	case resource.AttrClaim:
		one = func(v string) *rbacv3.Principal { return b.claim(c.Key.Name, v, true) }
	case resource.AttrAuthPrincipal:
		one = b.requestPrincipal
	case resource.AttrAudiences:
		one = func(v string) *rbacv3.Principal { return b.claim([]string{"aud"}, v, true) }
	case resource.AttrPresenter:
		one = func(v string) *rbacv3.Principal { return b.claim([]string{"azp"}, v, false) }
	case resource.AttrSourceIP:
		one = directIP
	case resource.AttrRemoteIP:
		one = remoteIP
	case resource.AttrSourceNS:
		one = b.namespace
	case resource.AttrSourcePrincipa:
		one = b.principalName
	default:
		return nil, []*rbacv3.Principal{prinNone()}
	}
	return nil, fieldPrin(c.Values, c.NotValues, one)
}

// policy translates one rule: any of its sources AND any of its
// operations AND every condition. On a TCP port L7 fields are left out.
func (b *ruleBuilder) policy(r model.AuthzRule, tcp bool) *rbacv3.Policy {
	var perms []*rbacv3.Permission
	var prins []*rbacv3.Principal
	if len(r.From) > 0 {
		var ids []*rbacv3.Principal
		for _, f := range r.From {
			ids = append(ids, b.source(f, tcp))
		}
		prins = append(prins, prinOr(ids))
	}
	if len(r.To) > 0 {
		var ops []*rbacv3.Permission
		for _, t := range r.To {
			ops = append(ops, b.operation(t, tcp))
		}
		perms = append(perms, permOr(ops))
	}
	for _, c := range r.When {
		pe, pr := b.condition(c, tcp)
		perms = append(perms, pe...)
		prins = append(prins, pr...)
	}
	return &rbacv3.Policy{
		Permissions: []*rbacv3.Permission{permAnd(perms)},
		Principals:  []*rbacv3.Principal{prinAnd(prins)},
	}
}
