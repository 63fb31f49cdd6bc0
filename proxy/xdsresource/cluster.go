package xdsresource

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

const (
	// httpOptionsKey is the typed_extension_protocol_options key of the
	// upstream HTTP options, and httpOptionsMessage their message.
	httpOptionsKey     = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	httpOptionsMessage = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

	// defaultConnectTimeout is Envoy's connect_timeout when none is set.
	defaultConnectTimeout = 5 * time.Second
)

// Values of the envoy.config.cluster.v3.Cluster enums.
var (
	discoveryTypes = map[int32]DiscoveryType{0: DiscoveryStatic, 3: DiscoveryEDS}
	lbPolicies     = map[int32]LBPolicy{
		0: LBRoundRobin,
		1: LBLeastRequest,
		2: LBRingHash,
		3: LBRandom,
		5: LBMaglev,
	}
)

// decodeCluster decodes an envoy.config.cluster.v3.Cluster.
func decodeCluster(b []byte) (*Cluster, error) {
	var (
		c               Cluster
		discovery       oneof
		eds             msg
		connectTimeout  msg
		loadAssignment  msg
		deprecatedH2    bool
		httpOptions     []byte // the Any under httpOptionsKey
		hasHTTPOptions  bool
		lbPolicy        int32
		protocolSelect  int32
		transportSocket msg
		lbConfig        oneof
		circuitBreakers msg
		outlier         msg
		commonHTTP      msg
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			c.Name, err = f.string()
			err = at("name", err)
		case 2: // type
			err = discovery.scalar(f, protowire.VarintType)
		case 38: // cluster_type
			err = discovery.message(f)
		case 3:
			err = at("eds_cluster_config", eds.add(f))
		case 4:
			err = at("connect_timeout", connectTimeout.add(f))
		case 6:
			lbPolicy, err = f.int32()
			err = at("lb_policy", err)
		case 33:
			err = at("load_assignment", loadAssignment.add(f))
		case 14:
			_, err = f.message()
			deprecatedH2 = true
			err = at("http2_protocol_options", err)
		case 36:
			var key string
			var value []byte
			if key, value, err = decodeMapEntry(f); err != nil {
				return at("typed_extension_protocol_options", err)
			}
			if key == httpOptionsKey {
				// A later entry replaces an earlier one.
				httpOptions, hasHTTPOptions = value, true
			}
		case 26:
			protocolSelect, err = f.int32()
			err = at("protocol_selection", err)
		case 24:
			err = at("transport_socket", transportSocket.add(f))
		case 43:
			err = notSupported("transport_socket_matches")
		case 59:
			err = notSupported("transport_socket_matcher")
		case 41:
			err = notSupported("load_balancing_policy")
		case 23, 34, 37, 52, 56: // ring_hash_lb_config, original_dst_lb_config, least_request_lb_config, maglev_lb_config, round_robin_lb_config
			err = lbConfig.message(f)
		case 10:
			err = at("circuit_breakers", circuitBreakers.add(f))
		case 19:
			err = at("outlier_detection", outlier.add(f))
		case 29:
			err = at("common_http_protocol_options", commonHTTP.add(f))
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if c.Name == "" {
		return nil, at("name", errEmpty)
	}

	switch discovery.num {
	case 0:
		c.Discovery = DiscoveryStatic // the proto3 default
	case 2:
		t, _ := discovery.f.int32()
		var ok bool
		if c.Discovery, ok = discoveryTypes[t]; !ok {
			return nil, at("type", fmt.Errorf("%s: %w", enumName(t, clusterTypeNames), errNotSupported))
		}
	case 38:
		return nil, notSupported("cluster_type")
	}

	if eds.set && c.Discovery == DiscoveryEDS {
		if c.EDSServiceName, err = decodeEDSConfig(eds.b); err != nil {
			return nil, at("eds_cluster_config", err)
		}
	}

	c.ConnectTimeout = defaultConnectTimeout
	if connectTimeout.set {
		c.ConnectTimeout, err = decodeDuration(connectTimeout.b)
		if err == nil && c.ConnectTimeout <= 0 {
			err = errors.New("must be positive")
		}
		if err != nil {
			return nil, at("connect_timeout", err)
		}
	}

	var ok bool
	if c.LBPolicy, ok = lbPolicies[lbPolicy]; !ok {
		return nil, at("lb_policy", fmt.Errorf("%s: %w", enumName(lbPolicy, lbPolicyNames), errNotSupported))
	}

	if err := decodeLBConfig(lbConfig, &c); err != nil {
		return nil, err
	}
	c.CircuitBreakers = defaultCircuitBreakers()
	if circuitBreakers.set {
		if c.CircuitBreakers, err = decodeCircuitBreakers(circuitBreakers.b); err != nil {
			return nil, at("circuit_breakers", err)
		}
	}
	if outlier.set {
		if c.Outlier, err = decodeOutlierDetection(outlier.b); err != nil {
			return nil, at("outlier_detection", err)
		}
	}

	if protocolSelect != 0 { // USE_CONFIGURED_PROTOCOL
		return nil, at("protocol_selection", fmt.Errorf("USE_DOWNSTREAM_PROTOCOL: %w", errNotSupported))
	}
	if hasHTTPOptions {
		if deprecatedH2 {
			return nil, at("http2_protocol_options", fmt.Errorf("cannot be used with typed_extension_protocol_options[%q]", httpOptionsKey))
		}
		if commonHTTP.set {
			return nil, at("common_http_protocol_options", errBothCommonHTTPOptions)
		}
		if c.HTTP2, c.IdleTimeout, err = decodeHTTPOptions(httpOptions); err != nil {
			return nil, atKey("typed_extension_protocol_options", httpOptionsKey, err)
		}
	}
	if commonHTTP.set {
		if c.IdleTimeout, err = decodeCommonHTTPOptions(commonHTTP.b); err != nil {
			return nil, at("common_http_protocol_options", err)
		}
	}
	c.HTTP2 = c.HTTP2 || deprecatedH2

	if transportSocket.set {
		context, tls, err := decodeTransportSocket(transportSocket.b, upstreamTLSMessage)
		if err == nil && tls {
			c.TLS, err = decodeUpstreamTLS(context)
			err = at("typed_config", err)
		}
		if err != nil {
			return nil, at("transport_socket", err)
		}
	}

	if loadAssignment.set && c.Discovery == DiscoveryStatic {
		// Unlike an EDS resource, an inline load_assignment may leave
		// cluster_name empty.
		if c.LoadAssignment, err = decodeClusterLoadAssignment(loadAssignment.b); err != nil {
			return nil, at("load_assignment", err)
		}
	}
	return &c, nil
}

var (
	clusterTypeNames = []string{"STATIC", "STRICT_DNS", "LOGICAL_DNS", "EDS", "ORIGINAL_DST"}
	lbPolicyNames    = []string{"ROUND_ROBIN", "LEAST_REQUEST", "RING_HASH", "RANDOM", "ORIGINAL_DST_LB", "MAGLEV", "CLUSTER_PROVIDED", "LOAD_BALANCING_POLICY_CONFIG"}
)

// enumName names enum value v, given the names of the values from 0 on.
func enumName(v int32, names []string) string {
	if v >= 0 && int(v) < len(names) {
		return names[v]
	}
	return fmt.Sprintf("value %d", v)
}

// decodeEDSConfig decodes an envoy.config.cluster.v3.Cluster.EdsClusterConfig
// into its service_name; the eds_config is ADS whatever it says.
func decodeEDSConfig(b []byte) (string, error) {
	var name string
	err := walk(b, func(f field) error {
		var err error
		if f.num == 2 {
			name, err = f.string()
			err = at("service_name", err)
		}
		return err
	})
	return name, err
}

// decodeHTTPOptions decodes the Any holding an
// envoy.extensions.upstreams.http.v3.HttpProtocolOptions: whether it
// configures HTTP/2, and common_http_protocol_options.idle_timeout.
func decodeHTTPOptions(b []byte) (http2 bool, idle time.Duration, err error) {
	a, err := decodeAny(b)
	if err != nil {
		return false, 0, err
	}
	if typeName(a.typeURL) != httpOptionsMessage {
		return false, 0, fmt.Errorf("type %q, want %q", a.typeURL, httpOptionsMessage)
	}
	var (
		protocol oneof
		common   msg
	)
	err = walk(a.value, func(f field) error {
		var err error
		switch f.num {
		case 1:
			err = at("common_http_protocol_options", common.add(f))
		case 3, 4, 5: // explicit_http_config, use_downstream_protocol_config, auto_config
			err = protocol.message(f)
		case 6:
			err = notSupported("http_filters")
		case 8:
			err = notSupported("outlier_detection")
		case 9:
			err = notSupported("request_mirror_policies")
		case 10:
			err = notSupported("hash_policy")
		case 11:
			err = notSupported("retry_policy")
		}
		return err
	})
	if err != nil {
		return false, 0, err
	}
	if common.set {
		if idle, err = decodeCommonHTTPOptions(common.b); err != nil {
			return false, 0, at("common_http_protocol_options", err)
		}
	}
	switch protocol.num {
	case 0:
		return false, 0, errors.New("one of explicit_http_config, use_downstream_protocol_config and auto_config must be set")
	case 4:
		return false, 0, notSupported("use_downstream_protocol_config")
	case 5:
		return false, 0, notSupported("auto_config")
	}

	var explicit oneof
	err = walk(protocol.f.b, func(f field) error {
		switch f.num {
		case 1, 2, 3: // http_protocol_options, http2_protocol_options, http3_protocol_options
			return explicit.message(f)
		}
		return nil
	})
	switch {
	case err != nil:
		return false, 0, at("explicit_http_config", err)
	case explicit.num == 0:
		return false, 0, at("explicit_http_config", errors.New("one of http_protocol_options and http2_protocol_options must be set"))
	case explicit.num == 3:
		return false, 0, at("explicit_http_config", notSupported("http3_protocol_options"))
	}
	return explicit.num == 2, idle, nil
}

// decodeLBConfig decodes the lb_config of a cluster (lbConfig) into c,
// whose LBPolicy is set. As Envoy, it ignores a config for another policy.
func decodeLBConfig(lbConfig oneof, c *Cluster) error {
	var err error
	switch {
	case lbConfig.num == 37 && c.LBPolicy == LBLeastRequest:
		err = at("least_request_lb_config", decodeLeastRequestConfig(lbConfig.f.b))
	case lbConfig.num == 23 && c.LBPolicy == LBRingHash:
		c.RingMin, c.RingMax, err = decodeRingHashConfig(lbConfig.f.b)
		err = at("ring_hash_lb_config", err)
	case lbConfig.num == 56 && c.LBPolicy == LBRoundRobin:
		err = at("round_robin_lb_config", decodeRoundRobinConfig(lbConfig.f.b))
	}
	return err
}
