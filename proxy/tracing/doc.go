// Package tracing is the proxy's distributed tracing: W3C Trace Context
// (traceparent, tracestate) and B3 (the single b3 header and the
// X-B3-* headers) are read from each request and passed on with this
// proxy's span as the next hop's parent, so an app that forwards the
// headers gets one connected trace. Each request makes one span per
// proxy: a server span on inbound, a client span on outbound.
//
// Sampling respects an incoming decision (sampled or not); a trace that
// arrives without one is sampled at the mesh's rate, decided from the
// trace id so every proxy of the trace agrees.
//
// Spans are exported by OTLP, over HTTP (protobuf, POST /v1/traces) or
// gRPC (TraceService/Export), batched by size and time through a bounded
// queue: a full queue drops and counts, it never blocks a request. With
// several collector endpoints, RoundRobin sends each batch to the next
// and fails over when an export fails. Like
// proxy/xdsclient, this package imports neither grpc-go nor the
// OpenTelemetry SDK or generated protos (resident memory in every
// sidecar): the ExportTraceServiceRequest is written with protowire and
// gRPC frames travel over net/http's HTTP/2 client (h2c or TLS).
package tracing
