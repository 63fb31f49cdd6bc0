// Package metrics is the proxy's Prometheus exposition: Istio-compatible
// request and TCP metrics (weft_requests_total, weft_request_duration_milliseconds,
// weft_request_bytes, weft_response_bytes, weft_tcp_*), the proxy's own
// health (xDS connection, config versions, NACKs, certificate expiry), the
// access-log lines and spans it lost, by reason, and
// the Go runtime and process collectors, all in one private registry
// served by Handler on the admin listener (GET /metrics).
//
// Label values use Istio's vocabulary (reporter, source_workload,
// destination_service, response_flags, connection_security_policy...), so
// Istio's dashboards and recording rules work with the prefix changed from
// istio_ to weft_. Cardinality is bounded by construction: no path or
// free-form host label, a destination service the config does not know is
// "unknown", every value is truncated to MaxLabelLen bytes, and past
// MaxSeries distinct label sets new ones fold into one overflow set whose
// peer labels are "unknown".
//
// The data path pays one comparable-struct map lookup per request: the
// observers of a label set are resolved once (WithLabelValues hashes every
// label) and cached in a sync.Map. The full set of metrics and labels is
// listed in docs/observability.md.
package metrics
