// Package stats counts the requests a proxy forwards, per edge: the
// destination service and the version of the endpoint that served. It keeps
// a request count, a success count (non-5xx) and a fixed-bucket latency
// histogram per edge, with lock-free updates on the data path. The admin
// server exposes them as JSON (/stats/edges); the demo and tests read them.
package stats

import (
	"github.com/weftmesh/weft/api/telemetry"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds are the histogram's upper bounds in milliseconds; a last bucket
// counts everything slower.
var Bounds = []float64{0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 2500, 5000, 10000}

// EdgeKey identifies an edge from this proxy's workload.
type EdgeKey struct {
	Direction string // outbound or inbound
	Service   string // destination service host (name.namespace)
	Version   string // version label of the endpoint that served ("" if unknown)
	MTLS      bool   // whether the hop was mutual TLS
	// Peer is the client's SPIFFE ID on inbound mutual TLS hops.
	Peer string
}

type edge struct {
	requests atomic.Uint64
	success  atomic.Uint64
	buckets  [23]atomic.Uint64 // len(Bounds)+1
}

// Stats is a set of edges. Safe for concurrent use.
type Stats struct {
	edges sync.Map // EdgeKey → *edge
}

// New returns empty stats.
func New() *Stats { return &Stats{} }

// Record counts one request.
func (s *Stats) Record(k EdgeKey, status int, d time.Duration) {
	v, ok := s.edges.Load(k)
	if !ok {
		v, _ = s.edges.LoadOrStore(k, &edge{})
	}
	e := v.(*edge)
	e.requests.Add(1)
	if status < 500 {
		e.success.Add(1)
	}
	ms := float64(d) / float64(time.Millisecond)
	i := sort.SearchFloat64s(Bounds, ms)
	e.buckets[i].Add(1)
}

// Edge is a read-out of one edge (the wire type the proxy pushes to the
// control plane).
type Edge = telemetry.Edge

// Edges returns every edge, sorted.
func (s *Stats) Edges() []Edge {
	var out []Edge
	s.edges.Range(func(k, v any) bool {
		key, e := k.(EdgeKey), v.(*edge)
		ed := Edge{Direction: key.Direction, Service: key.Service, Version: key.Version, MTLS: key.MTLS, Peer: key.Peer,
			Requests: e.requests.Load(), Success: e.success.Load(), Buckets: make([]uint64, len(e.buckets))}
		for i := range e.buckets {
			ed.Buckets[i] = e.buckets[i].Load()
		}
		out = append(out, ed)
		return true
	})
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Direction != b.Direction {
			return a.Direction < b.Direction
		}
		if a.Service != b.Service {
			return a.Service < b.Service
		}
		if a.Version != b.Version {
			return a.Version < b.Version
		}
		return !a.MTLS && b.MTLS
	})
	return out
}

// Quantile estimates the q-quantile (0..1) in milliseconds from histogram
// buckets, interpolating linearly inside the bucket.
func Quantile(buckets []uint64, q float64) float64 {
	var total uint64
	for _, b := range buckets {
		total += b
	}
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var seen float64
	for i, b := range buckets {
		if b == 0 {
			continue
		}
		if seen+float64(b) >= rank {
			lo := 0.0
			if i > 0 {
				lo = Bounds[i-1]
			}
			hi := lo * 2
			if i < len(Bounds) {
				hi = Bounds[i]
			}
			return lo + (hi-lo)*(rank-seen)/float64(b)
		}
		seen += float64(b)
	}
	return Bounds[len(Bounds)-1]
}
