package xdsresource

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"regexp/syntax"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// decodeRouteConfiguration decodes an envoy.config.route.v3.RouteConfiguration.
// The name is not checked: an inline route_config may have none.
func decodeRouteConfiguration(b []byte) (*RouteConfiguration, error) {
	var rc RouteConfiguration
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			rc.Name, err = f.string()
			err = at("name", err)
		case 2:
			i := len(rc.VirtualHosts)
			var vb []byte
			if vb, err = f.message(); err == nil {
				var vh VirtualHost
				vh, err = decodeVirtualHost(vb)
				rc.VirtualHosts = append(rc.VirtualHosts, vh)
			}
			err = atIndex("virtual_hosts", i, err)
		case 9:
			err = notSupported("vhds")
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	// As Envoy, refuse a domain served by two virtual hosts: which one
	// would win is not said.
	seen := make(map[string]int)
	for i, vh := range rc.VirtualHosts {
		for j, d := range vh.Domains {
			d = strings.ToLower(d)
			if k, dup := seen[d]; dup {
				return nil, atIndex("virtual_hosts", i, atIndex("domains", j,
					fmt.Errorf("duplicate domain %q, also in virtual_hosts[%d]", d, k)))
			}
			seen[d] = i
		}
	}
	return &rc, nil
}

// decodeVirtualHost decodes an envoy.config.route.v3.VirtualHost.
func decodeVirtualHost(b []byte) (VirtualHost, error) {
	var (
		vh         VirtualHost
		requireTLS int32
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			vh.Name, err = f.string()
			err = at("name", err)
		case 2:
			var d string
			d, err = f.string()
			vh.Domains = append(vh.Domains, d)
			err = atIndex("domains", len(vh.Domains)-1, err)
		case 3:
			i := len(vh.Routes)
			var rb []byte
			if rb, err = f.message(); err == nil {
				var r Route
				r, err = decodeRoute(rb)
				vh.Routes = append(vh.Routes, r)
			}
			err = atIndex("routes", i, err)
		case 4:
			requireTLS, err = f.int32()
			err = at("require_tls", err)
		case 21:
			err = notSupported("matcher")
		}
		return err
	})
	switch {
	case err != nil:
		return VirtualHost{}, err
	case vh.Name == "":
		return VirtualHost{}, at("name", errEmpty)
	case len(vh.Domains) == 0:
		return VirtualHost{}, at("domains", errors.New("at least one domain is required"))
	case requireTLS != 0:
		return VirtualHost{}, notSupported("require_tls")
	}
	for i, d := range vh.Domains {
		if d == "" {
			return VirtualHost{}, atIndex("domains", i, errEmpty)
		}
	}
	return vh, nil
}

// decodeRoute decodes an envoy.config.route.v3.Route.
func decodeRoute(b []byte) (Route, error) {
	var (
		r                         Route
		match                     msg
		action                    oneof
		bufferLimit, bodyLimit    msg
		requestAdd, responseAdd   [][]byte
		requestDrop, responseDrop []string
		filterConfigs             map[string][]byte
	)
	// addHeader collects an entry of a repeated HeaderValueOption field.
	addHeader := func(list *[][]byte, name string, f field) error {
		hb, err := f.message()
		*list = append(*list, hb)
		return atIndex(name, len(*list)-1, err)
	}
	dropHeader := func(list *[]string, name string, f field) error {
		h, err := f.string()
		*list = append(*list, h)
		return atIndex(name, len(*list)-1, err)
	}
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 14:
			r.Name, err = f.string()
			err = at("name", err)
		case 1:
			err = at("match", match.add(f))
		case 2, 3, 7, 17, 18: // route, redirect, direct_response, filter_action, non_forwarding_action
			err = action.message(f)
		case 9:
			err = addHeader(&requestAdd, "request_headers_to_add", f)
		case 10:
			err = addHeader(&responseAdd, "response_headers_to_add", f)
		case 11:
			err = dropHeader(&responseDrop, "response_headers_to_remove", f)
		case 12:
			err = dropHeader(&requestDrop, "request_headers_to_remove", f)
		case 13:
			var key string
			var value []byte
			if key, value, err = decodeMapEntry(f); err != nil {
				return at("typed_per_filter_config", err)
			}
			if filterConfigs == nil {
				filterConfigs = make(map[string][]byte)
			}
			filterConfigs[key] = value // a later entry replaces an earlier one
		case 16:
			err = at("per_request_buffer_limit_bytes", bufferLimit.add(f))
		case 20:
			err = at("request_body_buffer_limit", bodyLimit.add(f))
		case 21:
			err = notSupported("route_specifiers")
		}
		return err
	})
	if err != nil {
		return Route{}, err
	}
	if !match.set {
		return Route{}, at("match", errMissing)
	}
	if r.Match, r.GRPCOnly, err = decodeRouteMatch(match.b); err != nil {
		return Route{}, at("match", err)
	}
	switch action.num {
	case 0:
		return Route{}, errors.New("an action (route, redirect or direct_response) is required")
	case 2:
		r.Action, err = decodeRouteAction(action.f.b, &r.RouteExtras)
		err = at("route", err)
	case 3:
		r.Redirect, err = decodeRedirect(action.f.b)
		err = at("redirect", err)
	case 7:
		r.Action, err = decodeDirectResponse(action.f.b)
		err = at("direct_response", err)
	case 17:
		err = notSupported("filter_action")
	case 18:
		err = notSupported("non_forwarding_action")
	}
	if err != nil {
		return Route{}, err
	}
	if r.RequestHeaders, err = decodeHeaderMutation(requestAdd, requestDrop, "request_headers_to_add", "request_headers_to_remove"); err != nil {
		return Route{}, err
	}
	if r.ResponseHeaders, err = decodeHeaderMutation(responseAdd, responseDrop, "response_headers_to_add", "response_headers_to_remove"); err != nil {
		return Route{}, err
	}
	if r.BufferLimit, err = decodeBufferLimit(bufferLimit, bodyLimit); err != nil {
		return Route{}, err
	}
	if err := decodePerFilterConfigs(filterConfigs, &r.RouteExtras); err != nil {
		return Route{}, err
	}
	return r, nil
}

// decodeHeaderMutation decodes the HeaderValueOptions of the field addName
// and the header names of the field dropName.
func decodeHeaderMutation(add [][]byte, drop []string, addName, dropName string) (HeaderMutation, error) {
	var m HeaderMutation
	for i, hb := range add {
		h, err := decodeHeaderValueOption(hb)
		if err != nil {
			return HeaderMutation{}, atIndex(addName, i, err)
		}
		m.Add = append(m.Add, h)
	}
	for i, name := range drop {
		if err := checkModifiableHeader(name); err != nil {
			return HeaderMutation{}, atIndex(dropName, i, err)
		}
		m.Remove = append(m.Remove, strings.ToLower(name))
	}
	return m, nil
}

// decodeBufferLimit decodes a Route's per_request_buffer_limit_bytes or its
// successor request_body_buffer_limit (at most one may be set).
func decodeBufferLimit(perRequest, body msg) (uint32, error) {
	switch {
	case perRequest.set && body.set:
		return 0, errors.New("per_request_buffer_limit_bytes and request_body_buffer_limit cannot both be set")
	case body.set:
		v, err := decodeUInt64Value(body.b)
		if err == nil && v > math.MaxUint32 {
			err = fmt.Errorf("%d: %w (at most %d)", v, errNotSupported, uint32(math.MaxUint32))
		}
		return uint32(v), at("request_body_buffer_limit", err)
	}
	v, err := optUInt32(perRequest, 0)
	return v, at("per_request_buffer_limit_bytes", err)
}

// decodeRouteMatch decodes an envoy.config.route.v3.RouteMatch. Conditions
// the proxy cannot evaluate are errors: ignoring one would match more
// requests than the route is meant for.
func decodeRouteMatch(b []byte) (m RouteMatch, grpc bool, err error) {
	var (
		path          oneof
		caseSensitive msg
		grpcOptions   msg
	)
	err = walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1, 2, 14: // prefix, path, path_separated_prefix
			err = path.scalar(f, protowire.BytesType)
		case 10, 12, 15: // safe_regex, connect_matcher, path_match_policy
			err = path.message(f)
		case 4:
			err = at("case_sensitive", caseSensitive.add(f))
		case 6:
			i := len(m.Headers)
			var hb []byte
			if hb, err = f.message(); err == nil {
				var h HeaderMatcher
				h, err = decodeHeaderMatcher(hb)
				m.Headers = append(m.Headers, h)
			}
			err = atIndex("headers", i, err)
		case 7:
			i := len(m.QueryParams)
			var qb []byte
			if qb, err = f.message(); err == nil {
				var q QueryParamMatcher
				q, err = decodeQueryParamMatcher(qb)
				m.QueryParams = append(m.QueryParams, q)
			}
			err = atIndex("query_parameters", i, err)
		case 8:
			err = at("grpc", grpcOptions.add(f))
		case 9:
			err = notSupported("runtime_fraction")
		case 11:
			err = notSupported("tls_context")
		case 13:
			err = notSupported("dynamic_metadata")
		case 16:
			err = notSupported("filter_state")
		case 17:
			err = notSupported("cookies")
		}
		return err
	})
	if err != nil {
		return RouteMatch{}, false, err
	}
	m.CaseSensitive = true
	if caseSensitive.set {
		if m.CaseSensitive, err = decodeBoolValue(caseSensitive.b); err != nil {
			return RouteMatch{}, false, at("case_sensitive", err)
		}
	}
	switch path.num {
	case 0:
		return RouteMatch{}, false, errors.New("a path specifier (prefix, path, safe_regex or path_separated_prefix) is required")
	case 1:
		m.PathKind = PathPrefix
		m.Path, err = path.f.string()
		err = at("prefix", err)
	case 2:
		m.PathKind = PathExact
		m.Path, err = path.f.string()
		err = at("path", err)
	case 10:
		m.PathKind = PathRegex
		m.PathRegex, err = decodeRegexMatcher(path.f.b)
		err = at("safe_regex", err)
	case 12:
		err = notSupported("connect_matcher")
	case 14:
		m.PathKind = PathSeparatedPrefix
		if m.Path, err = path.f.string(); err == nil {
			err = checkPathSeparatedPrefix(m.Path)
		}
		err = at("path_separated_prefix", err)
	case 15:
		err = notSupported("path_match_policy")
	}
	if err != nil {
		return RouteMatch{}, false, err
	}
	return m, grpcOptions.set, nil
}

// checkPathSeparatedPrefix applies Envoy's rule for path_separated_prefix:
// no query or fragment, and no trailing slash.
func checkPathSeparatedPrefix(p string) error {
	switch {
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("%q does not start with /", p)
	case len(p) < 2, strings.HasSuffix(p, "/"):
		return fmt.Errorf("%q must not end with /", p)
	case strings.ContainsAny(p, "?#"):
		return fmt.Errorf("%q must not contain ? or #", p)
	}
	return nil
}

// decodeHeaderMatcher decodes an envoy.config.route.v3.HeaderMatcher,
// including its deprecated *_match fields.
func decodeHeaderMatcher(b []byte) (HeaderMatcher, error) {
	var (
		h              HeaderMatcher
		spec           oneof
		missingAsEmpty bool
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			h.Name, err = f.string()
			err = at("name", err)
		case 4, 9, 10, 12: // exact_match, prefix_match, suffix_match, contains_match
			err = spec.scalar(f, protowire.BytesType)
		case 7: // present_match
			err = spec.scalar(f, protowire.VarintType)
		case 6, 11, 13: // range_match, safe_regex_match, string_match
			err = spec.message(f)
		case 8:
			h.Invert, err = f.bool()
			err = at("invert_match", err)
		case 14:
			missingAsEmpty, err = f.bool()
			err = at("treat_missing_header_as_empty", err)
		}
		return err
	})
	if err != nil {
		return HeaderMatcher{}, err
	}
	if err := checkHeaderName(h.Name); err != nil {
		return HeaderMatcher{}, at("name", err)
	}
	h.Name = strings.ToLower(h.Name)
	if missingAsEmpty {
		return HeaderMatcher{}, notSupported("treat_missing_header_as_empty")
	}
	var (
		name string
		kind StringMatchKind
	)
	switch spec.num {
	case 0:
		// As Envoy: no specifier matches when the header is present.
		h.Present = true
		return h, nil
	case 7:
		// present_match: false matches when the header is absent.
		present, _ := spec.f.bool()
		h.Present = true
		h.Invert = h.Invert != !present
		return h, nil
	case 6:
		return HeaderMatcher{}, notSupported("range_match")
	case 11:
		h.String.Kind = MatchRegex
		if h.String.Regex, err = decodeRegexMatcher(spec.f.b); err != nil {
			return HeaderMatcher{}, at("safe_regex_match", err)
		}
		return h, nil
	case 13:
		if h.String, err = decodeStringMatcher(spec.f.b); err != nil {
			return HeaderMatcher{}, at("string_match", err)
		}
		return h, nil
	case 4:
		name, kind = "exact_match", MatchExact
	case 9:
		name, kind = "prefix_match", MatchPrefix
	case 10:
		name, kind = "suffix_match", MatchSuffix
	case 12:
		name, kind = "contains_match", MatchContains
	}
	h.String.Kind = kind
	if h.String.Value, err = spec.f.string(); err != nil {
		return HeaderMatcher{}, at(name, err)
	}
	if h.String.Value == "" && kind != MatchExact {
		return HeaderMatcher{}, at(name, errEmpty)
	}
	return h, nil
}

// checkHeaderName applies Envoy's (lax) rule for header names.
func checkHeaderName(name string) error {
	if name == "" {
		return errEmpty
	}
	if strings.ContainsAny(name, "\x00\r\n") {
		return fmt.Errorf("%q: invalid header name", name)
	}
	return nil
}

// decodeQueryParamMatcher decodes an envoy.config.route.v3.QueryParameterMatcher.
func decodeQueryParamMatcher(b []byte) (QueryParamMatcher, error) {
	var (
		q    QueryParamMatcher
		spec oneof
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			q.Name, err = f.string()
			err = at("name", err)
		case 5: // string_match
			err = spec.message(f)
		case 6: // present_match
			err = spec.scalar(f, protowire.VarintType)
		}
		return err
	})
	if err != nil {
		return QueryParamMatcher{}, err
	}
	if q.Name == "" {
		return QueryParamMatcher{}, at("name", errEmpty)
	}
	switch spec.num {
	case 0:
		q.Present = true
	case 5:
		q.String, err = decodeStringMatcher(spec.f.b)
		err = at("string_match", err)
	case 6:
		if present, _ := spec.f.bool(); !present {
			err = at("present_match", fmt.Errorf("false (match when absent): %w", errNotSupported))
		}
		q.Present = true
	}
	if err != nil {
		return QueryParamMatcher{}, err
	}
	return q, nil
}

// decodeStringMatcher decodes an envoy.type.matcher.v3.StringMatcher. As in
// Envoy, ignore_case does not apply to safe_regex (use (?i) in the regex),
// so IgnoreCase is false for MatchRegex.
func decodeStringMatcher(b []byte) (StringMatch, error) {
	var (
		s       StringMatch
		pattern oneof
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1, 2, 3, 7: // exact, prefix, suffix, contains
			err = pattern.scalar(f, protowire.BytesType)
		case 5, 8: // safe_regex, custom
			err = pattern.message(f)
		case 6:
			s.IgnoreCase, err = f.bool()
			err = at("ignore_case", err)
		}
		return err
	})
	if err != nil {
		return StringMatch{}, err
	}
	var name string
	switch pattern.num {
	case 0:
		return StringMatch{}, errors.New("a match pattern (exact, prefix, suffix, contains or safe_regex) is required")
	case 5:
		s.Kind, s.IgnoreCase = MatchRegex, false
		if s.Regex, err = decodeRegexMatcher(pattern.f.b); err != nil {
			return StringMatch{}, at("safe_regex", err)
		}
		return s, nil
	case 8:
		return StringMatch{}, notSupported("custom")
	case 1:
		name, s.Kind = "exact", MatchExact
	case 2:
		name, s.Kind = "prefix", MatchPrefix
	case 3:
		name, s.Kind = "suffix", MatchSuffix
	case 7:
		name, s.Kind = "contains", MatchContains
	}
	if s.Value, err = pattern.f.string(); err != nil {
		return StringMatch{}, at(name, err)
	}
	if s.Value == "" && s.Kind != MatchExact {
		return StringMatch{}, at(name, errEmpty)
	}
	return s, nil
}

// decodeRegexMatcher decodes an envoy.type.matcher.v3.RegexMatcher and
// compiles its regex (RE2 syntax) to match whole values.
func decodeRegexMatcher(b []byte) (*regexp.Regexp, error) {
	var expr string
	err := walk(b, func(f field) error {
		var err error
		if f.num == 2 {
			expr, err = f.string()
			err = at("regex", err)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if expr == "" {
		return nil, at("regex", errEmpty)
	}
	// Check the expression alone first: wrapping an unbalanced one such as
	// "a)|(b" could make it valid, with another meaning.
	if _, err := syntax.Parse(expr, syntax.Perl); err != nil {
		return nil, fmt.Errorf("invalid regex: %w", err)
	}
	re, err := regexp.Compile("^(?:" + expr + ")$")
	if err != nil {
		return nil, fmt.Errorf("invalid regex: %w", err)
	}
	return re, nil
}

// decodeRouteAction decodes an envoy.config.route.v3.RouteAction into its
// RouteAction and, for its traffic-management fields, x. Fields that would
// change where or how a request is sent, and that the proxy cannot honour
// (other rewrites, subset selection), are errors.
func decodeRouteAction(b []byte, x *RouteExtras) (RouteAction, error) {
	var (
		a            RouteAction
		cluster      oneof
		hostRewrite  oneof
		timeout      msg
		retry        msg
		regexRewrite msg
		pathRewrite  string
		mirrors      [][]byte
		hashPolicies [][]byte
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1, 2, 37: // cluster, cluster_header, cluster_specifier_plugin
			err = cluster.scalar(f, protowire.BytesType)
		case 3, 39: // weighted_clusters, inline_cluster_specifier_plugin
			err = cluster.message(f)
		case 8:
			err = at("timeout", timeout.add(f))
		case 4:
			err = notSupported("metadata_match")
		case 5:
			x.PrefixRewrite, err = f.string()
			err = at("prefix_rewrite", err)
		case 45:
			pathRewrite, err = f.string()
			err = at("path_rewrite", err)
		case 32:
			err = at("regex_rewrite", regexRewrite.add(f))
		case 41:
			err = notSupported("path_rewrite_policy")
		case 6, 29: // host_rewrite_literal, host_rewrite_header
			err = hostRewrite.scalar(f, protowire.BytesType)
		case 7, 35, 44: // auto_host_rewrite, host_rewrite_path_regex, host_rewrite
			err = hostRewrite.message(f)
		case 9:
			err = at("retry_policy", retry.add(f))
		case 33:
			err = notSupported("retry_policy_typed_config")
		case 30:
			var mb []byte
			mb, err = f.message()
			mirrors = append(mirrors, mb)
			err = atIndex("request_mirror_policies", len(mirrors)-1, err)
		case 15:
			var hb []byte
			hb, err = f.message()
			hashPolicies = append(hashPolicies, hb)
			err = atIndex("hash_policy", len(hashPolicies)-1, err)
		}
		return err
	})
	switch {
	case err != nil:
		return RouteAction{}, err
	case pathRewrite != "":
		return RouteAction{}, notSupported("path_rewrite")
	case x.PrefixRewrite != "" && regexRewrite.set:
		return RouteAction{}, errors.New("prefix_rewrite and regex_rewrite cannot both be set")
	}
	// As in Envoy, an empty prefix_rewrite is no rewrite.
	x.HasPrefixRewrite = x.PrefixRewrite != ""
	if regexRewrite.set {
		if x.RegexRewrite, err = decodeRegexRewrite(regexRewrite.b); err != nil {
			return RouteAction{}, at("regex_rewrite", err)
		}
	}
	switch hostRewrite.num {
	case 6:
		if x.HostRewrite, err = hostRewrite.f.string(); err != nil {
			return RouteAction{}, at("host_rewrite_literal", err)
		}
	case 7:
		return RouteAction{}, notSupported("auto_host_rewrite")
	case 29:
		return RouteAction{}, notSupported("host_rewrite_header")
	case 35:
		return RouteAction{}, notSupported("host_rewrite_path_regex")
	case 44:
		return RouteAction{}, notSupported("host_rewrite")
	}
	if timeout.set {
		if a.Timeout, err = decodeDuration(timeout.b); err != nil {
			return RouteAction{}, at("timeout", err)
		}
		a.HasTimeout = true
	}
	if retry.set {
		if x.Retry, err = decodeRetryPolicy(retry.b); err != nil {
			return RouteAction{}, at("retry_policy", err)
		}
	}
	for i, mb := range mirrors {
		m, err := decodeMirrorPolicy(mb)
		if err != nil {
			return RouteAction{}, atIndex("request_mirror_policies", i, err)
		}
		x.Mirrors = append(x.Mirrors, m)
	}
	for i, hb := range hashPolicies {
		h, err := decodeHashPolicy(hb)
		if err != nil {
			return RouteAction{}, atIndex("hash_policy", i, err)
		}
		x.HashPolicies = append(x.HashPolicies, h)
	}
	switch cluster.num {
	case 0:
		return RouteAction{}, errors.New("one of cluster and weighted_clusters must be set")
	case 1:
		name, err := cluster.f.string()
		if err == nil && name == "" {
			err = errEmpty
		}
		if err != nil {
			return RouteAction{}, at("cluster", err)
		}
		a.Clusters = []WeightedCluster{{Name: name, Weight: 1}}
	case 2:
		return RouteAction{}, notSupported("cluster_header")
	case 3:
		if a.Clusters, err = decodeWeightedClusters(cluster.f.b); err != nil {
			return RouteAction{}, at("weighted_clusters", err)
		}
	case 37:
		return RouteAction{}, notSupported("cluster_specifier_plugin")
	case 39:
		return RouteAction{}, notSupported("inline_cluster_specifier_plugin")
	}
	return a, nil
}

// decodeWeightedClusters decodes an envoy.config.route.v3.WeightedCluster.
func decodeWeightedClusters(b []byte) ([]WeightedCluster, error) {
	var clusters []WeightedCluster
	err := walk(b, func(f field) error {
		if f.num != 1 {
			return nil
		}
		i := len(clusters)
		cb, err := f.message()
		if err == nil {
			var c WeightedCluster
			c, err = decodeClusterWeight(cb)
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
	switch {
	case total == 0:
		return nil, at("clusters", errors.New("all weights are zero"))
	case total > math.MaxUint32:
		return nil, at("clusters", fmt.Errorf("sum of weights %d overflows uint32", total))
	}
	return clusters, nil
}

// decodeClusterWeight decodes an envoy.config.route.v3.WeightedCluster.ClusterWeight.
func decodeClusterWeight(b []byte) (WeightedCluster, error) {
	var (
		c             WeightedCluster
		weight        msg
		clusterHeader string
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			c.Name, err = f.string()
			err = at("name", err)
		case 2:
			err = at("weight", weight.add(f))
		case 12:
			clusterHeader, err = f.string()
			err = at("cluster_header", err)
		case 3:
			err = notSupported("metadata_match")
		case 11:
			err = notSupported("host_rewrite_literal")
		}
		return err
	})
	switch {
	case err != nil:
		return WeightedCluster{}, err
	case clusterHeader != "":
		return WeightedCluster{}, notSupported("cluster_header")
	case c.Name == "":
		return WeightedCluster{}, at("name", errEmpty)
	}
	if weight.set {
		if c.Weight, err = decodeUInt32Value(weight.b); err != nil {
			return WeightedCluster{}, at("weight", err)
		}
	}
	return c, nil
}

// decodeDirectResponse decodes an envoy.config.route.v3.DirectResponseAction.
func decodeDirectResponse(b []byte) (RouteAction, error) {
	var (
		a    RouteAction
		body msg
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			a.DirectStatus, err = f.uint32()
			err = at("status", err)
		case 2:
			err = at("body", body.add(f))
		case 3:
			err = notSupported("body_format")
		}
		return err
	})
	if err != nil {
		return RouteAction{}, err
	}
	if a.DirectStatus < 200 || a.DirectStatus > 599 {
		return RouteAction{}, at("status", fmt.Errorf("%d out of range 200..599", a.DirectStatus))
	}
	if body.set {
		if a.DirectBody, err = decodeInlineDataSource(body.b); err != nil {
			return RouteAction{}, at("body", err)
		}
	}
	return a, nil
}

// decodeInlineDataSource decodes an envoy.config.core.v3.DataSource that
// holds its data inline: the proxy reads no file or environment variable on
// the control plane's say.
func decodeInlineDataSource(b []byte) (string, error) {
	var spec oneof
	err := walk(b, func(f field) error {
		switch f.num {
		case 1, 2, 3, 4: // filename, inline_bytes, inline_string, environment_variable
			return spec.scalar(f, protowire.BytesType)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	switch spec.num {
	case 1:
		return "", notSupported("filename")
	case 2:
		return string(spec.f.b), nil
	case 3:
		s, err := spec.f.string()
		return s, at("inline_string", err)
	case 4:
		return "", notSupported("environment_variable")
	}
	return "", nil
}
