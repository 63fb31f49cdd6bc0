package xdsconfig

import (
	"fmt"
	"sort"
	"time"

	"github.com/weftmesh/weft/controlplane/model"
)

// TrafficPolicy target kinds.
const (
	kindService   = "Service"
	kindHTTPRoute = "HTTPRoute"
	kindGRPCRoute = "GRPCRoute"
)

// policyIndex finds the TrafficPolicies that apply to a Service port or a
// route rule. It is built once per Generation and read-only afterwards.
type policyIndex struct {
	// byTarget holds each target's policies, oldest first (Created, then
	// name).
	byTarget map[policyKey][]*model.TrafficPolicy
}

type policyKey struct{ kind, namespace, name string }

func routeKind(r *model.HTTPRoute) string {
	if r.Kind == "" {
		return kindHTTPRoute
	}
	return r.Kind
}

func targetNamespace(p *model.TrafficPolicy) string {
	if p.Target.Namespace != "" {
		return p.Target.Namespace
	}
	return p.Namespace
}

// newPolicyIndex indexes the State's policies. It returns a problem line
// for each policy whose target does not exist (such a policy applies to
// nothing).
func newPolicyIndex(st *model.State) (*policyIndex, []string) {
	ix := &policyIndex{byTarget: map[policyKey][]*model.TrafficPolicy{}}
	var problems []string
	for _, p := range st.TrafficPolicies {
		k := policyKey{p.Target.Kind, targetNamespace(p), p.Target.Name}
		if msg := targetProblem(st, p); msg != "" {
			problems = append(problems, fmt.Sprintf("trafficpolicy %s/%s: %s", p.Namespace, p.Name, msg))
		}
		ix.byTarget[k] = append(ix.byTarget[k], p)
	}
	for _, ps := range ix.byTarget {
		sort.SliceStable(ps, func(i, j int) bool { return olderPolicy(ps[i], ps[j]) })
	}
	return ix, problems
}

func olderPolicy(a, b *model.TrafficPolicy) bool {
	if !a.Created.Equal(b.Created) {
		return a.Created.Before(b.Created)
	}
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	return a.Name < b.Name
}

// targetProblem says why a policy's target is missing, or "".
func targetProblem(st *model.State, p *model.TrafficPolicy) string {
	t := p.Target
	ns := targetNamespace(p)
	switch t.Kind {
	case kindService:
		svc := st.Service(ns, t.Name)
		if svc == nil {
			return fmt.Sprintf("target Service %s.%s does not exist; the policy applies to nothing", t.Name, ns)
		}
		if t.Port == 0 && t.SectionName == "" {
			return ""
		}
		for _, port := range svc.Ports {
			if servicePortTargeted(t, port) {
				return ""
			}
		}
		return fmt.Sprintf("target Service %s.%s has no port %s; the policy applies to nothing", t.Name, ns, portLabel(t))
	case kindHTTPRoute, kindGRPCRoute:
		if clusterFields(p) {
			return fmt.Sprintf("loadBalancer, connectionPool, outlierDetection and retries.budget apply only to a Service; they are ignored on %s %s/%s", t.Kind, ns, t.Name)
		}
		for _, r := range st.Routes {
			if routeKind(r) != t.Kind || r.Namespace != ns || r.Name != t.Name {
				continue
			}
			if t.SectionName == "" {
				return ""
			}
			for _, rule := range r.Rules {
				if rule.Name == t.SectionName {
					return ""
				}
			}
			return fmt.Sprintf("target %s %s/%s has no rule named %q; the policy applies to nothing", t.Kind, ns, t.Name, t.SectionName)
		}
		return fmt.Sprintf("target %s %s/%s does not exist; the policy applies to nothing", t.Kind, ns, t.Name)
	default:
		return fmt.Sprintf("target kind %q is not supported; the policy applies to nothing", t.Kind)
	}
}

func portLabel(t model.PolicyTarget) string {
	if t.SectionName != "" {
		return fmt.Sprintf("%q", t.SectionName)
	}
	return fmt.Sprint(t.Port)
}

// clusterFields reports whether a policy sets fields that only a Service
// target can carry.
func clusterFields(p *model.TrafficPolicy) bool {
	return p.LBType != "" || p.Hash != nil || p.NoLocality || p.Pool != nil || p.Outlier != nil || p.Budget != nil
}

func servicePortTargeted(t model.PolicyTarget, port model.ServicePort) bool {
	if t.Port != 0 && t.Port != port.Port {
		return false
	}
	if t.SectionName != "" && t.SectionName != port.Name {
		return false
	}
	return true
}

// forService returns the policies of a Service port, most specific first:
// those on the port (by number or name), then those on the whole Service;
// oldest first within each.
func (ix *policyIndex) forService(svc *model.Service, port model.ServicePort) []*model.TrafficPolicy {
	all := ix.byTarget[policyKey{kindService, svc.Namespace, svc.Name}]
	if len(all) == 0 {
		return nil
	}
	var onPort, onService []*model.TrafficPolicy
	for _, p := range all {
		switch {
		case p.Target.Port == 0 && p.Target.SectionName == "":
			onService = append(onService, p)
		case servicePortTargeted(p.Target, port):
			onPort = append(onPort, p)
		}
	}
	return append(onPort, onService...)
}

// forRoute returns the route-targeted policies of one rule, most specific
// first: those on the rule (sectionName), then those on the whole route.
func (ix *policyIndex) forRoute(r *model.HTTPRoute, rule *model.RouteRule) []*model.TrafficPolicy {
	all := ix.byTarget[policyKey{routeKind(r), r.Namespace, r.Name}]
	if len(all) == 0 {
		return nil
	}
	var onRule, onRoute []*model.TrafficPolicy
	for _, p := range all {
		switch {
		case p.Target.SectionName == "":
			onRoute = append(onRoute, p)
		case rule.Name != "" && p.Target.SectionName == rule.Name:
			onRule = append(onRule, p)
		}
	}
	return append(onRule, onRoute...)
}

// clusterSettings are the cluster-level fields resolved for a Service port.
type clusterSettings struct {
	LBType     string
	Hash       *model.HashOn
	NoLocality bool
	Pool       *model.ConnectionPool
	Outlier    *model.OutlierDetection
	Budget     *model.RetryBudget
}

// resolveCluster takes each field from the first policy of chain (most
// specific, then oldest, first) that sets it.
func resolveCluster(chain []*model.TrafficPolicy) clusterSettings {
	var s clusterSettings
	for _, p := range chain {
		if s.LBType == "" {
			s.LBType = p.LBType
		}
		if s.Hash == nil {
			s.Hash = p.Hash
		}
		s.NoLocality = s.NoLocality || p.NoLocality
		if s.Pool == nil {
			s.Pool = p.Pool
		}
		if s.Outlier == nil {
			s.Outlier = p.Outlier
		}
		if s.Budget == nil {
			s.Budget = p.Budget
		}
	}
	return s
}

// routeSettings are the route-level fields resolved for one route rule.
type routeSettings struct {
	Retry     *model.Retry
	Timeout   *time.Duration
	Fault     *model.Fault
	RateLimit *model.RateLimit
}

// resolveRoute takes each field from the rule itself (retry, timeouts)
// when set, else from the first policy of chain that sets it.
func resolveRoute(rule *model.RouteRule, chain []*model.TrafficPolicy) routeSettings {
	var s routeSettings
	if rule != nil {
		s.Retry = rule.Retry
		if rule.Timeout > 0 {
			t := rule.Timeout
			s.Timeout = &t
		}
	}
	for _, p := range chain {
		if s.Retry == nil {
			s.Retry = p.Retry
		}
		if s.Timeout == nil {
			s.Timeout = p.Timeout
		}
		if s.Fault == nil {
			s.Fault = p.Fault
		}
		if s.RateLimit == nil {
			s.RateLimit = p.RateLimit
		}
	}
	return s
}
