package balancer

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/proxy/xdsresource"
)

// weighted returns healthy endpoints a:1, b:1... with these weights.
func weighted(ws ...uint32) []xdsresource.Endpoint {
	eps := endpoints(len(ws))
	for i, w := range ws {
		eps[i].Weight = w
	}
	return eps
}

// sequence picks n times and returns the first letters of the addresses
// ("-" for nil).
func sequence(p *Picker, n int, r Request) string {
	var b strings.Builder
	for range n {
		if e := p.PickFor(r); e != nil {
			b.WriteByte(e.Address[0])
		} else {
			b.WriteByte('-')
		}
	}
	return b.String()
}

// TestWeightedDistribution: every policy gives each endpoint a share of
// the picks proportional to its load_balancing_weight.
func TestWeightedDistribution(t *testing.T) {
	ws := []uint32{1, 2, 3, 4} // shares 10, 20, 30, 40 %
	const picks = 50000        // a whole number of round-robin cycles (10)
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
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPicker(weighted(ws...), testPool(newFakeClock()).Get("c"), Config{Policy: tc.policy})
			var req func(int) Request
			if tc.hash {
				req = func(i int) Request { return Request{Hash: HashKey("user-" + strconv.Itoa(i)), HasHash: true} }
			}
			seen := count(t, p, picks, req)
			for i, w := range ws {
				want := picks * int(w) / 10
				if got := seen[addr(i)]; !near(got, want, tc.tol) {
					t.Errorf("%s (weight %d) picked %d times, want %d ±%.0f%%: %v", addr(i), w, got, want, tc.tol*100, seen)
				}
			}
		})
	}
}

// TestWeightedRoundRobinSmooth: weighted round robin gives each endpoint
// exactly its weight in every cycle of total-weight consecutive picks,
// wherever the cycle starts, interleaved rather than in bursts.
func TestWeightedRoundRobinSmooth(t *testing.T) {
	for _, tc := range []struct {
		ws      []uint32
		maxRun  int    // longest run of the heaviest endpoint
		prefix  string // the first picks
		cycleOf int
	}{
		{ws: []uint32{2, 1}, maxRun: 2, prefix: "abaaba"},
		{ws: []uint32{5, 1, 1}, maxRun: 5, prefix: "aaabaca"},
		{ws: []uint32{1, 2, 3, 4}, maxRun: 2},
		{ws: []uint32{1, 1000}, maxRun: 1000},
		{ws: []uint32{7, 7, 7, 3}, maxRun: 1},
	} {
		t.Run(fmtWeights(tc.ws), func(t *testing.T) {
			total := 0
			for _, w := range tc.ws {
				total += int(w)
			}
			p := NewPicker(weighted(tc.ws...), testPool(newFakeClock()).Get("c"), Config{})
			seq := sequence(p, 5*total+3, Request{})
			if !strings.HasPrefix(seq, tc.prefix) {
				t.Errorf("picks %s, want them to start %s", seq, tc.prefix)
			}
			for start := 0; start+total <= len(seq); start++ {
				cycle := seq[start : start+total]
				for i, w := range tc.ws {
					if got := strings.Count(cycle, addr(i)[:1]); got != int(w) {
						t.Fatalf("picks %d..%d: %s picked %d times, want its weight %d: %s", start, start+total, addr(i), got, w, cycle)
					}
				}
			}
			heaviest := 0
			for i, w := range tc.ws {
				if w > tc.ws[heaviest] {
					heaviest = i
				}
			}
			if run := strings.Repeat(addr(heaviest)[:1], tc.maxRun+1); strings.Contains(seq, run) {
				t.Errorf("a run longer than %d of %s: %s", tc.maxRun, addr(heaviest), seq)
			}
		})
	}
}

func fmtWeights(ws []uint32) string {
	var s []string
	for _, w := range ws {
		s = append(s, strconv.Itoa(int(w)))
	}
	return strings.Join(s, ":")
}

// TestEqualWeightsUnchanged: endpoints of equal weights (whatever the
// weight) are picked exactly as unweighted ones, by the unweighted path.
func TestEqualWeightsUnchanged(t *testing.T) {
	for _, policy := range []xdsresource.LBPolicy{xdsresource.LBRoundRobin, xdsresource.LBRandom, xdsresource.LBLeastRequest, xdsresource.LBRingHash} {
		one := NewPicker(weighted(1, 1, 1, 1, 1), testPool(newFakeClock()).Get("c"), Config{Policy: policy})
		seven := NewPicker(weighted(7, 7, 7, 7, 7), testPool(newFakeClock()).Get("c"), Config{Policy: policy})
		if seven.tiers[0].wHealthy != nil {
			t.Fatalf("policy %d: equal weights took the weighted path", policy)
		}
		if a, b := sequence(one, 200, Request{}), sequence(seven, 200, Request{}); a != b {
			t.Fatalf("policy %d: weights 1 picked %s, weights 7 %s", policy, a, b)
		}
	}
}

// TestWeightedLeastRequest: of two endpoints, the one with fewer requests
// in flight per unit of weight wins.
func TestWeightedLeastRequest(t *testing.T) {
	for _, tc := range []struct {
		name         string
		inA, inB     int
		want         byte
		wantFraction float64 // of picks to want, ±5%
	}{
		// a: weight 1, b: weight 4.
		{name: "a 1 in flight, b 2: b (0.5 per weight) beats a (1)", inA: 1, inB: 2, want: 'b', wantFraction: 1},
		{name: "a idle, b 1 in flight: a (0) beats b (0.25)", inA: 0, inB: 1, want: 'a', wantFraction: 1},
		{name: "a 1, b 4 in flight: a tie, the first draw (by weight) wins", inA: 1, inB: 4, want: 'b', wantFraction: 0.8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPicker(weighted(1, 4), testPool(newFakeClock()).Get("c"), Config{Policy: xdsresource.LBLeastRequest})
			var dones []Done
			for range tc.inA {
				dones = append(dones, p.healthy[0].Begin())
			}
			for range tc.inB {
				dones = append(dones, p.healthy[1].Begin())
			}
			const picks = 4000
			got := strings.Count(sequence(p, picks, Request{}), string(tc.want))
			if !near(got, int(picks*tc.wantFraction), 0.05) {
				t.Errorf("%c picked %d of %d times, want %.0f%%", tc.want, got, picks, tc.wantFraction*100)
			}
			for _, d := range dones {
				d(ResultSuccess)
			}
		})
	}
}

// TestWeightedEjection: an ejected endpoint's share is spread over the
// others in proportion to their weights (not handed to its neighbour),
// and with every endpoint ejected the weights still hold (panic mode).
func TestWeightedEjection(t *testing.T) {
	for _, policy := range []xdsresource.LBPolicy{xdsresource.LBRoundRobin, xdsresource.LBRandom, xdsresource.LBLeastRequest} {
		t.Run(strconv.Itoa(int(policy)), func(t *testing.T) {
			clock := newFakeClock()
			od := outlier()
			od.MaxEjectionPercent = 100
			p := NewPicker(weighted(1, 8, 3), testPool(clock).Get("c"), Config{Policy: policy, Outlier: od})
			ejectByFailures(t, p, "b:1", 5)
			const picks = 8000
			seen := count(t, p, picks, nil)
			if seen["b:1"] != 0 {
				t.Fatalf("the ejected endpoint was picked: %v", seen)
			}
			if !near(seen["a:1"], picks/4, 0.1) || !near(seen["c:1"], picks*3/4, 0.05) {
				t.Errorf("b ejected: want a 25%%, c 75%% (weights 1, 3): %v", seen)
			}
			ejectByFailures(t, p, "a:1", 5)
			ejectByFailures(t, p, "c:1", 5)
			seen = count(t, p, picks*3/2, nil)
			if !near(seen["a:1"], picks/8, 0.1) || !near(seen["b:1"], picks, 0.05) || !near(seen["c:1"], picks*3/8, 0.1) {
				t.Errorf("every endpoint ejected: want the weights 1, 8, 3: %v", seen)
			}
			clock.Advance(time.Hour)
			if seen := count(t, p, 12, nil); policy == xdsresource.LBRoundRobin && (seen["a:1"] != 1 || seen["b:1"] != 8) {
				t.Errorf("after the ejections, 12 picks: %v", seen)
			}
		})
	}
}

// TestWeightedAvoid: a retry avoids the endpoints tried, and among the
// others follows the weights.
func TestWeightedAvoid(t *testing.T) {
	for _, policy := range []xdsresource.LBPolicy{xdsresource.LBRoundRobin, xdsresource.LBRandom, xdsresource.LBLeastRequest, xdsresource.LBRingHash} {
		p := NewPicker(weighted(5, 1, 2), testPool(newFakeClock()).Get("c"), Config{Policy: policy})
		a := p.healthy[0]
		const picks = 3000
		seen := count(t, p, picks, func(int) Request { return Request{Avoid: []*Endpoint{a}} })
		if seen["a:1"] != 0 || !near(seen["b:1"], picks/3, 0.05) || !near(seen["c:1"], picks*2/3, 0.05) {
			t.Errorf("policy %d: avoiding a: want b 1/3, c 2/3: %v", policy, seen)
		}
		if e := p.PickFor(Request{Avoid: p.healthy}); e == nil {
			t.Errorf("policy %d: avoiding every endpoint picked nothing", policy)
		}
	}
}

// TestWeightedLocality: weights act within a tier; the tiers' shares
// still follow their healthy endpoints, as without weights.
func TestWeightedLocality(t *testing.T) {
	eps := tiered()
	for i := range eps {
		eps[i].Weight = uint32(1 + 10*i) // heavier the further away
	}
	setHealth(eps, "l1:80", xdsresource.HealthUnhealthy)
	pool := testPool(newFakeClock())
	pool.SetLocality(self)
	const picks = 20000
	got := byPrefix(count(t, NewPicker(eps, pool.Get("c"), Config{}), picks, nil))
	if !near(got["l"], picks*7/10, 0.05) || !near(got["z"], picks*3/10, 0.05) || len(got) != 2 {
		t.Fatalf("half the subzone unhealthy: want l 70%%, z 30%%: %v", got)
	}
	seen := count(t, NewPicker(eps, pool.Get("c"), Config{}), picks, nil)
	// z1 (weight 21) and z2 (weight 31) share the zone's 30%.
	if !near(seen["z1:80"], picks*3/10*21/52, 0.05) || !near(seen["z2:80"], picks*3/10*31/52, 0.05) {
		t.Fatalf("within the zone tier: want z1:z2 = 21:31: %v", seen)
	}
}
