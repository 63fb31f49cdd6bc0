// Package ratelimit keeps the token buckets of local rate limits
// (envoy.filters.http.local_ratelimit, see docs/xds.md) across config
// snapshots: a bucket is found by key in a Pool, and keeps its tokens as
// long as its key and settings do not change.
package ratelimit

import (
	"sync"
	"time"

	"github.com/weftmesh/weft/proxy/xdsresource"
)

// Pool keeps token buckets by key. Safe for concurrent use.
type Pool struct {
	mu      sync.Mutex
	buckets map[string]*Bucket
	now     func() time.Time // tests replace it before the first Bucket
}

// NewPool returns an empty pool.
func NewPool() *Pool { return &Pool{buckets: map[string]*Bucket{}, now: time.Now} }

// Bucket returns the bucket kept under key: the same one as before when
// the settings are the same, a new full one when they changed.
func (p *Pool) Bucket(key string, b xdsresource.TokenBucket) *Bucket {
	p.mu.Lock()
	defer p.mu.Unlock()
	if old := p.buckets[key]; old != nil && old.cfg == b {
		return old
	}
	nb := newBucket(b, p.now)
	p.buckets[key] = nb
	return nb
}

// Retain forgets the buckets whose keys are not in keys.
func (p *Pool) Retain(keys map[string]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k := range p.buckets {
		if !keys[k] {
			delete(p.buckets, k)
		}
	}
}

// Bucket is a token bucket: it starts full with MaxTokens and gains
// TokensPerFill every FillInterval, up to MaxTokens; each allowed request
// takes one token. Tokens are computed from the clock when asked, with no
// timer. Safe for concurrent use; Allow never blocks.
type Bucket struct {
	cfg      xdsresource.TokenBucket // as given, to compare settings
	max      int64
	perFill  int64
	interval time.Duration
	now      func() time.Time

	mu     sync.Mutex
	tokens int64
	filled time.Time // the time of the last fill (fills happen on a grid)
}

func newBucket(b xdsresource.TokenBucket, now func() time.Time) *Bucket {
	if now == nil {
		now = time.Now
	}
	nb := &Bucket{
		cfg:      b,
		max:      int64(max(1, b.MaxTokens)),
		perFill:  int64(max(1, b.TokensPerFill)),
		interval: b.FillInterval,
		now:      now,
		filled:   now(),
	}
	if nb.interval <= 0 {
		nb.interval = time.Second
	}
	nb.tokens = nb.max
	return nb
}

// Allow takes a token. When there is none, ok is false and retryAfter is
// the time until the next one.
func (b *Bucket) Allow() (ok bool, retryAfter time.Duration) {
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if elapsed := now.Sub(b.filled); elapsed >= b.interval {
		fills := int64(elapsed / b.interval)
		b.filled = b.filled.Add(time.Duration(fills) * b.interval)
		if fills >= (b.max+b.perFill-1)/b.perFill {
			b.tokens = b.max
		} else {
			b.tokens = min(b.max, b.tokens+fills*b.perFill)
		}
	}
	if b.tokens > 0 {
		b.tokens--
		return true, 0
	}
	return false, b.filled.Add(b.interval).Sub(now)
}
