package xdsresource

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// Decode decodes b, the serialized resource of type typeURL (the value of a
// google.protobuf.Any in a DiscoveryResponse), and validates it. v is a
// *Listener, *RouteConfiguration, *Cluster, *ClusterLoadAssignment or
// *Secret.
//
// The name is returned even when the resource is invalid, as long as it can
// be read, so that the caller can tell which resource it rejects.
func Decode(typeURL string, b []byte) (name string, v any, err error) {
	switch typeURL {
	case ListenerType:
		l, err := DecodeListener(b)
		if err != nil {
			return peekName(b), nil, err
		}
		return l.Name, l, nil
	case RouteType:
		rc, err := DecodeRouteConfiguration(b)
		if err != nil {
			return peekName(b), nil, err
		}
		return rc.Name, rc, nil
	case ClusterType:
		c, err := DecodeCluster(b)
		if err != nil {
			return peekName(b), nil, err
		}
		return c.Name, c, nil
	case EndpointType:
		cla, err := DecodeClusterLoadAssignment(b)
		if err != nil {
			return peekName(b), nil, err
		}
		return cla.ClusterName, cla, nil
	case SecretType:
		s, err := DecodeSecret(b)
		if err != nil {
			return peekName(b), nil, err
		}
		return s.Name, s, nil
	}
	return "", nil, fmt.Errorf("xdsresource: unsupported resource type %q", typeURL)
}

// DecodeListener decodes and validates a serialized
// envoy.config.listener.v3.Listener.
func DecodeListener(b []byte) (*Listener, error) {
	l, err := decodeListener(b)
	if err != nil {
		return nil, resourceError("listener", b, err)
	}
	return l, nil
}

// DecodeRouteConfiguration decodes and validates a serialized
// envoy.config.route.v3.RouteConfiguration.
func DecodeRouteConfiguration(b []byte) (*RouteConfiguration, error) {
	rc, err := decodeRouteConfiguration(b)
	if err == nil && rc.Name == "" {
		err = at("name", errEmpty)
	}
	if err != nil {
		return nil, resourceError("route", b, err)
	}
	return rc, nil
}

// DecodeCluster decodes and validates a serialized
// envoy.config.cluster.v3.Cluster.
func DecodeCluster(b []byte) (*Cluster, error) {
	c, err := decodeCluster(b)
	if err != nil {
		return nil, resourceError("cluster", b, err)
	}
	return c, nil
}

// DecodeClusterLoadAssignment decodes and validates a serialized
// envoy.config.endpoint.v3.ClusterLoadAssignment.
func DecodeClusterLoadAssignment(b []byte) (*ClusterLoadAssignment, error) {
	cla, err := decodeClusterLoadAssignment(b)
	if err == nil && cla.ClusterName == "" {
		err = at("cluster_name", errEmpty)
	}
	if err != nil {
		return nil, resourceError("endpoints", b, err)
	}
	return cla, nil
}

// DecodeSecret decodes and validates a serialized
// envoy.extensions.transport_sockets.tls.v3.Secret: a trusted CA bundle
// (validation_context.trusted_ca). Certificates and keys are refused: the
// proxy generates its own key.
func DecodeSecret(b []byte) (*Secret, error) {
	s, err := decodeSecret(b)
	if err != nil {
		return nil, resourceError("secret", b, err)
	}
	return s, nil
}

// resourceError names the resource encoded in b in err.
func resourceError(kind string, b []byte, err error) error {
	if name := peekName(b); name != "" {
		return fmt.Errorf("xdsresource: %s %q: %w", kind, name, err)
	}
	return fmt.Errorf("xdsresource: %s: %w", kind, err)
}

// peekName returns the name of the resource encoded in b, as far as it can
// be read: field 1 of all five resource types.
func peekName(b []byte) string {
	var name string
	_ = walk(b, func(f field) error {
		if f.num == 1 && f.typ == protowire.BytesType {
			if s, err := f.string(); err == nil {
				name = s
			}
		}
		return nil
	})
	return name
}
