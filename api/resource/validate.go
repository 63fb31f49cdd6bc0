package resource

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
)

// ValidationError lists every problem found in one object, each with its
// field path.
type ValidationError struct {
	Key  Key
	Errs field.ErrorList
}

func (e *ValidationError) Error() string {
	msgs := make([]string, len(e.Errs))
	for i, fe := range e.Errs {
		msgs[i] = fe.Error()
	}
	return fmt.Sprintf("%s %s/%s is invalid: %s", e.Key.Kind, e.Key.Namespace, e.Key.Name, strings.Join(msgs, "; "))
}

// Details returns one line per problem.
func (e *ValidationError) Details() []string {
	out := make([]string, len(e.Errs))
	for i, fe := range e.Errs {
		out[i] = fe.Error()
	}
	return out
}

// Validate checks a defaulted object. It returns a *ValidationError
// listing every problem, or nil.
func Validate(o Object) error {
	k, err := KindOf(o)
	if err != nil {
		return err
	}
	return k.validate(o)
}

func gvk(k *Kind) schema.GroupVersionKind {
	return schema.FromAPIVersionAndKind(k.APIVersion, k.Name)
}

func asError(o Object, errs field.ErrorList) error {
	if len(errs) == 0 {
		return nil
	}
	return &ValidationError{Key: KeyOf(o), Errs: errs}
}

func validateMeta(name, namespace string) field.ErrorList {
	var errs field.ErrorList
	p := field.NewPath("metadata")
	if name == "" {
		errs = append(errs, field.Required(p.Child("name"), "every resource needs a name"))
	} else {
		for _, m := range validation.IsDNS1123Subdomain(name) {
			errs = append(errs, field.Invalid(p.Child("name"), name, m))
		}
	}
	for _, m := range validation.IsDNS1123Label(namespace) {
		errs = append(errs, field.Invalid(p.Child("namespace"), namespace, m))
	}
	return errs
}

func defaultService(s *v1alpha1.Service) {
	for i := range s.Spec.Ports {
		p := &s.Spec.Ports[i]
		if p.TargetPort == 0 {
			p.TargetPort = p.Port
		}
		if p.Protocol == "" {
			p.Protocol = xdsmeta.ProtocolHTTP
		}
	}
}

func validateService(s *v1alpha1.Service) error {
	errs := validateMeta(s.Name, s.Namespace)
	if len(errs) == 0 {
		// A Service's name is the first label of its host name.
		for _, m := range validation.IsDNS1123Label(s.Name) {
			errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), s.Name, m))
		}
	}
	spec := field.NewPath("spec")
	for k, v := range s.Spec.Selector {
		p := spec.Child("selector").Key(k)
		for _, m := range validation.IsQualifiedName(k) {
			errs = append(errs, field.Invalid(p, k, m))
		}
		for _, m := range validation.IsValidLabelValue(v) {
			errs = append(errs, field.Invalid(p, v, m))
		}
	}
	ports := spec.Child("ports")
	if len(s.Spec.Ports) == 0 {
		errs = append(errs, field.Required(ports, "a Service needs at least one port"))
	}
	names := map[string]bool{}
	numbers := map[int32]bool{}
	for i, port := range s.Spec.Ports {
		p := ports.Index(i)
		if len(s.Spec.Ports) > 1 && port.Name == "" {
			errs = append(errs, field.Required(p.Child("name"), "required when a Service has more than one port"))
		}
		if port.Name != "" {
			for _, m := range validation.IsDNS1123Label(port.Name) {
				errs = append(errs, field.Invalid(p.Child("name"), port.Name, m))
			}
			if names[port.Name] {
				errs = append(errs, field.Duplicate(p.Child("name"), port.Name))
			}
			names[port.Name] = true
		}
		errs = append(errs, validatePort(p.Child("port"), port.Port)...)
		errs = append(errs, validatePort(p.Child("targetPort"), port.TargetPort)...)
		if numbers[port.Port] {
			errs = append(errs, field.Duplicate(p.Child("port"), port.Port))
		}
		numbers[port.Port] = true
		switch port.Protocol {
		case xdsmeta.ProtocolHTTP, xdsmeta.ProtocolHTTP2, xdsmeta.ProtocolGRPC, xdsmeta.ProtocolTCP:
		default:
			errs = append(errs, field.NotSupported(p.Child("protocol"), port.Protocol, []string{"HTTP", "HTTP2", "GRPC", "TCP"}))
		}
	}
	return asError(s, errs)
}

func validatePort(p *field.Path, port int32) field.ErrorList {
	if port < 1 || port > 65535 {
		return field.ErrorList{field.Invalid(p, port, "must be between 1 and 65535")}
	}
	return nil
}

func defaultHTTPRoute(r *gatewayv1.HTTPRoute) {
	for i := range r.Spec.Rules {
		rule := &r.Spec.Rules[i]
		for j := range rule.Matches {
			m := &rule.Matches[j]
			if m.Path == nil {
				m.Path = &gatewayv1.HTTPPathMatch{}
			}
			if m.Path.Type == nil {
				t := gatewayv1.PathMatchPathPrefix
				m.Path.Type = &t
			}
			if m.Path.Value == nil {
				v := "/"
				m.Path.Value = &v
			}
			for k := range m.Headers {
				if m.Headers[k].Type == nil {
					t := gatewayv1.HeaderMatchExact
					m.Headers[k].Type = &t
				}
			}
			for k := range m.QueryParams {
				if m.QueryParams[k].Type == nil {
					t := gatewayv1.QueryParamMatchExact
					m.QueryParams[k].Type = &t
				}
			}
		}
		for j := range rule.BackendRefs {
			defaultWeight(&rule.BackendRefs[j].BackendRef)
		}
		for j := range rule.Filters {
			if f := rule.Filters[j].RequestRedirect; f != nil && f.StatusCode == nil {
				code := defaultRedirectCode
				f.StatusCode = &code
			}
		}
	}
}

// defaultRedirectCode is the Gateway API's default RequestRedirect status.
const defaultRedirectCode = 302

func defaultWeight(b *gatewayv1.BackendRef) {
	if b.Weight == nil {
		w := int32(1)
		b.Weight = &w
	}
}

// The Gateway API's limits (from its CRD validation).
const (
	maxParentRefs  = 32
	maxRules       = 16
	maxMatches     = 64
	maxHeaders     = 16
	maxBackendRefs = 16
	maxWeight      = 1000000
)

var headerNameRE = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+\-.^_\x60|~]+$`)

func validateHTTPRoute(r *gatewayv1.HTTPRoute) error {
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
		errs = append(errs, validateRuleName(rules.Index(i), rule.Name, names)...)
		errs = append(errs, validateHTTPRule(rules.Index(i), rule, r.Namespace)...)
	}
	return asError(r, errs)
}

// validateParentRefs checks a route's parents: Services in the route's
// namespace (GAMMA); a TCPRoute must name one port (requirePort).
func validateParentRefs(parents *field.Path, refs []gatewayv1.ParentReference, namespace string, requirePort bool) field.ErrorList {
	var errs field.ErrorList
	if len(refs) == 0 {
		errs = append(errs, field.Required(parents, "a route must attach to a parent: a Service (mesh traffic, as in GAMMA)"))
	}
	if len(refs) > maxParentRefs {
		errs = append(errs, field.TooMany(parents, len(refs), maxParentRefs))
	}
	for i, ref := range refs {
		p := parents.Index(i)
		errs = append(errs, validateServiceRef(p, ref.Group, ref.Kind, string(ref.Name), ref.Namespace)...)
		if ref.Port != nil {
			errs = append(errs, validatePort(p.Child("port"), int32(*ref.Port))...)
		}
		if ref.SectionName != nil {
			for _, m := range validation.IsDNS1123Label(string(*ref.SectionName)) {
				errs = append(errs, field.Invalid(p.Child("sectionName"), *ref.SectionName, m))
			}
		}
		if ref.Port != nil && ref.SectionName != nil {
			errs = append(errs, field.Forbidden(p.Child("sectionName"), "set port or sectionName (a port name), not both"))
		}
		if requirePort && ref.Port == nil && ref.SectionName == nil {
			errs = append(errs, field.Required(p.Child("port"), "a TCPRoute attaches to one TCP port of the Service: set port or sectionName"))
		}
		if ref.Namespace != nil && string(*ref.Namespace) != namespace {
			errs = append(errs, field.Invalid(p.Child("namespace"), *ref.Namespace,
				"a route can only attach to Services in its own namespace (producer routes); consumer routes are not supported yet"))
		}
	}
	return errs
}

func validateServiceRef(p *field.Path, group *gatewayv1.Group, kind *gatewayv1.Kind, name string, _ *gatewayv1.Namespace) field.ErrorList {
	var errs field.ErrorList
	if group != nil && *group != "" && string(*group) != v1alpha1.Group {
		errs = append(errs, field.NotSupported(p.Child("group"), *group, []string{`"" (core)`, v1alpha1.Group}))
	}
	if kind != nil && *kind != "Service" {
		errs = append(errs, field.NotSupported(p.Child("kind"), *kind, []string{"Service"}))
	}
	if name == "" {
		errs = append(errs, field.Required(p.Child("name"), ""))
	} else {
		for _, m := range validation.IsDNS1123Label(name) {
			errs = append(errs, field.Invalid(p.Child("name"), name, m))
		}
	}
	return errs
}

func validateHTTPRule(p *field.Path, rule gatewayv1.HTTPRouteRule, namespace string) field.ErrorList {
	var errs field.ErrorList
	if len(rule.Matches) > maxMatches {
		errs = append(errs, field.TooMany(p.Child("matches"), len(rule.Matches), maxMatches))
	}
	for i, m := range rule.Matches {
		errs = append(errs, validateHTTPMatch(p.Child("matches").Index(i), m)...)
	}
	errs = append(errs, validateHTTPFilters(p, rule, namespace)...)
	if rule.Retry != nil {
		errs = append(errs, validateHTTPRetry(p.Child("retry"), rule.Retry)...)
	}
	if rule.SessionPersistence != nil {
		errs = append(errs, field.Forbidden(p.Child("sessionPersistence"), "session persistence is not supported yet; Weft refuses rather than ignore it (TrafficPolicy loadBalancer.hash with a cookie gives affinity)"))
	}
	if t := rule.Timeouts; t != nil {
		errs = append(errs, validateHTTPTimeouts(p.Child("timeouts"), t)...)
	}
	backends := p.Child("backendRefs")
	if len(rule.BackendRefs) > maxBackendRefs {
		errs = append(errs, field.TooMany(backends, len(rule.BackendRefs), maxBackendRefs))
	}
	for i, b := range rule.BackendRefs {
		bp := backends.Index(i)
		errs = append(errs, validateBackendRef(bp, b.BackendRef, namespace)...)
		if len(b.Filters) > 0 {
			errs = append(errs, field.Forbidden(bp.Child("filters"), "backend filters are not supported yet; Weft refuses rather than ignore them (use the rule's filters)"))
		}
	}
	return errs
}

// validateBackendRef checks a weighted backend: a Service in the route's
// namespace, with a port.
func validateBackendRef(bp *field.Path, b gatewayv1.BackendRef, namespace string) field.ErrorList {
	errs := validateBackendObjectRef(bp, b.BackendObjectReference, namespace)
	if b.Weight != nil && (*b.Weight < 0 || *b.Weight > maxWeight) {
		errs = append(errs, field.Invalid(bp.Child("weight"), *b.Weight, "must be between 0 and 1000000"))
	}
	return errs
}

func validateBackendObjectRef(bp *field.Path, b gatewayv1.BackendObjectReference, namespace string) field.ErrorList {
	errs := validateServiceRef(bp, b.Group, b.Kind, string(b.Name), b.Namespace)
	if b.Namespace != nil && string(*b.Namespace) != namespace {
		errs = append(errs, field.Invalid(bp.Child("namespace"), *b.Namespace,
			"backends in other namespaces need a ReferenceGrant, which is not supported yet"))
	}
	if b.Port == nil {
		errs = append(errs, field.Required(bp.Child("port"), "required when the backend is a Service"))
	} else {
		errs = append(errs, validatePort(bp.Child("port"), int32(*b.Port))...)
	}
	return errs
}

func validateHTTPMatch(p *field.Path, m gatewayv1.HTTPRouteMatch) field.ErrorList {
	var errs field.ErrorList
	if m.Path != nil {
		pp := p.Child("path")
		v := ""
		if m.Path.Value != nil {
			v = *m.Path.Value
		}
		switch *m.Path.Type {
		case gatewayv1.PathMatchExact, gatewayv1.PathMatchPathPrefix:
			if !strings.HasPrefix(v, "/") {
				errs = append(errs, field.Invalid(pp.Child("value"), v, "must be an absolute path (start with /)"))
			} else if strings.Contains(v, "//") || strings.Contains(v, "/./") || strings.Contains(v, "/../") ||
				strings.HasSuffix(v, "/..") || strings.HasSuffix(v, "/.") || strings.ContainsAny(v, "?#") {
				errs = append(errs, field.Invalid(pp.Child("value"), v, "must not contain '//', '/./', '/../', '?' or '#'"))
			}
		case gatewayv1.PathMatchRegularExpression:
			if _, err := regexp.Compile(v); err != nil {
				errs = append(errs, field.Invalid(pp.Child("value"), v, "invalid RE2 regular expression: "+err.Error()))
			}
		default:
			errs = append(errs, field.NotSupported(pp.Child("type"), *m.Path.Type, []string{"Exact", "PathPrefix", "RegularExpression"}))
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
	seenQ := map[string]bool{}
	for i, q := range m.QueryParams {
		qp := p.Child("queryParams").Index(i)
		name := string(q.Name)
		if name == "" {
			errs = append(errs, field.Required(qp.Child("name"), ""))
		}
		if seenQ[name] {
			errs = append(errs, field.Duplicate(qp.Child("name"), name))
		}
		seenQ[name] = true
		errs = append(errs, validateValueMatch(qp, string(*q.Type), q.Value)...)
	}
	if m.Method != nil {
		switch *m.Method {
		case gatewayv1.HTTPMethodGet, gatewayv1.HTTPMethodHead, gatewayv1.HTTPMethodPost, gatewayv1.HTTPMethodPut,
			gatewayv1.HTTPMethodDelete, gatewayv1.HTTPMethodConnect, gatewayv1.HTTPMethodOptions,
			gatewayv1.HTTPMethodTrace, gatewayv1.HTTPMethodPatch:
		default:
			errs = append(errs, field.NotSupported(p.Child("method"), *m.Method,
				[]string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}))
		}
	}
	return errs
}

func validateValueMatch(p *field.Path, typ, value string) field.ErrorList {
	switch typ {
	case "Exact":
		if value == "" {
			return field.ErrorList{field.Required(p.Child("value"), "")}
		}
	case "RegularExpression":
		if _, err := regexp.Compile(value); err != nil {
			return field.ErrorList{field.Invalid(p.Child("value"), value, "invalid RE2 regular expression: "+err.Error())}
		}
	default:
		return field.ErrorList{field.NotSupported(p.Child("type"), typ, []string{"Exact", "RegularExpression"})}
	}
	return nil
}

// gatewayDurationRE is the Gateway API's duration format (GEP-2257).
var gatewayDurationRE = regexp.MustCompile(`^([0-9]{1,5}(h|m|s|ms)){1,4}$`)

// parseGatewayDuration parses a Gateway API duration ("10s", "1m30s",
// "500ms").
func parseGatewayDuration(s string) (time.Duration, error) {
	if !gatewayDurationRE.MatchString(s) {
		return 0, fmt.Errorf("must be a Gateway API duration such as 500ms, 10s or 1m30s")
	}
	return time.ParseDuration(s)
}

// ParseGatewayDuration parses a Gateway API duration ("10s", "1m30s",
// "500ms") as GEP-2257 defines it.
func ParseGatewayDuration(s string) (time.Duration, error) { return parseGatewayDuration(s) }

func validateMTLSPolicy(p *v1alpha1.MTLSPolicy) error {
	errs := validateMeta(p.Name, p.Namespace)
	spec := field.NewPath("spec")
	switch p.Spec.Mode {
	case v1alpha1.MTLSStrict, v1alpha1.MTLSPermissive, v1alpha1.MTLSDisable:
	case "":
		errs = append(errs, field.Required(spec.Child("mode"), "STRICT, PERMISSIVE or DISABLE"))
	default:
		errs = append(errs, field.NotSupported(spec.Child("mode"), p.Spec.Mode, []string{v1alpha1.MTLSStrict, v1alpha1.MTLSPermissive, v1alpha1.MTLSDisable}))
	}
	if len(p.Spec.Selector) > 0 && p.Spec.TargetRef != nil {
		errs = append(errs, field.Forbidden(spec.Child("targetRef"), "set selector or targetRef, not both"))
	}
	for k, v := range p.Spec.Selector {
		sp := spec.Child("selector").Key(k)
		for _, m := range validation.IsQualifiedName(k) {
			errs = append(errs, field.Invalid(sp, k, m))
		}
		for _, m := range validation.IsValidLabelValue(v) {
			errs = append(errs, field.Invalid(sp, v, m))
		}
	}
	if t := p.Spec.TargetRef; t != nil {
		tp := spec.Child("targetRef")
		if t.Kind != "" && t.Kind != "Service" {
			errs = append(errs, field.NotSupported(tp.Child("kind"), t.Kind, []string{"Service"}))
		}
		if t.Name == "" {
			errs = append(errs, field.Required(tp.Child("name"), ""))
		}
	}
	return asError(p, errs)
}
