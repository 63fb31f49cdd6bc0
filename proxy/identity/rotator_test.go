package identity

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// recorder is a slog.Handler that keeps the records, safe for concurrent
// use. When now is set, records are stamped with it instead of the real
// time.
type recorder struct {
	now  func() time.Time
	mu   sync.Mutex
	recs []slog.Record
}

func (h *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *recorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recorder) WithGroup(string) slog.Handler            { return h }

func (h *recorder) Handle(_ context.Context, r slog.Record) error {
	r = r.Clone()
	if h.now != nil {
		r.Time = h.now()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r)
	return nil
}

// first returns the first record of level with message msg.
func (h *recorder) first(level slog.Level, msg string) (slog.Record, bool) {
	if recs := h.all(level, msg); len(recs) > 0 {
		return recs[0], true
	}
	return slog.Record{}, false
}

// all returns the records of level with message msg, oldest first.
func (h *recorder) all(level slog.Level, msg string) []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	var recs []slog.Record
	for _, r := range h.recs {
		if r.Level == level && r.Message == msg {
			recs = append(recs, r)
		}
	}
	return recs
}

// levels returns the levels of the records with message msg.
func (h *recorder) levels(msg string) []slog.Level {
	h.mu.Lock()
	defer h.mu.Unlock()
	var levels []slog.Level
	for _, r := range h.recs {
		if r.Message == msg {
			levels = append(levels, r.Level)
		}
	}
	return levels
}

// stepLimit bounds, in real time, how long a test waits for the Rotator to
// reach its next sleep. It only matters when the Rotator is stuck: a step
// takes milliseconds even on a loaded machine.
const stepLimit = 30 * time.Second

// fakeClock is a Rotator's clock and sleep in tests. Its time stands still
// while the Rotator works and moves only when the test ends one of the
// Rotator's sleeps, so the schedule is checked exactly however slow or busy
// the machine is.
type fakeClock struct {
	sleeps chan *fakeSleep
	mu     sync.Mutex
	now    time.Time
}

// fakeSleep is one wait of the Rotator: for d from at.
type fakeSleep struct {
	at   time.Time
	d    time.Duration
	wake chan struct{}
}

func newFakeClock(start time.Time) *fakeClock {
	return &fakeClock{sleeps: make(chan *fakeSleep), now: start}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// sleep is the Rotator's sleep: it hands the wait over to the test and
// blocks until the test ends it (true) or ctx ends (false).
func (c *fakeClock) sleep(ctx context.Context, d time.Duration) bool {
	s := &fakeSleep{at: c.Now(), d: d, wake: make(chan struct{})}
	select {
	case c.sleeps <- s:
	case <-ctx.Done():
		return false
	}
	select {
	case <-s.wake:
		return true
	case <-ctx.Done():
		return false
	}
}

// next waits for the Rotator's next sleep. Until the test ends it, the
// Rotator stays blocked, so what it did before is settled.
func (c *fakeClock) next(t *testing.T) *fakeSleep {
	t.Helper()
	select {
	case s := <-c.sleeps:
		return s
	case <-time.After(stepLimit):
		t.Fatalf("the rotator did not sleep within %v (fake time %v)", stepLimit, c.Now())
		return nil
	}
}

// end moves the clock to the end of s and lets the Rotator go on.
func (c *fakeClock) end(s *fakeSleep) {
	c.mu.Lock()
	c.now = s.at.Add(s.d)
	c.mu.Unlock()
	close(s.wake)
}

// until is when s ends.
func (s *fakeSleep) until() time.Time { return s.at.Add(s.d) }

// rotatorEnv is a Source without SVID, a CA, and a Rotator for catalogID
// on a fake clock, whose Fetch is fetch (by default: the CA signs for ttl
// from the fake time). The backoff is the production one (1 s to 30 s).
//
// Source.SetSVID checks a chain against the real time, so the fake time
// starts at 80 % of ttl in the past (on a whole second, as x509 keeps it):
// the first certificate, and one renewed at up to 60 % of its lifetime,
// are valid now.
type rotatorEnv struct {
	ttl   time.Duration
	ca    *testCA
	src   *Source
	rot   *Rotator
	clock *fakeClock
	log   *recorder
	calls atomic.Int64
}

func newRotatorEnv(t *testing.T, ttl time.Duration, fetch func(n int64, csr []byte) ([]*x509.Certificate, error)) *rotatorEnv {
	t.Helper()
	e := &rotatorEnv{
		ttl:   ttl,
		ca:    newTestCA(t, "weft"),
		clock: newFakeClock(time.Now().Add(-ttl * 8 / 10).Truncate(time.Second)),
	}
	e.log = &recorder{now: e.clock.Now}
	var err error
	if e.src, err = NewSource(testTD); err != nil {
		t.Fatal(err)
	}
	if err := e.src.SetBundle([]*x509.Certificate{e.ca.root}); err != nil {
		t.Fatal(err)
	}
	if fetch == nil {
		fetch = func(_ int64, csr []byte) ([]*x509.Certificate, error) { return e.sign(csr) }
	}
	e.rot, err = NewRotator(RotatorOptions{
		Source: e.src,
		ID:     catalogID,
		Fetch: func(ctx context.Context, csr []byte) ([]*x509.Certificate, error) {
			return fetch(e.calls.Add(1), csr)
		},
		Logger: slog.New(e.log),
		Now:    e.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.rot.sleep = e.clock.sleep
	return e
}

// sign issues the CSR's URI for ttl from the fake time.
func (e *rotatorEnv) sign(csr []byte) ([]*x509.Certificate, error) {
	notBefore := e.clock.Now().Truncate(time.Second) // what x509 keeps
	return e.ca.signFor(csr, notBefore, notBefore.Add(e.ttl))
}

// leaf is the current SVID's leaf (nil: none).
func (e *rotatorEnv) leaf() *x509.Certificate {
	if cur := e.src.svid.Load(); cur != nil {
		return cur.cert.Leaf
	}
	return nil
}

// run starts Run until the test ends.
func (e *rotatorEnv) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.rot.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(stepLimit):
			t.Error("Run did not return after its context ended")
		}
	})
}

// initial runs Initial, which must succeed at its first attempt (a retry
// would wait for the fake clock, which nobody advances).
func (e *rotatorEnv) initial(t *testing.T) *x509.Certificate {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stepLimit)
	defer cancel()
	if err := e.rot.Initial(ctx); err != nil {
		t.Fatal(err)
	}
	return e.leaf()
}

// checkDue checks that s is the wait for the renewal of leaf: it ends at
// 50 % ± 10 % of the lifetime after NotBefore.
func checkDue(t *testing.T, s *fakeSleep, leaf *x509.Certificate) {
	t.Helper()
	lifetime := leaf.NotAfter.Sub(leaf.NotBefore)
	due := s.until().Sub(leaf.NotBefore)
	if lo, hi := 4*lifetime/10, 6*lifetime/10; due < lo || due > hi {
		t.Errorf("renewal due %v after NotBefore (sleep of %v), want within [%v, %v]", due, s.d, lo, hi)
	}
}

func TestRotatorRenewsAtHalfLife(t *testing.T) {
	t.Parallel()
	const ttl = time.Hour
	var keys sync.Map // public keys seen in CSRs
	var e *rotatorEnv
	e = newRotatorEnv(t, ttl, func(n int64, csr []byte) ([]*x509.Certificate, error) {
		if req, err := x509.ParseCertificateRequest(csr); err == nil {
			if _, dup := keys.LoadOrStore(fmt.Sprint(req.PublicKey), n); dup {
				return nil, errors.New("csr reuses a key")
			}
		}
		return e.sign(csr)
	})
	first := e.initial(t)
	e.run(t)

	// Run waits until the renewal is due, and fetches nothing meanwhile.
	s := e.clock.next(t)
	checkDue(t, s, first)
	if n := e.calls.Load(); n != 1 {
		t.Fatalf("%d fetches before the renewal was due, want 1 (the initial one)", n)
	}
	due := s.until().Sub(first.NotBefore)
	e.clock.end(s)

	// Then it renews at once, and waits for the next renewal.
	s = e.clock.next(t)
	second := e.leaf()
	if second == first {
		t.Fatalf("not renewed (%d fetches, %v)", e.calls.Load(), e.log.levels("certificate renewal failed, will retry"))
	}
	// Requested when due: NotBefore has a 1-second resolution.
	if age := second.NotBefore.Sub(first.NotBefore); age <= due-time.Second || age > due {
		t.Errorf("renewed certificate valid from %v after the first, want the renewal time %v (to the second)", age, due)
	}
	checkDue(t, s, second)
	if id, _ := leafID(second); id != catalogID {
		t.Errorf("renewed svid id = %v, want %v", id, catalogID)
	}
	if n := e.calls.Load(); n != 2 {
		t.Errorf("%d fetches, want 2", n)
	}
	if recs := e.log.all(slog.LevelInfo, "certificate obtained"); len(recs) != 2 {
		t.Errorf(`%d "certificate obtained" events, want 2`, len(recs))
	}
}

// TestRotatorRenewalJitter checks the spread of renewal times: within 50 %
// ± 10 % of the lifetime, and not all the same.
func TestRotatorRenewalJitter(t *testing.T) {
	t.Parallel()
	e := newRotatorEnv(t, time.Hour, nil)
	notBefore := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	leaf := &x509.Certificate{NotBefore: notBefore, NotAfter: notBefore.Add(time.Hour)}
	lo, hi := notBefore.Add(24*time.Minute), notBefore.Add(36*time.Minute)
	earliest, latest := hi, lo
	for range 1000 {
		at := e.rot.renewalTime(leaf)
		if at.Before(lo) || at.After(hi) {
			t.Fatalf("renewal at %v, want within [%v, %v]", at, lo, hi)
		}
		if at.Before(earliest) {
			earliest = at
		}
		if at.After(latest) {
			latest = at
		}
	}
	if spread := latest.Sub(earliest); spread < 6*time.Minute {
		t.Errorf("1000 renewal times spread over %v, want the jitter to use most of 12 min", spread)
	}
}

func TestRotatorRecoversAfterFailures(t *testing.T) {
	t.Parallel()
	const ttl = time.Hour
	var e *rotatorEnv
	e = newRotatorEnv(t, ttl, func(n int64, csr []byte) ([]*x509.Certificate, error) {
		// The initial fetch works, the next three fail, then one works and
		// the next (at the following renewal) fails again.
		if n >= 2 && n <= 4 || n == 6 {
			return nil, errors.New("ca unavailable")
		}
		return e.sign(csr)
	})
	first := e.initial(t)
	e.run(t)

	s := e.clock.next(t)
	checkDue(t, s, first)
	e.clock.end(s)

	// Failures are retried after 1 s, 2 s, 4 s, keeping the current SVID.
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		s = e.clock.next(t)
		if n := e.calls.Load(); n != int64(i+2) {
			t.Fatalf("%d fetches before retry %d, want %d", n, i+1, i+2)
		}
		if s.d != want {
			t.Fatalf("retry %d after %v, want %v", i+1, s.d, want)
		}
		if e.leaf() != first {
			t.Fatal("svid replaced after a failed renewal")
		}
		e.clock.end(s)
	}

	// The fourth attempt works; Run is back on the renewal schedule.
	s = e.clock.next(t)
	second := e.leaf()
	if second == first {
		t.Fatalf("no new svid after %d fetches", e.calls.Load())
	}
	if n := e.calls.Load(); n != 5 {
		t.Errorf("%d fetches, want 5 (1 initial, 3 failures, 1 success)", n)
	}
	checkDue(t, s, second)
	if recs := e.log.all(slog.LevelInfo, "certificate renewal failed, will retry"); len(recs) != 3 {
		t.Errorf("%d failed renewals logged at INFO, want 3 (all levels: %v)", len(recs), e.log.levels("certificate renewal failed, will retry"))
	}
	if _, ok := e.log.first(slog.LevelWarn, "certificate expires soon and could not be renewed"); ok {
		t.Error("warned of expiry long before it")
	}
	if !e.src.Ready() {
		t.Error("source is not ready after recovery")
	}

	// The backoff starts again from 1 s after a success.
	e.clock.end(s)
	s = e.clock.next(t)
	if n := e.calls.Load(); n != 6 {
		t.Fatalf("%d fetches, want 6", n)
	}
	if s.d != time.Second {
		t.Errorf("retry after %v following a success, want %v", s.d, time.Second)
	}
}

func TestRotatorWarnsBeforeExpiry(t *testing.T) {
	t.Parallel()
	const (
		ttl          = time.Hour
		warnMsg      = "certificate expires soon and could not be renewed"
		expiredMsg   = "certificate expired and could not be renewed"
		failedMsg    = "certificate renewal failed, will retry"
		maxSleeps    = 1000
		warnsAtLeast = 10 // 12 min with retries every 30 s at most
	)
	var e *rotatorEnv
	e = newRotatorEnv(t, ttl, func(n int64, csr []byte) ([]*x509.Certificate, error) {
		if n > 1 {
			return nil, errors.New("ca unavailable")
		}
		return e.sign(csr)
	})
	first := e.initial(t)
	e.run(t)

	// Let Run fail and retry until it reports the expiry.
	for i := 0; ; i++ {
		if i == maxSleeps {
			t.Fatalf("no error after %d sleeps, at %v (not after %v)", i, e.clock.Now(), first.NotAfter)
		}
		s := e.clock.next(t)
		if _, ok := e.log.first(slog.LevelError, expiredMsg); ok {
			break
		}
		if s.d > maxBackoff && i > 0 {
			t.Fatalf("retry after %v, want at most %v", s.d, maxBackoff)
		}
		e.clock.end(s)
	}

	warnFrom := first.NotAfter.Add(-ttl / 5)
	for _, r := range e.log.all(slog.LevelInfo, failedMsg) {
		if !r.Time.Before(warnFrom) {
			t.Errorf("failure at %v logged at INFO, want WARN from %v", r.Time, warnFrom)
		}
	}
	warns := e.log.all(slog.LevelWarn, warnMsg)
	if len(warns) == 0 {
		t.Fatalf("no warning before expiry (failures: %v)", e.log.levels(failedMsg))
	}
	// The first failure of the last 20 % is a warning, as are all the next
	// ones before expiry.
	if at := warns[0].Time; at.Before(warnFrom) || at.After(warnFrom.Add(maxBackoff)) {
		t.Errorf("first warning at %v, want within [%v, %v]", at, warnFrom, warnFrom.Add(maxBackoff))
	}
	for _, r := range warns {
		if r.Time.Before(warnFrom) || !r.Time.Before(first.NotAfter) {
			t.Errorf("warned at %v, want within [%v, %v)", r.Time, warnFrom, first.NotAfter)
		}
	}
	if len(warns) < warnsAtLeast {
		t.Errorf("%d warnings, want at least %d", len(warns), warnsAtLeast)
	}
	errs := e.log.all(slog.LevelError, expiredMsg)
	if len(errs) != 1 {
		t.Fatalf("%d errors, want 1 (the last event)", len(errs))
	}
	if at := errs[0].Time; at.Before(first.NotAfter) || at.After(first.NotAfter.Add(maxBackoff)) {
		t.Errorf("expiry reported at %v, want within [%v, %v]", at, first.NotAfter, first.NotAfter.Add(maxBackoff))
	}
	if e.leaf() != first {
		t.Error("svid replaced although every renewal failed")
	}
}

// TestRotatorDoesNotSpin checks that a CA issuing certificates already past
// their renewal time is not called in a tight loop.
func TestRotatorDoesNotSpin(t *testing.T) {
	t.Parallel()
	var e *rotatorEnv
	e = newRotatorEnv(t, 0, func(_ int64, csr []byte) ([]*x509.Certificate, error) {
		// Valid from 100 s ago for 60 s more: due since 20 s (± 16 s).
		now := e.clock.Now()
		return e.ca.signFor(csr, now.Add(-100*time.Second), now.Add(60*time.Second))
	})
	e.run(t)
	// Each certificate is followed by a pause, growing as backoff does.
	pauses := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}
	for i, want := range pauses {
		s := e.clock.next(t)
		if n := e.calls.Load(); n != int64(i+1) {
			t.Fatalf("%d fetches before pause %d, want %d", n, i+1, i+1)
		}
		if s.d != want {
			t.Fatalf("pause %d of %v, want %v", i+1, s.d, want)
		}
		if warns := e.log.all(slog.LevelWarn, "new certificate is already due for renewal"); len(warns) != i+1 {
			t.Fatalf("%d warnings about certificates already due, want %d", len(warns), i+1)
		}
		if i < len(pauses)-1 {
			e.clock.end(s)
		}
	}
}

func TestRotatorRunWithoutSVID(t *testing.T) {
	t.Parallel()
	e := newRotatorEnv(t, time.Hour, nil)
	e.run(t)
	// Obtained at once, then the wait for its renewal.
	s := e.clock.next(t)
	leaf := e.leaf()
	if leaf == nil {
		t.Fatalf("no svid before the first sleep (%d fetches)", e.calls.Load())
	}
	if n := e.calls.Load(); n != 1 {
		t.Errorf("%d fetches, want 1", n)
	}
	checkDue(t, s, leaf)
	if !e.src.Ready() {
		t.Error("not ready")
	}
}

// TestRotatorRealClock runs a Rotator on the real clock and timers: it
// must renew. Its CA issues certificates valid from 10 s ago for 10 s more,
// so that each is due for renewal within 2 s yet survives a stalled
// machine. The limit is generous: the schedule is checked with the fake
// clock.
func TestRotatorRealClock(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "weft")
	src, err := NewSource(testTD)
	if err != nil {
		t.Fatal(err)
	}
	if err := src.SetBundle([]*x509.Certificate{ca.root}); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	rot, err := NewRotator(RotatorOptions{
		Source: src,
		ID:     catalogID,
		Fetch: func(ctx context.Context, csr []byte) ([]*x509.Certificate, error) {
			calls.Add(1)
			now := time.Now()
			return ca.signFor(csr, now.Add(-10*time.Second), now.Add(10*time.Second))
		},
		Logger: slog.New(&recorder{}),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), stepLimit)
	defer cancel()
	if err := rot.Initial(ctx); err != nil {
		t.Fatal(err)
	}
	first := src.svid.Load()
	done := make(chan struct{})
	go func() {
		defer close(done)
		rot.Run(ctx)
	}()
	for src.svid.Load() == first && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if src.svid.Load() == first {
		t.Fatalf("not renewed within %v (%d fetches)", stepLimit, calls.Load())
	}
}

func TestTimerSleep(t *testing.T) {
	t.Parallel()
	if !timerSleep(context.Background(), time.Millisecond) {
		t.Error("timerSleep(1ms) = false, want true")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if timerSleep(ctx, time.Hour) {
		t.Error("timerSleep with an ended context = true, want false")
	}
}

func TestRotatorInitial(t *testing.T) {
	t.Parallel()
	otherID := spiffeid.RequireFromString("spiffe://weft.test/ns/shop/sa/other")
	for _, tt := range []struct {
		name    string
		fetch   func(t *testing.T, e *rotatorEnv, n int64, csr []byte) ([]*x509.Certificate, error)
		wantErr string // "" = success
	}{
		{"retries until the ca answers", func(t *testing.T, e *rotatorEnv, n int64, csr []byte) ([]*x509.Certificate, error) {
			if n <= 2 {
				return nil, errors.New("ca unavailable")
			}
			return e.sign(csr)
		}, ""},
		{"gives up when the context ends", func(t *testing.T, e *rotatorEnv, n int64, csr []byte) ([]*x509.Certificate, error) {
			return nil, errors.New("ca unavailable")
		}, "ca unavailable"},
		{"refuses an svid for another id", func(t *testing.T, e *rotatorEnv, n int64, csr []byte) ([]*x509.Certificate, error) {
			chain, _ := e.ca.issue(t, otherID, nil)
			return chain, nil
		}, "issued for spiffe://weft.test/ns/shop/sa/other"},
		{"refuses an svid for another key", func(t *testing.T, e *rotatorEnv, n int64, csr []byte) ([]*x509.Certificate, error) {
			chain, _ := e.ca.issue(t, catalogID, nil)
			return chain, nil
		}, "does not match"},
		{"refuses an empty chain", func(t *testing.T, e *rotatorEnv, n int64, csr []byte) ([]*x509.Certificate, error) {
			return nil, nil
		}, "empty certificate chain"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var e *rotatorEnv
			e = newRotatorEnv(t, time.Hour, func(n int64, csr []byte) ([]*x509.Certificate, error) { return tt.fetch(t, e, n, csr) })
			if tt.wantErr == "" {
				// Retried after 1 s, then 2 s, then it works.
				ctx, cancel := context.WithTimeout(context.Background(), stepLimit)
				defer cancel()
				done := make(chan error, 1)
				go func() { done <- e.rot.Initial(ctx) }()
				for i, want := range []time.Duration{time.Second, 2 * time.Second} {
					s := e.clock.next(t)
					if s.d != want {
						t.Fatalf("retry %d after %v, want %v", i+1, s.d, want)
					}
					e.clock.end(s)
				}
				if err := <-done; err != nil || !e.src.Ready() {
					t.Fatalf("Initial: %v (ready %v)", err, e.src.Ready())
				}
				if n := e.calls.Load(); n != 3 {
					t.Errorf("%d fetches, want 3", n)
				}
				if recs := e.log.all(slog.LevelInfo, "certificate request failed, will retry"); len(recs) != 2 {
					t.Errorf("%d failed attempts logged, want 2", len(recs))
				}
				return
			}
			// Nobody advances the clock: after its first attempt, Initial
			// waits until the context ends.
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			err := e.rot.Initial(ctx)
			if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Initial: err = %v, want the deadline and %q", err, tt.wantErr)
			}
			if n := e.calls.Load(); n != 1 {
				t.Errorf("%d fetches, want 1", n)
			}
			if e.src.Ready() {
				t.Error("ready without an svid")
			}
		})
	}
}

func TestNewRotatorErrors(t *testing.T) {
	src, err := NewSource(testTD)
	if err != nil {
		t.Fatal(err)
	}
	fetch := func(context.Context, []byte) ([]*x509.Certificate, error) { return nil, nil }
	for _, tt := range []struct {
		name string
		opts RotatorOptions
	}{
		{"no source", RotatorOptions{ID: catalogID, Fetch: fetch}},
		{"no fetch", RotatorOptions{Source: src, ID: catalogID}},
		{"no id", RotatorOptions{Source: src, Fetch: fetch}},
		{"id of another trust domain", RotatorOptions{Source: src, ID: foreignID, Fetch: fetch}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewRotator(tt.opts); err == nil || !strings.HasPrefix(err.Error(), "identity: ") {
				t.Fatalf("NewRotator: err = %v, want an identity error", err)
			}
		})
	}
}
