// Package xds serves the mesh's configuration to proxies over standard
// ADS (state of the world), with envoyproxy/go-control-plane.
//
// A proxy's first request carries its node: the node metadata (see
// api/xdsmeta) registers its workload in the registry for as long as the
// stream lives. Any change (resources in the store, workloads coming and
// going) triggers a push: after a quiet period (debounce, 100 ms by default,
// at most 1 s after the first change) the pusher builds one
// xdsconfig.Generation and sets a snapshot per connected proxy. Each
// resource type is versioned by a hash of its content, so a proxy only
// receives the types that changed for it.
package xds
