package balancer

import "github.com/weftmesh/weft/proxy/xdsresource"

// overprovisioning is Envoy's default overprovisioning factor: a tier
// whose share of healthy endpoints is h takes min(1, 1.4·h) of the traffic
// still unassigned.
const overprovisioning = 1.4

// filter says which endpoints a pick may return.
type filter struct {
	ejections bool  // skip endpoints ejected at now
	now       int64 // unix ns
	avoid     []*Endpoint
}

func (f *filter) ejected(e *Endpoint) bool {
	return f.ejections && e.host.ejectedUntil.Load() > f.now
}

func (f *filter) ok(e *Endpoint) bool {
	if f.ejected(e) {
		return false
	}
	for _, a := range f.avoid {
		// By address: an endpoint tried under an older snapshot is
		// another *Endpoint for the same host.
		if a != nil && a.Address == e.Address {
			return false
		}
	}
	return true
}

// staticShares are the tiers' cumulative shares when nothing is ejected.
func (p *Picker) staticShares() (shares []float64, degraded bool) {
	f := filter{}
	return p.shares(nil, &f)
}

// shares returns the tiers' cumulative traffic shares (appended to dst)
// over the endpoints f does not reject as ejected: the healthy ones, or
// the degraded ones when no tier has a healthy one (degraded is then
// true). It returns nil when no endpoint is usable at all.
func (p *Picker) shares(dst []float64, f *filter) ([]float64, bool) {
	if out := p.sharesOf(dst, f, false); out != nil {
		return out, false
	}
	if out := p.sharesOf(dst, f, true); out != nil {
		return out, true
	}
	return nil, false
}

func (p *Picker) sharesOf(dst []float64, f *filter, degraded bool) []float64 {
	out := dst[:0]
	unassigned, sum := 1.0, 0.0
	for _, t := range p.tiers {
		eps := t.healthy
		if degraded {
			eps = t.degraded
		}
		n := 0
		for _, e := range eps {
			if !f.ejected(e) {
				n++
			}
		}
		share := 0.0
		if n > 0 {
			share = min(1, overprovisioning*float64(n)/float64(t.total)) * unassigned
		}
		unassigned -= share
		sum += share
		out = append(out, sum)
	}
	if sum == 0 {
		return nil
	}
	// What no tier took is spread over them in proportion (as Envoy
	// normalises priority loads).
	for i := range out {
		out[i] /= sum
	}
	for i := len(out) - 1; i >= 0 && out[i] > 1-1e-9; i-- {
		out[i] = 1
	}
	return out
}

// choose returns the tier that the draw u in [0, 1) falls in.
func choose(cum []float64, u float64) int {
	for i, c := range cum {
		if u < c {
			return i
		}
	}
	return len(cum) - 1
}

// unit turns 64 random bits into a float64 in [0, 1).
func unit(x uint64) float64 { return float64(x>>11) / (1 << 53) }

func (p *Picker) pickFor(r Request) *Endpoint {
	if len(p.static) == 0 {
		return nil
	}
	f := filter{avoid: r.Avoid}
	if p.cfg.Outlier != nil {
		now := p.state.now().UnixNano()
		if now < p.state.ejectHorizon.Load() {
			f.ejections, f.now = true, now
		}
	}
	shares, degraded := p.static, p.degradedOnly
	if f.ejections {
		var buf [8]float64
		if s, d := p.shares(buf[:], &f); s != nil {
			shares, degraded = s, d
		} else {
			// Every candidate is ejected: ignore ejections (panic mode).
			f.ejections = false
		}
	}
	t := 0
	if len(shares) > 1 {
		var x uint64
		if r.HasHash && p.cfg.hashing() {
			// The tier, too, follows the key, so that a key keeps its
			// endpoint as long as the tiers' health does not change.
			x = mix(r.Hash ^ 0x9e3779b97f4a7c15)
		} else {
			x = p.state.rand()
		}
		t = choose(shares, unit(x))
	}
	if e := p.pickIn(p.tiers[t], degraded, r, &f); e != nil || len(f.avoid) == 0 {
		return e
	}
	// Everything usable in the chosen tier is to be avoided: prefer
	// another endpoint of any tier, then give up avoiding.
	for i, other := range p.tiers {
		if i == t {
			continue
		}
		if e := p.pickIn(other, degraded, r, &f); e != nil {
			return e
		}
	}
	f.avoid = nil
	return p.pickIn(p.tiers[t], degraded, r, &f)
}

// pickIn picks among a tier's healthy (or degraded) endpoints by the
// cluster's policy; nil when f rejects them all.
func (p *Picker) pickIn(t *tier, degraded bool, r Request, f *filter) *Endpoint {
	eps, rg := t.healthy, t.ringHealthy
	if degraded {
		eps, rg = t.degraded, t.ringDegraded
	}
	n := len(eps)
	if n == 0 {
		return nil
	}
	switch p.cfg.Policy {
	case xdsresource.LBRingHash, xdsresource.LBMaglev:
		if r.HasHash && rg != nil {
			return rg.lookup(r.Hash, f)
		}
		return walk(eps, int(p.state.rand()%uint64(n)), f)
	case xdsresource.LBRandom:
		return walk(eps, int(p.state.rand()%uint64(n)), f)
	case xdsresource.LBLeastRequest:
		return p.leastRequest(eps, f)
	default:
		return walk(eps, int((p.state.rr.Add(1)-1)%uint64(n)), f)
	}
}

// walk returns the first endpoint f accepts from eps[start] on, wrapping.
func walk(eps []*Endpoint, start int, f *filter) *Endpoint {
	for i := range eps {
		j := start + i
		if j >= len(eps) {
			j -= len(eps)
		}
		if e := eps[j]; f.ok(e) {
			return e
		}
	}
	return nil
}

// leastRequest draws two distinct endpoints and returns the one with fewer
// requests in flight (the first on a tie): power of two choices.
func (p *Picker) leastRequest(eps []*Endpoint, f *filter) *Endpoint {
	n := uint64(len(eps))
	if n == 1 {
		return walk(eps, 0, f)
	}
	x := p.state.rand()
	i := x % n
	j := (x >> 32) % (n - 1)
	if n > 1<<31 {
		j = p.state.rand() % (n - 1)
	}
	if j >= i {
		j++
	}
	a := walk(eps, int(i), f)
	if a == nil {
		return nil
	}
	b := walk(eps, int(j), f)
	if b != nil && b.host.inFlight.Load() < a.host.inFlight.Load() {
		return b
	}
	return a
}
