package status

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/controlplane/model"
)

// Reasons of AuthorizationPolicy and RequestAuthentication conditions.
const (
	ReasonTargetNotFound   = "TargetNotFound"
	ReasonProviderNotFound = "ProviderNotFound"
	// ReasonL7OnTCP: a rule matches on HTTP attributes but the target
	// port is TCP.
	ReasonL7OnTCP = "UnsupportedValue"
)

func authzKey(kind, namespace, name string) string { return kind + "/" + namespace + "/" + name }

// Authz returns the Accepted condition of an AuthorizationPolicy or a
// RequestAuthentication (kind is the kind's name).
func (r *Report) Authz(kind, namespace, name string) (Condition, bool) {
	c, ok := r.authz[authzKey(kind, namespace, name)]
	return c, ok
}

// authzScope checks a target: the Service (and port) exists. It returns
// the ports the policy applies to (nil for a namespace or mesh scope), a
// label, and a problem.
func authzScope(st *model.State, namespace string, t *model.AuthzTarget) ([]model.ServicePort, string, string) {
	if t == nil {
		if namespace == model.MeshNamespace {
			return nil, "every workload of the mesh", ""
		}
		return nil, "every workload of namespace " + namespace, ""
	}
	svc := st.Service(namespace, t.Service)
	if svc == nil {
		return nil, "", fmt.Sprintf("target Service %s.%s does not exist; the policy applies to nothing", t.Service, namespace)
	}
	if t.Port == 0 {
		return svc.Ports, "Service " + t.Service, ""
	}
	if p := svc.Port(t.Port); p != nil {
		return []model.ServicePort{*p}, fmt.Sprintf("Service %s port %d", t.Service, t.Port), ""
	}
	return nil, "", fmt.Sprintf("target Service %s.%s has no port %d; the policy applies to nothing", t.Service, namespace, t.Port)
}

func computeAuthz(st *model.State, rep *Report) {
	for _, p := range st.AuthzPolicies {
		key := authzKey("AuthorizationPolicy", p.Namespace, p.Name)
		ports, label, problem := authzScope(st, p.Namespace, p.Target)
		switch {
		case problem != "":
			rep.authz[key] = Condition{Type: "Accepted", Reason: ReasonTargetNotFound, Message: problem}
			continue
		case p.Action == model.AuthzCustom && st.Mesh.Authorization.Provider(p.Provider) == nil:
			rep.authz[key] = Condition{Type: "Accepted", Reason: ReasonProviderNotFound, Message: fmt.Sprintf(
				"provider %q is not in MeshConfig spec.authorization.providers; %s denies every request (fail closed)", p.Provider, label)}
			continue
		}
		l7 := -1
		for i, r := range p.Rules {
			if r.L7 {
				l7 = i
				break
			}
		}
		tcp := 0
		for _, port := range ports {
			if port.Protocol == xdsmeta.ProtocolTCP {
				tcp++
			}
		}
		if l7 >= 0 && tcp > 0 && tcp == len(ports) {
			what := "matches nothing"
			if p.Action == model.AuthzDeny || p.Action == model.AuthzCustom {
				what = "is enforced without its HTTP fields (it denies more)"
			}
			rep.authz[key] = Condition{Type: "Accepted", Reason: ReasonL7OnTCP, Message: fmt.Sprintf(
				"rules[%d] matches on HTTP attributes but %s is TCP: there it %s", l7, label, what)}
			continue
		}
		msg := "applied to " + label
		if p.Action == model.AuthzCustom && tcp > 0 {
			msg += "; on its TCP ports the rules deny (no authorizer can be asked about a connection)"
		}
		rep.authz[key] = Condition{Type: "Accepted", OK: true, Reason: "Accepted", Message: msg}
	}
	for _, r := range st.RequestAuthns {
		key := authzKey("RequestAuthentication", r.Namespace, r.Name)
		_, label, problem := authzScope(st, r.Namespace, r.Target)
		if problem != "" {
			rep.authz[key] = Condition{Type: "Accepted", Reason: ReasonTargetNotFound, Message: problem}
			continue
		}
		rep.authz[key] = Condition{Type: "Accepted", OK: true, Reason: "Accepted", Message: "applied to " + label}
	}
}

// authzAncestor is the status ancestor of an authorization object: its
// target Service, else its namespace.
func authzAncestor(namespace string, t *v1alpha1.AuthzTargetRef) gatewayv1.ParentReference {
	ns := gatewayv1.Namespace(namespace)
	if t == nil {
		kind := gatewayv1.Kind("Namespace")
		group := gatewayv1.Group("")
		return gatewayv1.ParentReference{Group: &group, Kind: &kind, Name: gatewayv1.ObjectName(namespace)}
	}
	group := gatewayv1.Group(v1alpha1.Group)
	kind := gatewayv1.Kind("Service")
	ref := gatewayv1.ParentReference{Group: &group, Kind: &kind, Namespace: &ns, Name: gatewayv1.ObjectName(t.Name)}
	if t.Port != 0 {
		port := gatewayv1.PortNumber(t.Port)
		ref.Port = &port
	}
	return ref
}

func (r *Report) authzStatus(key, kind, namespace, name string, t *v1alpha1.AuthzTargetRef, generation int64, tr *Transitions, now time.Time) gatewayv1.PolicyStatus {
	c, ok := r.Authz(kind, namespace, name)
	if !ok {
		return gatewayv1.PolicyStatus{}
	}
	return gatewayv1.PolicyStatus{Ancestors: []gatewayv1.PolicyAncestorStatus{{
		AncestorRef:    authzAncestor(namespace, t),
		ControllerName: ControllerName,
		Conditions:     []metav1.Condition{tr.condition(key, c, generation, now)},
	}}}
}

// requestAuthnStatus is a RequestAuthentication's status: conditions
// Accepted and ResolvedRefs (its key sets), and the state of each key set.
func (r *Report) requestAuthnStatus(key string, ra *v1alpha1.RequestAuthentication, tr *Transitions, now time.Time) v1alpha1.RequestAuthenticationStatus {
	out := v1alpha1.RequestAuthenticationStatus{
		PolicyStatus: r.authzStatus(key, "RequestAuthentication", ra.Namespace, ra.Name, ra.Spec.TargetRef, ra.Generation, tr, now),
	}
	c, sets, ok := r.RequestAuthn(ra.Namespace, ra.Name)
	if !ok || len(out.Ancestors) != 1 {
		return out
	}
	out.Ancestors[0].Conditions = append(out.Ancestors[0].Conditions, tr.condition(key, c, ra.Generation, now))
	out.JWKS = jwksStatus(sets)
	return out
}
