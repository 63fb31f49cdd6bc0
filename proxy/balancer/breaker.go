package balancer

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/proxy/xdsresource"
)

// Circuit-breaker defaults for zero limits (Envoy's).
const (
	defaultLimit      = 1024
	defaultMaxRetries = 3
	// budgetWindow is the retry budget's memory, in one-second buckets.
	budgetWindow = 10
)

func limitOr(v uint32, def int64) int64 {
	if v == 0 {
		return def
	}
	return int64(v)
}

// releaser returns a function that gives back one unit of c, once.
func releaser(c *atomic.Int64) func() {
	var done atomic.Bool
	return func() {
		if !done.Swap(true) {
			c.Add(-1)
		}
	}
}

func (p *Picker) acquireRequest() (func(), bool) {
	slot, ok := p.acquireRequestSlot()
	if !ok {
		return nil, false
	}
	return slot.releaser(), true
}

func (p *Picker) acquireRequestSlot() (Slot, bool) {
	s := p.state
	if s.requests.Add(1) > limitOr(p.cfg.Limits.MaxRequests, defaultLimit) {
		s.requests.Add(-1)
		s.overflow.Add(1)
		return Slot{}, false
	}
	return Slot{c: &s.requests}, true
}

func (p *Picker) acquireConnection(ctx context.Context) (func(), error) {
	slot, err := p.acquireConnectionSlot(ctx)
	if err != nil {
		return nil, err
	}
	return slot.releaser(), nil
}

func (p *Picker) acquireConnectionSlot(ctx context.Context) (Slot, error) {
	if !p.cfg.HTTP1 {
		return Slot{}, nil
	}
	s := p.state
	err := s.conns.acquire(ctx,
		limitOr(p.cfg.Limits.MaxConnections, defaultLimit),
		limitOr(p.cfg.Limits.MaxPendingRequests, defaultLimit))
	if err != nil {
		if err == ErrOverflow {
			s.overflow.Add(1)
		}
		return Slot{}, err
	}
	return Slot{g: &s.conns}, nil
}

// releaser returns a function that releases the slot, once; safe for
// concurrent use.
func (s Slot) releaser() func() {
	if s.c == nil && s.g == nil {
		return func() {}
	}
	var mu sync.Mutex
	return func() {
		mu.Lock()
		s.Release()
		mu.Unlock()
	}
}

func (p *Picker) recordRequest() {
	if p.cfg.Limits.RetryBudget != nil {
		p.state.budget.deposit(p.state.now())
	}
}

func (p *Picker) acquireRetry() (func(), bool) {
	s := p.state
	if b := p.cfg.Limits.RetryBudget; b != nil {
		if p.cfg.Limits.MaxRetriesSet {
			// Both bounds: concurrent retries first, so a refused retry
			// does not spend the budget.
			if s.retries.Add(1) > int64(p.cfg.Limits.MaxRetries) {
				s.retries.Add(-1)
				s.retryOverflow.Add(1)
				return nil, false
			}
			if !s.budget.withdraw(s.now(), b) {
				s.retries.Add(-1)
				s.retryOverflow.Add(1)
				return nil, false
			}
			s.retriesMade.Add(1)
			return releaser(&s.retries), true
		}
		if !s.budget.withdraw(s.now(), b) {
			s.retryOverflow.Add(1)
			return nil, false
		}
		s.retriesMade.Add(1)
		return func() {}, true
	}
	if s.retries.Add(1) > limitOr(p.cfg.Limits.MaxRetries, defaultMaxRetries) {
		s.retries.Add(-1)
		s.retryOverflow.Add(1)
		return nil, false
	}
	s.retriesMade.Add(1)
	return releaser(&s.retries), true
}

func (p *Picker) stats() Stats {
	s := p.state
	now := s.now().UnixNano()
	ejected := 0
	for _, h := range p.all {
		if h.ejectedUntil.Load() > now {
			ejected++
		}
	}
	return Stats{
		Overflow:        s.overflow.Load(),
		RetryOverflow:   s.retryOverflow.Load(),
		Retries:         s.retriesMade.Load(),
		Ejections:       s.ejections.Load(),
		EjectedNow:      ejected,
		InFlight:        s.requests.Load(),
		PendingRequests: s.conns.pending(),
	}
}

// connGate bounds an HTTP/1 cluster's connections: up to max holders, up
// to maxPending waiters served in order, ErrOverflow past that.
type connGate struct {
	mu      sync.Mutex
	active  int64
	max     int64 // the limit of the latest acquire (the current snapshot's)
	waiters []chan struct{}
}

// acquire takes a slot (nil error); the holder calls release.
func (g *connGate) acquire(ctx context.Context, maxConns, maxPending int64) error {
	g.mu.Lock()
	g.max = maxConns
	if g.active < maxConns && len(g.waiters) == 0 {
		g.active++
		g.mu.Unlock()
		return nil
	}
	if int64(len(g.waiters)) >= maxPending {
		g.mu.Unlock()
		return ErrOverflow
	}
	ch := make(chan struct{})
	g.waiters = append(g.waiters, ch)
	g.mu.Unlock()

	select {
	case <-ch:
		return nil
	case <-ctx.Done():
	}
	g.mu.Lock()
	for i, w := range g.waiters {
		if w == ch {
			g.waiters = append(g.waiters[:i], g.waiters[i+1:]...)
			g.mu.Unlock()
			return ctx.Err()
		}
	}
	g.mu.Unlock()
	// Admitted just as ctx ended: pass the slot on.
	g.release()
	return ctx.Err()
}

func (g *connGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.active--
	for len(g.waiters) > 0 && g.active < g.max {
		g.active++
		close(g.waiters[0])
		g.waiters = g.waiters[1:]
	}
}

func (g *connGate) pending() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return int64(len(g.waiters))
}

// retryWindow is the retry budget's sliding window (Linkerd/Finagle): one
// bucket per second of the last budgetWindow seconds, each counting the
// original requests and the retries made in it.
type retryWindow struct {
	mu      sync.Mutex
	buckets [budgetWindow]struct{ sec, requests, retries int64 }
}

func (w *retryWindow) bucket(sec int64) *struct{ sec, requests, retries int64 } {
	b := &w.buckets[((sec%budgetWindow)+budgetWindow)%budgetWindow]
	if b.sec != sec {
		b.sec, b.requests, b.retries = sec, 0, 0
	}
	return b
}

func (w *retryWindow) deposit(now time.Time) {
	w.mu.Lock()
	w.bucket(now.Unix()).requests++
	w.mu.Unlock()
}

// withdraw admits a retry when, with it, the retries of the window stay
// within Percent % of its requests plus MinPerSecond per second.
func (w *retryWindow) withdraw(now time.Time, b *xdsresource.RetryBudget) bool {
	sec := now.Unix()
	w.mu.Lock()
	defer w.mu.Unlock()
	var requests, retries int64
	for i := range w.buckets {
		if bk := &w.buckets[i]; bk.sec > sec-budgetWindow && bk.sec <= sec {
			requests += bk.requests
			retries += bk.retries
		}
	}
	allowed := b.Percent/100*float64(requests) + float64(b.MinPerSecond)*budgetWindow
	if float64(retries+1) > allowed {
		return false
	}
	w.bucket(sec).retries++
	return true
}
