package proxy

import (
	"testing"

	"github.com/weftmesh/weft/proxy/xdsresource"
)

func TestEffectiveRoutesWaitForWarmingClusters(t *testing.T) {
	route := func(cluster string) *xdsresource.RouteConfiguration {
		return &xdsresource.RouteConfiguration{Name: "outbound", VirtualHosts: []xdsresource.VirtualHost{{
			Name: "svc", Domains: []string{"svc"},
			Routes: []xdsresource.Route{{Action: xdsresource.RouteAction{Clusters: []xdsresource.WeightedCluster{{Name: cluster, Weight: 1}}}}},
		}}}
	}
	v1, v2 := route("v1"), route("v2")
	clusters := map[string]*xdsresource.Cluster{
		"v1": {Name: "v1", Discovery: xdsresource.DiscoveryEDS},
		"v2": {Name: "v2", Discovery: xdsresource.DiscoveryEDS},
	}
	endpoints := map[string]*xdsresource.ClusterLoadAssignment{"v1": {ClusterName: "v1"}}
	running := map[string]*xdsresource.RouteConfiguration{"outbound": v1}
	desired := map[string]*xdsresource.RouteConfiguration{"outbound": v2}

	// v2 has no endpoints yet: keep serving v1.
	if got := effectiveRoutes(desired, running, clusters, endpoints)["outbound"]; got != v1 {
		t.Fatal("a route to a warming cluster replaced the running one")
	}
	// Endpoints arrive: switch.
	endpoints["v2"] = &xdsresource.ClusterLoadAssignment{ClusterName: "v2"}
	if got := effectiveRoutes(desired, running, clusters, endpoints)["outbound"]; got != v2 {
		t.Fatal("the new route was not applied once its cluster was warm")
	}
	// Nothing running yet: the first config applies at once.
	delete(endpoints, "v2")
	if got := effectiveRoutes(desired, map[string]*xdsresource.RouteConfiguration{}, clusters, endpoints)["outbound"]; got != v2 {
		t.Fatal("the first route configuration was held back")
	}
	// A cluster the config does not know is not warming (it answers 500).
	if got := effectiveRoutes(map[string]*xdsresource.RouteConfiguration{"outbound": route("gone")}, running, clusters, endpoints)["outbound"]; got.VirtualHosts[0].Routes[0].Action.Clusters[0].Name != "gone" {
		t.Fatal("a route to an unknown cluster was held back")
	}
}
