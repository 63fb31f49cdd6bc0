package resource

import (
	"fmt"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1alpha2 "sigs.k8s.io/gateway-api/apis/v1alpha2"
)

// Limits of filters, from the Gateway API's CRD validation.
const (
	maxFilters         = 16
	maxHeaderModifiers = 16
	maxPathLength      = 1024
)

// validateHTTPFilters checks a rule's filters and the rules between them
// (and with the rule's matches and backends) the Gateway API sets.
func validateHTTPFilters(rp *field.Path, rule gatewayv1.HTTPRouteRule, namespace string) field.ErrorList {
	var errs field.ErrorList
	p := rp.Child("filters")
	if len(rule.Filters) > maxFilters {
		errs = append(errs, field.TooMany(p, len(rule.Filters), maxFilters))
	}
	seen := map[gatewayv1.HTTPRouteFilterType]bool{}
	var redirect, rewrite bool
	for i, f := range rule.Filters {
		fp := p.Index(i)
		if f.Type != gatewayv1.HTTPRouteFilterRequestMirror && seen[f.Type] {
			errs = append(errs, field.Duplicate(fp.Child("type"), f.Type))
		}
		seen[f.Type] = true
		errs = append(errs, onlyConfigOf(fp, string(f.Type), map[string]bool{
			"RequestHeaderModifier":  f.RequestHeaderModifier != nil,
			"ResponseHeaderModifier": f.ResponseHeaderModifier != nil,
			"RequestRedirect":        f.RequestRedirect != nil,
			"URLRewrite":             f.URLRewrite != nil,
			"RequestMirror":          f.RequestMirror != nil,
			"CORS":                   f.CORS != nil,
			"ExternalAuth":           f.ExternalAuth != nil,
			"ExtensionRef":           f.ExtensionRef != nil,
		})...)
		switch f.Type {
		case gatewayv1.HTTPRouteFilterRequestHeaderModifier:
			errs = append(errs, validateHeaderModifier(fp.Child("requestHeaderModifier"), f.RequestHeaderModifier, true)...)
		case gatewayv1.HTTPRouteFilterResponseHeaderModifier:
			errs = append(errs, validateHeaderModifier(fp.Child("responseHeaderModifier"), f.ResponseHeaderModifier, false)...)
		case gatewayv1.HTTPRouteFilterRequestRedirect:
			redirect = true
			errs = append(errs, validateRedirect(fp.Child("requestRedirect"), f.RequestRedirect, rule.Matches)...)
		case gatewayv1.HTTPRouteFilterURLRewrite:
			rewrite = true
			errs = append(errs, validateRewrite(fp.Child("urlRewrite"), f.URLRewrite, rule.Matches)...)
		case gatewayv1.HTTPRouteFilterRequestMirror:
			errs = append(errs, validateMirror(fp.Child("requestMirror"), f.RequestMirror, namespace)...)
		case gatewayv1.HTTPRouteFilterCORS, gatewayv1.HTTPRouteFilterExternalAuth, gatewayv1.HTTPRouteFilterExtensionRef:
			errs = append(errs, field.NotSupported(fp.Child("type"), f.Type, supportedHTTPFilters))
		default:
			errs = append(errs, field.NotSupported(fp.Child("type"), f.Type, supportedHTTPFilters))
		}
	}
	if redirect && rewrite {
		errs = append(errs, field.Forbidden(p, "RequestRedirect and URLRewrite cannot be used in the same rule"))
	}
	if redirect && len(rule.BackendRefs) > 0 {
		errs = append(errs, field.Forbidden(rp.Child("backendRefs"), "a rule with a RequestRedirect filter answers the redirect itself: it must have no backendRefs"))
	}
	return errs
}

// supportedHTTPFilters lists the filter types Weft honours (CORS,
// ExternalAuth and ExtensionRef are not supported).
var supportedHTTPFilters = []string{"RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect", "URLRewrite", "RequestMirror"}

// onlyConfigOf checks that a filter carries the configuration of its type
// and no other: set maps each type to whether its field is set.
func onlyConfigOf(fp *field.Path, typ string, set map[string]bool) field.ErrorList {
	var errs field.ErrorList
	for t, ok := range set {
		if t == typ || !ok {
			continue
		}
		errs = append(errs, field.Forbidden(fp.Child(configField(t)), fmt.Sprintf("must not be set when type is %q", typ)))
	}
	if known, ok := set[typ]; ok && !known {
		errs = append(errs, field.Required(fp.Child(configField(typ)), fmt.Sprintf("required when type is %q", typ)))
	}
	// Stable order for messages.
	sortErrors(errs)
	return errs
}

func configField(typ string) string {
	switch typ {
	case "URLRewrite":
		return "urlRewrite"
	case "CORS":
		return "cors"
	}
	return strings.ToLower(typ[:1]) + typ[1:]
}

func sortErrors(errs field.ErrorList) {
	for i := 1; i < len(errs); i++ {
		for j := i; j > 0 && errs[j].Field < errs[j-1].Field; j-- {
			errs[j], errs[j-1] = errs[j-1], errs[j]
		}
	}
}

// validateHeaderModifier checks set/add/remove: valid names, each name at
// most once in the whole modifier, at most 16 per list.
func validateHeaderModifier(p *field.Path, m *gatewayv1.HTTPHeaderFilter, request bool) field.ErrorList {
	if m == nil {
		return nil
	}
	var errs field.ErrorList
	if len(m.Set) == 0 && len(m.Add) == 0 && len(m.Remove) == 0 {
		errs = append(errs, field.Required(p, "set, add or remove at least one header"))
	}
	seen := map[string]bool{}
	name := func(np *field.Path, n string) {
		switch {
		case !headerNameRE.MatchString(n):
			errs = append(errs, field.Invalid(np, n, "must be a valid HTTP header name"))
		case request && strings.EqualFold(n, "host"):
			errs = append(errs, field.Invalid(np, n, "the Host header cannot be modified here; use a URLRewrite filter's hostname"))
		case seen[strings.ToLower(n)]:
			errs = append(errs, field.Duplicate(np, n))
		}
		seen[strings.ToLower(n)] = true
	}
	for _, list := range []struct {
		name    string
		headers []gatewayv1.HTTPHeader
	}{{"set", m.Set}, {"add", m.Add}} {
		lp := p.Child(list.name)
		if len(list.headers) > maxHeaderModifiers {
			errs = append(errs, field.TooMany(lp, len(list.headers), maxHeaderModifiers))
		}
		for i, h := range list.headers {
			name(lp.Index(i).Child("name"), string(h.Name))
			if strings.ContainsAny(h.Value, "\r\n\x00") {
				errs = append(errs, field.Invalid(lp.Index(i).Child("value"), h.Value, "must not contain CR, LF or NUL"))
			}
		}
	}
	rp := p.Child("remove")
	if len(m.Remove) > maxHeaderModifiers {
		errs = append(errs, field.TooMany(rp, len(m.Remove), maxHeaderModifiers))
	}
	for i, n := range m.Remove {
		name(rp.Index(i), n)
	}
	return errs
}

func validateRedirect(p *field.Path, r *gatewayv1.HTTPRequestRedirectFilter, matches []gatewayv1.HTTPRouteMatch) field.ErrorList {
	if r == nil {
		return nil
	}
	var errs field.ErrorList
	if r.Scheme != nil && *r.Scheme != "http" && *r.Scheme != "https" {
		errs = append(errs, field.NotSupported(p.Child("scheme"), *r.Scheme, []string{"http", "https"}))
	}
	if r.Hostname != nil {
		errs = append(errs, validatePreciseHostname(p.Child("hostname"), string(*r.Hostname))...)
	}
	if r.Port != nil {
		errs = append(errs, validatePort(p.Child("port"), int32(*r.Port))...)
	}
	if r.StatusCode != nil {
		switch *r.StatusCode {
		case 301, 302, 303, 307, 308:
		default:
			errs = append(errs, field.NotSupported(p.Child("statusCode"), *r.StatusCode, []string{"301", "302", "303", "307", "308"}))
		}
	}
	if r.Path != nil {
		errs = append(errs, validatePathModifier(p.Child("path"), r.Path, matches)...)
	}
	return errs
}

func validateRewrite(p *field.Path, r *gatewayv1.HTTPURLRewriteFilter, matches []gatewayv1.HTTPRouteMatch) field.ErrorList {
	if r == nil {
		return nil
	}
	var errs field.ErrorList
	if r.Hostname == nil && r.Path == nil {
		errs = append(errs, field.Required(p, "set hostname, path or both"))
	}
	if r.Hostname != nil {
		errs = append(errs, validatePreciseHostname(p.Child("hostname"), string(*r.Hostname))...)
	}
	if r.Path != nil {
		errs = append(errs, validatePathModifier(p.Child("path"), r.Path, matches)...)
	}
	return errs
}

func validatePreciseHostname(p *field.Path, h string) field.ErrorList {
	var errs field.ErrorList
	for _, m := range validation.IsDNS1123Subdomain(h) {
		errs = append(errs, field.Invalid(p, h, m))
	}
	return errs
}

// validatePathModifier checks a ReplaceFullPath or ReplacePrefixMatch; the
// latter only when every match of the rule is a PathPrefix match.
func validatePathModifier(p *field.Path, m *gatewayv1.HTTPPathModifier, matches []gatewayv1.HTTPRouteMatch) field.ErrorList {
	var errs field.ErrorList
	check := func(fp *field.Path, v string) {
		switch {
		case !strings.HasPrefix(v, "/"):
			errs = append(errs, field.Invalid(fp, v, "must be an absolute path (start with /)"))
		case len(v) > maxPathLength:
			errs = append(errs, field.TooLong(fp, v, maxPathLength))
		case strings.ContainsAny(v, "?#\r\n\x00") || strings.Contains(v, "//"):
			errs = append(errs, field.Invalid(fp, v, "must not contain '//', '?', '#' or control characters"))
		}
	}
	switch m.Type {
	case gatewayv1.FullPathHTTPPathModifier:
		if m.ReplaceFullPath == nil {
			errs = append(errs, field.Required(p.Child("replaceFullPath"), "required when type is ReplaceFullPath"))
		} else {
			check(p.Child("replaceFullPath"), *m.ReplaceFullPath)
		}
		if m.ReplacePrefixMatch != nil {
			errs = append(errs, field.Forbidden(p.Child("replacePrefixMatch"), "must not be set when type is ReplaceFullPath"))
		}
	case gatewayv1.PrefixMatchHTTPPathModifier:
		if m.ReplacePrefixMatch == nil {
			errs = append(errs, field.Required(p.Child("replacePrefixMatch"), "required when type is ReplacePrefixMatch"))
		} else {
			check(p.Child("replacePrefixMatch"), *m.ReplacePrefixMatch)
		}
		if m.ReplaceFullPath != nil {
			errs = append(errs, field.Forbidden(p.Child("replaceFullPath"), "must not be set when type is ReplacePrefixMatch"))
		}
		for _, mt := range matches {
			if mt.Path == nil || mt.Path.Type == nil || *mt.Path.Type != gatewayv1.PathMatchPathPrefix {
				errs = append(errs, field.Invalid(p.Child("type"), m.Type, "ReplacePrefixMatch needs every match of the rule to be a PathPrefix match"))
				break
			}
		}
	default:
		errs = append(errs, field.NotSupported(p.Child("type"), m.Type, []string{"ReplaceFullPath", "ReplacePrefixMatch"}))
	}
	return errs
}

func validateMirror(p *field.Path, m *gatewayv1.HTTPRequestMirrorFilter, namespace string) field.ErrorList {
	if m == nil {
		return nil
	}
	errs := validateBackendObjectRef(p.Child("backendRef"), m.BackendRef, namespace)
	if m.Percent != nil && m.Fraction != nil {
		errs = append(errs, field.Forbidden(p.Child("fraction"), "set percent or fraction, not both"))
	}
	if m.Percent != nil && (*m.Percent < 0 || *m.Percent > 100) {
		errs = append(errs, field.Invalid(p.Child("percent"), *m.Percent, "must be between 0 and 100"))
	}
	if f := m.Fraction; f != nil {
		fp := p.Child("fraction")
		den := int32(100)
		if f.Denominator != nil {
			den = *f.Denominator
			if den < 1 {
				errs = append(errs, field.Invalid(fp.Child("denominator"), den, "must be at least 1"))
			}
		}
		if f.Numerator < 0 || (den >= 1 && f.Numerator > den) {
			errs = append(errs, field.Invalid(fp.Child("numerator"), f.Numerator, "must be between 0 and the denominator"))
		}
	}
	return errs
}

// validateHTTPRetry checks a rule's retry stanza.
func validateHTTPRetry(p *field.Path, r *gatewayv1.HTTPRouteRetry) field.ErrorList {
	var errs field.ErrorList
	seen := map[gatewayv1.HTTPRouteRetryStatusCode]bool{}
	for i, c := range r.Codes {
		cp := p.Child("codes").Index(i)
		if c < 400 || c > 599 {
			errs = append(errs, field.Invalid(cp, c, "must be between 400 and 599"))
		}
		if seen[c] {
			errs = append(errs, field.Duplicate(cp, c))
		}
		seen[c] = true
	}
	if r.Attempts != nil && (*r.Attempts < 0 || *r.Attempts > maxRetryAttempts) {
		errs = append(errs, field.Invalid(p.Child("attempts"), *r.Attempts, fmt.Sprintf("must be between 0 and %d", maxRetryAttempts)))
	}
	if r.Backoff != nil {
		if d, err := parseGatewayDuration(string(*r.Backoff)); err != nil {
			errs = append(errs, field.Invalid(p.Child("backoff"), *r.Backoff, err.Error()))
		} else if d == 0 {
			errs = append(errs, field.Invalid(p.Child("backoff"), *r.Backoff, "must be more than 0"))
		}
	}
	return errs
}

// maxRetryAttempts bounds retries (a retry storm multiplies load).
const maxRetryAttempts = 10

// validateHTTPTimeouts checks request and backendRequest; backendRequest
// must not exceed a non-zero request timeout.
func validateHTTPTimeouts(tp *field.Path, t *gatewayv1.HTTPRouteTimeouts) field.ErrorList {
	var errs field.ErrorList
	var req, backend int64 = -1, -1
	if t.Request != nil {
		if d, err := parseGatewayDuration(string(*t.Request)); err != nil {
			errs = append(errs, field.Invalid(tp.Child("request"), *t.Request, err.Error()))
		} else {
			req = int64(d)
		}
	}
	if t.BackendRequest != nil {
		if d, err := parseGatewayDuration(string(*t.BackendRequest)); err != nil {
			errs = append(errs, field.Invalid(tp.Child("backendRequest"), *t.BackendRequest, err.Error()))
		} else {
			backend = int64(d)
		}
	}
	if req > 0 && backend > req {
		errs = append(errs, field.Invalid(tp.Child("backendRequest"), *t.BackendRequest,
			fmt.Sprintf("must not be longer than timeouts.request (%s)", *t.Request)))
	}
	return errs
}

func defaultGRPCRoute(r *gatewayv1.GRPCRoute) {
	for i := range r.Spec.Rules {
		rule := &r.Spec.Rules[i]
		for j := range rule.Matches {
			m := &rule.Matches[j]
			if m.Method != nil && m.Method.Type == nil {
				t := gatewayv1.GRPCMethodMatchExact
				m.Method.Type = &t
			}
			for k := range m.Headers {
				if m.Headers[k].Type == nil {
					t := gatewayv1.GRPCHeaderMatchExact
					m.Headers[k].Type = &t
				}
			}
		}
		for j := range rule.BackendRefs {
			defaultWeight(&rule.BackendRefs[j].BackendRef)
		}
	}
}

// The Gateway API's patterns for gRPC service and method names.
var (
	grpcServiceRE = regexp.MustCompile(`^(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$`)
	grpcMethodRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z_0-9]*$`)
)

func validateGRPCRoute(r *gatewayv1.GRPCRoute) error {
	errs := validateMeta(r.Name, r.Namespace)
	spec := field.NewPath("spec")
	errs = append(errs, validateParentRefs(spec.Child("parentRefs"), r.Spec.ParentRefs, r.Namespace, false)...)
	if len(r.Spec.Hostnames) > 0 {
		errs = append(errs, field.Forbidden(spec.Child("hostnames"),
			"must be empty when the parent is a Service (GAMMA): the Service's own host names apply"))
	}
	rules := spec.Child("rules")
	if len(r.Spec.Rules) > maxRules {
		errs = append(errs, field.TooMany(rules, len(r.Spec.Rules), maxRules))
	}
	names := map[string]bool{}
	for i, rule := range r.Spec.Rules {
		p := rules.Index(i)
		errs = append(errs, validateRuleName(p, rule.Name, names)...)
		if len(rule.Matches) > maxMatches {
			errs = append(errs, field.TooMany(p.Child("matches"), len(rule.Matches), maxMatches))
		}
		for j, m := range rule.Matches {
			errs = append(errs, validateGRPCMatch(p.Child("matches").Index(j), m)...)
		}
		errs = append(errs, validateGRPCFilters(p.Child("filters"), rule.Filters, r.Namespace)...)
		if rule.SessionPersistence != nil {
			errs = append(errs, field.Forbidden(p.Child("sessionPersistence"), "session persistence is not supported yet; Weft refuses rather than ignore it"))
		}
		backends := p.Child("backendRefs")
		if len(rule.BackendRefs) > maxBackendRefs {
			errs = append(errs, field.TooMany(backends, len(rule.BackendRefs), maxBackendRefs))
		}
		for j, b := range rule.BackendRefs {
			bp := backends.Index(j)
			errs = append(errs, validateBackendRef(bp, b.BackendRef, r.Namespace)...)
			if len(b.Filters) > 0 {
				errs = append(errs, field.Forbidden(bp.Child("filters"), "backend filters are not supported yet; Weft refuses rather than ignore them (use the rule's filters)"))
			}
		}
	}
	return asError(r, errs)
}

// validateRuleName checks a rule's optional name: a unique DNS label
// (TrafficPolicies target rules by it).
func validateRuleName(p *field.Path, name *gatewayv1.SectionName, seen map[string]bool) field.ErrorList {
	if name == nil {
		return nil
	}
	var errs field.ErrorList
	n := string(*name)
	for _, m := range validation.IsDNS1123Label(n) {
		errs = append(errs, field.Invalid(p.Child("name"), n, m))
	}
	if seen[n] {
		errs = append(errs, field.Duplicate(p.Child("name"), n))
	}
	seen[n] = true
	return errs
}

func validateGRPCMatch(p *field.Path, m gatewayv1.GRPCRouteMatch) field.ErrorList {
	var errs field.ErrorList
	if mm := m.Method; mm != nil {
		mp := p.Child("method")
		switch *mm.Type {
		case gatewayv1.GRPCMethodMatchExact:
			if mm.Service == nil && mm.Method == nil {
				errs = append(errs, field.Required(mp, "an Exact method match needs service, method or both"))
			}
			if mm.Service != nil && !grpcServiceRE.MatchString(*mm.Service) {
				errs = append(errs, field.Invalid(mp.Child("service"), *mm.Service, "must be a gRPC service name such as helloworld.Greeter"))
			}
			if mm.Method != nil && !grpcMethodRE.MatchString(*mm.Method) {
				errs = append(errs, field.Invalid(mp.Child("method"), *mm.Method, "must be a gRPC method name such as SayHello"))
			}
		case gatewayv1.GRPCMethodMatchRegularExpression:
			for _, part := range []struct {
				name string
				v    *string
			}{{"service", mm.Service}, {"method", mm.Method}} {
				if part.v == nil {
					continue
				}
				if _, err := regexp.Compile(*part.v); err != nil {
					errs = append(errs, field.Invalid(mp.Child(part.name), *part.v, "invalid RE2 regular expression: "+err.Error()))
				} else if strings.Contains(*part.v, "/") {
					errs = append(errs, field.Invalid(mp.Child(part.name), *part.v, "must not contain '/'"))
				}
			}
		default:
			errs = append(errs, field.NotSupported(mp.Child("type"), *mm.Type, []string{"Exact", "RegularExpression"}))
		}
	}
	if len(m.Headers) > maxHeaders {
		errs = append(errs, field.TooMany(p.Child("headers"), len(m.Headers), maxHeaders))
	}
	seen := map[string]bool{}
	for i, h := range m.Headers {
		hp := p.Child("headers").Index(i)
		name := string(h.Name)
		if !headerNameRE.MatchString(name) {
			errs = append(errs, field.Invalid(hp.Child("name"), name, "must be a valid HTTP header name"))
		}
		if seen[strings.ToLower(name)] {
			errs = append(errs, field.Duplicate(hp.Child("name"), name))
		}
		seen[strings.ToLower(name)] = true
		errs = append(errs, validateValueMatch(hp, string(*h.Type), h.Value)...)
	}
	return errs
}

var supportedGRPCFilters = []string{"RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror"}

func validateGRPCFilters(p *field.Path, filters []gatewayv1.GRPCRouteFilter, namespace string) field.ErrorList {
	var errs field.ErrorList
	if len(filters) > maxFilters {
		errs = append(errs, field.TooMany(p, len(filters), maxFilters))
	}
	seen := map[gatewayv1.GRPCRouteFilterType]bool{}
	for i, f := range filters {
		fp := p.Index(i)
		if f.Type != gatewayv1.GRPCRouteFilterRequestMirror && seen[f.Type] {
			errs = append(errs, field.Duplicate(fp.Child("type"), f.Type))
		}
		seen[f.Type] = true
		errs = append(errs, onlyConfigOf(fp, string(f.Type), map[string]bool{
			"RequestHeaderModifier":  f.RequestHeaderModifier != nil,
			"ResponseHeaderModifier": f.ResponseHeaderModifier != nil,
			"RequestMirror":          f.RequestMirror != nil,
			"ExtensionRef":           f.ExtensionRef != nil,
		})...)
		switch f.Type {
		case gatewayv1.GRPCRouteFilterRequestHeaderModifier:
			errs = append(errs, validateHeaderModifier(fp.Child("requestHeaderModifier"), f.RequestHeaderModifier, true)...)
		case gatewayv1.GRPCRouteFilterResponseHeaderModifier:
			errs = append(errs, validateHeaderModifier(fp.Child("responseHeaderModifier"), f.ResponseHeaderModifier, false)...)
		case gatewayv1.GRPCRouteFilterRequestMirror:
			errs = append(errs, validateMirror(fp.Child("requestMirror"), f.RequestMirror, namespace)...)
		default:
			errs = append(errs, field.NotSupported(fp.Child("type"), f.Type, supportedGRPCFilters))
		}
	}
	return errs
}

func defaultTCPRoute(r *gatewayv1alpha2.TCPRoute) {
	for i := range r.Spec.Rules {
		for j := range r.Spec.Rules[i].BackendRefs {
			defaultWeight(&r.Spec.Rules[i].BackendRefs[j])
		}
	}
}

func validateTCPRoute(r *gatewayv1alpha2.TCPRoute) error {
	errs := validateMeta(r.Name, r.Namespace)
	spec := field.NewPath("spec")
	errs = append(errs, validateParentRefs(spec.Child("parentRefs"), r.Spec.ParentRefs, r.Namespace, true)...)
	rules := spec.Child("rules")
	if len(r.Spec.Rules) != 1 {
		errs = append(errs, field.Invalid(rules, len(r.Spec.Rules), "a TCPRoute needs exactly one rule (a connection carries no request to match on)"))
	}
	for i, rule := range r.Spec.Rules {
		p := rules.Index(i)
		errs = append(errs, validateRuleName(p, rule.Name, map[string]bool{})...)
		backends := p.Child("backendRefs")
		if len(rule.BackendRefs) == 0 {
			errs = append(errs, field.Required(backends, "at least one backend"))
		}
		if len(rule.BackendRefs) > maxBackendRefs {
			errs = append(errs, field.TooMany(backends, len(rule.BackendRefs), maxBackendRefs))
		}
		for j, b := range rule.BackendRefs {
			errs = append(errs, validateBackendRef(backends.Index(j), b, r.Namespace)...)
		}
	}
	return asError(r, errs)
}
