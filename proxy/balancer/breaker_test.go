package balancer

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/weftmesh/weft/proxy/xdsresource"
)

func TestMaxRequests(t *testing.T) {
	p := NewPicker(endpoints(1), testPool(newFakeClock()).Get("c"), Config{Limits: xdsresource.CircuitBreakers{MaxRequests: 2}})
	r1, ok1 := p.AcquireRequest()
	r2, ok2 := p.AcquireRequest()
	if !ok1 || !ok2 {
		t.Fatal("refused under the limit")
	}
	if _, ok := p.AcquireRequest(); ok {
		t.Fatal("admitted over max_requests")
	}
	if s := p.Stats(); s.Overflow != 1 || s.InFlight != 2 {
		t.Fatalf("stats: %+v", s)
	}
	r1()
	r1() // a second release gives nothing back
	if _, ok := p.AcquireRequest(); !ok {
		t.Fatal("refused after a release")
	}
	if _, ok := p.AcquireRequest(); ok {
		t.Fatal("double release freed two slots")
	}
	r2()
	// Zero limits are Envoy's defaults (1024).
	p = NewPicker(endpoints(1), testPool(newFakeClock()).Get("c"), Config{})
	for i := range 1024 {
		if _, ok := p.AcquireRequest(); !ok {
			t.Fatalf("default limit refused request %d", i+1)
		}
	}
	if _, ok := p.AcquireRequest(); ok {
		t.Fatal("default limit admitted request 1025")
	}
}

func TestMaxConnectionsAndPending(t *testing.T) {
	ctx := context.Background()
	p := NewPicker(endpoints(1), testPool(newFakeClock()).Get("c"), Config{
		HTTP1:  true,
		Limits: xdsresource.CircuitBreakers{MaxConnections: 1, MaxPendingRequests: 1},
	})
	release, err := p.AcquireConnection(ctx)
	if err != nil {
		t.Fatal(err)
	}
	admitted := make(chan func(), 1)
	go func() {
		r, err := p.AcquireConnection(ctx)
		if err != nil {
			t.Error(err)
		}
		admitted <- r
	}()
	waitFor(t, func() bool { return p.Stats().PendingRequests == 1 })
	// The one pending place is taken: overflow at once.
	if _, err := p.AcquireConnection(ctx); !errors.Is(err, ErrOverflow) {
		t.Fatalf("past max_pending_requests: %v", err)
	}
	select {
	case <-admitted:
		t.Fatal("waiter admitted while the connection is held")
	case <-time.After(10 * time.Millisecond):
	}
	release()
	var r2 func()
	select {
	case r2 = <-admitted:
	case <-time.After(5 * time.Second):
		t.Fatal("waiter not admitted after the release")
	}
	if s := p.Stats(); s.PendingRequests != 0 || s.Overflow != 1 {
		t.Fatalf("stats: %+v", s)
	}
	// A waiter whose context ends gives up its place.
	cctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := p.AcquireConnection(cctx)
		errc <- err
	}()
	waitFor(t, func() bool { return p.Stats().PendingRequests == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	if n := p.Stats().PendingRequests; n != 0 {
		t.Fatalf("cancelled waiter still pending: %d", n)
	}
	r2()
	if r, err := p.AcquireConnection(ctx); err != nil {
		t.Fatalf("slot not freed: %v", err)
	} else {
		r()
	}
	// HTTP/2 clusters multiplex: no connection limit here.
	h2 := NewPicker(endpoints(1), testPool(newFakeClock()).Get("h2"), Config{Limits: xdsresource.CircuitBreakers{MaxConnections: 1, MaxPendingRequests: 1}})
	for range 5 {
		if _, err := h2.AcquireConnection(ctx); err != nil {
			t.Fatalf("HTTP/2: %v", err)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestMaxRetries(t *testing.T) {
	p := NewPicker(endpoints(1), testPool(newFakeClock()).Get("c"), Config{Limits: xdsresource.CircuitBreakers{MaxRetries: 2}})
	r1, ok1 := p.AcquireRetry()
	_, ok2 := p.AcquireRetry()
	_, ok3 := p.AcquireRetry()
	if !ok1 || !ok2 || ok3 {
		t.Fatalf("max_retries 2: admitted %v %v %v", ok1, ok2, ok3)
	}
	r1()
	if _, ok := p.AcquireRetry(); !ok {
		t.Fatal("refused after a release")
	}
	if s := p.Stats(); s.Retries != 3 || s.RetryOverflow != 1 {
		t.Fatalf("stats: %+v", s)
	}
}

// TestRetryBudget: 100 requests per second, every one failing and
// retried as long as the budget lets it: retries stay within 20% of the
// requests plus 10 per second, over any 10 s window.
func TestRetryBudget(t *testing.T) {
	clock := newFakeClock()
	p := NewPicker(endpoints(1), testPool(clock).Get("c"), Config{Limits: xdsresource.CircuitBreakers{
		MaxRetries:  1, // ignored with a budget
		RetryBudget: &xdsresource.RetryBudget{Percent: 20, MinPerSecond: 10},
	}})
	const seconds = 60
	var perSecond [seconds]int
	for s := range seconds {
		for range 100 {
			p.RecordRequest()
			for range 3 { // up to 3 retries per request
				if _, ok := p.AcquireRetry(); !ok {
					break
				}
				perSecond[s]++
			}
			clock.Advance(10 * time.Millisecond)
		}
	}
	// The reserve (10/s × 10 s) may go at once, at the start.
	if perSecond[0] < 100 {
		t.Fatalf("first second: %d retries", perSecond[0])
	}
	for s := 0; s+10 <= seconds; s++ {
		window := 0
		for _, n := range perSecond[s : s+10] {
			window += n
		}
		if requests := 100 * min(10, s+10); float64(window) > 0.2*float64(requests)+100 {
			t.Fatalf("seconds %d-%d: %d retries for %d requests", s, s+10, window, requests)
		}
	}
	steady := 0
	for _, n := range perSecond[20:] {
		steady += n
	}
	if rate := float64(steady) / float64(seconds-20); rate < 27 || rate > 30 {
		t.Fatalf("steady state: %.1f retries/s, want about 30 (20%% of 100 + 10)", rate)
	}
	if s := p.Stats(); s.Retries == 0 || s.RetryOverflow == 0 {
		t.Fatalf("stats: %+v", s)
	}
	// No budget set: RecordRequest does nothing.
	NewPicker(endpoints(1), testPool(clock).Get("d"), Config{}).RecordRequest()
}

// TestMaxRetriesWithBudget: a configured max_retries bounds concurrent
// retries even when a retry budget is set.
func TestMaxRetriesWithBudget(t *testing.T) {
	cfg := Config{Limits: xdsresource.CircuitBreakers{MaxRetries: 1, MaxRetriesSet: true,
		RetryBudget: &xdsresource.RetryBudget{Percent: 100, MinPerSecond: 100}}}
	p := NewPicker([]xdsresource.Endpoint{{Address: "a:1"}}, NewPool().Get("c"), cfg)
	release, ok := p.AcquireRetry()
	if !ok {
		t.Fatal("first retry refused")
	}
	if _, ok := p.AcquireRetry(); ok {
		t.Fatal("a second concurrent retry passed max_retries 1")
	}
	release()
	if r, ok := p.AcquireRetry(); !ok {
		t.Fatal("retry refused after release")
	} else {
		r()
	}
}
