package xdsconfig

import (
	"sort"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/controlplane/model"
)

// ALPN protocols proxies offer each other.
var (
	alpnHTTP2 = []string{"h2"}
	alpnAny   = []string{"h2", "http/1.1"}
)

func sdsConfig(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: adsSource()}
}

// commonTLS is the TLS every hop uses: the proxy's own certificate and the
// mesh's roots, both by SDS; peers must present one of sans (when given).
func commonTLS(sans []string, alpn []string) *tlsv3.CommonTlsContext {
	dvc := &tlsv3.CertificateValidationContext{}
	for _, s := range sans {
		dvc.MatchTypedSubjectAltNames = append(dvc.MatchTypedSubjectAltNames, &tlsv3.SubjectAltNameMatcher{
			SanType: tlsv3.SubjectAltNameMatcher_URI,
			Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}},
		})
	}
	return &tlsv3.CommonTlsContext{
		TlsParams: &tlsv3.TlsParameters{
			TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_2,
			TlsMaximumProtocolVersion: tlsv3.TlsParameters_TLSv1_3,
		},
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsConfig(xdsmeta.CertificateSecret)},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
			CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         dvc,
				ValidationContextSdsSecretConfig: sdsConfig(xdsmeta.TrustBundleSecret),
			},
		},
		AlpnProtocols: alpn,
	}
}

func downstreamTLS() *corev3.TransportSocket {
	return &corev3.TransportSocket{
		Name: wellknown.TransportSocketTLS,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(&tlsv3.DownstreamTlsContext{
			CommonTlsContext:         commonTLS(nil, alpnAny),
			RequireClientCertificate: wrapperspb.Bool(true),
		})},
	}
}

func upstreamTLS(sans []string, protocol string) *corev3.TransportSocket {
	// Mesh hops of an HTTP port speak HTTP/2 (the cluster's explicit
	// config), but WebSocket upgrades need an HTTP/1.1 connection with the
	// same identity: offer both.
	alpn := alpnAny
	switch {
	case isHTTP2(protocol):
		alpn = alpnHTTP2
	case protocol == xdsmeta.ProtocolTCP:
		alpn = nil
	}
	return &corev3.TransportSocket{
		Name: wellknown.TransportSocketTLS,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(&tlsv3.UpstreamTlsContext{
			CommonTlsContext: commonTLS(sans, alpn),
		})},
	}
}

// inboundChains returns the filter chains (and listener filters) of an
// inbound listener for an mTLS mode.
func inboundChains(mode string, filters []*listenerv3.Filter) ([]*listenerv3.FilterChain, []*listenerv3.ListenerFilter) {
	switch mode {
	case model.MTLSDisable:
		return []*listenerv3.FilterChain{{Name: "plaintext", Filters: filters}}, nil
	case model.MTLSPermissive:
		inspector := []*listenerv3.ListenerFilter{{
			Name:       wellknown.TlsInspector,
			ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&tlsinspectorv3.TlsInspector{})},
		}}
		return []*listenerv3.FilterChain{
			{
				Name:             "mtls",
				FilterChainMatch: &listenerv3.FilterChainMatch{TransportProtocol: "tls"},
				TransportSocket:  downstreamTLS(),
				Filters:          filters,
			},
			{
				Name:             "plaintext",
				FilterChainMatch: &listenerv3.FilterChainMatch{TransportProtocol: "raw_buffer"},
				Filters:          filters,
			},
		}, inspector
	default:
		return []*listenerv3.FilterChain{{Name: "mtls", TransportSocket: downstreamTLS(), Filters: filters}}, nil
	}
}

// serviceIdentities returns the SPIFFE IDs of the Service's workloads and
// whether every one of them accepts plaintext only (DISABLE).
func serviceIdentities(st *model.State, svc *model.Service) (ids []string, allDisabled bool) {
	seen := map[string]bool{}
	allDisabled = true
	selected := false
	for _, w := range st.Workloads {
		if !svc.Selects(w) {
			continue
		}
		selected = true
		if st.MTLSMode(w) != model.MTLSDisable {
			allDisabled = false
		}
		id := st.SPIFFEID(w)
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	if !selected {
		allDisabled = st.MTLSMode(&model.Workload{Namespace: svc.Namespace, Labels: svc.Selector}) == model.MTLSDisable
	}
	return ids, allDisabled
}
