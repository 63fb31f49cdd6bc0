package xdsresource

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/weftmesh/weft/api/xdsmeta"
)

// maxPriority is the highest endpoint priority Envoy accepts.
const maxPriority = 128

// decodeClusterLoadAssignment decodes an
// envoy.config.endpoint.v3.ClusterLoadAssignment. The cluster_name is not
// checked: an inline load_assignment may have none.
func decodeClusterLoadAssignment(b []byte) (*ClusterLoadAssignment, error) {
	var (
		cla        ClusterLoadAssignment
		localities int
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			cla.ClusterName, err = f.string()
			err = at("cluster_name", err)
		case 2:
			var lb []byte
			if lb, err = f.message(); err == nil {
				var eps []Endpoint
				eps, err = decodeLocalityEndpoints(lb)
				cla.Endpoints = append(cla.Endpoints, eps...)
			}
			err = atIndex("endpoints", localities, err)
			localities++
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &cla, nil
}

// decodeLocalityEndpoints decodes an
// envoy.config.endpoint.v3.LocalityLbEndpoints into its endpoints.
func decodeLocalityEndpoints(b []byte) ([]Endpoint, error) {
	var (
		locality    msg
		priority    uint32
		lbEndpoints [][]byte
		list        oneof // load_balancer_endpoints, leds_cluster_locality_config
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			err = at("locality", locality.add(f))
		case 2:
			var eb []byte
			eb, err = f.message()
			lbEndpoints = append(lbEndpoints, eb)
			err = atIndex("lb_endpoints", len(lbEndpoints)-1, err)
		case 5:
			priority, err = f.uint32()
			err = at("priority", err)
		case 7, 8:
			err = list.message(f)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if priority > maxPriority {
		return nil, at("priority", fmt.Errorf("%d exceeds %d", priority, maxPriority))
	}
	var loc Locality
	if locality.set {
		if loc, err = decodeLocality(locality.b); err != nil {
			return nil, at("locality", err)
		}
	}

	listName := "lb_endpoints"
	switch list.num {
	case 7:
		if len(lbEndpoints) > 0 {
			return nil, errors.New("lb_endpoints and load_balancer_endpoints are both set")
		}
		listName = "load_balancer_endpoints.lb_endpoints"
		err = walk(list.f.b, func(f field) error {
			if f.num != 1 {
				return nil
			}
			eb, err := f.message()
			lbEndpoints = append(lbEndpoints, eb)
			return atIndex("lb_endpoints", len(lbEndpoints)-1, err)
		})
		if err != nil {
			return nil, at("load_balancer_endpoints", err)
		}
	case 8:
		return nil, notSupported("leds_cluster_locality_config")
	}

	eps := make([]Endpoint, 0, len(lbEndpoints))
	for i, eb := range lbEndpoints {
		ep, err := decodeLbEndpoint(eb)
		if err != nil {
			return nil, atIndex(listName, i, err)
		}
		ep.Locality, ep.Priority = loc, priority
		eps = append(eps, ep)
	}
	return eps, nil
}

// decodeLocality decodes an envoy.config.core.v3.Locality.
func decodeLocality(b []byte) (Locality, error) {
	var l Locality
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			l.Region, err = f.string()
			err = at("region", err)
		case 2:
			l.Zone, err = f.string()
			err = at("zone", err)
		case 3:
			l.SubZone, err = f.string()
			err = at("sub_zone", err)
		}
		return err
	})
	return l, err
}

// decodeLbEndpoint decodes an envoy.config.endpoint.v3.LbEndpoint.
func decodeLbEndpoint(b []byte) (Endpoint, error) {
	var (
		ep       Endpoint
		host     oneof // endpoint, endpoint_name
		health   int32
		metadata msg
		weight   msg
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			err = host.message(f)
		case 5:
			err = host.scalar(f, protowire.BytesType)
		case 2:
			health, err = f.int32()
			err = at("health_status", err)
		case 3:
			err = at("metadata", metadata.add(f))
		case 4:
			err = at("load_balancing_weight", weight.add(f))
		}
		return err
	})
	if err != nil {
		return Endpoint{}, err
	}
	switch host.num {
	case 0:
		return Endpoint{}, at("endpoint", errMissing)
	case 5:
		return Endpoint{}, notSupported("endpoint_name")
	}
	if ep.Address, err = decodeEndpointAddress(host.f.b); err != nil {
		return Endpoint{}, at("endpoint", err)
	}
	if health < int32(HealthUnknown) || health > int32(HealthDegraded) {
		return Endpoint{}, at("health_status", fmt.Errorf("unknown value %d", health))
	}
	ep.Health = HealthStatus(health) // the values are Envoy's
	ep.Weight = 1
	if weight.set {
		ep.Weight, err = decodeUInt32Value(weight.b)
		if err == nil && ep.Weight == 0 {
			err = errors.New("must be at least 1")
		}
		if err != nil {
			return Endpoint{}, at("load_balancing_weight", err)
		}
	}
	if metadata.set {
		if ep.Metadata, err = decodeWeftMetadata(metadata.b); err != nil {
			return Endpoint{}, at("metadata", err)
		}
	}
	return ep, nil
}

// decodeEndpointAddress decodes an envoy.config.endpoint.v3.Endpoint into
// its address.
func decodeEndpointAddress(b []byte) (string, error) {
	var addr msg
	err := walk(b, func(f field) error {
		if f.num == 1 {
			return at("address", addr.add(f))
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if !addr.set {
		return "", at("address", errMissing)
	}
	hostport, err := decodeAddress(addr.b)
	return hostport, at("address", err)
}

// decodeWeftMetadata decodes an envoy.config.core.v3.Metadata into the
// string fields of its filter_metadata[xdsmeta.EndpointFilter], or nil when
// there are none.
func decodeWeftMetadata(b []byte) (map[string]string, error) {
	var (
		weft    []byte
		hasWeft bool
	)
	err := walk(b, func(f field) error {
		if f.num != 1 {
			return nil
		}
		key, value, err := decodeMapEntry(f)
		if err != nil {
			return at("filter_metadata", err)
		}
		if key == xdsmeta.EndpointFilter {
			weft, hasWeft = value, true // a later entry replaces an earlier one
		}
		return nil
	})
	if err != nil || !hasWeft {
		return nil, err
	}
	m, err := decodeStringFields(weft)
	if err != nil {
		return nil, atKey("filter_metadata", xdsmeta.EndpointFilter, err)
	}
	return m, nil
}

// decodeStringFields decodes a google.protobuf.Struct into its string
// fields, or nil when there are none. Other fields are left out.
func decodeStringFields(b []byte) (map[string]string, error) {
	var m map[string]string
	err := walk(b, func(f field) error {
		if f.num != 1 {
			return nil
		}
		key, value, err := decodeMapEntry(f)
		if err != nil {
			return at("fields", err)
		}
		s, ok, err := decodeStringValue(value)
		switch {
		case err != nil:
			return atKey("fields", key, err)
		case ok:
			if m == nil {
				m = make(map[string]string)
			}
			m[key] = s
		default:
			delete(m, key) // a later entry replaces an earlier one
		}
		return nil
	})
	if err != nil || len(m) == 0 {
		return nil, err
	}
	return m, nil
}

// decodeStringValue decodes a google.protobuf.Value and reports whether it
// is a string_value.
func decodeStringValue(b []byte) (s string, ok bool, err error) {
	var kind oneof
	err = walk(b, func(f field) error {
		switch f.num {
		case 1, 4: // null_value, bool_value
			return kind.scalar(f, protowire.VarintType)
		case 2: // number_value
			return kind.scalar(f, protowire.Fixed64Type)
		case 3: // string_value
			return kind.scalar(f, protowire.BytesType)
		case 5, 6: // struct_value, list_value
			return kind.message(f)
		}
		return nil
	})
	if err != nil || kind.num != 3 {
		return "", false, err
	}
	s, err = kind.f.string()
	return s, err == nil, at("string_value", err)
}
