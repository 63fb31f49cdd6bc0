package xdsresource

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
)

// Message names of the extensions a listener may use.
const (
	hcmMessage      = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
	tcpProxyMessage = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
	routerMessage   = "envoy.extensions.filters.http.router.v3.Router"
	// routerFilter is the router's name, for an http filter without a
	// typed_config.
	routerFilter = "envoy.filters.http.router"

	tlsInspectorMessage = "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"
	// tlsInspectorFilter is the TLS inspector's name, for a listener filter
	// without a typed_config.
	tlsInspectorFilter = "envoy.filters.listener.tls_inspector"
)

// decodeListener decodes an envoy.config.listener.v3.Listener.
func decodeListener(b []byte) (*Listener, error) {
	var (
		l               Listener
		addr            msg
		chains          [][]byte
		listenerFilters [][]byte
		bindToPort      msg
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			l.Name, err = f.string()
			err = at("name", err)
		case 2:
			err = at("address", addr.add(f))
		case 3:
			var c []byte
			c, err = f.message()
			chains = append(chains, c)
			err = atIndex("filter_chains", len(chains)-1, err)
		case 9:
			var c []byte
			c, err = f.message()
			listenerFilters = append(listenerFilters, c)
			err = atIndex("listener_filters", len(listenerFilters)-1, err)
		case 26:
			err = at("bind_to_port", bindToPort.add(f))
		case 25:
			err = notSupported("default_filter_chain")
		case 27:
			err = notSupported("internal_listener")
		case 32:
			err = notSupported("filter_chain_matcher")
		case 36:
			err = notSupported("fcds_config")
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if l.Name == "" {
		return nil, at("name", errEmpty)
	}
	if !addr.set {
		return nil, at("address", errMissing)
	}
	if l.Address, err = decodeAddress(addr.b); err != nil {
		return nil, at("address", err)
	}
	if bindToPort.set {
		bind, err := decodeBoolValue(bindToPort.b)
		if err != nil {
			return nil, at("bind_to_port", err)
		}
		l.NoBind = !bind
	}
	for i, fb := range listenerFilters {
		if err := decodeListenerFilter(fb); err != nil {
			return nil, atIndex("listener_filters", i, err)
		}
		l.TLSInspector = true
	}
	if len(chains) == 0 {
		return nil, at("filter_chains", errEmpty)
	}
	l.FilterChains = make([]FilterChain, len(chains))
	matched := make(map[string]int, len(chains)) // transport protocol → chain
	for i, cb := range chains {
		c := &l.FilterChains[i]
		if *c, err = decodeFilterChain(cb); err != nil {
			return nil, atIndex("filter_chains", i, err)
		}
		if err := checkChainMatch(c, l.TLSInspector, matched); err != nil {
			return nil, atIndex("filter_chains", i, err)
		}
		matched[c.TransportProtocol] = i
	}
	return &l, nil
}

// checkChainMatch checks filter chain c against the listener: its
// transport protocol is not matched by an earlier chain (matched: transport
// protocol → index), it can be detected, and c's transport socket agrees
// with it.
func checkChainMatch(c *FilterChain, tlsInspector bool, matched map[string]int) error {
	const path = "filter_chain_match.transport_protocol"
	if j, dup := matched[c.TransportProtocol]; dup {
		return at(path, fmt.Errorf("%q is also matched by filter_chains[%d]: each chain must match a different transport protocol", c.TransportProtocol, j))
	}
	if c.TransportProtocol != TransportAny && !tlsInspector {
		return at(path, fmt.Errorf("matching %q requires the %s listener filter", c.TransportProtocol, tlsInspectorFilter))
	}
	switch {
	case c.TransportProtocol == TransportTLS && c.TLS == nil:
		return at("transport_socket", fmt.Errorf("a chain that matches %q must terminate TLS (%s)", TransportTLS, tlsSocket))
	case c.TransportProtocol == TransportRawBuffer && c.TLS != nil:
		return at("transport_socket", fmt.Errorf("a chain that matches %q cannot terminate TLS", TransportRawBuffer))
	}
	return nil
}

// decodeListenerFilter decodes an envoy.config.listener.v3.ListenerFilter,
// which must be the TLS inspector: the proxy has no other.
func decodeListenerFilter(b []byte) error {
	var (
		name     string
		config   oneof
		disabled bool
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			name, err = f.string()
			err = at("name", err)
		case 3, 5: // typed_config, config_discovery
			err = config.message(f)
		case 4:
			_, err = f.message()
			disabled = true
			err = at("filter_disabled", err)
		}
		return err
	})
	switch {
	case err != nil:
		return err
	case name == "":
		return at("name", errEmpty)
	}
	switch config.num {
	case 0:
		if name != tlsInspectorFilter {
			return fmt.Errorf("listener filter %q: %w", name, errNotSupported)
		}
	case 3:
		a, err := decodeAny(config.f.b)
		if err != nil {
			return at("typed_config", err)
		}
		if typeName(a.typeURL) != tlsInspectorMessage {
			return at("typed_config", fmt.Errorf("listener filter %q of type %q: %w", name, a.typeURL, errNotSupported))
		}
		if err := decodeTLSInspector(a.value); err != nil {
			return at("typed_config", err)
		}
	case 5:
		return notSupported("config_discovery")
	}
	if disabled {
		return notSupported("filter_disabled")
	}
	return nil
}

// decodeTLSInspector decodes an
// envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector. The
// proxy takes what does not look like TLS as plaintext, and computes no
// fingerprints (ignoring them is harmless, as are the buffer sizes).
func decodeTLSInspector(b []byte) error {
	var closeOnError bool
	err := walk(b, func(f field) error {
		var err error
		if f.num == 4 {
			closeOnError, err = f.bool()
			err = at("close_connection_on_client_hello_parsing_errors", err)
		}
		return err
	})
	if err == nil && closeOnError {
		err = notSupported("close_connection_on_client_hello_parsing_errors")
	}
	return err
}

// decodeFilterChain decodes an envoy.config.listener.v3.FilterChain, which
// must hold exactly one network filter, an HTTP connection manager or a TCP
// proxy.
func decodeFilterChain(b []byte) (FilterChain, error) {
	var (
		c       FilterChain
		match   msg
		socket  msg
		filters [][]byte
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			err = at("filter_chain_match", match.add(f))
		case 3:
			var fb []byte
			fb, err = f.message()
			filters = append(filters, fb)
			err = atIndex("filters", len(filters)-1, err)
		case 6:
			err = at("transport_socket", socket.add(f))
		case 7:
			c.Name, err = f.string()
			err = at("name", err)
		}
		return err
	})
	if err != nil {
		return FilterChain{}, err
	}
	if match.set {
		if c.TransportProtocol, err = decodeFilterChainMatch(match.b); err != nil {
			return FilterChain{}, at("filter_chain_match", err)
		}
	}
	if socket.set {
		context, tls, err := decodeTransportSocket(socket.b, downstreamTLSMessage)
		if err == nil && tls {
			c.TLS, err = decodeDownstreamTLS(context)
			err = at("typed_config", err)
		}
		if err != nil {
			return FilterChain{}, at("transport_socket", err)
		}
	}
	if c.HTTP, c.TCP, err = decodeNetworkFilters(filters); err != nil {
		return FilterChain{}, err
	}
	return c, nil
}

// decodeFilterChainMatch decodes an
// envoy.config.listener.v3.FilterChainMatch into its transport_protocol:
// the proxy matches on nothing else.
func decodeFilterChainMatch(b []byte) (string, error) {
	var (
		protocol      string
		addressSuffix string
		sourceType    int32
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 9:
			protocol, err = f.string()
			err = at("transport_protocol", err)
		case 3:
			err = notSupported("prefix_ranges")
		case 4:
			addressSuffix, err = f.string()
			err = at("address_suffix", err)
		case 5:
			err = notSupported("suffix_len")
		case 6:
			err = notSupported("source_prefix_ranges")
		case 7:
			if packedNonEmpty(f) {
				err = notSupported("source_ports")
			}
		case 8:
			err = notSupported("destination_port")
		case 10:
			err = notSupported("application_protocols")
		case 11:
			err = notSupported("server_names")
		case 12:
			sourceType, err = f.int32()
			err = at("source_type", err)
		case 13:
			err = notSupported("direct_source_prefix_ranges")
		}
		return err
	})
	switch {
	case err != nil:
		return "", err
	case addressSuffix != "":
		return "", notSupported("address_suffix")
	case sourceType != 0: // ANY
		return "", notSupported("source_type")
	}
	switch protocol {
	case TransportAny, TransportTLS, TransportRawBuffer:
		return protocol, nil
	}
	return "", at("transport_protocol", fmt.Errorf("%q: %w (want %q or %q)", protocol, errNotSupported, TransportTLS, TransportRawBuffer))
}

// decodeNetworkFilters decodes the network filters of a chain: an HTTP
// connection manager, or a TCP proxy optionally preceded by network RBAC
// filters (envoy.filters.network.rbac, into TCPProxy.RBAC and its Then
// chain, in order).
func decodeNetworkFilters(filters [][]byte) (*HTTPConnectionManager, *TCPProxy, error) {
	var (
		first *NetworkRBAC
		last  **NetworkRBAC = &first
		n     int
	)
	for ; n < len(filters)-1; n++ {
		r, isRBAC, err := decodeNetworkRBACFilter(filters[n])
		switch {
		case err != nil:
			return nil, nil, atIndex("filters", n, err)
		case !isRBAC:
			return nil, nil, at("filters", fmt.Errorf("want exactly 1 network filter, have %d (more only as %s filters then a TCP proxy)", len(filters), NetworkFilterRBAC))
		}
		*last = r
		last = &r.Then
	}
	if len(filters)-n != 1 {
		return nil, nil, at("filters", fmt.Errorf("want exactly 1 network filter, have %d", len(filters)))
	}
	hcm, tcp, err := decodeNetworkFilter(filters[n])
	if err != nil {
		return nil, nil, atIndex("filters", n, err)
	}
	if first != nil {
		if tcp == nil {
			return nil, nil, atIndex("filters", 0, fmt.Errorf("%s is only supported before a TCP proxy", NetworkFilterRBAC))
		}
		tcp.RBAC = first
	}
	return hcm, tcp, nil
}

// decodeNetworkRBACFilter decodes an envoy.config.listener.v3.Filter that
// may be a network RBAC filter; isRBAC is false (and err nil) when it is
// not one.
func decodeNetworkRBACFilter(b []byte) (r *NetworkRBAC, isRBAC bool, err error) {
	var config oneof
	err = walk(b, func(f field) error {
		switch f.num {
		case 4, 5:
			return config.message(f)
		}
		return nil
	})
	if err != nil || config.num != 4 {
		return nil, false, err
	}
	a, err := decodeAny(config.f.b)
	if err != nil || typeName(a.typeURL) != networkRBACMessage {
		return nil, false, nil
	}
	r, err = decodeNetworkRBAC(a.value)
	return r, true, at("typed_config", err)
}

// decodeNetworkFilter decodes an envoy.config.listener.v3.Filter.
func decodeNetworkFilter(b []byte) (*HTTPConnectionManager, *TCPProxy, error) {
	var (
		name   string
		config oneof
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			name, err = f.string()
			err = at("name", err)
		case 4, 5: // typed_config, config_discovery
			err = config.message(f)
		}
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	if name == "" {
		return nil, nil, at("name", errEmpty)
	}
	switch config.num {
	case 0:
		return nil, nil, at("typed_config", errMissing)
	case 5:
		return nil, nil, notSupported("config_discovery")
	}
	a, err := decodeAny(config.f.b)
	if err != nil {
		return nil, nil, at("typed_config", err)
	}
	switch typeName(a.typeURL) {
	case hcmMessage:
		hcm, err := decodeHCM(a.value)
		return hcm, nil, at("typed_config", err)
	case tcpProxyMessage:
		tcp, err := decodeTCPProxy(a.value)
		return nil, tcp, at("typed_config", err)
	case networkRBACMessage:
		return nil, nil, fmt.Errorf("filter %q: %s must be followed by a TCP proxy", name, NetworkFilterRBAC)
	}
	return nil, nil, at("typed_config", fmt.Errorf("filter %q of type %q: %w", name, a.typeURL, errNotSupported))
}

// decodeHCM decodes an
// envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.
func decodeHCM(b []byte) (*HTTPConnectionManager, error) {
	var (
		hcm     HTTPConnectionManager
		routes  oneof
		filters [][]byte
		tracing msg
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 2:
			hcm.StatPrefix, err = f.string()
			err = at("stat_prefix", err)
		case 3, 4, 31: // rds, route_config, scoped_routes
			err = routes.message(f)
		case 5:
			var c []byte
			c, err = f.message()
			filters = append(filters, c)
			err = atIndex("http_filters", len(filters)-1, err)
		case 7:
			err = at("tracing", tracing.add(f))
		default:
			_, err = hcm.Normalization.decodeField(f)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if tracing.set {
		if hcm.Tracing, err = decodeTracing(tracing.b); err != nil {
			return nil, at("tracing", err)
		}
	}
	if hcm.StatPrefix == "" {
		return nil, at("stat_prefix", errEmpty)
	}
	switch routes.num {
	case 0:
		return nil, errors.New("one of rds and route_config must be set")
	case 3:
		if hcm.RouteConfigName, err = decodeRDS(routes.f.b); err != nil {
			return nil, at("rds", err)
		}
	case 4:
		if hcm.Routes, err = decodeRouteConfiguration(routes.f.b); err != nil {
			return nil, at("route_config", err)
		}
	case 31:
		return nil, notSupported("scoped_routes")
	}
	for i, fb := range filters {
		if err := decodeHTTPFilter(fb, &hcm); err != nil {
			return nil, atIndex("http_filters", i, err)
		}
	}
	if n := len(hcm.HTTPFilters); n == 0 || hcm.HTTPFilters[n-1] != FilterRouter {
		return nil, at("http_filters", fmt.Errorf("the router filter (%s) is required", routerFilter))
	}
	return &hcm, nil
}

// decodeRDS decodes an
// envoy.extensions.filters.network.http_connection_manager.v3.Rds into its
// route_config_name; the config_source is ADS whatever it says.
func decodeRDS(b []byte) (string, error) {
	var name string
	err := walk(b, func(f field) error {
		var err error
		if f.num == 2 {
			name, err = f.string()
			err = at("route_config_name", err)
		}
		return err
	})
	if err == nil && name == "" {
		err = at("route_config_name", errEmpty)
	}
	return name, err
}

// decodeHTTPFilter decodes an
// envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter
// and appends its name (FilterRouter, FilterFault, FilterLocalRateLimit,
// FilterRBAC, FilterJWTAuthn or FilterExtAuthz) to hcm.HTTPFilters; the
// authorization filters' configs go to hcm.Authz. Any other filter is an
// error unless it is optional (is_optional), in which case the proxy
// ignores it. The router must come last, and each filter at most once but
// RBAC and ext_authz, which may repeat. The fault filter's own config must
// inject nothing: faults are configured per route.
func decodeHTTPFilter(b []byte, hcm *HTTPConnectionManager) error {
	var (
		name               string
		config             oneof
		optional, disabled bool
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			name, err = f.string()
			err = at("name", err)
		case 4, 5: // typed_config, config_discovery
			err = config.message(f)
		case 6:
			optional, err = f.bool()
			err = at("is_optional", err)
		case 7:
			disabled, err = f.bool()
			err = at("disabled", err)
		}
		return err
	})
	if err != nil {
		return err
	}
	if name == "" {
		return at("name", errEmpty)
	}
	what := fmt.Sprintf("filter %q", name)
	var kind string // the filter the proxy implements, if any
	var a anyMsg
	switch config.num {
	case 0:
		switch name {
		case routerFilter:
			kind = FilterRouter
		case FilterFault, FilterLocalRateLimit, FilterRBAC, FilterJWTAuthn, FilterExtAuthz:
			return at("typed_config", errMissing)
		}
	case 4:
		if a, err = decodeAny(config.f.b); err != nil {
			return at("typed_config", err)
		}
		switch typeName(a.typeURL) {
		case routerMessage:
			kind = FilterRouter
		case faultMessage:
			kind = FilterFault
		case localRateLimitMessage:
			kind = FilterLocalRateLimit
		case httpRBACMessage:
			kind = FilterRBAC
		case jwtAuthnMessage:
			kind = FilterJWTAuthn
		case extAuthzMessage:
			kind = FilterExtAuthz
		}
		what = fmt.Sprintf("filter %q of type %q", name, a.typeURL)
	}
	if slices.Contains(hcm.HTTPFilters, FilterRouter) {
		if kind == FilterRouter {
			return errors.New("duplicate router filter")
		}
		return fmt.Errorf("%s follows the router filter, which must be last", what)
	}
	switch {
	case kind == FilterRouter && disabled:
		return at("disabled", errors.New("the router filter cannot be disabled"))
	case kind != "" && disabled:
		return notSupported("disabled")
	case kind == "" && optional:
		return nil
	case kind == "" && config.num == 5:
		return notSupported("config_discovery")
	case kind == "":
		return fmt.Errorf("%s: %w", what, errNotSupported)
	}
	// RBAC and ext_authz filters may repeat (docs/xds.md: a CUSTOM gate
	// and its authorizer per provider, then DENY, ALLOW and AUDIT).
	if kind != FilterRBAC && kind != FilterExtAuthz && slices.Contains(hcm.HTTPFilters, kind) {
		return fmt.Errorf("duplicate %s filter", kind)
	}
	switch kind {
	case FilterFault:
		fault, err := decodeHTTPFault(a.value)
		if err == nil && fault != nil {
			err = fmt.Errorf("a listener-wide fault: %w (set faults in the routes' typed_per_filter_config)", errNotSupported)
		}
		if err != nil {
			return at("typed_config", err)
		}
	case FilterLocalRateLimit:
		rl, err := decodeLocalRateLimit(a.value)
		if err != nil {
			return at("typed_config", err)
		}
		if rl.Bucket != nil {
			hcm.RateLimit = rl
		}
	case FilterRBAC, FilterJWTAuthn, FilterExtAuthz:
		if err := decodeAuthzHTTPFilter(kind, a.value, hcm); err != nil {
			return at("typed_config", err)
		}
	}
	hcm.HTTPFilters = append(hcm.HTTPFilters, kind)
	return nil
}

// decodeTCPProxy decodes an
// envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.
func decodeTCPProxy(b []byte) (*TCPProxy, error) {
	var (
		tcp     TCPProxy
		cluster oneof
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			tcp.StatPrefix, err = f.string()
			err = at("stat_prefix", err)
		case 2: // cluster
			err = cluster.scalar(f, protowire.BytesType)
		case 10: // weighted_clusters
			err = cluster.message(f)
		case 9:
			err = notSupported("metadata_match")
		case 12:
			err = notSupported("tunneling_config")
		case 14:
			err = notSupported("on_demand")
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if tcp.StatPrefix == "" {
		return nil, at("stat_prefix", errEmpty)
	}
	switch cluster.num {
	case 0:
		return nil, errors.New("one of cluster and weighted_clusters must be set")
	case 10:
		if tcp.Clusters, err = decodeTCPWeightedClusters(cluster.f.b); err != nil {
			return nil, at("weighted_clusters", err)
		}
		return &tcp, nil
	}
	if tcp.Cluster, err = cluster.f.string(); err != nil {
		return nil, at("cluster", err)
	}
	if tcp.Cluster == "" {
		return nil, at("cluster", errEmpty)
	}
	return &tcp, nil
}

// decodeTCPWeightedClusters decodes an
// envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster.
// As Envoy, it requires every weight to be at least 1.
func decodeTCPWeightedClusters(b []byte) ([]WeightedCluster, error) {
	var clusters []WeightedCluster
	err := walk(b, func(f field) error {
		if f.num != 1 {
			return nil
		}
		i := len(clusters)
		cb, err := f.message()
		if err == nil {
			var c WeightedCluster
			c, err = decodeTCPClusterWeight(cb)
			clusters = append(clusters, c)
		}
		return atIndex("clusters", i, err)
	})
	if err != nil {
		return nil, err
	}
	if len(clusters) == 0 {
		return nil, at("clusters", errEmpty)
	}
	var total uint64
	for _, c := range clusters {
		total += uint64(c.Weight)
	}
	if total > math.MaxUint32 {
		return nil, at("clusters", fmt.Errorf("sum of weights %d overflows uint32", total))
	}
	return clusters, nil
}

// decodeTCPClusterWeight decodes an
// envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster.ClusterWeight.
func decodeTCPClusterWeight(b []byte) (WeightedCluster, error) {
	var c WeightedCluster
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			c.Name, err = f.string()
			err = at("name", err)
		case 2:
			c.Weight, err = f.uint32()
			err = at("weight", err)
		case 3:
			err = notSupported("metadata_match")
		}
		return err
	})
	switch {
	case err != nil:
		return WeightedCluster{}, err
	case c.Name == "":
		return WeightedCluster{}, at("name", errEmpty)
	case c.Weight == 0:
		return WeightedCluster{}, at("weight", errors.New("must be at least 1"))
	}
	return c, nil
}
