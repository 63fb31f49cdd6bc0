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
		weights bool
	}{
		{"round_robin", xdsresource.LBRoundRobin, false, false, false},
		{"random", xdsresource.LBRandom, false, false, false},
		{"least_request", xdsresource.LBLeastRequest, false, false, false},
		{"ring_hash", xdsresource.LBRingHash, true, false, false},
		{"round_robin_outlier", xdsresource.LBRoundRobin, false, true, false},
		{"round_robin_weighted", xdsresource.LBRoundRobin, false, false, true},
		{"random_weighted", xdsresource.LBRandom, false, false, true},
		{"least_request_weighted", xdsresource.LBLeastRequest, false, false, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := Config{Policy: bc.policy}
			if bc.outlier {
				cfg.Outlier = outlier()
			}
			eps := endpoints(50)
			if bc.weights {
				for i := range eps {
					eps[i].Weight = uint32(1 + i%7)
				}
			}
			p := NewPicker(eps, NewPool().Get("c"), cfg)
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
