package resource

import (
	"net"
	"strconv"
	"strings"
	"unicode"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/weftmesh/weft/api/v1alpha1"
)

// Defaults of MeshConfig's tracing.
const (
	DefaultTraceSampleRate = 1.0
	DefaultOTLPHTTPPath    = "/v1/traces"
)

func defaultMeshConfig(m *v1alpha1.MeshConfig) {
	if a := m.Spec.Authorization; a != nil {
		defaultAuthorization(a)
	}
	if t := m.Spec.Tracing; t != nil {
		if t.SampleRate == nil {
			r := DefaultTraceSampleRate
			t.SampleRate = &r
		}
		if t.OTLP.Protocol == "" {
			t.OTLP.Protocol = v1alpha1.OTLPGRPC
		}
		if t.OTLP.Protocol == v1alpha1.OTLPHTTP && t.OTLP.Path == "" {
			t.OTLP.Path = DefaultOTLPHTTPPath
		}
	}
}

// validateMeshConfig checks the mesh's singleton: named mesh in
// weft-system, and each section of its spec.
func validateMeshConfig(m *v1alpha1.MeshConfig) error {
	errs := validateMeta(m.Name, m.Namespace)
	md := field.NewPath("metadata")
	if m.Name != "" && m.Name != v1alpha1.MeshConfigName {
		errs = append(errs, field.Invalid(md.Child("name"), m.Name, "the mesh has one MeshConfig, named "+v1alpha1.MeshConfigName))
	}
	if m.Namespace != v1alpha1.MeshNamespace {
		errs = append(errs, field.Invalid(md.Child("namespace"), m.Namespace, "the MeshConfig lives in namespace "+v1alpha1.MeshNamespace))
	}
	if t := m.Spec.Tracing; t != nil {
		errs = append(errs, validateTracing(field.NewPath("spec", "tracing"), t)...)
	}
	if a := m.Spec.Authorization; a != nil {
		errs = append(errs, validateAuthorization(field.NewPath("spec", "authorization"), a)...)
	}
	return asError(m, errs)
}

func validateTracing(p *field.Path, t *v1alpha1.Tracing) field.ErrorList {
	errs := percent(p.Child("sampleRate"), t.SampleRate)
	op := p.Child("otlp")
	errs = append(errs, validateEndpoint(op.Child("endpoint"), t.OTLP.Endpoint)...)
	switch t.OTLP.Protocol {
	case v1alpha1.OTLPGRPC:
		if t.OTLP.Path != "" {
			errs = append(errs, field.Forbidden(op.Child("path"), "only with protocol http"))
		}
	case v1alpha1.OTLPHTTP:
		if !strings.HasPrefix(t.OTLP.Path, "/") || strings.ContainsAny(t.OTLP.Path, "?# \t\r\n") {
			errs = append(errs, field.Invalid(op.Child("path"), t.OTLP.Path, "must be an absolute path without query or fragment"))
		}
	default:
		errs = append(errs, field.NotSupported(op.Child("protocol"), t.OTLP.Protocol, []string{v1alpha1.OTLPGRPC, v1alpha1.OTLPHTTP}))
	}
	if n := t.ServiceName; n != "" {
		if len(n) > 255 || strings.IndexFunc(n, func(r rune) bool { return unicode.IsControl(r) }) >= 0 {
			errs = append(errs, field.Invalid(p.Child("serviceName"), n, "at most 255 characters, no control characters"))
		}
	}
	return errs
}

// validateEndpoint checks a required HOST:PORT.
func validateEndpoint(p *field.Path, ep string) field.ErrorList {
	if ep == "" {
		return field.ErrorList{field.Required(p, "HOST:PORT of the receiver")}
	}
	host, port, err := net.SplitHostPort(ep)
	if err != nil {
		return field.ErrorList{field.Invalid(p, ep, "must be HOST:PORT")}
	}
	var errs field.ErrorList
	if host == "" || strings.ContainsAny(host, "/ \t") {
		errs = append(errs, field.Invalid(p, ep, "the host must be an IP address or a DNS name"))
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		errs = append(errs, field.Invalid(p, ep, "the port must be between 1 and 65535"))
	}
	return errs
}
