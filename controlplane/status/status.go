// Package status computes what the mesh makes of each route and policy —
// whether it is accepted, whether its references resolve — from a
// model.State, and writes it as the Gateway API's status (route
// status.parents[], policy status.ancestors[]). A RequestAuthentication's
// references are its key sets: whether each jwksUri is fetched (from the
// control plane's fetcher, KeySets) and holds keys its rule can use.
//
// Compute is a pure function of the State and of the KeySets' answers; a
// Report is immutable and safe for concurrent use. Transitions remembers
// when each condition last changed and is safe for concurrent use.
package status

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1alpha2 "sigs.k8s.io/gateway-api/apis/v1alpha2"

	"github.com/weftmesh/weft/api/resource"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/controlplane/model"
)

// ControllerName is the controller Weft writes status as.
const ControllerName = "weft.dev/mesh"

// Condition is one computed condition, before it gets its times.
type Condition struct {
	Type    string
	OK      bool
	Reason  string
	Message string
}

// Parent is the status of a route for one of its parentRefs.
type Parent struct {
	Accepted     Condition
	ResolvedRefs Condition
}

// Report holds the status of every route and TrafficPolicy of a State.
type Report struct {
	// routes by kind/namespace/name: one Parent per parentRef, in order.
	routes map[string][]Parent
	// policies by namespace/name.
	policies map[string]Condition
	// authz holds AuthorizationPolicies and RequestAuthentications by
	// kind/namespace/name.
	authz map[string]Condition
	// keyConds and keySets hold the ResolvedRefs condition and the key
	// sets of RequestAuthentications, by kind/namespace/name.
	keyConds map[string]Condition
	keySets  map[string][]KeySet
}

func routeKey(kind, namespace, name string) string { return kind + "/" + namespace + "/" + name }

// Route returns the status of a route's parents (nil when the State does
// not hold the route).
func (r *Report) Route(kind, namespace, name string) []Parent {
	return r.routes[routeKey(kind, namespace, name)]
}

// Policy returns a TrafficPolicy's Accepted condition.
func (r *Report) Policy(namespace, name string) (Condition, bool) {
	c, ok := r.policies[namespace+"/"+name]
	return c, ok
}

// Compute derives the status of every route and policy of st. keys
// tells the state of the key sets fetched for RequestAuthentications
// (nil: none fetched yet).
func Compute(st *model.State, keys KeySets) *Report {
	rep := &Report{routes: map[string][]Parent{}, policies: map[string]Condition{}, authz: map[string]Condition{},
		keyConds: map[string]Condition{}, keySets: map[string][]KeySet{}}
	for _, r := range st.Routes {
		kind := r.Kind
		if kind == "" {
			kind = model.KindHTTPRoute
		}
		var backends []model.Backend
		for _, rule := range r.Rules {
			backends = append(backends, rule.Backends...)
			for _, m := range rule.Filters.Mirrors {
				backends = append(backends, m.Backend)
			}
		}
		resolved := resolveBackends(st, backends, false)
		parents := make([]Parent, len(r.Parents))
		for i, p := range r.Parents {
			parents[i] = Parent{Accepted: acceptParent(st, kind, p, false), ResolvedRefs: resolved}
		}
		rep.routes[routeKey(kind, r.Namespace, r.Name)] = parents
	}
	for _, r := range st.TCPRoutes {
		resolved := resolveBackends(st, r.Backends, true)
		parents := make([]Parent, len(r.Parents))
		for i, p := range r.Parents {
			parents[i] = Parent{Accepted: acceptParent(st, "TCPRoute", p, true), ResolvedRefs: resolved}
		}
		rep.routes[routeKey("TCPRoute", r.Namespace, r.Name)] = parents
	}
	computePolicies(st, rep)
	computeAuthz(st, rep)
	computeKeySets(st, keys, rep)
	return rep
}

func accepted() Condition {
	return Condition{Type: "Accepted", OK: true, Reason: "Accepted", Message: "attached to the Service"}
}

// acceptParent decides whether a route attaches to its parent Service:
// the Service and port exist and speak the route's protocol.
func acceptParent(st *model.State, kind string, p model.ParentRef, tcp bool) Condition {
	no := func(reason, format string, args ...any) Condition {
		return Condition{Type: "Accepted", Reason: reason, Message: fmt.Sprintf(format, args...)}
	}
	svc := st.Service(p.Namespace, p.Service)
	if svc == nil {
		return no("NoMatchingParent", "Service %s.%s does not exist", p.Service, p.Namespace)
	}
	var ports []model.ServicePort
	for _, port := range svc.Ports {
		if (p.Port == 0 || port.Port == p.Port) && (p.SectionName == "" || port.Name == p.SectionName) {
			ports = append(ports, port)
		}
	}
	if len(ports) == 0 {
		return no("NoMatchingParent", "Service %s.%s has no port %s", p.Service, p.Namespace, portLabel(p.Port, p.SectionName))
	}
	fits := 0
	for _, port := range ports {
		if (port.Protocol == xdsmeta.ProtocolTCP) == tcp {
			fits++
		}
	}
	if fits == 0 {
		if tcp {
			return no("NotAllowedByListeners", "port %d of Service %s.%s is %s, not TCP: attach an HTTPRoute or GRPCRoute", ports[0].Port, p.Service, p.Namespace, ports[0].Protocol)
		}
		if len(ports) == 1 {
			return no("NotAllowedByListeners", "port %d of Service %s.%s is TCP: %s needs an HTTP, HTTP2 or GRPC port (attach a TCPRoute)", ports[0].Port, p.Service, p.Namespace, kind)
		}
		return no("NotAllowedByListeners", "every port of Service %s.%s is TCP: %s needs an HTTP, HTTP2 or GRPC port (attach a TCPRoute)", p.Service, p.Namespace, kind)
	}
	return accepted()
}

func portLabel(port uint32, section string) string {
	if section != "" {
		return fmt.Sprintf("%q", section)
	}
	return fmt.Sprint(port)
}

// resolveBackends checks that every backend Service and port exists and
// speaks the route's protocol.
func resolveBackends(st *model.State, backends []model.Backend, tcp bool) Condition {
	var missing, wrong []string
	seen := map[model.Backend]bool{}
	for _, b := range backends {
		b.Weight = 0
		if seen[b] {
			continue
		}
		seen[b] = true
		svc := st.Service(b.Namespace, b.Service)
		switch {
		case svc == nil:
			missing = append(missing, fmt.Sprintf("Service %s.%s does not exist", b.Service, b.Namespace))
		case svc.Port(b.Port) == nil:
			missing = append(missing, fmt.Sprintf("Service %s.%s has no port %d", b.Service, b.Namespace, b.Port))
		case (svc.Port(b.Port).Protocol == xdsmeta.ProtocolTCP) != tcp:
			wrong = append(wrong, fmt.Sprintf("port %d of Service %s.%s is %s", b.Port, b.Service, b.Namespace, svc.Port(b.Port).Protocol))
		}
	}
	switch {
	case len(missing) > 0:
		msg := "backend " + strings.Join(missing, "; backend ")
		if !tcp {
			msg += " (its share of the traffic is answered with 500)"
		}
		return Condition{Type: "ResolvedRefs", Reason: "BackendNotFound", Message: msg}
	case len(wrong) > 0:
		want := "an HTTP, HTTP2 or GRPC port"
		if tcp {
			want = "a TCP port"
		}
		return Condition{Type: "ResolvedRefs", Reason: "UnsupportedProtocol", Message: "backend " + strings.Join(wrong, "; backend ") + ": the route needs " + want}
	}
	return Condition{Type: "ResolvedRefs", OK: true, Reason: "ResolvedRefs", Message: "every backend exists"}
}

// policyFields lists the fields a policy can set, as conflicts name them,
// with whether a policy sets each.
var policyFields = []struct {
	name string
	set  func(*model.TrafficPolicy) bool
}{
	{"loadBalancer.type", func(p *model.TrafficPolicy) bool { return p.LBType != "" }},
	{"loadBalancer.hash", func(p *model.TrafficPolicy) bool { return p.Hash != nil }},
	{"connectionPool", func(p *model.TrafficPolicy) bool { return p.Pool != nil }},
	{"outlierDetection", func(p *model.TrafficPolicy) bool { return p.Outlier != nil }},
	{"retries", func(p *model.TrafficPolicy) bool { return p.Retry != nil }},
	{"retries.budget", func(p *model.TrafficPolicy) bool { return p.Budget != nil }},
	{"timeouts", func(p *model.TrafficPolicy) bool { return p.Timeout != nil }},
	{"rateLimit", func(p *model.TrafficPolicy) bool { return p.RateLimit != nil }},
	{"faults", func(p *model.TrafficPolicy) bool { return p.Fault != nil }},
}

// computePolicies finds each policy's target and the fields an older
// policy on the same target already sets (the oldest, by creation time
// then name, wins as in the Gateway API's policy attachment).
func computePolicies(st *model.State, rep *Report) {
	groups := map[string][]*model.TrafficPolicy{}
	for _, p := range st.TrafficPolicies {
		key, problem := policyTarget(st, p)
		if problem != "" {
			rep.policies[p.Namespace+"/"+p.Name] = Condition{Type: "Accepted", Reason: "TargetNotFound", Message: problem}
			continue
		}
		groups[key] = append(groups[key], p)
	}
	for _, ps := range groups {
		sort.SliceStable(ps, func(i, j int) bool {
			if !ps[i].Created.Equal(ps[j].Created) {
				return ps[i].Created.Before(ps[j].Created)
			}
			return ps[i].Name < ps[j].Name
		})
		for i, p := range ps {
			var conflicts []string
			winners := map[string]bool{}
			for _, f := range policyFields {
				if !f.set(p) {
					continue
				}
				for _, older := range ps[:i] {
					if f.set(older) {
						conflicts = append(conflicts, f.name)
						winners[older.Name] = true
						break
					}
				}
			}
			c := Condition{Type: "Accepted", OK: true, Reason: "Accepted", Message: "applied to " + targetLabel(p.Target)}
			if len(conflicts) > 0 {
				names := make([]string, 0, len(winners))
				for n := range winners {
					names = append(names, n)
				}
				sort.Strings(names)
				c = Condition{Type: "Accepted", Reason: "Conflicted", Message: fmt.Sprintf(
					"%s already set on %s by older TrafficPolicy %s; those fields of this policy are ignored, its other fields apply",
					strings.Join(conflicts, ", "), targetLabel(p.Target), strings.Join(names, ", "))}
			}
			rep.policies[p.Namespace+"/"+p.Name] = c
		}
	}
}

func targetLabel(t model.PolicyTarget) string {
	s := t.Kind + " " + t.Name
	switch {
	case t.Port != 0:
		s += fmt.Sprintf(" port %d", t.Port)
	case t.SectionName != "" && t.Kind == model.KindService:
		s += fmt.Sprintf(" port %q", t.SectionName)
	case t.SectionName != "":
		s += fmt.Sprintf(" rule %q", t.SectionName)
	}
	return s
}

// policyTarget returns a key naming a policy's target (the same for a
// port given by number or by name), or why the target does not exist.
func policyTarget(st *model.State, p *model.TrafficPolicy) (string, string) {
	t := p.Target
	ns := t.Namespace
	if ns == "" {
		ns = p.Namespace
	}
	switch t.Kind {
	case model.KindService:
		svc := st.Service(ns, t.Name)
		if svc == nil {
			return "", fmt.Sprintf("target Service %s.%s does not exist; the policy applies to nothing", t.Name, ns)
		}
		if t.Port == 0 && t.SectionName == "" {
			return routeKey(t.Kind, ns, t.Name), ""
		}
		for _, port := range svc.Ports {
			if (t.Port == 0 || port.Port == t.Port) && (t.SectionName == "" || port.Name == t.SectionName) {
				return fmt.Sprintf("%s:%d", routeKey(t.Kind, ns, t.Name), port.Port), ""
			}
		}
		return "", fmt.Sprintf("target Service %s.%s has no port %s; the policy applies to nothing", t.Name, ns, portLabel(t.Port, t.SectionName))
	case model.KindHTTPRoute, model.KindGRPCRoute:
		for _, r := range st.Routes {
			kind := r.Kind
			if kind == "" {
				kind = model.KindHTTPRoute
			}
			if kind != t.Kind || r.Namespace != ns || r.Name != t.Name {
				continue
			}
			if t.SectionName == "" {
				return routeKey(t.Kind, ns, t.Name), ""
			}
			for _, rule := range r.Rules {
				if rule.Name == t.SectionName {
					return routeKey(t.Kind, ns, t.Name) + "#" + t.SectionName, ""
				}
			}
			return "", fmt.Sprintf("target %s %s/%s has no rule named %q; the policy applies to nothing", t.Kind, ns, t.Name, t.SectionName)
		}
		return "", fmt.Sprintf("target %s %s/%s does not exist; the policy applies to nothing", t.Kind, ns, t.Name)
	}
	return "", fmt.Sprintf("target kind %q is not supported", t.Kind)
}

// Transitions remembers when each condition last changed status, so a
// status computed again keeps its lastTransitionTime. It is safe for
// concurrent use; what it knows is lost on restart (conditions then start
// at the time they are first computed).
type Transitions struct {
	mu   sync.Mutex
	seen map[string]transition
}

type transition struct {
	status metav1.ConditionStatus
	at     metav1.Time
}

// NewTransitions returns an empty memory of transitions.
func NewTransitions() *Transitions { return &Transitions{seen: map[string]transition{}} }

func (t *Transitions) at(key string, status metav1.ConditionStatus, now time.Time) metav1.Time {
	if t == nil {
		return metav1.NewTime(now)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if prev, ok := t.seen[key]; ok && prev.status == status {
		return prev.at
	}
	at := metav1.NewTime(now.UTC().Truncate(time.Second))
	t.seen[key] = transition{status: status, at: at}
	return at
}

func (t *Transitions) condition(key string, c Condition, generation int64, now time.Time) metav1.Condition {
	status := metav1.ConditionFalse
	if c.OK {
		status = metav1.ConditionTrue
	}
	return metav1.Condition{
		Type: c.Type, Status: status, Reason: c.Reason, Message: c.Message,
		ObservedGeneration: generation, LastTransitionTime: t.at(key+"/"+c.Type, status, now),
	}
}

// Fill writes the object's status from the report (routes,
// TrafficPolicies, AuthorizationPolicies and RequestAuthentications; other kinds are left alone). t may be nil: every
// condition then transitioned now.
func (r *Report) Fill(o resource.Object, t *Transitions, now time.Time) {
	key := resource.KeyOf(o).String()
	switch v := o.(type) {
	case *gatewayv1.HTTPRoute:
		v.Status.Parents = r.routeParents(key, v.Kind, v.Namespace, v.Name, v.Spec.ParentRefs, v.Generation, t, now)
	case *gatewayv1.GRPCRoute:
		v.Status.Parents = r.routeParents(key, v.Kind, v.Namespace, v.Name, v.Spec.ParentRefs, v.Generation, t, now)
	case *gatewayv1alpha2.TCPRoute:
		v.Status.Parents = r.routeParents(key, "TCPRoute", v.Namespace, v.Name, v.Spec.ParentRefs, v.Generation, t, now)
	case *v1alpha1.AuthorizationPolicy:
		v.Status = r.authzStatus(key, "AuthorizationPolicy", v.Namespace, v.Name, v.Spec.TargetRef, v.Generation, t, now)
	case *v1alpha1.RequestAuthentication:
		v.Status = r.requestAuthnStatus(key, v, t, now)
	case *v1alpha1.TrafficPolicy:
		c, ok := r.Policy(v.Namespace, v.Name)
		if !ok {
			v.Status = gatewayv1.PolicyStatus{}
			return
		}
		tr := v.Spec.TargetRef
		ref := gatewayv1.ParentReference{Name: gatewayv1.ObjectName(tr.Name)}
		group := gatewayv1.Group(tr.Group)
		kind := gatewayv1.Kind(tr.Kind)
		ns := gatewayv1.Namespace(v.Namespace)
		ref.Group, ref.Kind, ref.Namespace = &group, &kind, &ns
		if tr.SectionName != "" {
			sn := gatewayv1.SectionName(tr.SectionName)
			ref.SectionName = &sn
		}
		if tr.Port != 0 {
			port := gatewayv1.PortNumber(tr.Port)
			ref.Port = &port
		}
		v.Status = gatewayv1.PolicyStatus{Ancestors: []gatewayv1.PolicyAncestorStatus{{
			AncestorRef:    ref,
			ControllerName: ControllerName,
			Conditions:     []metav1.Condition{t.condition(key, c, v.Generation, now)},
		}}}
	}
}

func (r *Report) routeParents(key, kind, namespace, name string, refs []gatewayv1.ParentReference, generation int64, t *Transitions, now time.Time) []gatewayv1.RouteParentStatus {
	if kind == "" {
		kind = strings.SplitN(key, "/", 2)[0]
	}
	parents := r.Route(kind, namespace, name)
	if len(parents) != len(refs) {
		return nil
	}
	out := make([]gatewayv1.RouteParentStatus, len(refs))
	for i, ref := range refs {
		pk := fmt.Sprintf("%s/parent/%d", key, i)
		out[i] = gatewayv1.RouteParentStatus{
			ParentRef:      ref,
			ControllerName: ControllerName,
			Conditions: []metav1.Condition{
				t.condition(pk, parents[i].Accepted, generation, now),
				t.condition(pk, parents[i].ResolvedRefs, generation, now),
			},
		}
	}
	return out
}
