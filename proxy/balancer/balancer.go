// Package balancer picks an upstream endpoint for each request and keeps a
// cluster's circuit breakers, retry budget and outlier detection.
//
// A Picker is built from one cluster's endpoints in one config snapshot and
// is immutable. The state that must outlive a config change lives in a
// State kept by a Pool, keyed by cluster name: the round-robin position,
// per endpoint address the requests in flight and the outlier-detection
// counters and ejections, and the circuit-breaker and retry-budget
// counters. Pick never blocks; only AcquireConnection may wait.
//
// Endpoints are tiered as docs/xds.md says (priority, then how much of the
// proxy's own locality they share); within a tier the cluster's policy
// picks: ROUND_ROBIN, RANDOM, LEAST_REQUEST (power of two choices) or
// RING_HASH (MAGLEV is served by the ring), each by the endpoints' EDS
// load_balancing_weight.
package balancer

import (
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/proxy/xdsresource"
)

// Labels a workload's locality comes from (docs/xds.md).
const (
	LabelRegion  = "topology.kubernetes.io/region"
	LabelZone    = "topology.kubernetes.io/zone"
	LabelSubZone = "topology.istio.io/subzone"
)

// LocalityFromLabels returns the locality a workload's labels give it.
func LocalityFromLabels(labels map[string]string) Locality {
	return Locality{Region: labels[LabelRegion], Zone: labels[LabelZone], SubZone: labels[LabelSubZone]}
}

// Pool keeps the State of every cluster and the proxy's own locality.
// Safe for concurrent use.
type Pool struct {
	mu       sync.Mutex
	states   map[string]*State
	locality Locality

	// now and rand are the clock and the random source of every State
	// the pool creates (tests replace them before the first Get).
	now  func() time.Time
	rand func() uint64
}

// NewPool returns an empty pool.
func NewPool() *Pool {
	return &Pool{states: map[string]*State{}, now: time.Now, rand: rand.Uint64}
}

// SetLocality sets the proxy's own locality, which tiers the endpoints of
// the pickers built afterwards. It is meant to be called once, at startup.
func (p *Pool) SetLocality(l Locality) {
	p.mu.Lock()
	p.locality = l
	p.mu.Unlock()
}

func (p *Pool) getLocality() Locality {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.locality
}

// Get returns the cluster's state, creating it.
func (p *Pool) Get(cluster string) *State {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.states[cluster]
	if s == nil {
		s = newState(p, p.now, p.rand)
		p.states[cluster] = s
	}
	return s
}

// Retain drops the state of every cluster not in keep.
func (p *Pool) Retain(keep map[string]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k := range p.states {
		if !keep[k] {
			delete(p.states, k)
		}
	}
}

// State is a cluster's balancing state across config snapshots. Safe for
// concurrent use. Get one from a Pool; a nil *State given to NewPicker
// stands for a fresh one.
type State struct {
	pool *Pool // for the proxy's locality; nil for a standalone state
	now  func() time.Time
	rand func() uint64

	rr atomic.Uint64 // round-robin position

	mu    sync.Mutex
	hosts map[string]*hostState // by endpoint address, those of the last picker

	// ejectHorizon is the latest end of any ejection (unix ns): before it
	// some endpoint may be ejected, after it none is.
	ejectHorizon atomic.Int64

	requests atomic.Int64 // in flight under max_requests
	retries  atomic.Int64 // retries in flight under max_retries
	conns    connGate
	budget   retryWindow

	overflow, retryOverflow, retriesMade, ejections atomic.Uint64
}

func newState(pool *Pool, now func() time.Time, rnd func() uint64) *State {
	if now == nil {
		now = time.Now
	}
	if rnd == nil {
		rnd = rand.Uint64
	}
	return &State{pool: pool, now: now, rand: rnd, hosts: map[string]*hostState{}}
}

// hostState is what the pool remembers of one endpoint address.
type hostState struct {
	inFlight atomic.Int64
	// Consecutive failures for outlier detection.
	consec5xx, consecGateway atomic.Uint32
	// ejectedUntil is the end of the current or last ejection (unix ns).
	ejectedUntil atomic.Int64
	// timesEjected is the ejection multiplier; guarded by State.mu.
	timesEjected int64
}

// hostsFor returns the host states of the addresses, creating the missing
// ones and forgetting the addresses no longer in the cluster.
func (s *State) hostsFor(addrs []string) []*hostState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*hostState, len(addrs))
	keep := make(map[string]*hostState, len(addrs))
	for i, a := range addrs {
		h := s.hosts[a]
		if h == nil {
			h = &hostState{}
		}
		keep[a] = h
		out[i] = h
	}
	s.hosts = keep
	return out
}

// Endpoint is an upstream host as the forwarder needs it. Endpoints are
// made by NewPicker; an Endpoint built by hand has no state (Begin counts
// nothing). Immutable; Begin is safe for concurrent use.
type Endpoint struct {
	Address  string
	Workload string
	Version  string
	Locality Locality

	host   *hostState
	picker *Picker
	health xdsresource.HealthStatus
	weight uint32 // load_balancing_weight, at least 1 (every policy)
}

// Picker picks among a cluster's endpoints. Usable endpoints are the
// healthy ones (HEALTHY or UNKNOWN and not ejected) or, when there is none
// in any tier, the DEGRADED ones (the control plane marks an endpoint
// whose proxy is away, inside its grace period, as degraded). Unhealthy,
// draining and timed-out endpoints are never picked. When outlier
// detection has ejected every candidate, ejections are ignored (as Envoy's
// panic mode) rather than failing every request.
//
// Immutable; safe for concurrent use. Pick and PickFor never block.
type Picker struct {
	cfg   Config
	state *State

	healthy, degraded []*Endpoint // usable in EDS terms, for Endpoints
	all               []*hostState
	tiers             []*tier // by preference
	// static are the tiers' cumulative traffic shares when nothing is
	// ejected (over the healthy endpoints, or the degraded ones when
	// degradedOnly).
	static       []float64
	degradedOnly bool
}

// tier is the endpoints of one priority sharing as much of the proxy's
// locality.
type tier struct {
	total             int // every endpoint, usable or not
	healthy, degraded []*Endpoint
	ringHealthy       *ring
	ringDegraded      *ring
	// wHealthy, wDegraded: the lists' weights; nil when equal (pick.go).
	wHealthy, wDegraded *weights
}

// NewPicker builds a picker over a cluster's endpoints with the cluster's
// state and configuration.
func NewPicker(eps []xdsresource.Endpoint, st *State, cfg Config) *Picker {
	if st == nil {
		st = newState(nil, nil, nil)
	}
	p := &Picker{cfg: cfg, state: st}
	var self Locality
	if st.pool != nil && !cfg.NoLocality {
		self = st.pool.getLocality()
	}
	addrs := make([]string, len(eps))
	for i, e := range eps {
		addrs[i] = e.Address
	}
	p.all = st.hostsFor(addrs)

	type key struct {
		prio uint32
		rank int
	}
	byKey := map[key]*tier{}
	var keys []key
	for i, e := range eps {
		ep := &Endpoint{
			Address:  e.Address,
			Locality: Locality(e.Locality),
			host:     p.all[i],
			picker:   p,
			health:   e.Health,
			weight:   max(1, e.Weight),
		}
		if e.Metadata != nil {
			ep.Workload = e.Metadata["workload"]
			ep.Version = e.Metadata["version"]
		}
		k := key{prio: e.Priority, rank: localityRank(self, ep.Locality)}
		t := byKey[k]
		if t == nil {
			t = &tier{}
			byKey[k] = t
			keys = append(keys, k)
		}
		t.total++
		switch e.Health {
		case xdsresource.HealthHealthy, xdsresource.HealthUnknown:
			p.healthy = append(p.healthy, ep)
			t.healthy = append(t.healthy, ep)
		case xdsresource.HealthDegraded:
			p.degraded = append(p.degraded, ep)
			t.degraded = append(t.degraded, ep)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].prio != keys[j].prio {
			return keys[i].prio < keys[j].prio
		}
		return keys[i].rank < keys[j].rank
	})
	for _, k := range keys {
		t := byKey[k]
		t.wHealthy, t.wDegraded = newWeights(t.healthy), newWeights(t.degraded)
		if cfg.hashing() {
			t.ringHealthy = newRing(t.healthy, cfg.RingMin, cfg.RingMax)
			t.ringDegraded = newRing(t.degraded, cfg.RingMin, cfg.RingMax)
		}
		p.tiers = append(p.tiers, t)
	}
	p.static, p.degradedOnly = p.staticShares()
	return p
}

// localityRank is how little of self's locality l shares: 0 all of it
// (or self has none), 1 region and zone, 2 region, 3 nothing.
func localityRank(self, l Locality) int {
	switch {
	case self == Locality{}:
		return 0
	case l.Region != self.Region:
		return 3
	case l.Zone != self.Zone:
		return 2
	case l.SubZone != self.SubZone:
		return 1
	}
	return 0
}

// Pick returns an endpoint for a request without a hash key or endpoints
// to avoid, or nil when there is none to use.
func (p *Picker) Pick() *Endpoint { return p.PickFor(Request{}) }

// Len returns how many endpoints the picker may use (ejections aside).
func (p *Picker) Len() int {
	if len(p.healthy) > 0 {
		return len(p.healthy)
	}
	return len(p.degraded)
}

// Endpoints lists every usable endpoint (for config dumps).
func (p *Picker) Endpoints() (healthy, degraded []*Endpoint) { return p.healthy, p.degraded }

// Config returns the configuration the picker was built with.
func (p *Picker) Config() Config { return p.cfg }
