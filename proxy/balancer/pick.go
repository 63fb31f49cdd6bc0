package balancer

import (
	"math"
	"math/bits"
	"sort"

	"github.com/weftmesh/weft/proxy/xdsresource"
)

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
// cluster's policy; nil when f rejects them all. A list whose endpoints'
// load_balancing_weights differ has weights (w non-nil) and every policy
// follows them; equal weights take the unweighted path (w nil), the common
// case, which costs what it did before weights existed.
func (p *Picker) pickIn(t *tier, degraded bool, r Request, f *filter) *Endpoint {
	eps, rg, w := t.healthy, t.ringHealthy, t.wHealthy
	if degraded {
		eps, rg, w = t.degraded, t.ringDegraded, t.wDegraded
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
		return p.random(eps, w, f)
	case xdsresource.LBRandom:
		return p.random(eps, w, f)
	case xdsresource.LBLeastRequest:
		if w != nil {
			return p.leastRequestWeighted(eps, w, f)
		}
		return p.leastRequest(eps, f)
	default:
		k := p.state.rr.Add(1) - 1
		if w != nil {
			return w.endpoint(eps, w.pick(eps, w.rotation(k), k*sqrt2, f))
		}
		return walk(eps, int(k%uint64(n)), f)
	}
}

// random picks uniformly, or by weight when w is set.
func (p *Picker) random(eps []*Endpoint, w *weights, f *filter) *Endpoint {
	if w != nil {
		x := p.state.rand()
		return w.endpoint(eps, w.pick(eps, w.point(x), mix(x), f))
	}
	return walk(eps, int(p.state.rand()%uint64(len(eps))), f)
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

// leastRequestWeighted is power of two choices over weighted endpoints:
// two distinct endpoints are drawn by weight, and the one with fewer
// requests in flight per unit of weight wins (the first on a tie). With
// nothing in flight the picks follow the weights exactly; under load an
// endpoint of weight 2 is expected to hold twice the requests of one of
// weight 1.
func (p *Picker) leastRequestWeighted(eps []*Endpoint, w *weights, f *filter) *Endpoint {
	x := p.state.rand()
	i := w.pick(eps, w.point(x), mix(x), f)
	if i < 0 {
		return nil
	}
	a := eps[i]
	y := p.state.rand()
	j := w.pick(eps, w.pointExcept(y, i), mix(y), f)
	if j < 0 || j == i {
		return a
	}
	b := eps[j]
	// inFlight/weight compared without dividing: b wins when
	// b.inFlight·a.weight < a.inFlight·b.weight (requests in flight stay
	// far below 2³¹ and weights below 2³², so the products fit).
	if uint64(max(0, b.host.inFlight.Load()))*uint64(a.weight) < uint64(max(0, a.host.inFlight.Load()))*uint64(b.weight) {
		return b
	}
	return a
}

// sqrt2 is frac(√2)·2⁶⁴: k·sqrt2 for k = 0, 1, 2... spreads evenly over
// [0, 2⁶⁴) (a Weyl sequence), independently of the rotation's points
// (whose stride is about 1/φ of the range), for the weighted round
// robin's fallback.
const sqrt2 = 0x6a09e667f3bcc909

// weights are the cumulative load_balancing_weights of one list of a
// tier's endpoints, for the weighted picks. Each endpoint owns a span of
// the points [0, total) as long as its weight. Immutable.
//
// Weighted round robin (smooth, as nginx's): the k-th pick takes the
// point k·step mod total, step being coprime to total and close to
// total/φ. Every total consecutive picks visit each point once, so each
// endpoint gets exactly its weight per cycle; and a golden-ratio stride
// spreads any run of picks evenly over the range (the three-distance
// theorem), so an endpoint's picks are interleaved with the others'
// rather than bunched: weights 2, 1 give a b a a b a..., weights 5, 1, 1
// a a a b a c a. It needs no lock: k is the rotation counter the
// unweighted round robin uses.
type weights struct {
	end   []uint64 // end[i] = w[0] + ... + w[i]
	total uint64
	step  uint64 // coprime to total, about total/φ
}

// newWeights returns the weights of eps, or nil when they are all equal
// (the unweighted policies are then exact and cheaper).
func newWeights(eps []*Endpoint) *weights {
	equal := true
	for _, e := range eps {
		equal = equal && e.weight == eps[0].weight
	}
	if equal {
		return nil
	}
	w := &weights{end: make([]uint64, len(eps))}
	for i, e := range eps {
		w.total += uint64(e.weight)
		w.end[i] = w.total
	}
	w.step = max(1, uint64(float64(w.total)/math.Phi+0.5))
	for gcd(w.step, w.total) != 1 {
		w.step++
	}
	return w
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// rotation is the point of the k-th weighted round-robin pick.
func (w *weights) rotation(k uint64) uint64 {
	hi, lo := bits.Mul64(k%w.total, w.step) // < total², so hi < total
	_, at := bits.Div64(hi, lo, w.total)
	return at
}

// point maps 64 random bits to a point in [0, total).
func (w *weights) point(x uint64) uint64 {
	at, _ := bits.Mul64(x, w.total) // ⌊x·total / 2⁶⁴⌋
	return at
}

// pointExcept maps 64 random bits to a point outside endpoint skip's span.
func (w *weights) pointExcept(x uint64, skip int) uint64 {
	start, size := uint64(0), w.end[skip]
	if skip > 0 {
		start, size = w.end[skip-1], w.end[skip]-w.end[skip-1]
	}
	at, _ := bits.Mul64(x, w.total-size)
	if at >= start {
		at += size
	}
	return at
}

// pick returns the index of the endpoint owning point at. When f rejects
// that endpoint (ejected, or already tried), the endpoints f accepts
// share its traffic in proportion to their weights (rather than the next
// one taking it all): x, 64 bits independent of at, picks among them. -1
// when f rejects every endpoint.
func (w *weights) pick(eps []*Endpoint, at, x uint64, f *filter) int {
	i := sort.Search(len(w.end), func(i int) bool { return w.end[i] > at })
	if f.ok(eps[i]) {
		return i
	}
	var sum uint64
	for _, e := range eps {
		if f.ok(e) {
			sum += uint64(e.weight)
		}
	}
	if sum == 0 {
		return -1
	}
	at, _ = bits.Mul64(x, sum)
	for i, e := range eps {
		if f.ok(e) {
			if at < uint64(e.weight) {
				return i
			}
			at -= uint64(e.weight)
		}
	}
	return -1 // not reached: at < sum
}

// endpoint returns eps[i], nil for -1.
func (w *weights) endpoint(eps []*Endpoint, i int) *Endpoint {
	if i < 0 {
		return nil
	}
	return eps[i]
}
