package xdsresource

import (
	"errors"
	"fmt"

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
)

// decodeListener decodes an envoy.config.listener.v3.Listener.
func decodeListener(b []byte) (*Listener, error) {
	var (
		l      Listener
		addr   msg
		chains [][]byte
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
	if len(chains) != 1 {
		return nil, at("filter_chains", fmt.Errorf("want exactly 1 filter chain, have %d", len(chains)))
	}
	if l.HTTP, l.TCP, err = decodeFilterChain(chains[0]); err != nil {
		return nil, atIndex("filter_chains", 0, err)
	}
	return &l, nil
}

// decodeFilterChain decodes an envoy.config.listener.v3.FilterChain, which
// must hold exactly one network filter, an HTTP connection manager or a TCP
// proxy.
func decodeFilterChain(b []byte) (*HTTPConnectionManager, *TCPProxy, error) {
	var filters [][]byte
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			err = notSupported("filter_chain_match")
		case 3:
			var c []byte
			c, err = f.message()
			filters = append(filters, c)
			err = atIndex("filters", len(filters)-1, err)
		case 6:
			err = notSupported("transport_socket")
		}
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	if len(filters) != 1 {
		return nil, nil, at("filters", fmt.Errorf("want exactly 1 network filter, have %d", len(filters)))
	}
	hcm, tcp, err := decodeNetworkFilter(filters[0])
	return hcm, tcp, atIndex("filters", 0, err)
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
		}
		return err
	})
	if err != nil {
		return nil, err
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
	// Every filter but the router must be optional: the proxy has no other
	// HTTP filter.
	routers := 0
	for i, fb := range filters {
		router, err := decodeHTTPFilter(fb)
		if err != nil {
			return nil, atIndex("http_filters", i, err)
		}
		if router {
			routers++
			if routers > 1 {
				return nil, atIndex("http_filters", i, errors.New("duplicate router filter"))
			}
		}
	}
	if routers == 0 {
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
// envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter and
// reports whether it is the router. Any other filter is an error unless it is
// optional (is_optional), in which case the proxy ignores it.
func decodeHTTPFilter(b []byte) (router bool, err error) {
	var (
		name               string
		config             oneof
		optional, disabled bool
	)
	err = walk(b, func(f field) error {
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
		return false, err
	}
	if name == "" {
		return false, at("name", errEmpty)
	}
	what := fmt.Sprintf("filter %q", name)
	switch config.num {
	case 0:
		router = name == routerFilter
	case 4:
		a, err := decodeAny(config.f.b)
		if err != nil {
			return false, at("typed_config", err)
		}
		router = typeName(a.typeURL) == routerMessage
		what = fmt.Sprintf("filter %q of type %q", name, a.typeURL)
	}
	switch {
	case router && disabled:
		return false, at("disabled", errors.New("the router filter cannot be disabled"))
	case router, optional:
		return router, nil
	case config.num == 5:
		return false, notSupported("config_discovery")
	}
	return false, fmt.Errorf("%s: %w", what, errNotSupported)
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
		return nil, at("cluster", errMissing)
	case 10:
		return nil, notSupported("weighted_clusters")
	}
	if tcp.Cluster, err = cluster.f.string(); err != nil {
		return nil, at("cluster", err)
	}
	if tcp.Cluster == "" {
		return nil, at("cluster", errEmpty)
	}
	return &tcp, nil
}
