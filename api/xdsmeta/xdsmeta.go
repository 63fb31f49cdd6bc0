package xdsmeta

import (
	"fmt"
	"strconv"
	"strings"
)

// Node metadata keys. A proxy sends them in Node.metadata (a
// google.protobuf.Struct) on its ADS stream; the control plane registers the
// workload they describe for as long as the stream (plus a grace period)
// lives. An Envoy joining the mesh sets the same keys in its bootstrap.
const (
	// MetaNamespace is the workload's namespace (string).
	MetaNamespace = "weft.namespace"
	// MetaWorkload is the workload instance name, unique in its namespace (string).
	MetaWorkload = "weft.workload"
	// MetaLabels are the workload's labels (struct of strings); Service
	// selectors match on them.
	MetaLabels = "weft.labels"
	// MetaAddress is the IP address other proxies reach this workload's
	// inbound listeners on (string).
	MetaAddress = "weft.address"
	// MetaInbound lists the inbound ports (list of structs with the keys
	// below): traffic for app port AppPort arrives on proxy port Port.
	MetaInbound = "weft.inbound"
	// MetaOutbound is the address of the proxy's outbound HTTP listener
	// (string, host:port); empty means the proxy has none.
	MetaOutbound = "weft.outbound"
	// MetaProxyVersion is the proxy's build version (string).
	MetaProxyVersion = "weft.proxy_version"
	// MetaIdentity is the workload's identity, the last segment of its
	// SPIFFE ID spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/IDENTITY (string). It
	// must match the certificate the proxy presents.
	MetaIdentity = "weft.identity"

	// Keys of each MetaInbound entry.
	InboundPort     = "port"
	InboundAppPort  = "app_port"
	InboundProtocol = "protocol"
	// InboundAppAddress is the IP the app listens on (default 127.0.0.1).
	InboundAppAddress = "app_address"
)

// EndpointFilter is the filter_metadata namespace the control plane puts on
// every endpoint of a ClusterLoadAssignment.
const EndpointFilter = "weft"

// Endpoint metadata keys under EndpointFilter (all strings).
const (
	EndpointWorkload  = "workload"
	EndpointNamespace = "namespace"
	EndpointVersion   = "version"
)

// SDS secret names.
const (
	// CertificateSecret is the proxy's own certificate. The proxy makes it
	// itself (its key never leaves it): the control plane only names it.
	CertificateSecret = "default"
	// TrustBundleSecret is the mesh's trusted roots, delivered by SDS.
	TrustBundleSecret = "ROOTCA"
)

// ControlPlaneIdentity is the identity path of the control plane's own
// certificate: spiffe://TRUST_DOMAIN/ns/weft-system/sa/control-plane.
const ControlPlaneIdentity = "/ns/weft-system/sa/control-plane"

// SPIFFEID builds a workload's SPIFFE ID.
func SPIFFEID(trustDomain, namespace, identity string) string {
	return "spiffe://" + trustDomain + "/ns/" + namespace + "/sa/" + identity
}

// Fixed resource names.
const (
	// OutboundListener is the name of the proxy's outbound HTTP listener.
	OutboundListener = "outbound"
	// OutboundRoutes is the RouteConfiguration the outbound listener uses
	// (through RDS): one virtual host per Service port.
	OutboundRoutes = "outbound"
)

// Protocols of a Service or inbound port.
const (
	ProtocolHTTP  = "HTTP"
	ProtocolHTTP2 = "HTTP2"
	ProtocolGRPC  = "GRPC"
	ProtocolTCP   = "TCP"
)

// NodeID is the node id a proxy uses on its ADS stream: workload.namespace.
func NodeID(workload, namespace string) string { return workload + "." + namespace }

// ServiceHost is the host name of a Service: name.namespace.
func ServiceHost(name, namespace string) string { return name + "." + namespace }

// OutboundCluster names the cluster of a Service port, in Istio's form:
// outbound|PORT||NAME.NAMESPACE.
func OutboundCluster(name, namespace string, port uint32) string {
	return fmt.Sprintf("outbound|%d||%s.%s", port, name, namespace)
}

// ParseOutboundCluster splits a name made by OutboundCluster.
func ParseOutboundCluster(cluster string) (name, namespace string, port uint32, ok bool) {
	parts := strings.Split(cluster, "|")
	if len(parts) != 4 || parts[0] != "outbound" || parts[2] != "" {
		return "", "", 0, false
	}
	p, err := strconv.ParseUint(parts[1], 10, 32)
	if err != nil {
		return "", "", 0, false
	}
	name, namespace, found := strings.Cut(parts[3], ".")
	if !found {
		return "", "", 0, false
	}
	return name, namespace, uint32(p), true
}

// OutboundTCPListener names the (unbound) listener that carries a
// Service's TCP port: outbound-tcp|PORT||NAME.NAMESPACE. Its TcpProxy says
// which cluster (or weighted clusters) a connection to NAME.NAMESPACE:PORT
// goes to.
func OutboundTCPListener(name, namespace string, port uint32) string {
	return fmt.Sprintf("outbound-tcp|%d||%s.%s", port, name, namespace)
}

// InboundCluster names the cluster that delivers to the local app port.
func InboundCluster(appPort uint32) string { return fmt.Sprintf("inbound|%d", appPort) }

// InboundListener names the listener of an inbound proxy port.
func InboundListener(port uint32) string { return fmt.Sprintf("inbound|%d", port) }

// UpstreamEnv is the environment variable through which weft-proxy tells
// its app the local address of an upstream: WEFT_UPSTREAM_ + the host in
// upper case, every character other than A-Z and 0-9 as _ (catalog.shop →
// WEFT_UPSTREAM_CATALOG_SHOP).
func UpstreamEnv(host string) string {
	var b strings.Builder
	b.WriteString("WEFT_UPSTREAM_")
	for _, r := range strings.ToUpper(host) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}
