// Package xdsresource is the proxy's xDS data model layer: it decodes the
// standard Envoy resources (Listener, RouteConfiguration, Cluster,
// ClusterLoadAssignment, and the SDS Secret of a trusted CA) from their
// protobuf wire form, validates them once, and returns plain immutable Go
// structs holding only the fields the proxy uses. A resource that fails
// validation is an error for that resource (the xDS client NACKs the
// response and keeps the last good config).
//
// It decodes with google.golang.org/protobuf/encoding/protowire rather than
// the generated Envoy types: those pull ~18 MB of resident memory into every
// sidecar, for descriptors the proxy never needs. Fields the proxy does not
// know are skipped; fields it knows but cannot honour are errors.
//
// Traffic management (retries, mirrors, hash policies, rewrites, redirects,
// header mutations, per-route fault injection and local rate limits,
// circuit breakers, retry budgets, outlier detection) is decoded as
// docs/xds.md maps it. The proxy has no runtime: runtime keys are ignored
// and their default values used. Outlier detection ejects on consecutive
// errors only: a positive enforcing_success_rate or
// enforcing_failure_percentage is an error, and an unset
// enforcing_success_rate (100 in Envoy) means none.
//
// TLS settings name their certificate and trusted CA as SDS secrets, which
// must come over ADS: the proxy generates its own key, so neither a key nor
// a certificate ever arrives in a resource.
//
// Everything here is safe for concurrent use: the decoded values are never
// mutated after Decode returns.
package xdsresource
