// Package controlplane wires Weft's control plane together: the store
// (bbolt by default), the workload registry, the xDS server that pushes
// configuration to proxies, and the resource API.
//
//	CLI ──HTTP/JSON──▶ apiserver ──validate──▶ store ──watch──▶ xds pusher
//	                                                              │ debounce
//	proxies ◀──────────── ADS (gRPC) ◀── snapshot per proxy ◀─────┘
//	proxies ──node metadata──▶ registry ──change──▶ xds pusher
package controlplane
