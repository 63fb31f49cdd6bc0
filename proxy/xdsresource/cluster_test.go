package xdsresource_test

import (
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	tcpupstreamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/tcp/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/proxy/xdsresource"
)

const httpOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// httpOptions is the typed_extension_protocol_options of an upstream that
// speaks what o says.
func httpOptions(o *upstreamhttpv3.HttpProtocolOptions) map[string]*anypb.Any {
	return map[string]*anypb.Any{httpOptionsKey: mustAny(o)}
}

func explicitHTTP(config *upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig) *upstreamhttpv3.HttpProtocolOptions {
	return &upstreamhttpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: config},
	}
}

func explicitHTTP2() *upstreamhttpv3.HttpProtocolOptions {
	return explicitHTTP(&upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
		ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
			Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
		},
	})
}

func http2Options() map[string]*anypb.Any { return httpOptions(explicitHTTP2()) }

// edsCluster is an EDS cluster as the Weft control plane makes them.
func edsCluster() *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 "outbound|8080||api.prod",
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{
			EdsConfig: &corev3.ConfigSource{
				ResourceApiVersion:    corev3.ApiVersion_V3,
				ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
			},
			ServiceName: "api.prod:8080",
		},
		ConnectTimeout:                durationpb.New(2 * time.Second),
		LbPolicy:                      clusterv3.Cluster_LEAST_REQUEST,
		TypedExtensionProtocolOptions: http2Options(),
	}
}

// modCluster is edsCluster changed by mod.
func modCluster(mod func(*clusterv3.Cluster)) *clusterv3.Cluster {
	c := edsCluster()
	mod(c)
	return c
}

// modOptions is edsCluster whose upstream HTTP options are o.
func modOptions(o *upstreamhttpv3.HttpProtocolOptions) *clusterv3.Cluster {
	return modCluster(func(c *clusterv3.Cluster) { c.TypedExtensionProtocolOptions = httpOptions(o) })
}

func TestDecodeCluster(t *testing.T) {
	edsWant := &xdsresource.Cluster{
		Name:           "outbound|8080||api.prod",
		Discovery:      xdsresource.DiscoveryEDS,
		EDSServiceName: "api.prod:8080",
		ConnectTimeout: 2 * time.Second,
		LBPolicy:       xdsresource.LBLeastRequest,
		HTTP2:          true,
	}
	// withWant is edsWant changed by mod.
	withWant := func(mod func(*xdsresource.Cluster)) *xdsresource.Cluster {
		c := *edsWant
		mod(&c)
		return &c
	}
	tests := []struct {
		name    string
		in      proto.Message
		want    *xdsresource.Cluster
		wantErr string
	}{
		{name: "eds with http2", in: edsCluster(), want: edsWant},
		{
			name: "static with inline load_assignment",
			in: &clusterv3.Cluster{
				Name:                 "inbound|8080",
				ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
				ConnectTimeout:       durationpb.New(250 * time.Millisecond),
				LoadAssignment: &endpointv3.ClusterLoadAssignment{
					Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{
						lbEndpoint("127.0.0.1", 8080),
					}}},
				},
			},
			want: &xdsresource.Cluster{
				Name:           "inbound|8080",
				Discovery:      xdsresource.DiscoveryStatic,
				ConnectTimeout: 250 * time.Millisecond,
				LBPolicy:       xdsresource.LBRoundRobin,
				LoadAssignment: &xdsresource.ClusterLoadAssignment{
					Endpoints: []xdsresource.Endpoint{{Address: "127.0.0.1:8080", Weight: 1}},
				},
			},
		},
		{
			name: "defaults",
			in:   &clusterv3.Cluster{Name: "c"},
			want: &xdsresource.Cluster{
				Name:           "c",
				Discovery:      xdsresource.DiscoveryStatic,
				ConnectTimeout: 5 * time.Second,
				LBPolicy:       xdsresource.LBRoundRobin,
			},
		},
		{
			name: "eds without service_name, with an ignored load_assignment",
			in: modCluster(func(c *clusterv3.Cluster) {
				c.EdsClusterConfig.ServiceName = ""
				c.LoadAssignment = &endpointv3.ClusterLoadAssignment{ClusterName: "x"}
			}),
			want: withWant(func(c *xdsresource.Cluster) { c.EDSServiceName = "" }),
		},
		{
			name: "explicit http1",
			in: modOptions(explicitHTTP(&upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{
					HttpProtocolOptions: &corev3.Http1ProtocolOptions{},
				},
			})),
			want: withWant(func(c *xdsresource.Cluster) { c.HTTP2 = false }),
		},
		{
			name: "deprecated http2_protocol_options",
			in: modCluster(func(c *clusterv3.Cluster) {
				c.TypedExtensionProtocolOptions = nil
				c.Http2ProtocolOptions = &corev3.Http2ProtocolOptions{}
			}),
			want: edsWant,
		},
		{
			name: "no protocol options",
			in:   modCluster(func(c *clusterv3.Cluster) { c.TypedExtensionProtocolOptions = nil }),
			want: withWant(func(c *xdsresource.Cluster) { c.HTTP2 = false }),
		},
		{
			name: "other protocol options are ignored",
			in: modCluster(func(c *clusterv3.Cluster) {
				c.TypedExtensionProtocolOptions["envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions"] = mustAny(&tcpupstreamv3.TcpProtocolOptions{})
			}),
			want: edsWant,
		},
		{
			name: "round robin",
			in:   modCluster(func(c *clusterv3.Cluster) { c.LbPolicy = clusterv3.Cluster_ROUND_ROBIN }),
			want: withWant(func(c *xdsresource.Cluster) { c.LBPolicy = xdsresource.LBRoundRobin }),
		},
		{
			name: "ring hash",
			in:   modCluster(func(c *clusterv3.Cluster) { c.LbPolicy = clusterv3.Cluster_RING_HASH }),
			want: withWant(func(c *xdsresource.Cluster) { c.LBPolicy = xdsresource.LBRingHash }),
		},
		{
			name: "random",
			in:   modCluster(func(c *clusterv3.Cluster) { c.LbPolicy = clusterv3.Cluster_RANDOM }),
			want: withWant(func(c *xdsresource.Cluster) { c.LBPolicy = xdsresource.LBRandom }),
		},
		{
			name: "maglev",
			in:   modCluster(func(c *clusterv3.Cluster) { c.LbPolicy = clusterv3.Cluster_MAGLEV }),
			want: withWant(func(c *xdsresource.Cluster) { c.LBPolicy = xdsresource.LBMaglev }),
		},

		{
			name:    "empty name",
			in:      modCluster(func(c *clusterv3.Cluster) { c.Name = "" }),
			wantErr: "xdsresource: cluster: name: must not be empty",
		},
		{
			name: "strict dns",
			in: modCluster(func(c *clusterv3.Cluster) {
				c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}
			}),
			wantErr: `xdsresource: cluster "outbound|8080||api.prod": type: STRICT_DNS: not supported`,
		},
		{
			name: "logical dns",
			in: modCluster(func(c *clusterv3.Cluster) {
				c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_LOGICAL_DNS}
			}),
			wantErr: `type: LOGICAL_DNS: not supported`,
		},
		{
			name: "original dst",
			in: modCluster(func(c *clusterv3.Cluster) {
				c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST}
			}),
			wantErr: `type: ORIGINAL_DST: not supported`,
		},
		{
			name:    "unknown type",
			in:      modCluster(func(c *clusterv3.Cluster) { c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: 42} }),
			wantErr: `type: value 42: not supported`,
		},
		{
			name: "cluster_type",
			in: modCluster(func(c *clusterv3.Cluster) {
				c.ClusterDiscoveryType = &clusterv3.Cluster_ClusterType{ClusterType: &clusterv3.Cluster_CustomClusterType{Name: "x"}}
			}),
			wantErr: `cluster "outbound|8080||api.prod": cluster_type: not supported`,
		},
		{
			name:    "cluster provided lb",
			in:      modCluster(func(c *clusterv3.Cluster) { c.LbPolicy = clusterv3.Cluster_CLUSTER_PROVIDED }),
			wantErr: `lb_policy: CLUSTER_PROVIDED: not supported`,
		},
		{
			name:    "lb policy config",
			in:      modCluster(func(c *clusterv3.Cluster) { c.LbPolicy = clusterv3.Cluster_LOAD_BALANCING_POLICY_CONFIG }),
			wantErr: `lb_policy: LOAD_BALANCING_POLICY_CONFIG: not supported`,
		},
		{
			name:    "zero connect_timeout",
			in:      modCluster(func(c *clusterv3.Cluster) { c.ConnectTimeout = durationpb.New(0) }),
			wantErr: `connect_timeout: must be positive`,
		},
		{
			name:    "negative connect_timeout",
			in:      modCluster(func(c *clusterv3.Cluster) { c.ConnectTimeout = durationpb.New(-time.Second) }),
			wantErr: `connect_timeout: negative duration -1s 0ns`,
		},
		{
			name:    "unknown transport_socket",
			in:      modCluster(func(c *clusterv3.Cluster) { c.TransportSocket = &corev3.TransportSocket{Name: "tls"} }),
			wantErr: `cluster "outbound|8080||api.prod": transport_socket: transport socket "tls": not supported`,
		},
		{
			name: "transport_socket_matches",
			in: modCluster(func(c *clusterv3.Cluster) {
				c.TransportSocketMatches = []*clusterv3.Cluster_TransportSocketMatch{{Name: "tls"}}
			}),
			wantErr: `transport_socket_matches: not supported`,
		},
		{
			name:    "load_balancing_policy",
			in:      modCluster(func(c *clusterv3.Cluster) { c.LoadBalancingPolicy = &clusterv3.LoadBalancingPolicy{} }),
			wantErr: `load_balancing_policy: not supported`,
		},
		{
			name: "protocol_selection",
			in: modCluster(func(c *clusterv3.Cluster) {
				c.ProtocolSelection = clusterv3.Cluster_USE_DOWNSTREAM_PROTOCOL
			}),
			wantErr: `protocol_selection: USE_DOWNSTREAM_PROTOCOL: not supported`,
		},
		{
			name: "deprecated and typed http options",
			in: modCluster(func(c *clusterv3.Cluster) {
				c.Http2ProtocolOptions = &corev3.Http2ProtocolOptions{}
			}),
			wantErr: `http2_protocol_options: cannot be used with typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]`,
		},
		{
			name: "http options of the wrong type",
			in: modCluster(func(c *clusterv3.Cluster) {
				c.TypedExtensionProtocolOptions[httpOptionsKey] = mustAny(&routerv3.Router{})
			}),
			wantErr: `typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]: type "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router", want "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"`,
		},
		{
			name:    "http options without protocol",
			in:      modOptions(&upstreamhttpv3.HttpProtocolOptions{}),
			wantErr: `typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]: one of explicit_http_config, use_downstream_protocol_config and auto_config must be set`,
		},
		{
			name: "use_downstream_protocol_config",
			in: modOptions(&upstreamhttpv3.HttpProtocolOptions{UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{
				UseDownstreamProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_UseDownstreamHttpConfig{},
			}}),
			wantErr: `use_downstream_protocol_config: not supported`,
		},
		{
			name: "auto_config",
			in: modOptions(&upstreamhttpv3.HttpProtocolOptions{UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_AutoConfig{
				AutoConfig: &upstreamhttpv3.HttpProtocolOptions_AutoHttpConfig{},
			}}),
			wantErr: `auto_config: not supported`,
		},
		{
			name: "http3",
			in: modOptions(explicitHTTP(&upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http3ProtocolOptions{
					Http3ProtocolOptions: &corev3.Http3ProtocolOptions{},
				},
			})),
			wantErr: `explicit_http_config.http3_protocol_options: not supported`,
		},
		{
			name:    "explicit_http_config without protocol",
			in:      modOptions(explicitHTTP(&upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{})),
			wantErr: `explicit_http_config: one of http_protocol_options and http2_protocol_options must be set`,
		},
		{
			name: "upstream http filters",
			in: modOptions(func() *upstreamhttpv3.HttpProtocolOptions {
				o := explicitHTTP2()
				o.HttpFilters = []*hcmv3.HttpFilter{routerHTTPFilter()}
				return o
			}()),
			wantErr: `typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].http_filters: not supported`,
		},
		{
			name: "invalid inline load_assignment",
			in: &clusterv3.Cluster{
				Name: "static",
				LoadAssignment: &endpointv3.ClusterLoadAssignment{
					Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{
						lbEndpoint("127.0.0.1", 0),
					}}},
				},
			},
			wantErr: `cluster "static": load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value: 0 out of range 1..65535`,
		},

		// TLS.
		{
			name: "mtls eds",
			in:   mtlsCluster(nil),
			want: withWant(func(c *xdsresource.Cluster) { c.TLS = upstreamWant() }),
		},
		{
			name: "mtls with harmless options, without sni",
			in: mtlsCluster(func(u *tlsv3.UpstreamTlsContext) {
				u.Sni = ""
				u.MaxSessionKeys = wrapperspb.UInt32(0)
				u.EnforceRsaKeyUsage = wrapperspb.Bool(true)
			}),
			want: withWant(func(c *xdsresource.Cluster) {
				c.TLS = upstreamWant()
				c.TLS.SNI = ""
			}),
		},
		{
			name: "raw_buffer transport socket is plaintext",
			in: modCluster(func(c *clusterv3.Cluster) {
				c.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.raw_buffer"}
			}),
			want: edsWant,
		},
		{
			name: "tls socket with a downstream context",
			in: modCluster(func(c *clusterv3.Cluster) {
				c.TransportSocket = tlsSocket(downstreamTLS())
			}),
			wantErr: `cluster "outbound|8080||api.prod": transport_socket.typed_config: transport socket "envoy.transport_sockets.tls" of type "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext": not supported`,
		},
		{
			name:    "upstream tls without common_tls_context",
			in:      mtlsCluster(func(u *tlsv3.UpstreamTlsContext) { u.CommonTlsContext = nil }),
			wantErr: `cluster "outbound|8080||api.prod": transport_socket.typed_config.common_tls_context: must be set`,
		},
		{
			name: "upstream tls without validation",
			in: mtlsCluster(func(u *tlsv3.UpstreamTlsContext) {
				u.CommonTlsContext.ValidationContextType = nil
			}),
			wantErr: `transport_socket.typed_config.common_tls_context: a validation context from SDS (combined_validation_context or validation_context_sds_secret_config) is required: the proxy verifies every upstream`,
		},
		{
			name: "upstream tls without certificate",
			in: mtlsCluster(func(u *tlsv3.UpstreamTlsContext) {
				u.CommonTlsContext.TlsCertificateSdsSecretConfigs = nil
			}),
			wantErr: `transport_socket.typed_config.common_tls_context.tls_certificate_sds_secret_configs: want exactly 1 SDS secret with the certificate, have 0`,
		},
		{
			name:    "allow_renegotiation",
			in:      mtlsCluster(func(u *tlsv3.UpstreamTlsContext) { u.AllowRenegotiation = true }),
			wantErr: `transport_socket.typed_config.allow_renegotiation: not supported`,
		},
		{
			name:    "auto_host_sni",
			in:      mtlsCluster(func(u *tlsv3.UpstreamTlsContext) { u.AutoHostSni = true }),
			wantErr: `transport_socket.typed_config.auto_host_sni: not supported`,
		},
		{
			name:    "auto_sni_san_validation",
			in:      mtlsCluster(func(u *tlsv3.UpstreamTlsContext) { u.AutoSniSanValidation = true }),
			wantErr: `transport_socket.typed_config.auto_sni_san_validation: not supported`,
		},
		{
			name: "upstream inline tls_certificates",
			in: mtlsCluster(func(u *tlsv3.UpstreamTlsContext) {
				u.CommonTlsContext.TlsCertificates = []*tlsv3.TlsCertificate{{}}
			}),
			wantErr: `transport_socket.typed_config.common_tls_context.tls_certificates: not supported`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := xdsresource.DecodeCluster(marshal(t, tt.in))
			checkResult(t, got, err, withDefaultLimits(tt.want), tt.wantErr)
		})
	}
}

// defaultLimits are the circuit breakers of a cluster that sets none.
var defaultLimits = xdsresource.CircuitBreakers{MaxConnections: 1024, MaxPendingRequests: 1024, MaxRequests: 1024, MaxRetries: 3}

// withDefaultLimits is want with defaultLimits when it has no circuit
// breakers, for the cases that are not about them.
func withDefaultLimits(want *xdsresource.Cluster) *xdsresource.Cluster {
	if want == nil || want.CircuitBreakers != (xdsresource.CircuitBreakers{}) {
		return want
	}
	w := *want
	w.CircuitBreakers = defaultLimits
	return &w
}
