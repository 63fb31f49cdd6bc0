package balancer

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/proxy/xdsresource"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// seeded returns a deterministic random source, safe for concurrent use.
func seeded(seed uint64) func() uint64 {
	var mu sync.Mutex
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	return func() uint64 {
		mu.Lock()
		defer mu.Unlock()
		return r.Uint64()
	}
}

// testPool returns a pool with a fake clock and a seeded random source.
func testPool(c *fakeClock) *Pool {
	p := NewPool()
	p.now, p.rand = c.Now, seeded(1)
	return p
}

// endpoints returns n healthy endpoints a:1, b:1, ... (or e0:1... past 26).
func endpoints(n int) []xdsresource.Endpoint {
	eps := make([]xdsresource.Endpoint, n)
	for i := range eps {
		eps[i] = xdsresource.Endpoint{Address: addr(i), Health: xdsresource.HealthHealthy, Weight: 1}
	}
	return eps
}

func addr(i int) string {
	if i < 26 {
		return string(rune('a'+i)) + ":1"
	}
	return fmt.Sprintf("e%d:1", i)
}

// count picks n times and counts the addresses picked ("" for nil).
func count(t *testing.T, p *Picker, n int, r func(i int) Request) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for i := range n {
		req := Request{}
		if r != nil {
			req = r(i)
		}
		e := p.PickFor(req)
		if e == nil {
			seen[""]++
			continue
		}
		seen[e.Address]++
	}
	return seen
}

// near reports whether got is within tol (a fraction) of want.
func near(got, want int, tol float64) bool {
	d := float64(got - want)
	return d <= tol*float64(want) && -d <= tol*float64(want)
}

// eject makes the endpoint fail until outlier detection ejects it.
func ejectByFailures(t *testing.T, p *Picker, address string, n int) {
	t.Helper()
	healthy, _ := p.Endpoints()
	for _, e := range healthy {
		if e.Address == address {
			for range n {
				e.Begin()(ResultServerError)
			}
			return
		}
	}
	t.Fatalf("no endpoint %s", address)
}

func outlier() *xdsresource.OutlierDetection {
	return &xdsresource.OutlierDetection{
		Consecutive5xx: 5, Enforcing5xx: 100,
		ConsecutiveGatewayFailure: 5, EnforcingGatewayFailure: 0,
		Interval: 10 * time.Second, BaseEjectionTime: 30 * time.Second,
		MaxEjectionTime: 300 * time.Second, MaxEjectionPercent: 10,
	}
}
