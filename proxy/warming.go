package proxy

import (
	"github.com/weftmesh/weft/proxy/xdsresource"
)

// effectiveRoutes returns the route configurations to run: the latest
// received, except where one sends traffic to a cluster that is still
// warming (an EDS cluster whose endpoints have not arrived yet) while an
// earlier version of the same configuration is running — then the earlier
// one keeps serving until the endpoints arrive. So a route change that
// introduces a new backend never answers 503 for the moments between the
// cluster and its endpoints reaching the proxy (as Envoy's cluster warming).
func effectiveRoutes(desired, running map[string]*xdsresource.RouteConfiguration,
	clusters map[string]*xdsresource.Cluster, endpoints map[string]*xdsresource.ClusterLoadAssignment) map[string]*xdsresource.RouteConfiguration {
	out := make(map[string]*xdsresource.RouteConfiguration, len(desired))
	for name, rc := range desired {
		if old, ok := running[name]; ok && old != rc && refersToWarming(rc, clusters, endpoints) {
			out[name] = old
			continue
		}
		out[name] = rc
	}
	return out
}

func refersToWarming(rc *xdsresource.RouteConfiguration, clusters map[string]*xdsresource.Cluster, endpoints map[string]*xdsresource.ClusterLoadAssignment) bool {
	for _, vh := range rc.VirtualHosts {
		for _, r := range vh.Routes {
			for _, wc := range r.Action.Clusters {
				c := clusters[wc.Name]
				if c == nil || c.Discovery != xdsresource.DiscoveryEDS {
					continue
				}
				name := c.EDSServiceName
				if name == "" {
					name = c.Name
				}
				if endpoints[name] == nil {
					return true
				}
			}
		}
	}
	return false
}
