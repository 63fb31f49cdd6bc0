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
