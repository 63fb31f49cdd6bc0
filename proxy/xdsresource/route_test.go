package xdsresource_test

import (
	"errors"
	"math"
	"regexp"
	"regexp/syntax"
	"testing"
	"time"

	xdscorev3 "github.com/cncf/xds/go/xds/core/v3"
	xdsmatcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/proxy/xdsresource"
)

func prefixMatch(p string) *routev3.RouteMatch {
	return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: p}}
}

func toCluster(name string) *routev3.Route_Route {
	return &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: name}}}
}

func stringMatch(sm *matcherv3.StringMatcher) *routev3.HeaderMatcher_StringMatch {
	return &routev3.HeaderMatcher_StringMatch{StringMatch: sm}
}

// baseRoutes is a valid route configuration with one virtual host of one
// route.
func baseRoutes() *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{
		Name: "outbound",
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    "web.prod:80",
			Domains: []string{"web.prod", "web.prod:80"},
			Routes:  []*routev3.Route{{Name: "default", Match: prefixMatch("/"), Action: toCluster("web")}},
		}},
	}
}

// modRoutes is baseRoutes changed by mod.
func modRoutes(mod func(*routev3.RouteConfiguration)) *routev3.RouteConfiguration {
	rc := baseRoutes()
	mod(rc)
	return rc
}

// modRoute is baseRoutes with its route changed by mod.
func modRoute(mod func(*routev3.Route)) *routev3.RouteConfiguration {
	return modRoutes(func(rc *routev3.RouteConfiguration) { mod(rc.VirtualHosts[0].Routes[0]) })
}

// modMatch is baseRoutes with its route's match changed by mod.
func modMatch(mod func(*routev3.RouteMatch)) *routev3.RouteConfiguration {
	return modRoute(func(r *routev3.Route) { mod(r.Match) })
}

// modAction is baseRoutes with its route's RouteAction changed by mod.
func modAction(mod func(*routev3.RouteAction)) *routev3.RouteConfiguration {
	return modRoute(func(r *routev3.Route) { mod(r.GetRoute()) })
}

// withHeader is baseRoutes whose route matches h.
func withHeader(h *routev3.HeaderMatcher) *routev3.RouteConfiguration {
	return modMatch(func(m *routev3.RouteMatch) { m.Headers = []*routev3.HeaderMatcher{h} })
}

// withQuery is baseRoutes whose route matches q.
func withQuery(q *routev3.QueryParameterMatcher) *routev3.RouteConfiguration {
	return modMatch(func(m *routev3.RouteMatch) { m.QueryParameters = []*routev3.QueryParameterMatcher{q} })
}

// anchored is how the decoder compiles a regex.
func anchored(expr string) *regexp.Regexp { return regexp.MustCompile("^(?:" + expr + ")$") }

// fullRoutes uses every field the decoder reads.
func fullRoutes() *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{
		Name: "outbound",
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    "api.prod:80",
			Domains: []string{"api.prod", "api.prod:80"},
			Routes: []*routev3.Route{
				{
					Name: "headers",
					Match: &routev3.RouteMatch{
						PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/api"},
						CaseSensitive: wrapperspb.Bool(false),
						Headers: []*routev3.HeaderMatcher{
							{Name: ":method", HeaderMatchSpecifier: stringMatch(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "GET"}})},
							{Name: "X-User", HeaderMatchSpecifier: &routev3.HeaderMatcher_PrefixMatch{PrefixMatch: "adm"}},
							{Name: "x-a", HeaderMatchSpecifier: &routev3.HeaderMatcher_ExactMatch{ExactMatch: "1"}},
							{Name: "x-b", HeaderMatchSpecifier: &routev3.HeaderMatcher_SuffixMatch{SuffixMatch: "z"}},
							{Name: "x-c", HeaderMatchSpecifier: &routev3.HeaderMatcher_ContainsMatch{ContainsMatch: "mid"}},
							{Name: "x-d", HeaderMatchSpecifier: &routev3.HeaderMatcher_SafeRegexMatch{SafeRegexMatch: regexMatcher("v[0-9]+")}},
							{Name: "x-e", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}},
							{Name: "x-f", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: false}},
							{Name: "x-g", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: false}, InvertMatch: true},
							{Name: "x-h"},
							{Name: "x-i", InvertMatch: true, HeaderMatchSpecifier: stringMatch(&matcherv3.StringMatcher{
								MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "Bearer "}, IgnoreCase: true,
							})},
							{Name: "x-j", HeaderMatchSpecifier: stringMatch(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: ".json"}})},
							{Name: "x-k", HeaderMatchSpecifier: stringMatch(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Contains{Contains: "gzip"}})},
							{Name: "x-l", HeaderMatchSpecifier: stringMatch(&matcherv3.StringMatcher{
								MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: regexMatcher("a|b")}, IgnoreCase: true,
							})},
							{Name: "x-m", HeaderMatchSpecifier: stringMatch(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{}})},
						},
						QueryParameters: []*routev3.QueryParameterMatcher{
							{Name: "q", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
								MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "1"},
							}}},
							{Name: "debug", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}},
							{Name: "p"},
						},
					},
					Action: &routev3.Route_Route{Route: &routev3.RouteAction{
						ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "api"},
						Timeout:          durationpb.New(1500 * time.Millisecond),
					}},
				},
				{
					Name:  "split",
					Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/exact"}, CaseSensitive: wrapperspb.Bool(true)},
					Action: &routev3.Route_Route{Route: &routev3.RouteAction{
						ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
							Clusters: []*routev3.WeightedCluster_ClusterWeight{
								{Name: "api-v1", Weight: wrapperspb.UInt32(90)},
								{Name: "api-v2", Weight: wrapperspb.UInt32(10)},
								{Name: "api-v3", Weight: wrapperspb.UInt32(0)},
								{Name: "api-v4"},
							},
						}},
						Timeout: durationpb.New(0),
					}},
				},
				{
					Name:   "regex",
					Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: regexMatcher("/v[0-9]+/.*")}},
					Action: toCluster("api"),
				},
				{
					Name:  "segments",
					Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/foo"}},
					Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
						Status: 503,
						Body:   &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "nope"}},
					}},
				},
				{
					Match: prefixMatch(""),
					Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
						Status: 200,
						Body:   &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: []byte("ok\n")}},
					}},
				},
			},
		}, {
			Name:    "fallback",
			Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Match:  prefixMatch("/"),
				Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 404}},
			}},
		}},
	}
}

func fullRoutesWant() *xdsresource.RouteConfiguration {
	str := func(kind xdsresource.StringMatchKind, v string) xdsresource.StringMatch {
		return xdsresource.StringMatch{Kind: kind, Value: v}
	}
	return &xdsresource.RouteConfiguration{
		Name: "outbound",
		VirtualHosts: []xdsresource.VirtualHost{{
			Name:    "api.prod:80",
			Domains: []string{"api.prod", "api.prod:80"},
			Routes: []xdsresource.Route{
				{
					Name: "headers",
					Match: xdsresource.RouteMatch{
						PathKind:      xdsresource.PathPrefix,
						Path:          "/api",
						CaseSensitive: false,
						Headers: []xdsresource.HeaderMatcher{
							{Name: ":method", String: str(xdsresource.MatchExact, "GET")},
							{Name: "x-user", String: str(xdsresource.MatchPrefix, "adm")},
							{Name: "x-a", String: str(xdsresource.MatchExact, "1")},
							{Name: "x-b", String: str(xdsresource.MatchSuffix, "z")},
							{Name: "x-c", String: str(xdsresource.MatchContains, "mid")},
							{Name: "x-d", String: xdsresource.StringMatch{Kind: xdsresource.MatchRegex, Regex: anchored("v[0-9]+")}},
							{Name: "x-e", Present: true},
							{Name: "x-f", Present: true, Invert: true},
							{Name: "x-g", Present: true},
							{Name: "x-h", Present: true},
							{Name: "x-i", Invert: true, String: xdsresource.StringMatch{Kind: xdsresource.MatchPrefix, Value: "Bearer ", IgnoreCase: true}},
							{Name: "x-j", String: str(xdsresource.MatchSuffix, ".json")},
							{Name: "x-k", String: str(xdsresource.MatchContains, "gzip")},
							{Name: "x-l", String: xdsresource.StringMatch{Kind: xdsresource.MatchRegex, Regex: anchored("a|b")}},
							{Name: "x-m", String: str(xdsresource.MatchExact, "")},
						},
						QueryParams: []xdsresource.QueryParamMatcher{
							{Name: "q", String: str(xdsresource.MatchExact, "1")},
							{Name: "debug", Present: true},
							{Name: "p", Present: true},
						},
					},
					Action: xdsresource.RouteAction{
						Clusters:   []xdsresource.WeightedCluster{{Name: "api", Weight: 1}},
						Timeout:    1500 * time.Millisecond,
						HasTimeout: true,
					},
				},
				{
					Name:  "split",
					Match: xdsresource.RouteMatch{PathKind: xdsresource.PathExact, Path: "/exact", CaseSensitive: true},
					Action: xdsresource.RouteAction{
						Clusters: []xdsresource.WeightedCluster{
							{Name: "api-v1", Weight: 90},
							{Name: "api-v2", Weight: 10},
							{Name: "api-v3", Weight: 0},
							{Name: "api-v4", Weight: 0},
						},
						HasTimeout: true,
					},
				},
				{
					Name:   "regex",
					Match:  xdsresource.RouteMatch{PathKind: xdsresource.PathRegex, PathRegex: anchored("/v[0-9]+/.*"), CaseSensitive: true},
					Action: xdsresource.RouteAction{Clusters: []xdsresource.WeightedCluster{{Name: "api", Weight: 1}}},
				},
				{
					Name:   "segments",
					Match:  xdsresource.RouteMatch{PathKind: xdsresource.PathSeparatedPrefix, Path: "/foo", CaseSensitive: true},
					Action: xdsresource.RouteAction{DirectStatus: 503, DirectBody: "nope"},
				},
				{
					Match:  xdsresource.RouteMatch{PathKind: xdsresource.PathPrefix, Path: "", CaseSensitive: true},
					Action: xdsresource.RouteAction{DirectStatus: 200, DirectBody: "ok\n"},
				},
			},
		}, {
			Name:    "fallback",
			Domains: []string{"*"},
			Routes: []xdsresource.Route{{
				Match:  xdsresource.RouteMatch{PathKind: xdsresource.PathPrefix, Path: "/", CaseSensitive: true},
				Action: xdsresource.RouteAction{DirectStatus: 404},
			}},
		}},
	}
}

func TestDecodeRouteConfiguration(t *testing.T) {
	tests := []struct {
		name    string
		in      proto.Message
		want    *xdsresource.RouteConfiguration
		wantErr string
	}{
		{name: "every field", in: fullRoutes(), want: fullRoutesWant()},
		{
			name: "no virtual host",
			in:   &routev3.RouteConfiguration{Name: "empty"},
			want: &xdsresource.RouteConfiguration{Name: "empty"},
		},
		{
			name: "virtual host without routes",
			in:   modRoutes(func(rc *routev3.RouteConfiguration) { rc.VirtualHosts[0].Routes = nil }),
			want: &xdsresource.RouteConfiguration{Name: "outbound", VirtualHosts: []xdsresource.VirtualHost{{
				Name: "web.prod:80", Domains: []string{"web.prod", "web.prod:80"},
			}}},
		},

		// RouteConfiguration and VirtualHost.
		{
			name:    "empty name",
			in:      modRoutes(func(rc *routev3.RouteConfiguration) { rc.Name = "" }),
			wantErr: "xdsresource: route: name: must not be empty",
		},
		{
			name:    "vhds",
			in:      modRoutes(func(rc *routev3.RouteConfiguration) { rc.Vhds = &routev3.Vhds{} }),
			wantErr: `xdsresource: route "outbound": vhds: not supported`,
		},
		{
			name:    "virtual host without name",
			in:      modRoutes(func(rc *routev3.RouteConfiguration) { rc.VirtualHosts[0].Name = "" }),
			wantErr: `route "outbound": virtual_hosts[0].name: must not be empty`,
		},
		{
			name:    "virtual host without domains",
			in:      modRoutes(func(rc *routev3.RouteConfiguration) { rc.VirtualHosts[0].Domains = nil }),
			wantErr: `route "outbound": virtual_hosts[0].domains: at least one domain is required`,
		},
		{
			name:    "empty domain",
			in:      modRoutes(func(rc *routev3.RouteConfiguration) { rc.VirtualHosts[0].Domains[1] = "" }),
			wantErr: `route "outbound": virtual_hosts[0].domains[1]: must not be empty`,
		},
		{
			name: "duplicate domain",
			in: modRoutes(func(rc *routev3.RouteConfiguration) {
				rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{
					Name: "other", Domains: []string{"a", "WEB.prod"}, Routes: rc.VirtualHosts[0].Routes,
				})
			}),
			wantErr: `route "outbound": virtual_hosts[1].domains[1]: duplicate domain "web.prod", also in virtual_hosts[0]`,
		},
		{
			name: "virtual host matcher",
			in: modRoutes(func(rc *routev3.RouteConfiguration) {
				rc.VirtualHosts[0] = &routev3.VirtualHost{Name: "m", Domains: []string{"*"}}
				rc.VirtualHosts[0].Matcher = fullMatcherTree()
			}),
			wantErr: `virtual_hosts[0].matcher: not supported`,
		},
		{
			name: "require_tls",
			in: modRoutes(func(rc *routev3.RouteConfiguration) {
				rc.VirtualHosts[0].RequireTls = routev3.VirtualHost_ALL
			}),
			wantErr: `virtual_hosts[0].require_tls: not supported`,
		},

		// Route.
		{
			name:    "route without match",
			in:      modRoute(func(r *routev3.Route) { r.Match = nil }),
			wantErr: `virtual_hosts[0].routes[0].match: must be set`,
		},
		{
			name:    "route without action",
			in:      modRoute(func(r *routev3.Route) { r.Action = nil }),
			wantErr: `virtual_hosts[0].routes[0]: an action (route, redirect or direct_response) is required`,
		},
		{
			name: "filter_action",
			in: modRoute(func(r *routev3.Route) {
				r.Action = &routev3.Route_FilterAction{FilterAction: &routev3.FilterAction{}}
			}),
			wantErr: `virtual_hosts[0].routes[0].filter_action: not supported`,
		},
		{
			name: "non_forwarding_action",
			in: modRoute(func(r *routev3.Route) {
				r.Action = &routev3.Route_NonForwardingAction{NonForwardingAction: &routev3.NonForwardingAction{}}
			}),
			wantErr: `virtual_hosts[0].routes[0].non_forwarding_action: not supported`,
		},

		// RouteMatch.
		{
			name: "invalid path regex in the third route",
			in: modRoutes(func(rc *routev3.RouteConfiguration) {
				vh := rc.VirtualHosts[0]
				vh.Routes = append(vh.Routes, vh.Routes[0], &routev3.Route{
					Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: regexMatcher("/(a")}},
					Action: toCluster("web"),
				})
			}),
			wantErr: `xdsresource: route "outbound": virtual_hosts[0].routes[2].match.safe_regex: invalid regex: error parsing regexp: missing closing ): ` + "`/(a`",
		},
		{
			name: "unbalanced regex that anchoring would hide",
			in: modMatch(func(m *routev3.RouteMatch) {
				m.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: regexMatcher("/a)|(/b")}
			}),
			wantErr: `routes[0].match.safe_regex: invalid regex: error parsing regexp: unexpected ): ` + "`/a)|(/b`",
		},
		{
			name: "empty regex",
			in: modMatch(func(m *routev3.RouteMatch) {
				m.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: regexMatcher("")}
			}),
			wantErr: `routes[0].match.safe_regex.regex: must not be empty`,
		},
		{
			name:    "no path specifier",
			in:      modMatch(func(m *routev3.RouteMatch) { m.PathSpecifier = nil }),
			wantErr: `routes[0].match: a path specifier (prefix, path, safe_regex or path_separated_prefix) is required`,
		},
		{
			name: "connect_matcher",
			in: modMatch(func(m *routev3.RouteMatch) {
				m.PathSpecifier = &routev3.RouteMatch_ConnectMatcher_{ConnectMatcher: &routev3.RouteMatch_ConnectMatcher{}}
			}),
			wantErr: `routes[0].match.connect_matcher: not supported`,
		},
		{
			name: "path_match_policy",
			in: modMatch(func(m *routev3.RouteMatch) {
				m.PathSpecifier = &routev3.RouteMatch_PathMatchPolicy{PathMatchPolicy: &corev3.TypedExtensionConfig{Name: "p"}}
			}),
			wantErr: `routes[0].match.path_match_policy: not supported`,
		},
		{
			name: "path_separated_prefix with trailing slash",
			in: modMatch(func(m *routev3.RouteMatch) {
				m.PathSpecifier = &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/foo/"}
			}),
			wantErr: `routes[0].match.path_separated_prefix: "/foo/" must not end with /`,
		},
		{
			name: "path_separated_prefix without slash",
			in: modMatch(func(m *routev3.RouteMatch) {
				m.PathSpecifier = &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "foo"}
			}),
			wantErr: `routes[0].match.path_separated_prefix: "foo" does not start with /`,
		},
		{
			name: "path_separated_prefix with query",
			in: modMatch(func(m *routev3.RouteMatch) {
				m.PathSpecifier = &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/a?b"}
			}),
			wantErr: `routes[0].match.path_separated_prefix: "/a?b" must not contain ? or #`,
		},
		{
			name: "runtime_fraction",
			in: modMatch(func(m *routev3.RouteMatch) {
				m.RuntimeFraction = &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 1}}
			}),
			wantErr: `routes[0].match.runtime_fraction: not supported`,
		},
		{
			name: "tls_context",
			in: modMatch(func(m *routev3.RouteMatch) {
				m.TlsContext = &routev3.RouteMatch_TlsContextMatchOptions{Presented: wrapperspb.Bool(true)}
			}),
			wantErr: `routes[0].match.tls_context: not supported`,
		},
		{
			name: "dynamic_metadata",
			in: modMatch(func(m *routev3.RouteMatch) {
				m.DynamicMetadata = []*matcherv3.MetadataMatcher{{Filter: "f"}}
			}),
			wantErr: `routes[0].match.dynamic_metadata: not supported`,
		},
		{
			name: "filter_state",
			in: modMatch(func(m *routev3.RouteMatch) {
				m.FilterState = []*matcherv3.FilterStateMatcher{{Key: "k"}}
			}),
			wantErr: `routes[0].match.filter_state: not supported`,
		},
		{
			name: "cookies",
			in: modMatch(func(m *routev3.RouteMatch) {
				m.Cookies = []*routev3.CookieMatcher{{Name: "c"}}
			}),
			wantErr: `routes[0].match.cookies: not supported`,
		},

		// HeaderMatcher.
		{
			name:    "header without name",
			in:      withHeader(&routev3.HeaderMatcher{}),
			wantErr: `routes[0].match.headers[0].name: must not be empty`,
		},
		{
			name:    "header name with newline",
			in:      withHeader(&routev3.HeaderMatcher{Name: "a\nb"}),
			wantErr: `routes[0].match.headers[0].name: "a\nb": invalid header name`,
		},
		{
			name: "range_match",
			in: withHeader(&routev3.HeaderMatcher{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_RangeMatch{
				RangeMatch: &typev3.Int64Range{Start: 1, End: 2},
			}}),
			wantErr: `routes[0].match.headers[0].range_match: not supported`,
		},
		{
			name:    "treat_missing_header_as_empty",
			in:      withHeader(&routev3.HeaderMatcher{Name: "x", TreatMissingHeaderAsEmpty: true}),
			wantErr: `routes[0].match.headers[0].treat_missing_header_as_empty: not supported`,
		},
		{
			name:    "empty prefix_match",
			in:      withHeader(&routev3.HeaderMatcher{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_PrefixMatch{}}),
			wantErr: `routes[0].match.headers[0].prefix_match: must not be empty`,
		},
		{
			name:    "empty suffix_match",
			in:      withHeader(&routev3.HeaderMatcher{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_SuffixMatch{}}),
			wantErr: `routes[0].match.headers[0].suffix_match: must not be empty`,
		},
		{
			name: "invalid safe_regex_match",
			in: withHeader(&routev3.HeaderMatcher{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_SafeRegexMatch{
				SafeRegexMatch: regexMatcher("[a"),
			}}),
			wantErr: `routes[0].match.headers[0].safe_regex_match: invalid regex: error parsing regexp: missing closing ]`,
		},
		{
			name:    "string_match without pattern",
			in:      withHeader(&routev3.HeaderMatcher{Name: "x", HeaderMatchSpecifier: stringMatch(&matcherv3.StringMatcher{})}),
			wantErr: `routes[0].match.headers[0].string_match: a match pattern (exact, prefix, suffix, contains or safe_regex) is required`,
		},
		{
			name: "string_match with empty contains",
			in: withHeader(&routev3.HeaderMatcher{Name: "x", HeaderMatchSpecifier: stringMatch(&matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_Contains{},
			})}),
			wantErr: `routes[0].match.headers[0].string_match.contains: must not be empty`,
		},
		{
			name: "string_match custom",
			in: withHeader(&routev3.HeaderMatcher{Name: "x", HeaderMatchSpecifier: stringMatch(&matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_Custom{Custom: customMatcher()},
			})}),
			wantErr: `routes[0].match.headers[0].string_match.custom: not supported`,
		},
		{
			name: "string_match invalid regex",
			in: withHeader(&routev3.HeaderMatcher{Name: "x", HeaderMatchSpecifier: stringMatch(&matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: regexMatcher("a**")},
			})}),
			wantErr: `routes[0].match.headers[0].string_match.safe_regex: invalid regex: error parsing regexp: invalid nested repetition operator`,
		},

		// QueryParameterMatcher.
		{
			name:    "query parameter without name",
			in:      withQuery(&routev3.QueryParameterMatcher{}),
			wantErr: `routes[0].match.query_parameters[0].name: must not be empty`,
		},
		{
			name: "query parameter present_match false",
			in: withQuery(&routev3.QueryParameterMatcher{Name: "q", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_PresentMatch{
				PresentMatch: false,
			}}),
			wantErr: `routes[0].match.query_parameters[0].present_match: false (match when absent): not supported`,
		},
		{
			name: "query parameter invalid string_match",
			in: withQuery(&routev3.QueryParameterMatcher{Name: "q", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{
				StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{}},
			}}),
			wantErr: `routes[0].match.query_parameters[0].string_match.prefix: must not be empty`,
		},

		// RouteAction.
		{
			name:    "no cluster",
			in:      modAction(func(a *routev3.RouteAction) { a.ClusterSpecifier = nil }),
			wantErr: `routes[0].route: one of cluster and weighted_clusters must be set`,
		},
		{
			name:    "empty cluster",
			in:      modAction(func(a *routev3.RouteAction) { a.ClusterSpecifier = &routev3.RouteAction_Cluster{} }),
			wantErr: `routes[0].route.cluster: must not be empty`,
		},
		{
			name: "cluster_header",
			in: modAction(func(a *routev3.RouteAction) {
				a.ClusterSpecifier = &routev3.RouteAction_ClusterHeader{ClusterHeader: "x-cluster"}
			}),
			wantErr: `routes[0].route.cluster_header: not supported`,
		},
		{
			name: "cluster_specifier_plugin",
			in: modAction(func(a *routev3.RouteAction) {
				a.ClusterSpecifier = &routev3.RouteAction_ClusterSpecifierPlugin{ClusterSpecifierPlugin: "p"}
			}),
			wantErr: `routes[0].route.cluster_specifier_plugin: not supported`,
		},
		{
			name: "inline_cluster_specifier_plugin",
			in: modAction(func(a *routev3.RouteAction) {
				a.ClusterSpecifier = &routev3.RouteAction_InlineClusterSpecifierPlugin{InlineClusterSpecifierPlugin: &routev3.ClusterSpecifierPlugin{}}
			}),
			wantErr: `routes[0].route.inline_cluster_specifier_plugin: not supported`,
		},
		{
			name:    "weighted_clusters without clusters",
			in:      withWeights(),
			wantErr: `routes[0].route.weighted_clusters.clusters: must not be empty`,
		},
		{
			name:    "all weights zero",
			in:      withWeights(&routev3.WeightedCluster_ClusterWeight{Name: "a"}, &routev3.WeightedCluster_ClusterWeight{Name: "b", Weight: wrapperspb.UInt32(0)}),
			wantErr: `routes[0].route.weighted_clusters.clusters: all weights are zero`,
		},
		{
			name: "weights overflow",
			in: withWeights(
				&routev3.WeightedCluster_ClusterWeight{Name: "a", Weight: wrapperspb.UInt32(math.MaxUint32)},
				&routev3.WeightedCluster_ClusterWeight{Name: "b", Weight: wrapperspb.UInt32(1)},
			),
			wantErr: `routes[0].route.weighted_clusters.clusters: sum of weights 4294967296 overflows uint32`,
		},
		{
			name:    "weighted cluster without name",
			in:      withWeights(&routev3.WeightedCluster_ClusterWeight{Name: "a", Weight: wrapperspb.UInt32(1)}, &routev3.WeightedCluster_ClusterWeight{}),
			wantErr: `routes[0].route.weighted_clusters.clusters[1].name: must not be empty`,
		},
		{
			name:    "weighted cluster_header",
			in:      withWeights(&routev3.WeightedCluster_ClusterWeight{ClusterHeader: "x", Weight: wrapperspb.UInt32(1)}),
			wantErr: `routes[0].route.weighted_clusters.clusters[0].cluster_header: not supported`,
		},
		{
			name:    "weighted metadata_match",
			in:      withWeights(&routev3.WeightedCluster_ClusterWeight{Name: "a", MetadataMatch: &corev3.Metadata{}}),
			wantErr: `routes[0].route.weighted_clusters.clusters[0].metadata_match: not supported`,
		},
		{
			name: "weighted host_rewrite_literal",
			in: withWeights(&routev3.WeightedCluster_ClusterWeight{Name: "a", HostRewriteSpecifier: &routev3.WeightedCluster_ClusterWeight_HostRewriteLiteral{
				HostRewriteLiteral: "h",
			}}),
			wantErr: `routes[0].route.weighted_clusters.clusters[0].host_rewrite_literal: not supported`,
		},
		{
			name:    "negative timeout",
			in:      modAction(func(a *routev3.RouteAction) { a.Timeout = &durationpb.Duration{Seconds: -1} }),
			wantErr: `routes[0].route.timeout: negative duration -1s 0ns`,
		},
		{
			name: "timeout too long",
			in: modAction(func(a *routev3.RouteAction) {
				a.Timeout = &durationpb.Duration{Seconds: math.MaxInt64/int64(time.Second) + 1}
			}),
			wantErr: `routes[0].route.timeout: duration of 9223372037s out of range`,
		},
		{
			name:    "timeout nanos out of range",
			in:      modAction(func(a *routev3.RouteAction) { a.Timeout = &durationpb.Duration{Nanos: 1e9} }),
			wantErr: `routes[0].route.timeout: nanos 1000000000 out of range`,
		},
		{
			name:    "path_rewrite",
			in:      modAction(func(a *routev3.RouteAction) { a.PathRewrite = "/v2" }),
			wantErr: `routes[0].route.path_rewrite: not supported`,
		},
		{
			name: "auto_host_rewrite",
			in: modAction(func(a *routev3.RouteAction) {
				a.HostRewriteSpecifier = &routev3.RouteAction_AutoHostRewrite{AutoHostRewrite: wrapperspb.Bool(true)}
			}),
			wantErr: `routes[0].route.auto_host_rewrite: not supported`,
		},
		{
			name:    "metadata_match",
			in:      modAction(func(a *routev3.RouteAction) { a.MetadataMatch = &corev3.Metadata{} }),
			wantErr: `routes[0].route.metadata_match: not supported`,
		},

		// DirectResponseAction.
		{
			name:    "direct response without status",
			in:      withDirect(&routev3.DirectResponseAction{}),
			wantErr: `routes[0].direct_response.status: 0 out of range 200..599`,
		},
		{
			name:    "direct response status 600",
			in:      withDirect(&routev3.DirectResponseAction{Status: 600}),
			wantErr: `routes[0].direct_response.status: 600 out of range 200..599`,
		},
		{
			name: "direct response body from a file",
			in: withDirect(&routev3.DirectResponseAction{Status: 200, Body: &corev3.DataSource{
				Specifier: &corev3.DataSource_Filename{Filename: "/etc/passwd"},
			}}),
			wantErr: `routes[0].direct_response.body.filename: not supported`,
		},
		{
			name: "direct response body from the environment",
			in: withDirect(&routev3.DirectResponseAction{Status: 200, Body: &corev3.DataSource{
				Specifier: &corev3.DataSource_EnvironmentVariable{EnvironmentVariable: "SECRET"},
			}}),
			wantErr: `routes[0].direct_response.body.environment_variable: not supported`,
		},
		{
			name: "direct response body_format",
			in: withDirect(&routev3.DirectResponseAction{Status: 200, BodyFormat: &corev3.SubstitutionFormatString{
				Format: &corev3.SubstitutionFormatString_TextFormat{TextFormat: "%RESPONSE_CODE%"},
			}}),
			wantErr: `routes[0].direct_response.body_format: not supported`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := xdsresource.DecodeRouteConfiguration(marshal(t, tt.in))
			checkResult(t, got, err, tt.want, tt.wantErr)
		})
	}
}

// TestDecodeRegexError checks that the cause of an error stays reachable.
func TestDecodeRegexError(t *testing.T) {
	in := modMatch(func(m *routev3.RouteMatch) {
		m.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: regexMatcher("(")}
	})
	_, err := xdsresource.DecodeRouteConfiguration(marshal(t, in))
	var se *syntax.Error
	if !errors.As(err, &se) || se.Code != syntax.ErrMissingParen {
		t.Fatalf("error %v does not wrap a *syntax.Error of code %q", err, syntax.ErrMissingParen)
	}
}

// withWeights is baseRoutes whose route splits between clusters.
func withWeights(clusters ...*routev3.WeightedCluster_ClusterWeight) *routev3.RouteConfiguration {
	return modAction(func(a *routev3.RouteAction) {
		a.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{Clusters: clusters}}
	})
}

// withDirect is baseRoutes whose route answers d.
func withDirect(d *routev3.DirectResponseAction) *routev3.RouteConfiguration {
	return modRoute(func(r *routev3.Route) { r.Action = &routev3.Route_DirectResponse{DirectResponse: d} })
}

// fullMatcherTree is a VirtualHost.matcher: a matcher tree with no matcher,
// only an on_no_match.
func fullMatcherTree() *xdsmatcherv3.Matcher {
	return &xdsmatcherv3.Matcher{OnNoMatch: &xdsmatcherv3.Matcher_OnMatch{
		OnMatch: &xdsmatcherv3.Matcher_OnMatch_Action{Action: &xdscorev3.TypedExtensionConfig{Name: "a"}},
	}}
}

func customMatcher() *xdscorev3.TypedExtensionConfig {
	return &xdscorev3.TypedExtensionConfig{Name: "custom"}
}
