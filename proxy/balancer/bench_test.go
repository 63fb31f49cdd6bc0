package balancer

import (
	"strconv"
	"testing"

	"github.com/weftmesh/weft/proxy/xdsresource"
)

func BenchmarkPick(b *testing.B) {
	for _, bc := range []struct {
		name    string
		policy  xdsresource.LBPolicy
		hash    bool
		outlier bool
	}{
		{"round_robin", xdsresource.LBRoundRobin, false, false},
		{"random", xdsresource.LBRandom, false, false},
		{"least_request", xdsresource.LBLeastRequest, false, false},
		{"ring_hash", xdsresource.LBRingHash, true, false},
		{"round_robin_outlier", xdsresource.LBRoundRobin, false, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := Config{Policy: bc.policy}
			if bc.outlier {
				cfg.Outlier = outlier()
			}
			p := NewPicker(endpoints(50), NewPool().Get("c"), cfg)
			keys := make([]Request, 1024)
			for i := range keys {
				keys[i] = Request{Hash: HashKey(strconv.Itoa(i)), HasHash: bc.hash}
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if p.PickFor(keys[i&1023]) == nil {
						b.Fatal("nil")
					}
					i++
				}
			})
		})
	}
}

func BenchmarkNewPickerRingHash(b *testing.B) {
	eps := endpoints(500)
	pool := NewPool()
	for b.Loop() {
		NewPicker(eps, pool.Get("c"), Config{Policy: xdsresource.LBRingHash})
	}
}
