package xdsresource_test

import (
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/proxy/xdsresource"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		typeURL  string
		in       proto.Message
		wantName string
		wantType string
	}{
		{xdsresource.ListenerType, hcmListener(nil), "outbound", "*xdsresource.Listener"},
		{xdsresource.RouteType, baseRoutes(), "outbound", "*xdsresource.RouteConfiguration"},
		{xdsresource.ClusterType, edsCluster(), "outbound|8080||api.prod", "*xdsresource.Cluster"},
		{xdsresource.EndpointType, fullLoadAssignment(), "api.prod:8080", "*xdsresource.ClusterLoadAssignment"},
		{xdsresource.SecretType, rootCASecret(), "ROOTCA", "*xdsresource.Secret"},
	}
	for _, tt := range tests {
		t.Run(tt.typeURL, func(t *testing.T) {
			name, v, err := xdsresource.Decode(tt.typeURL, marshal(t, tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if name != tt.wantName {
				t.Errorf("name = %q, want %q", name, tt.wantName)
			}
			if got := typeString(v); got != tt.wantType {
				t.Errorf("value is a %s, want a %s", got, tt.wantType)
			}
		})
	}
}

func typeString(v any) string {
	switch v.(type) {
	case *xdsresource.Listener:
		return "*xdsresource.Listener"
	case *xdsresource.RouteConfiguration:
		return "*xdsresource.RouteConfiguration"
	case *xdsresource.Cluster:
		return "*xdsresource.Cluster"
	case *xdsresource.ClusterLoadAssignment:
		return "*xdsresource.ClusterLoadAssignment"
	case *xdsresource.Secret:
		return "*xdsresource.Secret"
	case nil:
		return "nil"
	}
	return "unexpected type"
}

// TestDecodeInvalid checks that an invalid resource still yields its name,
// so that the caller can say which resource it rejects.
func TestDecodeInvalid(t *testing.T) {
	tests := []struct {
		typeURL, wantName, wantErr string
		in                         proto.Message
	}{
		{
			typeURL:  xdsresource.ListenerType,
			in:       modListener(func(l *listenerv3.Listener) { l.FilterChains = nil }),
			wantName: "outbound",
			wantErr:  `xdsresource: listener "outbound": filter_chains: must not be empty`,
		},
		{
			typeURL:  xdsresource.RouteType,
			in:       modRoute(func(r *routev3.Route) { r.Action = nil }),
			wantName: "outbound",
			wantErr:  `xdsresource: route "outbound": virtual_hosts[0].routes[0]: an action (route, redirect or direct_response) is required`,
		},
		{
			typeURL:  xdsresource.ClusterType,
			in:       modCluster(func(c *clusterv3.Cluster) { c.LbPolicy = clusterv3.Cluster_CLUSTER_PROVIDED }),
			wantName: "outbound|8080||api.prod",
			wantErr:  `xdsresource: cluster "outbound|8080||api.prod": lb_policy: CLUSTER_PROVIDED: not supported`,
		},
		{
			typeURL:  xdsresource.EndpointType,
			in:       modEndpoint(func(e *endpointv3.LbEndpoint) { e.HostIdentifier = nil }),
			wantName: "api",
			wantErr:  `xdsresource: endpoints "api": endpoints[0].lb_endpoints[0].endpoint: must be set`,
		},
		{
			typeURL: xdsresource.SecretType,
			in: modSecret(func(s *tlsv3.Secret) {
				s.Type = &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{}}
			}),
			wantName: "ROOTCA",
			wantErr:  `xdsresource: secret "ROOTCA": tls_certificate: not supported: the proxy generates its own key; certificates are not delivered by SDS`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.typeURL, func(t *testing.T) {
			name, v, err := xdsresource.Decode(tt.typeURL, marshal(t, tt.in))
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("error = %v, want %s", err, tt.wantErr)
			}
			if name != tt.wantName {
				t.Errorf("name = %q, want %q", name, tt.wantName)
			}
			if v != nil {
				t.Errorf("value = %#v, want nil", v)
			}
		})
	}

	_, _, err := xdsresource.Decode("type.googleapis.com/envoy.config.listener.v3.ListenerX", nil)
	if want := `xdsresource: unsupported resource type "type.googleapis.com/envoy.config.listener.v3.ListenerX"`; err == nil || err.Error() != want {
		t.Errorf("unknown type: error = %v, want %s", err, want)
	}
}

// TestDecodeWire covers wire data that no marshaller produces.
func TestDecodeWire(t *testing.T) {
	valid := marshal(t, hcmListener(nil))
	tests := []struct {
		name    string
		in      []byte
		wantErr string // "" for success
	}{
		{name: "valid", in: valid},
		{
			name: "unknown fields of every wire type",
			in: func() []byte {
				b := append([]byte(nil), valid...)
				b = protowire.AppendTag(b, 1000, protowire.VarintType)
				b = protowire.AppendVarint(b, 7)
				b = protowire.AppendTag(b, 1001, protowire.Fixed32Type)
				b = protowire.AppendFixed32(b, 7)
				b = protowire.AppendTag(b, 1002, protowire.Fixed64Type)
				b = protowire.AppendFixed64(b, 7)
				b = protowire.AppendTag(b, 1003, protowire.BytesType)
				b = protowire.AppendBytes(b, []byte("x"))
				b = protowire.AppendTag(b, 1004, protowire.StartGroupType)
				b = protowire.AppendTag(b, 1, protowire.VarintType)
				b = protowire.AppendVarint(b, 1)
				b = protowire.AppendTag(b, 1004, protowire.EndGroupType)
				return b
			}(),
		},
		{name: "empty", in: nil, wantErr: "xdsresource: listener: name: must not be empty"},
		{name: "truncated", in: valid[:len(valid)-3], wantErr: `xdsresource: listener "outbound": malformed wire data: unexpected EOF`},
		{name: "truncated tag", in: append(append([]byte(nil), valid...), 0x80), wantErr: `malformed wire data`},
		{name: "field number 0", in: append(append([]byte(nil), valid...), 0x00, 0x00), wantErr: `malformed wire data`},
		{name: "stray end group", in: protowire.AppendTag(append([]byte(nil), valid...), 9, protowire.EndGroupType), wantErr: `malformed wire data`},
		{
			name:    "name of the wrong wire type",
			in:      protowire.AppendVarint(protowire.AppendTag(append([]byte(nil), valid...), 1, protowire.VarintType), 3),
			wantErr: `xdsresource: listener "outbound": name: field 1: wire type 0, want 2`,
		},
		{
			name:    "name not UTF-8",
			in:      protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), []byte{0xff}),
			wantErr: `xdsresource: listener: name: field 1: invalid UTF-8`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := xdsresource.DecodeListener(tt.in)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error = %v, want one containing %s", err, tt.wantErr)
			}
		})
	}
}

// TestDecodeMerge checks the protobuf rules for fields seen more than once:
// the decoder must read the bytes as the generated code would.
func TestDecodeMerge(t *testing.T) {
	hcmWith := func(h *hcmv3.HttpConnectionManager) []byte { return marshal(t, h) }
	inline := &hcmv3.HttpConnectionManager{RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: inlineRoutes()}}
	inlineRename := &hcmv3.HttpConnectionManager{RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{
		RouteConfig: &routev3.RouteConfiguration{Name: "renamed"},
	}}
	// listener returns the outbound listener whose HCM is encoded as the
	// concatenation of parts.
	listener := func(parts ...[]byte) []byte {
		l := hcmListener(nil)
		l.FilterChains[0].Filters[0].GetTypedConfig().Value = concat(parts...)
		return marshal(t, l)
	}
	tests := []struct {
		name  string
		in    []byte
		check func(*xdsresource.Listener) bool
	}{
		{
			name: "singular message fields merge",
			in: concat(
				marshal(t, modListener(func(l *listenerv3.Listener) { l.Address = socketAddress("10.1.1.1", 80) })),
				marshal(t, &listenerv3.Listener{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 81},
				}}}}),
			),
			check: func(l *xdsresource.Listener) bool { return l.Address == "10.1.1.1:81" },
		},
		{
			name: "the last oneof member wins: route_config",
			in:   listener(hcmWith(rdsHCM()), hcmWith(inline)),
			check: func(l *xdsresource.Listener) bool {
				return l.FilterChains[0].HTTP.RouteConfigName == "" && l.FilterChains[0].HTTP.Routes.Name == "inbound-8080"
			},
		},
		{
			name: "the last oneof member wins: rds",
			in:   listener(hcmWith(inline), hcmWith(rdsHCM())),
			check: func(l *xdsresource.Listener) bool {
				return l.FilterChains[0].HTTP.RouteConfigName == "outbound" && l.FilterChains[0].HTTP.Routes == nil
			},
		},
		{
			name: "a oneof message member merges",
			in:   listener(hcmWith(rdsHCM()), hcmWith(inline), hcmWith(inlineRename)),
			check: func(l *xdsresource.Listener) bool {
				return l.FilterChains[0].HTTP.Routes.Name == "renamed" && len(l.FilterChains[0].HTTP.Routes.VirtualHosts) == 1
			},
		},
		{
			name: "a refused oneof member is replaced by a later one",
			in: strictListenerTLS(t,
				marshal(t, downstreamTLS()),
				marshal(t, &tlsv3.DownstreamTlsContext{SessionTicketKeysType: &tlsv3.DownstreamTlsContext_SessionTicketKeys{
					SessionTicketKeys: &tlsv3.TlsSessionTicketKeys{},
				}}),
				marshal(t, &tlsv3.DownstreamTlsContext{SessionTicketKeysType: &tlsv3.DownstreamTlsContext_DisableStatelessSessionResumption{
					DisableStatelessSessionResumption: true,
				}}),
			),
			check: func(l *xdsresource.Listener) bool { return l.FilterChains[0].TLS.RequireClientCertificate },
		},
		{
			name: "a refused enum value is replaced by a later default",
			in: strictListenerTLS(t,
				marshal(t, downstreamTLS()),
				marshal(t, &tlsv3.DownstreamTlsContext{OcspStaplePolicy: tlsv3.DownstreamTlsContext_MUST_STAPLE}),
				protowire.AppendVarint(protowire.AppendTag(nil, 8, protowire.VarintType), 0), // ocsp_staple_policy: LENIENT_STAPLING
			),
			check: func(l *xdsresource.Listener) bool { return l.FilterChains[0].TLS != nil },
		},
		{
			name: "tls contexts merge",
			in: strictListenerTLS(t,
				marshal(t, downstreamTLS()),
				marshal(t, &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{AlpnProtocols: []string{"h3"}}}),
			),
			check: func(l *xdsresource.Listener) bool {
				c := l.FilterChains[0].TLS.Common
				return c.CertificateSecret == "default" && len(c.ALPN) == 3 && c.ALPN[2] == "h3"
			},
		},
		{
			name:  "the last scalar wins",
			in:    concat(marshal(t, hcmListener(nil)), marshal(t, &listenerv3.Listener{Name: "second"})),
			check: func(l *xdsresource.Listener) bool { return l.Name == "second" },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := xdsresource.DecodeListener(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(got) {
				t.Errorf("got %s", dump(t, got))
			}
			// The generated code must agree.
			checkCanonical(t, tt.in, &listenerv3.Listener{}, decodeListener)
		})
	}
}

// strictListenerTLS is strictListener whose DownstreamTlsContext is
// encoded as the concatenation of parts.
func strictListenerTLS(t testing.TB, parts ...[]byte) []byte {
	l := strictListener(nil)
	l.FilterChains[0].TransportSocket.GetTypedConfig().Value = concat(parts...)
	return marshal(t, l)
}

func concat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}
