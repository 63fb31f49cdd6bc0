package xdsconfig

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	localratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/controlplane/model"
)

// NoBackendCluster is the cluster of a TCP listener whose TCPRoute has no
// backend with a weight: no cluster has this name, so every connection is
// refused.
const NoBackendCluster = "weft-no-backend"

func httpFilter(name string, config proto.Message) *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(config)}}
}

func routerFilter() *hcmv3.HttpFilter { return httpFilter(wellknown.Router, &routerv3.Router{}) }

// hcmFilter is an HTTP connection manager; tracing is nil when the mesh
// does not trace (see tracing.go).
// hcmCommon is what every HCM of a proxy shares: tracing, and how
// requests are normalised (the standard HCM fields; the Weft proxy
// normalises always and reads the slash action and trusted hops).
type hcmCommon struct {
	tracing     *hcmv3.HttpConnectionManager_Tracing
	slashAction hcmv3.HttpConnectionManager_PathWithEscapedSlashesAction
	trustedHops uint32
}

func newHCMCommon(m model.Mesh) hcmCommon {
	c := hcmCommon{slashAction: hcmv3.HttpConnectionManager_REJECT_REQUEST}
	if a := m.Authorization; a != nil {
		if a.SlashEncoding == v1alpha1.SlashDecode {
			c.slashAction = hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD
		}
		c.trustedHops = a.TrustedHops
	}
	return c
}

func hcmFilter(statPrefix string, routes *routev3.RouteConfiguration, rdsName string, filters []*hcmv3.HttpFilter, common hcmCommon) *listenerv3.Filter {
	hcm := &hcmv3.HttpConnectionManager{
		CodecType:                    hcmv3.HttpConnectionManager_AUTO,
		StatPrefix:                   statPrefix,
		HttpFilters:                  filters,
		Tracing:                      common.tracing,
		NormalizePath:                wrapperspb.Bool(true),
		MergeSlashes:                 true,
		PathWithEscapedSlashesAction: common.slashAction,
		XffNumTrustedHops:            common.trustedHops,
	}
	if routes != nil {
		hcm.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: routes}
	} else {
		hcm.RouteSpecifier = &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsSource(),
			RouteConfigName: rdsName,
		}}
	}
	return &listenerv3.Filter{
		Name:       wellknown.HTTPConnectionManager,
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)},
	}
}

// tcpFilter proxies a connection as an opaque byte stream to a cluster,
// or to weighted clusters when weights has two or more.
func tcpFilter(statPrefix, cluster string, weights []*tcpproxyv3.TcpProxy_WeightedCluster_ClusterWeight) *listenerv3.Filter {
	tp := &tcpproxyv3.TcpProxy{
		StatPrefix:       statPrefix,
		ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster},
	}
	if len(weights) > 1 {
		tp.ClusterSpecifier = &tcpproxyv3.TcpProxy_WeightedClusters{WeightedClusters: &tcpproxyv3.TcpProxy_WeightedCluster{Clusters: weights}}
	}
	return &listenerv3.Filter{
		Name:       wellknown.TCPProxy,
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(tp)},
	}
}

func outboundListener(addr string, common hcmCommon) (*listenerv3.Listener, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return nil, fmt.Errorf("xdsconfig: bad outbound port in %q", addr)
	}
	// Faults and rate limits are configured per route; the filters only
	// have to be there.
	filters := []*hcmv3.HttpFilter{
		httpFilter(wellknown.Fault, &faultv3.HTTPFault{}),
		httpFilter(filterLocalRateLimit, &localratelimitv3.LocalRateLimit{StatPrefix: xdsmeta.OutboundListener}),
		routerFilter(),
	}
	return &listenerv3.Listener{
		Name:    xdsmeta.OutboundListener,
		Address: socketAddress(host, uint32(port)),
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{hcmFilter(xdsmeta.OutboundListener, nil, xdsmeta.OutboundRoutes, filters, common)},
		}},
	}, nil
}

// inboundLimits are the rate limits of one inbound port.
type inboundLimits struct {
	// port limits the whole port (nil: none).
	port *model.RateLimit
	// routes limit some requests, in precedence order.
	routes []*routev3.Route
}

func inboundRouteAction(cluster string) *routev3.Route_Route {
	return &routev3.Route_Route{Route: &routev3.RouteAction{
		ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
		Timeout:          durationpb.New(0),
	}}
}

func inboundListener(address string, in model.InboundPort, mode string, limits inboundLimits, authz inboundAuthz, common hcmCommon) *listenerv3.Listener {
	cluster := xdsmeta.InboundCluster(in.AppPort)
	routes := append([]*routev3.Route(nil), limits.routes...)
	routes = append(routes, &routev3.Route{
		Name:   "default",
		Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: inboundRouteAction(cluster),
	})
	rc := &routev3.RouteConfiguration{
		Name: cluster,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    cluster,
			Domains: []string{"*"},
			Routes:  routes,
		}},
	}
	if address == "" {
		address = "0.0.0.0"
	}
	var network []*listenerv3.Filter
	if in.Protocol == xdsmeta.ProtocolTCP {
		// Authorization (authz.go) runs before the proxy.
		network = append(append(network, authz.tcp...), tcpFilter(cluster, cluster, nil))
	} else {
		// Authorization filters (authz.go) come first.
		filters := append(append([]*hcmv3.HttpFilter(nil), authz.http...),
			httpFilter(filterLocalRateLimit, localRateLimit(cluster, limits.port)),
			routerFilter(),
		)
		network = []*listenerv3.Filter{hcmFilter(cluster, rc, "", filters, common)}
	}
	chains, listenerFilters := inboundChains(mode, network)
	return &listenerv3.Listener{
		Name:            xdsmeta.InboundListener(in.Port),
		Address:         socketAddress(address, in.Port),
		ListenerFilters: listenerFilters,
		FilterChains:    chains,
	}
}

// localRateLimit is a local_ratelimit config; with a nil limit it limits
// nothing.
func localRateLimit(statPrefix string, rl *model.RateLimit) *localratelimitv3.LocalRateLimit {
	l := &localratelimitv3.LocalRateLimit{StatPrefix: statPrefix}
	if rl == nil {
		return l
	}
	l.TokenBucket = tokenBucket(*rl)
	l.FilterEnabled = &corev3.RuntimeFractionalPercent{
		DefaultValue: &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED},
		RuntimeKey:   "local_rate_limit_enabled",
	}
	l.FilterEnforced = &corev3.RuntimeFractionalPercent{
		DefaultValue: &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED},
		RuntimeKey:   "local_rate_limit_enforced",
	}
	return l
}

// minFillInterval is the shortest fill interval Envoy accepts.
const minFillInterval = 50 * time.Millisecond

// tokenBucket refills at exactly RequestsPerSecond and holds Burst tokens
// (RequestsPerSecond when 0). Up to 20 requests per second it adds one
// token every 1s/rps; above, the fewest tokens every interval of at least
// 50ms that divides a second evenly, as long as that does not exceed the
// burst (else one token every 1s/rps).
func tokenBucket(rl model.RateLimit) *typev3.TokenBucket {
	rps := rl.RequestsPerSecond
	burst := orDefault(rl.Burst, rps)
	perFill, interval := uint32(1), time.Second/time.Duration(rps)
	if interval < minFillInterval {
		fills := gcd(rps, uint32(time.Second/minFillInterval))
		if rps/fills <= burst {
			perFill, interval = rps/fills, time.Second/time.Duration(fills)
		}
	}
	return &typev3.TokenBucket{
		MaxTokens:     burst,
		TokensPerFill: wrapperspb.UInt32(perFill),
		FillInterval:  durationpb.New(interval),
	}
}

func gcd(a, b uint32) uint32 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// limitedRoute is an inbound route that rate-limits one match of a rule
// on the workloads of a Service port.
type limitedRoute struct {
	svc     *model.Service
	appPort uint32
	cand    candidate
	route   *routev3.Route
}

// portLimit is a rate limit on a whole Service port.
type portLimit struct {
	svc     *model.Service
	appPort uint32
	limit   *model.RateLimit
}

func validRateLimit(rl *model.RateLimit) bool { return rl != nil && rl.RequestsPerSecond > 0 }

// buildRateLimits precomputes the inbound rate limits of every Service
// port, so ForNode only picks those of the workload.
func (g *Generation) buildRateLimits() {
	for _, svc := range g.state.Services {
		for _, port := range svc.Ports {
			if !isHTTP(port.Protocol) {
				continue
			}
			rs := resolveRoute(nil, g.policies.forService(svc, port))
			if rs.RateLimit == nil {
				continue
			}
			if !validRateLimit(rs.RateLimit) {
				g.problems = append(g.problems, fmt.Sprintf("service %s:%d: rateLimit of 0 requests per second ignored", svc.Host(), port.Port))
				continue
			}
			g.portLimits = append(g.portLimits, portLimit{svc: svc, appPort: port.TargetPort, limit: rs.RateLimit})
		}
	}
	for _, r := range g.state.Routes {
		for i := range r.Rules {
			rule := &r.Rules[i]
			rs := resolveRoute(nil, g.policies.forRoute(r, rule))
			if rs.RateLimit == nil {
				continue
			}
			if !validRateLimit(rs.RateLimit) {
				g.problems = append(g.problems, fmt.Sprintf("%s: rateLimit of 0 requests per second ignored", ruleLabel(r, i)))
				continue
			}
			name := fmt.Sprintf("ratelimit/%s/%s/rule/%d", r.Namespace, r.Name, i)
			perRule := map[string]*anypb.Any{filterLocalRateLimit: mustAny(localRateLimit(name, rs.RateLimit))}
			cands := ruleCandidates(r, nil, func(rr *model.RouteRule) bool { return rr == rule })
			for _, b := range rule.Backends {
				svc := g.state.Service(b.Namespace, b.Service)
				if b.Weight == 0 || svc == nil || svc.Port(b.Port) == nil || !isHTTP(svc.Port(b.Port).Protocol) {
					continue
				}
				appPort := svc.Port(b.Port).TargetPort
				cluster := xdsmeta.InboundCluster(appPort)
				for _, c := range cands {
					g.routeLimits = append(g.routeLimits, limitedRoute{svc: svc, appPort: appPort, cand: c, route: &routev3.Route{
						Name:                 name,
						Match:                routeMatch(c.match, routeKind(r) == kindGRPCRoute),
						Action:               inboundRouteAction(cluster),
						TypedPerFilterConfig: perRule,
					}})
				}
			}
		}
	}
}

// limitsFor returns the rate limits of a workload's inbound port: the
// first Service (in namespace/name order) selecting it with a port limit,
// and the limited routes of every Service selecting it.
func (g *Generation) limitsFor(w *model.Workload, in model.InboundPort) inboundLimits {
	var out inboundLimits
	if !isHTTP(in.Protocol) {
		return out
	}
	for _, l := range g.portLimits {
		if l.appPort == in.AppPort && l.svc.Selects(w) {
			out.port = l.limit
			break
		}
	}
	type key struct {
		route            *model.HTTPRoute
		rule, matchIndex int
	}
	seen := map[key]bool{}
	var picked []limitedRoute
	for _, l := range g.routeLimits {
		k := key{l.cand.route, l.cand.ruleIndex, l.cand.matchIndex}
		if l.appPort != in.AppPort || seen[k] || !l.svc.Selects(w) {
			continue
		}
		seen[k] = true
		picked = append(picked, l)
	}
	sort.SliceStable(picked, func(i, j int) bool { return precedes(picked[i].cand, picked[j].cand) })
	for _, l := range picked {
		out.routes = append(out.routes, l.route)
	}
	return out
}

// tcpListener carries a Service's TCP port: to the port's own cluster, or
// by the weights of the oldest TCPRoute attached to it.
func (g *Generation) tcpListener(svc *model.Service, port model.ServicePort) *listenerv3.Listener {
	name := xdsmeta.OutboundTCPListener(svc.Name, svc.Namespace, port.Port)
	cluster := xdsmeta.OutboundCluster(svc.Name, svc.Namespace, port.Port)
	var routes []*model.TCPRoute
	for _, r := range g.state.TCPRoutes {
		if attachedAny(r.Parents, svc, port) {
			routes = append(routes, r)
		}
	}
	sort.SliceStable(routes, func(i, j int) bool {
		a, b := routes[i], routes[j]
		if !a.Created.Equal(b.Created) {
			return a.Created.Before(b.Created)
		}
		return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
	})
	var weights []*tcpproxyv3.TcpProxy_WeightedCluster_ClusterWeight
	if len(routes) > 0 {
		r := routes[0]
		for _, other := range routes[1:] {
			g.problems = append(g.problems, fmt.Sprintf("tcproute %s/%s: %s:%d already takes tcproute %s/%s (older); ignored",
				other.Namespace, other.Name, svc.Host(), port.Port, r.Namespace, r.Name))
		}
		for _, b := range r.Backends {
			if b.Weight == 0 {
				continue
			}
			if s := g.state.Service(b.Namespace, b.Service); s == nil || s.Port(b.Port) == nil {
				g.problems = append(g.problems, fmt.Sprintf("tcproute %s/%s: backend %s.%s:%d does not exist; its share of connections is refused",
					r.Namespace, r.Name, b.Service, b.Namespace, b.Port))
			}
			weights = append(weights, &tcpproxyv3.TcpProxy_WeightedCluster_ClusterWeight{
				Name:   xdsmeta.OutboundCluster(b.Service, b.Namespace, b.Port),
				Weight: b.Weight,
			})
		}
		switch len(weights) {
		case 0:
			g.problems = append(g.problems, fmt.Sprintf("tcproute %s/%s: no backend with a weight; connections to %s:%d are refused",
				r.Namespace, r.Name, svc.Host(), port.Port))
			cluster = NoBackendCluster
		case 1:
			cluster = weights[0].Name
		}
	}
	return &listenerv3.Listener{
		Name:         name,
		Address:      socketAddress("0.0.0.0", port.Port),
		BindToPort:   wrapperspb.Bool(false),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{tcpFilter(name, cluster, weights)}}},
	}
}

// tcpRouteProblems reports TCPRoutes attached to no TCP port of an
// existing Service.
func (g *Generation) tcpRouteProblems() {
	for _, r := range g.state.TCPRoutes {
		for _, ref := range r.Parents {
			svc := g.state.Service(ref.Namespace, ref.Service)
			ok := false
			if svc != nil {
				for _, p := range svc.Ports {
					ok = ok || (p.Protocol == xdsmeta.ProtocolTCP && attached(ref, svc, p))
				}
			}
			if !ok {
				g.problems = append(g.problems, fmt.Sprintf("tcproute %s/%s: parent %s.%s has no matching TCP port; not attached there",
					r.Namespace, r.Name, ref.Service, ref.Namespace))
			}
		}
	}
}
