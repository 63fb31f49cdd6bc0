// Package authzserver is Weft's external authorizer: a server of Envoy's
// standard ext_authz gRPC API (envoy.service.auth.v3.Authorization/Check)
// that decides with Rego policies (Open Policy Agent).
//
// A CUSTOM AuthorizationPolicy points a sidecar at any ext_authz server; this
// is the one that ships in the weft binary (weft authz-server). It is linked
// only by weft, never by weft-proxy.
//
//	policy files ──load+compile (PrepareForEval)──▶ *Policy ──atomic swap──▶ Server
//	      ▲ poll mtimes (--watch)                                            │
//	      └─ a failed compile keeps the last good policy                    ▼
//	sidecar ──CheckRequest──▶ input document (OPA-Envoy's shape) ──eval, bounded──▶ CheckResponse
//
// The input document is the one OPA's Envoy plugin builds (input.attributes,
// input.parsed_path, input.parsed_query, input.parsed_body), so its policies
// port unchanged, plus input.source with the caller's verified SPIFFE ID.
//
// Failure semantics: with no good policy every request is denied; an
// evaluation that errors or runs past its budget answers a gRPC error, so the
// caller's failure mode (closed by default) decides. See docs/authz-server.md.
package authzserver
