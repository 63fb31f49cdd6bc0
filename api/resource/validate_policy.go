package resource

import (
	"fmt"
	"math"
	"slices"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/weftmesh/weft/api/v1alpha1"
)

// RetryOn lists the retry conditions a TrafficPolicy may name (Envoy's
// retry_on values Weft honours).
var RetryOn = []string{
	"connect-failure", "refused-stream", "reset", "5xx", "gateway-error", "retriable-4xx",
	"retriable-status-codes", "cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable",
}

// GRPCStatusNames are the gRPC status code names an abort fault may use
// (every code but OK).
var GRPCStatusNames = []string{
	"CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
	"PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
	"UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
}

// MaxRetryBodyBytes bounds retries.maxBodyBytes.
const MaxRetryBodyBytes = 4 << 20

// defaultTrafficPolicy fills in what the policy implies: the burst of a
// rate limit, and retriable-status-codes when codes are given.
func defaultTrafficPolicy(p *v1alpha1.TrafficPolicy) {
	s := &p.Spec
	if rl := s.RateLimit; rl != nil && rl.Burst == 0 {
		rl.Burst = rl.RequestsPerSecond
	}
	if r := s.Retries; r != nil && len(r.RetriableStatusCodes) > 0 && !slices.Contains(r.RetryOn, "retriable-status-codes") {
		r.RetryOn = append(r.RetryOn, "retriable-status-codes")
	}
}

func validateTrafficPolicy(tp *v1alpha1.TrafficPolicy) error {
	errs := validateMeta(tp.Name, tp.Namespace)
	spec := field.NewPath("spec")
	s := tp.Spec
	errs = append(errs, validatePolicyTarget(spec.Child("targetRef"), s.TargetRef)...)
	if s.LoadBalancer == nil && s.ConnectionPool == nil && s.OutlierDetection == nil && s.Retries == nil &&
		s.Timeouts == nil && s.RateLimit == nil && s.Faults == nil {
		errs = append(errs, field.Required(spec, "set at least one of loadBalancer, connectionPool, outlierDetection, retries, timeouts, rateLimit, faults"))
	}
	if s.TargetRef.Kind == "HTTPRoute" || s.TargetRef.Kind == "GRPCRoute" {
		why := fmt.Sprintf("applies to a Service's clusters only; target the Service, not a %s", s.TargetRef.Kind)
		if s.LoadBalancer != nil {
			errs = append(errs, field.Forbidden(spec.Child("loadBalancer"), why))
		}
		if s.ConnectionPool != nil {
			errs = append(errs, field.Forbidden(spec.Child("connectionPool"), why))
		}
		if s.OutlierDetection != nil {
			errs = append(errs, field.Forbidden(spec.Child("outlierDetection"), why))
		}
		if s.Retries != nil && s.Retries.Budget != nil {
			errs = append(errs, field.Forbidden(spec.Child("retries", "budget"), why))
		}
	}
	if s.LoadBalancer != nil {
		errs = append(errs, validateLoadBalancer(spec.Child("loadBalancer"), s.LoadBalancer)...)
	}
	if c := s.ConnectionPool; c != nil {
		cp := spec.Child("connectionPool")
		for _, f := range []struct {
			name string
			v    int32
		}{{"maxConnections", c.MaxConnections}, {"maxPendingRequests", c.MaxPendingRequests}, {"maxRequests", c.MaxRequests}, {"maxRetries", c.MaxRetries}} {
			if f.v < 0 {
				errs = append(errs, field.Invalid(cp.Child(f.name), f.v, "must not be negative"))
			}
		}
		errs = append(errs, positiveDuration(cp.Child("connectTimeout"), c.ConnectTimeout)...)
		errs = append(errs, positiveDuration(cp.Child("idleTimeout"), c.IdleTimeout)...)
	}
	if o := s.OutlierDetection; o != nil {
		op := spec.Child("outlierDetection")
		errs = append(errs, nonNegative(op.Child("consecutive5xxErrors"), o.Consecutive5xxErrors)...)
		errs = append(errs, nonNegative(op.Child("consecutiveGatewayErrors"), o.ConsecutiveGatewayErrors)...)
		errs = append(errs, positiveDuration(op.Child("interval"), o.Interval)...)
		errs = append(errs, positiveDuration(op.Child("baseEjectionTime"), o.BaseEjectionTime)...)
		if v := o.MaxEjectionPercent; v != nil && (*v < 0 || *v > 100) {
			errs = append(errs, field.Invalid(op.Child("maxEjectionPercent"), *v, "must be between 0 and 100"))
		}
	}
	if s.Retries != nil {
		errs = append(errs, validateRetries(spec.Child("retries"), s.Retries)...)
	}
	if t := s.Timeouts; t != nil {
		rp := spec.Child("timeouts", "request")
		if t.Request == "" {
			errs = append(errs, field.Required(rp, "a Gateway API duration; 0s means no timeout"))
		} else if _, err := parseGatewayDuration(t.Request); err != nil {
			errs = append(errs, field.Invalid(rp, t.Request, err.Error()))
		}
	}
	if rl := s.RateLimit; rl != nil {
		rp := spec.Child("rateLimit")
		if rl.RequestsPerSecond < 1 {
			errs = append(errs, field.Invalid(rp.Child("requestsPerSecond"), rl.RequestsPerSecond, "must be at least 1"))
		}
		if rl.Burst < 0 {
			errs = append(errs, field.Invalid(rp.Child("burst"), rl.Burst, "must not be negative (0 or absent: requestsPerSecond)"))
		}
	}
	if f := s.Faults; f != nil {
		errs = append(errs, validateFaults(spec.Child("faults"), f)...)
	}
	return asError(tp, errs)
}

func validatePolicyTarget(p *field.Path, t v1alpha1.PolicyTargetRef) field.ErrorList {
	var errs field.ErrorList
	switch t.Kind {
	case "Service":
		if t.Group != "" && t.Group != v1alpha1.Group {
			errs = append(errs, field.NotSupported(p.Child("group"), t.Group, []string{`"" (core)`, v1alpha1.Group}))
		}
	case "HTTPRoute", "GRPCRoute":
		if t.Group != "" && t.Group != gatewayv1.GroupName {
			errs = append(errs, field.NotSupported(p.Child("group"), t.Group, []string{gatewayv1.GroupName}))
		}
		if t.Port != 0 {
			errs = append(errs, field.Forbidden(p.Child("port"), "only a Service target has ports; use sectionName to name a rule"))
		}
	case "":
		errs = append(errs, field.Required(p.Child("kind"), "Service, HTTPRoute or GRPCRoute"))
	default:
		errs = append(errs, field.NotSupported(p.Child("kind"), t.Kind, []string{"Service", "HTTPRoute", "GRPCRoute"}))
	}
	if t.Name == "" {
		errs = append(errs, field.Required(p.Child("name"), ""))
	} else {
		for _, m := range validation.IsDNS1123Subdomain(t.Name) {
			errs = append(errs, field.Invalid(p.Child("name"), t.Name, m))
		}
	}
	if t.SectionName != "" {
		for _, m := range validation.IsDNS1123Label(t.SectionName) {
			errs = append(errs, field.Invalid(p.Child("sectionName"), t.SectionName, m))
		}
	}
	if t.Port != 0 {
		errs = append(errs, validatePort(p.Child("port"), t.Port)...)
		if t.SectionName != "" {
			errs = append(errs, field.Forbidden(p.Child("sectionName"), "set port or sectionName, not both"))
		}
	}
	return errs
}

func validateLoadBalancer(p *field.Path, lb *v1alpha1.LoadBalancer) field.ErrorList {
	var errs field.ErrorList
	switch lb.Type {
	case "", v1alpha1.LBRoundRobin, v1alpha1.LBRandom, v1alpha1.LBLeastRequest, v1alpha1.LBRingHash:
	default:
		errs = append(errs, field.NotSupported(p.Child("type"), lb.Type,
			[]string{v1alpha1.LBRoundRobin, v1alpha1.LBRandom, v1alpha1.LBLeastRequest, v1alpha1.LBRingHash}))
	}
	hp := p.Child("hash")
	if lb.Type == v1alpha1.LBRingHash && lb.Hash == nil {
		errs = append(errs, field.Required(hp, "RING_HASH needs what to hash: header, cookie or sourceIP"))
	}
	if lb.Type != v1alpha1.LBRingHash && lb.Hash != nil {
		errs = append(errs, field.Forbidden(hp, "only with type RING_HASH"))
	}
	if h := lb.Hash; h != nil {
		n := 0
		if h.Header != "" {
			n++
			if !headerNameRE.MatchString(h.Header) {
				errs = append(errs, field.Invalid(hp.Child("header"), h.Header, "must be a valid HTTP header name"))
			}
		}
		if c := h.Cookie; c != nil {
			n++
			cp := hp.Child("cookie")
			if c.Name == "" {
				errs = append(errs, field.Required(cp.Child("name"), ""))
			} else if !headerNameRE.MatchString(c.Name) {
				errs = append(errs, field.Invalid(cp.Child("name"), c.Name, "must be a valid cookie name"))
			}
			errs = append(errs, positiveDuration(cp.Child("ttl"), c.TTL)...)
		}
		if h.SourceIP {
			n++
		}
		if n != 1 {
			errs = append(errs, field.Invalid(hp, n, "set exactly one of header, cookie or sourceIP"))
		}
	}
	return errs
}

func validateRetries(p *field.Path, r *v1alpha1.Retries) field.ErrorList {
	var errs field.ErrorList
	if r.Attempts != nil && (*r.Attempts < 0 || *r.Attempts > maxRetryAttempts) {
		errs = append(errs, field.Invalid(p.Child("attempts"), *r.Attempts, fmt.Sprintf("must be between 0 and %d", maxRetryAttempts)))
	}
	errs = append(errs, positiveDuration(p.Child("perTryTimeout"), r.PerTryTimeout)...)
	seen := map[string]bool{}
	for i, on := range r.RetryOn {
		op := p.Child("retryOn").Index(i)
		if !slices.Contains(RetryOn, on) {
			errs = append(errs, field.NotSupported(op, on, RetryOn))
		}
		if seen[on] {
			errs = append(errs, field.Duplicate(op, on))
		}
		seen[on] = true
	}
	codes := map[int32]bool{}
	for i, c := range r.RetriableStatusCodes {
		cp := p.Child("retriableStatusCodes").Index(i)
		if c < 400 || c > 599 {
			errs = append(errs, field.Invalid(cp, c, "must be between 400 and 599"))
		}
		if codes[c] {
			errs = append(errs, field.Duplicate(cp, c))
		}
		codes[c] = true
	}
	if b := r.Backoff; b != nil {
		bp := p.Child("backoff")
		errs = append(errs, positiveDuration(bp.Child("baseInterval"), b.BaseInterval)...)
		errs = append(errs, positiveDuration(bp.Child("maxInterval"), b.MaxInterval)...)
		base, err1 := parseGatewayDuration(b.BaseInterval)
		max, err2 := parseGatewayDuration(b.MaxInterval)
		if err1 == nil && err2 == nil && max < base {
			errs = append(errs, field.Invalid(bp.Child("maxInterval"), b.MaxInterval, "must not be shorter than baseInterval"))
		}
	}
	if b := r.Budget; b != nil {
		bp := p.Child("budget")
		if b.Percent != nil && (math.IsNaN(*b.Percent) || *b.Percent < 0 || *b.Percent > 100) {
			errs = append(errs, field.Invalid(bp.Child("percent"), *b.Percent, "must be between 0 and 100"))
		}
		errs = append(errs, nonNegative(bp.Child("minRetriesPerSecond"), b.MinRetriesPerSecond)...)
	}
	if v := r.MaxBodyBytes; v != nil && (*v < 0 || *v > MaxRetryBodyBytes) {
		errs = append(errs, field.Invalid(p.Child("maxBodyBytes"), *v, fmt.Sprintf("must be between 0 and %d (4 MiB)", MaxRetryBodyBytes)))
	}
	return errs
}

func validateFaults(p *field.Path, f *v1alpha1.Faults) field.ErrorList {
	var errs field.ErrorList
	if f.Delay == nil && f.Abort == nil {
		errs = append(errs, field.Required(p, "set delay, abort or both"))
	}
	if d := f.Delay; d != nil {
		dp := p.Child("delay")
		if d.FixedDelay == "" {
			errs = append(errs, field.Required(dp.Child("fixedDelay"), "a Gateway API duration"))
		} else {
			errs = append(errs, positiveDuration(dp.Child("fixedDelay"), d.FixedDelay)...)
		}
		errs = append(errs, percent(dp.Child("percent"), d.Percent)...)
	}
	if a := f.Abort; a != nil {
		ap := p.Child("abort")
		switch {
		case a.HTTPStatus != 0 && a.GRPCStatus != "":
			errs = append(errs, field.Forbidden(ap.Child("grpcStatus"), "set httpStatus or grpcStatus, not both"))
		case a.HTTPStatus == 0 && a.GRPCStatus == "":
			errs = append(errs, field.Required(ap.Child("httpStatus"), "set httpStatus (200-599) or grpcStatus (a gRPC code name)"))
		}
		if a.HTTPStatus != 0 && (a.HTTPStatus < 200 || a.HTTPStatus > 599) {
			errs = append(errs, field.Invalid(ap.Child("httpStatus"), a.HTTPStatus, "must be between 200 and 599"))
		}
		if a.GRPCStatus != "" && !slices.Contains(GRPCStatusNames, a.GRPCStatus) {
			errs = append(errs, field.NotSupported(ap.Child("grpcStatus"), a.GRPCStatus, GRPCStatusNames))
		}
		errs = append(errs, percent(ap.Child("percent"), a.Percent)...)
	}
	return errs
}

func percent(p *field.Path, v *float64) field.ErrorList {
	if v != nil && (math.IsNaN(*v) || *v < 0 || *v > 100) {
		return field.ErrorList{field.Invalid(p, *v, "must be between 0 and 100")}
	}
	return nil
}

func nonNegative(p *field.Path, v *int32) field.ErrorList {
	if v != nil && *v < 0 {
		return field.ErrorList{field.Invalid(p, *v, "must not be negative")}
	}
	return nil
}

// positiveDuration checks an optional Gateway API duration that must be
// more than zero when given.
func positiveDuration(p *field.Path, s string) field.ErrorList {
	if s == "" {
		return nil
	}
	d, err := parseGatewayDuration(s)
	if err != nil {
		return field.ErrorList{field.Invalid(p, s, err.Error())}
	}
	if d <= 0 {
		return field.ErrorList{field.Invalid(p, s, "must be more than 0")}
	}
	return nil
}
