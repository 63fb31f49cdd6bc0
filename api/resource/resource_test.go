package resource_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/weftmesh/weft/api/resource"
)

func decodeOne(t *testing.T, y string) resource.Object {
	t.Helper()
	objs, err := resource.DecodeYAML("test", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 {
		t.Fatalf("got %d objects", len(objs))
	}
	return objs[0]
}

const route = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: shop}
spec:
  parentRefs: [{kind: Service, name: catalog, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}, headers: [{name: x-user, value: alice}], method: GET}]
    backendRefs: [{name: catalog-v1, port: 80, weight: 90}, {name: catalog-v2, port: 80, weight: 10}]
    timeouts: {request: 2s}
`

func TestValidObjects(t *testing.T) {
	svc := decodeOne(t, `apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: catalog}
spec:
  selector: {app: catalog}
  ports: [{port: 80, targetPort: 8080}]`)
	if err := resource.Validate(svc); err != nil {
		t.Fatal(err)
	}
	if svc.GetNamespace() != "default" {
		t.Errorf("namespace not defaulted: %q", svc.GetNamespace())
	}
	r := decodeOne(t, route)
	if err := resource.Validate(r); err != nil {
		t.Fatal(err)
	}
}

// TestValidationErrors checks that every problem is reported with its
// field path.
func TestValidationErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		yaml  string
		wants []string
	}{
		{"service without ports", `apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: a}
spec: {selector: {app: a}}`, []string{"spec.ports: Required value"}},
		{"service bad port and protocol", `apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: a}
spec:
  ports: [{name: x, port: 0, protocol: SMTP}, {port: 70000}]`, []string{
			"spec.ports[0].port: Invalid value: 0", "spec.ports[0].protocol: Unsupported value: \"SMTP\"",
			"spec.ports[1].name: Required value", "spec.ports[1].port: Invalid value: 70000"}},
		{"service bad name", `apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: Bad_Name}
spec: {ports: [{port: 80}]}`, []string{"metadata.name: Invalid value: \"Bad_Name\""}},
		{"route without parent", strings.Replace(route, "parentRefs: [{kind: Service, name: catalog, port: 80}]", "parentRefs: []", 1),
			[]string{"spec.parentRefs: Required value"}},
		{"route gateway parent", strings.Replace(route, "kind: Service, name: catalog", "kind: Gateway, name: catalog", 1),
			[]string{"spec.parentRefs[0].kind: Unsupported value: \"Gateway\""}},
		{"route relative path", strings.Replace(route, "value: /api", "value: api", 1),
			[]string{"spec.rules[0].matches[0].path.value: Invalid value: \"api\""}},
		{"route bad regex", strings.Replace(route, "{type: PathPrefix, value: /api}", "{type: RegularExpression, value: \"([\"}", 1),
			[]string{"spec.rules[0].matches[0].path.value", "invalid RE2"}},
		{"route weight", strings.Replace(route, "weight: 90", "weight: 2000000", 1),
			[]string{"spec.rules[0].backendRefs[0].weight: Invalid value: 2000000"}},
		{"route backend without port", strings.Replace(route, "{name: catalog-v1, port: 80, weight: 90}", "{name: catalog-v1, weight: 90}", 1),
			[]string{"spec.rules[0].backendRefs[0].port: Required value"}},
		{"route extension filter refused", strings.Replace(route, "    timeouts: {request: 2s}", "    filters: [{type: ExtensionRef, extensionRef: {group: x.io, kind: X, name: x}}]", 1),
			[]string{`spec.rules[0].filters[0].type: Unsupported value: "ExtensionRef"`}},
		{"route hostnames refused", strings.Replace(route, "  rules:", "  hostnames: [a.example]\n  rules:", 1),
			[]string{"spec.hostnames: Forbidden"}},
		{"route bad timeout", strings.Replace(route, "request: 2s", "request: 2 seconds", 1),
			[]string{"spec.rules[0].timeouts.request: Invalid value"}},
		{"route bad method", strings.Replace(route, "method: GET", "method: FETCH", 1),
			[]string{"spec.rules[0].matches[0].method: Unsupported value: \"FETCH\""}},
		{"route duplicate header", strings.Replace(route, "headers: [{name: x-user, value: alice}]", "headers: [{name: x-user, value: a}, {name: X-User, value: b}]", 1),
			[]string{"spec.rules[0].matches[0].headers[1].name: Duplicate value"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := decodeOne(t, tc.yaml)
			err := resource.Validate(o)
			var ve *resource.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want a ValidationError, got %v", err)
			}
			msg := err.Error()
			for _, w := range tc.wants {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q:\n%s", w, msg)
				}
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown field", strings.Replace(route, "parentRefs", "parentRefz", 1), `unknown field "spec.parentRefz"`},
		{"unknown kind", "apiVersion: v1\nkind: Pod\nmetadata: {name: a}", `kind: Unsupported value: "Pod"`},
		{"wrong version", "apiVersion: weft.dev/v2\nkind: Service\nmetadata: {name: a}", `apiVersion: Unsupported value: "weft.dev/v2"`},
		{"no kind", "metadata: {name: a}", "kind: Required value"},
		{"broken yaml", "kind: [", "document 1"},
		{"second doc broken", route + "---\nkind: {", "document 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := resource.DecodeYAML("test", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestMultiDocument(t *testing.T) {
	objs, err := resource.DecodeYAML("test", []byte("# comment only\n---\n"+route+"---\n\n---\n"+route))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 {
		t.Fatalf("got %d objects, want 2", len(objs))
	}
}

func FuzzDecodeYAML(f *testing.F) {
	f.Add([]byte(route))
	f.Add([]byte("apiVersion: weft.dev/v1alpha1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 80}]}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, err := resource.DecodeYAML("fuzz", data)
		if err != nil {
			return
		}
		for _, o := range objs {
			_ = resource.Validate(o)
		}
	})
}
