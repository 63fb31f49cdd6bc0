package balancer

import (
	"testing"
	"time"
)

func find(p *Picker, address string) *Endpoint {
	for _, e := range p.healthy {
		if e.Address == address {
			return e
		}
	}
	return nil
}

func ejectedNow(p *Picker) int { return p.Stats().EjectedNow }

func TestOutlierConsecutive5xx(t *testing.T) {
	clock := newFakeClock()
	p := NewPicker(endpoints(3), testPool(clock).Get("c"), Config{Outlier: outlier()})
	a := find(p, "a:1")
	for range 4 {
		a.Begin()(ResultServerError)
	}
	a.Begin()(ResultSuccess) // resets the count
	for range 4 {
		a.Begin()(ResultConnectFailure)
	}
	a.Begin()(ResultCancelled) // not counted either way
	if ejectedNow(p) != 0 {
		t.Fatal("ejected before 5 consecutive failures")
	}
	a.Begin()(ResultGatewayError)
	if s := p.Stats(); s.EjectedNow != 1 || s.Ejections != 1 {
		t.Fatalf("not ejected after 5 consecutive failures: %+v", s)
	}
	if seen := count(t, p, 300, nil); seen["a:1"] != 0 {
		t.Fatalf("ejected endpoint picked: %v", seen)
	}
	clock.Advance(30*time.Second - time.Millisecond)
	if ejectedNow(p) != 1 {
		t.Fatal("back before the base ejection time")
	}
	clock.Advance(time.Millisecond)
	if seen := count(t, p, 300, nil); seen["a:1"] != 100 {
		t.Fatalf("not back after the ejection time: %v", seen)
	}
}

func TestOutlierGatewayFailureEnforcing(t *testing.T) {
	od := outlier()
	od.Consecutive5xx = 0 // off: only the gateway-failure detector
	p := NewPicker(endpoints(3), testPool(newFakeClock()).Get("c"), Config{Outlier: od})
	a := find(p, "a:1")
	for range 10 {
		a.Begin()(ResultGatewayError)
	}
	if ejectedNow(p) != 0 {
		t.Fatal("ejected with enforcing_consecutive_gateway_failure 0")
	}
	od.EnforcingGatewayFailure = 100
	p = NewPicker(endpoints(3), testPool(newFakeClock()).Get("c"), Config{Outlier: od})
	a = find(p, "a:1")
	for range 4 {
		a.Begin()(ResultGatewayError)
	}
	a.Begin()(ResultServerError) // a 500 is no gateway failure: starts over
	for range 4 {
		a.Begin()(ResultConnectFailure)
	}
	if ejectedNow(p) != 0 {
		t.Fatal("a 500 counted as a gateway failure")
	}
	a.Begin()(ResultConnectFailure)
	if ejectedNow(p) != 1 {
		t.Fatal("not ejected after 5 consecutive gateway failures")
	}
}

func TestOutlierMaxEjectionPercent(t *testing.T) {
	for _, tc := range []struct {
		endpoints, percent, want int
	}{
		{10, 10, 1},
		{10, 30, 3},
		{3, 10, 1}, // 33% > 10%, but one is always allowed
		{1, 10, 1},
		{4, 100, 4},
	} {
		od := outlier()
		od.MaxEjectionPercent = uint32(tc.percent)
		p := NewPicker(endpoints(tc.endpoints), testPool(newFakeClock()).Get("c"), Config{Outlier: od})
		for _, e := range p.healthy {
			for range 5 {
				e.Begin()(ResultServerError)
			}
		}
		if got := ejectedNow(p); got != tc.want {
			t.Errorf("%d endpoints, max %d%%: %d ejected, want %d", tc.endpoints, tc.percent, got, tc.want)
		}
		// Every endpoint ejected: the picker still answers (panic mode).
		if p.Pick() == nil {
			t.Errorf("%d endpoints, max %d%%: nothing picked", tc.endpoints, tc.percent)
		}
	}
}

func TestOutlierMultiplier(t *testing.T) {
	clock := newFakeClock()
	od := outlier()
	od.BaseEjectionTime, od.MaxEjectionTime = 30*time.Second, 100*time.Second
	p := NewPicker(endpoints(2), testPool(clock).Get("c"), Config{Outlier: od})
	a := find(p, "a:1")
	ejectFor := func() time.Duration {
		t.Helper()
		for range 5 {
			a.Begin()(ResultServerError)
		}
		if ejectedNow(p) != 1 {
			t.Fatal("not ejected")
		}
		start := clock.Now()
		for ejectedNow(p) == 1 {
			clock.Advance(time.Second)
		}
		return clock.Now().Sub(start)
	}
	for i, want := range []time.Duration{30, 60, 90, 100, 100} {
		if got := ejectFor(); got != want*time.Second {
			t.Fatalf("ejection %d lasted %v, want %vs", i+1, got, want)
		}
	}
	// Each interval back in service takes one off the multiplier (4, as
	// it stops growing at the cap): after 2 intervals it is 2, so the
	// next ejection is 3 × 30s.
	clock.Advance(2 * od.Interval)
	if got := ejectFor(); got != 90*time.Second {
		t.Fatalf("after two intervals: ejected %v, want 90s", got)
	}
	clock.Advance(time.Hour)
	if got := ejectFor(); got != 30*time.Second {
		t.Fatalf("after an hour: ejected %v, want 30s", got)
	}
	if s := p.Stats(); s.Ejections != 7 {
		t.Fatalf("ejections counted: %d", s.Ejections)
	}
}

func TestOutlierOff(t *testing.T) {
	p := NewPicker(endpoints(2), testPool(newFakeClock()).Get("c"), Config{})
	for range 100 {
		find(p, "a:1").Begin()(ResultConnectFailure)
	}
	if s := p.Stats(); s.Ejections != 0 || count(t, p, 10, nil)["a:1"] != 5 {
		t.Fatalf("outlier detection off ejected: %+v", s)
	}
}

// TestStateSurvivesNewPicker: ejections, requests in flight and the
// round-robin position carry over to the picker of the next snapshot;
// an endpoint that left the cluster is forgotten.
func TestStateSurvivesNewPicker(t *testing.T) {
	clock := newFakeClock()
	pool := testPool(clock)
	cfg := Config{Outlier: outlier()}
	cfg.Outlier.MaxEjectionPercent = 50
	p := NewPicker(endpoints(3), pool.Get("c"), cfg)
	ejectByFailures(t, p, "a:1", 5)
	done := find(p, "b:1").Begin()

	eps := endpoints(4)
	next := NewPicker(eps, pool.Get("c"), cfg)
	if got := ejectedNow(next); got != 1 {
		t.Fatalf("ejection lost with the new picker: %d ejected", got)
	}
	if seen := count(t, next, 300, nil); seen["a:1"] != 0 {
		t.Fatalf("ejected endpoint picked by the new picker: %v", seen)
	}
	if n := find(next, "b:1").host.inFlight.Load(); n != 1 {
		t.Fatalf("in flight on the new picker: %d", n)
	}
	done(ResultSuccess) // ends on the old picker's endpoint
	if n := find(next, "b:1").host.inFlight.Load(); n != 0 {
		t.Fatalf("in flight after Done: %d", n)
	}
	// a leaves the cluster and comes back: it is new again.
	NewPicker(eps[1:], pool.Get("c"), cfg)
	if got := ejectedNow(NewPicker(eps, pool.Get("c"), cfg)); got != 0 {
		t.Fatalf("state of a removed endpoint kept: %d ejected", got)
	}
	if _, ok := pool.Get("c").hosts["a:1"]; !ok {
		t.Fatal("host state not recreated")
	}
}
