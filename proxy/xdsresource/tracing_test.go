package xdsresource_test

import (
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftmesh/weft/proxy/xdsresource"
)

func otelProvider(cfg *tracev3.OpenTelemetryConfig) *tracev3.Tracing_Http {
	return &tracev3.Tracing_Http{Name: "envoy.tracers.opentelemetry",
		ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(cfg)}}
}

func grpcOTel(cluster string) *tracev3.OpenTelemetryConfig {
	return &tracev3.OpenTelemetryConfig{ServiceName: "weft-proxy",
		GrpcService: &corev3.GrpcService{Timeout: durationpb.New(3 * time.Second),
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: cluster}}}}
}

func TestDecodeHCMTracing(t *testing.T) {
	httpCfg := &tracev3.OpenTelemetryConfig{ServiceName: "mesh",
		HttpService: &corev3.HttpService{HttpUri: &corev3.HttpUri{Uri: "http://otel.observability:4318/v1/traces",
			HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: "otel-http"}, Timeout: durationpb.New(time.Second)}}}
	for _, tc := range []struct {
		name    string
		tracing *hcmv3.HttpConnectionManager_Tracing
		want    *xdsresource.Tracing
		err     string
	}{
		{name: "grpc, default sampling", tracing: &hcmv3.HttpConnectionManager_Tracing{Provider: otelProvider(grpcOTel("otel"))},
			want: &xdsresource.Tracing{SamplePercent: 100, Protocol: "grpc", Cluster: "otel", Timeout: 3 * time.Second, ServiceName: "weft-proxy"}},
		{name: "http, random and overall", tracing: &hcmv3.HttpConnectionManager_Tracing{Provider: otelProvider(httpCfg),
			RandomSampling: &typev3.Percent{Value: 50}, OverallSampling: &typev3.Percent{Value: 50}},
			want: &xdsresource.Tracing{SamplePercent: 25, Protocol: "http", Cluster: "otel-http", URI: "http://otel.observability:4318/v1/traces",
				Path: "/v1/traces", Timeout: time.Second, ServiceName: "mesh"}},
		{name: "no provider", tracing: &hcmv3.HttpConnectionManager_Tracing{}, err: "tracing.provider: must be set"},
		{name: "other tracer", tracing: &hcmv3.HttpConnectionManager_Tracing{Provider: &tracev3.Tracing_Http{Name: "envoy.tracers.zipkin"}},
			err: "not supported"},
		{name: "google grpc", tracing: &hcmv3.HttpConnectionManager_Tracing{Provider: otelProvider(&tracev3.OpenTelemetryConfig{
			GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_GoogleGrpc_{GoogleGrpc: &corev3.GrpcService_GoogleGrpc{TargetUri: "x:4317"}}}})},
			err: "google_grpc: not supported"},
		{name: "no cluster", tracing: &hcmv3.HttpConnectionManager_Tracing{Provider: otelProvider(grpcOTel(""))}, err: "cluster_name: must not be empty"},
		{name: "sampling out of range", tracing: &hcmv3.HttpConnectionManager_Tracing{Provider: otelProvider(grpcOTel("otel")),
			RandomSampling: &typev3.Percent{Value: 101}}, err: "random_sampling"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := proto.Marshal(hcmListener(func(h *hcmv3.HttpConnectionManager) { h.Tracing = tc.tracing }))
			if err != nil {
				t.Fatal(err)
			}
			l, err := xdsresource.DecodeListener(b)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := l.FilterChains[0].HTTP.Tracing
			if got == nil || *got != *tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
