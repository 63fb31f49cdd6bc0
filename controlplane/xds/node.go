package xds

import (
	"fmt"
	"net"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/controlplane/model"
)

// WorkloadFromNode reads the workload a proxy registers from its node.
func WorkloadFromNode(node *corev3.Node) (*model.Workload, error) {
	if node == nil {
		return nil, fmt.Errorf("xds: the first request carries no node")
	}
	md := node.GetMetadata().GetFields()
	str := func(k string) string { return md[k].GetStringValue() }
	w := &model.Workload{
		Name:         str(xdsmeta.MetaWorkload),
		Namespace:    str(xdsmeta.MetaNamespace),
		Address:      str(xdsmeta.MetaAddress),
		Outbound:     str(xdsmeta.MetaOutbound),
		ProxyVersion: str(xdsmeta.MetaProxyVersion),
		Identity:     str(xdsmeta.MetaIdentity),
		Labels:       map[string]string{},
	}
	if w.Name == "" || w.Namespace == "" {
		return nil, fmt.Errorf("xds: node %q has no %s/%s metadata: start proxies with weft-proxy (or set them in the Envoy bootstrap)",
			node.GetId(), xdsmeta.MetaWorkload, xdsmeta.MetaNamespace)
	}
	for _, m := range validation.IsDNS1123Label(w.Namespace) {
		return nil, fmt.Errorf("xds: node %q: namespace %q: %s", node.GetId(), w.Namespace, m)
	}
	for _, m := range validation.IsDNS1123Subdomain(w.Name) {
		return nil, fmt.Errorf("xds: node %q: workload %q: %s", node.GetId(), w.Name, m)
	}
	if w.Identity == "" {
		w.Identity = w.Name
	}
	for _, m := range validation.IsDNS1123Subdomain(w.Identity) {
		return nil, fmt.Errorf("xds: node %q: identity %q: %s", node.GetId(), w.Identity, m)
	}
	if want := xdsmeta.NodeID(w.Name, w.Namespace); node.GetId() != want {
		return nil, fmt.Errorf("xds: node id %q does not match its workload metadata (want %q)", node.GetId(), want)
	}
	if w.Address != "" && net.ParseIP(w.Address) == nil {
		return nil, fmt.Errorf("xds: node %q: %s %q is not an IP address", node.GetId(), xdsmeta.MetaAddress, w.Address)
	}
	if w.Outbound != "" {
		if _, _, err := net.SplitHostPort(w.Outbound); err != nil {
			return nil, fmt.Errorf("xds: node %q: %s %q: %v", node.GetId(), xdsmeta.MetaOutbound, w.Outbound, err)
		}
	}
	for k, v := range md[xdsmeta.MetaLabels].GetStructValue().GetFields() {
		w.Labels[k] = v.GetStringValue()
	}
	for i, v := range md[xdsmeta.MetaInbound].GetListValue().GetValues() {
		f := v.GetStructValue().GetFields()
		in := model.InboundPort{
			Port:       portOf(f[xdsmeta.InboundPort]),
			AppPort:    portOf(f[xdsmeta.InboundAppPort]),
			Protocol:   f[xdsmeta.InboundProtocol].GetStringValue(),
			AppAddress: f[xdsmeta.InboundAppAddress].GetStringValue(),
		}
		if in.AppAddress != "" && net.ParseIP(in.AppAddress) == nil {
			return nil, fmt.Errorf("xds: node %q: %s[%d].%s %q is not an IP address", node.GetId(), xdsmeta.MetaInbound, i, xdsmeta.InboundAppAddress, in.AppAddress)
		}
		if in.Protocol == "" {
			in.Protocol = xdsmeta.ProtocolHTTP
		}
		if in.Port == 0 || in.AppPort == 0 {
			return nil, fmt.Errorf("xds: node %q: %s[%d]: port and app_port must be between 1 and 65535", node.GetId(), xdsmeta.MetaInbound, i)
		}
		w.Inbound = append(w.Inbound, in)
	}
	return w, nil
}

func portOf(v *structpb.Value) uint32 {
	var n float64
	switch k := v.GetKind().(type) {
	case *structpb.Value_NumberValue:
		n = k.NumberValue
	case *structpb.Value_StringValue:
		p, err := strconv.ParseUint(k.StringValue, 10, 16)
		if err != nil {
			return 0
		}
		n = float64(p)
	default:
		return 0
	}
	if n < 1 || n > 65535 || n != float64(uint32(n)) {
		return 0
	}
	return uint32(n)
}
