package resource

import (
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1alpha2 "sigs.k8s.io/gateway-api/apis/v1alpha2"

	"github.com/weftmesh/weft/api/v1alpha1"
)

// Object is any resource Weft stores: Kubernetes-shaped metadata plus a
// type.
type Object interface {
	metav1.Object
	GetObjectKind() schema.ObjectKind
}

// Kind describes one resource kind.
type Kind struct {
	// Name is the kind as written in YAML (Service, HTTPRoute).
	Name string
	// Plural is the lower-case plural used in URLs and the CLI.
	Plural string
	// Short lists other names the CLI accepts (svc, route).
	Short []string
	// APIVersion is the group/version written by Weft.
	APIVersion string
	// alsoServed lists other group/versions accepted on input (stored as
	// APIVersion): the same schema under another version.
	alsoServed []string
	// New returns an empty object of the kind.
	New func() Object
	// validate checks a defaulted object of the kind.
	validate func(Object) error
	// setDefaults fills in defaults.
	setDefaults func(Object)
	// defaultNamespace replaces DefaultNamespace for objects of the kind
	// that name none (mesh-wide kinds live in weft-system).
	defaultNamespace string
}

var kinds = []*Kind{
	{
		Name:        "Service",
		Plural:      "services",
		Short:       []string{"service", "svc"},
		APIVersion:  v1alpha1.APIVersion,
		New:         func() Object { return &v1alpha1.Service{} },
		validate:    func(o Object) error { return validateService(o.(*v1alpha1.Service)) },
		setDefaults: func(o Object) { defaultService(o.(*v1alpha1.Service)) },
	},
	{
		Name:        "HTTPRoute",
		Plural:      "httproutes",
		Short:       []string{"httproute", "route", "routes"},
		APIVersion:  gatewayv1.GroupVersion.String(),
		New:         func() Object { return &gatewayv1.HTTPRoute{} },
		validate:    func(o Object) error { return validateHTTPRoute(o.(*gatewayv1.HTTPRoute)) },
		setDefaults: func(o Object) { defaultHTTPRoute(o.(*gatewayv1.HTTPRoute)) },
	},
	{
		Name:        "GRPCRoute",
		Plural:      "grpcroutes",
		Short:       []string{"grpcroute"},
		APIVersion:  gatewayv1.GroupVersion.String(),
		New:         func() Object { return &gatewayv1.GRPCRoute{} },
		validate:    func(o Object) error { return validateGRPCRoute(o.(*gatewayv1.GRPCRoute)) },
		setDefaults: func(o Object) { defaultGRPCRoute(o.(*gatewayv1.GRPCRoute)) },
	},
	{
		Name:        "TCPRoute",
		Plural:      "tcproutes",
		Short:       []string{"tcproute"},
		APIVersion:  gatewayv1alpha2.GroupVersion.String(),
		alsoServed:  []string{gatewayv1.GroupVersion.String()},
		New:         func() Object { return &gatewayv1alpha2.TCPRoute{} },
		validate:    func(o Object) error { return validateTCPRoute(o.(*gatewayv1alpha2.TCPRoute)) },
		setDefaults: func(o Object) { defaultTCPRoute(o.(*gatewayv1alpha2.TCPRoute)) },
	},
	{
		Name:        "TrafficPolicy",
		Plural:      "trafficpolicies",
		Short:       []string{"trafficpolicy", "tp"},
		APIVersion:  v1alpha1.APIVersion,
		New:         func() Object { return &v1alpha1.TrafficPolicy{} },
		validate:    func(o Object) error { return validateTrafficPolicy(o.(*v1alpha1.TrafficPolicy)) },
		setDefaults: func(o Object) { defaultTrafficPolicy(o.(*v1alpha1.TrafficPolicy)) },
	},
	{
		Name:        "MTLSPolicy",
		Plural:      "mtlspolicies",
		Short:       []string{"mtlspolicy", "mtls"},
		APIVersion:  v1alpha1.APIVersion,
		New:         func() Object { return &v1alpha1.MTLSPolicy{} },
		validate:    func(o Object) error { return validateMTLSPolicy(o.(*v1alpha1.MTLSPolicy)) },
		setDefaults: func(o Object) {},
	},
	{
		Name:        "AuthorizationPolicy",
		Plural:      "authorizationpolicies",
		Short:       []string{"authorizationpolicy", "authz", "ap"},
		APIVersion:  v1alpha1.APIVersion,
		New:         func() Object { return &v1alpha1.AuthorizationPolicy{} },
		validate:    func(o Object) error { return validateAuthorizationPolicy(o.(*v1alpha1.AuthorizationPolicy)) },
		setDefaults: func(o Object) { defaultAuthorizationPolicy(o.(*v1alpha1.AuthorizationPolicy)) },
	},
	{
		Name:        "RequestAuthentication",
		Plural:      "requestauthentications",
		Short:       []string{"requestauthentication", "ra"},
		APIVersion:  v1alpha1.APIVersion,
		New:         func() Object { return &v1alpha1.RequestAuthentication{} },
		validate:    func(o Object) error { return validateRequestAuthentication(o.(*v1alpha1.RequestAuthentication)) },
		setDefaults: func(o Object) { defaultRequestAuthentication(o.(*v1alpha1.RequestAuthentication)) },
	},
	{
		Name:             "MeshConfig",
		Plural:           "meshconfigs",
		Short:            []string{"meshconfig", "mesh"},
		APIVersion:       v1alpha1.APIVersion,
		New:              func() Object { return &v1alpha1.MeshConfig{} },
		validate:         func(o Object) error { return validateMeshConfig(o.(*v1alpha1.MeshConfig)) },
		setDefaults:      func(o Object) { defaultMeshConfig(o.(*v1alpha1.MeshConfig)) },
		defaultNamespace: v1alpha1.MeshNamespace,
	},
}

// DefaultNamespace is the namespace of an object of the kind that names
// none.
func (k *Kind) DefaultNamespace() string {
	if k.defaultNamespace != "" {
		return k.defaultNamespace
	}
	return DefaultNamespace
}

// Kinds returns every kind Weft knows, in a stable order.
func Kinds() []*Kind { return kinds }

// LookupKind finds a kind by its name, plural or short name, ignoring case.
func LookupKind(name string) (*Kind, error) {
	n := strings.ToLower(name)
	for _, k := range kinds {
		if strings.ToLower(k.Name) == n || k.Plural == n {
			return k, nil
		}
		for _, s := range k.Short {
			if s == n {
				return k, nil
			}
		}
	}
	var names []string
	for _, k := range kinds {
		names = append(names, k.Plural)
	}
	sort.Strings(names)
	return nil, fmt.Errorf("unknown resource kind %q (known: %s)", name, strings.Join(names, ", "))
}

// KindOf returns the kind of a typed object.
func KindOf(o Object) (*Kind, error) {
	name := kindName(o)
	for _, k := range kinds {
		if k.Name == name {
			return k, nil
		}
	}
	return nil, fmt.Errorf("resource: unsupported object type %T", o)
}

// Key is the identity of a stored object.
type Key struct {
	Kind      string // Kind.Name
	Namespace string
	Name      string
}

func (k Key) String() string { return k.Kind + "/" + k.Namespace + "/" + k.Name }

// KeyOf returns the object's key.
func KeyOf(o Object) Key {
	return Key{Kind: kindName(o), Namespace: o.GetNamespace(), Name: o.GetName()}
}

func kindName(o Object) string {
	switch o.(type) {
	case *v1alpha1.Service:
		return "Service"
	case *gatewayv1.HTTPRoute:
		return "HTTPRoute"
	case *v1alpha1.MTLSPolicy:
		return "MTLSPolicy"
	case *gatewayv1.GRPCRoute:
		return "GRPCRoute"
	case *gatewayv1alpha2.TCPRoute:
		return "TCPRoute"
	case *v1alpha1.TrafficPolicy:
		return "TrafficPolicy"
	case *v1alpha1.MeshConfig:
		return "MeshConfig"
	case *v1alpha1.AuthorizationPolicy:
		return "AuthorizationPolicy"
	case *v1alpha1.RequestAuthentication:
		return "RequestAuthentication"
	}
	return fmt.Sprintf("%T", o)
}

// ClearStatus drops whatever status an object carries: status is computed
// by the control plane, never written by clients.
func ClearStatus(o Object) {
	switch v := o.(type) {
	case *gatewayv1.HTTPRoute:
		v.Status = gatewayv1.HTTPRouteStatus{}
	case *gatewayv1.GRPCRoute:
		v.Status = gatewayv1.GRPCRouteStatus{}
	case *gatewayv1alpha2.TCPRoute:
		v.Status = gatewayv1alpha2.TCPRouteStatus{}
	case *v1alpha1.TrafficPolicy:
		v.Status = gatewayv1.PolicyStatus{}
	case *v1alpha1.AuthorizationPolicy:
		v.Status = gatewayv1.PolicyStatus{}
	case *v1alpha1.RequestAuthentication:
		v.Status = v1alpha1.RequestAuthenticationStatus{}
	}
}
