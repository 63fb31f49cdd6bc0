package xdsconfig

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	commonfaultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/controlplane/model"
)

// Route defaults (see docs/xds.md).
const (
	// DefaultBufferLimit is per_request_buffer_limit_bytes unless
	// retries.maxBodyBytes sets it.
	DefaultBufferLimit = 65536
	// DefaultRedirectStatus is a RequestRedirect's status (Gateway API).
	DefaultRedirectStatus = 302
	// HostSelectionRetryMaxAttempts bounds how often a retry looks for an
	// endpoint it has not tried.
	HostSelectionRetryMaxAttempts = 3
	// idempotentMethods may be retried unless retryNonIdempotent.
	idempotentMethods = "GET|HEAD|OPTIONS|PUT|DELETE|TRACE"
	// previousHostsPredicate makes a retry avoid the endpoints tried.
	previousHostsPredicate = "envoy.retry_host_predicates.previous_hosts"
	// filterLocalRateLimit is the local rate limit HTTP filter's name.
	filterLocalRateLimit = "envoy.filters.http.local_ratelimit"
)

// defaultRetry applies when neither the rule nor a TrafficPolicy
// configures retries.
var defaultRetry = model.Retry{
	Attempts:    2,
	On:          []string{"connect-failure", "refused-stream", "unavailable", "cancelled", "retriable-status-codes"},
	Codes:       []uint32{503},
	BackoffBase: 25 * time.Millisecond,
	BackoffMax:  250 * time.Millisecond,
}

// attached reports whether a route's parent ref selects the Service port.
func attached(ref model.ParentRef, svc *model.Service, port model.ServicePort) bool {
	if ref.Service != svc.Name || ref.Namespace != svc.Namespace {
		return false
	}
	if ref.Port != 0 && ref.Port != port.Port {
		return false
	}
	if ref.SectionName != "" && ref.SectionName != port.Name {
		return false
	}
	return true
}

func attachedAny(parents []model.ParentRef, svc *model.Service, port model.ServicePort) bool {
	for _, ref := range parents {
		if attached(ref, svc, port) {
			return true
		}
	}
	return false
}

// candidate is one match of one rule, with what precedence needs.
type candidate struct {
	route     *model.HTTPRoute
	ruleIndex int
	match     model.RouteMatch
	rule      *model.RouteRule
	// matchIndex is the match's index in its rule.
	matchIndex int
}

// ruleCandidates returns one candidate per match of each rule of r (a
// rule without matches matches every path).
func ruleCandidates(r *model.HTTPRoute, cands []candidate, only func(rule *model.RouteRule) bool) []candidate {
	for i := range r.Rules {
		rule := &r.Rules[i]
		if only != nil && !only(rule) {
			continue
		}
		matches := rule.Matches
		if len(matches) == 0 {
			matches = []model.RouteMatch{{PathType: model.PathPrefix, Path: "/"}}
		}
		for j, m := range matches {
			cands = append(cands, candidate{route: r, ruleIndex: i, match: m, rule: rule, matchIndex: j})
		}
	}
	return cands
}

func (g *Generation) virtualHost(svc *model.Service, port model.ServicePort, bare bool) *routev3.VirtualHost {
	vh := &routev3.VirtualHost{
		Name:    fmt.Sprintf("%s:%d", svc.Host(), port.Port),
		Domains: domains(svc, port.Port, bare),
	}
	var cands []candidate
	for _, r := range g.state.Routes {
		if attachedAny(r.Parents, svc, port) {
			cands = ruleCandidates(r, cands, nil)
		}
	}
	if len(cands) == 0 {
		// No route attached: all traffic goes to the Service itself.
		vh.Routes = []*routev3.Route{g.defaultRoute(svc, port)}
		return vh
	}
	sort.SliceStable(cands, func(i, j int) bool { return precedes(cands[i], cands[j]) })
	for _, c := range cands {
		vh.Routes = append(vh.Routes, g.envoyRoute(c, svc, port))
	}
	return vh
}

func pathRank(t model.PathMatchType) int {
	switch t {
	case model.PathExact:
		return 0
	case model.PathRegex:
		return 1
	default:
		return 2
	}
}

// precedes orders matches by the Gateway API's precedence rules.
func precedes(a, b candidate) bool {
	if ra, rb := pathRank(a.match.PathType), pathRank(b.match.PathType); ra != rb {
		return ra < rb
	}
	if a.match.PathType != model.PathExact && len(a.match.Path) != len(b.match.Path) {
		return len(a.match.Path) > len(b.match.Path)
	}
	if (a.match.Method != "") != (b.match.Method != "") {
		return a.match.Method != ""
	}
	if len(a.match.Headers) != len(b.match.Headers) {
		return len(a.match.Headers) > len(b.match.Headers)
	}
	if len(a.match.QueryParams) != len(b.match.QueryParams) {
		return len(a.match.QueryParams) > len(b.match.QueryParams)
	}
	if a.route != b.route {
		if !a.route.Created.Equal(b.route.Created) {
			return a.route.Created.Before(b.route.Created)
		}
		ka, kb := a.route.Namespace+"/"+a.route.Name, b.route.Namespace+"/"+b.route.Name
		if ka != kb {
			return ka < kb
		}
		return routeKind(a.route) < routeKind(b.route)
	}
	if a.ruleIndex != b.ruleIndex {
		return a.ruleIndex < b.ruleIndex
	}
	return a.matchIndex < b.matchIndex
}

func stringMatcher(m model.StringMatch) *matcherv3.StringMatcher {
	if m.Regex {
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{
			SafeRegex: &matcherv3.RegexMatcher{Regex: m.Value},
		}}
	}
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: m.Value}}
}

// trimPrefix is a PathPrefix match's path without trailing slashes ("/"
// stays "/").
func trimPrefix(p string) string {
	for len(p) > 1 && p[len(p)-1] == '/' {
		p = p[:len(p)-1]
	}
	return p
}

// routeMatch translates one match; grpc restricts it to gRPC requests.
func routeMatch(m model.RouteMatch, grpc bool) *routev3.RouteMatch {
	rm := &routev3.RouteMatch{}
	switch m.PathType {
	case model.PathExact:
		rm.PathSpecifier = &routev3.RouteMatch_Path{Path: m.Path}
	case model.PathRegex:
		rm.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: m.Path}}
	default:
		if p := trimPrefix(m.Path); p == "/" || p == "" {
			rm.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: "/"}
		} else {
			// Gateway API prefixes match whole path segments: /abc
			// matches /abc and /abc/def, not /abcd.
			rm.PathSpecifier = &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: p}
		}
	}
	if m.Method != "" {
		rm.Headers = append(rm.Headers, &routev3.HeaderMatcher{
			Name:                 ":method",
			HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: stringMatcher(model.StringMatch{Value: m.Method})},
		})
	}
	for _, h := range m.Headers {
		rm.Headers = append(rm.Headers, &routev3.HeaderMatcher{
			Name:                 h.Name,
			HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: stringMatcher(h)},
		})
	}
	for _, q := range m.QueryParams {
		rm.QueryParameters = append(rm.QueryParameters, &routev3.QueryParameterMatcher{
			Name:                         q.Name,
			QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: stringMatcher(q)},
		})
	}
	if grpc || m.GRPC != nil {
		rm.Grpc = &routev3.RouteMatch_GrpcRouteMatchOptions{}
	}
	return rm
}

func ruleLabel(r *model.HTTPRoute, ruleIndex int) string {
	return fmt.Sprintf("%s %s/%s: rules[%d]", strings.ToLower(routeKind(r)), r.Namespace, r.Name, ruleIndex)
}

// defaultRoute sends everything to the Service port itself, with the
// Service's policies.
func (g *Generation) defaultRoute(svc *model.Service, port model.ServicePort) *routev3.Route {
	cluster := xdsmeta.OutboundCluster(svc.Name, svc.Namespace, port.Port)
	rs := resolveRoute(nil, g.policies.forService(svc, port))
	route := &routev3.Route{
		Name:  "default",
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
	}
	setFault(route, rs.Fault)
	action := &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}
	g.applyRouteSettings(route, action, rs, 0, []string{cluster})
	route.Action = &routev3.Route_Route{Route: action}
	return route
}

func (g *Generation) envoyRoute(c candidate, svc *model.Service, port model.ServicePort) *routev3.Route {
	route := &routev3.Route{
		Name:  fmt.Sprintf("%s/%s/rule/%d", c.route.Namespace, c.route.Name, c.ruleIndex),
		Match: routeMatch(c.match, routeKind(c.route) == kindGRPCRoute),
	}
	f := c.rule.Filters
	route.RequestHeadersToAdd, route.RequestHeadersToRemove = headerMutation(f.RequestHeaders)
	route.ResponseHeadersToAdd, route.ResponseHeadersToRemove = headerMutation(f.ResponseHeaders)
	chain := append(g.policies.forRoute(c.route, c.rule), g.policies.forService(svc, port)...)
	rs := resolveRoute(c.rule, chain)
	setFault(route, rs.Fault)
	if f.Redirect != nil {
		route.Action = &routev3.Route_Redirect{Redirect: redirectAction(f.Redirect)}
		return route
	}
	var weighted []*routev3.WeightedCluster_ClusterWeight
	var clusters []string
	for _, b := range c.rule.Backends {
		if b.Weight == 0 {
			continue
		}
		name := xdsmeta.OutboundCluster(b.Service, b.Namespace, b.Port)
		if s := g.state.Service(b.Namespace, b.Service); s == nil || s.Port(b.Port) == nil {
			g.problems = append(g.problems, fmt.Sprintf("%s: backend %s.%s:%d does not exist; its share of requests gets %d",
				ruleLabel(c.route, c.ruleIndex), b.Service, b.Namespace, b.Port, InvalidBackendStatus))
		}
		weighted = append(weighted, &routev3.WeightedCluster_ClusterWeight{Name: name, Weight: wrapperspb.UInt32(b.Weight)})
		clusters = append(clusters, name)
	}
	action := &routev3.RouteAction{}
	switch len(weighted) {
	case 0:
		// No backend, or every weight is zero: the Gateway API answers 500.
		route.Action = &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: InvalidBackendStatus}}
		return route
	case 1:
		action.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: weighted[0].Name}
	default:
		action.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{Clusters: weighted}}
	}
	g.applyRouteSettings(route, action, rs, c.rule.BackendTimeout, clusters)
	for _, m := range f.Mirrors {
		b := m.Backend
		if s := g.state.Service(b.Namespace, b.Service); s == nil || s.Port(b.Port) == nil {
			g.problems = append(g.problems, fmt.Sprintf("%s: mirror backend %s.%s:%d does not exist; requests are not mirrored",
				ruleLabel(c.route, c.ruleIndex), b.Service, b.Namespace, b.Port))
			continue
		}
		action.RequestMirrorPolicies = append(action.RequestMirrorPolicies, &routev3.RouteAction_RequestMirrorPolicy{
			Cluster: xdsmeta.OutboundCluster(b.Service, b.Namespace, b.Port),
			RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{
				Numerator:   m.PerMillion,
				Denominator: typev3.FractionalPercent_MILLION,
			}},
		})
	}
	if rw := f.Rewrite; rw != nil {
		if rw.Hostname != "" {
			action.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: rw.Hostname}
		}
		if p := rw.Path; p != nil {
			switch {
			case p.FullPath != nil:
				action.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{
					Pattern:      &matcherv3.RegexMatcher{Regex: "^/.*$"},
					Substitution: *p.FullPath,
				}
			case p.PrefixMatch != nil:
				prefix := trimPrefix(c.match.Path)
				if *p.PrefixMatch == "/" && c.match.PathType == model.PathPrefix && prefix != "/" && prefix != "" {
					// As Istio: prefix_rewrite "/" would leave a double
					// slash (/api/x → //x).
					action.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{
						Pattern:      &matcherv3.RegexMatcher{Regex: "^" + regexp.QuoteMeta(prefix) + "/*"},
						Substitution: "/",
					}
				} else {
					action.PrefixRewrite = *p.PrefixMatch
				}
			}
		}
	}
	route.Action = &routev3.Route_Route{Route: action}
	return route
}

// applyRouteSettings sets what policies decide on a route that forwards
// to clusters: timeout, retries, body buffer, hash policy.
func (g *Generation) applyRouteSettings(route *routev3.Route, action *routev3.RouteAction, rs routeSettings, backendTimeout time.Duration, clusters []string) {
	action.Timeout = durationpb.New(0)
	if rs.Timeout != nil {
		action.Timeout = durationpb.New(*rs.Timeout)
	}
	retry := rs.Retry
	if retry == nil {
		retry = &defaultRetry
	}
	perTry := backendTimeout
	if perTry == 0 {
		perTry = retry.PerTryTimeout
	}
	action.RetryPolicy = retryPolicy(retry, perTry)
	route.PerRequestBufferLimitBytes = wrapperspb.UInt32(orDefault(retry.MaxBodyBytes, DefaultBufferLimit))
	for _, name := range clusters {
		for _, hp := range g.hashPolicies[name] {
			dup := false
			for _, have := range action.HashPolicy {
				dup = dup || proto.Equal(have, hp)
			}
			if !dup {
				action.HashPolicy = append(action.HashPolicy, hp)
			}
		}
	}
}

// setFault injects the route's faults (envoy.filters.http.fault per
// route), if any.
func setFault(route *routev3.Route, f *model.Fault) {
	if f != nil {
		route.TypedPerFilterConfig = map[string]*anypb.Any{wellknown.Fault: mustAny(httpFault(f))}
	}
}

func retryPolicy(r *model.Retry, perTry time.Duration) *routev3.RetryPolicy {
	on, codes := r.On, r.Codes
	if len(on) == 0 {
		on, codes = defaultRetry.On, defaultRetry.Codes
		if len(r.Codes) > 0 {
			codes = r.Codes
		}
	}
	if len(codes) > 0 && !contains(on, "retriable-status-codes") {
		on = append(append([]string(nil), on...), "retriable-status-codes")
	}
	base := orDefault(r.BackoffBase, defaultRetry.BackoffBase)
	p := &routev3.RetryPolicy{
		RetryOn:              strings.Join(on, ","),
		NumRetries:           wrapperspb.UInt32(r.Attempts),
		RetriableStatusCodes: codes,
		RetryBackOff: &routev3.RetryPolicy_RetryBackOff{
			BaseInterval: durationpb.New(base),
			MaxInterval:  durationpb.New(orDefault(r.BackoffMax, 10*base)),
		},
		RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{{
			Name: previousHostsPredicate,
			ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{
				TypedConfig: mustAny(&previoushostsv3.PreviousHostsPredicate{}),
			},
		}},
		HostSelectionRetryMaxAttempts: HostSelectionRetryMaxAttempts,
	}
	if perTry > 0 {
		p.PerTryTimeout = durationpb.New(perTry)
	}
	if !r.NonIdempotent {
		p.RetriableRequestHeaders = []*routev3.HeaderMatcher{{
			Name: ":method",
			HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: idempotentMethods}},
			}},
		}}
	}
	return p
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// hashPolicy is what a RING_HASH cluster hashes on, or nil.
func hashPolicy(h *model.HashOn) *routev3.RouteAction_HashPolicy {
	switch {
	case h == nil:
		return nil
	case h.Header != "":
		return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{
			Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: strings.ToLower(h.Header)},
		}}
	case h.Cookie != "":
		c := &routev3.RouteAction_HashPolicy_Cookie{Name: h.Cookie}
		if h.CookieTTL > 0 {
			c.Ttl = durationpb.New(h.CookieTTL)
		}
		return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{Cookie: c}}
	case h.SourceIP:
		return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_ConnectionProperties_{
			ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true},
		}}
	}
	return nil
}

func headerMutation(m *model.HeaderModifier) ([]*corev3.HeaderValueOption, []string) {
	if m == nil {
		return nil, nil
	}
	var add []*corev3.HeaderValueOption
	for _, h := range m.Set {
		add = append(add, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: h.Name, Value: h.Value},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	for _, h := range m.Add {
		add = append(add, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: h.Name, Value: h.Value},
			AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD,
		})
	}
	return add, append([]string(nil), m.Remove...)
}

var redirectCodes = map[int]routev3.RedirectAction_RedirectResponseCode{
	301: routev3.RedirectAction_MOVED_PERMANENTLY,
	302: routev3.RedirectAction_FOUND,
	303: routev3.RedirectAction_SEE_OTHER,
	307: routev3.RedirectAction_TEMPORARY_REDIRECT,
	308: routev3.RedirectAction_PERMANENT_REDIRECT,
}

// redirectAction follows the Gateway API: empty fields keep the request's,
// the status defaults to 302.
func redirectAction(r *model.Redirect) *routev3.RedirectAction {
	code, ok := redirectCodes[r.StatusCode]
	if !ok {
		code = redirectCodes[DefaultRedirectStatus]
	}
	a := &routev3.RedirectAction{
		HostRedirect: r.Hostname,
		PortRedirect: r.Port,
		ResponseCode: code,
	}
	if r.Scheme != "" {
		a.SchemeRewriteSpecifier = &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: r.Scheme}
	}
	if p := r.Path; p != nil {
		switch {
		case p.FullPath != nil:
			a.PathRewriteSpecifier = &routev3.RedirectAction_PathRedirect{PathRedirect: *p.FullPath}
		case p.PrefixMatch != nil:
			a.PathRewriteSpecifier = &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: *p.PrefixMatch}
		}
	}
	return a
}

// grpcCodes maps gRPC status code names to numbers.
var grpcCodes = map[string]uint32{
	"OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4,
	"NOT_FOUND": 5, "ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8,
	"FAILED_PRECONDITION": 9, "ABORTED": 10, "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12,
	"INTERNAL": 13, "UNAVAILABLE": 14, "DATA_LOSS": 15, "UNAUTHENTICATED": 16,
}

func perMillion(n uint32) *typev3.FractionalPercent {
	return &typev3.FractionalPercent{Numerator: n, Denominator: typev3.FractionalPercent_MILLION}
}

func httpFault(f *model.Fault) *faultv3.HTTPFault {
	hf := &faultv3.HTTPFault{}
	if f.Delay > 0 {
		hf.Delay = &commonfaultv3.FaultDelay{
			FaultDelaySecifier: &commonfaultv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(f.Delay)},
			Percentage:         perMillion(f.DelayPerMillion),
		}
	}
	if code, ok := grpcCodes[strings.ToUpper(f.AbortGRPC)]; ok && f.AbortGRPC != "" {
		hf.Abort = &faultv3.FaultAbort{
			ErrorType:  &faultv3.FaultAbort_GrpcStatus{GrpcStatus: code},
			Percentage: perMillion(f.AbortPerMillion),
		}
	} else if f.AbortStatus > 0 {
		hf.Abort = &faultv3.FaultAbort{
			ErrorType:  &faultv3.FaultAbort_HttpStatus{HttpStatus: uint32(f.AbortStatus)},
			Percentage: perMillion(f.AbortPerMillion),
		}
	}
	return hf
}
