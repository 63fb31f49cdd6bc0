// Package balancer picks an upstream endpoint for each request.
//
// A Picker is built from one cluster's endpoints in one config snapshot and
// is immutable; the state that must outlive a config change (round-robin
// position, later outlier ejections and in-flight counts) lives in a State
// kept by a Pool, keyed by cluster name. Pick never blocks.
package balancer

import (
	"sync"
	"sync/atomic"

	"github.com/weftmesh/weft/proxy/xdsresource"
)

// State is a cluster's balancing state across config snapshots. Safe for
// concurrent use.
type State struct {
	next atomic.Uint64
}

// Pool keeps the State of every cluster. Safe for concurrent use.
type Pool struct {
	mu     sync.Mutex
	states map[string]*State
}

// NewPool returns an empty pool.
func NewPool() *Pool { return &Pool{states: map[string]*State{}} }

// Get returns the cluster's state, creating it.
func (p *Pool) Get(cluster string) *State {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.states[cluster]
	if s == nil {
		s = &State{}
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

// Endpoint is an upstream host as the forwarder needs it.
type Endpoint struct {
	Address  string
	Workload string
	Version  string
}

// Picker picks among a cluster's endpoints: round robin over the healthy
// ones (HEALTHY or UNKNOWN), or over the DEGRADED ones when none is
// healthy (the control plane marks an endpoint whose proxy is away, inside
// its grace period, as degraded). Unhealthy, draining and timed-out
// endpoints are never picked. Immutable; safe for concurrent use.
type Picker struct {
	healthy  []*Endpoint
	degraded []*Endpoint
	state    *State
}

// NewPicker builds a picker over endpoints with the cluster's state.
func NewPicker(eps []xdsresource.Endpoint, st *State) *Picker {
	p := &Picker{state: st}
	for _, e := range eps {
		ep := &Endpoint{Address: e.Address}
		if e.Metadata != nil {
			ep.Workload = e.Metadata["workload"]
			ep.Version = e.Metadata["version"]
		}
		switch e.Health {
		case xdsresource.HealthHealthy, xdsresource.HealthUnknown:
			p.healthy = append(p.healthy, ep)
		case xdsresource.HealthDegraded:
			p.degraded = append(p.degraded, ep)
		}
	}
	return p
}

// Pick returns the next endpoint, or nil when there is none to use.
func (p *Picker) Pick() *Endpoint {
	eps := p.healthy
	if len(eps) == 0 {
		eps = p.degraded
	}
	switch len(eps) {
	case 0:
		return nil
	case 1:
		return eps[0]
	}
	n := p.state.next.Add(1)
	return eps[n%uint64(len(eps))]
}

// Len returns how many endpoints the picker may use.
func (p *Picker) Len() int {
	if len(p.healthy) > 0 {
		return len(p.healthy)
	}
	return len(p.degraded)
}

// Endpoints lists every usable endpoint (for config dumps).
func (p *Picker) Endpoints() (healthy, degraded []*Endpoint) { return p.healthy, p.degraded }
