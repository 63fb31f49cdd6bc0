package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Group and version of Weft's own kinds.
const (
	Group      = "weft.dev"
	Version    = "v1alpha1"
	APIVersion = Group + "/" + Version
)

// Service groups workloads by label selector and names the ports they
// serve. Clients address it as NAME.NAMESPACE (optionally with :PORT); an
// HTTPRoute attaches to it with a parentRef of kind Service, as in GAMMA.
type Service struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ServiceSpec `json:"spec"`
}

// ServiceSpec selects workloads and lists ports.
type ServiceSpec struct {
	// Selector matches workload labels; every pair must match. An empty
	// selector selects no workload (routes may still split traffic to
	// other Services).
	Selector map[string]string `json:"selector,omitempty"`
	// Ports the Service serves. At least one.
	Ports []ServicePort `json:"ports"`
}

// ServicePort is one port of a Service.
type ServicePort struct {
	// Name of the port (a DNS label); required when there is more than one.
	Name string `json:"name,omitempty"`
	// Port clients use (1-65535).
	Port int32 `json:"port"`
	// TargetPort is the workload's application port; defaults to Port.
	TargetPort int32 `json:"targetPort,omitempty"`
	// Protocol is HTTP (default), HTTP2, GRPC or TCP.
	Protocol string `json:"protocol,omitempty"`
}

// MTLS modes of MTLSPolicy.
const (
	// MTLSStrict accepts only mutual TLS from meshed peers (the default).
	MTLSStrict = "STRICT"
	// MTLSPermissive accepts mutual TLS and plaintext on the same port (the
	// proxy looks at the first bytes), for migrating clients into the mesh.
	MTLSPermissive = "PERMISSIVE"
	// MTLSDisable accepts plaintext only; meshed clients send plaintext.
	MTLSDisable = "DISABLE"
)

// MeshNamespace is where mesh-wide policies live: an MTLSPolicy without a
// selector in this namespace applies to every workload.
const MeshNamespace = "weft-system"

// MTLSPolicy sets how workloads accept traffic from peers: STRICT (mutual
// TLS only, the default), PERMISSIVE (mutual TLS or plaintext) or DISABLE.
// Scope: with a selector or targetRef, the selected workloads in the
// policy's namespace; without, every workload of the namespace; without
// either in namespace weft-system, the whole mesh. The narrowest scope
// wins; among several matching selector policies, the oldest.
type MTLSPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              MTLSPolicySpec `json:"spec"`
}

// MTLSPolicySpec is the policy's scope and mode.
type MTLSPolicySpec struct {
	// Selector selects workloads by label.
	Selector map[string]string `json:"selector,omitempty"`
	// TargetRef names a Service whose workloads the policy selects.
	TargetRef *LocalServiceRef `json:"targetRef,omitempty"`
	// Mode is STRICT, PERMISSIVE or DISABLE.
	Mode string `json:"mode"`
}

// LocalServiceRef names a Service in the same namespace.
type LocalServiceRef struct {
	// Kind is Service.
	Kind string `json:"kind,omitempty"`
	Name string `json:"name"`
}
