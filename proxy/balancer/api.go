package balancer

// This file is the balancer's contract with the forwarder (see
// docs/xds.md); the algorithms live in the other files of the package.

import (
	"context"
	"errors"
	"hash/fnv"
	"sync/atomic"

	"github.com/weftmesh/weft/proxy/xdsresource"
)

// Locality is where an endpoint or the proxy itself runs.
type Locality struct{ Region, Zone, SubZone string }

// Config is one cluster's balancing configuration in one snapshot.
type Config struct {
	Policy           xdsresource.LBPolicy
	RingMin, RingMax uint64
	// Limits are the circuit breakers, with Envoy's defaults filled in.
	Limits  xdsresource.CircuitBreakers
	Outlier *xdsresource.OutlierDetection
	// HTTP1: upstream requests each hold a connection, so
	// MaxConnections bounds concurrent requests and MaxPendingRequests
	// bounds those waiting for one.
	HTTP1 bool
	// NoLocality turns locality-aware tiering off: endpoints are tiered by
	// priority only. The default is locality-aware.
	NoLocality bool
}

// hashing says whether the policy picks by the request's hash key.
func (c Config) hashing() bool {
	return c.Policy == xdsresource.LBRingHash || c.Policy == xdsresource.LBMaglev
}

// ErrOverflow is returned when a circuit breaker's limit is reached.
var ErrOverflow = errors.New("circuit breaker overflow")

// Request is what a pick may depend on.
type Request struct {
	// Hash is the request's hash key (RING_HASH), when HasHash.
	Hash    uint64
	HasHash bool
	// Avoid lists endpoints already tried for this request; a retry
	// prefers another endpoint when there is one.
	Avoid []*Endpoint
}

// HashKey hashes a hash-policy value (FNV-1a 64): the same key maps to the
// same ring position on every proxy.
func HashKey(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// Result is how an upstream request ended, for outlier detection.
type Result int

const (
	// ResultSuccess: any answer below 500 (4xx are the caller's fault).
	ResultSuccess Result = iota
	// ResultServerError: a 5xx other than 502, 503 and 504.
	ResultServerError
	// ResultGatewayError: 502, 503 or 504 from the upstream.
	ResultGatewayError
	// ResultConnectFailure: no connection (refused, timeout, TLS
	// failure) or a reset before any answer.
	ResultConnectFailure
	// ResultCancelled: the caller went away; not counted.
	ResultCancelled
)

// Done reports the end of a request started on the endpoint with Begin.
type Done func(Result)

// Begin counts a request in flight on the endpoint (LEAST_REQUEST) and
// returns the function to call with its result (outlier detection).
// Done must be called exactly once; later calls do nothing.
func (e *Endpoint) Begin() Done { return e.begin() }

// Attempt is a request in flight on an endpoint, started by Start: Begin
// without the allocation of a Done function, for the forwarder's hot path.
// Its zero value is no attempt. An Attempt is used by one goroutine.
type Attempt struct{ e *Endpoint }

// Start counts a request in flight on the endpoint, as Begin; End must be
// called with its result.
func (e *Endpoint) Start() Attempt {
	if e.host != nil && e.picker != nil {
		e.host.inFlight.Add(1)
	}
	return Attempt{e}
}

// End reports the attempt's result, as Done; later calls do nothing.
func (a *Attempt) End(r Result) {
	e := a.e
	if e == nil {
		return
	}
	a.e = nil
	h, p := e.host, e.picker
	if h == nil || p == nil {
		return
	}
	h.inFlight.Add(-1)
	if od := p.cfg.Outlier; od != nil {
		p.state.observe(h, r, od)
	}
}

// Slot is one unit of a circuit breaker's limit held by a request
// (AcquireRequestSlot, AcquireConnectionSlot): the functions AcquireRequest
// and AcquireConnection return, without their allocations. Its zero value
// holds nothing. A Slot is used by one goroutine.
type Slot struct {
	c *atomic.Int64
	g *connGate
}

// Release gives the slot back; later calls do nothing.
func (s *Slot) Release() {
	if s.c != nil {
		s.c.Add(-1)
		s.c = nil
	}
	if s.g != nil {
		s.g.release()
		s.g = nil
	}
}

// AcquireRequestSlot is AcquireRequest returning a Slot.
func (p *Picker) AcquireRequestSlot() (Slot, bool) { return p.acquireRequestSlot() }

// AcquireConnectionSlot is AcquireConnection returning a Slot.
func (p *Picker) AcquireConnectionSlot(ctx context.Context) (Slot, error) {
	return p.acquireConnectionSlot(ctx)
}

// PickFor picks an endpoint for a request; nil when there is none to use.
func (p *Picker) PickFor(r Request) *Endpoint { return p.pickFor(r) }

// AcquireRequest admits a request under max_requests; release must be
// called when it ends. ok is false (and release nil) over the limit.
func (p *Picker) AcquireRequest() (release func(), ok bool) { return p.acquireRequest() }

// AcquireConnection waits, for an HTTP/1 cluster, for one of
// max_connections slots, as one of at most max_pending_requests waiters;
// over that it returns ErrOverflow at once. It returns ctx.Err() when ctx
// ends first. For HTTP/2 clusters it admits at once.
func (p *Picker) AcquireConnection(ctx context.Context) (release func(), err error) {
	return p.acquireConnection(ctx)
}

// RecordRequest counts an original (not retried) request toward the
// retry budget.
func (p *Picker) RecordRequest() { p.recordRequest() }

// AcquireRetry admits one retry: within the retry budget (when set) or
// under max_retries concurrent retries. release must be called when the
// retry ends. ok is false (and release nil) when the retry must not be
// made.
func (p *Picker) AcquireRetry() (release func(), ok bool) { return p.acquireRetry() }

// Stats are a cluster's counters, for the admin endpoint and tests.
type Stats struct {
	Overflow        uint64 `json:"overflow"`        // requests refused by a circuit breaker
	RetryOverflow   uint64 `json:"retryOverflow"`   // retries refused (budget or max_retries)
	Retries         uint64 `json:"retries"`         // retries made
	Ejections       uint64 `json:"ejections"`       // endpoints ejected
	EjectedNow      int    `json:"ejectedNow"`      // endpoints ejected at this moment
	InFlight        int64  `json:"inFlight"`        // requests in flight (admitted by AcquireRequest)
	PendingRequests int64  `json:"pendingRequests"` // waiting for a connection
}

// Stats returns the cluster's counters.
func (p *Picker) Stats() Stats { return p.stats() }
