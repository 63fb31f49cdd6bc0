package status_test

import (
	"strings"
	"testing"
	"time"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/weftmesh/weft/api/resource"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/model"
	"github.com/weftmesh/weft/controlplane/status"
)

const objects = `apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: web, namespace: shop}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: db, namespace: shop}
spec: {ports: [{name: pg, port: 5432, protocol: TCP}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: shop}
spec:
  parentRefs: [{kind: Service, name: web, port: 80}, {kind: Service, name: nope}, {kind: Service, name: web, port: 81}, {kind: Service, name: db}]
  rules:
  - name: api
    filters: [{type: RequestMirror, requestMirror: {backendRef: {name: shadow, port: 80}}}]
    backendRefs: [{name: web, port: 80}, {name: web, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g, namespace: shop}
spec:
  parentRefs: [{kind: Service, name: web, sectionName: http}]
  rules: [{backendRefs: [{name: web, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: db, namespace: shop}
spec:
  parentRefs: [{kind: Service, name: db, port: 5432}, {kind: Service, name: web, port: 80}]
  rules: [{backendRefs: [{name: db, port: 5432}, {name: web, port: 80}]}]
---
apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: a-old, namespace: shop, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  targetRef: {kind: Service, name: web, port: 80}
  timeouts: {request: 1s}
  rateLimit: {requestsPerSecond: 1}
---
apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: b-young, namespace: shop, creationTimestamp: "2026-02-01T00:00:00Z"}
spec:
  targetRef: {kind: Service, name: web, sectionName: http}
  timeouts: {request: 2s}
  faults: {abort: {httpStatus: 503}}
---
apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: c-whole, namespace: shop, creationTimestamp: "2026-03-01T00:00:00Z"}
spec:
  targetRef: {kind: Service, name: web}
  timeouts: {request: 3s}
---
apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: missing, namespace: shop}
spec:
  targetRef: {kind: HTTPRoute, name: web, sectionName: nope}
  timeouts: {request: 3s}
`

func TestCompute(t *testing.T) {
	objs, err := resource.DecodeYAML("test", []byte(objects))
	if err != nil {
		t.Fatal(err)
	}
	st, err := model.FromObjects(objs, nil)
	if err != nil {
		t.Fatal(err)
	}
	rep := status.Compute(st, nil)
	cond := func(c status.Condition) string {
		return map[bool]string{true: "True", false: "False"}[c.OK] + "/" + c.Reason
	}

	web := rep.Route("HTTPRoute", "shop", "web")
	for i, want := range []string{"True/Accepted", "False/NoMatchingParent", "False/NoMatchingParent", "False/NotAllowedByListeners"} {
		if got := cond(web[i].Accepted); got != want {
			t.Errorf("httproute parent %d: %s (%s), want %s", i, got, web[i].Accepted.Message, want)
		}
	}
	if r := web[0].ResolvedRefs; cond(r) != "False/BackendNotFound" || !strings.Contains(r.Message, "Service shadow.shop does not exist") ||
		!strings.Contains(r.Message, "Service web.shop has no port 8080") {
		t.Errorf("resolved: %+v", r)
	}
	if g := rep.Route("GRPCRoute", "shop", "g"); cond(g[0].Accepted) != "True/Accepted" || cond(g[0].ResolvedRefs) != "True/ResolvedRefs" {
		t.Errorf("grpcroute: %+v", g)
	}
	tcp := rep.Route("TCPRoute", "shop", "db")
	if cond(tcp[0].Accepted) != "True/Accepted" || cond(tcp[1].Accepted) != "False/NotAllowedByListeners" ||
		cond(tcp[0].ResolvedRefs) != "False/UnsupportedProtocol" {
		t.Errorf("tcproute: %+v", tcp)
	}
	for name, want := range map[string]string{"a-old": "True/Accepted", "b-young": "False/Conflicted", "c-whole": "True/Accepted", "missing": "False/TargetNotFound"} {
		c, ok := rep.Policy("shop", name)
		if !ok || cond(c) != want {
			t.Errorf("policy %s: %+v, want %s", name, c, want)
		}
	}
	if c, _ := rep.Policy("shop", "b-young"); !strings.Contains(c.Message, "timeouts already set on Service web port \"http\" by older TrafficPolicy a-old") {
		t.Errorf("conflict message: %s", c.Message)
	}

	// Fill writes Gateway API status; a second computation keeps the
	// transition time of an unchanged condition.
	tr := status.NewTransitions()
	t0 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	var route *gatewayv1.HTTPRoute
	var policy *v1alpha1.TrafficPolicy
	for _, o := range objs {
		switch v := o.(type) {
		case *gatewayv1.HTTPRoute:
			route = v
		case *v1alpha1.TrafficPolicy:
			if v.Name == "b-young" {
				policy = v
			}
		}
	}
	route.Generation = 3
	rep.Fill(route, tr, t0)
	rep.Fill(route, tr, t0.Add(time.Minute))
	ps := route.Status.Parents
	if len(ps) != 4 || ps[0].ControllerName != status.ControllerName || ps[0].Conditions[0].Type != "Accepted" ||
		ps[0].Conditions[0].ObservedGeneration != 3 || !ps[0].Conditions[0].LastTransitionTime.Time.Equal(t0) ||
		ps[1].Conditions[0].Reason != "NoMatchingParent" || ps[0].Conditions[1].Type != "ResolvedRefs" {
		t.Errorf("route status: %+v", ps)
	}
	rep.Fill(policy, tr, t0)
	if a := policy.Status.Ancestors; len(a) != 1 || a[0].Conditions[0].Reason != "Conflicted" || *a[0].AncestorRef.SectionName != "http" {
		t.Errorf("policy status: %+v", a)
	}
}
