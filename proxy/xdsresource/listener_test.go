package xdsresource_test

import (
	"testing"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
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
	rdsWant := &xdsresource.Listener{
		Name:    "outbound",
		Address: "0.0.0.0:15001",
		HTTP:    &xdsresource.HTTPConnectionManager{StatPrefix: "outbound", RouteConfigName: "outbound"},
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
				HTTP: &xdsresource.HTTPConnectionManager{
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
				},
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
				TCP:     &xdsresource.TCPProxy{StatPrefix: "db", Cluster: "db.prod:5432"},
			},
		},
		{
			name: "ipv6 address",
			in: modListener(func(l *listenerv3.Listener) {
				l.Address = socketAddress("::1", 8443)
			}),
			want: &xdsresource.Listener{Name: "outbound", Address: "[::1]:8443", HTTP: rdsWant.HTTP},
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
				return l
			}(),
			want: rdsWant,
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
			wantErr: `listener "outbound": filter_chains: want exactly 1 filter chain, have 0`,
		},
		{
			name: "two filter chains",
			in: modListener(func(l *listenerv3.Listener) {
				l.FilterChains = append(l.FilterChains, l.FilterChains[0])
			}),
			wantErr: `filter_chains: want exactly 1 filter chain, have 2`,
		},
		{
			name: "default_filter_chain",
			in: modListener(func(l *listenerv3.Listener) {
				l.DefaultFilterChain = l.FilterChains[0]
			}),
			wantErr: `listener "outbound": default_filter_chain: not supported`,
		},
		{
			name: "filter_chain_match",
			in: modListener(func(l *listenerv3.Listener) {
				l.FilterChains[0].FilterChainMatch = &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(80)}
			}),
			wantErr: `filter_chains[0].filter_chain_match: not supported`,
		},
		{
			name: "transport_socket",
			in: modListener(func(l *listenerv3.Listener) {
				l.FilterChains[0].TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls"}
			}),
			wantErr: `filter_chains[0].transport_socket: not supported`,
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
				h.HttpFilters = append(h.HttpFilters, &hcmv3.HttpFilter{Name: "envoy.filters.http.fault"})
			}),
			wantErr: `typed_config.http_filters[1]: filter "envoy.filters.http.fault": not supported`,
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
			wantErr: `typed_config.cluster: must be set`,
		},
		{
			name: "tcp proxy with empty cluster",
			in: tcpListener(func(p *tcpv3.TcpProxy) {
				p.ClusterSpecifier = &tcpv3.TcpProxy_Cluster{}
			}),
			wantErr: `typed_config.cluster: must not be empty`,
		},
		{
			name: "tcp proxy weighted_clusters",
			in: tcpListener(func(p *tcpv3.TcpProxy) {
				p.ClusterSpecifier = &tcpv3.TcpProxy_WeightedClusters{WeightedClusters: &tcpv3.TcpProxy_WeightedCluster{}}
			}),
			wantErr: `typed_config.weighted_clusters: not supported`,
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
			checkResult(t, got, err, tt.want, tt.wantErr)
		})
	}
}
