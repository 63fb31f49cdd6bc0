package xdsresource_test

import (
	"testing"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	httpinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	rawbufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/proxy/xdsresource"
)

// rdsHCM is an HTTP connection manager that takes its routes from RDS.
func rdsHCM() *hcmv3.HttpConnectionManager {
	return &hcmv3.HttpConnectionManager{
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		StatPrefix: "outbound",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource: &corev3.ConfigSource{
				ResourceApiVersion:    corev3.ApiVersion_V3,
				ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
			},
			RouteConfigName: "outbound",
		}},
		HttpFilters: []*hcmv3.HttpFilter{routerHTTPFilter()},
	}
}

// hcmListener is the "outbound" listener with rdsHCM changed by mod.
func hcmListener(mod func(*hcmv3.HttpConnectionManager)) *listenerv3.Listener {
	hcm := rdsHCM()
	if mod != nil {
		mod(hcm)
	}
	return listenerWith("outbound", networkFilter(hcm))
}

func tcpProxy() *tcpv3.TcpProxy {
	return &tcpv3.TcpProxy{
		StatPrefix:       "db",
		ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: "db.prod:5432"},
	}
}

// tcpListener is a TCP proxy listener with tcpProxy changed by mod.
func tcpListener(mod func(*tcpv3.TcpProxy)) *listenerv3.Listener {
	tcp := tcpProxy()
	if mod != nil {
		mod(tcp)
	}
	return listenerWith("inbound-5432", networkFilter(tcp))
}

// modListener is the "outbound" listener changed by mod.
func modListener(mod func(*listenerv3.Listener)) *listenerv3.Listener {
	l := hcmListener(nil)
	mod(l)
	return l
}

// inlineRoutes is a small valid route configuration.
func inlineRoutes() *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{
		Name: "inbound-8080",
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    "inbound-8080",
			Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Name:   "default",
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "inbound-8080"}}},
			}},
		}},
	}
}

func TestDecodeListener(t *testing.T) {
	rdsHCM := &xdsresource.HTTPConnectionManager{StatPrefix: "outbound", RouteConfigName: "outbound"}
	rdsWant := &xdsresource.Listener{
		Name:         "outbound",
		Address:      "0.0.0.0:15001",
		FilterChains: []xdsresource.FilterChain{{HTTP: rdsHCM}},
	}
	tests := []struct {
		name    string
		in      proto.Message
		want    *xdsresource.Listener
		wantErr string
	}{
		{name: "hcm with rds", in: hcmListener(nil), want: rdsWant},
		{
			name: "hcm with inline route_config",
			in: hcmListener(func(h *hcmv3.HttpConnectionManager) {
				h.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: inlineRoutes()}
			}),
			want: &xdsresource.Listener{
				Name:    "outbound",
				Address: "0.0.0.0:15001",
				FilterChains: []xdsresource.FilterChain{{HTTP: &xdsresource.HTTPConnectionManager{
					StatPrefix: "outbound",
					Routes: &xdsresource.RouteConfiguration{
						Name: "inbound-8080",
						VirtualHosts: []xdsresource.VirtualHost{{
							Name:    "inbound-8080",
							Domains: []string{"*"},
							Routes: []xdsresource.Route{{
								Name:   "default",
								Match:  xdsresource.RouteMatch{PathKind: xdsresource.PathPrefix, Path: "/", CaseSensitive: true},
								Action: xdsresource.RouteAction{Clusters: []xdsresource.WeightedCluster{{Name: "inbound-8080", Weight: 1}}},
							}},
						}},
					},
				}}},
			},
		},
		{
			name: "inline route_config without a name",
			in: hcmListener(func(h *hcmv3.HttpConnectionManager) {
				rc := inlineRoutes()
				rc.Name = ""
				h.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: rc}
			}),
		},
		{
			name: "tcp proxy",
			in:   tcpListener(nil),
			want: &xdsresource.Listener{
				Name:    "inbound-5432",
				Address: "0.0.0.0:15001",
				FilterChains: []xdsresource.FilterChain{{
					TCP: &xdsresource.TCPProxy{StatPrefix: "db", Cluster: "db.prod:5432"},
				}},
			},
		},
		{
			name: "ipv6 address",
			in: modListener(func(l *listenerv3.Listener) {
				l.Address = socketAddress("::1", 8443)
			}),
			want: &xdsresource.Listener{Name: "outbound", Address: "[::1]:8443", FilterChains: rdsWant.FilterChains},
		},
		{
			name: "router named, without typed_config",
			in: hcmListener(func(h *hcmv3.HttpConnectionManager) {
				h.HttpFilters = []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router"}}
			}),
			want: rdsWant,
		},
		{
			name: "router by type, whatever its name",
			in: hcmListener(func(h *hcmv3.HttpConnectionManager) {
				h.HttpFilters[0].Name = "my-router"
			}),
			want: rdsWant,
		},
		{
			name: "optional unsupported filter is ignored",
			in: hcmListener(func(h *hcmv3.HttpConnectionManager) {
				h.HttpFilters = []*hcmv3.HttpFilter{{
					Name:       "envoy.filters.http.cors",
					ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&corsv3.Cors{})},
					IsOptional: true,
				}, routerHTTPFilter()}
			}),
			want: rdsWant,
		},
		{
			name: "unknown fields are skipped",
			in: func() proto.Message {
				l := hcmListener(func(h *hcmv3.HttpConnectionManager) {
					h.UseRemoteAddress = wrapperspb.Bool(true)
					h.AccessLog = []*accesslogv3.AccessLog{{Name: "envoy.access_loggers.stdout"}}
				})
				l.StatPrefix = "out"
				l.TrafficDirection = corev3.TrafficDirection_OUTBOUND
				l.PerConnectionBufferLimitBytes = wrapperspb.UInt32(1 << 20)
				l.FilterChains[0].Name = "only"
				l.FilterChains[0].Metadata = &corev3.Metadata{}
				return l
			}(),
			want: &xdsresource.Listener{
				Name:         "outbound",
				Address:      "0.0.0.0:15001",
				FilterChains: []xdsresource.FilterChain{{Name: "only", HTTP: rdsHCM}},
			},
		},

		// Listener.
		{
			name:    "empty name",
			in:      modListener(func(l *listenerv3.Listener) { l.Name = "" }),
			wantErr: "xdsresource: listener: name: must not be empty",
		},
		{
			name:    "no address",
			in:      modListener(func(l *listenerv3.Listener) { l.Address = nil }),
			wantErr: `listener "outbound": address: must be set`,
		},
		{
			name:    "empty address",
			in:      modListener(func(l *listenerv3.Listener) { l.Address = &corev3.Address{} }),
			wantErr: `listener "outbound": address.socket_address: must be set`,
		},
		{
			name: "pipe address",
			in: modListener(func(l *listenerv3.Listener) {
				l.Address = &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: "/tmp/s"}}}
			}),
			wantErr: `listener "outbound": address.pipe: not supported`,
		},
		{
			name: "internal address",
			in: modListener(func(l *listenerv3.Listener) {
				l.Address = &corev3.Address{Address: &corev3.Address_EnvoyInternalAddress{EnvoyInternalAddress: &corev3.EnvoyInternalAddress{}}}
			}),
			wantErr: `listener "outbound": address.envoy_internal_address: not supported`,
		},
		{
			name:    "empty host",
			in:      modListener(func(l *listenerv3.Listener) { l.Address = socketAddress("", 80) }),
			wantErr: `address.socket_address.address: must not be empty`,
		},
		{
			name:    "port 0",
			in:      modListener(func(l *listenerv3.Listener) { l.Address = socketAddress("0.0.0.0", 0) }),
			wantErr: `address.socket_address.port_value: 0 out of range 1..65535`,
		},
		{
			name:    "port too large",
			in:      modListener(func(l *listenerv3.Listener) { l.Address = socketAddress("0.0.0.0", 65536) }),
			wantErr: `address.socket_address.port_value: 65536 out of range 1..65535`,
		},
		{
			name: "no port",
			in: modListener(func(l *listenerv3.Listener) {
				l.Address = &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "::"}}}
			}),
			wantErr: `address.socket_address.port_value: must be set`,
		},
		{
			name: "named port",
			in: modListener(func(l *listenerv3.Listener) {
				l.Address.GetSocketAddress().PortSpecifier = &corev3.SocketAddress_NamedPort{NamedPort: "http"}
			}),
			wantErr: `address.socket_address.named_port: not supported`,
		},
		{
			name: "udp",
			in: modListener(func(l *listenerv3.Listener) {
				l.Address.GetSocketAddress().Protocol = corev3.SocketAddress_UDP
			}),
			wantErr: `address.socket_address.protocol: 1: only TCP (0) is supported`,
		},
		{
			name: "resolver_name",
			in: modListener(func(l *listenerv3.Listener) {
				l.Address.GetSocketAddress().ResolverName = "dns"
			}),
			wantErr: `address.socket_address.resolver_name: not supported`,
		},
		{
			name:    "no filter chain",
			in:      modListener(func(l *listenerv3.Listener) { l.FilterChains = nil }),
			wantErr: `listener "outbound": filter_chains: must not be empty`,
		},
		{
			name: "two filter chains",
			in: modListener(func(l *listenerv3.Listener) {
				l.FilterChains = append(l.FilterChains, l.FilterChains[0])
			}),
			wantErr: `listener "outbound": filter_chains[1].filter_chain_match.transport_protocol: "" is also matched by filter_chains[0]`,
		},
		{
			name: "default_filter_chain",
			in: modListener(func(l *listenerv3.Listener) {
				l.DefaultFilterChain = l.FilterChains[0]
			}),
			wantErr: `listener "outbound": default_filter_chain: not supported`,
		},
		{
			name: "filter_chain_match destination_port",
			in: modListener(func(l *listenerv3.Listener) {
				l.FilterChains[0].FilterChainMatch = &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(80)}
			}),
			wantErr: `filter_chains[0].filter_chain_match.destination_port: not supported`,
		},
		{
			name: "unknown transport_socket",
			in: modListener(func(l *listenerv3.Listener) {
				l.FilterChains[0].TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.alts"}
			}),
			wantErr: `listener "outbound": filter_chains[0].transport_socket: transport socket "envoy.transport_sockets.alts": not supported`,
		},
		{
			name:    "no filter",
			in:      modListener(func(l *listenerv3.Listener) { l.FilterChains[0].Filters = nil }),
			wantErr: `filter_chains[0].filters: want exactly 1 network filter, have 0`,
		},
		{
			name: "two filters",
			in: modListener(func(l *listenerv3.Listener) {
				l.FilterChains[0].Filters = append(l.FilterChains[0].Filters, networkFilter(tcpProxy()))
			}),
			wantErr: `filter_chains[0].filters: want exactly 1 network filter, have 2`,
		},
		{
			name:    "filter without name",
			in:      modListener(func(l *listenerv3.Listener) { l.FilterChains[0].Filters[0].Name = "" }),
			wantErr: `filter_chains[0].filters[0].name: must not be empty`,
		},
		{
			name:    "filter without config",
			in:      modListener(func(l *listenerv3.Listener) { l.FilterChains[0].Filters[0].ConfigType = nil }),
			wantErr: `filter_chains[0].filters[0].typed_config: must be set`,
		},
		{
			name: "filter config_discovery",
			in: modListener(func(l *listenerv3.Listener) {
				l.FilterChains[0].Filters[0].ConfigType = &listenerv3.Filter_ConfigDiscovery{ConfigDiscovery: &corev3.ExtensionConfigSource{}}
			}),
			wantErr: `filter_chains[0].filters[0].config_discovery: not supported`,
		},
		{
			name: "unknown network filter",
			in: modListener(func(l *listenerv3.Listener) {
				l.FilterChains[0].Filters[0] = networkFilter(&corsv3.Cors{})
			}),
			wantErr: `filter_chains[0].filters[0].typed_config: filter "envoy.filters.network.test" of type "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors": not supported`,
		},
		{
			name: "malformed typed_config",
			in: modListener(func(l *listenerv3.Listener) {
				l.FilterChains[0].Filters[0].GetTypedConfig().Value = []byte{0x0a, 0x05, 'a'}
			}),
			wantErr: `filter_chains[0].filters[0].typed_config: malformed wire data`,
		},

		// HttpConnectionManager.
		{
			name:    "hcm without stat_prefix",
			in:      hcmListener(func(h *hcmv3.HttpConnectionManager) { h.StatPrefix = "" }),
			wantErr: `filter_chains[0].filters[0].typed_config.stat_prefix: must not be empty`,
		},
		{
			name:    "hcm without routes",
			in:      hcmListener(func(h *hcmv3.HttpConnectionManager) { h.RouteSpecifier = nil }),
			wantErr: `filter_chains[0].filters[0].typed_config: one of rds and route_config must be set`,
		},
		{
			name:    "rds without name",
			in:      hcmListener(func(h *hcmv3.HttpConnectionManager) { h.GetRds().RouteConfigName = "" }),
			wantErr: `typed_config.rds.route_config_name: must not be empty`,
		},
		{
			name: "scoped_routes",
			in: hcmListener(func(h *hcmv3.HttpConnectionManager) {
				h.RouteSpecifier = &hcmv3.HttpConnectionManager_ScopedRoutes{ScopedRoutes: &hcmv3.ScopedRoutes{Name: "s"}}
			}),
			wantErr: `typed_config.scoped_routes: not supported`,
		},
		{
			name: "invalid inline route_config",
			in: hcmListener(func(h *hcmv3.HttpConnectionManager) {
				rc := inlineRoutes()
				rc.VirtualHosts[0].Domains = nil
				h.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: rc}
			}),
			wantErr: `listener "outbound": filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].domains: at least one domain is required`,
		},
		{
			name:    "no router",
			in:      hcmListener(func(h *hcmv3.HttpConnectionManager) { h.HttpFilters = nil }),
			wantErr: `typed_config.http_filters: the router filter (envoy.filters.http.router) is required`,
		},
		{
			name: "unsupported http filter",
			in: hcmListener(func(h *hcmv3.HttpConnectionManager) {
				h.HttpFilters = []*hcmv3.HttpFilter{{
					Name:       "envoy.filters.http.cors",
					ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&corsv3.Cors{})},
				}, routerHTTPFilter()}
			}),
			wantErr: `typed_config.http_filters[0]: filter "envoy.filters.http.cors" of type "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors": not supported`,
		},
		{
			name: "unsupported http filter without config",
			in: hcmListener(func(h *hcmv3.HttpConnectionManager) {
				h.HttpFilters = append([]*hcmv3.HttpFilter{{Name: "envoy.filters.http.cors"}}, h.HttpFilters...)
			}),
			wantErr: `typed_config.http_filters[0]: filter "envoy.filters.http.cors": not supported`,
		},
		{
			name: "fault filter without config",
			in: hcmListener(func(h *hcmv3.HttpConnectionManager) {
				h.HttpFilters = append([]*hcmv3.HttpFilter{{Name: "envoy.filters.http.fault"}}, h.HttpFilters...)
			}),
			wantErr: `typed_config.http_filters[0].typed_config: must be set`,
		},
		{
			name: "http filter config_discovery",
			in: hcmListener(func(h *hcmv3.HttpConnectionManager) {
				h.HttpFilters = append([]*hcmv3.HttpFilter{{
					Name:       "ext",
					ConfigType: &hcmv3.HttpFilter_ConfigDiscovery{ConfigDiscovery: &corev3.ExtensionConfigSource{}},
				}}, h.HttpFilters...)
			}),
			wantErr: `typed_config.http_filters[0].config_discovery: not supported`,
		},
		{
			name:    "http filter without name",
			in:      hcmListener(func(h *hcmv3.HttpConnectionManager) { h.HttpFilters[0].Name = "" }),
			wantErr: `typed_config.http_filters[0].name: must not be empty`,
		},
		{
			name: "two routers",
			in: hcmListener(func(h *hcmv3.HttpConnectionManager) {
				h.HttpFilters = append(h.HttpFilters, routerHTTPFilter())
			}),
			wantErr: `typed_config.http_filters[1]: duplicate router filter`,
		},
		{
			name:    "disabled router",
			in:      hcmListener(func(h *hcmv3.HttpConnectionManager) { h.HttpFilters[0].Disabled = true }),
			wantErr: `typed_config.http_filters[0].disabled: the router filter cannot be disabled`,
		},

		// TcpProxy.
		{
			name:    "tcp proxy without stat_prefix",
			in:      tcpListener(func(p *tcpv3.TcpProxy) { p.StatPrefix = "" }),
			wantErr: `listener "inbound-5432": filter_chains[0].filters[0].typed_config.stat_prefix: must not be empty`,
		},
		{
			name:    "tcp proxy without cluster",
			in:      tcpListener(func(p *tcpv3.TcpProxy) { p.ClusterSpecifier = nil }),
			wantErr: `typed_config: one of cluster and weighted_clusters must be set`,
		},
		{
			name: "tcp proxy with empty cluster",
			in: tcpListener(func(p *tcpv3.TcpProxy) {
				p.ClusterSpecifier = &tcpv3.TcpProxy_Cluster{}
			}),
			wantErr: `typed_config.cluster: must not be empty`,
		},
		{
			name: "tcp proxy weighted_clusters without clusters",
			in: tcpListener(func(p *tcpv3.TcpProxy) {
				p.ClusterSpecifier = &tcpv3.TcpProxy_WeightedClusters{WeightedClusters: &tcpv3.TcpProxy_WeightedCluster{}}
			}),
			wantErr: `typed_config.weighted_clusters.clusters: must not be empty`,
		},
		{
			name: "tcp proxy tunneling_config",
			in: tcpListener(func(p *tcpv3.TcpProxy) {
				p.TunnelingConfig = &tcpv3.TcpProxy_TunnelingConfig{Hostname: "h"}
			}),
			wantErr: `typed_config.tunneling_config: not supported`,
		},
		{
			name: "tcp proxy metadata_match",
			in: tcpListener(func(p *tcpv3.TcpProxy) {
				p.MetadataMatch = &corev3.Metadata{}
			}),
			wantErr: `typed_config.metadata_match: not supported`,
		},

		// TLS: STRICT and PERMISSIVE inbound listeners.
		{name: "strict mtls", in: strictListener(nil), want: strictWant()},
		{name: "permissive mtls", in: permissiveListener(nil), want: permissiveWant()},
		{
			name: "permissive, the plaintext chain matching anything",
			in: permissiveListener(func(l *listenerv3.Listener) {
				l.FilterChains[1].FilterChainMatch = nil
			}),
			want: func() *xdsresource.Listener {
				l := permissiveWant()
				l.FilterChains[1].TransportProtocol = ""
				return l
			}(),
		},
		{
			name: "tls_inspector by name, without typed_config",
			in: permissiveListener(func(l *listenerv3.Listener) {
				l.ListenerFilters = []*listenerv3.ListenerFilter{{Name: "envoy.filters.listener.tls_inspector"}}
			}),
			want: permissiveWant(),
		},
		{
			name: "tls_inspector by type, whatever its name; harmless options",
			in: permissiveListener(func(l *listenerv3.Listener) {
				l.ListenerFilters = []*listenerv3.ListenerFilter{{
					Name: "inspector",
					ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&tlsinspectorv3.TlsInspector{
						EnableJa3Fingerprinting: wrapperspb.Bool(true),
						InitialReadBufferSize:   wrapperspb.UInt32(4096),
						MaxClientHelloSize:      wrapperspb.UInt32(8192),
					})},
				}}
			}),
			want: permissiveWant(),
		},
		{
			name: "tls_inspector on a listener that does not need it",
			in: func() proto.Message {
				l := strictListener(nil)
				l.ListenerFilters = []*listenerv3.ListenerFilter{tlsInspector()}
				return l
			}(),
			want: func() *xdsresource.Listener {
				l := strictWant()
				l.TLSInspector = true
				return l
			}(),
		},
		{
			name: "tls socket by type, whatever its name",
			in: func() proto.Message {
				l := strictListener(nil)
				l.FilterChains[0].TransportSocket.Name = "mtls"
				return l
			}(),
			want: strictWant(),
		},
		{
			name: "raw_buffer transport socket is plaintext",
			in: permissiveListener(func(l *listenerv3.Listener) {
				l.FilterChains[1].TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.raw_buffer"}
			}),
			want: permissiveWant(),
		},
		{
			name: "raw_buffer transport socket by type",
			in: permissiveListener(func(l *listenerv3.Listener) {
				l.FilterChains[1].TransportSocket = &corev3.TransportSocket{
					Name:       "plain",
					ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(&rawbufferv3.RawBuffer{})},
				}
			}),
			want: permissiveWant(),
		},
		{
			name: "client certificate not required, no validation context",
			in: strictListener(func(d *tlsv3.DownstreamTlsContext) {
				d.RequireClientCertificate = nil
				d.CommonTlsContext.ValidationContextType = nil
			}),
			want: withStrictTLS(func(d *xdsresource.DownstreamTLS) {
				d.RequireClientCertificate = false
				d.Common.ValidationSecret = ""
			}),
		},
		{
			name: "validation_context_sds_secret_config, sds_config absent; harmless options",
			in: strictListener(func(d *tlsv3.DownstreamTlsContext) {
				d.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
					ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: "ROOTCA"},
				}
				d.CommonTlsContext.TlsCertificateSdsSecretConfigs[0].SdsConfig = nil
				d.SessionTicketKeysType = &tlsv3.DownstreamTlsContext_DisableStatelessSessionResumption{DisableStatelessSessionResumption: true}
				d.DisableStatefulSessionResumption = true
				d.SessionTimeout = durationpb.New(time.Minute)
			}),
			want: strictWant(),
		},
		{
			name: "san matchers and tls versions",
			in: modCommon(func(c *tlsv3.CommonTlsContext) {
				c.TlsParams.TlsMinimumProtocolVersion = tlsv3.TlsParameters_TLSv1_3
				c.TlsParams.TlsMaximumProtocolVersion = tlsv3.TlsParameters_TLSv1_3
				defaultValidation(c).MatchTypedSubjectAltNames = []*tlsv3.SubjectAltNameMatcher{
					uriSAN(apiSAN),
					{
						SanType: tlsv3.SubjectAltNameMatcher_DNS,
						Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: ".prod.svc"}, IgnoreCase: true},
					},
					{
						SanType: tlsv3.SubjectAltNameMatcher_EMAIL,
						Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "ops@"}},
					},
					{
						SanType: tlsv3.SubjectAltNameMatcher_IP_ADDRESS,
						Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "10.0.0.1"}},
					},
				}
			}),
			want: withStrictTLS(func(d *xdsresource.DownstreamTLS) {
				d.Common.MinVersion, d.Common.MaxVersion = 0x0304, 0x0304
				d.Common.MatchSANs = []xdsresource.SANMatcher{
					{Type: "URI", Match: xdsresource.StringMatch{Kind: xdsresource.MatchExact, Value: apiSAN}},
					{Type: "DNS", Match: xdsresource.StringMatch{Kind: xdsresource.MatchSuffix, Value: ".prod.svc", IgnoreCase: true}},
					{Type: "EMAIL", Match: xdsresource.StringMatch{Kind: xdsresource.MatchPrefix, Value: "ops@"}},
					{Type: "IP_ADDRESS", Match: xdsresource.StringMatch{Kind: xdsresource.MatchExact, Value: "10.0.0.1"}},
				}
			}),
		},

		// Listener filters.
		{
			name: "unsupported listener filter by name",
			in: permissiveListener(func(l *listenerv3.Listener) {
				l.ListenerFilters = append(l.ListenerFilters, &listenerv3.ListenerFilter{Name: "envoy.filters.listener.original_dst"})
			}),
			wantErr: `listener "inbound|8080": listener_filters[1]: listener filter "envoy.filters.listener.original_dst": not supported`,
		},
		{
			name: "unsupported listener filter by type",
			in: permissiveListener(func(l *listenerv3.Listener) {
				l.ListenerFilters[0].ConfigType = &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&httpinspectorv3.HttpInspector{})}
			}),
			wantErr: `listener_filters[0].typed_config: listener filter "envoy.filters.listener.tls_inspector" of type "type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector": not supported`,
		},
		{
			name: "listener filter config_discovery",
			in: permissiveListener(func(l *listenerv3.Listener) {
				l.ListenerFilters[0].ConfigType = &listenerv3.ListenerFilter_ConfigDiscovery{ConfigDiscovery: &corev3.ExtensionConfigSource{}}
			}),
			wantErr: `listener_filters[0].config_discovery: not supported`,
		},
		{
			name:    "listener filter without name",
			in:      permissiveListener(func(l *listenerv3.Listener) { l.ListenerFilters[0].Name = "" }),
			wantErr: `listener_filters[0].name: must not be empty`,
		},
		{
			name: "listener filter_disabled",
			in: permissiveListener(func(l *listenerv3.Listener) {
				l.ListenerFilters[0].FilterDisabled = &listenerv3.ListenerFilterChainMatchPredicate{}
			}),
			wantErr: `listener_filters[0].filter_disabled: not supported`,
		},
		{
			name: "tls_inspector closing on parse errors",
			in: permissiveListener(func(l *listenerv3.Listener) {
				l.ListenerFilters[0].ConfigType = &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&tlsinspectorv3.TlsInspector{
					CloseConnectionOnClientHelloParsingErrors: true,
				})}
			}),
			wantErr: `listener_filters[0].typed_config.close_connection_on_client_hello_parsing_errors: not supported`,
		},

		// Filter chain matching.
		{
			name: "two chains matching tls",
			in: permissiveListener(func(l *listenerv3.Listener) {
				l.FilterChains[1].FilterChainMatch.TransportProtocol = "tls"
				l.FilterChains[1].TransportSocket = tlsSocket(downstreamTLS())
			}),
			wantErr: `listener "inbound|8080": filter_chains[1].filter_chain_match.transport_protocol: "tls" is also matched by filter_chains[0]`,
		},
		{
			name:    "transport_protocol without tls_inspector",
			in:      permissiveListener(func(l *listenerv3.Listener) { l.ListenerFilters = nil }),
			wantErr: `filter_chains[0].filter_chain_match.transport_protocol: matching "tls" requires the envoy.filters.listener.tls_inspector listener filter`,
		},
		{
			name:    "tls chain without tls",
			in:      permissiveListener(func(l *listenerv3.Listener) { l.FilterChains[0].TransportSocket = nil }),
			wantErr: `filter_chains[0].transport_socket: a chain that matches "tls" must terminate TLS (envoy.transport_sockets.tls)`,
		},
		{
			name: "raw_buffer chain with tls",
			in: permissiveListener(func(l *listenerv3.Listener) {
				l.FilterChains[1].TransportSocket = tlsSocket(downstreamTLS())
			}),
			wantErr: `filter_chains[1].transport_socket: a chain that matches "raw_buffer" cannot terminate TLS`,
		},
		{
			name:    "other transport_protocol",
			in:      modChainMatch(func(m *listenerv3.FilterChainMatch) { m.TransportProtocol = "quic" }),
			wantErr: `filter_chains[0].filter_chain_match.transport_protocol: "quic": not supported (want "tls" or "raw_buffer")`,
		},
		{
			name:    "match server_names",
			in:      modChainMatch(func(m *listenerv3.FilterChainMatch) { m.ServerNames = []string{"api"} }),
			wantErr: `filter_chains[0].filter_chain_match.server_names: not supported`,
		},
		{
			name:    "match application_protocols",
			in:      modChainMatch(func(m *listenerv3.FilterChainMatch) { m.ApplicationProtocols = []string{"h2"} }),
			wantErr: `filter_chains[0].filter_chain_match.application_protocols: not supported`,
		},
		{
			name:    "match source_ports",
			in:      modChainMatch(func(m *listenerv3.FilterChainMatch) { m.SourcePorts = []uint32{80} }),
			wantErr: `filter_chains[0].filter_chain_match.source_ports: not supported`,
		},
		{
			name:    "match source_type",
			in:      modChainMatch(func(m *listenerv3.FilterChainMatch) { m.SourceType = listenerv3.FilterChainMatch_SAME_IP_OR_LOOPBACK }),
			wantErr: `filter_chains[0].filter_chain_match.source_type: not supported`,
		},
		{
			name: "match prefix_ranges",
			in: modChainMatch(func(m *listenerv3.FilterChainMatch) {
				m.PrefixRanges = []*corev3.CidrRange{{AddressPrefix: "10.0.0.0"}}
			}),
			wantErr: `filter_chains[0].filter_chain_match.prefix_ranges: not supported`,
		},
		{
			name: "match source_prefix_ranges",
			in: modChainMatch(func(m *listenerv3.FilterChainMatch) {
				m.SourcePrefixRanges = []*corev3.CidrRange{{AddressPrefix: "10.0.0.0"}}
			}),
			wantErr: `filter_chains[0].filter_chain_match.source_prefix_ranges: not supported`,
		},
		{
			name: "match direct_source_prefix_ranges",
			in: modChainMatch(func(m *listenerv3.FilterChainMatch) {
				m.DirectSourcePrefixRanges = []*corev3.CidrRange{{AddressPrefix: "10.0.0.0"}}
			}),
			wantErr: `filter_chains[0].filter_chain_match.direct_source_prefix_ranges: not supported`,
		},
		{
			name:    "match address_suffix",
			in:      modChainMatch(func(m *listenerv3.FilterChainMatch) { m.AddressSuffix = "x" }),
			wantErr: `filter_chains[0].filter_chain_match.address_suffix: not supported`,
		},
		{
			name:    "match suffix_len",
			in:      modChainMatch(func(m *listenerv3.FilterChainMatch) { m.SuffixLen = wrapperspb.UInt32(0) }),
			wantErr: `filter_chains[0].filter_chain_match.suffix_len: not supported`,
		},

		// Transport sockets.
		{
			name: "tls socket with an upstream context",
			in: modListener(func(l *listenerv3.Listener) {
				l.FilterChains[0].TransportSocket = tlsSocket(upstreamTLS())
			}),
			wantErr: `filter_chains[0].transport_socket.typed_config: transport socket "envoy.transport_sockets.tls" of type "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext": not supported`,
		},
		{
			name: "tls socket without typed_config",
			in: modListener(func(l *listenerv3.Listener) {
				l.FilterChains[0].TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls"}
			}),
			wantErr: `filter_chains[0].transport_socket.typed_config: must be set`,
		},
		{
			name: "transport socket without name",
			in: modListener(func(l *listenerv3.Listener) {
				l.FilterChains[0].TransportSocket = tlsSocket(downstreamTLS())
				l.FilterChains[0].TransportSocket.Name = ""
			}),
			wantErr: `filter_chains[0].transport_socket.name: must not be empty`,
		},

		// DownstreamTlsContext.
		{
			name:    "no common_tls_context",
			in:      strictListener(func(d *tlsv3.DownstreamTlsContext) { d.CommonTlsContext = nil }),
			wantErr: `listener "inbound|8080": filter_chains[0].transport_socket.typed_config.common_tls_context: must be set`,
		},
		{
			name: "client certificate required without validation context",
			in: strictListener(func(d *tlsv3.DownstreamTlsContext) {
				d.CommonTlsContext.ValidationContextType = nil
			}),
			wantErr: `transport_socket.typed_config.require_client_certificate: requires a validation context from SDS in common_tls_context to verify the client certificate`,
		},
		{
			name:    "require_sni",
			in:      strictListener(func(d *tlsv3.DownstreamTlsContext) { d.RequireSni = wrapperspb.Bool(true) }),
			wantErr: `transport_socket.typed_config.require_sni: not supported`,
		},
		{
			name: "session_ticket_keys",
			in: strictListener(func(d *tlsv3.DownstreamTlsContext) {
				d.SessionTicketKeysType = &tlsv3.DownstreamTlsContext_SessionTicketKeys{SessionTicketKeys: &tlsv3.TlsSessionTicketKeys{}}
			}),
			wantErr: `transport_socket.typed_config.session_ticket_keys: not supported`,
		},
		{
			name: "session_ticket_keys_sds_secret_config",
			in: strictListener(func(d *tlsv3.DownstreamTlsContext) {
				d.SessionTicketKeysType = &tlsv3.DownstreamTlsContext_SessionTicketKeysSdsSecretConfig{SessionTicketKeysSdsSecretConfig: sdsSecret("tickets")}
			}),
			wantErr: `transport_socket.typed_config.session_ticket_keys_sds_secret_config: not supported`,
		},
		{
			name: "ocsp_staple_policy",
			in: strictListener(func(d *tlsv3.DownstreamTlsContext) {
				d.OcspStaplePolicy = tlsv3.DownstreamTlsContext_MUST_STAPLE
			}),
			wantErr: `transport_socket.typed_config.ocsp_staple_policy: MUST_STAPLE: not supported`,
		},
		{
			name: "full_scan_certs_on_sni_mismatch",
			in: strictListener(func(d *tlsv3.DownstreamTlsContext) {
				d.FullScanCertsOnSniMismatch = wrapperspb.Bool(true)
			}),
			wantErr: `transport_socket.typed_config.full_scan_certs_on_sni_mismatch: not supported`,
		},

		// CommonTlsContext.
		{
			name: "inline tls_certificates",
			in: modCommon(func(c *tlsv3.CommonTlsContext) {
				c.TlsCertificates = []*tlsv3.TlsCertificate{{}}
			}),
			wantErr: `typed_config.common_tls_context.tls_certificates: not supported: the proxy's key and certificate never travel; name an SDS secret in tls_certificate_sds_secret_configs`,
		},
		{
			name:    "no certificate secret",
			in:      modCommon(func(c *tlsv3.CommonTlsContext) { c.TlsCertificateSdsSecretConfigs = nil }),
			wantErr: `common_tls_context.tls_certificate_sds_secret_configs: want exactly 1 SDS secret with the certificate, have 0`,
		},
		{
			name: "two certificate secrets",
			in: modCommon(func(c *tlsv3.CommonTlsContext) {
				c.TlsCertificateSdsSecretConfigs = append(c.TlsCertificateSdsSecretConfigs, sdsSecret("other"))
			}),
			wantErr: `common_tls_context.tls_certificate_sds_secret_configs: want exactly 1 SDS secret with the certificate, have 2`,
		},
		{
			name:    "certificate secret without name",
			in:      modCommon(func(c *tlsv3.CommonTlsContext) { c.TlsCertificateSdsSecretConfigs[0].Name = "" }),
			wantErr: `common_tls_context.tls_certificate_sds_secret_configs[0].name: must not be empty`,
		},
		{
			name: "certificate secret from an sds server",
			in: modCommon(func(c *tlsv3.CommonTlsContext) {
				c.TlsCertificateSdsSecretConfigs[0].SdsConfig.ConfigSourceSpecifier = &corev3.ConfigSource_ApiConfigSource{ApiConfigSource: &corev3.ApiConfigSource{}}
			}),
			wantErr: `common_tls_context.tls_certificate_sds_secret_configs[0].sds_config: api_config_source: not supported: the proxy takes secrets only over ADS`,
		},
		{
			name: "certificate secret from a file",
			in: modCommon(func(c *tlsv3.CommonTlsContext) {
				c.TlsCertificateSdsSecretConfigs[0].SdsConfig.ConfigSourceSpecifier = &corev3.ConfigSource_Path{Path: "/etc/cert.yaml"}
			}),
			wantErr: `tls_certificate_sds_secret_configs[0].sds_config: path: not supported`,
		},
		{
			name: "certificate secret with an empty sds_config",
			in: modCommon(func(c *tlsv3.CommonTlsContext) {
				c.TlsCertificateSdsSecretConfigs[0].SdsConfig = &corev3.ConfigSource{}
			}),
			wantErr: `tls_certificate_sds_secret_configs[0].sds_config: ads must be set: the proxy takes secrets only over ADS`,
		},
		{
			name: "validation secret from elsewhere",
			in: modCommon(func(c *tlsv3.CommonTlsContext) {
				c.GetCombinedValidationContext().ValidationContextSdsSecretConfig.SdsConfig.ConfigSourceSpecifier = &corev3.ConfigSource_Self{Self: &corev3.SelfConfigSource{}}
			}),
			wantErr: `common_tls_context.combined_validation_context.validation_context_sds_secret_config.sds_config: self: not supported`,
		},
		{
			name: "combined validation without secret",
			in: modCommon(func(c *tlsv3.CommonTlsContext) {
				c.GetCombinedValidationContext().ValidationContextSdsSecretConfig = nil
			}),
			wantErr: `common_tls_context.combined_validation_context.validation_context_sds_secret_config: must be set`,
		},
		{
			name: "combined validation from a certificate provider",
			in: modCommon(func(c *tlsv3.CommonTlsContext) {
				c.GetCombinedValidationContext().ValidationContextCertificateProviderInstance = &tlsv3.CommonTlsContext_CertificateProviderInstance{}
			}),
			wantErr: `common_tls_context.combined_validation_context.validation_context_certificate_provider_instance: not supported`,
		},
		{
			name: "inline validation_context with trusted_ca",
			in: modCommon(func(c *tlsv3.CommonTlsContext) {
				c.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
					TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: rootCAPEM}},
				}}
			}),
			wantErr: `common_tls_context.validation_context.trusted_ca: not supported: the trusted CA must come by SDS`,
		},
		{
			name: "trusted_ca in default_validation_context",
			in: modValidation(func(v *tlsv3.CertificateValidationContext) {
				v.TrustedCa = &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: "/etc/ca.pem"}}
			}),
			wantErr: `common_tls_context.combined_validation_context.default_validation_context.trusted_ca: not supported: the trusted CA must come by SDS`,
		},
		{
			name: "san matchers without a trusted CA",
			in: strictListener(func(d *tlsv3.DownstreamTlsContext) {
				d.RequireClientCertificate = nil
				d.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
					MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{uriSAN(apiSAN)},
				}}
			}),
			wantErr: `transport_socket.typed_config.common_tls_context: match_typed_subject_alt_names requires a trusted CA from SDS`,
		},
		{
			name: "validation_context_certificate_provider_instance",
			in: modCommon(func(c *tlsv3.CommonTlsContext) {
				c.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContextCertificateProviderInstance{
					ValidationContextCertificateProviderInstance: &tlsv3.CommonTlsContext_CertificateProviderInstance{},
				}
			}),
			wantErr: `common_tls_context.validation_context_certificate_provider_instance: not supported`,
		},
		{
			name: "tls_certificate_provider_instance",
			in: modCommon(func(c *tlsv3.CommonTlsContext) {
				c.TlsCertificateProviderInstance = &tlsv3.CertificateProviderPluginInstance{InstanceName: "x"}
			}),
			wantErr: `common_tls_context.tls_certificate_provider_instance: not supported`,
		},
		{
			name: "custom_handshaker",
			in: modCommon(func(c *tlsv3.CommonTlsContext) {
				c.CustomHandshaker = &corev3.TypedExtensionConfig{Name: "x"}
			}),
			wantErr: `common_tls_context.custom_handshaker: not supported`,
		},
		{
			name:    "key_log",
			in:      modCommon(func(c *tlsv3.CommonTlsContext) { c.KeyLog = &tlsv3.TlsKeyLog{Path: "/tmp/keys"} }),
			wantErr: `common_tls_context.key_log: not supported`,
		},
		{
			name: "custom_tls_certificate_selector",
			in: modCommon(func(c *tlsv3.CommonTlsContext) {
				c.CustomTlsCertificateSelector = &corev3.TypedExtensionConfig{Name: "x"}
			}),
			wantErr: `common_tls_context.custom_tls_certificate_selector: not supported`,
		},
		{
			name:    "empty alpn protocol",
			in:      modCommon(func(c *tlsv3.CommonTlsContext) { c.AlpnProtocols = []string{"h2", ""} }),
			wantErr: `common_tls_context.alpn_protocols[1]: "": a protocol name is 1 to 255 bytes`,
		},

		// TlsParameters.
		{
			name:    "cipher_suites",
			in:      modCommon(func(c *tlsv3.CommonTlsContext) { c.TlsParams.CipherSuites = []string{"ECDHE-RSA-AES128-GCM-SHA256"} }),
			wantErr: `common_tls_context.tls_params.cipher_suites: not supported`,
		},
		{
			name:    "ecdh_curves",
			in:      modCommon(func(c *tlsv3.CommonTlsContext) { c.TlsParams.EcdhCurves = []string{"X25519"} }),
			wantErr: `common_tls_context.tls_params.ecdh_curves: not supported`,
		},
		{
			name:    "signature_algorithms",
			in:      modCommon(func(c *tlsv3.CommonTlsContext) { c.TlsParams.SignatureAlgorithms = []string{"ecdsa_secp256r1_sha256"} }),
			wantErr: `common_tls_context.tls_params.signature_algorithms: not supported`,
		},
		{
			name: "compliance_policies",
			in: modCommon(func(c *tlsv3.CommonTlsContext) {
				c.TlsParams.CompliancePolicies = []tlsv3.TlsParameters_CompliancePolicy{tlsv3.TlsParameters_FIPS_202205}
			}),
			wantErr: `common_tls_context.tls_params.compliance_policies: not supported`,
		},
		{
			name: "minimum TLS 1.0",
			in: modCommon(func(c *tlsv3.CommonTlsContext) {
				c.TlsParams.TlsMinimumProtocolVersion = tlsv3.TlsParameters_TLSv1_0
			}),
			wantErr: `common_tls_context.tls_params.tls_minimum_protocol_version: TLSv1_0: not supported: weft requires TLS 1.2 or later`,
		},
		{
			name: "minimum TLS 1.1",
			in: modCommon(func(c *tlsv3.CommonTlsContext) {
				c.TlsParams.TlsMinimumProtocolVersion = tlsv3.TlsParameters_TLSv1_1
			}),
			wantErr: `tls_params.tls_minimum_protocol_version: TLSv1_1: not supported: weft requires TLS 1.2 or later`,
		},
		{
			name: "maximum TLS 1.1",
			in: modCommon(func(c *tlsv3.CommonTlsContext) {
				c.TlsParams.TlsMinimumProtocolVersion = tlsv3.TlsParameters_TLS_AUTO
				c.TlsParams.TlsMaximumProtocolVersion = tlsv3.TlsParameters_TLSv1_1
			}),
			wantErr: `tls_params.tls_maximum_protocol_version: TLSv1_1: not supported: weft requires TLS 1.2 or later`,
		},
		{
			name: "unknown TLS version",
			in: modCommon(func(c *tlsv3.CommonTlsContext) {
				c.TlsParams.TlsMaximumProtocolVersion = 5
			}),
			wantErr: `tls_params.tls_maximum_protocol_version: value 5: not supported`,
		},
		{
			name: "minimum above maximum",
			in: modCommon(func(c *tlsv3.CommonTlsContext) {
				c.TlsParams.TlsMinimumProtocolVersion = tlsv3.TlsParameters_TLSv1_3
				c.TlsParams.TlsMaximumProtocolVersion = tlsv3.TlsParameters_TLSv1_2
			}),
			wantErr: `common_tls_context.tls_params: tls_minimum_protocol_version TLSv1_3 is above tls_maximum_protocol_version TLSv1_2`,
		},

		// CertificateValidationContext and SubjectAltNameMatcher.
		{
			name: "san matcher without type",
			in: modValidation(func(v *tlsv3.CertificateValidationContext) {
				v.MatchTypedSubjectAltNames = []*tlsv3.SubjectAltNameMatcher{{
					Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: apiSAN}},
				}}
			}),
			wantErr: `combined_validation_context.default_validation_context.match_typed_subject_alt_names[0].san_type: must be set`,
		},
		{
			name: "san matcher OTHER_NAME",
			in: modValidation(func(v *tlsv3.CertificateValidationContext) {
				m := uriSAN(apiSAN)
				m.SanType, m.Oid = tlsv3.SubjectAltNameMatcher_OTHER_NAME, "1.3.6.1.4.1.311.20.2.3"
				v.MatchTypedSubjectAltNames = []*tlsv3.SubjectAltNameMatcher{m}
			}),
			wantErr: `match_typed_subject_alt_names[0].san_type: OTHER_NAME: not supported`,
		},
		{
			name: "san matcher without matcher",
			in: modValidation(func(v *tlsv3.CertificateValidationContext) {
				v.MatchTypedSubjectAltNames = []*tlsv3.SubjectAltNameMatcher{{SanType: tlsv3.SubjectAltNameMatcher_DNS}}
			}),
			wantErr: `match_typed_subject_alt_names[0].matcher: must be set`,
		},
		{
			name: "san matcher with an invalid regex",
			in: modValidation(func(v *tlsv3.CertificateValidationContext) {
				v.MatchTypedSubjectAltNames = []*tlsv3.SubjectAltNameMatcher{uriSAN(apiSAN), {
					SanType: tlsv3.SubjectAltNameMatcher_URI,
					Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: regexMatcher("(")}},
				}}
			}),
			wantErr: `match_typed_subject_alt_names[1].matcher.safe_regex: invalid regex`,
		},
		{
			name: "deprecated match_subject_alt_names",
			in: modValidation(func(v *tlsv3.CertificateValidationContext) {
				v.MatchSubjectAltNames = []*matcherv3.StringMatcher{{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: apiSAN}}}
			}),
			wantErr: `default_validation_context.match_subject_alt_names: not supported: use match_typed_subject_alt_names`,
		},
		{
			name:    "verify_certificate_hash",
			in:      modValidation(func(v *tlsv3.CertificateValidationContext) { v.VerifyCertificateHash = []string{"ab"} }),
			wantErr: `default_validation_context.verify_certificate_hash: not supported`,
		},
		{
			name:    "verify_certificate_spki",
			in:      modValidation(func(v *tlsv3.CertificateValidationContext) { v.VerifyCertificateSpki = []string{"ab"} }),
			wantErr: `default_validation_context.verify_certificate_spki: not supported`,
		},
		{
			name: "crl",
			in: modValidation(func(v *tlsv3.CertificateValidationContext) {
				v.Crl = &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "x"}}
			}),
			wantErr: `default_validation_context.crl: not supported`,
		},
		{
			name:    "allow_expired_certificate",
			in:      modValidation(func(v *tlsv3.CertificateValidationContext) { v.AllowExpiredCertificate = true }),
			wantErr: `default_validation_context.allow_expired_certificate: not supported`,
		},
		{
			name: "trust_chain_verification ACCEPT_UNTRUSTED",
			in: modValidation(func(v *tlsv3.CertificateValidationContext) {
				v.TrustChainVerification = tlsv3.CertificateValidationContext_ACCEPT_UNTRUSTED
			}),
			wantErr: `default_validation_context.trust_chain_verification: ACCEPT_UNTRUSTED: not supported`,
		},
		{
			name: "custom_validator_config",
			in: modValidation(func(v *tlsv3.CertificateValidationContext) {
				v.CustomValidatorConfig = &corev3.TypedExtensionConfig{Name: "envoy.tls.cert_validator.spiffe"}
			}),
			wantErr: `default_validation_context.custom_validator_config: not supported`,
		},
		{
			name:    "max_verify_depth",
			in:      modValidation(func(v *tlsv3.CertificateValidationContext) { v.MaxVerifyDepth = wrapperspb.UInt32(2) }),
			wantErr: `default_validation_context.max_verify_depth: not supported`,
		},
		{
			name: "system_root_certs",
			in: modValidation(func(v *tlsv3.CertificateValidationContext) {
				v.SystemRootCerts = &tlsv3.CertificateValidationContext_SystemRootCerts{}
			}),
			wantErr: `default_validation_context.system_root_certs: not supported`,
		},
		{
			name: "require_signed_certificate_timestamp",
			in: modValidation(func(v *tlsv3.CertificateValidationContext) {
				v.RequireSignedCertificateTimestamp = wrapperspb.Bool(true)
			}),
			wantErr: `default_validation_context.require_signed_certificate_timestamp: not supported`,
		},
		{
			name: "ca_certificate_provider_instance",
			in: modValidation(func(v *tlsv3.CertificateValidationContext) {
				v.CaCertificateProviderInstance = &tlsv3.CertificateProviderPluginInstance{InstanceName: "x"}
			}),
			wantErr: `default_validation_context.ca_certificate_provider_instance: not supported`,
		},
		{
			name: "validation watched_directory",
			in: modValidation(func(v *tlsv3.CertificateValidationContext) {
				v.WatchedDirectory = &corev3.WatchedDirectory{Path: "/etc/ca"}
			}),
			wantErr: `default_validation_context.watched_directory: not supported`,
		},
		{
			name: "harmless validation options",
			in: modValidation(func(v *tlsv3.CertificateValidationContext) {
				v.RequireSignedCertificateTimestamp = wrapperspb.Bool(false)
				v.SuppressClientCaList = true
				v.OnlyVerifyLeafCertCrl = true
			}),
			want: strictWant(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := xdsresource.DecodeListener(marshal(t, tt.in))
			if tt.want == nil && tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			checkResult(t, got, err, withRouterOnly(tt.want), tt.wantErr)
		})
	}
}

// withRouterOnly is want whose HTTP connection managers without
// HTTPFilters have the router alone, for the cases that are not about
// HTTP filters.
func withRouterOnly(want *xdsresource.Listener) *xdsresource.Listener {
	if want == nil {
		return nil
	}
	w := *want
	w.FilterChains = append([]xdsresource.FilterChain(nil), want.FilterChains...)
	for i, c := range w.FilterChains {
		if c.HTTP != nil && c.HTTP.HTTPFilters == nil {
			hcm := *c.HTTP
			hcm.HTTPFilters = []string{xdsresource.FilterRouter}
			w.FilterChains[i].HTTP = &hcm
		}
	}
	return &w
}
