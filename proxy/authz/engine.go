package authz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/weftmesh/weft/proxy/xdsresource"
)

// step is one authorization filter after the jwt_authn filter's place:
// an RBAC filter (rules and/or shadow rules) or an ext_authz filter.
type step struct {
	rules, shadow *policySet
	ext           *xdsresource.ExtAuthz
	// claims: the jwt_authn filter comes before this one, so its metadata
	// (the verified claims) is visible to it.
	claims bool
}

// policySet is a compiled envoy.config.rbac.v3.RBAC.
type policySet struct {
	action   xdsresource.RBACAction
	policies []policy // sorted by name
}

type policy struct {
	name  string
	match pred
}

// pred is a compiled permission or principal.
type pred func(r *Request) bool

func (e *Engine) now() time.Time {
	if e.opts.Now != nil {
		return e.opts.Now()
	}
	return time.Now()
}

// MaxRequestBytes is how much of the request body the ext_authz filters
// want in Request.Body (0: none).
func (e *Engine) MaxRequestBytes() uint32 {
	if e == nil {
		return 0
	}
	return e.maxBody
}

// ClaimHeaders are the request headers JWT claims are copied to (lower
// case): the client's copies are removed by Authenticate, and may also be
// stripped by normalize.Options.StripHeaders.
func (e *Engine) ClaimHeaders() []string {
	if e == nil || e.jwt == nil {
		return nil
	}
	return append([]string(nil), e.jwt.claimHeaders...)
}

func compile(f *xdsresource.AuthzFilters, opts Options) (*Engine, error) {
	e := &Engine{opts: opts}
	if f == nil {
		return e, nil
	}
	order := f.Order
	if order == nil {
		// Built by hand without an order: JWT, then RBAC, then ext_authz.
		if f.JWT != nil {
			order = append(order, xdsresource.FilterJWTAuthn)
		}
		for range f.RBAC {
			order = append(order, xdsresource.FilterRBAC)
		}
		for range f.ExtAuthz {
			order = append(order, xdsresource.FilterExtAuthz)
		}
	}
	var nRBAC, nExt int
	claims := false
	for i, kind := range order {
		switch kind {
		case xdsresource.FilterJWTAuthn:
			if f.JWT == nil || e.jwt != nil {
				return nil, fmt.Errorf("filter %d: jwt_authn without a config, or twice", i)
			}
			j, err := compileJWT(f.JWT)
			if err != nil {
				return nil, fmt.Errorf("jwt_authn: %w", err)
			}
			e.jwt, claims = j, true
		case xdsresource.FilterRBAC:
			if nRBAC >= len(f.RBAC) {
				return nil, fmt.Errorf("filter %d: rbac without a config", i)
			}
			r := &f.RBAC[nRBAC]
			nRBAC++
			s := step{claims: claims}
			var err error
			if r.Rules != nil {
				if s.rules, err = compileRBAC(r.Rules, false); err != nil {
					return nil, fmt.Errorf("rbac filter %d: rules: %w", nRBAC-1, err)
				}
			}
			if r.ShadowRules != nil {
				if s.shadow, err = compileRBAC(r.ShadowRules, false); err != nil {
					return nil, fmt.Errorf("rbac filter %d: shadow_rules: %w", nRBAC-1, err)
				}
			}
			e.steps = append(e.steps, s)
		case xdsresource.FilterExtAuthz:
			if nExt >= len(f.ExtAuthz) {
				return nil, fmt.Errorf("filter %d: ext_authz without a config", i)
			}
			x := f.ExtAuthz[nExt]
			nExt++
			switch {
			case opts.ExtAuthz == nil:
				return nil, errors.New("ext_authz filter but no Options.ExtAuthz")
			case x.Cluster == "":
				return nil, errors.New("ext_authz filter without a cluster")
			}
			if x.Timeout <= 0 {
				x.Timeout = xdsresource.DefaultExtAuthzTimeout
			}
			if x.StatusOnError == 0 {
				x.StatusOnError = http.StatusForbidden
			}
			e.maxBody = max(e.maxBody, x.MaxRequestBytes)
			e.steps = append(e.steps, step{ext: &x, claims: claims})
		default:
			return nil, fmt.Errorf("filter %d: unknown authorization filter %q", i, kind)
		}
	}
	if nRBAC != len(f.RBAC) || nExt != len(f.ExtAuthz) || (f.JWT != nil && e.jwt == nil) {
		return nil, errors.New("filter order does not name every filter config")
	}
	return e, nil
}

func compileNetwork(r *xdsresource.NetworkRBAC) (*Engine, error) {
	e := &Engine{}
	for i := 0; r != nil; i, r = i+1, r.Then {
		if i > 64 {
			return nil, errors.New("network rbac: too many filters")
		}
		s := step{}
		var err error
		if r.Rules != nil {
			if s.rules, err = compileRBAC(r.Rules, true); err != nil {
				return nil, fmt.Errorf("network rbac %d: rules: %w", i, err)
			}
		}
		if r.ShadowRules != nil {
			if s.shadow, err = compileRBAC(r.ShadowRules, true); err != nil {
				return nil, fmt.Errorf("network rbac %d: shadow_rules: %w", i, err)
			}
		}
		e.steps = append(e.steps, s)
	}
	return e, nil
}

func compileRBAC(r *xdsresource.RBAC, l4 bool) (*policySet, error) {
	switch r.Action {
	case xdsresource.RBACAllow, xdsresource.RBACDeny, xdsresource.RBACLog:
	default:
		return nil, fmt.Errorf("unknown action %d", r.Action)
	}
	ps := &policySet{action: r.Action}
	sorted := slices.SortedFunc(slices.Values(r.Policies), func(a, b xdsresource.RBACPolicy) int { return strings.Compare(a.Name, b.Name) })
	for i, p := range sorted {
		if i > 0 && sorted[i-1].Name == p.Name {
			return nil, fmt.Errorf("policy %q: defined twice", p.Name)
		}
		if len(p.Permissions) == 0 || len(p.Principals) == 0 {
			return nil, fmt.Errorf("policy %q: needs permissions and principals", p.Name)
		}
		perms, err := compileAny(p.Permissions, func(p *xdsresource.Permission) (pred, error) { return compilePermission(p, l4, 0) })
		if err != nil {
			return nil, fmt.Errorf("policy %q: permissions: %w", p.Name, err)
		}
		prins, err := compileAny(p.Principals, func(p *xdsresource.Principal) (pred, error) { return compilePrincipal(p, l4, 0) })
		if err != nil {
			return nil, fmt.Errorf("policy %q: principals: %w", p.Name, err)
		}
		ps.policies = append(ps.policies, policy{name: p.Name, match: func(r *Request) bool { return perms(r) && prins(r) }})
	}
	return ps, nil
}

// first returns the first policy (by name) that matches.
func (ps *policySet) first(r *Request) (string, bool) {
	for _, p := range ps.policies {
		if p.match(r) {
			return p.name, true
		}
	}
	return "", false
}

// all appends the names of every matching policy.
func (ps *policySet) all(r *Request, dst []string) []string {
	for _, p := range ps.policies {
		if p.match(r) {
			dst = append(dst, p.name)
		}
	}
	return dst
}

const maxDepth = 100

// compileAny compiles rules into one predicate that matches when any
// does (and compileAll when all do).
func compileAny[T any](rules []T, c func(*T) (pred, error)) (pred, error) {
	ps, err := compileEach(rules, c)
	if err != nil {
		return nil, err
	}
	return func(r *Request) bool {
		for _, p := range ps {
			if p(r) {
				return true
			}
		}
		return false
	}, nil
}

func compileAll[T any](rules []T, c func(*T) (pred, error)) (pred, error) {
	ps, err := compileEach(rules, c)
	if err != nil {
		return nil, err
	}
	return func(r *Request) bool {
		for _, p := range ps {
			if !p(r) {
				return false
			}
		}
		return true
	}, nil
}

func compileEach[T any](rules []T, c func(*T) (pred, error)) ([]pred, error) {
	if len(rules) == 0 {
		return nil, errors.New("empty rule set")
	}
	ps := make([]pred, len(rules))
	for i := range rules {
		p, err := c(&rules[i])
		if err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		ps[i] = p
	}
	return ps, nil
}

var errL4 = errors.New("not an L4 attribute (network RBAC)")

func compilePermission(p *xdsresource.Permission, l4 bool, depth int) (pred, error) {
	if depth > maxDepth {
		return nil, errors.New("rules nested too deep")
	}
	sub := func(q *xdsresource.Permission) (pred, error) { return compilePermission(q, l4, depth+1) }
	switch p.Kind {
	case xdsresource.PermAny:
		return func(*Request) bool { return true }, nil
	case xdsresource.PermAnd:
		return compileAll(p.Rules, sub)
	case xdsresource.PermOr:
		return compileAny(p.Rules, sub)
	case xdsresource.PermNot:
		if len(p.Rules) != 1 {
			return nil, errors.New("not_rule: want exactly one rule")
		}
		q, err := sub(&p.Rules[0])
		if err != nil {
			return nil, err
		}
		return func(r *Request) bool { return !q(r) }, nil
	case xdsresource.PermDestPort:
		port := p.Port
		return func(r *Request) bool { return r.DestPort == port }, nil
	case xdsresource.PermDestIP:
		return compileCIDR(p.CIDR, func(r *Request) netip.Addr { return r.DestIP })
	}
	if l4 {
		return nil, fmt.Errorf("permission kind %d: %w", p.Kind, errL4)
	}
	switch p.Kind {
	case xdsresource.PermHeader:
		return compileHeader(&p.Header)
	case xdsresource.PermURLPath:
		m, err := compileString(&p.Path)
		if err != nil {
			return nil, err
		}
		return func(r *Request) bool { return m(r.Path) }, nil
	case xdsresource.PermServerName:
		m, err := compileString(&p.ServerName)
		if err != nil {
			return nil, err
		}
		return func(r *Request) bool { return r.ServerName != "" && m(r.ServerName) }, nil
	}
	return nil, fmt.Errorf("unknown permission kind %d", p.Kind)
}

func compilePrincipal(p *xdsresource.Principal, l4 bool, depth int) (pred, error) {
	if depth > maxDepth {
		return nil, errors.New("ids nested too deep")
	}
	sub := func(q *xdsresource.Principal) (pred, error) { return compilePrincipal(q, l4, depth+1) }
	switch p.Kind {
	case xdsresource.PrinAny:
		return func(*Request) bool { return true }, nil
	case xdsresource.PrinAnd:
		return compileAll(p.IDs, sub)
	case xdsresource.PrinOr:
		return compileAny(p.IDs, sub)
	case xdsresource.PrinNot:
		if len(p.IDs) != 1 {
			return nil, errors.New("not_id: want exactly one id")
		}
		q, err := sub(&p.IDs[0])
		if err != nil {
			return nil, err
		}
		return func(r *Request) bool { return !q(r) }, nil
	case xdsresource.PrinAuthenticated:
		if p.Name.Kind == 0 {
			return func(r *Request) bool { return r.PeerID != "" }, nil
		}
		m, err := compileString(&p.Name)
		if err != nil {
			return nil, err
		}
		return func(r *Request) bool { return r.PeerID != "" && m(r.PeerID) }, nil
	case xdsresource.PrinDirectRemoteIP:
		return compileCIDR(p.CIDR, func(r *Request) netip.Addr { return r.DirectIP })
	case xdsresource.PrinRemoteIP:
		return compileCIDR(p.CIDR, func(r *Request) netip.Addr {
			if r.RemoteIP.IsValid() {
				return r.RemoteIP
			}
			return r.DirectIP
		})
	}
	if l4 {
		return nil, fmt.Errorf("principal kind %d: %w", p.Kind, errL4)
	}
	switch p.Kind {
	case xdsresource.PrinHeader:
		return compileHeader(&p.Header)
	case xdsresource.PrinURLPath:
		m, err := compileString(&p.Path)
		if err != nil {
			return nil, err
		}
		return func(r *Request) bool { return m(r.Path) }, nil
	case xdsresource.PrinMetadata:
		return compileClaim(p)
	}
	return nil, fmt.Errorf("unknown principal kind %d", p.Kind)
}

// compileCIDR matches the address get returns against prefix; an invalid
// address never matches. IPv4-mapped IPv6 addresses match IPv4 prefixes
// and the other way round.
func compileCIDR(prefix netip.Prefix, get func(*Request) netip.Addr) (pred, error) {
	if !prefix.IsValid() {
		return nil, fmt.Errorf("invalid CIDR %v", prefix)
	}
	prefix = prefix.Masked()
	return func(r *Request) bool {
		a := get(r)
		if !a.IsValid() {
			return false
		}
		a = a.WithZone("")
		return prefix.Contains(a) || prefix.Contains(a.Unmap()) || (a.Is4() && prefix.Contains(netip.AddrFrom16(a.As16())))
	}, nil
}

// compileString compiles a StringMatch.
func compileString(m *xdsresource.StringMatch) (func(string) bool, error) {
	v := m.Value
	if m.IgnoreCase && m.Kind != xdsresource.MatchRegex {
		lv := strings.ToLower(v)
		switch m.Kind {
		case xdsresource.MatchExact:
			return func(s string) bool { return strings.EqualFold(s, v) }, nil
		case xdsresource.MatchPrefix:
			return func(s string) bool { return len(s) >= len(v) && strings.EqualFold(s[:len(v)], v) }, nil
		case xdsresource.MatchSuffix:
			return func(s string) bool { return len(s) >= len(v) && strings.EqualFold(s[len(s)-len(v):], v) }, nil
		case xdsresource.MatchContains:
			return func(s string) bool { return strings.Contains(strings.ToLower(s), lv) }, nil
		}
	}
	switch m.Kind {
	case xdsresource.MatchExact:
		return func(s string) bool { return s == v }, nil
	case xdsresource.MatchPrefix:
		return func(s string) bool { return strings.HasPrefix(s, v) }, nil
	case xdsresource.MatchSuffix:
		return func(s string) bool { return strings.HasSuffix(s, v) }, nil
	case xdsresource.MatchContains:
		return func(s string) bool { return strings.Contains(s, v) }, nil
	case xdsresource.MatchRegex:
		re := m.Regex
		if re == nil {
			return nil, errors.New("regex match without a compiled regex")
		}
		return re.MatchString, nil
	}
	return nil, fmt.Errorf("unknown string match kind %d", m.Kind)
}

// compileHeader compiles a header matcher. Pseudo-headers :method,
// :authority (also "host") and :path (with the query) come from the
// request line; other pseudo-headers are a compile error. Weft semantics:
// a header with several values (several fields, as normalize keeps them)
// matches when ANY of its values matches, in ALLOW and DENY rules alike;
// the values are never joined. invert_match inverts that result: an
// inverted matcher matches when no value matches (or the header is
// absent).
func compileHeader(h *xdsresource.HeaderMatcher) (pred, error) {
	name := strings.ToLower(h.Name)
	var values func(r *Request) []string
	switch name {
	case ":method":
		values = func(r *Request) []string { return []string{r.Method} }
	case ":authority", "host":
		values = func(r *Request) []string { return []string{r.Host} }
	case ":path":
		values = func(r *Request) []string {
			if r.Query != "" {
				return []string{r.Path + "?" + r.Query}
			}
			return []string{r.Path}
		}
	case ":scheme":
		values = func(r *Request) []string {
			if r.Scheme == "" {
				return nil
			}
			return []string{r.Scheme}
		}
	default:
		if name == "" || strings.HasPrefix(name, ":") {
			return nil, fmt.Errorf("header %q: unknown pseudo-header", h.Name)
		}
		canon := http.CanonicalHeaderKey(name)
		values = func(r *Request) []string {
			if r.Header == nil {
				return nil
			}
			if v, ok := r.Header[canon]; ok {
				return v
			}
			return r.Header.Values(name)
		}
	}
	invert := h.Invert
	if h.Present {
		return func(r *Request) bool { return (len(values(r)) > 0) != invert }, nil
	}
	m, err := compileString(&h.String)
	if err != nil {
		return nil, fmt.Errorf("header %q: %w", h.Name, err)
	}
	return func(r *Request) bool {
		for _, v := range values(r) {
			if m(v) {
				return !invert
			}
		}
		return invert
	}, nil
}

// compileClaim compiles a metadata principal: the claim at Claim in the
// verified payload named Payload. A string claim is compared as it is,
// numbers and booleans as their JSON text; with InList, any element of a
// list claim. A missing payload or claim does not match (an inverted
// matcher then does).
func compileClaim(p *xdsresource.Principal) (pred, error) {
	if p.Payload == "" || len(p.Claim) == 0 {
		return nil, errors.New("metadata: want a payload name and a claim")
	}
	m, err := compileString(&p.Value)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	payload, path, inList, invert := p.Payload, append([]string(nil), p.Claim...), p.InList, p.Invert
	return func(r *Request) bool {
		v, ok := claimAt(r.Claims[payload], path)
		result := false
		if ok {
			if inList {
				if list, isList := v.([]any); isList {
					for _, e := range list {
						if s, ok := scalarText(e); ok && m(s) {
							result = true
							break
						}
					}
				}
			} else if s, ok := scalarText(v); ok {
				result = m(s)
			}
		}
		return result != invert
	}, nil
}

// claimAt walks path through nested JSON objects.
func claimAt(payload map[string]any, path []string) (any, bool) {
	if payload == nil {
		return nil, false
	}
	var v any = payload
	for _, k := range path {
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = obj[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

// scalarText renders a string, number or boolean claim as text (numbers
// and booleans as in JSON).
func scalarText(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	case bool:
		return strconv.FormatBool(v), true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	case int:
		return strconv.Itoa(v), true
	case int64:
		return strconv.FormatInt(v, 10), true
	}
	return "", false
}

// check runs the filters in order.
func (e *Engine) check(ctx context.Context, req *Request) Decision {
	if e.deny != "" {
		return Decision{Status: http.StatusForbidden, Reason: e.deny}
	}
	if req == nil {
		req = &Request{}
	}
	var (
		audit   []string
		headers http.Header
		noJWT   *Request // req without claims, for filters before jwt_authn
		// shadow is the policy the shadow rules of the latest RBAC filter
		// with shadow rules matched ("" for none).
		shadow string
	)
	deny := func(d Decision) Decision {
		d.Allowed = false
		d.Audit = audit
		if d.Status == 0 {
			d.Status = http.StatusForbidden
		}
		return d
	}
	for i := range e.steps {
		s := &e.steps[i]
		r := req
		if !s.claims && req.Claims != nil {
			if noJWT == nil {
				c := *req
				c.Claims = nil
				noJWT = &c
			}
			r = noJWT
		}
		if s.ext == nil {
			if ps := s.rules; ps != nil {
				switch ps.action {
				case xdsresource.RBACAllow:
					if _, ok := ps.first(r); !ok {
						return deny(Decision{Reason: "no ALLOW policy matched"})
					}
				case xdsresource.RBACDeny:
					if name, ok := ps.first(r); ok {
						return deny(Decision{Policy: name, Reason: "DENY policy matched"})
					}
				case xdsresource.RBACLog:
					audit = ps.all(r, audit)
				}
			}
			if ps := s.shadow; ps != nil {
				shadow, _ = ps.first(r)
				if ps.action == xdsresource.RBACLog {
					audit = ps.all(r, audit)
				}
			}
			continue
		}
		x := s.ext
		if x.EnabledByShadow != "" && !strings.HasPrefix(shadow, x.EnabledByShadow) {
			continue
		}
		d, err := e.askExtAuthz(ctx, x, r)
		if err != nil {
			if x.FailureModeAllow {
				continue
			}
			return deny(Decision{Status: x.StatusOnError, Policy: x.Cluster, Reason: "ext_authz " + x.Cluster + ": " + err.Error()})
		}
		if !d.Allowed {
			if d.Policy == "" {
				d.Policy = x.Cluster
			}
			if d.Reason == "" {
				d.Reason = "ext_authz " + x.Cluster + " denied"
			}
			d.Headers = nil
			return deny(d)
		}
		for k, vs := range d.Headers {
			if headers == nil {
				headers = http.Header{}
			}
			headers[k] = append(headers[k], vs...)
		}
	}
	return Decision{Allowed: true, Audit: audit, Headers: headers}
}

// askExtAuthz asks the authorizer with the filter's timeout.
func (e *Engine) askExtAuthz(ctx context.Context, x *xdsresource.ExtAuthz, r *Request) (d Decision, err error) {
	ctx, cancel := context.WithTimeout(ctx, x.Timeout)
	defer cancel()
	if !x.IncludePeerCertificate && r.PeerCertificate != "" {
		c := *r
		c.PeerCertificate = ""
		r = &c
	}
	if x.MaxRequestBytes == 0 && r.Body != nil {
		c := *r
		c.Body = nil
		r = &c
	} else if uint32(len(r.Body)) > x.MaxRequestBytes {
		c := *r
		c.Body = c.Body[:x.MaxRequestBytes]
		r = &c
	}
	d, err = e.opts.ExtAuthz(ctx, x.Cluster, r)
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	return d, err
}
