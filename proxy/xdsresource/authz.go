package xdsresource

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// This file decodes the authorization filters (docs/xds.md,
// "Authorization and end-user authentication"): envoy.filters.http.rbac,
// envoy.filters.network.rbac, envoy.filters.http.jwt_authn and
// envoy.filters.http.ext_authz. Everything that would change a decision
// and that the proxy does not honour (CEL conditions, matcher extensions,
// remote key sets, other requirement shapes, HTTP authorizers ...) is
// refused, so that a listener never enforces less than its config says.

// Message names of the authorization filters' configs.
const (
	httpRBACMessage    = "envoy.extensions.filters.http.rbac.v3.RBAC"
	networkRBACMessage = "envoy.extensions.filters.network.rbac.v3.RBAC"
	jwtAuthnMessage    = "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"
	extAuthzMessage    = "envoy.extensions.filters.http.ext_authz.v3.ExtAuthz"
)

// maxRuleDepth bounds the nesting of permissions and principals.
const maxRuleDepth = 64

// DefaultExtAuthzTimeout is an ext_authz grpc_service's timeout when it
// sets none (Envoy's default).
const DefaultExtAuthzTimeout = 200 * time.Millisecond

// DefaultJWTClockSkew is a JWT provider's clock_skew_seconds when 0.
const DefaultJWTClockSkew = 60 * time.Second

// maxJWTClockSkew is the largest clock skew the verifier accepts.
const maxJWTClockSkew = 10 * time.Minute

// shadowPolicyKey is the dynamic metadata key the RBAC filter writes the
// matched shadow policy's name to.
const shadowPolicyKey = "shadow_effective_policy_id"

// decodeAuthzHTTPFilter decodes the config of an authorization HTTP filter
// of kind (FilterRBAC, FilterJWTAuthn or FilterExtAuthz) into hcm.Authz.
func decodeAuthzHTTPFilter(kind string, b []byte, hcm *HTTPConnectionManager) error {
	if hcm.Authz == nil {
		hcm.Authz = &AuthzFilters{}
	}
	az := hcm.Authz
	switch kind {
	case FilterRBAC:
		r, err := decodeHTTPRBAC(b)
		if err != nil {
			return err
		}
		az.RBAC = append(az.RBAC, r)
	case FilterJWTAuthn:
		j, err := decodeJWTAuthn(b)
		if err != nil {
			return err
		}
		az.JWT = j
	case FilterExtAuthz:
		x, err := decodeExtAuthz(b)
		if err != nil {
			return err
		}
		az.ExtAuthz = append(az.ExtAuthz, x)
	}
	az.Order = append(az.Order, kind)
	return nil
}

// decodeHTTPRBAC decodes an envoy.extensions.filters.http.rbac.v3.RBAC.
func decodeHTTPRBAC(b []byte) (HTTPRBAC, error) {
	var (
		r              HTTPRBAC
		rules, shadow  msg
		matcherPresent bool
		shadowMatcher  bool
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			err = at("rules", rules.add(f))
		case 2:
			err = at("shadow_rules", shadow.add(f))
		case 3:
			r.ShadowStatPrefix, err = f.string()
			err = at("shadow_rules_stat_prefix", err)
		case 4:
			_, err = f.message()
			matcherPresent = true
			err = at("matcher", err)
		case 5:
			_, err = f.message()
			shadowMatcher = true
			err = at("shadow_matcher", err)
		case 6:
			r.RulesStatPrefix, err = f.string()
			err = at("rules_stat_prefix", err)
		}
		return err
	})
	switch {
	case err != nil:
		return HTTPRBAC{}, err
	case matcherPresent:
		return HTTPRBAC{}, notSupported("matcher")
	case shadowMatcher:
		return HTTPRBAC{}, notSupported("shadow_matcher")
	}
	if rules.set {
		if r.Rules, err = decodeRBAC(rules.b, false); err != nil {
			return HTTPRBAC{}, at("rules", err)
		}
	}
	if shadow.set {
		if r.ShadowRules, err = decodeRBAC(shadow.b, false); err != nil {
			return HTTPRBAC{}, at("shadow_rules", err)
		}
	}
	return r, nil
}

// decodeNetworkRBAC decodes an
// envoy.extensions.filters.network.rbac.v3.RBAC: L4 rules only.
// enforcement_type CONTINUOUS is accepted: with L4 attributes only, a
// decision cannot change during a connection. delay_deny only delays the
// close.
func decodeNetworkRBAC(b []byte) (*NetworkRBAC, error) {
	var (
		r                      NetworkRBAC
		rules, shadow          msg
		matcher, shadowMatcher bool
		enforcement            int32
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			err = at("rules", rules.add(f))
		case 2:
			err = at("shadow_rules", shadow.add(f))
		case 3:
			r.StatPrefix, err = f.string()
			err = at("stat_prefix", err)
		case 4:
			enforcement, err = f.int32()
			err = at("enforcement_type", err)
		case 6:
			_, err = f.message()
			matcher = true
			err = at("matcher", err)
		case 7:
			_, err = f.message()
			shadowMatcher = true
			err = at("shadow_matcher", err)
		}
		return err
	})
	switch {
	case err != nil:
		return nil, err
	case matcher:
		return nil, notSupported("matcher")
	case shadowMatcher:
		return nil, notSupported("shadow_matcher")
	case r.StatPrefix == "":
		return nil, at("stat_prefix", errEmpty)
	case enforcement != 0 && enforcement != 1:
		return nil, at("enforcement_type", fmt.Errorf("value %d: %w", enforcement, errNotSupported))
	}
	if rules.set {
		if r.Rules, err = decodeRBAC(rules.b, true); err != nil {
			return nil, at("rules", err)
		}
	}
	if shadow.set {
		if r.ShadowRules, err = decodeRBAC(shadow.b, true); err != nil {
			return nil, at("shadow_rules", err)
		}
	}
	return &r, nil
}

// decodeRBAC decodes an envoy.config.rbac.v3.RBAC; l4 restricts the
// policies to connection attributes (network RBAC). audit_logging_options
// changes no decision and is ignored.
func decodeRBAC(b []byte, l4 bool) (*RBAC, error) {
	var (
		r        RBAC
		action   int32
		policies = map[string][]byte{}
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			action, err = f.int32()
			err = at("action", err)
		case 2:
			var key string
			var value []byte
			key, value, err = decodeMapEntry(f)
			policies[key] = value
			err = at("policies", err)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	switch action {
	case 0:
		r.Action = RBACAllow
	case 1:
		r.Action = RBACDeny
	case 2:
		r.Action = RBACLog
	default:
		return nil, at("action", fmt.Errorf("value %d: %w", action, errNotSupported))
	}
	names := make([]string, 0, len(policies))
	for name := range policies {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		p, err := decodeRBACPolicy(policies[name], l4)
		if err != nil {
			return nil, atKey("policies", name, err)
		}
		p.Name = name
		r.Policies = append(r.Policies, p)
	}
	return &r, nil
}

// decodeRBACPolicy decodes an envoy.config.rbac.v3.Policy.
func decodeRBACPolicy(b []byte, l4 bool) (RBACPolicy, error) {
	var (
		p                 RBACPolicy
		condition, cel    bool
		perms, principals [][]byte
	)
	err := walk(b, func(f field) error {
		var err error
		var mb []byte
		switch f.num {
		case 1:
			mb, err = f.message()
			perms = append(perms, mb)
			err = atIndex("permissions", len(perms)-1, err)
		case 2:
			mb, err = f.message()
			principals = append(principals, mb)
			err = atIndex("principals", len(principals)-1, err)
		case 3:
			_, err = f.message()
			condition = true
			err = at("condition", err)
		case 4:
			_, err = f.message()
			cel = true
			err = at("checked_condition", err)
		}
		return err
	})
	switch {
	case err != nil:
		return RBACPolicy{}, err
	case condition:
		return RBACPolicy{}, at("condition", fmt.Errorf("CEL: %w", errNotSupported))
	case cel:
		return RBACPolicy{}, at("checked_condition", fmt.Errorf("CEL: %w", errNotSupported))
	case len(perms) == 0:
		return RBACPolicy{}, at("permissions", errEmpty)
	case len(principals) == 0:
		return RBACPolicy{}, at("principals", errEmpty)
	}
	for i, pb := range perms {
		perm, err := decodePermission(pb, l4, 0)
		if err != nil {
			return RBACPolicy{}, atIndex("permissions", i, err)
		}
		p.Permissions = append(p.Permissions, perm)
	}
	for i, pb := range principals {
		prin, err := decodePrincipal(pb, l4, 0)
		if err != nil {
			return RBACPolicy{}, atIndex("principals", i, err)
		}
		p.Principals = append(p.Principals, prin)
	}
	return p, nil
}

var errTooDeep = fmt.Errorf("nested more than %d deep", maxRuleDepth)

// l4Only is the error for an HTTP attribute in a network RBAC.
func l4Only(name string) error {
	return at(name, errors.New("not supported in a network RBAC (L4 attributes only)"))
}

// decodePermission decodes an envoy.config.rbac.v3.Permission.
func decodePermission(b []byte, l4 bool, depth int) (Permission, error) {
	if depth > maxRuleDepth {
		return Permission{}, errTooDeep
	}
	var rule oneof
	err := walk(b, func(f field) error {
		switch f.num {
		case 3, 6: // any, destination_port
			return rule.scalar(f, protowire.VarintType)
		case 1, 2, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14:
			return rule.message(f)
		}
		return nil
	})
	if err != nil {
		return Permission{}, err
	}
	var p Permission
	switch rule.num {
	case 0:
		return Permission{}, errors.New("a rule must be set")
	case 1, 2:
		name := "and_rules"
		p.Kind = PermAnd
		if rule.num == 2 {
			name, p.Kind = "or_rules", PermOr
		}
		p.Rules, err = decodeSet(rule.f.b, "rules", func(b []byte) (Permission, error) {
			return decodePermission(b, l4, depth+1)
		})
		if err != nil {
			return Permission{}, at(name, err)
		}
	case 3:
		if any, _ := rule.f.bool(); !any {
			return Permission{}, at("any", errors.New("must be true"))
		}
		p.Kind = PermAny
	case 8:
		sub, err := decodePermission(rule.f.b, l4, depth+1)
		if err != nil {
			return Permission{}, at("not_rule", err)
		}
		p.Kind, p.Rules = PermNot, []Permission{sub}
	case 4:
		if l4 {
			return Permission{}, l4Only("header")
		}
		p.Kind = PermHeader
		if p.Header, err = decodeHeaderMatcher(rule.f.b); err != nil {
			return Permission{}, at("header", err)
		}
	case 10:
		if l4 {
			return Permission{}, l4Only("url_path")
		}
		p.Kind = PermURLPath
		if p.Path, err = decodePathMatcher(rule.f.b); err != nil {
			return Permission{}, at("url_path", err)
		}
	case 5:
		p.Kind = PermDestIP
		if p.CIDR, err = decodeCIDR(rule.f.b); err != nil {
			return Permission{}, at("destination_ip", err)
		}
	case 6:
		p.Kind = PermDestPort
		p.Port, _ = rule.f.uint32()
		if p.Port > 65535 {
			return Permission{}, at("destination_port", fmt.Errorf("%d out of range 0..65535", p.Port))
		}
	case 9:
		if l4 {
			// The proxy reads no SNI on plaintext TCP chains.
			return Permission{}, l4Only("requested_server_name")
		}
		p.Kind = PermServerName
		if p.ServerName, err = decodeStringMatcher(rule.f.b); err != nil {
			return Permission{}, at("requested_server_name", err)
		}
	case 7:
		return Permission{}, notSupported("metadata")
	case 11:
		return Permission{}, notSupported("destination_port_range")
	case 12:
		return Permission{}, notSupported("matcher")
	case 13:
		return Permission{}, notSupported("uri_template")
	case 14:
		return Permission{}, notSupported("sourced_metadata")
	}
	return p, nil
}

// decodePrincipal decodes an envoy.config.rbac.v3.Principal. source_ip
// (deprecated) is the downstream connection's address, as
// direct_remote_ip: the proxy speaks no PROXY protocol.
func decodePrincipal(b []byte, l4 bool, depth int) (Principal, error) {
	if depth > maxRuleDepth {
		return Principal{}, errTooDeep
	}
	var id oneof
	err := walk(b, func(f field) error {
		switch f.num {
		case 3: // any
			return id.scalar(f, protowire.VarintType)
		case 1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14:
			return id.message(f)
		}
		return nil
	})
	if err != nil {
		return Principal{}, err
	}
	var p Principal
	switch id.num {
	case 0:
		return Principal{}, errors.New("an identifier must be set")
	case 1, 2:
		name := "and_ids"
		p.Kind = PrinAnd
		if id.num == 2 {
			name, p.Kind = "or_ids", PrinOr
		}
		p.IDs, err = decodeSet(id.f.b, "ids", func(b []byte) (Principal, error) {
			return decodePrincipal(b, l4, depth+1)
		})
		if err != nil {
			return Principal{}, at(name, err)
		}
	case 3:
		if any, _ := id.f.bool(); !any {
			return Principal{}, at("any", errors.New("must be true"))
		}
		p.Kind = PrinAny
	case 8:
		sub, err := decodePrincipal(id.f.b, l4, depth+1)
		if err != nil {
			return Principal{}, at("not_id", err)
		}
		p.Kind, p.IDs = PrinNot, []Principal{sub}
	case 4:
		p.Kind = PrinAuthenticated
		var name msg
		err := walk(id.f.b, func(f field) error {
			if f.num == 2 {
				return at("principal_name", name.add(f))
			}
			return nil
		})
		if err == nil && name.set {
			p.Name, err = decodeStringMatcher(name.b)
			err = at("principal_name", err)
		}
		if err != nil {
			return Principal{}, at("authenticated", err)
		}
	case 5, 10, 11:
		name := map[protowire.Number]string{5: "source_ip", 10: "direct_remote_ip", 11: "remote_ip"}[id.num]
		p.Kind = PrinDirectRemoteIP
		if id.num == 11 {
			p.Kind = PrinRemoteIP
		}
		if p.CIDR, err = decodeCIDR(id.f.b); err != nil {
			return Principal{}, at(name, err)
		}
	case 6:
		if l4 {
			return Principal{}, l4Only("header")
		}
		p.Kind = PrinHeader
		if p.Header, err = decodeHeaderMatcher(id.f.b); err != nil {
			return Principal{}, at("header", err)
		}
	case 9:
		if l4 {
			return Principal{}, l4Only("url_path")
		}
		p.Kind = PrinURLPath
		if p.Path, err = decodePathMatcher(id.f.b); err != nil {
			return Principal{}, at("url_path", err)
		}
	case 7:
		if l4 {
			return Principal{}, l4Only("metadata")
		}
		p.Kind = PrinMetadata
		if err := decodeClaimMatcher(id.f.b, &p); err != nil {
			return Principal{}, at("metadata", err)
		}
	case 12:
		return Principal{}, notSupported("filter_state")
	case 13:
		return Principal{}, notSupported("sourced_metadata")
	case 14:
		return Principal{}, notSupported("custom")
	}
	return p, nil
}

// decodePathMatcher decodes an envoy.type.matcher.v3.PathMatcher.
func decodePathMatcher(b []byte) (StringMatch, error) {
	var path msg
	err := walk(b, func(f field) error {
		if f.num == 1 {
			return at("path", path.add(f))
		}
		return nil
	})
	switch {
	case err != nil:
		return StringMatch{}, err
	case !path.set:
		return StringMatch{}, at("path", errMissing)
	}
	s, err := decodeStringMatcher(path.b)
	return s, at("path", err)
}

// decodeCIDR decodes an envoy.config.core.v3.CidrRange (prefix_len
// defaults to 0, as in Envoy). The address is masked to the prefix.
func decodeCIDR(b []byte) (netip.Prefix, error) {
	var (
		addr string
		plen msg
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			addr, err = f.string()
			err = at("address_prefix", err)
		case 2:
			err = at("prefix_len", plen.add(f))
		}
		return err
	})
	if err != nil {
		return netip.Prefix{}, err
	}
	ip, err := netip.ParseAddr(addr)
	if err != nil || ip.Zone() != "" {
		return netip.Prefix{}, at("address_prefix", fmt.Errorf("%q is not an IP address", addr))
	}
	n, err := optUInt32(plen, 0)
	if err != nil {
		return netip.Prefix{}, at("prefix_len", err)
	}
	if n > uint32(ip.BitLen()) {
		return netip.Prefix{}, at("prefix_len", fmt.Errorf("%d longer than the address", n))
	}
	return netip.PrefixFrom(ip, int(n)).Masked(), nil
}

// decodeClaimMatcher decodes an envoy.type.matcher.v3.MetadataMatcher of a
// principal: the verified JWT payload's claims (filter
// envoy.filters.http.jwt_authn, path [PAYLOAD, CLAIM...]), compared with a
// string_match or, for list claims, list_match.one_of.string_match.
func decodeClaimMatcher(b []byte, p *Principal) error {
	var (
		filter string
		value  msg
		path   [][]byte
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			filter, err = f.string()
			err = at("filter", err)
		case 2:
			var pb []byte
			pb, err = f.message()
			path = append(path, pb)
			err = atIndex("path", len(path)-1, err)
		case 3:
			err = at("value", value.add(f))
		case 4:
			p.Invert, err = f.bool()
			err = at("invert", err)
		}
		return err
	})
	if err != nil {
		return err
	}
	if filter != FilterJWTAuthn {
		return at("filter", fmt.Errorf("%q: %w (only %s)", filter, errNotSupported, FilterJWTAuthn))
	}
	keys, err := decodeMetadataPath(path)
	if err != nil {
		return err
	}
	if len(keys) < 2 {
		return at("path", errors.New("want the payload name and a claim"))
	}
	p.Payload, p.Claim = keys[0], keys[1:]
	if !value.set {
		return at("value", errMissing)
	}
	p.Value, p.InList, err = decodeClaimValue(value.b, false)
	return at("value", err)
}

// decodeMetadataPath decodes the path segments of a MetadataMatcher: each
// must be a non-empty key.
func decodeMetadataPath(path [][]byte) ([]string, error) {
	keys := make([]string, 0, len(path))
	for i, pb := range path {
		var key oneof
		err := walk(pb, func(f field) error {
			if f.num == 1 {
				return key.scalar(f, protowire.BytesType)
			}
			return nil
		})
		var k string
		if err == nil && key.num == 0 {
			err = at("key", errMissing)
		}
		if err == nil {
			k, err = key.f.string()
			err = at("key", err)
		}
		if err == nil && k == "" {
			err = at("key", errEmpty)
		}
		if err != nil {
			return nil, atIndex("path", i, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// decodeClaimValue decodes an envoy.type.matcher.v3.ValueMatcher: a
// string_match, or (unless nested) list_match.one_of of a string_match.
func decodeClaimValue(b []byte, nested bool) (StringMatch, bool, error) {
	var m oneof
	err := walk(b, func(f field) error {
		switch f.num {
		case 4, 5: // bool_match, present_match
			return m.scalar(f, protowire.VarintType)
		case 1, 2, 3, 6, 7:
			return m.message(f)
		}
		return nil
	})
	if err != nil {
		return StringMatch{}, false, err
	}
	switch m.num {
	case 0:
		return StringMatch{}, false, errors.New("a match pattern must be set")
	case 3:
		s, err := decodeStringMatcher(m.f.b)
		return s, false, at("string_match", err)
	case 6:
		if nested {
			return StringMatch{}, false, at("list_match", errors.New("nested list_match: "+errNotSupported.Error()))
		}
		var oneOf msg
		err := walk(m.f.b, func(f field) error {
			if f.num == 1 {
				return at("one_of", oneOf.add(f))
			}
			return nil
		})
		if err == nil && !oneOf.set {
			err = at("one_of", errMissing)
		}
		var s StringMatch
		if err == nil {
			s, _, err = decodeClaimValue(oneOf.b, true)
			err = at("one_of", err)
		}
		return s, true, at("list_match", err)
	}
	name := map[protowire.Number]string{1: "null_match", 2: "double_match", 4: "bool_match", 5: "present_match", 7: "or_match"}[m.num]
	return StringMatch{}, false, notSupported(name)
}

// decodeJWTAuthn decodes an
// envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication with the
// one rule shape Weft uses (see JWTAuthn).
func decodeJWTAuthn(b []byte) (*JWTAuthn, error) {
	var (
		providers = map[string][]byte{}
		rules     [][]byte
		bypass    bool
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			var key string
			var value []byte
			key, value, err = decodeMapEntry(f)
			providers[key] = value
			err = at("providers", err)
		case 2:
			var rb []byte
			rb, err = f.message()
			rules = append(rules, rb)
			err = atIndex("rules", len(rules)-1, err)
		case 3:
			_, err = f.message()
			if err == nil {
				err = notSupported("filter_state_rules")
			}
		case 4:
			bypass, err = f.bool()
			err = at("bypass_cors_preflight", err)
		}
		return err
	})
	switch {
	case err != nil:
		return nil, err
	case bypass:
		return nil, notSupported("bypass_cors_preflight")
	case len(rules) != 1:
		return nil, at("rules", fmt.Errorf("want exactly 1 rule (match prefix \"/\"), have %d", len(rules)))
	}
	names, allowMissing, err := decodeRequirementRule(rules[0])
	if err != nil {
		return nil, atIndex("rules", 0, err)
	}
	j := &JWTAuthn{AllowMissing: allowMissing}
	for _, name := range names {
		pb, ok := providers[name]
		if !ok {
			return nil, atIndex("rules", 0, fmt.Errorf("provider %q is not defined", name))
		}
		p, err := decodeJWTProvider(pb)
		if err != nil {
			return nil, atKey("providers", name, err)
		}
		p.Name = name
		j.Providers = append(j.Providers, p)
	}
	return j, nil
}

// decodeRequirementRule decodes a RequirementRule: match prefix "/" and
// requires provider_name, or requires_any of provider_names and at most
// one allow_missing.
func decodeRequirementRule(b []byte) (providers []string, allowMissing bool, err error) {
	var match, requires msg
	var reqName bool
	err = walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			err = at("match", match.add(f))
		case 2:
			err = at("requires", requires.add(f))
		case 3:
			if _, err = f.string(); err == nil {
				reqName = true
			}
			err = at("requirement_name", err)
		}
		return err
	})
	switch {
	case err != nil:
		return nil, false, err
	case reqName:
		return nil, false, notSupported("requirement_name")
	case !match.set:
		return nil, false, at("match", errMissing)
	case !requires.set:
		return nil, false, at("requires", errMissing)
	}
	m, grpc, err := decodeRouteMatch(match.b)
	if err == nil && (m.PathKind != PathPrefix || m.Path != "/" || len(m.Headers) > 0 || len(m.QueryParams) > 0 || grpc) {
		err = fmt.Errorf("only prefix \"/\" (every request) is %w", errNotSupported)
	}
	if err != nil {
		return nil, false, at("match", err)
	}
	req, err := decodeRequirement(requires.b)
	if err != nil {
		return nil, false, at("requires", err)
	}
	switch req.kind {
	case 1:
		return []string{req.provider}, false, nil
	case 3:
	default:
		return nil, false, at("requires", fmt.Errorf("only provider_name and requires_any are %w", errNotSupported))
	}
	var list [][]byte
	err = walk(req.b, func(f field) error {
		if f.num != 1 {
			return nil
		}
		rb, err := f.message()
		list = append(list, rb)
		return atIndex("requirements", len(list)-1, err)
	})
	if err != nil {
		return nil, false, at("requires.requires_any", err)
	}
	for i, rb := range list {
		r, err := decodeRequirement(rb)
		switch {
		case err != nil:
		case r.kind == 1:
			if !slices.Contains(providers, r.provider) {
				providers = append(providers, r.provider)
			}
		case r.kind == 6:
			allowMissing = true
		default:
			err = fmt.Errorf("only provider_name and allow_missing are %w in requires_any", errNotSupported)
		}
		if err != nil {
			return nil, false, at("requires.requires_any", atIndex("requirements", i, err))
		}
	}
	if len(providers) == 0 {
		return nil, false, at("requires.requires_any", errors.New("names no provider"))
	}
	return providers, allowMissing, nil
}

// requirement is a decoded JwtRequirement: the member set (its field
// number), and the provider name or the requires_any list.
type requirement struct {
	kind     protowire.Number
	provider string
	b        []byte
}

func decodeRequirement(b []byte) (requirement, error) {
	var r oneof
	err := walk(b, func(f field) error {
		switch f.num {
		case 1:
			return r.scalar(f, protowire.BytesType)
		case 2, 3, 4, 5, 6, 7:
			return r.message(f)
		}
		return nil
	})
	if err != nil {
		return requirement{}, err
	}
	req := requirement{kind: r.num, b: r.f.b}
	switch r.num {
	case 0:
		return requirement{}, errors.New("a requirement must be set")
	case 1:
		req.b = nil
		if req.provider, err = r.f.string(); err != nil {
			return requirement{}, at("provider_name", err)
		}
		if req.provider == "" {
			return requirement{}, at("provider_name", errEmpty)
		}
	}
	return req, nil
}

// decodeJWTProvider decodes an
// envoy.extensions.filters.http.jwt_authn.v3.JwtProvider. Weft always
// requires "exp" (require_expiration is read as true).
func decodeJWTProvider(b []byte) (JWTProvider, error) {
	var (
		p          JWTProvider
		jwks       oneof
		skew       uint32
		refused    string
		normalized bool
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			p.Issuer, err = f.string()
			err = at("issuer", err)
		case 2:
			var a string
			a, err = f.string()
			p.Audiences = append(p.Audiences, a)
			err = atIndex("audiences", len(p.Audiences)-1, err)
		case 3, 4:
			err = jwks.message(f)
		case 5:
			p.Forward, err = f.bool()
			err = at("forward", err)
		case 6:
			var hb []byte
			if hb, err = f.message(); err == nil {
				var h JWTHeader
				h, err = decodeJWTHeader(hb)
				p.FromHeaders = append(p.FromHeaders, h)
			}
			err = atIndex("from_headers", len(p.FromHeaders), err)
		case 7:
			var q string
			q, err = f.string()
			if err == nil && q == "" {
				err = errEmpty
			}
			p.FromParams = append(p.FromParams, q)
			err = atIndex("from_params", len(p.FromParams)-1, err)
		case 8:
			var h string
			if h, err = f.string(); err == nil && h != "" {
				refused = "forward_payload_header"
			}
		case 9:
			p.PayloadInMetadata, err = f.string()
			err = at("payload_in_metadata", err)
		case 10:
			skew, err = f.uint32()
			err = at("clock_skew_seconds", err)
		case 13:
			refused = "from_cookies"
		case 15:
			var cb []byte
			if cb, err = f.message(); err == nil {
				var c JWTClaimHeader
				c, err = decodeClaimToHeader(cb)
				p.ClaimToHeaders = append(p.ClaimToHeaders, c)
			}
			err = atIndex("claim_to_headers", len(p.ClaimToHeaders), err)
		case 18:
			_, err = f.message()
			normalized = true
			err = at("normalize_payload_in_metadata", err)
		case 19:
			refused = "subjects"
		case 21:
			refused = "max_lifetime"
		}
		return err
	})
	switch {
	case err != nil:
		return JWTProvider{}, err
	case refused != "":
		return JWTProvider{}, notSupported(refused)
	case normalized:
		return JWTProvider{}, notSupported("normalize_payload_in_metadata")
	case p.Issuer == "":
		return JWTProvider{}, at("issuer", errEmpty)
	}
	for i, a := range p.Audiences {
		if a == "" {
			return JWTProvider{}, atIndex("audiences", i, errEmpty)
		}
	}
	p.ClockSkew = time.Duration(skew) * time.Second
	if skew == 0 {
		p.ClockSkew = DefaultJWTClockSkew
	}
	if p.ClockSkew > maxJWTClockSkew {
		return JWTProvider{}, at("clock_skew_seconds", fmt.Errorf("%d above %s", skew, maxJWTClockSkew))
	}
	switch jwks.num {
	case 0:
		return JWTProvider{}, at("local_jwks", errMissing)
	case 3:
		return JWTProvider{}, at("remote_jwks", fmt.Errorf("%w (the control plane inlines key sets)", errNotSupported))
	}
	if p.JWKS, err = decodeInlineBytes(jwks.f.b); err != nil {
		return JWTProvider{}, at("local_jwks", err)
	}
	if err := checkJWKSAlgs(p.JWKS); err != nil {
		return JWTProvider{}, at("local_jwks", err)
	}
	return p, nil
}

// checkJWKSAlgs checks that the key set is a JSON object with "keys", each
// an object with an "alg": the allowed algorithms are the keys'.
func checkJWKSAlgs(b []byte) error {
	var set struct {
		Keys *[]map[string]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return fmt.Errorf("invalid JWKS: %v", err)
	}
	if set.Keys == nil {
		return errors.New("invalid JWKS: no \"keys\"")
	}
	for i, k := range *set.Keys {
		var alg string
		if json.Unmarshal(k["alg"], &alg) != nil || alg == "" {
			return fmt.Errorf("JWKS key %d has no \"alg\": the allowed algorithms are the keys'", i)
		}
	}
	return nil
}

// decodeJWTHeader decodes a JwtHeader.
func decodeJWTHeader(b []byte) (JWTHeader, error) {
	var h JWTHeader
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			h.Name, err = f.string()
			err = at("name", err)
		case 2:
			h.Prefix, err = f.string()
			err = at("value_prefix", err)
		}
		return err
	})
	if err == nil {
		if err = checkHeaderName(h.Name); err != nil || strings.HasPrefix(h.Name, ":") {
			err = at("name", fmt.Errorf("%q: invalid token header", h.Name))
		}
	}
	return h, err
}

// decodeClaimToHeader decodes a JwtClaimToHeader (claim_name, possibly
// nested "a.b"; claim_path is refused).
func decodeClaimToHeader(b []byte) (JWTClaimHeader, error) {
	var (
		c    JWTClaimHeader
		path bool
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			c.Header, err = f.string()
			err = at("header_name", err)
		case 2:
			c.Claim, err = f.string()
			err = at("claim_name", err)
		case 3:
			path = true
		}
		return err
	})
	switch {
	case err != nil:
		return c, err
	case path:
		return c, notSupported("claim_path")
	case c.Claim == "":
		return c, at("claim_name", errEmpty)
	}
	if err := checkHeaderName(c.Header); err != nil || strings.HasPrefix(c.Header, ":") {
		return c, at("header_name", fmt.Errorf("%q: invalid header name", c.Header))
	}
	return c, nil
}

// decodeExtAuthz decodes an
// envoy.extensions.filters.http.ext_authz.v3.ExtAuthz with a grpc_service
// (envoy_grpc) and transport API v3.
func decodeExtAuthz(b []byte) (ExtAuthz, error) {
	var (
		x                     ExtAuthz
		service               oneof
		apiVersion            int32
		body, status          msg
		enabled, enabledMeta  msg
		denyAtDisable         msg
		refused               string
		clearRoute, failAdd   bool
		includeTLS, shadowMod bool
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1, 3:
			err = service.message(f)
		case 2:
			x.FailureModeAllow, err = f.bool()
			err = at("failure_mode_allow", err)
		case 5:
			err = at("with_request_body", body.add(f))
		case 6:
			clearRoute, err = f.bool()
			err = at("clear_route_cache", err)
		case 7:
			err = at("status_on_error", status.add(f))
		case 8, 16, 21, 22:
			refused = map[protowire.Number]string{8: "metadata_context_namespaces", 16: "typed_metadata_context_namespaces",
				21: "route_metadata_context_namespaces", 22: "route_typed_metadata_context_namespaces"}[f.num]
		case 9:
			err = at("filter_enabled", enabled.add(f))
		case 10:
			x.IncludePeerCertificate, err = f.bool()
			err = at("include_peer_certificate", err)
		case 11:
			err = at("deny_at_disable", denyAtDisable.add(f))
		case 12:
			apiVersion, err = f.int32()
			err = at("transport_api_version", err)
		case 14:
			err = at("filter_enabled_metadata", enabledMeta.add(f))
		case 15:
			var s string
			if s, err = f.string(); err == nil && s != "" {
				refused = "bootstrap_metadata_labels_key"
			}
		case 17:
			refused = "allowed_headers"
		case 18:
			includeTLS, err = f.bool()
			err = at("include_tls_session", err)
		case 19:
			failAdd, err = f.bool()
			err = at("failure_mode_allow_header_add", err)
		case 25:
			refused = "disallowed_headers"
		case 26:
			refused = "decoder_header_mutation_rules"
		case 32:
			shadowMod, err = f.bool()
			err = at("shadow_mode", err)
		}
		return err
	})
	switch {
	case err != nil:
		return ExtAuthz{}, err
	case refused != "":
		return ExtAuthz{}, notSupported(refused)
	case clearRoute:
		return ExtAuthz{}, notSupported("clear_route_cache")
	case failAdd:
		return ExtAuthz{}, notSupported("failure_mode_allow_header_add")
	case includeTLS:
		return ExtAuthz{}, notSupported("include_tls_session")
	case shadowMod:
		return ExtAuthz{}, notSupported("shadow_mode")
	case apiVersion != 0 && apiVersion != 2: // AUTO (v3 today), V3
		return ExtAuthz{}, at("transport_api_version", fmt.Errorf("value %d: only V3 is supported", apiVersion))
	}
	switch service.num {
	case 0:
		return ExtAuthz{}, at("grpc_service", errMissing)
	case 3:
		return ExtAuthz{}, notSupported("http_service")
	}
	if x.Cluster, x.Timeout, err = decodeAuthzGRPCService(service.f.b); err != nil {
		return ExtAuthz{}, at("grpc_service", err)
	}
	if body.set {
		if x.MaxRequestBytes, err = decodeBufferSettings(body.b); err != nil {
			return ExtAuthz{}, at("with_request_body", err)
		}
	}
	x.StatusOnError = 403
	if status.set {
		var code int32
		err := walk(status.b, func(f field) error {
			var err error
			if f.num == 1 {
				code, err = f.int32()
			}
			return at("code", err)
		})
		if err == nil && (code < 200 || code > 599) {
			err = at("code", fmt.Errorf("%d out of range 200..599", code))
		}
		if err != nil {
			return ExtAuthz{}, at("status_on_error", err)
		}
		x.StatusOnError = int(code)
	}
	if enabled.set {
		v, err := decodeRuntimeFractionalPercent(enabled.b)
		if err == nil && v != 1e6 {
			err = fmt.Errorf("below 100%%: %w", errNotSupported)
		}
		if err != nil {
			return ExtAuthz{}, at("filter_enabled", err)
		}
	}
	if denyAtDisable.set {
		var def msg
		err := walk(denyAtDisable.b, func(f field) error {
			if f.num == 1 {
				return at("default_value", def.add(f))
			}
			return nil
		})
		var deny bool
		if err == nil && def.set {
			deny, err = decodeBoolValue(def.b)
			err = at("default_value", err)
		}
		if err == nil && deny {
			err = errNotSupported
		}
		if err != nil {
			return ExtAuthz{}, at("deny_at_disable", err)
		}
	}
	if enabledMeta.set {
		if x.EnabledByShadow, err = decodeShadowGate(enabledMeta.b); err != nil {
			return ExtAuthz{}, at("filter_enabled_metadata", err)
		}
	}
	return x, nil
}

// decodeAuthzGRPCService decodes an envoy.config.core.v3.GrpcService with
// envoy_grpc. initial_metadata (sent to the authorizer) is refused.
func decodeAuthzGRPCService(b []byte) (cluster string, timeout time.Duration, err error) {
	var target oneof
	var to msg
	var metadata bool
	err = walk(b, func(f field) error {
		switch f.num {
		case 1, 2:
			return target.message(f)
		case 3:
			return at("timeout", to.add(f))
		case 5:
			metadata = true
		}
		return nil
	})
	switch {
	case err != nil:
		return "", 0, err
	case metadata:
		return "", 0, notSupported("initial_metadata")
	case target.num == 0:
		return "", 0, at("envoy_grpc", errMissing)
	case target.num == 2:
		return "", 0, notSupported("google_grpc")
	}
	err = walk(target.f.b, func(f field) error {
		var err error
		if f.num == 1 {
			cluster, err = f.string()
		}
		return at("cluster_name", err)
	})
	if err == nil && cluster == "" {
		err = at("cluster_name", errEmpty)
	}
	if err != nil {
		return "", 0, at("envoy_grpc", err)
	}
	if timeout, err = positiveDuration(to, DefaultExtAuthzTimeout); err != nil {
		return "", 0, at("timeout", err)
	}
	return cluster, timeout, nil
}

// decodeBufferSettings decodes an ext_authz BufferSettings into
// max_request_bytes; pack_as_bytes is refused (the body is sent as a
// string, valid UTF-8 or not, as Envoy's default does).
func decodeBufferSettings(b []byte) (uint32, error) {
	var (
		n    uint32
		pack bool
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			n, err = f.uint32()
			err = at("max_request_bytes", err)
		case 3:
			pack, err = f.bool()
			err = at("pack_as_bytes", err)
		}
		return err
	})
	switch {
	case err != nil:
		return 0, err
	case pack:
		return 0, notSupported("pack_as_bytes")
	case n == 0:
		return 0, at("max_request_bytes", errors.New("must be positive"))
	}
	return n, nil
}

// decodeShadowGate decodes the filter_enabled_metadata of a CUSTOM
// provider's ext_authz: {filter: "envoy.filters.http.rbac", path: [{key:
// "shadow_effective_policy_id"}], value: {string_match: {prefix: P}}}, into P.
func decodeShadowGate(b []byte) (string, error) {
	var p Principal
	var (
		filter string
		value  msg
		path   [][]byte
		invert bool
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			filter, err = f.string()
			err = at("filter", err)
		case 2:
			var pb []byte
			pb, err = f.message()
			path = append(path, pb)
			err = atIndex("path", len(path)-1, err)
		case 3:
			err = at("value", value.add(f))
		case 4:
			invert, err = f.bool()
			err = at("invert", err)
		}
		return err
	})
	if err != nil {
		return "", err
	}
	keys, err := decodeMetadataPath(path)
	switch {
	case err != nil:
		return "", err
	case filter != FilterRBAC:
		return "", at("filter", fmt.Errorf("%q: %w (only %s)", filter, errNotSupported, FilterRBAC))
	case len(keys) != 1 || keys[0] != shadowPolicyKey:
		return "", at("path", fmt.Errorf("only [{key: %q}] is %w", shadowPolicyKey, errNotSupported))
	case invert:
		return "", notSupported("invert")
	case !value.set:
		return "", at("value", errMissing)
	}
	var inList bool
	p.Value, inList, err = decodeClaimValue(value.b, false)
	if err == nil && (inList || p.Value.Kind != MatchPrefix || p.Value.IgnoreCase) {
		err = fmt.Errorf("only string_match.prefix is %w", errNotSupported)
	}
	return p.Value.Value, at("value", err)
}

// decodeSet decodes the repeated message field 1 of an RBAC set
// (Permission.Set.rules, Principal.Set.ids): at least one element, each
// decoded by decode, errors at name[i].
func decodeSet[T any](b []byte, name string, decode func([]byte) (T, error)) ([]T, error) {
	var raw [][]byte
	err := walk(b, func(f field) error {
		if f.num != 1 {
			return nil
		}
		eb, err := f.message()
		raw = append(raw, eb)
		return atIndex(name, len(raw)-1, err)
	})
	if err == nil && len(raw) == 0 {
		err = at(name, errEmpty)
	}
	out := make([]T, 0, len(raw))
	for i := 0; err == nil && i < len(raw); i++ {
		var v T
		v, err = decode(raw[i])
		out = append(out, v)
		err = atIndex(name, i, err)
	}
	return out, err
}
