package ratelimit

import (
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/proxy/xdsresource"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

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

func testPool() (*Pool, *fakeClock) {
	c := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	p := NewPool()
	p.now = c.Now
	return p, c
}

func TestBucketRefillAndRetryAfter(t *testing.T) {
	pool, clock := testPool()
	b := pool.Bucket("r", xdsresource.TokenBucket{MaxTokens: 3, TokensPerFill: 2, FillInterval: time.Second})
	for i := range 3 {
		if ok, _ := b.Allow(); !ok {
			t.Fatalf("request %d refused by a full bucket", i+1)
		}
	}
	clock.Advance(300 * time.Millisecond)
	ok, after := b.Allow()
	if ok || after != 700*time.Millisecond {
		t.Fatalf("empty bucket: ok %v, retry after %v; want false, 700ms", ok, after)
	}
	clock.Advance(700 * time.Millisecond) // one fill: 2 tokens
	for i := range 2 {
		if ok, _ := b.Allow(); !ok {
			t.Fatalf("token %d of the fill refused", i+1)
		}
	}
	if ok, after := b.Allow(); ok || after != time.Second {
		t.Fatalf("after the fill is spent: ok %v, retry after %v", ok, after)
	}
	clock.Advance(10 * time.Second) // many fills: capped at MaxTokens
	n := 0
	for {
		if ok, _ := b.Allow(); !ok {
			break
		}
		n++
	}
	if n != 3 {
		t.Fatalf("after a long idle time %d tokens, want MaxTokens 3", n)
	}
	// Fills stay on their grid: the next comes 1s after the last one,
	// not 1s after the last request.
	clock.Advance(1500 * time.Millisecond)
	if ok, _ := b.Allow(); !ok {
		t.Fatal("refused after a fill")
	}
	b.Allow()
	if _, after := b.Allow(); after != 500*time.Millisecond {
		t.Fatalf("retry after %v, want 500ms", after)
	}
}

func TestPoolKeepsBuckets(t *testing.T) {
	pool, _ := testPool()
	tb := xdsresource.TokenBucket{MaxTokens: 1, TokensPerFill: 1, FillInterval: time.Minute}
	b := pool.Bucket("route-a", tb)
	b.Allow()
	if again := pool.Bucket("route-a", tb); again != b {
		t.Fatal("same key and settings: new bucket")
	}
	if ok, _ := pool.Bucket("route-a", tb).Allow(); ok {
		t.Fatal("the kept bucket was refilled")
	}
	if other := pool.Bucket("route-b", tb); other == b {
		t.Fatal("another key shares the bucket")
	}
	tb.MaxTokens = 2
	changed := pool.Bucket("route-a", tb)
	if changed == b {
		t.Fatal("changed settings kept the old bucket")
	}
	if ok, _ := changed.Allow(); !ok {
		t.Fatal("the new bucket does not start full")
	}
	pool.Retain(map[string]bool{"route-b": true})
	if len(pool.buckets) != 1 || pool.buckets["route-b"] == nil {
		t.Fatalf("retain kept %v", pool.buckets)
	}
}

func TestBucketConcurrent(t *testing.T) {
	pool, _ := testPool()
	b := pool.Bucket("k", xdsresource.TokenBucket{MaxTokens: 100, TokensPerFill: 1, FillInterval: time.Hour})
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if ok, _ := b.Allow(); ok {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if allowed != 100 {
		t.Fatalf("%d allowed from a bucket of 100", allowed)
	}
}

func BenchmarkAllow(b *testing.B) {
	bk := NewPool().Bucket("k", xdsresource.TokenBucket{MaxTokens: 1 << 30, TokensPerFill: 1 << 30, FillInterval: time.Millisecond})
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			bk.Allow()
		}
	})
}
