package xdsresource

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

const (
	// TracerOpenTelemetry is the only tracing provider the proxy runs.
	TracerOpenTelemetry        = "envoy.tracers.opentelemetry"
	openTelemetryConfigMessage = "envoy.config.trace.v3.OpenTelemetryConfig"
)

// Protocols of a Tracing exporter.
const (
	TracingGRPC = "grpc" // OTLP/gRPC (grpc_service.envoy_grpc), h2c to the cluster
	TracingHTTP = "http" // OTLP/HTTP (http_service), POST to the cluster
)

// DefaultTracesPath is where OTLP/HTTP spans are POSTed when the URI has
// no path.
const DefaultTracesPath = "/v1/traces"

// decodeTracing decodes an HttpConnectionManager.Tracing whose provider
// is envoy.tracers.opentelemetry. random_sampling (default 100 %) and
// overall_sampling (default 100 %) multiply into SamplePercent;
// client_sampling (for x-client-trace-id), custom_tags, verbose and the
// path tag length change no traffic and are ignored. Any other provider,
// and a Google gRPC service, are refused.
func decodeTracing(b []byte) (*Tracing, error) {
	var random, overall, provider msg
	err := walk(b, func(f field) error {
		switch f.num {
		case 4:
			return at("random_sampling", random.add(f))
		case 5:
			return at("overall_sampling", overall.add(f))
		case 9:
			return at("provider", provider.add(f))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	t := &Tracing{SamplePercent: 100}
	if random.set {
		if t.SamplePercent, err = decodePercent(random.b); err != nil {
			return nil, at("random_sampling", err)
		}
	}
	if overall.set {
		o, err := decodePercent(overall.b)
		if err != nil {
			return nil, at("overall_sampling", err)
		}
		t.SamplePercent = t.SamplePercent * o / 100
	}
	if !provider.set {
		return nil, at("provider", errMissing)
	}
	if err := decodeTracingProvider(provider.b, t); err != nil {
		return nil, at("provider", err)
	}
	return t, nil
}

// decodeTracingProvider decodes an envoy.config.trace.v3.Tracing.Http.
func decodeTracingProvider(b []byte, t *Tracing) error {
	var (
		name   string
		config msg
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			name, err = f.string()
			err = at("name", err)
		case 3:
			err = at("typed_config", config.add(f))
		}
		return err
	})
	if err != nil {
		return err
	}
	if name != TracerOpenTelemetry {
		return at("name", fmt.Errorf("tracer %q: %w (only %s)", name, errNotSupported, TracerOpenTelemetry))
	}
	if !config.set {
		return at("typed_config", errMissing)
	}
	a, err := decodeAny(config.b)
	if err != nil {
		return at("typed_config", err)
	}
	if typeName(a.typeURL) != openTelemetryConfigMessage {
		return at("typed_config", fmt.Errorf("type %q: %w", a.typeURL, errNotSupported))
	}
	return at("typed_config", decodeOpenTelemetryConfig(a.value, t))
}

// decodeOpenTelemetryConfig decodes an envoy.config.trace.v3.OpenTelemetryConfig:
// grpc_service (envoy_grpc) or http_service, and service_name.
func decodeOpenTelemetryConfig(b []byte, t *Tracing) error {
	var grpcSvc, httpSvc msg
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			err = at("grpc_service", grpcSvc.add(f))
		case 2:
			t.ServiceName, err = f.string()
			err = at("service_name", err)
		case 3:
			err = at("http_service", httpSvc.add(f))
		case 10:
			err = notSupported("exporter")
		}
		return err
	})
	if err != nil {
		return err
	}
	switch {
	case grpcSvc.set && httpSvc.set:
		return fmt.Errorf("only one of grpc_service and http_service may be set")
	case grpcSvc.set:
		t.Protocol = TracingGRPC
		return at("grpc_service", decodeTracingGRPCService(grpcSvc.b, t))
	case httpSvc.set:
		t.Protocol = TracingHTTP
		return at("http_service", decodeTracingHTTPService(httpSvc.b, t))
	}
	return fmt.Errorf("one of grpc_service and http_service must be set")
}

// decodeTracingGRPCService decodes an envoy.config.core.v3.GrpcService
// with envoy_grpc (the collector is a cluster).
func decodeTracingGRPCService(b []byte, t *Tracing) error {
	var target oneof
	var timeout msg
	err := walk(b, func(f field) error {
		switch f.num {
		case 1, 2:
			return target.message(f)
		case 3:
			return at("timeout", timeout.add(f))
		}
		return nil
	})
	if err != nil {
		return err
	}
	switch target.num {
	case 0:
		return at("envoy_grpc", errMissing)
	case 2:
		return notSupported("google_grpc")
	}
	err = walk(target.f.b, func(f field) error {
		var err error
		if f.num == 1 {
			t.Cluster, err = f.string()
		}
		return at("cluster_name", err)
	})
	if err != nil {
		return at("envoy_grpc", err)
	}
	if t.Cluster == "" {
		return at("envoy_grpc", at("cluster_name", errEmpty))
	}
	if timeout.set {
		if t.Timeout, err = decodeDuration(timeout.b); err != nil {
			return at("timeout", err)
		}
	}
	return nil
}

// decodeTracingHTTPService decodes an envoy.config.core.v3.HttpService:
// http_uri {uri, cluster, timeout}. request_headers_to_add is refused.
func decodeTracingHTTPService(b []byte, t *Tracing) error {
	var uri msg
	err := walk(b, func(f field) error {
		switch f.num {
		case 1:
			return at("http_uri", uri.add(f))
		case 2:
			return notSupported("request_headers_to_add")
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !uri.set {
		return at("http_uri", errMissing)
	}
	var timeout msg
	err = walk(uri.b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			t.URI, err = f.string()
			err = at("uri", err)
		case 2:
			t.Cluster, err = f.string()
			err = at("cluster", err)
		case 3:
			err = at("timeout", timeout.add(f))
		}
		return err
	})
	if err != nil {
		return at("http_uri", err)
	}
	if t.Cluster == "" {
		return at("http_uri", at("cluster", errEmpty))
	}
	if t.URI == "" {
		return at("http_uri", at("uri", errEmpty))
	}
	u, err := url.Parse(t.URI)
	if err != nil {
		return at("http_uri", at("uri", err))
	}
	t.Path = u.EscapedPath()
	if u.RawQuery != "" {
		t.Path += "?" + u.RawQuery
	}
	if t.Path == "" || t.Path == "/" {
		t.Path = DefaultTracesPath
	}
	if !strings.HasPrefix(t.Path, "/") {
		return at("http_uri", at("uri", fmt.Errorf("%q has no absolute path", t.URI)))
	}
	if timeout.set {
		var d time.Duration
		if d, err = decodeDuration(timeout.b); err != nil {
			return at("http_uri", at("timeout", err))
		}
		t.Timeout = d
	}
	return nil
}
