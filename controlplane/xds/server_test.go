package xds

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
)

// TestHashMemo: a list's version is a function of its resources' content,
// shared lists get one cache entry, and a change changes the version.
func TestHashMemo(t *testing.T) {
	a := &clusterv3.Cluster{Name: "a"}
	b := &clusterv3.Cluster{Name: "b"}
	shared := []types.Resource{a, b}

	m := newHashMemo()
	r1, err := m.resources(shared)
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := m.resources(shared)
	if r1.Version != r2.Version || len(r1.Items) != 2 {
		t.Fatalf("shared list: %q vs %q (%d items)", r1.Version, r2.Version, len(r1.Items))
	}
	// The same content in another list, and in a fresh memo: same version.
	r3, _ := m.resources([]types.Resource{a, b})
	r4, _ := newHashMemo().resources([]types.Resource{&clusterv3.Cluster{Name: "a"}, &clusterv3.Cluster{Name: "b"}})
	if r3.Version != r1.Version || r4.Version != r1.Version {
		t.Fatalf("same content, other version: %q %q %q", r1.Version, r3.Version, r4.Version)
	}
	// Order and content matter.
	r5, _ := m.resources([]types.Resource{b, a})
	r6, _ := m.resources([]types.Resource{a, &clusterv3.Cluster{Name: "c"}})
	if r5.Version == r1.Version || r6.Version == r1.Version {
		t.Fatal("a different list got the same version")
	}
}
