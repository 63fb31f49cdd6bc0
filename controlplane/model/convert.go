package model

import (
	"fmt"
	"strings"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

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
	out := &HTTPRoute{Name: r.Name, Namespace: r.Namespace, Created: r.CreationTimestamp.Time}
	for _, p := range r.Spec.ParentRefs {
		ref := ParentRef{Service: string(p.Name), Namespace: r.Namespace}
		if p.Port != nil {
			ref.Port = uint32(*p.Port)
		}
		if p.SectionName != nil {
			ref.SectionName = string(*p.SectionName)
		}
		out.Parents = append(out.Parents, ref)
	}
	for i, rule := range r.Spec.Rules {
		rr := RouteRule{}
		if rule.Name != nil {
			rr.Name = string(*rule.Name)
		}
		if rule.Timeouts != nil && rule.Timeouts.Request != nil {
			d, err := resource.ParseGatewayDuration(string(*rule.Timeouts.Request))
			if err != nil {
				return nil, fmt.Errorf("model: httproute %s/%s: rules[%d].timeouts.request: %w", r.Namespace, r.Name, i, err)
			}
			rr.Timeout = d
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
		for _, b := range rule.BackendRefs {
			be := Backend{Service: string(b.Name), Namespace: r.Namespace, Weight: 1}
			if b.Port != nil {
				be.Port = uint32(*b.Port)
			}
			if b.Weight != nil {
				be.Weight = uint32(*b.Weight)
			}
			rr.Backends = append(rr.Backends, be)
		}
		out.Rules = append(out.Rules, rr)
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
		case *v1alpha1.MTLSPolicy:
			p := &MTLSPolicy{Name: v.Name, Namespace: v.Namespace, Created: v.CreationTimestamp.Time, Mode: v.Spec.Mode}
			if len(v.Spec.Selector) > 0 {
				p.Selector = v.Spec.Selector
			}
			if v.Spec.TargetRef != nil {
				p.Service = v.Spec.TargetRef.Name
			}
			st.MTLSPolicies = append(st.MTLSPolicies, p)
		default:
			return nil, fmt.Errorf("model: unsupported object %T", o)
		}
	}
	st.Sort()
	return st, nil
}
