package snapshot

import (
	"testing"
	"time"

	"github.com/weftmesh/weft/proxy/balancer"
	"github.com/weftmesh/weft/proxy/xdsresource"
)

func TestCompileClusterBalancing(t *testing.T) {
	od := &xdsresource.OutlierDetection{Consecutive5xx: 1, Enforcing5xx: 100, MaxEjectionPercent: 100}
	res := &Resources{
		Clusters: map[string]*xdsresource.Cluster{
			"outbound|80||web.shop": {
				Name:      "outbound|80||web.shop",
				Discovery: xdsresource.DiscoveryEDS,
				LBPolicy:  xdsresource.LBRingHash,
				ClusterExtras: xdsresource.ClusterExtras{
					RingMin: 16, RingMax: 4096,
					CircuitBreakers: xdsresource.CircuitBreakers{MaxRequests: 7},
					Outlier:         od,
					IdleTimeout:     30 * time.Second,
				},
			},
		},
		Endpoints: map[string]*xdsresource.ClusterLoadAssignment{
			"outbound|80||web.shop": {Endpoints: []xdsresource.Endpoint{
				{Address: "10.0.0.1:80", Locality: xdsresource.Locality{Region: "eu"}},
				{Address: "10.0.0.2:80", Locality: xdsresource.Locality{Region: "us"}},
			}},
		},
	}
	pool := balancer.NewPool()
	pool.SetLocality(balancer.Locality{Region: "eu"})
	s, err := Compile(res, pool)
	if err != nil {
		t.Fatal(err)
	}
	c := s.Clusters["outbound|80||web.shop"]
	want := balancer.Config{Policy: xdsresource.LBRingHash, RingMin: 16, RingMax: 4096,
		Limits: xdsresource.CircuitBreakers{MaxRequests: 7}, Outlier: od, HTTP1: true}
	if c.Config != want || c.IdleTimeout != 30*time.Second {
		t.Fatalf("cluster: %+v", c)
	}
	// The proxy is in eu: every pick stays there.
	for range 20 {
		if e := c.Picker.Pick(); e.Address != "10.0.0.1:80" || e.Locality.Region != "eu" {
			t.Fatalf("picked %+v", e)
		}
	}
	// An ejection outlives the next snapshot.
	c.Picker.Pick().Begin()(balancer.ResultServerError)
	s, err = Compile(res, pool)
	if err != nil {
		t.Fatal(err)
	}
	if e := s.Clusters["outbound|80||web.shop"].Picker.Pick(); e.Address != "10.0.0.2:80" {
		t.Fatalf("ejected endpoint picked after a recompile: %s", e.Address)
	}
}
