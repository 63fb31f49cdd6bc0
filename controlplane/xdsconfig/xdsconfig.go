package xdsconfig

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/controlplane/model"
)

// Defaults of generated clusters.
const (
	// ConnectTimeout bounds a new upstream connection unless a
	// TrafficPolicy sets connectionPool.connectTimeout.
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
	policies *policyIndex
	routes   *routev3.RouteConfiguration
	clusters []types.Resource
	loads    []types.Resource
	// tcpListeners are the unbound outbound-tcp listeners, one per TCP
	// Service port.
	tcpListeners []types.Resource
	// hashPolicies are the route hash policies of each RING_HASH cluster.
	hashPolicies map[string][]*routev3.RouteAction_HashPolicy
	// portLimits and routeLimits are the inbound rate limits, picked per
	// workload by ForNode.
	portLimits  []portLimit
	routeLimits []limitedRoute
	secret      *tlsv3.Secret
	// tracing is every HCM's tracing and otlpCluster the cluster spans
	// are exported through, when the MeshConfig turns tracing on.
	tracing *hcmv3.HttpConnectionManager_Tracing
	// hcm is what every HCM shares (tracing, normalisation).
	hcm         hcmCommon
	otlpCluster *clusterv3.Cluster
	// problems lists what could not be honoured (unknown backends...), for
	// status reporting; generation never fails on them.
	problems []string
}

// Problems returns what the generation could not honour, one line each.
func (g *Generation) Problems() []string { return g.problems }

// NewGeneration builds the shared configuration of a State.
func NewGeneration(st *model.State) *Generation {
	g := &Generation{state: st, hashPolicies: map[string][]*routev3.RouteAction_HashPolicy{}}
	g.policies, g.problems = newPolicyIndex(st)
	if st.TrustDomain != "" {
		g.secret = &tlsv3.Secret{
			Name: xdsmeta.TrustBundleSecret,
			Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: st.TrustBundle}},
			}},
		}
	}
	// Clusters first: routes read their hash policies.
	for _, svc := range st.Services {
		for _, port := range svc.Ports {
			name := xdsmeta.OutboundCluster(svc.Name, svc.Namespace, port.Port)
			settings := resolveCluster(g.policies.forService(svc, port))
			c := edsCluster(name, port.Protocol, settings)
			if st.TrustDomain != "" {
				if ids, allDisabled := serviceIdentities(st, svc); !allDisabled {
					c.TransportSocket = upstreamTLS(ids, port.Protocol)
				}
			}
			if settings.LBType == model.LBRingHash {
				if hp := hashPolicy(settings.Hash); hp != nil {
					g.hashPolicies[name] = append(g.hashPolicies[name], hp)
				}
			}
			g.clusters = append(g.clusters, c)
			g.loads = append(g.loads, loadAssignment(name, svc, port, st.Workloads, settings.NoLocality))
			if port.Protocol == xdsmeta.ProtocolTCP {
				g.tcpListeners = append(g.tcpListeners, g.tcpListener(svc, port))
			}
		}
	}
	g.tcpRouteProblems()
	g.routes = &routev3.RouteConfiguration{Name: xdsmeta.OutboundRoutes}
	for _, svc := range st.Services {
		bare := bareDomainPort(svc)
		for _, port := range svc.Ports {
			if isHTTP(port.Protocol) {
				g.routes.VirtualHosts = append(g.routes.VirtualHosts, g.virtualHost(svc, port, port.Port == bare))
			}
		}
	}
	g.buildRateLimits()
	g.tracing, g.otlpCluster = tracingConfig(st.Mesh.Tracing)
	g.hcm = newHCMCommon(st.Mesh)
	g.hcm.tracing = g.tracing
	g.authzProblems()
	return g
}

// ForNode returns every resource the workload's proxy receives.
// unboundOutbound is the address of the outbound listener a proxy gets
// when it has none of its own; it is never bound.
const unboundOutbound = "0.0.0.0:15001"

func (g *Generation) ForNode(w *model.Workload) Resources {
	listeners := make([]types.Resource, 0, len(w.Inbound)+1+len(g.tcpListeners))
	clusters := make([]types.Resource, 0, len(g.clusters)+len(w.Inbound))
	clusters = append(clusters, g.clusters...)
	// Without an outbound listener of its own (--outbound none), the proxy
	// still routes its local upstream ports with the outbound routes: it
	// gets the listener unbound, so the routes stay referenced.
	if l, err := outboundListener(w.Outbound, g.hcm); err == nil {
		listeners = append(listeners, l)
	} else if l, err := outboundListener(unboundOutbound, g.hcm); err == nil {
		l.BindToPort = wrapperspb.Bool(false)
		listeners = append(listeners, l)
	}
	listeners = append(listeners, g.tcpListeners...)
	mode := model.MTLSDisable
	if g.state.TrustDomain != "" {
		mode = g.state.MTLSMode(w)
	}
	var providers []string
	for _, in := range w.Inbound {
		authz := g.authzFor(w, in)
		providers = append(providers, authz.providers...)
		listeners = append(listeners, inboundListener(w.Address, in, mode, g.limitsFor(w, in), authz, g.hcm))
		clusters = append(clusters, inboundCluster(in))
	}
	sort.Strings(providers)
	for _, name := range slices.Compact(providers) {
		if c := authzProviderCluster(g.state.Mesh.Authorization.Provider(name)); c != nil {
			clusters = append(clusters, c)
		}
	}
	if g.otlpCluster != nil {
		clusters = append(clusters, g.otlpCluster)
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
