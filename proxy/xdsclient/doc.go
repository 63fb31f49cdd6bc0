// Package xdsclient is the proxy's xDS client: a lean, state-of-the-world
// ADS client (envoy.service.discovery.v3.AggregatedDiscoveryService,
// StreamAggregatedResources) for a control plane such as one built on
// go-control-plane.
//
// It speaks gRPC over the standard library's HTTP/2 client (h2c with prior
// knowledge, or HTTP/2 over TLS with ALPN "h2") and encodes and decodes the
// few protobuf messages it needs by hand with
// google.golang.org/protobuf/encoding/protowire. It deliberately imports
// neither grpc-go nor the generated Envoy types: together they would add
// close to 30 MB of resident memory to every sidecar. Decoding the
// resources themselves is the job of the Handler (see proxy/xdsresource).
//
// # Protocol
//
// One stream carries every type. On each new stream the client sends one
// DiscoveryRequest per subscribed type, with the version it last ACKed and
// the subscribed names; only the first request of a stream carries the
// Node, as Envoy does. Each response is handed to the Handler, in arrival
// order; the client then ACKs it (version_info and response_nonce of the
// response) or NACKs it (the previous version, the response's nonce, and
// error_detail). A change of subscription is sent as a new request that
// carries the latest nonce of the type. Responses for types that were never
// subscribed are logged and ignored without a reply, as Envoy does: a reply
// would itself subscribe to the type. A resource whose Any type differs
// from the response's type_url NACKs the response; resources wrapped in
// envoy.service.discovery.v3.Resource (used for TTLs) are not supported.
//
// When the stream or the connection fails (a gRPC status, a reset, or an
// HTTP/2 PING left unanswered) the client reconnects with jittered
// exponential backoff and re-subscribes.
package xdsclient
