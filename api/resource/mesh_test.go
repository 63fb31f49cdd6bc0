package resource_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/weftmesh/weft/api/resource"
	"github.com/weftmesh/weft/api/v1alpha1"
)

func TestMeshConfigDefaults(t *testing.T) {
	o := decodeOne(t, `apiVersion: weft.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  tracing:
    otlp: {endpoint: "otel-collector.observability:4317"}`)
	if err := resource.Validate(o); err != nil {
		t.Fatal(err)
	}
	m := o.(*v1alpha1.MeshConfig)
	if m.Namespace != "weft-system" {
		t.Errorf("namespace = %q, want weft-system (the MeshConfig's default)", m.Namespace)
	}
	tr := m.Spec.Tracing
	if tr.SampleRate == nil || *tr.SampleRate != 1 || tr.OTLP.Protocol != "grpc" || tr.OTLP.Path != "" {
		t.Errorf("defaults: %+v %+v", tr, tr.OTLP)
	}
	h := decodeOne(t, `apiVersion: weft.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh, namespace: weft-system}
spec:
  tracing:
    sampleRate: 100
    otlp: {endpoint: "127.0.0.1:4318", protocol: http}
    serviceName: shop`)
	if err := resource.Validate(h); err != nil {
		t.Fatal(err)
	}
	if p := h.(*v1alpha1.MeshConfig).Spec.Tracing.OTLP.Path; p != "/v1/traces" {
		t.Errorf("http path default = %q", p)
	}
	empty := decodeOne(t, "apiVersion: weft.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {}\n")
	if err := resource.Validate(empty); err != nil {
		t.Errorf("a MeshConfig without sections: %v", err)
	}
}

func TestMeshConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		wants      []string
	}{
		{"other name", "metadata: {name: global, namespace: weft-system}\nspec: {}",
			[]string{"metadata.name: Invalid value: \"global\": the mesh has one MeshConfig, named mesh"}},
		{"other namespace", "metadata: {name: mesh, namespace: shop}\nspec: {}",
			[]string{"metadata.namespace: Invalid value: \"shop\": the MeshConfig lives in namespace weft-system"}},
		{"rate and endpoint", "metadata: {name: mesh}\nspec:\n  tracing: {sampleRate: 101, otlp: {endpoint: collector}}",
			[]string{"spec.tracing.sampleRate: Invalid value: 101: must be between 0 and 100", "spec.tracing.otlp.endpoint: Invalid value: \"collector\": must be HOST:PORT"}},
		{"missing endpoint", "metadata: {name: mesh}\nspec:\n  tracing: {otlp: {}}",
			[]string{"spec.tracing.otlp.endpoint: Required value"}},
		{"bad port", "metadata: {name: mesh}\nspec:\n  tracing: {otlp: {endpoint: \"c:0\"}}",
			[]string{"spec.tracing.otlp.endpoint: Invalid value: \"c:0\": the port must be between 1 and 65535"}},
		{"protocol", "metadata: {name: mesh}\nspec:\n  tracing: {otlp: {endpoint: \"c:4317\", protocol: thrift}}",
			[]string{`spec.tracing.otlp.protocol: Unsupported value: "thrift"`}},
		{"path with grpc", "metadata: {name: mesh}\nspec:\n  tracing: {otlp: {endpoint: \"c:4317\", path: /x}}",
			[]string{"spec.tracing.otlp.path: Forbidden: only with protocol http"}},
		{"relative path", "metadata: {name: mesh}\nspec:\n  tracing: {otlp: {endpoint: \"c:4318\", protocol: http, path: v1/traces}}",
			[]string{"spec.tracing.otlp.path: Invalid value: \"v1/traces\": must be an absolute path"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := decodeOne(t, "apiVersion: weft.dev/v1alpha1\nkind: MeshConfig\n"+tc.yaml)
			err := resource.Validate(o)
			var ve *resource.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want a validation error, got %v", err)
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestMeshConfigStrict(t *testing.T) {
	_, err := resource.DecodeYAML("t", []byte("apiVersion: weft.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  tracing: {otlp: {endpoint: \"c:4317\"}, sampling: 5}\n"))
	if err == nil || !strings.Contains(err.Error(), `unknown field "spec.tracing.sampling"`) {
		t.Errorf("unknown field not refused: %v", err)
	}
}
