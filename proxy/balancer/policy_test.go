package balancer

import (
	"strconv"
	"testing"
	"time"

	"github.com/weftmesh/weft/proxy/xdsresource"
)

func TestPolicyDistribution(t *testing.T) {
	const n, picks = 5, 50000
	for _, tc := range []struct {
		name   string
		policy xdsresource.LBPolicy
		hash   bool
		tol    float64
	}{
		{"round robin", xdsresource.LBRoundRobin, false, 0},
		{"random", xdsresource.LBRandom, false, 0.05},
		{"least request", xdsresource.LBLeastRequest, false, 0.05},
		{"ring hash without a key", xdsresource.LBRingHash, false, 0.05},
		{"ring hash over keys", xdsresource.LBRingHash, true, 0.15},
		{"maglev over keys", xdsresource.LBMaglev, true, 0.15},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPicker(endpoints(n), testPool(newFakeClock()).Get("c"), Config{Policy: tc.policy})
			var req func(int) Request
			if tc.hash {
				req = func(i int) Request { return Request{Hash: HashKey("user-" + strconv.Itoa(i)), HasHash: true} }
			}
			seen := count(t, p, picks, req)
			if len(seen) != n {
				t.Fatalf("picked %d endpoints, want %d: %v", len(seen), n, seen)
			}
			for a, c := range seen {
				if !near(c, picks/n, tc.tol) {
					t.Errorf("%s picked %d times, want %d ±%.0f%%: %v", a, c, picks/n, tc.tol*100, seen)
				}
			}
		})
	}
}

func TestRingHashStable(t *testing.T) {
	pool := testPool(newFakeClock())
	cfg := Config{Policy: xdsresource.LBRingHash}
	eps := endpoints(8)
	p := NewPicker(eps, pool.Get("c"), cfg)
	keys := make([]Request, 2000)
	owner := make([]string, len(keys))
	for i := range keys {
		keys[i] = Request{Hash: HashKey("session-" + strconv.Itoa(i)), HasHash: true}
		owner[i] = p.PickFor(keys[i]).Address
	}
	for range 1000 {
		if got := p.PickFor(keys[0]).Address; got != owner[0] {
			t.Fatalf("key moved from %s to %s", owner[0], got)
		}
	}
	// A new picker (endpoints in another order, another pool: another
	// proxy) sends every key to the same endpoint.
	rev := make([]xdsresource.Endpoint, len(eps))
	for i, e := range eps {
		rev[len(eps)-1-i] = e
	}
	p2 := NewPicker(rev, testPool(newFakeClock()).Get("c"), cfg)
	for i, k := range keys {
		if got := p2.PickFor(k).Address; got != owner[i] {
			t.Fatalf("key %d: %s on the new picker, %s before", i, got, owner[i])
		}
	}
	// Adding a ninth endpoint moves about 1/9 of the keys, all to it.
	p3 := NewPicker(endpoints(9), pool.Get("c"), cfg)
	moved := 0
	for i, k := range keys {
		if got := p3.PickFor(k).Address; got != owner[i] {
			moved++
			if got != addr(8) {
				t.Fatalf("key %d moved from %s to %s, not to the new endpoint", i, owner[i], got)
			}
		}
	}
	if moved == 0 || moved > len(keys)*2/9 {
		t.Fatalf("%d of %d keys moved on adding one endpoint to 8", moved, len(keys))
	}
}

// TestRingHashSkipsUnusable: a key whose endpoint is to be avoided or is
// ejected goes to the next endpoint on the ring, and comes back after.
func TestRingHashSkipsUnusable(t *testing.T) {
	clock := newFakeClock()
	pool := testPool(clock)
	cfg := Config{Policy: xdsresource.LBRingHash, Outlier: outlier()}
	cfg.Outlier.MaxEjectionPercent = 100
	p := NewPicker(endpoints(4), pool.Get("c"), cfg)
	key := Request{Hash: HashKey("alice"), HasHash: true}
	home := p.PickFor(key)

	avoid := key
	avoid.Avoid = []*Endpoint{home}
	next := p.PickFor(avoid)
	if next == nil || next.Address == home.Address {
		t.Fatalf("retry avoiding %s got %v", home.Address, next)
	}
	for range 100 {
		if got := p.PickFor(avoid); got != next {
			t.Fatalf("retry of the same key went to %s and %s", next.Address, got.Address)
		}
	}
	ejectByFailures(t, p, home.Address, 5)
	if got := p.PickFor(key); got != next {
		t.Fatalf("key of ejected %s went to %v, want the next on the ring %s", home.Address, got, next.Address)
	}
	clock.Advance(31 * time.Second)
	if got := p.PickFor(key); got != home {
		t.Fatalf("key did not come back to %s after the ejection: %v", home.Address, got)
	}
}

func TestAvoidFallsBack(t *testing.T) {
	for _, policy := range []xdsresource.LBPolicy{xdsresource.LBRoundRobin, xdsresource.LBRandom, xdsresource.LBLeastRequest, xdsresource.LBRingHash} {
		p := NewPicker(endpoints(2), testPool(newFakeClock()).Get("c"), Config{Policy: policy})
		a, b := p.healthy[0], p.healthy[1]
		for range 100 {
			if got := p.PickFor(Request{Avoid: []*Endpoint{a}}); got != b {
				t.Fatalf("policy %d: avoiding a picked %v", policy, got)
			}
			if got := p.PickFor(Request{Avoid: []*Endpoint{a, b}}); got == nil {
				t.Fatalf("policy %d: avoiding every endpoint picked nothing", policy)
			}
		}
	}
}

func TestLeastRequestPrefersLessLoaded(t *testing.T) {
	p := NewPicker(endpoints(3), testPool(newFakeClock()).Get("c"), Config{Policy: xdsresource.LBLeastRequest})
	busy := p.healthy[0]
	var dones []Done
	for range 10 {
		dones = append(dones, busy.Begin())
	}
	p.healthy[1].Begin() // one in flight on b, none on c
	seen := count(t, p, 3000, nil)
	// Any two distinct endpoints include a less loaded one than a.
	if seen[busy.Address] != 0 {
		t.Fatalf("the busiest endpoint was picked: %v", seen)
	}
	// c wins against both others; b only against a.
	if seen["c:1"] <= seen["b:1"] {
		t.Fatalf("c (idle) picked less than b (1 in flight): %v", seen)
	}
	for _, d := range dones {
		d(ResultSuccess)
	}
	if n := busy.host.inFlight.Load(); n != 0 {
		t.Fatalf("in flight after Done: %d", n)
	}
}
