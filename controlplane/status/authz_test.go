package status_test

import (
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/api/resource"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/model"
	"github.com/weftmesh/weft/controlplane/status"
)

const authzObjects = `apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: web, namespace: shop}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: db, namespace: shop}
spec: {ports: [{name: pg, port: 5432, protocol: TCP}]}
---
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: ok, namespace: shop}
spec: {targetRef: {name: web, port: 80}, rules: [{to: [{operation: {paths: [/a]}}]}]}
---
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: missing, namespace: shop}
spec: {targetRef: {name: nope}}
---
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: badport, namespace: shop}
spec: {targetRef: {name: web, port: 81}}
---
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: custom, namespace: shop}
spec: {action: CUSTOM, provider: {name: opa}, rules: [{}]}
---
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: l7tcp, namespace: shop}
spec: {targetRef: {name: db}, rules: [{to: [{operation: {methods: [GET]}}]}]}
---
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: mesh, namespace: weft-system}
spec: {action: DENY, rules: [{from: [{source: {notNamespaces: [shop]}}]}]}
---
apiVersion: weft.dev/v1alpha1
kind: RequestAuthentication
metadata: {name: users, namespace: shop}
spec: {targetRef: {name: nope}, jwtRules: [{issuer: a, jwksUri: "https://a/k"}]}
`

func TestAuthzStatus(t *testing.T) {
	objs, err := resource.DecodeYAML("t", []byte(authzObjects))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if err := resource.Validate(o); err != nil {
			t.Fatal(err)
		}
	}
	st, err := model.FromObjects(objs, nil)
	if err != nil {
		t.Fatal(err)
	}
	rep := status.Compute(st, nil)
	for _, tc := range []struct {
		kind, ns, name string
		ok             bool
		reason, msg    string
	}{
		{"AuthorizationPolicy", "shop", "ok", true, "Accepted", "Service web port 80"},
		{"AuthorizationPolicy", "shop", "missing", false, "TargetNotFound", "Service nope.shop does not exist"},
		{"AuthorizationPolicy", "shop", "badport", false, "TargetNotFound", "no port 81"},
		{"AuthorizationPolicy", "shop", "custom", false, "ProviderNotFound", "denies every request"},
		{"AuthorizationPolicy", "shop", "l7tcp", false, "UnsupportedValue", "matches nothing"},
		{"AuthorizationPolicy", "weft-system", "mesh", true, "Accepted", "every workload of the mesh"},
		{"RequestAuthentication", "shop", "users", false, "TargetNotFound", "does not exist"},
	} {
		c, ok := rep.Authz(tc.kind, tc.ns, tc.name)
		if !ok || c.OK != tc.ok || c.Reason != tc.reason || !strings.Contains(c.Message, tc.msg) {
			t.Errorf("%s %s/%s: %+v (found %v), want ok=%v %s %q", tc.kind, tc.ns, tc.name, c, ok, tc.ok, tc.reason, tc.msg)
		}
	}
	for _, o := range objs {
		ap, ok := o.(*v1alpha1.AuthorizationPolicy)
		if !ok || ap.Name != "missing" {
			continue
		}
		rep.Fill(ap, nil, time.Now())
		if len(ap.Status.Ancestors) != 1 || ap.Status.Ancestors[0].Conditions[0].Reason != "TargetNotFound" ||
			string(ap.Status.Ancestors[0].AncestorRef.Name) != "nope" {
			t.Errorf("filled status: %+v", ap.Status)
		}
	}
}
