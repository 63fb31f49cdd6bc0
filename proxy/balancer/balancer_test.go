package balancer

import (
	"testing"

	"github.com/weftmesh/weft/proxy/xdsresource"
)

func TestRoundRobinHealthyFirst(t *testing.T) {
	pool := NewPool()
	eps := []xdsresource.Endpoint{
		{Address: "a:1", Health: xdsresource.HealthHealthy},
		{Address: "b:1", Health: xdsresource.HealthUnknown},
		{Address: "c:1", Health: xdsresource.HealthDegraded},
		{Address: "d:1", Health: xdsresource.HealthUnhealthy},
		{Address: "e:1", Health: xdsresource.HealthDraining},
	}
	p := NewPicker(eps, pool.Get("c"), Config{})
	seen := map[string]int{}
	for range 100 {
		seen[p.Pick().Address]++
	}
	if seen["a:1"] != 50 || seen["b:1"] != 50 || len(seen) != 2 {
		t.Fatalf("round robin over healthy endpoints: %v", seen)
	}
	// Degraded endpoints serve only when nothing healthy is left.
	p = NewPicker(eps[2:], pool.Get("c"), Config{})
	if got := p.Pick(); got == nil || got.Address != "c:1" {
		t.Fatalf("degraded fallback: %v", got)
	}
	if NewPicker(eps[3:], pool.Get("c"), Config{}).Pick() != nil {
		t.Fatal("unhealthy or draining endpoint picked")
	}
}

// TestStateOutlivesSnapshots: a new picker for the same cluster continues
// the rotation instead of restarting it at the first endpoint.
func TestStateOutlivesSnapshots(t *testing.T) {
	pool := NewPool()
	eps := []xdsresource.Endpoint{{Address: "a:1"}, {Address: "b:1"}}
	first := NewPicker(eps, pool.Get("c"), Config{}).Pick().Address
	second := NewPicker(eps, pool.Get("c"), Config{}).Pick().Address
	if first == second {
		t.Fatalf("rotation restarted with the new snapshot: %s then %s", first, second)
	}
	pool.Retain(map[string]bool{})
	if len(pool.states) != 0 {
		t.Fatal("state of a removed cluster kept")
	}
}
