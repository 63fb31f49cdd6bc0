package xdsconfig

import (
	"net"
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftmesh/weft/controlplane/model"
)

// Tracing (MeshConfig spec.tracing). Every HCM, outbound and inbound, gets
//
//	tracing:
//	  random_sampling: {value: RATE}            # percent of new traces
//	  provider:
//	    name: envoy.tracers.opentelemetry
//	    typed_config: OpenTelemetryConfig
//	      grpc_service: {envoy_grpc: {cluster_name: weft-otlp}}      # protocol grpc
//	      http_service: {http_uri: {uri, cluster: weft-otlp, timeout}} # protocol http
//	      service_name: NAME                    # when set
//
// and every proxy the STATIC cluster weft-otlp, whose one endpoint is the
// receiver (HTTP/2 for gRPC). Weft semantics: the Weft proxy resolves a
// DNS name in a STATIC endpoint when it connects; Envoy needs an IP there.
const (
	// OTLPCluster is the cluster spans are exported through.
	OTLPCluster = "weft-otlp"
	// TracerOpenTelemetry is the tracing provider's name.
	TracerOpenTelemetry = "envoy.tracers.opentelemetry"
	// OTLPTimeout bounds one export.
	OTLPTimeout = 5 * time.Second
)

// tracingConfig returns the HCM tracing and the exporter's cluster, or
// nils when t is nil (tracing off) or its endpoint does not parse.
func tracingConfig(t *model.Tracing) (*hcmv3.HttpConnectionManager_Tracing, *clusterv3.Cluster) {
	if t == nil {
		return nil, nil
	}
	host, portStr, err := net.SplitHostPort(t.Endpoint)
	if err != nil {
		return nil, nil
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return nil, nil
	}
	otel := &tracev3.OpenTelemetryConfig{ServiceName: t.ServiceName}
	grpc := t.Protocol != model.OTLPHTTP
	if grpc {
		otel.GrpcService = &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
			EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: OTLPCluster},
		}}
	} else {
		path := t.Path
		if path == "" {
			path = "/v1/traces"
		}
		otel.HttpService = &corev3.HttpService{HttpUri: &corev3.HttpUri{
			Uri:              "http://" + t.Endpoint + path,
			HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: OTLPCluster},
			Timeout:          durationpb.New(OTLPTimeout),
		}}
	}
	tracing := &hcmv3.HttpConnectionManager_Tracing{
		RandomSampling: &typev3.Percent{Value: t.SampleRate},
		Provider: &tracev3.Tracing_Http{
			Name:       TracerOpenTelemetry,
			ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(otel)},
		},
	}
	c := &clusterv3.Cluster{
		Name:                 OTLPCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(ConnectTimeout),
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: OTLPCluster,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Address: socketAddress(host, uint32(port)),
				}},
			}}}},
		},
	}
	if grpc {
		c.TypedExtensionProtocolOptions = protocolOptions(true, OutboundIdleTimeout)
	}
	return tracing, c
}
