package model

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/weftmesh/weft/api/resource"
	"github.com/weftmesh/weft/api/v1alpha1"
)

// Actions of an AuthzPolicy.
const (
	AuthzAllow  = v1alpha1.AuthzAllow
	AuthzDeny   = v1alpha1.AuthzDeny
	AuthzAudit  = v1alpha1.AuthzAudit
	AuthzCustom = v1alpha1.AuthzCustom
)

// AuthzTarget is the Service (and optionally port) a policy or a
// RequestAuthentication applies to.
type AuthzTarget struct {
	Service string
	// Port is a Service port; 0: every port of the Service.
	Port uint32
}

// AuthzPolicy is a compiled AuthorizationPolicy.
type AuthzPolicy struct {
	Name      string
	Namespace string
	Created   time.Time
	// Target is nil for a namespace-wide policy (mesh-wide in
	// MeshNamespace).
	Target *AuthzTarget
	// Action is AuthzAllow, AuthzDeny, AuthzAudit or AuthzCustom.
	Action string
	// Provider is the CUSTOM policy's provider.
	Provider string
	Rules    []AuthzRule
}

// AuthzRule matches when any From, any To and every When match (an empty
// part matches everything).
type AuthzRule struct {
	From []AuthzSource
	To   []AuthzOperation
	When []AuthzCondition
	// L7 is set when the rule uses a field a TCP connection cannot be
	// matched on.
	L7 bool
}

// AuthzSource is who sends (fields ANDed, values ORed).
type AuthzSource struct {
	Principals           []string
	NotPrincipals        []string
	Namespaces           []string
	NotNamespaces        []string
	IPBlocks             []string
	NotIPBlocks          []string
	RemoteIPBlocks       []string
	NotRemoteIPBlocks    []string
	RequestPrincipals    []string
	NotRequestPrincipals []string
}

// AuthzOperation is what is asked (fields ANDed, values ORed).
type AuthzOperation struct {
	Methods    []string
	NotMethods []string
	Hosts      []string
	NotHosts   []string
	Ports      []string
	NotPorts   []string
	Paths      []string
	NotPaths   []string
}

// AuthzCondition is a parsed `when` condition.
type AuthzCondition struct {
	Key       resource.AuthzKey
	Values    []string
	NotValues []string
}

// RequestAuthn is a compiled RequestAuthentication.
type RequestAuthn struct {
	Name      string
	Namespace string
	Created   time.Time
	Target    *AuthzTarget
	Rules     []JWTRule
}

// JWTRule is one accepted issuer.
type JWTRule struct {
	Issuer    string
	Audiences []string
	// JWKS is the inline key set; JWKSURI the URL the control plane
	// fetches it from (exactly one is set).
	JWKS           string
	JWKSURI        string
	Algorithms     []string
	ClockSkew      time.Duration
	FromHeaders    []JWTHeader
	FromParams     []string
	ClaimToHeaders []JWTClaimHeader
	Forward        bool
}

// JWTHeader is a header a token is read from.
type JWTHeader struct{ Name, Prefix string }

// JWTClaimHeader copies a claim to a request header.
type JWTClaimHeader struct{ Header, Claim string }

// Authorization is MeshConfig's spec.authorization.
type Authorization struct {
	// DefaultAction is AuthzAllow or AuthzDeny.
	DefaultAction string
	Providers     []AuthzProvider
	// SlashEncoding is v1alpha1.SlashReject or SlashDecode.
	SlashEncoding string
	TrustedHops   uint32
}

// AuthzProvider is an external authorizer (Envoy ext_authz over gRPC).
type AuthzProvider struct {
	Name                   string
	Service                string
	Timeout                time.Duration
	FailOpen               bool
	IncludePeerCertificate bool
}

// Provider returns the named provider, or nil.
func (a *Authorization) Provider(name string) *AuthzProvider {
	if a == nil {
		return nil
	}
	for i := range a.Providers {
		if a.Providers[i].Name == name {
			return &a.Providers[i]
		}
	}
	return nil
}

func authzTargetFrom(t *v1alpha1.AuthzTargetRef) *AuthzTarget {
	if t == nil {
		return nil
	}
	return &AuthzTarget{Service: t.Name, Port: uint32(t.Port)}
}

// AuthzPolicyFrom converts a validated, defaulted AuthorizationPolicy.
func AuthzPolicyFrom(ap *v1alpha1.AuthorizationPolicy) (*AuthzPolicy, error) {
	out := &AuthzPolicy{Name: ap.Name, Namespace: ap.Namespace, Created: ap.CreationTimestamp.Time,
		Target: authzTargetFrom(ap.Spec.TargetRef), Action: ap.Spec.Action}
	if out.Action == "" {
		out.Action = AuthzAllow
	}
	if ap.Spec.Provider != nil {
		out.Provider = ap.Spec.Provider.Name
	}
	for i, r := range ap.Spec.Rules {
		rule := AuthzRule{L7: resource.AuthzRuleL7(r)}
		for _, f := range r.From {
			rule.From = append(rule.From, AuthzSource(f.Source))
		}
		for _, t := range r.To {
			rule.To = append(rule.To, AuthzOperation(t.Operation))
		}
		for j, c := range r.When {
			k, err := resource.ParseAuthzKey(c.Key)
			if err != nil {
				return nil, fmt.Errorf("model: authorizationpolicy %s/%s: spec.rules[%d].when[%d].key: %w", ap.Namespace, ap.Name, i, j, err)
			}
			rule.When = append(rule.When, AuthzCondition{Key: k, Values: c.Values, NotValues: c.NotValues})
		}
		out.Rules = append(out.Rules, rule)
	}
	return out, nil
}

// RequestAuthnFrom converts a validated, defaulted RequestAuthentication.
func RequestAuthnFrom(ra *v1alpha1.RequestAuthentication) (*RequestAuthn, error) {
	out := &RequestAuthn{Name: ra.Name, Namespace: ra.Namespace, Created: ra.CreationTimestamp.Time,
		Target: authzTargetFrom(ra.Spec.TargetRef)}
	for i, r := range ra.Spec.JWTRules {
		jr := JWTRule{Issuer: r.Issuer, Audiences: r.Audiences, JWKS: r.JWKS, JWKSURI: r.JWKSURI,
			Algorithms: r.Algorithms, FromParams: r.FromParams, Forward: r.ForwardOriginalToken}
		if len(jr.Algorithms) == 0 {
			jr.Algorithms = slices.Clone(resource.DefaultJWTAlgorithms)
		}
		skew := r.ClockSkew
		if skew == "" {
			skew = resource.DefaultJWTClockSkew
		}
		d, err := resource.ParseGatewayDuration(skew)
		if err != nil {
			return nil, fmt.Errorf("model: requestauthentication %s/%s: spec.jwtRules[%d].clockSkew: %w", ra.Namespace, ra.Name, i, err)
		}
		jr.ClockSkew = d
		for _, h := range r.FromHeaders {
			jr.FromHeaders = append(jr.FromHeaders, JWTHeader{Name: h.Name, Prefix: h.Prefix})
		}
		for _, c := range r.OutputClaimToHeaders {
			jr.ClaimToHeaders = append(jr.ClaimToHeaders, JWTClaimHeader{Header: strings.ToLower(c.Header), Claim: c.Claim})
		}
		out.Rules = append(out.Rules, jr)
	}
	return out, nil
}

// AuthorizationFrom converts a validated, defaulted spec.authorization.
func AuthorizationFrom(a *v1alpha1.Authorization) (*Authorization, error) {
	out := &Authorization{DefaultAction: a.DefaultAction, SlashEncoding: v1alpha1.SlashReject}
	if out.DefaultAction == "" {
		out.DefaultAction = AuthzAllow
	}
	if n := a.Normalization; n != nil {
		if n.SlashEncoding != "" {
			out.SlashEncoding = n.SlashEncoding
		}
		out.TrustedHops = uint32(max(n.TrustedHops, 0))
	}
	for i, p := range a.Providers {
		if p.ExtAuthz == nil {
			continue
		}
		pr := AuthzProvider{Name: p.Name, Service: p.ExtAuthz.Service, FailOpen: p.ExtAuthz.FailOpen,
			IncludePeerCertificate: p.ExtAuthz.IncludePeerCertificate, Timeout: 200 * time.Millisecond}
		if p.ExtAuthz.Timeout != "" {
			d, err := resource.ParseGatewayDuration(p.ExtAuthz.Timeout)
			if err != nil {
				return nil, fmt.Errorf("model: meshconfig: spec.authorization.providers[%d].extAuthz.timeout: %w", i, err)
			}
			pr.Timeout = d
		}
		out.Providers = append(out.Providers, pr)
	}
	return out, nil
}

// authzApplies reports whether a policy scope (namespace and target)
// covers the workload's inbound port.
func (s *State) authzApplies(namespace string, t *AuthzTarget, w *Workload, in InboundPort) bool {
	if t == nil {
		return namespace == MeshNamespace || namespace == w.Namespace
	}
	svc := s.Service(namespace, t.Service)
	if svc == nil || !svc.Selects(w) {
		return false
	}
	for _, p := range svc.Ports {
		if (t.Port == 0 || p.Port == t.Port) && p.TargetPort == in.AppPort {
			return true
		}
	}
	return false
}

// AuthzPoliciesFor returns the AuthorizationPolicies that apply to a
// workload's inbound port, in namespace/name order.
func (s *State) AuthzPoliciesFor(w *Workload, in InboundPort) []*AuthzPolicy {
	var out []*AuthzPolicy
	for _, p := range s.AuthzPolicies {
		if s.authzApplies(p.Namespace, p.Target, w, in) {
			out = append(out, p)
		}
	}
	return out
}

// RequestAuthnsFor returns the RequestAuthentications that apply to a
// workload's inbound port, in namespace/name order.
func (s *State) RequestAuthnsFor(w *Workload, in InboundPort) []*RequestAuthn {
	var out []*RequestAuthn
	for _, r := range s.RequestAuthns {
		if s.authzApplies(r.Namespace, r.Target, w, in) {
			out = append(out, r)
		}
	}
	return out
}

// JWKSURIs returns every jwksUri of the State's RequestAuthentications,
// sorted and without duplicates.
func (s *State) JWKSURIs() []string {
	var out []string
	for _, r := range s.RequestAuthns {
		for _, j := range r.Rules {
			if j.JWKSURI != "" {
				out = append(out, j.JWKSURI)
			}
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}
