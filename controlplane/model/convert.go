package model

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1alpha2 "sigs.k8s.io/gateway-api/apis/v1alpha2"

	"github.com/weftmesh/weft/api/resource"
	"github.com/weftmesh/weft/api/v1alpha1"
)

// ServiceFrom converts a validated Service.
func ServiceFrom(s *v1alpha1.Service) *Service {
	out := &Service{Name: s.Name, Namespace: s.Namespace, Selector: s.Spec.Selector}
	for _, p := range s.Spec.Ports {
		out.Ports = append(out.Ports, ServicePort{
			Name: p.Name, Port: uint32(p.Port), TargetPort: uint32(p.TargetPort), Protocol: p.Protocol,
		})
	}
	return out
}

// HTTPRouteFrom converts a validated, defaulted HTTPRoute.
func HTTPRouteFrom(r *gatewayv1.HTTPRoute) (*HTTPRoute, error) {
	out := &HTTPRoute{Kind: KindHTTPRoute, Name: r.Name, Namespace: r.Namespace, Created: r.CreationTimestamp.Time,
		Parents: parentsFrom(r.Spec.ParentRefs, r.Namespace)}
	for i, rule := range r.Spec.Rules {
		rr := RouteRule{}
		if rule.Name != nil {
			rr.Name = string(*rule.Name)
		}
		errf := func(field string, err error) error {
			return fmt.Errorf("model: httproute %s/%s: rules[%d].%s: %w", r.Namespace, r.Name, i, field, err)
		}
		if t := rule.Timeouts; t != nil {
			if t.Request != nil {
				d, err := resource.ParseGatewayDuration(string(*t.Request))
				if err != nil {
					return nil, errf("timeouts.request", err)
				}
				rr.Timeout = d
			}
			if t.BackendRequest != nil {
				d, err := resource.ParseGatewayDuration(string(*t.BackendRequest))
				if err != nil {
					return nil, errf("timeouts.backendRequest", err)
				}
				rr.BackendTimeout = d
			}
		}
		for _, m := range rule.Matches {
			rm := RouteMatch{PathType: PathPrefix, Path: "/"}
			if m.Path != nil && m.Path.Type != nil && m.Path.Value != nil {
				rm.Path = *m.Path.Value
				switch *m.Path.Type {
				case gatewayv1.PathMatchExact:
					rm.PathType = PathExact
				case gatewayv1.PathMatchRegularExpression:
					rm.PathType = PathRegex
				default:
					rm.PathType = PathPrefix
				}
			}
			for _, h := range m.Headers {
				rm.Headers = append(rm.Headers, StringMatch{
					Name:  strings.ToLower(string(h.Name)),
					Value: h.Value,
					Regex: h.Type != nil && *h.Type == gatewayv1.HeaderMatchRegularExpression,
				})
			}
			for _, q := range m.QueryParams {
				rm.QueryParams = append(rm.QueryParams, StringMatch{
					Name:  string(q.Name),
					Value: q.Value,
					Regex: q.Type != nil && *q.Type == gatewayv1.QueryParamMatchRegularExpression,
				})
			}
			if m.Method != nil {
				rm.Method = string(*m.Method)
			}
			rr.Matches = append(rr.Matches, rm)
		}
		for _, f := range rule.Filters {
			switch f.Type {
			case gatewayv1.HTTPRouteFilterRequestHeaderModifier:
				rr.Filters.RequestHeaders = headerModifierFrom(f.RequestHeaderModifier)
			case gatewayv1.HTTPRouteFilterResponseHeaderModifier:
				rr.Filters.ResponseHeaders = headerModifierFrom(f.ResponseHeaderModifier)
			case gatewayv1.HTTPRouteFilterRequestRedirect:
				rr.Filters.Redirect = redirectFrom(f.RequestRedirect)
			case gatewayv1.HTTPRouteFilterURLRewrite:
				rw := &URLRewrite{Path: pathRewriteFrom(f.URLRewrite.Path)}
				if f.URLRewrite.Hostname != nil {
					rw.Hostname = string(*f.URLRewrite.Hostname)
				}
				rr.Filters.Rewrite = rw
			case gatewayv1.HTTPRouteFilterRequestMirror:
				rr.Filters.Mirrors = append(rr.Filters.Mirrors, mirrorFrom(f.RequestMirror, r.Namespace))
			default:
				return nil, errf("filters", fmt.Errorf("filter type %q is not supported", f.Type))
			}
		}
		if rule.Retry != nil {
			retry, err := httpRetryFrom(rule.Retry)
			if err != nil {
				return nil, errf("retry", err)
			}
			// A rule's backendRequest timeout bounds each try.
			retry.PerTryTimeout = rr.BackendTimeout
			rr.Retry = retry
		}
		for _, b := range rule.BackendRefs {
			rr.Backends = append(rr.Backends, backendFrom(b.BackendRef, r.Namespace))
		}
		out.Rules = append(out.Rules, rr)
	}
	return out, nil
}

// Route kinds of HTTPRoute.Kind and PolicyTarget.Kind.
const (
	KindHTTPRoute = "HTTPRoute"
	KindGRPCRoute = "GRPCRoute"
	KindService   = "Service"
)

// DefaultRetryAttempts is the number of retries when a retry stanza does
// not say.
const DefaultRetryAttempts = 2

// DefaultRetryBodyBytes is the largest request body buffered for retries
// and mirrors unless a policy says otherwise.
const DefaultRetryBodyBytes = 65536

func parentsFrom(refs []gatewayv1.ParentReference, namespace string) []ParentRef {
	var out []ParentRef
	for _, p := range refs {
		ref := ParentRef{Service: string(p.Name), Namespace: namespace}
		if p.Port != nil {
			ref.Port = uint32(*p.Port)
		}
		if p.SectionName != nil {
			ref.SectionName = string(*p.SectionName)
		}
		out = append(out, ref)
	}
	return out
}

func backendFrom(b gatewayv1.BackendRef, namespace string) Backend {
	be := Backend{Service: string(b.Name), Namespace: namespace, Weight: 1}
	if b.Port != nil {
		be.Port = uint32(*b.Port)
	}
	if b.Weight != nil {
		be.Weight = uint32(*b.Weight)
	}
	return be
}

func headerModifierFrom(f *gatewayv1.HTTPHeaderFilter) *HeaderModifier {
	if f == nil {
		return nil
	}
	m := &HeaderModifier{}
	for _, h := range f.Set {
		m.Set = append(m.Set, Header{Name: strings.ToLower(string(h.Name)), Value: h.Value})
	}
	for _, h := range f.Add {
		m.Add = append(m.Add, Header{Name: strings.ToLower(string(h.Name)), Value: h.Value})
	}
	for _, n := range f.Remove {
		m.Remove = append(m.Remove, strings.ToLower(n))
	}
	return m
}

func pathRewriteFrom(p *gatewayv1.HTTPPathModifier) *PathRewrite {
	if p == nil {
		return nil
	}
	switch p.Type {
	case gatewayv1.FullPathHTTPPathModifier:
		return &PathRewrite{FullPath: p.ReplaceFullPath}
	case gatewayv1.PrefixMatchHTTPPathModifier:
		return &PathRewrite{PrefixMatch: p.ReplacePrefixMatch}
	}
	return nil
}

// DefaultRedirectStatus is the Gateway API's default RequestRedirect status.
const DefaultRedirectStatus = 302

func redirectFrom(f *gatewayv1.HTTPRequestRedirectFilter) *Redirect {
	r := &Redirect{Path: pathRewriteFrom(f.Path), StatusCode: DefaultRedirectStatus}
	if f.Scheme != nil {
		r.Scheme = *f.Scheme
	}
	if f.Hostname != nil {
		r.Hostname = string(*f.Hostname)
	}
	if f.Port != nil {
		r.Port = uint32(*f.Port)
	}
	if f.StatusCode != nil {
		r.StatusCode = *f.StatusCode
	}
	return r
}

func mirrorFrom(f *gatewayv1.HTTPRequestMirrorFilter, namespace string) Mirror {
	m := Mirror{Backend: Backend{Service: string(f.BackendRef.Name), Namespace: namespace}, PerMillion: 1000000}
	if f.BackendRef.Port != nil {
		m.Backend.Port = uint32(*f.BackendRef.Port)
	}
	switch {
	case f.Percent != nil:
		m.PerMillion = uint32(*f.Percent) * 10000
	case f.Fraction != nil:
		den := int64(100)
		if f.Fraction.Denominator != nil && *f.Fraction.Denominator > 0 {
			den = int64(*f.Fraction.Denominator)
		}
		m.PerMillion = uint32(int64(f.Fraction.Numerator) * 1000000 / den)
	}
	return m
}

// httpRetryFrom converts a rule's retry: the given codes (else 503) plus
// connection errors, as the Gateway API asks.
func httpRetryFrom(r *gatewayv1.HTTPRouteRetry) (*Retry, error) {
	out := &Retry{
		Attempts:     DefaultRetryAttempts,
		On:           []string{"connect-failure", "refused-stream", "reset", "retriable-status-codes"},
		MaxBodyBytes: DefaultRetryBodyBytes,
	}
	if r.Attempts != nil {
		out.Attempts = uint32(*r.Attempts)
	}
	for _, c := range r.Codes {
		out.Codes = append(out.Codes, uint32(c))
	}
	if len(out.Codes) == 0 {
		out.Codes = []uint32{503}
	}
	if r.Backoff != nil {
		d, err := resource.ParseGatewayDuration(string(*r.Backoff))
		if err != nil {
			return nil, err
		}
		out.BackoffBase = d
	}
	return out, nil
}

// FromObjects builds a State from validated API objects and workloads.
func FromObjects(objs []resource.Object, workloads []*Workload) (*State, error) {
	st := &State{Workloads: workloads}
	for _, o := range objs {
		switch v := o.(type) {
		case *v1alpha1.Service:
			st.Services = append(st.Services, ServiceFrom(v))
		case *gatewayv1.HTTPRoute:
			r, err := HTTPRouteFrom(v)
			if err != nil {
				return nil, err
			}
			st.Routes = append(st.Routes, r)
		case *gatewayv1.GRPCRoute:
			r, err := GRPCRouteFrom(v)
			if err != nil {
				return nil, err
			}
			st.Routes = append(st.Routes, r)
		case *gatewayv1alpha2.TCPRoute:
			st.TCPRoutes = append(st.TCPRoutes, TCPRouteFrom(v))
		case *v1alpha1.TrafficPolicy:
			p, err := TrafficPolicyFrom(v)
			if err != nil {
				return nil, err
			}
			st.TrafficPolicies = append(st.TrafficPolicies, p)
		case *v1alpha1.MTLSPolicy:
			p := &MTLSPolicy{Name: v.Name, Namespace: v.Namespace, Created: v.CreationTimestamp.Time, Mode: v.Spec.Mode}
			if len(v.Spec.Selector) > 0 {
				p.Selector = v.Spec.Selector
			}
			if v.Spec.TargetRef != nil {
				p.Service = v.Spec.TargetRef.Name
			}
			st.MTLSPolicies = append(st.MTLSPolicies, p)
		case *v1alpha1.MeshConfig:
			if v.Name == v1alpha1.MeshConfigName && v.Namespace == v1alpha1.MeshNamespace {
				st.Mesh = MeshFrom(v)
				if a := v.Spec.Authorization; a != nil {
					az, err := AuthorizationFrom(a)
					if err != nil {
						return nil, err
					}
					st.Mesh.Authorization = az
				}
			}
		case *v1alpha1.AuthorizationPolicy:
			p, err := AuthzPolicyFrom(v)
			if err != nil {
				return nil, err
			}
			st.AuthzPolicies = append(st.AuthzPolicies, p)
		case *v1alpha1.RequestAuthentication:
			r, err := RequestAuthnFrom(v)
			if err != nil {
				return nil, err
			}
			st.RequestAuthns = append(st.RequestAuthns, r)
		default:
			return nil, fmt.Errorf("model: unsupported object %T", o)
		}
	}
	st.Sort()
	return st, nil
}

// GRPCRouteFrom converts a validated, defaulted GRPCRoute into an
// HTTPRoute of Kind GRPCRoute. Each match becomes a RouteMatch with GRPC
// set and a path derived from the method match (which also places it in
// the Gateway API's precedence order):
//
//	service and method, Exact    PathExact "/SERVICE/METHOD"
//	service only, Exact          PathRegex "/SERVICE/[^/]+"
//	method only, Exact           PathRegex "/[^/]+/METHOD"
//	RegularExpression            PathRegex "/(SERVICE)/(METHOD)", a missing part "[^/]+"
//	no method match              PathPrefix "/"
//
// A rule without matches gets one that matches every gRPC request.
func GRPCRouteFrom(r *gatewayv1.GRPCRoute) (*HTTPRoute, error) {
	out := &HTTPRoute{Kind: KindGRPCRoute, Name: r.Name, Namespace: r.Namespace, Created: r.CreationTimestamp.Time,
		Parents: parentsFrom(r.Spec.ParentRefs, r.Namespace)}
	for i, rule := range r.Spec.Rules {
		rr := RouteRule{}
		if rule.Name != nil {
			rr.Name = string(*rule.Name)
		}
		for _, m := range rule.Matches {
			rm := grpcMatchFrom(m.Method)
			for _, h := range m.Headers {
				rm.Headers = append(rm.Headers, StringMatch{
					Name:  strings.ToLower(string(h.Name)),
					Value: h.Value,
					Regex: h.Type != nil && *h.Type == gatewayv1.GRPCHeaderMatchRegularExpression,
				})
			}
			rr.Matches = append(rr.Matches, rm)
		}
		if len(rr.Matches) == 0 {
			rr.Matches = []RouteMatch{grpcMatchFrom(nil)}
		}
		for _, f := range rule.Filters {
			switch f.Type {
			case gatewayv1.GRPCRouteFilterRequestHeaderModifier:
				rr.Filters.RequestHeaders = headerModifierFrom(f.RequestHeaderModifier)
			case gatewayv1.GRPCRouteFilterResponseHeaderModifier:
				rr.Filters.ResponseHeaders = headerModifierFrom(f.ResponseHeaderModifier)
			case gatewayv1.GRPCRouteFilterRequestMirror:
				rr.Filters.Mirrors = append(rr.Filters.Mirrors, mirrorFrom(f.RequestMirror, r.Namespace))
			default:
				return nil, fmt.Errorf("model: grpcroute %s/%s: rules[%d].filters: filter type %q is not supported", r.Namespace, r.Name, i, f.Type)
			}
		}
		for _, b := range rule.BackendRefs {
			rr.Backends = append(rr.Backends, backendFrom(b.BackendRef, r.Namespace))
		}
		out.Rules = append(out.Rules, rr)
	}
	return out, nil
}

// anySegment matches one path segment: a gRPC service or method name.
const anySegment = "[^/]+"

func grpcMatchFrom(m *gatewayv1.GRPCMethodMatch) RouteMatch {
	g := &GRPCMethodMatch{}
	if m == nil || (m.Service == nil && m.Method == nil) {
		return RouteMatch{PathType: PathPrefix, Path: "/", GRPC: g}
	}
	if m.Service != nil {
		g.Service = *m.Service
	}
	if m.Method != nil {
		g.Method = *m.Method
	}
	if m.Type != nil && *m.Type == gatewayv1.GRPCMethodMatchRegularExpression {
		g.Regex = true
		svc, method := anySegment, anySegment
		if g.Service != "" {
			svc = g.Service
		}
		if g.Method != "" {
			method = g.Method
		}
		return RouteMatch{PathType: PathRegex, Path: "/(" + svc + ")/(" + method + ")", GRPC: g}
	}
	switch {
	case g.Service != "" && g.Method != "":
		return RouteMatch{PathType: PathExact, Path: "/" + g.Service + "/" + g.Method, GRPC: g}
	case g.Service != "":
		return RouteMatch{PathType: PathRegex, Path: "/" + regexp.QuoteMeta(g.Service) + "/" + anySegment, GRPC: g}
	default:
		return RouteMatch{PathType: PathRegex, Path: "/" + anySegment + "/" + regexp.QuoteMeta(g.Method), GRPC: g}
	}
}

// TCPRouteFrom converts a validated, defaulted TCPRoute (its one rule's
// backends).
func TCPRouteFrom(r *gatewayv1alpha2.TCPRoute) *TCPRoute {
	out := &TCPRoute{Name: r.Name, Namespace: r.Namespace, Created: r.CreationTimestamp.Time,
		Parents: parentsFrom(r.Spec.ParentRefs, r.Namespace)}
	for _, rule := range r.Spec.Rules {
		for _, b := range rule.BackendRefs {
			out.Backends = append(out.Backends, backendFrom(b, r.Namespace))
		}
	}
	return out
}

// Outlier-detection defaults (Envoy's) a policy's given fields override.
const (
	DefaultConsecutive5xx     = 5
	DefaultOutlierInterval    = 10 * time.Second
	DefaultBaseEjectionTime   = 30 * time.Second
	DefaultMaxEjectionPercent = 10
)

// Retry-budget defaults.
const (
	DefaultBudgetPercent      = 20
	DefaultBudgetMinPerSecond = 10
)

// DefaultRetryOn is what a TrafficPolicy's retries retry on when retryOn
// is not given (the mesh default).
var DefaultRetryOn = []string{"connect-failure", "refused-stream", "unavailable", "cancelled", "retriable-status-codes"}

// TrafficPolicyFrom converts a validated, defaulted TrafficPolicy,
// filling in the defaults of every stanza it sets.
func TrafficPolicyFrom(tp *v1alpha1.TrafficPolicy) (*TrafficPolicy, error) {
	s := tp.Spec
	out := &TrafficPolicy{Name: tp.Name, Namespace: tp.Namespace, Created: tp.CreationTimestamp.Time,
		Target: PolicyTarget{Kind: s.TargetRef.Kind, Name: s.TargetRef.Name, Namespace: tp.Namespace,
			Port: uint32(s.TargetRef.Port), SectionName: s.TargetRef.SectionName}}
	var firstErr error
	dur := func(field, v string) time.Duration {
		if v == "" {
			return 0
		}
		d, err := resource.ParseGatewayDuration(v)
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("model: trafficpolicy %s/%s: spec.%s: %w", tp.Namespace, tp.Name, field, err)
		}
		return d
	}
	if lb := s.LoadBalancer; lb != nil {
		out.LBType = lb.Type
		out.NoLocality = lb.LocalityAware != nil && !*lb.LocalityAware
		if h := lb.Hash; h != nil {
			out.Hash = &HashOn{Header: strings.ToLower(h.Header), SourceIP: h.SourceIP}
			if h.Cookie != nil {
				out.Hash.Cookie = h.Cookie.Name
				out.Hash.CookieTTL = dur("loadBalancer.hash.cookie.ttl", h.Cookie.TTL)
			}
		}
	}
	if c := s.ConnectionPool; c != nil {
		out.Pool = &ConnectionPool{
			MaxConnections: uint32(c.MaxConnections), MaxPendingRequests: uint32(c.MaxPendingRequests),
			MaxRequests: uint32(c.MaxRequests), MaxRetries: uint32(c.MaxRetries),
			ConnectTimeout: dur("connectionPool.connectTimeout", c.ConnectTimeout),
			IdleTimeout:    dur("connectionPool.idleTimeout", c.IdleTimeout),
		}
	}
	if o := s.OutlierDetection; o != nil {
		out.Outlier = &OutlierDetection{
			Consecutive5xx:           orInt(o.Consecutive5xxErrors, DefaultConsecutive5xx),
			ConsecutiveGatewayErrors: orInt(o.ConsecutiveGatewayErrors, 0),
			Interval:                 DefaultOutlierInterval,
			BaseEjectionTime:         DefaultBaseEjectionTime,
			MaxEjectionPercent:       orInt(o.MaxEjectionPercent, DefaultMaxEjectionPercent),
		}
		if o.Interval != "" {
			out.Outlier.Interval = dur("outlierDetection.interval", o.Interval)
		}
		if o.BaseEjectionTime != "" {
			out.Outlier.BaseEjectionTime = dur("outlierDetection.baseEjectionTime", o.BaseEjectionTime)
		}
	}
	if r := s.Retries; r != nil {
		if retrySet(r) {
			rt := &Retry{
				Attempts:      orInt(r.Attempts, DefaultRetryAttempts),
				On:            append([]string(nil), r.RetryOn...),
				PerTryTimeout: dur("retries.perTryTimeout", r.PerTryTimeout),
				NonIdempotent: r.RetryNonIdempotent,
				MaxBodyBytes:  orInt(r.MaxBodyBytes, DefaultRetryBodyBytes),
			}
			if len(rt.On) == 0 {
				rt.On = append([]string(nil), DefaultRetryOn...)
			}
			for _, c := range r.RetriableStatusCodes {
				rt.Codes = append(rt.Codes, uint32(c))
			}
			if len(rt.Codes) == 0 && slices.Contains(rt.On, "retriable-status-codes") {
				rt.Codes = []uint32{503}
			}
			if b := r.Backoff; b != nil {
				rt.BackoffBase = dur("retries.backoff.baseInterval", b.BaseInterval)
				rt.BackoffMax = dur("retries.backoff.maxInterval", b.MaxInterval)
			}
			out.Retry = rt
		}
		if b := r.Budget; b != nil {
			out.Budget = &RetryBudget{Percent: DefaultBudgetPercent, MinPerSecond: orInt(b.MinRetriesPerSecond, DefaultBudgetMinPerSecond)}
			if b.Percent != nil {
				out.Budget.Percent = *b.Percent
			}
		}
	}
	if t := s.Timeouts; t != nil {
		d := dur("timeouts.request", t.Request)
		out.Timeout = &d
	}
	if rl := s.RateLimit; rl != nil {
		out.RateLimit = &RateLimit{RequestsPerSecond: uint32(rl.RequestsPerSecond), Burst: uint32(rl.Burst)}
		if out.RateLimit.Burst == 0 {
			out.RateLimit.Burst = out.RateLimit.RequestsPerSecond
		}
	}
	if f := s.Faults; f != nil {
		out.Fault = &Fault{}
		if d := f.Delay; d != nil {
			out.Fault.Delay = dur("faults.delay.fixedDelay", d.FixedDelay)
			out.Fault.DelayPerMillion = PerMillion(d.Percent)
		}
		if a := f.Abort; a != nil {
			out.Fault.AbortStatus = int(a.HTTPStatus)
			out.Fault.AbortGRPC = a.GRPCStatus
			out.Fault.AbortPerMillion = PerMillion(a.Percent)
		}
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}

// retrySet reports whether a retries stanza sets anything but a budget
// (a budget alone leaves retries to the route or the mesh default).
func retrySet(r *v1alpha1.Retries) bool {
	return r.Attempts != nil || r.PerTryTimeout != "" || len(r.RetryOn) > 0 || len(r.RetriableStatusCodes) > 0 ||
		r.Backoff != nil || r.RetryNonIdempotent || r.MaxBodyBytes != nil
}

// PerMillion converts a percentage (nil: 100) to parts per million:
// round(percent × 10000).
func PerMillion(percent *float64) uint32 {
	if percent == nil {
		return 1000000
	}
	return uint32(math.Round(*percent * 10000))
}

func orInt(v *int32, def uint32) uint32 {
	if v == nil {
		return def
	}
	return uint32(*v)
}

// MeshFrom converts a validated, defaulted MeshConfig.
func MeshFrom(m *v1alpha1.MeshConfig) Mesh {
	var out Mesh
	if t := m.Spec.Tracing; t != nil {
		tr := &Tracing{Endpoint: t.OTLP.Endpoint, Protocol: t.OTLP.Protocol, Path: t.OTLP.Path, ServiceName: t.ServiceName, SampleRate: 1}
		if t.SampleRate != nil {
			tr.SampleRate = *t.SampleRate
		}
		if tr.Protocol == "" {
			tr.Protocol = OTLPGRPC
		}
		if tr.Protocol == OTLPHTTP && tr.Path == "" {
			tr.Path = "/v1/traces"
		}
		out.Tracing = tr
	}
	return out
}
