package xdsresource

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// This file decodes the traffic-management parts of a route: retries,
// mirrors, hash policies, rewrites, redirects and header mutations.

// Envoy's retry back-off defaults.
const (
	defaultBackoffBase   = 25 * time.Millisecond
	backoffMaxPerBase    = 10
	previousHostsName    = "envoy.retry_host_predicates.previous_hosts"
	previousHostsMessage = "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
)

// retryConditions are the retry_on conditions the proxy implements.
var retryConditions = map[string]bool{
	"5xx": true, "gateway-error": true, "reset": true, "connect-failure": true,
	"refused-stream": true, "retriable-4xx": true, "retriable-status-codes": true,
	"cancelled": true, "deadline-exceeded": true, "internal": true,
	"resource-exhausted": true, "unavailable": true,
}

// decodeRetryPolicy decodes an envoy.config.route.v3.RetryPolicy.
func decodeRetryPolicy(b []byte) (*RetryPolicy, error) {
	var (
		p                  RetryPolicy
		retryOn            string
		numRetries, tryTO  msg
		backoff            msg
		predicates         [][]byte
		retriableMethods   [][]byte
		hasRetriableMethod bool
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			retryOn, err = f.string()
			err = at("retry_on", err)
		case 2:
			err = at("num_retries", numRetries.add(f))
		case 3:
			err = at("per_try_timeout", tryTO.add(f))
		case 4:
			err = notSupported("retry_priority")
		case 5:
			var pb []byte
			pb, err = f.message()
			predicates = append(predicates, pb)
			err = atIndex("retry_host_predicate", len(predicates)-1, err)
		case 7:
			p.RetriableStatusCodes, err = f.uint32s(p.RetriableStatusCodes)
			err = at("retriable_status_codes", err)
		case 8:
			err = at("retry_back_off", backoff.add(f))
		case 9:
			err = notSupported("retriable_headers")
		case 10:
			var hb []byte
			hb, err = f.message()
			retriableMethods = append(retriableMethods, hb)
			hasRetriableMethod = true
			err = atIndex("retriable_request_headers", len(retriableMethods)-1, err)
		case 11:
			err = notSupported("rate_limited_retry_back_off")
		case 12:
			err = notSupported("retry_options_predicates")
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	for c := range strings.SplitSeq(retryOn, ",") {
		c = strings.TrimSpace(c)
		if c == "" {
			continue
		}
		if !retryConditions[c] {
			return nil, at("retry_on", fmt.Errorf("condition %q: %w", c, errNotSupported))
		}
		p.RetryOn = append(p.RetryOn, c)
	}
	if p.NumRetries, err = optUInt32(numRetries, 1); err != nil {
		return nil, at("num_retries", err)
	}
	if p.PerTryTimeout, err = optDuration(tryTO, 0); err != nil {
		return nil, at("per_try_timeout", err)
	}
	p.BackoffBase, p.BackoffMax = defaultBackoffBase, backoffMaxPerBase*defaultBackoffBase
	if backoff.set {
		if p.BackoffBase, p.BackoffMax, err = decodeRetryBackOff(backoff.b); err != nil {
			return nil, at("retry_back_off", err)
		}
	}
	for i, pb := range predicates {
		if err := decodeRetryHostPredicate(pb); err != nil {
			return nil, atIndex("retry_host_predicate", i, err)
		}
		p.PreviousHosts = true
	}
	if hasRetriableMethod {
		if len(retriableMethods) != 1 {
			return nil, at("retriable_request_headers", fmt.Errorf("%d matchers: %w (only one on :method)", len(retriableMethods), errNotSupported))
		}
		if p.RetriableMethods, err = decodeRetriableMethods(retriableMethods[0]); err != nil {
			return nil, atIndex("retriable_request_headers", 0, err)
		}
	}
	return &p, nil
}

// decodeRetryBackOff decodes an
// envoy.config.route.v3.RetryPolicy.RetryBackOff.
func decodeRetryBackOff(b []byte) (base, maxInterval time.Duration, err error) {
	var baseMsg, maxMsg msg
	err = walk(b, func(f field) error {
		switch f.num {
		case 1:
			return at("base_interval", baseMsg.add(f))
		case 2:
			return at("max_interval", maxMsg.add(f))
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	if !baseMsg.set {
		return 0, 0, at("base_interval", errMissing)
	}
	if base, err = positiveDuration(baseMsg, 0); err != nil {
		return 0, 0, at("base_interval", err)
	}
	def := base * backoffMaxPerBase
	if base > math.MaxInt64/backoffMaxPerBase {
		def = math.MaxInt64
	}
	if maxInterval, err = positiveDuration(maxMsg, def); err != nil {
		return 0, 0, at("max_interval", err)
	}
	if maxInterval < base {
		return 0, 0, at("max_interval", fmt.Errorf("%v is less than base_interval %v", maxInterval, base))
	}
	return base, maxInterval, nil
}

// decodeRetryHostPredicate decodes an
// envoy.config.route.v3.RetryPolicy.RetryHostPredicate, which must be
// previous_hosts: the proxy has no other.
func decodeRetryHostPredicate(b []byte) error {
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
		case 3:
			err = config.message(f)
		}
		return err
	})
	if err != nil {
		return err
	}
	if config.num == 0 {
		if name != previousHostsName {
			return fmt.Errorf("predicate %q: %w", name, errNotSupported)
		}
		return nil
	}
	a, err := decodeAny(config.f.b)
	if err != nil {
		return at("typed_config", err)
	}
	if typeName(a.typeURL) != previousHostsMessage {
		return at("typed_config", fmt.Errorf("predicate %q of type %q: %w", name, a.typeURL, errNotSupported))
	}
	return nil
}

// methodName is what retriable_request_headers may list: plain method
// names, without regex syntax.
var methodName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*$`)

// decodeRetriableMethods decodes the one HeaderMatcher of
// retriable_request_headers, which must match ":method" exactly or with a
// safe_regex alternation of plain method names, into those names.
func decodeRetriableMethods(b []byte) ([]string, error) {
	h, err := decodeHeaderMatcher(b)
	if err != nil {
		return nil, err
	}
	const want = `only a ":method" matcher with string_match exact or safe_regex "M1|M2|..." is supported`
	if h.Name != ":method" || h.Present || h.Invert || h.String.IgnoreCase {
		return nil, fmt.Errorf("%w: %s", errNotSupported, want)
	}
	var names []string
	switch h.String.Kind {
	case MatchExact:
		names = []string{h.String.Value}
	case MatchRegex:
		// decodeRegexMatcher compiled the expression as ^(?:expr)$.
		expr := strings.TrimSuffix(strings.TrimPrefix(h.String.Regex.String(), "^(?:"), ")$")
		names = strings.Split(expr, "|")
	default:
		return nil, fmt.Errorf("%w: %s", errNotSupported, want)
	}
	for _, n := range names {
		if !methodName.MatchString(n) {
			return nil, fmt.Errorf("method %q: %w: %s", n, errNotSupported, want)
		}
	}
	return names, nil
}

// decodeMirrorPolicy decodes an
// envoy.config.route.v3.RouteAction.RequestMirrorPolicy. The copy's
// authority always gets "-shadow" appended.
func decodeMirrorPolicy(b []byte) (MirrorPolicy, error) {
	var (
		m                          MirrorPolicy
		fraction                   msg
		clusterHeader, hostRewrite string
		noSuffix                   bool
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			m.Cluster, err = f.string()
			err = at("cluster", err)
		case 3:
			err = at("runtime_fraction", fraction.add(f))
		case 5:
			clusterHeader, err = f.string()
			err = at("cluster_header", err)
		case 6:
			noSuffix, err = f.bool()
			err = at("disable_shadow_host_suffix_append", err)
		case 7:
			err = notSupported("request_headers_mutations")
		case 8:
			hostRewrite, err = f.string()
			err = at("host_rewrite_literal", err)
		}
		return err
	})
	switch {
	case err != nil:
		return MirrorPolicy{}, err
	case clusterHeader != "":
		return MirrorPolicy{}, notSupported("cluster_header")
	case hostRewrite != "":
		return MirrorPolicy{}, notSupported("host_rewrite_literal")
	case noSuffix:
		return MirrorPolicy{}, notSupported("disable_shadow_host_suffix_append")
	case m.Cluster == "":
		return MirrorPolicy{}, at("cluster", errEmpty)
	}
	m.PerMillion = 1e6
	if fraction.set {
		if m.PerMillion, err = decodeRuntimeFractionalPercent(fraction.b); err != nil {
			return MirrorPolicy{}, at("runtime_fraction", err)
		}
	}
	return m, nil
}

// decodeHashPolicy decodes an envoy.config.route.v3.RouteAction.HashPolicy.
func decodeHashPolicy(b []byte) (HashPolicy, error) {
	var (
		h    HashPolicy
		spec oneof
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1, 2, 3, 5, 6: // header, cookie, connection_properties, query_parameter, filter_state
			err = spec.message(f)
		case 4:
			h.Terminal, err = f.bool()
			err = at("terminal", err)
		}
		return err
	})
	if err != nil {
		return HashPolicy{}, err
	}
	switch spec.num {
	case 0:
		return HashPolicy{}, errors.New("one of header, cookie and connection_properties must be set")
	case 1:
		h.Header, err = decodeHashHeader(spec.f.b)
		err = at("header", err)
	case 2:
		err = at("cookie", decodeHashCookie(spec.f.b, &h))
	case 3:
		h.SourceIP, err = decodeHashSourceIP(spec.f.b)
		err = at("connection_properties", err)
	case 5:
		err = notSupported("query_parameter")
	case 6:
		err = notSupported("filter_state")
	}
	if err != nil {
		return HashPolicy{}, err
	}
	return h, nil
}

func decodeHashHeader(b []byte) (string, error) {
	var name string
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			name, err = f.string()
			err = at("header_name", err)
		case 2:
			err = notSupported("regex_rewrite")
		}
		return err
	})
	if err == nil {
		err = at("header_name", checkHeaderName(name))
	}
	return strings.ToLower(name), err
}

func decodeHashCookie(b []byte, h *HashPolicy) error {
	var ttl msg
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			h.Cookie, err = f.string()
			err = at("name", err)
		case 2:
			err = at("ttl", ttl.add(f))
		case 3:
			h.CookiePath, err = f.string()
			err = at("path", err)
		case 4:
			err = notSupported("attributes")
		}
		return err
	})
	switch {
	case err != nil:
		return err
	case h.Cookie == "":
		return at("name", errEmpty)
	}
	h.CookieTTL, err = optDuration(ttl, 0)
	return at("ttl", err)
}

func decodeHashSourceIP(b []byte) (bool, error) {
	var sourceIP bool
	err := walk(b, func(f field) error {
		var err error
		if f.num == 1 {
			sourceIP, err = f.bool()
			err = at("source_ip", err)
		}
		return err
	})
	if err == nil && !sourceIP {
		err = at("source_ip", fmt.Errorf("false (hash on nothing): %w", errNotSupported))
	}
	return sourceIP, err
}

// decodeRegexRewrite decodes an envoy.type.matcher.v3.RegexMatchAndSubstitute.
// Its pattern is not anchored: every match in the path is replaced, as in
// Envoy. The substitution is turned into regexp.Expand syntax.
func decodeRegexRewrite(b []byte) (*RegexRewrite, error) {
	var (
		pattern msg
		subst   string
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			err = at("pattern", pattern.add(f))
		case 2:
			subst, err = f.string()
			err = at("substitution", err)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if !pattern.set {
		return nil, at("pattern", errMissing)
	}
	re, err := decodeUnanchoredRegex(pattern.b)
	if err != nil {
		return nil, at("pattern", err)
	}
	s, err := convertSubstitution(subst, re.NumSubexp())
	if err != nil {
		return nil, at("substitution", err)
	}
	return &RegexRewrite{Pattern: re, Substitution: s}, nil
}

// decodeUnanchoredRegex decodes an envoy.type.matcher.v3.RegexMatcher and
// compiles its regex (RE2 syntax) as it is, to find matches anywhere.
func decodeUnanchoredRegex(b []byte) (*regexp.Regexp, error) {
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
	if _, err := syntax.Parse(expr, syntax.Perl); err != nil {
		return nil, fmt.Errorf("invalid regex: %w", err)
	}
	return regexp.Compile(expr)
}

// convertSubstitution turns an RE2 rewrite string, where \1 to \9 refer to
// capture groups (at most groups of them) and \\ is a backslash, into
// regexp.Expand syntax (${1}, with $ escaped as $$). As in RE2, any other
// backslash is an error.
func convertSubstitution(s string, groups int) (string, error) {
	var out strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '$':
			out.WriteString("$$")
		case c != '\\':
			out.WriteByte(c)
		case i+1 == len(s):
			return "", fmt.Errorf("%q ends with a lone backslash", s)
		case s[i+1] == '\\':
			out.WriteByte('\\')
			i++
		case s[i+1] >= '0' && s[i+1] <= '9':
			n := int(s[i+1] - '0')
			if n > groups {
				return "", fmt.Errorf("%q refers to group \\%d; the pattern has %d", s, n, groups)
			}
			out.WriteString("${" + strconv.Itoa(n) + "}")
			i++
		default:
			return "", fmt.Errorf("%q: invalid escape \\%c (use \\0..\\9 or \\\\)", s, s[i+1])
		}
	}
	return out.String(), nil
}

// redirectCodes maps RedirectAction.RedirectResponseCode to HTTP status
// codes.
var redirectCodes = map[int32]int{0: 301, 1: 302, 2: 303, 3: 307, 4: 308}

// decodeRedirect decodes an envoy.config.route.v3.RedirectAction.
func decodeRedirect(b []byte) (*Redirect, error) {
	var (
		r            Redirect
		scheme, path oneof
		code         int32
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			r.Host, err = f.string()
			err = at("host_redirect", err)
		case 8:
			r.Port, err = f.uint32()
			err = at("port_redirect", err)
		case 3:
			code, err = f.int32()
			err = at("response_code", err)
		case 6:
			r.StripQuery, err = f.bool()
			err = at("strip_query", err)
		case 7: // scheme_redirect
			err = scheme.scalar(f, protowire.BytesType)
		case 4: // https_redirect
			err = scheme.scalar(f, protowire.VarintType)
		case 2, 5: // path_redirect, prefix_rewrite
			err = path.scalar(f, protowire.BytesType)
		case 9: // regex_rewrite
			err = path.message(f)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if r.Port > math.MaxUint16 {
		return nil, at("port_redirect", fmt.Errorf("%d out of range 0..65535", r.Port))
	}
	var ok bool
	if r.StatusCode, ok = redirectCodes[code]; !ok {
		return nil, at("response_code", fmt.Errorf("value %d: %w", code, errNotSupported))
	}
	switch scheme.num {
	case 7:
		s, err := scheme.f.string()
		if err != nil {
			return nil, at("scheme_redirect", err)
		}
		r.Scheme = strings.ToLower(s)
	case 4:
		if https, _ := scheme.f.bool(); https {
			r.Scheme = "https"
		}
	}
	switch path.num {
	case 2:
		if r.Path, err = path.f.string(); err != nil {
			return nil, at("path_redirect", err)
		}
	case 5:
		if r.PrefixRewrite, err = path.f.string(); err != nil {
			return nil, at("prefix_rewrite", err)
		}
		r.HasPrefix = true
	case 9:
		return nil, notSupported("regex_rewrite")
	}
	return &r, nil
}

// Actions of an envoy.config.core.v3.HeaderValueOption.
const (
	appendIfExistsOrAdd    = 0
	addIfAbsent            = 1
	overwriteIfExistsOrAdd = 2
	overwriteIfExists      = 3
)

// decodeHeaderValueOption decodes an envoy.config.core.v3.HeaderValueOption.
// keep_empty_value is ignored: the proxy adds a header even when its value
// is empty.
func decodeHeaderValueOption(b []byte) (HeaderValueOption, error) {
	var (
		h                 HeaderValueOption
		header, appendMsg msg
		action            int32
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			err = at("header", header.add(f))
		case 2:
			err = at("append", appendMsg.add(f))
		case 3:
			action, err = f.int32()
			err = at("append_action", err)
		}
		return err
	})
	if err != nil {
		return HeaderValueOption{}, err
	}
	if !header.set {
		return HeaderValueOption{}, at("header", errMissing)
	}
	if h.Name, h.Value, err = decodeHeaderValue(header.b); err != nil {
		return HeaderValueOption{}, at("header", err)
	}
	if appendMsg.set {
		if action != appendIfExistsOrAdd {
			return HeaderValueOption{}, errors.New("append and append_action cannot both be set")
		}
		appendValue, err := decodeBoolValue(appendMsg.b)
		if err != nil {
			return HeaderValueOption{}, at("append", err)
		}
		if !appendValue {
			action = overwriteIfExistsOrAdd
		}
	}
	switch action {
	case appendIfExistsOrAdd:
		h.Append = true
	case addIfAbsent:
		h.IfAbsent = true
	case overwriteIfExistsOrAdd:
	case overwriteIfExists:
		return HeaderValueOption{}, at("append_action", fmt.Errorf("OVERWRITE_IF_EXISTS: %w", errNotSupported))
	default:
		return HeaderValueOption{}, at("append_action", fmt.Errorf("value %d: %w", action, errNotSupported))
	}
	return h, nil
}

// decodeHeaderValue decodes an envoy.config.core.v3.HeaderValue into its
// lower-case name and its value (value or raw_value).
func decodeHeaderValue(b []byte) (name, value string, err error) {
	var raw []byte
	err = walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			name, err = f.string()
			err = at("key", err)
		case 2:
			value, err = f.string()
			err = at("value", err)
		case 3:
			raw, err = f.message() // bytes
			err = at("raw_value", err)
		}
		return err
	})
	if err != nil {
		return "", "", err
	}
	if len(raw) > 0 {
		if value != "" {
			return "", "", errors.New("value and raw_value cannot both be set")
		}
		value = string(raw)
	}
	if err := checkModifiableHeader(name); err != nil {
		return "", "", at("key", err)
	}
	if strings.ContainsAny(value, "\x00\r\n") {
		return "", "", at("value", fmt.Errorf("%q: invalid header value", value))
	}
	return strings.ToLower(name), value, nil
}

// checkModifiableHeader applies Envoy's rule for the headers a route may
// add or remove: a valid name, neither a pseudo-header nor host.
func checkModifiableHeader(name string) error {
	if err := checkHeaderName(name); err != nil {
		return err
	}
	if strings.HasPrefix(name, ":") || strings.EqualFold(name, "host") {
		return fmt.Errorf("%q: pseudo-headers and host cannot be modified", name)
	}
	return nil
}
