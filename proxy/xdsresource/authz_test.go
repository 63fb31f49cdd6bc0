package xdsresource_test

import (
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	httprbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	netrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	exprv1 "google.golang.org/genproto/googleapis/api/expr/v1alpha1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/proxy/xdsresource"
)

const testJWKS = `{"keys":[{"kty":"EC","crv":"P-256","alg":"ES256","kid":"k","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`

func strExact(v string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}}
}

func strPrefix(v string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: v}}
}

func claimPrincipal(payload, claim string, list bool, m *matcherv3.StringMatcher) *rbacv3.Principal {
	v := &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: m}}
	if list {
		v = &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_ListMatch{ListMatch: &matcherv3.ListMatcher{
			MatchPattern: &matcherv3.ListMatcher_OneOf{OneOf: v}}}}
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Metadata{Metadata: &matcherv3.MetadataMatcher{
		Filter: "envoy.filters.http.jwt_authn",
		Path: []*matcherv3.MetadataMatcher_PathSegment{
			{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: payload}},
			{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: claim}},
		},
		Value: v,
	}}}
}

// authzPolicy is a policy as the control plane generates one.
func authzPolicy() *rbacv3.Policy {
	return &rbacv3.Policy{
		Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: []*rbacv3.Permission{
			{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: []*rbacv3.Permission{
				{Rule: &rbacv3.Permission_Header{Header: &routev3.HeaderMatcher{Name: ":method",
					HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: strExact("GET")}}}},
			}}}},
			{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{Rule: &matcherv3.PathMatcher_Path{Path: strPrefix("/api/")}}}},
			{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: 8080}},
			{Rule: &rbacv3.Permission_NotRule{NotRule: &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationIp{
				DestinationIp: &corev3.CidrRange{AddressPrefix: "10.9.9.9", PrefixLen: wrapperspb.UInt32(16)}}}}},
		}}}}},
		Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: []*rbacv3.Principal{
			{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{PrincipalName: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: regexMatcher(`spiffe://td/ns/foo/sa/[^/]+`)}}}}},
			{Identifier: &rbacv3.Principal_RemoteIp{RemoteIp: &corev3.CidrRange{AddressPrefix: "192.0.2.0", PrefixLen: wrapperspb.UInt32(24)}}},
			{Identifier: &rbacv3.Principal_NotId{NotId: &rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{
				DirectRemoteIp: &corev3.CidrRange{AddressPrefix: "2001:db8::", PrefixLen: wrapperspb.UInt32(32)}}}}},
			claimPrincipal("ns/ra/0", "iss", false, strExact("https://issuer")),
			claimPrincipal("ns/ra/0", "groups", true, strExact("admins")),
		}}}}},
	}
}

func rbacFilter(name string, m proto.Message) *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(m)}}
}

func jwtAuthn() *jwtv3.JwtAuthentication {
	return &jwtv3.JwtAuthentication{
		Providers: map[string]*jwtv3.JwtProvider{"ns/ra/0": {
			Issuer: "https://issuer", Audiences: []string{"svc"},
			JwksSourceSpecifier: &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{
				Specifier: &corev3.DataSource_InlineString{InlineString: testJWKS}}},
			FromHeaders:       []*jwtv3.JwtHeader{{Name: "x-token", ValuePrefix: "Bearer "}},
			PayloadInMetadata: "ns/ra/0", ClockSkewSeconds: 30,
			ClaimToHeaders: []*jwtv3.JwtClaimToHeader{{HeaderName: "x-sub", ClaimName: "sub"}},
		}},
		Rules: []*jwtv3.RequirementRule{{
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			RequirementType: &jwtv3.RequirementRule_Requires{Requires: &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAny{
				RequiresAny: &jwtv3.JwtRequirementOrList{Requirements: []*jwtv3.JwtRequirement{
					{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: "ns/ra/0"}},
					{RequiresType: &jwtv3.JwtRequirement_AllowMissing{AllowMissing: &emptypb.Empty{}}},
				}}}}},
		}},
	}
}

func extAuthz() *extauthzv3.ExtAuthz {
	return &extauthzv3.ExtAuthz{
		Services: &extauthzv3.ExtAuthz_GrpcService{GrpcService: &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "weft-authz|opa"}},
			Timeout:         durationpb.New(500 * time.Millisecond)}},
		TransportApiVersion: corev3.ApiVersion_V3,
		FilterEnabledMetadata: &matcherv3.MetadataMatcher{
			Filter: "envoy.filters.http.rbac",
			Path:   []*matcherv3.MetadataMatcher_PathSegment{{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: "shadow_effective_policy_id"}}},
			Value:  &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: strPrefix("weft-ext-authz/")}},
		},
	}
}

// authzHCMFilters are the inbound filters of docs/xds.md, in order.
func authzHCMFilters() []*hcmv3.HttpFilter {
	return []*hcmv3.HttpFilter{
		rbacFilter("envoy.filters.http.jwt_authn", jwtAuthn()),
		rbacFilter("envoy.filters.http.rbac", &httprbacv3.RBAC{ShadowRules: &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW,
			Policies: map[string]*rbacv3.Policy{"weft-ext-authz/ns/c": authzPolicy()}}, ShadowRulesStatPrefix: "weft_ext_authz_"}),
		rbacFilter("envoy.filters.http.ext_authz", extAuthz()),
		rbacFilter("envoy.filters.http.rbac", &httprbacv3.RBAC{Rules: &rbacv3.RBAC{Action: rbacv3.RBAC_DENY,
			Policies: map[string]*rbacv3.Policy{"ns/b/rule-0": authzPolicy(), "ns/a/rule-0": authzPolicy()}}}),
		rbacFilter("envoy.filters.http.rbac", &httprbacv3.RBAC{Rules: &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW}}),
		rbacFilter("envoy.filters.http.rbac", &httprbacv3.RBAC{ShadowRules: &rbacv3.RBAC{Action: rbacv3.RBAC_LOG,
			Policies: map[string]*rbacv3.Policy{"ns/audit/rule-0": authzPolicy()}}}),
		routerHTTPFilter(),
	}
}

func authzListener(mod func(fs []*hcmv3.HttpFilter) []*hcmv3.HttpFilter) *listenerv3.Listener {
	return hcmListener(func(h *hcmv3.HttpConnectionManager) {
		h.HttpFilters = authzHCMFilters()
		if mod != nil {
			h.HttpFilters = mod(h.HttpFilters)
		}
	})
}

func TestDecodeAuthzFilters(t *testing.T) {
	l, err := xdsresource.DecodeListener(marshal(t, authzListener(nil)))
	if err != nil {
		t.Fatal(err)
	}
	hcm := l.FilterChains[0].HTTP
	az := hcm.Authz
	wantOrder := []string{"envoy.filters.http.jwt_authn", "envoy.filters.http.rbac", "envoy.filters.http.ext_authz", "envoy.filters.http.rbac", "envoy.filters.http.rbac", "envoy.filters.http.rbac"}
	if strings.Join(az.Order, ",") != strings.Join(wantOrder, ",") || len(hcm.HTTPFilters) != 7 || len(az.RBAC) != 4 || len(az.ExtAuthz) != 1 {
		t.Fatalf("filters: %v / %v", hcm.HTTPFilters, az.Order)
	}
	j := az.JWT
	if !j.AllowMissing || len(j.Providers) != 1 || j.Providers[0].Issuer != "https://issuer" || j.Providers[0].ClockSkew != 30*time.Second ||
		string(j.Providers[0].JWKS) != testJWKS || j.Providers[0].FromHeaders[0] != (xdsresource.JWTHeader{Name: "x-token", Prefix: "Bearer "}) ||
		j.Providers[0].ClaimToHeaders[0] != (xdsresource.JWTClaimHeader{Header: "x-sub", Claim: "sub"}) {
		t.Fatalf("jwt: %s", dump(t, j))
	}
	x := az.ExtAuthz[0]
	if x.Cluster != "weft-authz|opa" || x.Timeout != 500*time.Millisecond || x.EnabledByShadow != "weft-ext-authz/" || x.StatusOnError != 403 || x.FailureModeAllow {
		t.Fatalf("ext_authz: %+v", x)
	}
	deny := az.RBAC[1].Rules
	if deny.Action != xdsresource.RBACDeny || deny.Policies[0].Name != "ns/a/rule-0" || deny.Policies[1].Name != "ns/b/rule-0" {
		t.Fatalf("deny: %s", dump(t, deny))
	}
	if az.RBAC[2].Rules.Action != xdsresource.RBACAllow || len(az.RBAC[2].Rules.Policies) != 0 || az.RBAC[3].ShadowRules.Action != xdsresource.RBACLog {
		t.Fatal("allow / audit")
	}
	p := deny.Policies[0]
	perm := p.Permissions[0]
	if perm.Kind != xdsresource.PermAnd || perm.Rules[0].Rules[0].Header.Name != ":method" || perm.Rules[1].Path.Value != "/api/" ||
		perm.Rules[2].Port != 8080 || perm.Rules[3].Kind != xdsresource.PermNot || perm.Rules[3].Rules[0].CIDR.String() != "10.9.0.0/16" {
		t.Fatalf("permission: %s", dump(t, perm))
	}
	ids := p.Principals[0].IDs
	if ids[0].Kind != xdsresource.PrinAuthenticated || !ids[0].Name.Regex.MatchString("spiffe://td/ns/foo/sa/x") ||
		ids[1].Kind != xdsresource.PrinRemoteIP || ids[2].IDs[0].Kind != xdsresource.PrinDirectRemoteIP ||
		ids[3].Payload != "ns/ra/0" || ids[3].Claim[0] != "iss" || ids[3].InList || !ids[4].InList || ids[4].Value.Value != "admins" {
		t.Fatalf("principals: %s", dump(t, ids))
	}
}

func TestDecodeAuthzRefused(t *testing.T) {
	modPolicy := func(f func(p *rbacv3.Policy)) *listenerv3.Listener {
		return authzListener(func(fs []*hcmv3.HttpFilter) []*hcmv3.HttpFilter {
			p := authzPolicy()
			f(p)
			fs[3] = rbacFilter("envoy.filters.http.rbac", &httprbacv3.RBAC{Rules: &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: map[string]*rbacv3.Policy{"x": p}}})
			return fs
		})
	}
	modJWT := func(f func(j *jwtv3.JwtAuthentication)) *listenerv3.Listener {
		return authzListener(func(fs []*hcmv3.HttpFilter) []*hcmv3.HttpFilter {
			j := jwtAuthn()
			f(j)
			fs[0] = rbacFilter("envoy.filters.http.jwt_authn", j)
			return fs
		})
	}
	modExt := func(f func(x *extauthzv3.ExtAuthz)) *listenerv3.Listener {
		return authzListener(func(fs []*hcmv3.HttpFilter) []*hcmv3.HttpFilter {
			x := extAuthz()
			f(x)
			fs[2] = rbacFilter("envoy.filters.http.ext_authz", x)
			return fs
		})
	}
	tests := []struct {
		name string
		in   *listenerv3.Listener
		want string
	}{
		{"cel condition", modPolicy(func(p *rbacv3.Policy) { p.Condition = &exprv1.Expr{} }), `http_filters[3].typed_config.rules.policies["x"].condition: CEL: not supported`},
		{"matcher extension", modPolicy(func(p *rbacv3.Policy) {
			p.Permissions = []*rbacv3.Permission{{Rule: &rbacv3.Permission_Matcher{Matcher: &corev3.TypedExtensionConfig{Name: "m"}}}}
		}), `policies["x"].permissions[0].matcher: not supported`},
		{"filter_state", modPolicy(func(p *rbacv3.Policy) {
			p.Principals = []*rbacv3.Principal{{Identifier: &rbacv3.Principal_FilterState{FilterState: &matcherv3.FilterStateMatcher{Key: "k"}}}}
		}), `principals[0].filter_state: not supported`},
		{"metadata other filter", modPolicy(func(p *rbacv3.Policy) {
			c := claimPrincipal("a", "b", false, strExact("x"))
			c.GetMetadata().Filter = "istio_authn"
			p.Principals = []*rbacv3.Principal{c}
		}), `metadata.filter: "istio_authn": not supported`},
		{"empty principals", modPolicy(func(p *rbacv3.Policy) { p.Principals = nil }), `principals: must not be empty`},
		{"bad regex", modPolicy(func(p *rbacv3.Policy) {
			p.Permissions = []*rbacv3.Permission{{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{Rule: &matcherv3.PathMatcher_Path{Path: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: regexMatcher("(")}}}}}}}
		}), `invalid regex`},
		{"remote jwks", modJWT(func(j *jwtv3.JwtAuthentication) {
			j.Providers["ns/ra/0"].JwksSourceSpecifier = &jwtv3.JwtProvider_RemoteJwks{RemoteJwks: &jwtv3.RemoteJwks{}}
		}), `providers["ns/ra/0"].remote_jwks: not supported`},
		{"key without alg", modJWT(func(j *jwtv3.JwtAuthentication) {
			j.Providers["ns/ra/0"].GetLocalJwks().Specifier = &corev3.DataSource_InlineString{InlineString: `{"keys":[{"kty":"EC"}]}`}
		}), `has no "alg"`},
		{"requires_all", modJWT(func(j *jwtv3.JwtAuthentication) {
			j.Rules[0].GetRequires().RequiresType = &jwtv3.JwtRequirement_RequiresAll{RequiresAll: &jwtv3.JwtRequirementAndList{}}
		}), `only provider_name and requires_any are not supported`},
		{"unknown provider", modJWT(func(j *jwtv3.JwtAuthentication) {
			j.Rules[0].GetRequires().RequiresType = &jwtv3.JwtRequirement_ProviderName{ProviderName: "nope"}
		}), `provider "nope" is not defined`},
		{"rule prefix", modJWT(func(j *jwtv3.JwtAuthentication) {
			j.Rules[0].Match = &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/api"}}
		}), `rules[0].match: only prefix "/"`},
		{"http service", modExt(func(x *extauthzv3.ExtAuthz) {
			x.Services = &extauthzv3.ExtAuthz_HttpService{HttpService: &extauthzv3.HttpService{}}
		}), `http_service: not supported`},
		{"v2", modExt(func(x *extauthzv3.ExtAuthz) { x.TransportApiVersion = corev3.ApiVersion_V2 }), `transport_api_version`},
		{"other gate", modExt(func(x *extauthzv3.ExtAuthz) { x.FilterEnabledMetadata.Filter = "other" }), `filter_enabled_metadata.filter`},
		{"missing config", authzListener(func(fs []*hcmv3.HttpFilter) []*hcmv3.HttpFilter {
			fs[1] = &hcmv3.HttpFilter{Name: "envoy.filters.http.rbac"}
			return fs
		}), `http_filters[1].typed_config: must be set`},
		{"after router", authzListener(func(fs []*hcmv3.HttpFilter) []*hcmv3.HttpFilter { return append(fs, fs[1]) }), `follows the router filter`},
		{"two jwt", authzListener(func(fs []*hcmv3.HttpFilter) []*hcmv3.HttpFilter { return append([]*hcmv3.HttpFilter{fs[0]}, fs...) }), `duplicate envoy.filters.http.jwt_authn`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := xdsresource.DecodeListener(marshal(t, tt.in))
			checkResult(t, got, err, nil, tt.want)
		})
	}
}

func networkRBACListener(rules *rbacv3.RBAC) *listenerv3.Listener {
	l := tcpListener(nil)
	nr := networkFilter(&netrbacv3.RBAC{StatPrefix: "tcp_rbac", Rules: rules})
	l.FilterChains[0].Filters = append([]*listenerv3.Filter{nr}, l.FilterChains[0].Filters...)
	return l
}

func TestDecodeNetworkRBAC(t *testing.T) {
	l4 := &rbacv3.Policy{
		Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: 5432}}},
		Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{
			PrincipalName: strExact("spiffe://td/ns/a/sa/b")}}}},
	}
	l, err := xdsresource.DecodeListener(marshal(t, networkRBACListener(&rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: map[string]*rbacv3.Policy{"p": l4}})))
	if err != nil {
		t.Fatal(err)
	}
	tcp := l.FilterChains[0].TCP
	if tcp.RBAC == nil || tcp.RBAC.StatPrefix != "tcp_rbac" || tcp.RBAC.Rules.Policies[0].Permissions[0].Port != 5432 || tcp.Cluster != "db.prod:5432" {
		t.Fatalf("%s", dump(t, tcp))
	}
	// DENY then ALLOW, as the control plane chains them.
	two := networkRBACListener(&rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: map[string]*rbacv3.Policy{"d": l4}})
	allow := networkFilter(&netrbacv3.RBAC{StatPrefix: "tcp_allow", Rules: &rbacv3.RBAC{Policies: map[string]*rbacv3.Policy{"a": l4}}})
	two.FilterChains[0].Filters = append([]*listenerv3.Filter{two.FilterChains[0].Filters[0], allow}, two.FilterChains[0].Filters[1:]...)
	if l, err = xdsresource.DecodeListener(marshal(t, two)); err != nil {
		t.Fatal(err)
	}
	if r := l.FilterChains[0].TCP.RBAC; r.Rules.Action != xdsresource.RBACDeny || r.Then == nil || r.Then.StatPrefix != "tcp_allow" || r.Then.Rules.Action != xdsresource.RBACAllow || r.Then.Then != nil {
		t.Fatalf("chain: %s", dump(t, r))
	}
	l7 := proto.Clone(l4).(*rbacv3.Policy)
	l7.Permissions = []*rbacv3.Permission{{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{Rule: &matcherv3.PathMatcher_Path{Path: strExact("/")}}}}}
	_, err = xdsresource.DecodeListener(marshal(t, networkRBACListener(&rbacv3.RBAC{Policies: map[string]*rbacv3.Policy{"p": l7}})))
	checkResult(t, nil, err, nil, `filters[0].typed_config.rules.policies["p"].permissions[0].url_path: not supported in a network RBAC`)
	// A network RBAC filter before an HCM, or alone, is refused.
	h := hcmListener(nil)
	h.FilterChains[0].Filters = append([]*listenerv3.Filter{networkFilter(&netrbacv3.RBAC{StatPrefix: "x"})}, h.FilterChains[0].Filters...)
	_, err = xdsresource.DecodeListener(marshal(t, h))
	checkResult(t, nil, err, nil, `only supported before a TCP proxy`)
	_ = tcpv3.TcpProxy{}
}
