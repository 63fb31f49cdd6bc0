package xdsconfig

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/controlplane/model"
)

// Defaults of generated clusters.
const (
	// ConnectTimeout bounds a new upstream connection.
	ConnectTimeout = 5 * time.Second
	// InvalidBackendStatus answers the share of traffic that a route sends
	// to a backend that does not exist (Gateway API: 500).
	InvalidBackendStatus = 500
)

// Resources maps each xDS type URL to its resources.
type Resources map[resource.Type][]types.Resource

// Generation is the configuration every proxy shares, built from one State.
type Generation struct {
	state    *model.State
	routes   *routev3.RouteConfiguration
	clusters []types.Resource
	loads    []types.Resource
	secret   *tlsv3.Secret
	// problems lists what could not be honoured (unknown backends...), for
	// status reporting; generation never fails on them.
	problems []string
}

// Problems returns what the generation could not honour, one line each.
func (g *Generation) Problems() []string { return g.problems }

// NewGeneration builds the shared configuration of a State.
func NewGeneration(st *model.State) *Generation {
	g := &Generation{state: st}
	if st.TrustDomain != "" {
		g.secret = &tlsv3.Secret{
			Name: xdsmeta.TrustBundleSecret,
			Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: st.TrustBundle}},
			}},
		}
	}
	g.routes = &routev3.RouteConfiguration{Name: xdsmeta.OutboundRoutes}
	for _, svc := range st.Services {
		bare := bareDomainPort(svc)
		for _, port := range svc.Ports {
			name := xdsmeta.OutboundCluster(svc.Name, svc.Namespace, port.Port)
			c := edsCluster(name, port.Protocol)
			if st.TrustDomain != "" {
				if ids, allDisabled := serviceIdentities(st, svc); !allDisabled {
					c.TransportSocket = upstreamTLS(ids, port.Protocol)
				}
			}
			g.clusters = append(g.clusters, c)
			g.loads = append(g.loads, loadAssignment(name, svc, port, st.Workloads))
			if isHTTP(port.Protocol) {
				g.routes.VirtualHosts = append(g.routes.VirtualHosts, g.virtualHost(svc, port, port.Port == bare))
			}
		}
	}
	return g
}

// ForNode returns every resource the workload's proxy receives.
func (g *Generation) ForNode(w *model.Workload) Resources {
	listeners := make([]types.Resource, 0, len(w.Inbound)+1)
	clusters := make([]types.Resource, 0, len(g.clusters)+len(w.Inbound))
	clusters = append(clusters, g.clusters...)
	if w.Outbound != "" {
		if l, err := outboundListener(w.Outbound); err == nil {
			listeners = append(listeners, l)
		}
	}
	mode := model.MTLSDisable
	if g.state.TrustDomain != "" {
		mode = g.state.MTLSMode(w)
	}
	for _, in := range w.Inbound {
		listeners = append(listeners, inboundListener(w.Address, in, mode))
		clusters = append(clusters, inboundCluster(in))
	}
	res := Resources{
		resource.ListenerType: listeners,
		resource.RouteType:    {g.routes},
		resource.ClusterType:  clusters,
		resource.EndpointType: g.loads,
	}
	if g.secret != nil {
		res[resource.SecretType] = []types.Resource{g.secret}
	}
	return res
}

func isHTTP(protocol string) bool {
	return protocol == xdsmeta.ProtocolHTTP || protocol == xdsmeta.ProtocolHTTP2 || protocol == xdsmeta.ProtocolGRPC
}

func isHTTP2(protocol string) bool {
	return protocol == xdsmeta.ProtocolHTTP2 || protocol == xdsmeta.ProtocolGRPC
}

// bareDomainPort is the port that NAME.NAMESPACE without a port reaches:
// 80 when the Service has it, else its first HTTP port.
func bareDomainPort(svc *model.Service) uint32 {
	first := uint32(0)
	for _, p := range svc.Ports {
		if !isHTTP(p.Protocol) {
			continue
		}
		if p.Port == 80 {
			return 80
		}
		if first == 0 {
			first = p.Port
		}
	}
	return first
}

func domains(svc *model.Service, port uint32, bare bool) []string {
	hosts := []string{svc.Host(), svc.Host() + ".svc.cluster.local"}
	var out []string
	for _, h := range hosts {
		if bare {
			out = append(out, h)
		}
		out = append(out, h+":"+strconv.FormatUint(uint64(port), 10))
	}
	return out
}

func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(fmt.Sprintf("xdsconfig: marshal %T: %v", m, err))
	}
	return a
}

func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

func protocolOptions(protocol string) map[string]*anypb.Any {
	if !isHTTP2(protocol) {
		return nil
	}
	opts := &upstreamhttpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
					Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
				},
			},
		},
	}
	return map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(opts)}
}

func edsCluster(name, protocol string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                          name,
		ClusterDiscoveryType:          &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:              &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource()},
		ConnectTimeout:                durationpb.New(ConnectTimeout),
		LbPolicy:                      clusterv3.Cluster_ROUND_ROBIN,
		TypedExtensionProtocolOptions: protocolOptions(protocol),
	}
}

func socketAddress(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

func loadAssignment(cluster string, svc *model.Service, port model.ServicePort, workloads []*model.Workload) *endpointv3.ClusterLoadAssignment {
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: cluster}
	var eps []*endpointv3.LbEndpoint
	for _, w := range workloads {
		if !svc.Selects(w) {
			continue
		}
		in := w.InboundFor(port.TargetPort)
		if in == nil || w.Address == "" {
			continue
		}
		health := corev3.HealthStatus_HEALTHY
		if !w.Connected {
			// Away inside its grace period: used only when no healthy
			// endpoint is left, so a restart does not flap the endpoint.
			health = corev3.HealthStatus_DEGRADED
		}
		meta := map[string]any{
			xdsmeta.EndpointWorkload:  w.Name,
			xdsmeta.EndpointNamespace: w.Namespace,
		}
		if v := w.Labels["version"]; v != "" {
			meta[xdsmeta.EndpointVersion] = v
		}
		st, _ := structpb.NewStruct(meta)
		eps = append(eps, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: socketAddress(w.Address, in.Port),
			}},
			HealthStatus:        health,
			Metadata:            &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{xdsmeta.EndpointFilter: st}},
			LoadBalancingWeight: wrapperspb.UInt32(1),
		})
	}
	if len(eps) > 0 {
		cla.Endpoints = []*endpointv3.LocalityLbEndpoints{{LbEndpoints: eps}}
	}
	return cla
}

func hcmFilter(statPrefix string, routes *routev3.RouteConfiguration, rdsName string) *listenerv3.Filter {
	hcm := &hcmv3.HttpConnectionManager{
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		StatPrefix: statPrefix,
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       wellknown.Router,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})},
		}},
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

// tcpFilter proxies a connection as an opaque byte stream to a cluster.
func tcpFilter(cluster string) *listenerv3.Filter {
	return &listenerv3.Filter{
		Name: wellknown.TCPProxy,
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(&tcpproxyv3.TcpProxy{
			StatPrefix:       cluster,
			ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster},
		})},
	}
}

func outboundListener(addr string) (*listenerv3.Listener, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return nil, fmt.Errorf("xdsconfig: bad outbound port in %q", addr)
	}
	return &listenerv3.Listener{
		Name:    xdsmeta.OutboundListener,
		Address: socketAddress(host, uint32(port)),
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{hcmFilter(xdsmeta.OutboundListener, nil, xdsmeta.OutboundRoutes)},
		}},
	}, nil
}

func inboundListener(address string, in model.InboundPort, mode string) *listenerv3.Listener {
	cluster := xdsmeta.InboundCluster(in.AppPort)
	routes := &routev3.RouteConfiguration{
		Name: cluster,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    cluster,
			Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Name:  "default",
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
					Timeout:          durationpb.New(0),
				}},
			}},
		}},
	}
	if address == "" {
		address = "0.0.0.0"
	}
	filter := hcmFilter(cluster, routes, "")
	if in.Protocol == xdsmeta.ProtocolTCP {
		filter = tcpFilter(cluster)
	}
	chains, listenerFilters := inboundChains(mode, filter)
	return &listenerv3.Listener{
		Name:            xdsmeta.InboundListener(in.Port),
		Address:         socketAddress(address, in.Port),
		ListenerFilters: listenerFilters,
		FilterChains:    chains,
	}
}

func inboundCluster(in model.InboundPort) *clusterv3.Cluster {
	name := xdsmeta.InboundCluster(in.AppPort)
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(ConnectTimeout),
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Address: socketAddress(appAddress(in), in.AppPort),
				}},
			}}}},
		},
		TypedExtensionProtocolOptions: protocolOptions(in.Protocol),
	}
}

func appAddress(in model.InboundPort) string {
	if in.AppAddress != "" {
		return in.AppAddress
	}
	return "127.0.0.1"
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

// candidate is one match of one rule, with what precedence needs.
type candidate struct {
	route     *model.HTTPRoute
	ruleIndex int
	match     model.RouteMatch
	rule      *model.RouteRule
	order     int
}

func (g *Generation) virtualHost(svc *model.Service, port model.ServicePort, bare bool) *routev3.VirtualHost {
	vh := &routev3.VirtualHost{
		Name:    fmt.Sprintf("%s:%d", svc.Host(), port.Port),
		Domains: domains(svc, port.Port, bare),
	}
	var cands []candidate
	for _, r := range g.state.Routes {
		if !attachedAny(r, svc, port) {
			continue
		}
		for i := range r.Rules {
			rule := &r.Rules[i]
			matches := rule.Matches
			if len(matches) == 0 {
				matches = []model.RouteMatch{{PathType: model.PathPrefix, Path: "/"}}
			}
			for _, m := range matches {
				cands = append(cands, candidate{route: r, ruleIndex: i, match: m, rule: rule, order: len(cands)})
			}
		}
	}
	if len(cands) == 0 {
		// No route attached: all traffic goes to the Service itself.
		vh.Routes = []*routev3.Route{{
			Name:  "default",
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: xdsmeta.OutboundCluster(svc.Name, svc.Namespace, port.Port)},
				Timeout:          durationpb.New(0),
			}},
		}}
		return vh
	}
	sort.SliceStable(cands, func(i, j int) bool { return precedes(cands[i], cands[j]) })
	for _, c := range cands {
		vh.Routes = append(vh.Routes, g.envoyRoute(c))
	}
	return vh
}

func attachedAny(r *model.HTTPRoute, svc *model.Service, port model.ServicePort) bool {
	for _, ref := range r.Parents {
		if attached(ref, svc, port) {
			return true
		}
	}
	return false
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
		return ka < kb
	}
	return a.order < b.order
}

func stringMatcher(m model.StringMatch) *matcherv3.StringMatcher {
	if m.Regex {
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{
			SafeRegex: &matcherv3.RegexMatcher{Regex: m.Value},
		}}
	}
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: m.Value}}
}

func (g *Generation) envoyRoute(c candidate) *routev3.Route {
	m := c.match
	rm := &routev3.RouteMatch{}
	switch m.PathType {
	case model.PathExact:
		rm.PathSpecifier = &routev3.RouteMatch_Path{Path: m.Path}
	case model.PathRegex:
		rm.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: m.Path}}
	default:
		p := m.Path
		for len(p) > 1 && p[len(p)-1] == '/' {
			p = p[:len(p)-1]
		}
		if p == "/" {
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
	route := &routev3.Route{
		Name:  fmt.Sprintf("%s/%s/rule/%d", c.route.Namespace, c.route.Name, c.ruleIndex),
		Match: rm,
	}
	action := &routev3.RouteAction{Timeout: durationpb.New(c.rule.Timeout)}
	var weighted []*routev3.WeightedCluster_ClusterWeight
	for _, b := range c.rule.Backends {
		if b.Weight == 0 {
			continue
		}
		name := xdsmeta.OutboundCluster(b.Service, b.Namespace, b.Port)
		if svc := g.state.Service(b.Namespace, b.Service); svc == nil || svc.Port(b.Port) == nil {
			g.problems = append(g.problems, fmt.Sprintf("httproute %s/%s: rules[%d]: backend %s.%s:%d does not exist; its share of requests gets %d",
				c.route.Namespace, c.route.Name, c.ruleIndex, b.Service, b.Namespace, b.Port, InvalidBackendStatus))
		}
		weighted = append(weighted, &routev3.WeightedCluster_ClusterWeight{Name: name, Weight: wrapperspb.UInt32(b.Weight)})
	}
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
	route.Action = &routev3.Route_Route{Route: action}
	return route
}
