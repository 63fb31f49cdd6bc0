package xdsresource_test

import (
	"regexp"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	ratelimitcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	commonfaultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	localratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/proxy/xdsresource"
)

func perMillion(n uint32) *typev3.FractionalPercent {
	return &typev3.FractionalPercent{Numerator: n, Denominator: typev3.FractionalPercent_MILLION}
}

func hundredPercent() *corev3.RuntimeFractionalPercent {
	return &corev3.RuntimeFractionalPercent{
		DefaultValue: &typev3.FractionalPercent{Numerator: 100},
		RuntimeKey:   "ignored",
	}
}

// idempotentRetry is a retry policy as the Weft control plane makes them.
func idempotentRetry() *routev3.RetryPolicy {
	return &routev3.RetryPolicy{
		RetryOn:              "connect-failure,refused-stream, unavailable,cancelled,retriable-status-codes",
		NumRetries:           wrapperspb.UInt32(2),
		PerTryTimeout:        durationpb.New(time.Second),
		RetriableStatusCodes: []uint32{503, 502},
		RetryBackOff:         &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(25 * time.Millisecond), MaxInterval: durationpb.New(250 * time.Millisecond)},
		RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{{
			Name:       "envoy.retry_host_predicates.previous_hosts",
			ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: mustAny(&previoushostsv3.PreviousHostsPredicate{})},
		}},
		HostSelectionRetryMaxAttempts: 3,
		PerTryIdleTimeout:             durationpb.New(time.Minute),
		RetriableRequestHeaders: []*routev3.HeaderMatcher{{
			Name: ":method",
			HeaderMatchSpecifier: stringMatch(&matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: regexMatcher("GET|HEAD|OPTIONS|PUT|DELETE|TRACE")},
			}),
		}},
	}
}

func idempotentRetryWant() *xdsresource.RetryPolicy {
	return &xdsresource.RetryPolicy{
		RetryOn:              []string{"connect-failure", "refused-stream", "unavailable", "cancelled", "retriable-status-codes"},
		NumRetries:           2,
		PerTryTimeout:        time.Second,
		RetriableStatusCodes: []uint32{503, 502},
		BackoffBase:          25 * time.Millisecond,
		BackoffMax:           250 * time.Millisecond,
		PreviousHosts:        true,
		RetriableMethods:     []string{"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"},
	}
}

func faultConfig() *faultv3.HTTPFault {
	return &faultv3.HTTPFault{
		Delay: &commonfaultv3.FaultDelay{
			FaultDelaySecifier: &commonfaultv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(2 * time.Second)},
			Percentage:         &typev3.FractionalPercent{Numerator: 5},
		},
		Abort: &faultv3.FaultAbort{
			ErrorType:  &faultv3.FaultAbort_HttpStatus{HttpStatus: 503},
			Percentage: &typev3.FractionalPercent{Numerator: 25, Denominator: typev3.FractionalPercent_TEN_THOUSAND},
		},
		DelayPercentRuntime: "ignored",
	}
}

func rateLimitConfig() *localratelimitv3.LocalRateLimit {
	return &localratelimitv3.LocalRateLimit{
		StatPrefix: "inbound|8080",
		TokenBucket: &typev3.TokenBucket{
			MaxTokens:     10,
			TokensPerFill: wrapperspb.UInt32(5),
			FillInterval:  durationpb.New(time.Second),
		},
		FilterEnabled:  hundredPercent(),
		FilterEnforced: hundredPercent(),
	}
}

func rateLimitWant() *xdsresource.LocalRateLimit {
	return &xdsresource.LocalRateLimit{
		StatPrefix: "inbound|8080",
		Bucket:     &xdsresource.TokenBucket{MaxTokens: 10, TokensPerFill: 5, FillInterval: time.Second},
		Enabled:    1e6,
		Enforced:   1e6,
	}
}

// trafficRoutes uses every traffic-management field of a route.
func trafficRoutes() *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{
		Name: "outbound",
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    "api.prod:80",
			Domains: []string{"api.prod"},
			Routes: []*routev3.Route{
				{
					Name:  "policies",
					Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/api"}, Grpc: &routev3.RouteMatch_GrpcRouteMatchOptions{}},
					Action: &routev3.Route_Route{Route: &routev3.RouteAction{
						ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "api"},
						RetryPolicy:      idempotentRetry(),
						RequestMirrorPolicies: []*routev3.RouteAction_RequestMirrorPolicy{
							{Cluster: "shadow", RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: perMillion(250000)}, TraceSampled: wrapperspb.Bool(false)},
							{Cluster: "shadow-all"},
						},
						HashPolicy: []*routev3.RouteAction_HashPolicy{
							{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: "X-User"}}},
							{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{Cookie: &routev3.RouteAction_HashPolicy_Cookie{
								Name: "session", Ttl: durationpb.New(time.Hour), Path: "/",
							}}, Terminal: true},
							{PolicySpecifier: &routev3.RouteAction_HashPolicy_ConnectionProperties_{ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true}}},
						},
						PrefixRewrite:        "/v2",
						HostRewriteSpecifier: &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: "api.internal"},
					}},
					RequestHeadersToAdd: []*corev3.HeaderValueOption{
						{Header: &corev3.HeaderValue{Key: "X-Set", Value: "1"}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD},
						{Header: &corev3.HeaderValue{Key: "x-add", RawValue: []byte("raw")}, AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD, KeepEmptyValue: true},
						{Header: &corev3.HeaderValue{Key: "x-absent", Value: "a"}, AppendAction: corev3.HeaderValueOption_ADD_IF_ABSENT},
						{Header: &corev3.HeaderValue{Key: "x-old-append", Value: "b"}, Append: wrapperspb.Bool(true)},
						{Header: &corev3.HeaderValue{Key: "x-old-set", Value: "c"}, Append: wrapperspb.Bool(false)},
						{Header: &corev3.HeaderValue{Key: "x-default"}},
					},
					RequestHeadersToRemove:     []string{"X-Drop"},
					ResponseHeadersToAdd:       []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-served-by", Value: "weft"}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}},
					ResponseHeadersToRemove:    []string{"server"},
					PerRequestBufferLimitBytes: wrapperspb.UInt32(65536),
					TypedPerFilterConfig: map[string]*anypb.Any{
						"envoy.filters.http.fault":            mustAny(faultConfig()),
						"envoy.filters.http.local_ratelimit":  mustAny(&routev3.FilterConfig{Config: mustAny(rateLimitConfig())}),
						"envoy.filters.http.cors":             mustAny(&routev3.FilterConfig{Config: mustAny(&corsv3.CorsPolicy{}), IsOptional: true}),
						"envoy.filters.http.something.absent": mustAny(&routev3.FilterConfig{IsOptional: true, Config: mustAny(&corsv3.CorsPolicy{})}),
					},
				},
				{
					Name:  "regex rewrite",
					Match: prefixMatch("/old"),
					Action: &routev3.Route_Route{Route: &routev3.RouteAction{
						ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "api"},
						RegexRewrite: &matcherv3.RegexMatchAndSubstitute{
							Pattern:      regexMatcher(`^/old/([a-z]+)/(\d+)`),
							Substitution: `/new/\2/\1$x\\`,
						},
						RetryPolicy: &routev3.RetryPolicy{RetryOn: "5xx", RetriableRequestHeaders: []*routev3.HeaderMatcher{{
							Name:                 ":method",
							HeaderMatchSpecifier: stringMatch(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "GET"}}),
						}}},
					}},
				},
				{
					Name:  "redirect",
					Match: prefixMatch("/moved"),
					Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{
						SchemeRewriteSpecifier: &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: "HTTPS"},
						HostRedirect:           "new.example",
						PortRedirect:           8443,
						PathRewriteSpecifier:   &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: ""},
						ResponseCode:           routev3.RedirectAction_PERMANENT_REDIRECT,
						StripQuery:             true,
					}},
				},
				{
					Name:  "https redirect",
					Match: prefixMatch("/"),
					Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{
						SchemeRewriteSpecifier: &routev3.RedirectAction_HttpsRedirect{HttpsRedirect: true},
						PathRewriteSpecifier:   &routev3.RedirectAction_PathRedirect{PathRedirect: "/login"},
					}},
				},
			},
		}},
	}
}

func trafficRoutesWant() *xdsresource.RouteConfiguration {
	return &xdsresource.RouteConfiguration{
		Name: "outbound",
		VirtualHosts: []xdsresource.VirtualHost{{
			Name:    "api.prod:80",
			Domains: []string{"api.prod"},
			Routes: []xdsresource.Route{
				{
					Name:   "policies",
					Match:  xdsresource.RouteMatch{PathKind: xdsresource.PathPrefix, Path: "/api", CaseSensitive: true},
					Action: xdsresource.RouteAction{Clusters: []xdsresource.WeightedCluster{{Name: "api", Weight: 1}}},
					RouteExtras: xdsresource.RouteExtras{
						GRPCOnly: true,
						Retry:    idempotentRetryWant(),
						Mirrors: []xdsresource.MirrorPolicy{
							{Cluster: "shadow", PerMillion: 250000},
							{Cluster: "shadow-all", PerMillion: 1e6},
						},
						HashPolicies: []xdsresource.HashPolicy{
							{Header: "x-user"},
							{Cookie: "session", CookieTTL: time.Hour, CookiePath: "/", Terminal: true},
							{SourceIP: true},
						},
						PrefixRewrite:    "/v2",
						HasPrefixRewrite: true,
						HostRewrite:      "api.internal",
						RequestHeaders: xdsresource.HeaderMutation{
							Add: []xdsresource.HeaderValueOption{
								{Name: "x-set", Value: "1"},
								{Name: "x-add", Value: "raw", Append: true},
								{Name: "x-absent", Value: "a", IfAbsent: true},
								{Name: "x-old-append", Value: "b", Append: true},
								{Name: "x-old-set", Value: "c"},
								{Name: "x-default", Append: true},
							},
							Remove: []string{"x-drop"},
						},
						ResponseHeaders: xdsresource.HeaderMutation{
							Add:    []xdsresource.HeaderValueOption{{Name: "x-served-by", Value: "weft"}},
							Remove: []string{"server"},
						},
						BufferLimit: 65536,
						Fault: &xdsresource.Fault{
							Delay: 2 * time.Second, DelayPerMillion: 50000,
							AbortStatus: 503, AbortPerMillion: 2500,
						},
						RateLimit: rateLimitWant(),
					},
				},
				{
					Name:   "regex rewrite",
					Match:  xdsresource.RouteMatch{PathKind: xdsresource.PathPrefix, Path: "/old", CaseSensitive: true},
					Action: xdsresource.RouteAction{Clusters: []xdsresource.WeightedCluster{{Name: "api", Weight: 1}}},
					RouteExtras: xdsresource.RouteExtras{
						Retry: &xdsresource.RetryPolicy{
							RetryOn: []string{"5xx"}, NumRetries: 1,
							BackoffBase: 25 * time.Millisecond, BackoffMax: 250 * time.Millisecond,
							RetriableMethods: []string{"GET"},
						},
						RegexRewrite: &xdsresource.RegexRewrite{
							Pattern:      regexp.MustCompile(`^/old/([a-z]+)/(\d+)`),
							Substitution: `/new/${2}/${1}$$x\`,
						},
					},
				},
				{
					Name:  "redirect",
					Match: xdsresource.RouteMatch{PathKind: xdsresource.PathPrefix, Path: "/moved", CaseSensitive: true},
					RouteExtras: xdsresource.RouteExtras{Redirect: &xdsresource.Redirect{
						Scheme: "https", Host: "new.example", Port: 8443, HasPrefix: true, StatusCode: 308, StripQuery: true,
					}},
				},
				{
					Name:  "https redirect",
					Match: xdsresource.RouteMatch{PathKind: xdsresource.PathPrefix, Path: "/", CaseSensitive: true},
					RouteExtras: xdsresource.RouteExtras{Redirect: &xdsresource.Redirect{
						Scheme: "https", Path: "/login", StatusCode: 301,
					}},
				},
			},
		}},
	}
}

// withRetry is baseRoutes whose route retries with p.
func withRetry(p *routev3.RetryPolicy) *routev3.RouteConfiguration {
	return modAction(func(a *routev3.RouteAction) { a.RetryPolicy = p })
}

// modRetry is baseRoutes whose route retries with idempotentRetry changed
// by mod.
func modRetry(mod func(*routev3.RetryPolicy)) *routev3.RouteConfiguration {
	p := idempotentRetry()
	mod(p)
	return withRetry(p)
}

// withFilterConfig is baseRoutes whose route has typed_per_filter_config
// key: config.
func withFilterConfig(key string, config proto.Message) *routev3.RouteConfiguration {
	return modRoute(func(r *routev3.Route) { r.TypedPerFilterConfig = map[string]*anypb.Any{key: mustAny(config)} })
}

func withFault(f *faultv3.HTTPFault) *routev3.RouteConfiguration {
	return withFilterConfig("envoy.filters.http.fault", f)
}

func withRateLimit(mod func(*localratelimitv3.LocalRateLimit)) *routev3.RouteConfiguration {
	l := rateLimitConfig()
	mod(l)
	return withFilterConfig("envoy.filters.http.local_ratelimit", l)
}

func withRedirect(r *routev3.RedirectAction) *routev3.RouteConfiguration {
	return modRoute(func(rt *routev3.Route) { rt.Action = &routev3.Route_Redirect{Redirect: r} })
}

func withRequestHeader(h *corev3.HeaderValueOption) *routev3.RouteConfiguration {
	return modRoute(func(r *routev3.Route) { r.RequestHeadersToAdd = []*corev3.HeaderValueOption{h} })
}

func withRegexRewrite(pattern, substitution string) *routev3.RouteConfiguration {
	return modAction(func(a *routev3.RouteAction) {
		a.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{Pattern: regexMatcher(pattern), Substitution: substitution}
	})
}

func withHash(h *routev3.RouteAction_HashPolicy) *routev3.RouteConfiguration {
	return modAction(func(a *routev3.RouteAction) { a.HashPolicy = []*routev3.RouteAction_HashPolicy{h} })
}

func methodMatcher(spec *routev3.HeaderMatcher_StringMatch) []*routev3.HeaderMatcher {
	return []*routev3.HeaderMatcher{{Name: ":method", HeaderMatchSpecifier: spec}}
}

func TestDecodeRouteTraffic(t *testing.T) {
	// firstRoute decodes in and returns its first route.
	firstRoute := func(t *testing.T, in proto.Message) xdsresource.Route {
		t.Helper()
		rc, err := xdsresource.DecodeRouteConfiguration(marshal(t, in))
		if err != nil {
			t.Fatal(err)
		}
		return rc.VirtualHosts[0].Routes[0]
	}
	t.Run("every field", func(t *testing.T) {
		got, err := xdsresource.DecodeRouteConfiguration(marshal(t, trafficRoutes()))
		checkResult(t, got, err, trafficRoutesWant(), "")
	})
	t.Run("retry defaults", func(t *testing.T) {
		r := firstRoute(t, withRetry(&routev3.RetryPolicy{RetryOn: "5xx,reset"}))
		want := &xdsresource.RetryPolicy{
			RetryOn: []string{"5xx", "reset"}, NumRetries: 1,
			BackoffBase: 25 * time.Millisecond, BackoffMax: 250 * time.Millisecond,
		}
		checkResult(t, r.Retry, nil, want, "")
	})
	t.Run("retry back-off max defaults to 10 × base", func(t *testing.T) {
		r := firstRoute(t, withRetry(&routev3.RetryPolicy{
			NumRetries:   wrapperspb.UInt32(0),
			RetryBackOff: &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(100 * time.Millisecond)},
		}))
		if r.Retry.NumRetries != 0 || r.Retry.BackoffBase != 100*time.Millisecond || r.Retry.BackoffMax != time.Second || r.Retry.RetryOn != nil {
			t.Errorf("got %s", dump(t, r.Retry))
		}
	})
	t.Run("previous_hosts by name", func(t *testing.T) {
		r := firstRoute(t, withRetry(&routev3.RetryPolicy{RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{{
			Name: "envoy.retry_host_predicates.previous_hosts",
		}}}))
		if !r.Retry.PreviousHosts {
			t.Errorf("got %s", dump(t, r.Retry))
		}
	})
	t.Run("no route extras", func(t *testing.T) {
		r := firstRoute(t, baseRoutes())
		checkResult(t, r.RouteExtras, nil, xdsresource.RouteExtras{}, "")
	})
	t.Run("empty fault is no fault", func(t *testing.T) {
		if r := firstRoute(t, withFault(&faultv3.HTTPFault{})); r.Fault != nil {
			t.Errorf("got %s", dump(t, r.Fault))
		}
	})
	t.Run("grpc abort, delay without percentage", func(t *testing.T) {
		r := firstRoute(t, withFault(&faultv3.HTTPFault{
			Delay: &commonfaultv3.FaultDelay{FaultDelaySecifier: &commonfaultv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(time.Millisecond)}},
			Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_GrpcStatus{GrpcStatus: 14}, Percentage: &typev3.FractionalPercent{Numerator: 200}},
		}))
		want := &xdsresource.Fault{Delay: time.Millisecond, AbortGRPCStatus: 14, HasGRPCAbort: true, AbortPerMillion: 1e6}
		checkResult(t, r.Fault, nil, want, "")
	})
	t.Run("rate limit without bucket, tokens_per_fill default", func(t *testing.T) {
		r := firstRoute(t, withRateLimit(func(l *localratelimitv3.LocalRateLimit) {
			l.TokenBucket.TokensPerFill = nil
			l.FilterEnabled, l.FilterEnforced = nil, nil
		}))
		want := &xdsresource.LocalRateLimit{StatPrefix: "inbound|8080", Bucket: &xdsresource.TokenBucket{MaxTokens: 10, TokensPerFill: 1, FillInterval: time.Second}}
		checkResult(t, r.RateLimit, nil, want, "")
	})
	t.Run("request_body_buffer_limit", func(t *testing.T) {
		r := firstRoute(t, modRoute(func(r *routev3.Route) { r.RequestBodyBufferLimit = wrapperspb.UInt64(1 << 20) }))
		if r.BufferLimit != 1<<20 {
			t.Errorf("BufferLimit = %d", r.BufferLimit)
		}
	})

	errTests := []struct {
		name    string
		in      proto.Message
		wantErr string
	}{
		// Redirect.
		{
			name:    "redirect regex_rewrite",
			in:      withRedirect(&routev3.RedirectAction{PathRewriteSpecifier: &routev3.RedirectAction_RegexRewrite{RegexRewrite: &matcherv3.RegexMatchAndSubstitute{}}}),
			wantErr: `xdsresource: route "outbound": virtual_hosts[0].routes[0].redirect.regex_rewrite: not supported`,
		},
		{
			name:    "redirect response code",
			in:      withRedirect(&routev3.RedirectAction{ResponseCode: 9}),
			wantErr: `routes[0].redirect.response_code: value 9: not supported`,
		},
		{
			name:    "redirect port",
			in:      withRedirect(&routev3.RedirectAction{PortRedirect: 70000}),
			wantErr: `routes[0].redirect.port_redirect: 70000 out of range 0..65535`,
		},

		// Headers.
		{
			name:    "header without key",
			in:      withRequestHeader(&corev3.HeaderValueOption{Header: &corev3.HeaderValue{Value: "v"}}),
			wantErr: `routes[0].request_headers_to_add[0].header.key: must not be empty`,
		},
		{
			name:    "header option without header",
			in:      withRequestHeader(&corev3.HeaderValueOption{}),
			wantErr: `routes[0].request_headers_to_add[0].header: must be set`,
		},
		{
			name:    "pseudo-header",
			in:      withRequestHeader(&corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: ":path", Value: "/"}}),
			wantErr: `routes[0].request_headers_to_add[0].header.key: ":path": pseudo-headers and host cannot be modified`,
		},
		{
			name: "value and raw_value",
			in: withRequestHeader(&corev3.HeaderValueOption{Header: &corev3.HeaderValue{
				Key: "x", Value: "a", RawValue: []byte("b"),
			}}),
			wantErr: `routes[0].request_headers_to_add[0].header: value and raw_value cannot both be set`,
		},
		{
			name:    "header value with newline",
			in:      withRequestHeader(&corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: "x", Value: "a\nb"}}),
			wantErr: `routes[0].request_headers_to_add[0].header.value: "a\nb": invalid header value`,
		},
		{
			name: "append and append_action",
			in: withRequestHeader(&corev3.HeaderValueOption{
				Header: &corev3.HeaderValue{Key: "x"}, Append: wrapperspb.Bool(true), AppendAction: corev3.HeaderValueOption_ADD_IF_ABSENT,
			}),
			wantErr: `routes[0].request_headers_to_add[0]: append and append_action cannot both be set`,
		},
		{
			name: "OVERWRITE_IF_EXISTS",
			in: withRequestHeader(&corev3.HeaderValueOption{
				Header: &corev3.HeaderValue{Key: "x"}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS,
			}),
			wantErr: `routes[0].request_headers_to_add[0].append_action: OVERWRITE_IF_EXISTS: not supported`,
		},
		{
			name:    "remove host",
			in:      modRoute(func(r *routev3.Route) { r.ResponseHeadersToRemove = []string{"a", "Host"} }),
			wantErr: `routes[0].response_headers_to_remove[1]: "Host": pseudo-headers and host cannot be modified`,
		},
		{
			name: "both buffer limits",
			in: modRoute(func(r *routev3.Route) {
				r.RequestBodyBufferLimit = wrapperspb.UInt64(1)
				r.PerRequestBufferLimitBytes = wrapperspb.UInt32(1)
			}),
			wantErr: `routes[0]: per_request_buffer_limit_bytes and request_body_buffer_limit cannot both be set`,
		},

		// typed_per_filter_config.
		{
			name:    "unknown filter config",
			in:      withFilterConfig("envoy.filters.http.cors", &corsv3.CorsPolicy{}),
			wantErr: `routes[0].typed_per_filter_config["envoy.filters.http.cors"]: filter "envoy.filters.http.cors": not supported`,
		},
		{
			name:    "wrong type for the fault filter",
			in:      withFilterConfig("envoy.filters.http.fault", &corsv3.CorsPolicy{}),
			wantErr: `typed_per_filter_config["envoy.filters.http.fault"]: type "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy", want "envoy.extensions.filters.http.fault.v3.HTTPFault"`,
		},
		{
			name:    "disabled filter config",
			in:      withFilterConfig("envoy.filters.http.fault", &routev3.FilterConfig{Disabled: true, Config: mustAny(faultConfig())}),
			wantErr: `typed_per_filter_config["envoy.filters.http.fault"].disabled: not supported`,
		},
		{
			name:    "filter config without config",
			in:      withFilterConfig("envoy.filters.http.fault", &routev3.FilterConfig{}),
			wantErr: `typed_per_filter_config["envoy.filters.http.fault"].config: must be set`,
		},
		{
			name: "header_delay",
			in: withFault(&faultv3.HTTPFault{Delay: &commonfaultv3.FaultDelay{
				FaultDelaySecifier: &commonfaultv3.FaultDelay_HeaderDelay_{HeaderDelay: &commonfaultv3.FaultDelay_HeaderDelay{}},
			}}),
			wantErr: `typed_per_filter_config["envoy.filters.http.fault"].delay.header_delay: not supported`,
		},
		{
			name:    "delay without fixed_delay",
			in:      withFault(&faultv3.HTTPFault{Delay: &commonfaultv3.FaultDelay{}}),
			wantErr: `typed_per_filter_config["envoy.filters.http.fault"].delay.fixed_delay: must be set`,
		},
		{
			name: "header_abort",
			in: withFault(&faultv3.HTTPFault{Abort: &faultv3.FaultAbort{
				ErrorType: &faultv3.FaultAbort_HeaderAbort_{HeaderAbort: &faultv3.FaultAbort_HeaderAbort{}},
			}}),
			wantErr: `typed_per_filter_config["envoy.filters.http.fault"].abort.header_abort: not supported`,
		},
		{
			name:    "abort status out of range",
			in:      withFault(&faultv3.HTTPFault{Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 100}}}),
			wantErr: `typed_per_filter_config["envoy.filters.http.fault"].abort.http_status: 100 out of range 200..599`,
		},
		{
			name:    "abort without status",
			in:      withFault(&faultv3.HTTPFault{Abort: &faultv3.FaultAbort{}}),
			wantErr: `typed_per_filter_config["envoy.filters.http.fault"].abort: one of http_status and grpc_status must be set`,
		},
		{
			name: "max_active_faults",
			in: withFault(func() *faultv3.HTTPFault {
				f := faultConfig()
				f.MaxActiveFaults = wrapperspb.UInt32(1)
				return f
			}()),
			wantErr: `typed_per_filter_config["envoy.filters.http.fault"].max_active_faults: not supported`,
		},
		{
			name:    "fault headers",
			in:      withFault(&faultv3.HTTPFault{Headers: []*routev3.HeaderMatcher{{Name: "x"}}}),
			wantErr: `typed_per_filter_config["envoy.filters.http.fault"].headers: not supported`,
		},
		{
			name:    "fault upstream_cluster",
			in:      withFault(&faultv3.HTTPFault{UpstreamCluster: "c"}),
			wantErr: `typed_per_filter_config["envoy.filters.http.fault"].upstream_cluster: not supported`,
		},
		{
			name: "rate limit descriptors",
			in: withRateLimit(func(l *localratelimitv3.LocalRateLimit) {
				l.Descriptors = []*ratelimitcommonv3.LocalRateLimitDescriptor{{}}
			}),
			wantErr: `typed_per_filter_config["envoy.filters.http.local_ratelimit"].descriptors: not supported`,
		},
		{
			name:    "rate limit without stat_prefix",
			in:      withRateLimit(func(l *localratelimitv3.LocalRateLimit) { l.StatPrefix = "" }),
			wantErr: `typed_per_filter_config["envoy.filters.http.local_ratelimit"].stat_prefix: must not be empty`,
		},
		{
			name: "rate limit status",
			in: withRateLimit(func(l *localratelimitv3.LocalRateLimit) {
				l.Status = &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable}
			}),
			wantErr: `typed_per_filter_config["envoy.filters.http.local_ratelimit"].status.code: 503: not supported (the proxy answers 429)`,
		},
		{
			name:    "rate limit per connection",
			in:      withRateLimit(func(l *localratelimitv3.LocalRateLimit) { l.LocalRateLimitPerDownstreamConnection = true }),
			wantErr: `typed_per_filter_config["envoy.filters.http.local_ratelimit"].local_rate_limit_per_downstream_connection: not supported`,
		},
		{
			name:    "token bucket without max_tokens",
			in:      withRateLimit(func(l *localratelimitv3.LocalRateLimit) { l.TokenBucket.MaxTokens = 0 }),
			wantErr: `typed_per_filter_config["envoy.filters.http.local_ratelimit"].token_bucket.max_tokens: must be positive`,
		},
		{
			name: "token bucket fill interval too short",
			in: withRateLimit(func(l *localratelimitv3.LocalRateLimit) {
				l.TokenBucket.FillInterval = durationpb.New(time.Millisecond)
			}),
			wantErr: `token_bucket.fill_interval: 1ms is shorter than 50ms`,
		},
		{
			name:    "token bucket without fill interval",
			in:      withRateLimit(func(l *localratelimitv3.LocalRateLimit) { l.TokenBucket.FillInterval = nil }),
			wantErr: `token_bucket.fill_interval: must be set`,
		},
		{
			name:    "token bucket zero tokens_per_fill",
			in:      withRateLimit(func(l *localratelimitv3.LocalRateLimit) { l.TokenBucket.TokensPerFill = wrapperspb.UInt32(0) }),
			wantErr: `token_bucket.tokens_per_fill: must be positive`,
		},
		{
			name: "filter_enabled without default_value",
			in: withRateLimit(func(l *localratelimitv3.LocalRateLimit) {
				l.FilterEnabled = &corev3.RuntimeFractionalPercent{RuntimeKey: "k"}
			}),
			wantErr: `local_ratelimit"].filter_enabled.default_value: must be set`,
		},
		{
			name: "unknown denominator",
			in: withRateLimit(func(l *localratelimitv3.LocalRateLimit) {
				l.FilterEnforced = &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Denominator: 7}}
			}),
			wantErr: `local_ratelimit"].filter_enforced.default_value.denominator: value 7: not supported`,
		},

		// RouteMatch.
		{
			name:    "route_specifiers",
			in:      modRoute(func(r *routev3.Route) { r.RouteSpecifiers = []*corev3.TypedExtensionConfig{{Name: "s"}} }),
			wantErr: `routes[0].route_specifiers: not supported`,
		},

		// RetryPolicy.
		{
			name:    "unknown retry condition",
			in:      modRetry(func(p *routev3.RetryPolicy) { p.RetryOn = "5xx,envoy-ratelimited" }),
			wantErr: `routes[0].route.retry_policy.retry_on: condition "envoy-ratelimited": not supported`,
		},
		{
			name: "other retry host predicate",
			in: modRetry(func(p *routev3.RetryPolicy) {
				p.RetryHostPredicate = append(p.RetryHostPredicate, &routev3.RetryPolicy_RetryHostPredicate{Name: "envoy.retry_host_predicates.omit_canary_hosts"})
			}),
			wantErr: `retry_policy.retry_host_predicate[1]: predicate "envoy.retry_host_predicates.omit_canary_hosts": not supported`,
		},
		{
			name: "retry host predicate of another type",
			in: modRetry(func(p *routev3.RetryPolicy) {
				p.RetryHostPredicate[0].ConfigType = &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: mustAny(&corsv3.Cors{})}
			}),
			wantErr: `retry_policy.retry_host_predicate[0].typed_config: predicate "envoy.retry_host_predicates.previous_hosts" of type "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors": not supported`,
		},
		{
			name:    "retry_priority",
			in:      modRetry(func(p *routev3.RetryPolicy) { p.RetryPriority = &routev3.RetryPolicy_RetryPriority{Name: "p"} }),
			wantErr: `retry_policy.retry_priority: not supported`,
		},
		{
			name:    "retriable_headers",
			in:      modRetry(func(p *routev3.RetryPolicy) { p.RetriableHeaders = []*routev3.HeaderMatcher{{Name: "x"}} }),
			wantErr: `retry_policy.retriable_headers: not supported`,
		},
		{
			name: "retriable methods regex with syntax",
			in: modRetry(func(p *routev3.RetryPolicy) {
				p.RetriableRequestHeaders = methodMatcher(stringMatch(&matcherv3.StringMatcher{
					MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: regexMatcher("GET|P.*")},
				}))
			}),
			wantErr: `retry_policy.retriable_request_headers[0]: method "P.*": not supported`,
		},
		{
			name: "retriable methods by prefix",
			in: modRetry(func(p *routev3.RetryPolicy) {
				p.RetriableRequestHeaders = methodMatcher(stringMatch(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "G"}}))
			}),
			wantErr: `retry_policy.retriable_request_headers[0]: not supported: only a ":method" matcher`,
		},
		{
			name: "retriable request header other than :method",
			in: modRetry(func(p *routev3.RetryPolicy) {
				p.RetriableRequestHeaders[0].Name = "x-retry"
			}),
			wantErr: `retry_policy.retriable_request_headers[0]: not supported: only a ":method" matcher`,
		},
		{
			name: "two retriable request headers",
			in: modRetry(func(p *routev3.RetryPolicy) {
				p.RetriableRequestHeaders = append(p.RetriableRequestHeaders, p.RetriableRequestHeaders[0])
			}),
			wantErr: `retry_policy.retriable_request_headers: 2 matchers: not supported (only one on :method)`,
		},
		{
			name:    "back-off without base",
			in:      modRetry(func(p *routev3.RetryPolicy) { p.RetryBackOff.BaseInterval = nil }),
			wantErr: `retry_policy.retry_back_off.base_interval: must be set`,
		},
		{
			name:    "back-off max below base",
			in:      modRetry(func(p *routev3.RetryPolicy) { p.RetryBackOff.MaxInterval = durationpb.New(time.Millisecond) }),
			wantErr: `retry_policy.retry_back_off.max_interval: 1ms is less than base_interval 25ms`,
		},
		{
			name:    "back-off zero base",
			in:      modRetry(func(p *routev3.RetryPolicy) { p.RetryBackOff.BaseInterval = durationpb.New(0) }),
			wantErr: `retry_policy.retry_back_off.base_interval: must be positive`,
		},
		{
			name: "retry_policy_typed_config",
			in: modAction(func(a *routev3.RouteAction) {
				a.RetryPolicyTypedConfig = mustAny(&corsv3.Cors{})
			}),
			wantErr: `routes[0].route.retry_policy_typed_config: not supported`,
		},

		// Mirrors.
		{
			name: "mirror without cluster",
			in: modAction(func(a *routev3.RouteAction) {
				a.RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{{Cluster: "a"}, {}}
			}),
			wantErr: `routes[0].route.request_mirror_policies[1].cluster: must not be empty`,
		},
		{
			name: "mirror cluster_header",
			in: modAction(func(a *routev3.RouteAction) {
				a.RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{{ClusterHeader: "x"}}
			}),
			wantErr: `routes[0].route.request_mirror_policies[0].cluster_header: not supported`,
		},
		{
			name: "mirror without shadow suffix",
			in: modAction(func(a *routev3.RouteAction) {
				a.RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{{Cluster: "a", DisableShadowHostSuffixAppend: true}}
			}),
			wantErr: `request_mirror_policies[0].disable_shadow_host_suffix_append: not supported`,
		},

		// Hash policies.
		{
			name:    "hash policy without specifier",
			in:      withHash(&routev3.RouteAction_HashPolicy{Terminal: true}),
			wantErr: `routes[0].route.hash_policy[0]: one of header, cookie and connection_properties must be set`,
		},
		{
			name: "hash on query parameter",
			in: withHash(&routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_QueryParameter_{
				QueryParameter: &routev3.RouteAction_HashPolicy_QueryParameter{Name: "q"},
			}}),
			wantErr: `routes[0].route.hash_policy[0].query_parameter: not supported`,
		},
		{
			name: "hash on filter state",
			in: withHash(&routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_FilterState_{
				FilterState: &routev3.RouteAction_HashPolicy_FilterState{Key: "k"},
			}}),
			wantErr: `routes[0].route.hash_policy[0].filter_state: not supported`,
		},
		{
			name: "hash header regex_rewrite",
			in: withHash(&routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{
				Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: "x", RegexRewrite: &matcherv3.RegexMatchAndSubstitute{}},
			}}),
			wantErr: `routes[0].route.hash_policy[0].header.regex_rewrite: not supported`,
		},
		{
			name: "hash header without name",
			in: withHash(&routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{
				Header: &routev3.RouteAction_HashPolicy_Header{},
			}}),
			wantErr: `routes[0].route.hash_policy[0].header.header_name: must not be empty`,
		},
		{
			name: "hash cookie without name",
			in: withHash(&routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{
				Cookie: &routev3.RouteAction_HashPolicy_Cookie{Ttl: durationpb.New(time.Second)},
			}}),
			wantErr: `routes[0].route.hash_policy[0].cookie.name: must not be empty`,
		},
		{
			name: "hash on no connection property",
			in: withHash(&routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_ConnectionProperties_{
				ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{},
			}}),
			wantErr: `routes[0].route.hash_policy[0].connection_properties.source_ip: false (hash on nothing): not supported`,
		},

		// Rewrites.
		{
			name: "prefix and regex rewrite",
			in: modAction(func(a *routev3.RouteAction) {
				a.PrefixRewrite = "/x"
				a.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{Pattern: regexMatcher("a")}
			}),
			wantErr: `routes[0].route: prefix_rewrite and regex_rewrite cannot both be set`,
		},
		{
			name:    "regex rewrite with invalid pattern",
			in:      withRegexRewrite("(a", ""),
			wantErr: `routes[0].route.regex_rewrite.pattern: invalid regex: error parsing regexp: missing closing )`,
		},
		{
			name:    "regex rewrite without pattern",
			in:      modAction(func(a *routev3.RouteAction) { a.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{} }),
			wantErr: `routes[0].route.regex_rewrite.pattern: must be set`,
		},
		{
			name:    "regex rewrite with a missing group",
			in:      withRegexRewrite("(a)", `\2`),
			wantErr: `routes[0].route.regex_rewrite.substitution: "\\2" refers to group \2; the pattern has 1`,
		},
		{
			name:    "regex rewrite with an invalid escape",
			in:      withRegexRewrite("a", `\n`),
			wantErr: `routes[0].route.regex_rewrite.substitution: "\\n": invalid escape \n`,
		},
		{
			name:    "regex rewrite with a lone backslash",
			in:      withRegexRewrite("a", `x\`),
			wantErr: `routes[0].route.regex_rewrite.substitution: "x\\" ends with a lone backslash`,
		},
		{
			name: "host_rewrite_header",
			in: modAction(func(a *routev3.RouteAction) {
				a.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteHeader{HostRewriteHeader: "x"}
			}),
			wantErr: `routes[0].route.host_rewrite_header: not supported`,
		},
		{
			name: "host_rewrite_path_regex",
			in: modAction(func(a *routev3.RouteAction) {
				a.HostRewriteSpecifier = &routev3.RouteAction_HostRewritePathRegex{HostRewritePathRegex: &matcherv3.RegexMatchAndSubstitute{}}
			}),
			wantErr: `routes[0].route.host_rewrite_path_regex: not supported`,
		},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := xdsresource.DecodeRouteConfiguration(marshal(t, tt.in))
			checkResult(t, got, err, nil, tt.wantErr)
		})
	}
}

// TestRegexRewriteExpands checks that a decoded substitution does with Go's
// regexp what Envoy's does with RE2's GlobalReplace.
func TestRegexRewriteExpands(t *testing.T) {
	for _, tt := range []struct{ pattern, substitution, path, want string }{
		{`^/old/([a-z]+)/(\d+)`, `/new/\2/\1`, "/old/abc/42/rest", "/new/42/abc/rest"},
		{`^/api/*`, `/`, "/api//x", "/x"},
		{`^/.*$`, `/full$1\\`, "/anything", `/full$1\`},
		{`o`, `0`, "/foo/bor", "/f00/b0r"},
		{`(a)(b)?`, `[\2\0]`, "/ab/a", "/[bab]/[a]"},
	} {
		rc, err := xdsresource.DecodeRouteConfiguration(marshal(t, withRegexRewrite(tt.pattern, tt.substitution)))
		if err != nil {
			t.Fatal(err)
		}
		rw := rc.VirtualHosts[0].Routes[0].RegexRewrite
		if got := rw.Pattern.ReplaceAllString(tt.path, rw.Substitution); got != tt.want {
			t.Errorf("%q → %q on %q = %q, want %q", tt.pattern, tt.substitution, tt.path, got, tt.want)
		}
	}
}

// trafficCluster is an EDS cluster with every traffic-management field.
func trafficCluster() *clusterv3.Cluster {
	c := edsCluster()
	c.LbConfig = &clusterv3.Cluster_LeastRequestLbConfig_{LeastRequestLbConfig: &clusterv3.Cluster_LeastRequestLbConfig{
		ChoiceCount: wrapperspb.UInt32(2),
	}}
	c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{
		{Priority: corev3.RoutingPriority_HIGH, MaxConnections: wrapperspb.UInt32(1)},
		{
			MaxConnections:     wrapperspb.UInt32(100),
			MaxPendingRequests: wrapperspb.UInt32(200),
			MaxRequests:        wrapperspb.UInt32(300),
			TrackRemaining:     true,
			RetryBudget: &clusterv3.CircuitBreakers_Thresholds_RetryBudget{
				BudgetPercent:       &typev3.Percent{Value: 12.5},
				MinRetryConcurrency: wrapperspb.UInt32(10),
			},
		},
		{MaxConnections: wrapperspb.UInt32(7)}, // a second DEFAULT: ignored, as in Envoy
	}}
	c.OutlierDetection = &clusterv3.OutlierDetection{
		Consecutive_5Xx:                    wrapperspb.UInt32(7),
		EnforcingConsecutive_5Xx:           wrapperspb.UInt32(50),
		ConsecutiveGatewayFailure:          wrapperspb.UInt32(3),
		EnforcingConsecutiveGatewayFailure: wrapperspb.UInt32(100),
		Interval:                           durationpb.New(5 * time.Second),
		BaseEjectionTime:                   durationpb.New(time.Minute),
		MaxEjectionTime:                    durationpb.New(10 * time.Minute),
		MaxEjectionPercent:                 wrapperspb.UInt32(50),
		EnforcingSuccessRate:               wrapperspb.UInt32(0),
		SuccessRateMinimumHosts:            wrapperspb.UInt32(3),
		AlwaysEjectOneHost:                 wrapperspb.Bool(true),
	}
	o := explicitHTTP2()
	o.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{
		IdleTimeout:              durationpb.New(30 * time.Second),
		MaxRequestsPerConnection: wrapperspb.UInt32(1000),
	}
	c.TypedExtensionProtocolOptions = httpOptions(o)
	return c
}

func trafficClusterWant() *xdsresource.Cluster {
	return &xdsresource.Cluster{
		Name:           "outbound|8080||api.prod",
		Discovery:      xdsresource.DiscoveryEDS,
		EDSServiceName: "api.prod:8080",
		ConnectTimeout: 2 * time.Second,
		LBPolicy:       xdsresource.LBLeastRequest,
		HTTP2:          true,
		ClusterExtras: xdsresource.ClusterExtras{
			CircuitBreakers: xdsresource.CircuitBreakers{
				MaxConnections: 100, MaxPendingRequests: 200, MaxRequests: 300, MaxRetries: 3,
				RetryBudget: &xdsresource.RetryBudget{Percent: 12.5, MinPerSecond: 10},
			},
			Outlier: &xdsresource.OutlierDetection{
				Consecutive5xx: 7, Enforcing5xx: 50,
				ConsecutiveGatewayFailure: 3, EnforcingGatewayFailure: 100,
				Interval: 5 * time.Second, BaseEjectionTime: time.Minute, MaxEjectionTime: 10 * time.Minute,
				MaxEjectionPercent: 50,
			},
			IdleTimeout: 30 * time.Second,
		},
	}
}

func modTrafficCluster(mod func(*clusterv3.Cluster)) *clusterv3.Cluster {
	c := trafficCluster()
	mod(c)
	return c
}

func modOutlier(mod func(*clusterv3.OutlierDetection)) *clusterv3.Cluster {
	return modTrafficCluster(func(c *clusterv3.Cluster) { mod(c.OutlierDetection) })
}

func modThreshold(mod func(*clusterv3.CircuitBreakers_Thresholds)) *clusterv3.Cluster {
	return modTrafficCluster(func(c *clusterv3.Cluster) { mod(c.CircuitBreakers.Thresholds[1]) })
}

func TestDecodeClusterTraffic(t *testing.T) {
	withWant := func(mod func(*xdsresource.Cluster)) *xdsresource.Cluster {
		c := trafficClusterWant()
		mod(c)
		return c
	}
	tests := []struct {
		name    string
		in      proto.Message
		want    *xdsresource.Cluster
		wantErr string
	}{
		{name: "every field", in: trafficCluster(), want: trafficClusterWant()},
		{
			name: "defaults",
			in: modTrafficCluster(func(c *clusterv3.Cluster) {
				c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
					RetryBudget: &clusterv3.CircuitBreakers_Thresholds_RetryBudget{},
				}}}
				c.OutlierDetection = &clusterv3.OutlierDetection{}
				c.LbConfig = nil
				c.TypedExtensionProtocolOptions = http2Options()
			}),
			want: withWant(func(c *xdsresource.Cluster) {
				c.CircuitBreakers = xdsresource.CircuitBreakers{
					MaxConnections: 1024, MaxPendingRequests: 1024, MaxRequests: 1024, MaxRetries: 3,
					RetryBudget: &xdsresource.RetryBudget{Percent: 20, MinPerSecond: 3},
				}
				c.Outlier = &xdsresource.OutlierDetection{
					Consecutive5xx: 5, Enforcing5xx: 100, ConsecutiveGatewayFailure: 5, EnforcingGatewayFailure: 0,
					Interval: 10 * time.Second, BaseEjectionTime: 30 * time.Second, MaxEjectionTime: 300 * time.Second,
					MaxEjectionPercent: 10,
				}
				c.IdleTimeout = 0
			}),
		},
		{
			name: "only HIGH thresholds",
			in: modTrafficCluster(func(c *clusterv3.Cluster) {
				c.CircuitBreakers.Thresholds = c.CircuitBreakers.Thresholds[:1]
			}),
			want: withWant(func(c *xdsresource.Cluster) { c.CircuitBreakers = defaultLimits }),
		},
		{
			name: "ring hash sizes",
			in: modTrafficCluster(func(c *clusterv3.Cluster) {
				c.LbPolicy = clusterv3.Cluster_RING_HASH
				c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{
					MinimumRingSize: wrapperspb.UInt64(64),
					MaximumRingSize: wrapperspb.UInt64(4096),
					HashFunction:    clusterv3.Cluster_RingHashLbConfig_MURMUR_HASH_2,
				}}
			}),
			want: withWant(func(c *xdsresource.Cluster) {
				c.LBPolicy = xdsresource.LBRingHash
				c.RingMin, c.RingMax = 64, 4096
			}),
		},
		{
			name: "a config for another policy is ignored",
			in: modTrafficCluster(func(c *clusterv3.Cluster) {
				c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{
					MinimumRingSize: wrapperspb.UInt64(64),
				}}
			}),
			want: trafficClusterWant(),
		},
		{
			name: "deprecated common_http_protocol_options",
			in: modTrafficCluster(func(c *clusterv3.Cluster) {
				c.TypedExtensionProtocolOptions = nil
				c.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{IdleTimeout: durationpb.New(4 * time.Second)}
			}),
			want: withWant(func(c *xdsresource.Cluster) { c.IdleTimeout, c.HTTP2 = 4*time.Second, false }),
		},

		{
			name: "choice_count 3",
			in: modTrafficCluster(func(c *clusterv3.Cluster) {
				c.GetLeastRequestLbConfig().ChoiceCount = wrapperspb.UInt32(3)
			}),
			wantErr: `cluster "outbound|8080||api.prod": least_request_lb_config.choice_count: 3: not supported (only 2)`,
		},
		{
			name: "active_request_bias",
			in: modTrafficCluster(func(c *clusterv3.Cluster) {
				c.GetLeastRequestLbConfig().ActiveRequestBias = &corev3.RuntimeDouble{DefaultValue: 2}
			}),
			wantErr: `least_request_lb_config.active_request_bias: not supported`,
		},
		{
			name: "ring too big",
			in: modTrafficCluster(func(c *clusterv3.Cluster) {
				c.LbPolicy = clusterv3.Cluster_RING_HASH
				c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{
					MaximumRingSize: wrapperspb.UInt64(1 << 24),
				}}
			}),
			wantErr: `ring_hash_lb_config.maximum_ring_size: 16777216 exceeds 8388608`,
		},
		{
			name: "ring min above max",
			in: modTrafficCluster(func(c *clusterv3.Cluster) {
				c.LbPolicy = clusterv3.Cluster_RING_HASH
				c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{
					MinimumRingSize: wrapperspb.UInt64(10), MaximumRingSize: wrapperspb.UInt64(5),
				}}
			}),
			wantErr: `ring_hash_lb_config.minimum_ring_size: 10 exceeds maximum_ring_size 5`,
		},
		{
			name: "per_host_thresholds",
			in: modTrafficCluster(func(c *clusterv3.Cluster) {
				c.CircuitBreakers.PerHostThresholds = []*clusterv3.CircuitBreakers_Thresholds{{}}
			}),
			wantErr: `circuit_breakers.per_host_thresholds: not supported`,
		},
		{
			name:    "max_connection_pools",
			in:      modThreshold(func(t *clusterv3.CircuitBreakers_Thresholds) { t.MaxConnectionPools = wrapperspb.UInt32(1) }),
			wantErr: `circuit_breakers.thresholds[1].max_connection_pools: not supported`,
		},
		{
			name: "budget over 100%",
			in: modThreshold(func(t *clusterv3.CircuitBreakers_Thresholds) {
				t.RetryBudget.BudgetPercent = &typev3.Percent{Value: 120}
			}),
			wantErr: `circuit_breakers.thresholds[1].retry_budget.budget_percent.value: 120 out of range 0..100`,
		},
		{
			name: "budget_interval",
			in: modThreshold(func(t *clusterv3.CircuitBreakers_Thresholds) {
				t.RetryBudget.BudgetInterval = durationpb.New(time.Second)
			}),
			wantErr: `circuit_breakers.thresholds[1].retry_budget.budget_interval: 1s: not supported`,
		},
		{
			name:    "success-rate ejection",
			in:      modOutlier(func(o *clusterv3.OutlierDetection) { o.EnforcingSuccessRate = wrapperspb.UInt32(100) }),
			wantErr: `outlier_detection.enforcing_success_rate: 100: not supported (the proxy ejects on consecutive errors only)`,
		},
		{
			name:    "failure-percentage ejection",
			in:      modOutlier(func(o *clusterv3.OutlierDetection) { o.EnforcingFailurePercentage = wrapperspb.UInt32(1) }),
			wantErr: `outlier_detection.enforcing_failure_percentage: 1: not supported`,
		},
		{
			name:    "split local origin errors",
			in:      modOutlier(func(o *clusterv3.OutlierDetection) { o.SplitExternalLocalOriginErrors = true }),
			wantErr: `outlier_detection.split_external_local_origin_errors: not supported`,
		},
		{
			name:    "detect degraded hosts",
			in:      modOutlier(func(o *clusterv3.OutlierDetection) { o.DetectDegradedHosts = wrapperspb.Bool(true) }),
			wantErr: `outlier_detection.detect_degraded_hosts: not supported`,
		},
		{
			name:    "enforcing over 100",
			in:      modOutlier(func(o *clusterv3.OutlierDetection) { o.EnforcingConsecutive_5Xx = wrapperspb.UInt32(101) }),
			wantErr: `outlier_detection.enforcing_consecutive_5xx: 101 exceeds 100`,
		},
		{
			name:    "zero interval",
			in:      modOutlier(func(o *clusterv3.OutlierDetection) { o.Interval = durationpb.New(0) }),
			wantErr: `outlier_detection.interval: must be positive`,
		},
		{
			name:    "max ejection below base",
			in:      modOutlier(func(o *clusterv3.OutlierDetection) { o.MaxEjectionTime = durationpb.New(time.Second) }),
			wantErr: `outlier_detection.max_ejection_time: 1s is less than base_ejection_time 1m0s`,
		},
		{
			name: "both common http options",
			in: modTrafficCluster(func(c *clusterv3.Cluster) {
				c.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{}
			}),
			wantErr: `common_http_protocol_options: cannot be used with typed_extension_protocol_options`,
		},
		{
			name: "negative idle timeout",
			in: modTrafficCluster(func(c *clusterv3.Cluster) {
				o := explicitHTTP2()
				o.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{IdleTimeout: &durationpb.Duration{Seconds: -1}}
				c.TypedExtensionProtocolOptions = httpOptions(o)
			}),
			wantErr: `typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].common_http_protocol_options.idle_timeout: negative duration`,
		},
		{
			name: "upstream http retry_policy",
			in: modTrafficCluster(func(c *clusterv3.Cluster) {
				o := explicitHTTP2()
				o.RetryPolicy = &routev3.RetryPolicy{}
				c.TypedExtensionProtocolOptions = httpOptions(o)
			}),
			wantErr: `typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].retry_policy: not supported`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := xdsresource.DecodeCluster(marshal(t, tt.in))
			checkResult(t, got, err, tt.want, tt.wantErr)
		})
	}
}

func faultFilter(f *faultv3.HTTPFault) *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: "envoy.filters.http.fault", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(f)}}
}

func rateLimitFilter(l *localratelimitv3.LocalRateLimit) *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: "envoy.filters.http.local_ratelimit", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(l)}}
}

// weightedTCPListener is an outbound TCP listener as the Weft control plane
// makes them for a TCPRoute.
func weightedTCPListener() *listenerv3.Listener {
	l := tcpListener(func(p *tcpv3.TcpProxy) {
		p.ClusterSpecifier = &tcpv3.TcpProxy_WeightedClusters{WeightedClusters: &tcpv3.TcpProxy_WeightedCluster{
			Clusters: []*tcpv3.TcpProxy_WeightedCluster_ClusterWeight{{Name: "db-v1", Weight: 90}, {Name: "db-v2", Weight: 10}},
		}}
	})
	l.BindToPort = wrapperspb.Bool(false)
	return l
}

// filtersListener is the outbound listener with the HTTP filters of the
// Weft control plane, the rate limit's with a bucket.
func filtersListener() *listenerv3.Listener {
	return hcmListener(func(h *hcmv3.HttpConnectionManager) {
		h.HttpFilters = []*hcmv3.HttpFilter{
			faultFilter(&faultv3.HTTPFault{}),
			{Name: "envoy.filters.http.cors", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&corsv3.Cors{})}, IsOptional: true},
			rateLimitFilter(rateLimitConfig()),
			routerHTTPFilter(),
		}
	})
}

func TestDecodeListenerTraffic(t *testing.T) {
	hcmWant := func(filters []string, rl *xdsresource.LocalRateLimit) *xdsresource.Listener {
		return &xdsresource.Listener{
			Name:    "outbound",
			Address: "0.0.0.0:15001",
			FilterChains: []xdsresource.FilterChain{{HTTP: &xdsresource.HTTPConnectionManager{
				StatPrefix: "outbound", RouteConfigName: "outbound", HTTPFilters: filters, RateLimit: rl,
			}}},
		}
	}
	withFilters := func(filters ...*hcmv3.HttpFilter) *listenerv3.Listener {
		return hcmListener(func(h *hcmv3.HttpConnectionManager) { h.HttpFilters = filters })
	}
	tests := []struct {
		name    string
		in      proto.Message
		want    *xdsresource.Listener
		wantErr string
	}{
		{
			name: "weighted tcp proxy, not bound",
			in:   weightedTCPListener(),
			want: &xdsresource.Listener{
				Name:    "inbound-5432",
				Address: "0.0.0.0:15001",
				NoBind:  true,
				FilterChains: []xdsresource.FilterChain{{TCP: &xdsresource.TCPProxy{
					StatPrefix: "db",
					Clusters:   []xdsresource.WeightedCluster{{Name: "db-v1", Weight: 90}, {Name: "db-v2", Weight: 10}},
				}}},
			},
		},
		{
			name: "bind_to_port true",
			in:   modListener(func(l *listenerv3.Listener) { l.BindToPort = wrapperspb.Bool(true) }),
			want: hcmWant([]string{xdsresource.FilterRouter}, nil),
		},
		{
			name: "fault, optional, rate limit with a bucket, router",
			in:   filtersListener(),
			want: hcmWant([]string{xdsresource.FilterFault, xdsresource.FilterLocalRateLimit, xdsresource.FilterRouter}, rateLimitWant()),
		},
		{
			name: "rate limit without a bucket",
			in:   withFilters(rateLimitFilter(&localratelimitv3.LocalRateLimit{StatPrefix: "outbound"}), routerHTTPFilter()),
			want: hcmWant([]string{xdsresource.FilterLocalRateLimit, xdsresource.FilterRouter}, nil),
		},

		{
			name:    "router not last",
			in:      withFilters(routerHTTPFilter(), faultFilter(&faultv3.HTTPFault{})),
			wantErr: `typed_config.http_filters[1]: filter "envoy.filters.http.fault" of type "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault" follows the router filter, which must be last`,
		},
		{
			name:    "listener-wide fault",
			in:      withFilters(faultFilter(faultConfig()), routerHTTPFilter()),
			wantErr: `typed_config.http_filters[0].typed_config: a listener-wide fault: not supported (set faults in the routes' typed_per_filter_config)`,
		},
		{
			name:    "duplicate fault filter",
			in:      withFilters(faultFilter(&faultv3.HTTPFault{}), faultFilter(&faultv3.HTTPFault{}), routerHTTPFilter()),
			wantErr: `typed_config.http_filters[1]: duplicate envoy.filters.http.fault filter`,
		},
		{
			name: "disabled rate limit filter",
			in: withFilters(func() *hcmv3.HttpFilter {
				f := rateLimitFilter(rateLimitConfig())
				f.Disabled = true
				return f
			}(), routerHTTPFilter()),
			wantErr: `typed_config.http_filters[0].disabled: not supported`,
		},
		{
			name: "invalid listener rate limit",
			in: withFilters(rateLimitFilter(&localratelimitv3.LocalRateLimit{
				StatPrefix: "x", TokenBucket: &typev3.TokenBucket{FillInterval: durationpb.New(time.Second)},
			}), routerHTTPFilter()),
			wantErr: `typed_config.http_filters[0].typed_config.token_bucket.max_tokens: must be positive`,
		},
		{
			name: "tcp weight zero",
			in: tcpListener(func(p *tcpv3.TcpProxy) {
				p.ClusterSpecifier = &tcpv3.TcpProxy_WeightedClusters{WeightedClusters: &tcpv3.TcpProxy_WeightedCluster{
					Clusters: []*tcpv3.TcpProxy_WeightedCluster_ClusterWeight{{Name: "a", Weight: 1}, {Name: "b"}},
				}}
			}),
			wantErr: `typed_config.weighted_clusters.clusters[1].weight: must be at least 1`,
		},
		{
			name: "tcp weighted cluster without name",
			in: tcpListener(func(p *tcpv3.TcpProxy) {
				p.ClusterSpecifier = &tcpv3.TcpProxy_WeightedClusters{WeightedClusters: &tcpv3.TcpProxy_WeightedCluster{
					Clusters: []*tcpv3.TcpProxy_WeightedCluster_ClusterWeight{{Weight: 1}},
				}}
			}),
			wantErr: `typed_config.weighted_clusters.clusters[0].name: must not be empty`,
		},
		{
			name: "tcp weighted cluster metadata_match",
			in: tcpListener(func(p *tcpv3.TcpProxy) {
				p.ClusterSpecifier = &tcpv3.TcpProxy_WeightedClusters{WeightedClusters: &tcpv3.TcpProxy_WeightedCluster{
					Clusters: []*tcpv3.TcpProxy_WeightedCluster_ClusterWeight{{Name: "a", Weight: 1, MetadataMatch: &corev3.Metadata{}}},
				}}
			}),
			wantErr: `typed_config.weighted_clusters.clusters[0].metadata_match: not supported`,
		},
		{
			name: "tcp weights overflow",
			in: tcpListener(func(p *tcpv3.TcpProxy) {
				p.ClusterSpecifier = &tcpv3.TcpProxy_WeightedClusters{WeightedClusters: &tcpv3.TcpProxy_WeightedCluster{
					Clusters: []*tcpv3.TcpProxy_WeightedCluster_ClusterWeight{{Name: "a", Weight: 1 << 31}, {Name: "b", Weight: 1 << 31}},
				}}
			}),
			wantErr: `typed_config.weighted_clusters.clusters: sum of weights 4294967296 overflows uint32`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := xdsresource.DecodeListener(marshal(t, tt.in))
			checkResult(t, got, err, tt.want, tt.wantErr)
		})
	}
}
