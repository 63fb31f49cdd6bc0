package xdsresource_test

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/proxy/xdsresource"
)

func lbEndpoint(host string, port uint32) *endpointv3.LbEndpoint {
	return &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
		Address: socketAddress(host, port),
	}}}
}

func metadata(filters map[string]map[string]any) *corev3.Metadata {
	md := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{}}
	for name, fields := range filters {
		st, err := structpb.NewStruct(fields)
		if err != nil {
			panic(err)
		}
		md.FilterMetadata[name] = st
	}
	return md
}

// fullLoadAssignment uses every field the decoder reads.
func fullLoadAssignment() *endpointv3.ClusterLoadAssignment {
	e0 := lbEndpoint("10.0.0.1", 8080)
	e0.HealthStatus = corev3.HealthStatus_HEALTHY
	e0.LoadBalancingWeight = wrapperspb.UInt32(3)
	e0.Metadata = metadata(map[string]map[string]any{
		"weft":     {"workload": "api-1", "namespace": "prod", "version": "v1", "replicas": 3},
		"envoy.lb": {"canary": true},
	})
	e1 := lbEndpoint("::1", 9090)
	e1.HealthStatus = corev3.HealthStatus_DEGRADED

	var list []*endpointv3.LbEndpoint
	for i, h := range []corev3.HealthStatus{
		corev3.HealthStatus_UNHEALTHY, corev3.HealthStatus_DRAINING, corev3.HealthStatus_TIMEOUT, corev3.HealthStatus_UNKNOWN,
	} {
		e := lbEndpoint("10.0.1.1", uint32(8081+i))
		e.HealthStatus = h
		list = append(list, e)
	}
	list[0].Metadata = metadata(map[string]map[string]any{"weft": {"replicas": 3}})

	return &endpointv3.ClusterLoadAssignment{
		ClusterName: "api.prod:8080",
		Endpoints: []*endpointv3.LocalityLbEndpoints{
			{
				Locality:            &corev3.Locality{Region: "us-east", Zone: "us-east-1a", SubZone: "rack1"},
				LbEndpoints:         []*endpointv3.LbEndpoint{e0, e1},
				LoadBalancingWeight: wrapperspb.UInt32(10),
			},
			{
				Priority: 1,
				LbConfig: &endpointv3.LocalityLbEndpoints_LoadBalancerEndpoints{
					LoadBalancerEndpoints: &endpointv3.LocalityLbEndpoints_LbEndpointList{LbEndpoints: list},
				},
			},
		},
		Policy: &endpointv3.ClusterLoadAssignment_Policy{OverprovisioningFactor: wrapperspb.UInt32(140)},
	}
}

func fullLoadAssignmentWant() *xdsresource.ClusterLoadAssignment {
	east := xdsresource.Locality{Region: "us-east", Zone: "us-east-1a", SubZone: "rack1"}
	return &xdsresource.ClusterLoadAssignment{
		ClusterName: "api.prod:8080",
		Endpoints: []xdsresource.Endpoint{
			{
				Address:  "10.0.0.1:8080",
				Weight:   3,
				Health:   xdsresource.HealthHealthy,
				Locality: east,
				Metadata: map[string]string{"workload": "api-1", "namespace": "prod", "version": "v1"},
			},
			{Address: "[::1]:9090", Weight: 1, Health: xdsresource.HealthDegraded, Locality: east},
			{Address: "10.0.1.1:8081", Weight: 1, Health: xdsresource.HealthUnhealthy, Priority: 1},
			{Address: "10.0.1.1:8082", Weight: 1, Health: xdsresource.HealthDraining, Priority: 1},
			{Address: "10.0.1.1:8083", Weight: 1, Health: xdsresource.HealthTimeout, Priority: 1},
			{Address: "10.0.1.1:8084", Weight: 1, Health: xdsresource.HealthUnknown, Priority: 1},
		},
	}
}

// modEndpoint is a load assignment of one endpoint, changed by mod.
func modEndpoint(mod func(*endpointv3.LbEndpoint)) *endpointv3.ClusterLoadAssignment {
	e := lbEndpoint("10.0.0.1", 8080)
	mod(e)
	return &endpointv3.ClusterLoadAssignment{
		ClusterName: "api",
		Endpoints:   []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{e}}},
	}
}

// modLocality is a load assignment of one locality, changed by mod.
func modLocality(mod func(*endpointv3.LocalityLbEndpoints)) *endpointv3.ClusterLoadAssignment {
	cla := modEndpoint(func(*endpointv3.LbEndpoint) {})
	mod(cla.Endpoints[0])
	return cla
}

func TestDecodeClusterLoadAssignment(t *testing.T) {
	tests := []struct {
		name    string
		in      proto.Message
		want    *xdsresource.ClusterLoadAssignment
		wantErr string
	}{
		{name: "every field", in: fullLoadAssignment(), want: fullLoadAssignmentWant()},
		{
			name: "no endpoints",
			in:   &endpointv3.ClusterLoadAssignment{ClusterName: "api"},
			want: &xdsresource.ClusterLoadAssignment{ClusterName: "api"},
		},
		{
			name: "empty locality",
			in:   &endpointv3.ClusterLoadAssignment{ClusterName: "api", Endpoints: []*endpointv3.LocalityLbEndpoints{{}}},
			want: &xdsresource.ClusterLoadAssignment{ClusterName: "api"},
		},

		{
			name:    "empty cluster_name",
			in:      &endpointv3.ClusterLoadAssignment{},
			wantErr: "xdsresource: endpoints: cluster_name: must not be empty",
		},
		{
			name:    "no endpoint",
			in:      modEndpoint(func(e *endpointv3.LbEndpoint) { e.HostIdentifier = nil }),
			wantErr: `xdsresource: endpoints "api": endpoints[0].lb_endpoints[0].endpoint: must be set`,
		},
		{
			name: "endpoint without address",
			in: modEndpoint(func(e *endpointv3.LbEndpoint) {
				e.HostIdentifier = &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Hostname: "h"}}
			}),
			wantErr: `endpoints[0].lb_endpoints[0].endpoint.address: must be set`,
		},
		{
			name: "endpoint_name",
			in: modEndpoint(func(e *endpointv3.LbEndpoint) {
				e.HostIdentifier = &endpointv3.LbEndpoint_EndpointName{EndpointName: "e"}
			}),
			wantErr: `endpoints[0].lb_endpoints[0].endpoint_name: not supported`,
		},
		{
			name:    "bad address",
			in:      modEndpoint(func(e *endpointv3.LbEndpoint) { e.GetEndpoint().Address = socketAddress("", 80) }),
			wantErr: `endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: must not be empty`,
		},
		{
			name:    "zero weight",
			in:      modEndpoint(func(e *endpointv3.LbEndpoint) { e.LoadBalancingWeight = wrapperspb.UInt32(0) }),
			wantErr: `endpoints[0].lb_endpoints[0].load_balancing_weight: must be at least 1`,
		},
		{
			name:    "unknown health status",
			in:      modEndpoint(func(e *endpointv3.LbEndpoint) { e.HealthStatus = 9 }),
			wantErr: `endpoints[0].lb_endpoints[0].health_status: unknown value 9`,
		},
		{
			name:    "priority too high",
			in:      modLocality(func(l *endpointv3.LocalityLbEndpoints) { l.Priority = 129 }),
			wantErr: `endpoints[0].priority: 129 exceeds 128`,
		},
		{
			name: "leds",
			in: modLocality(func(l *endpointv3.LocalityLbEndpoints) {
				l.LbEndpoints = nil
				l.LbConfig = &endpointv3.LocalityLbEndpoints_LedsClusterLocalityConfig{LedsClusterLocalityConfig: &endpointv3.LedsClusterLocalityConfig{}}
			}),
			wantErr: `endpoints[0].leds_cluster_locality_config: not supported`,
		},
		{
			name: "lb_endpoints and load_balancer_endpoints",
			in: modLocality(func(l *endpointv3.LocalityLbEndpoints) {
				l.LbConfig = &endpointv3.LocalityLbEndpoints_LoadBalancerEndpoints{
					LoadBalancerEndpoints: &endpointv3.LocalityLbEndpoints_LbEndpointList{LbEndpoints: l.LbEndpoints},
				}
			}),
			wantErr: `endpoints[0]: lb_endpoints and load_balancer_endpoints are both set`,
		},
		{
			name: "invalid endpoint in load_balancer_endpoints",
			in: modLocality(func(l *endpointv3.LocalityLbEndpoints) {
				l.LbConfig = &endpointv3.LocalityLbEndpoints_LoadBalancerEndpoints{
					LoadBalancerEndpoints: &endpointv3.LocalityLbEndpoints_LbEndpointList{LbEndpoints: []*endpointv3.LbEndpoint{
						lbEndpoint("10.0.0.2", 1), lbEndpoint("10.0.0.2", 0),
					}},
				}
				l.LbEndpoints = nil
			}),
			wantErr: `endpoints[0].load_balancer_endpoints.lb_endpoints[1].endpoint.address.socket_address.port_value: 0 out of range 1..65535`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := xdsresource.DecodeClusterLoadAssignment(marshal(t, tt.in))
			checkResult(t, got, err, tt.want, tt.wantErr)
		})
	}
}
