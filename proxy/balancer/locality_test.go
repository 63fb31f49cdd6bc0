package balancer

import (
	"testing"
	"time"

	"github.com/weftmesh/weft/proxy/xdsresource"
)

var self = Locality{Region: "r1", Zone: "z1", SubZone: "s1"}

// tiered returns two endpoints in each of: the proxy's subzone (l*), its
// zone (z*), its region (r*), another region (o*); then two of priority 1
// in the proxy's subzone (p*).
func tiered() []xdsresource.Endpoint {
	var eps []xdsresource.Endpoint
	add := func(prefix string, prio uint32, l xdsresource.Locality) {
		for _, n := range []string{"1", "2"} {
			eps = append(eps, xdsresource.Endpoint{Address: prefix + n + ":80", Health: xdsresource.HealthHealthy, Locality: l, Priority: prio})
		}
	}
	add("l", 0, xdsresource.Locality{Region: "r1", Zone: "z1", SubZone: "s1"})
	add("z", 0, xdsresource.Locality{Region: "r1", Zone: "z1", SubZone: "s2"})
	add("r", 0, xdsresource.Locality{Region: "r1", Zone: "z2"})
	add("o", 0, xdsresource.Locality{Region: "r2", Zone: "z1", SubZone: "s1"})
	add("p", 1, xdsresource.Locality{Region: "r1", Zone: "z1", SubZone: "s1"})
	return eps
}

// byPrefix counts picks by the first letter of the address.
func byPrefix(seen map[string]int) map[string]int {
	out := map[string]int{}
	for a, n := range seen {
		if a == "" {
			out[""] += n
			continue
		}
		out[a[:1]] += n
	}
	return out
}

func setHealth(eps []xdsresource.Endpoint, address string, h xdsresource.HealthStatus) {
	for i := range eps {
		if eps[i].Address == address {
			eps[i].Health = h
		}
	}
}

func TestLocalityTiers(t *testing.T) {
	const picks = 20000
	for _, tc := range []struct {
		name   string
		mutate func([]xdsresource.Endpoint)
		cfg    Config
		want   map[string]int // per mille per tier
	}{
		{name: "all healthy: all local", want: map[string]int{"l": 1000}},
		{
			name:   "half the subzone unhealthy: 70% stays, 30% spills to the zone",
			mutate: func(e []xdsresource.Endpoint) { setHealth(e, "l1:80", xdsresource.HealthUnhealthy) },
			want:   map[string]int{"l": 700, "z": 300},
		},
		{
			name: "subzone down, half the zone draining: 70% zone, 30% region",
			mutate: func(e []xdsresource.Endpoint) {
				setHealth(e, "l1:80", xdsresource.HealthUnhealthy)
				setHealth(e, "l2:80", xdsresource.HealthTimeout)
				setHealth(e, "z2:80", xdsresource.HealthDraining)
			},
			want: map[string]int{"z": 700, "r": 300},
		},
		{
			name: "every priority-0 endpoint down: priority 1",
			mutate: func(e []xdsresource.Endpoint) {
				for i := range e {
					if e[i].Priority == 0 {
						e[i].Health = xdsresource.HealthUnhealthy
					}
				}
			},
			want: map[string]int{"p": 1000},
		},
		{
			name: "degraded local endpoints only when nothing is healthy",
			mutate: func(e []xdsresource.Endpoint) {
				for i := range e {
					if e[i].Address[0] != 'o' {
						e[i].Health = xdsresource.HealthDegraded
					}
				}
			},
			want: map[string]int{"o": 1000},
		},
		{
			name: "all degraded: the degraded are tiered",
			mutate: func(e []xdsresource.Endpoint) {
				for i := range e {
					e[i].Health = xdsresource.HealthDegraded
				}
			},
			want: map[string]int{"l": 1000},
		},
		{
			name: "locality off: priority only",
			cfg:  Config{NoLocality: true},
			want: map[string]int{"l": 250, "z": 250, "r": 250, "o": 250},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eps := tiered()
			if tc.mutate != nil {
				tc.mutate(eps)
			}
			pool := testPool(newFakeClock())
			pool.SetLocality(self)
			got := byPrefix(count(t, NewPicker(eps, pool.Get("c"), tc.cfg), picks, nil))
			for k, n := range got {
				if tc.want[k] == 0 {
					t.Fatalf("tier %q got %d picks: %v", k, n, got)
				}
			}
			for k, perMille := range tc.want {
				if !near(got[k], picks*perMille/1000, 0.05) {
					t.Errorf("tier %q got %d of %d picks, want %d‰: %v", k, got[k], picks, perMille, got)
				}
			}
		})
	}
}

// TestLocalityFailover: when outlier detection ejects every local
// endpoint, their traffic goes to the next tier, and comes back after.
func TestLocalityFailover(t *testing.T) {
	clock := newFakeClock()
	pool := testPool(clock)
	pool.SetLocality(self)
	od := outlier()
	od.MaxEjectionPercent = 50
	p := NewPicker(tiered(), pool.Get("c"), Config{Outlier: od})
	ejectByFailures(t, p, "l1:80", 5)
	if got := byPrefix(count(t, p, 10000, nil)); !near(got["l"], 7000, 0.05) || !near(got["z"], 3000, 0.1) {
		t.Fatalf("one of two local endpoints ejected: %v", got)
	}
	ejectByFailures(t, p, "l2:80", 5)
	if got := byPrefix(count(t, p, 1000, nil)); got["z"] != 1000 {
		t.Fatalf("every local endpoint ejected: %v", got)
	}
	if s := p.Stats(); s.Ejections != 2 || s.EjectedNow != 2 {
		t.Fatalf("stats: %+v", s)
	}
	clock.Advance(30 * time.Second)
	if got := byPrefix(count(t, p, 1000, nil)); got["l"] != 1000 {
		t.Fatalf("after the ejection time: %v", got)
	}
}

func TestLocalityFromLabels(t *testing.T) {
	got := LocalityFromLabels(map[string]string{LabelRegion: "eu", LabelZone: "eu-1a", LabelSubZone: "rack7", "app": "x"})
	if want := (Locality{"eu", "eu-1a", "rack7"}); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}
