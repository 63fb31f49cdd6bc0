package xdsresource_test

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/proxy/xdsresource"
)

// The TLS resources as the Weft control plane makes them for automatic
// mTLS: every proxy's certificate is the SDS secret "default", the mesh's
// trusted CA the SDS secret "ROOTCA", both over ADS.

// rootCAPEM is a self-signed ECDSA P-256 CA certificate (weft test root CA,
// URI SAN spiffe://weft.test, valid 2025-2125).
const rootCAPEM = `-----BEGIN CERTIFICATE-----
MIIBsjCCAVigAwIBAgIBATAKBggqhkjOPQQDAjAwMRIwEAYDVQQKEwl3ZWZ0IHRl
c3QxGjAYBgNVBAMTEXdlZnQgdGVzdCByb290IENBMCAXDTI1MDEwMTAwMDAwMFoY
DzIxMjUwMTAxMDAwMDAwWjAwMRIwEAYDVQQKEwl3ZWZ0IHRlc3QxGjAYBgNVBAMT
EXdlZnQgdGVzdCByb290IENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEMfTc
bvPaJHVAxNC23bXfnOkcB9bgKyHD+oeb4k0oXZEK1kJpO5UnV9l+DmsOeaC8rxMS
RdbxsN1IoLwfGwUCZ6NhMF8wDgYDVR0PAQH/BAQDAgEGMA8GA1UdEwEB/wQFMAMB
Af8wHQYDVR0OBBYEFHFa0uITs7gdXAoc1R+Dbt01hcRWMB0GA1UdEQQWMBSGEnNw
aWZmZTovL3dlZnQudGVzdDAKBggqhkjOPQQDAgNIADBFAiAPVOIZy7wp8zKbMT25
kB1Kk7h2U8GELSP7fqzykkOo2gIhAOf1IQrZys0J+tzY84wOthb5QEREju2GKWPe
gpdoS6y2
-----END CERTIFICATE-----
`

func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

func sdsSecret(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: adsSource()}
}

// commonTLS is the CommonTlsContext of mesh mTLS, accepting any peer the
// mesh CA vouches for.
func commonTLS() *tlsv3.CommonTlsContext {
	return &tlsv3.CommonTlsContext{
		TlsParams: &tlsv3.TlsParameters{
			TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_2,
		},
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsSecret("default")},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
			CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         &tlsv3.CertificateValidationContext{},
				ValidationContextSdsSecretConfig: sdsSecret("ROOTCA"),
			},
		},
		AlpnProtocols: []string{"h2", "http/1.1"},
	}
}

// commonWant is what commonTLS decodes to.
func commonWant() xdsresource.CommonTLS {
	return xdsresource.CommonTLS{
		CertificateSecret: "default",
		ValidationSecret:  "ROOTCA",
		ALPN:              []string{"h2", "http/1.1"},
		MinVersion:        0x0303,
	}
}

// defaultValidation returns the default_validation_context of c, a
// commonTLS.
func defaultValidation(c *tlsv3.CommonTlsContext) *tlsv3.CertificateValidationContext {
	return c.GetCombinedValidationContext().DefaultValidationContext
}

// downstreamTLS is the DownstreamTlsContext of a STRICT inbound listener.
func downstreamTLS() *tlsv3.DownstreamTlsContext {
	return &tlsv3.DownstreamTlsContext{
		CommonTlsContext:         commonTLS(),
		RequireClientCertificate: wrapperspb.Bool(true),
	}
}

func tlsSocket(m proto.Message) *corev3.TransportSocket {
	return &corev3.TransportSocket{
		Name:       "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(m)},
	}
}

func tlsInspector() *listenerv3.ListenerFilter {
	return &listenerv3.ListenerFilter{
		Name:       "envoy.filters.listener.tls_inspector",
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&tlsinspectorv3.TlsInspector{})},
	}
}

// inboundHCM is the HTTP connection manager of the inbound listeners.
func inboundHCM() *listenerv3.Filter {
	h := rdsHCM()
	h.StatPrefix = "inbound|8080"
	h.GetRds().RouteConfigName = "inbound|8080"
	return networkFilter(h)
}

// inboundHCMWant is what inboundHCM decodes to.
func inboundHCMWant() *xdsresource.HTTPConnectionManager {
	return &xdsresource.HTTPConnectionManager{StatPrefix: "inbound|8080", RouteConfigName: "inbound|8080"}
}

// strictListener is a STRICT mTLS inbound listener: one chain, TLS only,
// the client certificate required, its DownstreamTlsContext changed by
// mod.
func strictListener(mod func(*tlsv3.DownstreamTlsContext)) *listenerv3.Listener {
	ctx := downstreamTLS()
	if mod != nil {
		mod(ctx)
	}
	return &listenerv3.Listener{
		Name:    "inbound|8080",
		Address: socketAddress("0.0.0.0", 15006),
		FilterChains: []*listenerv3.FilterChain{{
			Name:            "inbound-tls",
			TransportSocket: tlsSocket(ctx),
			Filters:         []*listenerv3.Filter{inboundHCM()},
		}},
	}
}

// modCommon is strictListener with its CommonTlsContext changed by mod.
func modCommon(mod func(*tlsv3.CommonTlsContext)) *listenerv3.Listener {
	return strictListener(func(d *tlsv3.DownstreamTlsContext) { mod(d.CommonTlsContext) })
}

// modValidation is strictListener with its default_validation_context
// changed by mod.
func modValidation(mod func(*tlsv3.CertificateValidationContext)) *listenerv3.Listener {
	return modCommon(func(c *tlsv3.CommonTlsContext) { mod(defaultValidation(c)) })
}

// strictWant is what strictListener(nil) decodes to.
func strictWant() *xdsresource.Listener {
	return &xdsresource.Listener{
		Name:    "inbound|8080",
		Address: "0.0.0.0:15006",
		FilterChains: []xdsresource.FilterChain{{
			Name: "inbound-tls",
			TLS:  &xdsresource.DownstreamTLS{RequireClientCertificate: true, Common: commonWant()},
			HTTP: inboundHCMWant(),
		}},
	}
}

// withStrictTLS is strictWant with its DownstreamTLS changed by mod.
func withStrictTLS(mod func(*xdsresource.DownstreamTLS)) *xdsresource.Listener {
	l := strictWant()
	mod(l.FilterChains[0].TLS)
	return l
}

// permissiveListener is a PERMISSIVE inbound listener: the TLS inspector
// sends TLS to a chain that terminates mTLS and anything else to a
// plaintext chain. mod changes it.
func permissiveListener(mod func(*listenerv3.Listener)) *listenerv3.Listener {
	l := &listenerv3.Listener{
		Name:            "inbound|8080",
		Address:         socketAddress("0.0.0.0", 15006),
		ListenerFilters: []*listenerv3.ListenerFilter{tlsInspector()},
		FilterChains: []*listenerv3.FilterChain{
			{
				Name:             "inbound-tls",
				FilterChainMatch: &listenerv3.FilterChainMatch{TransportProtocol: "tls"},
				TransportSocket:  tlsSocket(downstreamTLS()),
				Filters:          []*listenerv3.Filter{inboundHCM()},
			},
			{
				Name:             "inbound-plaintext",
				FilterChainMatch: &listenerv3.FilterChainMatch{TransportProtocol: "raw_buffer"},
				Filters:          []*listenerv3.Filter{inboundHCM()},
			},
		},
	}
	if mod != nil {
		mod(l)
	}
	return l
}

// permissiveWant is what permissiveListener(nil) decodes to.
func permissiveWant() *xdsresource.Listener {
	return &xdsresource.Listener{
		Name:         "inbound|8080",
		Address:      "0.0.0.0:15006",
		TLSInspector: true,
		FilterChains: []xdsresource.FilterChain{
			{
				Name:              "inbound-tls",
				TransportProtocol: "tls",
				TLS:               &xdsresource.DownstreamTLS{RequireClientCertificate: true, Common: commonWant()},
				HTTP:              inboundHCMWant(),
			},
			{
				Name:              "inbound-plaintext",
				TransportProtocol: "raw_buffer",
				HTTP:              inboundHCMWant(),
			},
		},
	}
}

// modChainMatch is permissiveListener whose first chain's FilterChainMatch is
// changed by mod.
func modChainMatch(mod func(*listenerv3.FilterChainMatch)) *listenerv3.Listener {
	return permissiveListener(func(l *listenerv3.Listener) { mod(l.FilterChains[0].FilterChainMatch) })
}

// apiSAN is the identity of the api.prod workloads.
const apiSAN = "spiffe://weft.test/ns/prod/sa/api"

func uriSAN(exact string) *tlsv3.SubjectAltNameMatcher {
	return &tlsv3.SubjectAltNameMatcher{
		SanType: tlsv3.SubjectAltNameMatcher_URI,
		Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: exact}},
	}
}

// upstreamTLS is the UpstreamTlsContext of an mTLS cluster to api.prod.
func upstreamTLS() *tlsv3.UpstreamTlsContext {
	c := commonTLS()
	c.AlpnProtocols = []string{"h2"}
	defaultValidation(c).MatchTypedSubjectAltNames = []*tlsv3.SubjectAltNameMatcher{uriSAN(apiSAN)}
	return &tlsv3.UpstreamTlsContext{CommonTlsContext: c, Sni: "api.prod.svc"}
}

// mtlsCluster is edsCluster speaking mTLS with its UpstreamTlsContext
// changed by mod.
func mtlsCluster(mod func(*tlsv3.UpstreamTlsContext)) *clusterv3.Cluster {
	ctx := upstreamTLS()
	if mod != nil {
		mod(ctx)
	}
	c := edsCluster()
	c.TransportSocket = tlsSocket(ctx)
	return c
}

// upstreamWant is what upstreamTLS decodes to.
func upstreamWant() *xdsresource.UpstreamTLS {
	return &xdsresource.UpstreamTLS{
		SNI: "api.prod.svc",
		Common: xdsresource.CommonTLS{
			CertificateSecret: "default",
			ValidationSecret:  "ROOTCA",
			MatchSANs: []xdsresource.SANMatcher{{
				Type:  xdsresource.SANURI,
				Match: xdsresource.StringMatch{Kind: xdsresource.MatchExact, Value: apiSAN},
			}},
			ALPN:       []string{"h2"},
			MinVersion: 0x0303,
		},
	}
}

// rootCASecret is the mesh's trusted CA as SDS delivers it.
func rootCASecret() *tlsv3.Secret {
	return &tlsv3.Secret{
		Name: "ROOTCA",
		Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: []byte(rootCAPEM)}},
		}},
	}
}
