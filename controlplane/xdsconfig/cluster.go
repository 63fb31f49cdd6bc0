package xdsconfig

import (
	"sort"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/controlplane/model"
)

// Defaults of generated clusters (see docs/xds.md).
const (
	// DefaultCircuitBreaker is max_connections, max_pending_requests and
	// max_requests unless a TrafficPolicy sets them.
	DefaultCircuitBreaker = 1024
	// DefaultBudgetPercent and DefaultMinRetryConcurrency are the retry
	// budget unless a TrafficPolicy sets retries.budget.
	DefaultBudgetPercent       = 20.0
	DefaultMinRetryConcurrency = 10
	// OutboundIdleTimeout closes pooled connections to peer proxies
	// (which keep idle connections 120s).
	OutboundIdleTimeout = 30 * time.Second
	// InboundIdleTimeout closes pooled connections to the local app
	// (below Node.js's 5s keep-alive).
	InboundIdleTimeout = 4 * time.Second
)

// Envoy's outlier-detection defaults, emitted explicitly.
const (
	defaultConsecutive5xx     = 5
	defaultConsecutiveGateway = 5
	defaultOutlierInterval    = 10 * time.Second
	defaultBaseEjectionTime   = 30 * time.Second
	defaultMaxEjectionTime    = 300 * time.Second
	defaultMaxEjectionPercent = 10
)

// Workload labels a locality is read from.
const (
	LabelRegion  = "topology.kubernetes.io/region"
	LabelZone    = "topology.kubernetes.io/zone"
	LabelSubzone = "topology.istio.io/subzone"
)

const httpProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// protocolOptions returns the upstream HTTP options of a cluster: HTTP/2
// when h2, else HTTP/1.1, and the pool's idle timeout.
func protocolOptions(h2 bool, idle time.Duration) map[string]*anypb.Any {
	explicit := &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
		ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{
			HttpProtocolOptions: &corev3.Http1ProtocolOptions{},
		},
	}
	if h2 {
		explicit.ProtocolConfig = &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
			Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
		}
	}
	opts := &upstreamhttpv3.HttpProtocolOptions{
		CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{IdleTimeout: durationpb.New(idle)},
		UpstreamProtocolOptions:   &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: explicit},
	}
	return map[string]*anypb.Any{httpProtocolOptionsKey: mustAny(opts)}
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// edsCluster is the outbound cluster of a Service port. Every mesh hop of
// an HTTP, HTTP2 or GRPC port speaks HTTP/2.
func edsCluster(name, protocol string, s clusterSettings) *clusterv3.Cluster {
	pool := model.ConnectionPool{}
	if s.Pool != nil {
		pool = *s.Pool
	}
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource()},
		ConnectTimeout:       durationpb.New(orDefault(pool.ConnectTimeout, ConnectTimeout)),
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
		CircuitBreakers:      circuitBreakers(pool, s.Budget),
		OutlierDetection:     outlierDetection(s.Outlier),
	}
	switch s.LBType {
	case model.LBLeastRequest:
		c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
		c.LbConfig = &clusterv3.Cluster_LeastRequestLbConfig_{LeastRequestLbConfig: &clusterv3.Cluster_LeastRequestLbConfig{
			ChoiceCount: wrapperspb.UInt32(2),
		}}
	case model.LBRingHash:
		c.LbPolicy = clusterv3.Cluster_RING_HASH
		c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{}}
	case model.LBRandom:
		c.LbPolicy = clusterv3.Cluster_RANDOM
	}
	if isHTTP(protocol) {
		c.TypedExtensionProtocolOptions = protocolOptions(true, orDefault(pool.IdleTimeout, OutboundIdleTimeout))
	}
	return c
}

func circuitBreakers(pool model.ConnectionPool, budget *model.RetryBudget) *clusterv3.CircuitBreakers {
	b := model.RetryBudget{Percent: DefaultBudgetPercent, MinPerSecond: DefaultMinRetryConcurrency}
	if budget != nil {
		b = *budget
	}
	t := &clusterv3.CircuitBreakers_Thresholds{
		Priority:           corev3.RoutingPriority_DEFAULT,
		MaxConnections:     wrapperspb.UInt32(orDefault(pool.MaxConnections, DefaultCircuitBreaker)),
		MaxPendingRequests: wrapperspb.UInt32(orDefault(pool.MaxPendingRequests, DefaultCircuitBreaker)),
		MaxRequests:        wrapperspb.UInt32(orDefault(pool.MaxRequests, DefaultCircuitBreaker)),
		RetryBudget: &clusterv3.CircuitBreakers_Thresholds_RetryBudget{
			BudgetPercent:       &typev3.Percent{Value: b.Percent},
			MinRetryConcurrency: wrapperspb.UInt32(b.MinPerSecond),
		},
	}
	if pool.MaxRetries > 0 {
		t.MaxRetries = wrapperspb.UInt32(pool.MaxRetries)
	}
	return &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{t}}
}

// outlierDetection is always on: with no policy, Envoy's defaults
// (consecutive 5xx only).
func outlierDetection(o *model.OutlierDetection) *clusterv3.OutlierDetection {
	consecutive5xx, enforcing5xx := uint32(defaultConsecutive5xx), uint32(100)
	gateway, enforcingGateway := uint32(defaultConsecutiveGateway), uint32(0)
	od := &clusterv3.OutlierDetection{
		Interval:           durationpb.New(defaultOutlierInterval),
		BaseEjectionTime:   durationpb.New(defaultBaseEjectionTime),
		MaxEjectionTime:    durationpb.New(defaultMaxEjectionTime),
		MaxEjectionPercent: wrapperspb.UInt32(defaultMaxEjectionPercent),
	}
	if o != nil {
		if o.Consecutive5xx == 0 {
			enforcing5xx = 0
		} else {
			consecutive5xx = o.Consecutive5xx
		}
		if o.ConsecutiveGatewayErrors > 0 {
			gateway, enforcingGateway = o.ConsecutiveGatewayErrors, 100
		}
		od.Interval = durationpb.New(orDefault(o.Interval, defaultOutlierInterval))
		od.BaseEjectionTime = durationpb.New(orDefault(o.BaseEjectionTime, defaultBaseEjectionTime))
		od.MaxEjectionPercent = wrapperspb.UInt32(orDefault(o.MaxEjectionPercent, defaultMaxEjectionPercent))
	}
	od.Consecutive_5Xx = wrapperspb.UInt32(consecutive5xx)
	od.EnforcingConsecutive_5Xx = wrapperspb.UInt32(enforcing5xx)
	od.ConsecutiveGatewayFailure = wrapperspb.UInt32(gateway)
	od.EnforcingConsecutiveGatewayFailure = wrapperspb.UInt32(enforcingGateway)
	return od
}

func socketAddress(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// locality is a workload's region, zone and subzone.
type locality struct{ region, zone, subzone string }

func (l locality) less(o locality) bool {
	if l.region != o.region {
		return l.region < o.region
	}
	if l.zone != o.zone {
		return l.zone < o.zone
	}
	return l.subzone < o.subzone
}

func workloadLocality(w *model.Workload) locality {
	return locality{w.Labels[LabelRegion], w.Labels[LabelZone], w.Labels[LabelSubzone]}
}

// loadAssignment lists the endpoints of a Service port, one
// LocalityLbEndpoints per locality (sorted by region, zone, subzone). With
// noLocality every endpoint goes in one group without a locality, so the
// proxy does not prefer its own.
func loadAssignment(cluster string, svc *model.Service, port model.ServicePort, workloads []*model.Workload, noLocality bool) *endpointv3.ClusterLoadAssignment {
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: cluster}
	groups := map[locality][]*endpointv3.LbEndpoint{}
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
		var loc locality
		if !noLocality {
			loc = workloadLocality(w)
		}
		groups[loc] = append(groups[loc], &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: socketAddress(w.Address, in.Port),
			}},
			HealthStatus:        health,
			Metadata:            &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{xdsmeta.EndpointFilter: st}},
			LoadBalancingWeight: wrapperspb.UInt32(1),
		})
	}
	locs := make([]locality, 0, len(groups))
	for l := range groups {
		locs = append(locs, l)
	}
	sort.Slice(locs, func(i, j int) bool { return locs[i].less(locs[j]) })
	for _, l := range locs {
		group := &endpointv3.LocalityLbEndpoints{LbEndpoints: groups[l]}
		if l != (locality{}) {
			group.Locality = &corev3.Locality{Region: l.region, Zone: l.zone, SubZone: l.subzone}
		}
		cla.Endpoints = append(cla.Endpoints, group)
	}
	return cla
}

// inboundCluster delivers to the local app: HTTP/1.1 for HTTP ports, h2
// for HTTP2 and GRPC ports.
func inboundCluster(in model.InboundPort) *clusterv3.Cluster {
	name := xdsmeta.InboundCluster(in.AppPort)
	c := &clusterv3.Cluster{
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
	}
	if isHTTP(in.Protocol) {
		c.TypedExtensionProtocolOptions = protocolOptions(isHTTP2(in.Protocol), InboundIdleTimeout)
	}
	return c
}

func appAddress(in model.InboundPort) string {
	if in.AppAddress != "" {
		return in.AppAddress
	}
	return "127.0.0.1"
}
