// Package xdsconfig generates the standard Envoy resources (Listener,
// RouteConfiguration, Cluster, ClusterLoadAssignment) each proxy receives,
// from the mesh's model.State.
//
// Generation is split in two: NewGeneration builds everything every proxy
// shares (outbound routes, clusters, endpoints) once per State; ForNode adds
// the listeners and inbound clusters of one workload. A Generation is
// immutable and safe for concurrent use; the resources it returns must not
// be mutated.
//
// Route precedence follows the Gateway API: across every rule of every
// HTTPRoute attached to a Service port, an exact path match wins, then a
// regular-expression path (longer patterns first), then the longest path
// prefix, then a method match, then more header matches, then more query
// parameter matches; remaining ties go to the oldest route, then the route
// first in namespace/name order, then rule and match order.
//
// Traffic management (docs/xds.md is the contract with the proxy):
// policy.go resolves TrafficPolicies per Service port and per route rule
// (rule's own retry/timeouts > rule > route > Service port > Service;
// oldest first on the same target); cluster.go turns them into cluster
// settings (load balancing, circuit breakers, retry budget, outlier
// detection, HTTP/2 to peers) and locality-grouped endpoints; route.go into
// route settings (retries, timeouts, hash policy, faults, filters);
// listener.go builds the listeners, inbound rate limits and the unbound
// outbound-tcp listeners of TCP ports. Whatever is accepted but cannot be
// honoured is reported by Generation.Problems.
package xdsconfig
